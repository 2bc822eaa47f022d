"""``retry_job`` and ``retry_job_more_memory``: submit a failed job again, exactly once.

The click's value is the job ARN (untrusted: checked to be a Batch job ARN). The job is acted
on where it is: Batch of the ARN's region, and of its account: the app's own, or a member
account of the hub through its member role (core/member_roles.py); an account it cannot reach
is refused. The job is read with DescribeJobs (what the message says is not trusted: the route,
the queue and the job name come from Batch), the clicker must be allowed by the job's route
(deciding/permissions.py ``allow_for``, interactions/permissions.py ``may_act``), the claim
``action#<ARN>#retry`` is taken (deciding/action_claims.py), the request is rebuilt
(deciding/resubmit.py) and submitted. The new job's record points at the clicked message, so
its events update and thread under it. Any refusal or failure before SubmitJob answered leaves
nothing behind: the claim is released and the clicker told why, in an ephemeral message.

Also the pieces the other handlers share: :func:`job_arn_of`, :func:`click_batch_client`,
:func:`describe_clicked_job`, :func:`refuse_unless_allowed`, :func:`finish`, :class:`Refused`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import Block

from chalicelib.composing.after_click import after_retry
from chalicelib.composing.messages import SlackMessage
from chalicelib.composing.mrkdwn import safe_mrkdwn
from chalicelib.core.aws_errors import describe_aws_error
from chalicelib.core.clients import ClientConfig, client
from chalicelib.core.config import settings
from chalicelib.core.errors import BatchNotifyError
from chalicelib.core.logline import log_line
from chalicelib.core.member_roles import Reach, another_account, reach
from chalicelib.core.state_table import ConditionFailed, StateError, StateTable, item_key, now, state_table
from chalicelib.deciding.action_claims import ActionClaims, Claim
from chalicelib.deciding.permissions import allow_for
from chalicelib.deciding.resubmit import CannotResubmit, resubmit_request
from chalicelib.delivering.slack import Slack
from chalicelib.interactions.clicks import Click
from chalicelib.interactions.endpoint import ActionAnswer, time_left
from chalicelib.interactions.permissions import may_act
from chalicelib.reading.batch_api import queue_name
from chalicelib.reading.job_arn import JobArn, parse_job_arn
from chalicelib.reading.links import batch_job_url

# A Batch call gets at least this much time, or is not made ("ran out of time": nothing done).
MIN_CALL_SECONDS = 0.25
CONNECT_SECONDS = 0.5
# Kept back from the handler's time for botocore's own work around the request.
CALL_MARGIN_SECONDS = 0.1
FINAL_STATUSES = ("SUCCEEDED", "FAILED")
MESSAGE_LIMIT = 1500  # an ephemeral answer's job-controlled part

NOT_ALLOWED = "You are not allowed to {what} this job (the route's actions.allow): nothing was done."
NOT_A_JOB = "This button does not carry an AWS Batch job ARN: nothing was done."
ELSEWHERE = "This is a job of another account or region this app cannot reach ({where}): nothing was done."
# The job's account is known to be another one that no member role reaches: the why, in words.
UNREACHABLE = "This is a job of another account or region this app cannot reach: {why}. Nothing was done."
NO_TABLE = ("This app has no state table (NOTIFY_STATE_TABLE), which actions need to happen exactly once: "
            "nothing was done.")
OUT_OF_TIME = "AWS Batch could not be asked in time: nothing was done. Try again."


class Refused(Exception):
    """A click that ends with an ephemeral ``text`` to the clicker and nothing done (``outcome``
    names it in the log line)."""

    def __init__(self, text: str, outcome: str) -> None:
        super().__init__(outcome)
        self.text, self.outcome = text, outcome


@dataclass(frozen=True)
class ClickedJob:
    """The clicked job as DescribeJobs tells it: its ``description`` (one ``jobs[]`` entry), queue
    name, job name and status."""

    arn: JobArn
    description: dict[str, Any]
    queue: str
    job_name: str
    status: str


def job_arn_of(value: str | None) -> JobArn:
    """The job ARN a button carries; raise :class:`Refused` when it is not one."""
    found = parse_job_arn(value)
    if found is None:
        raise Refused(NOT_A_JOB, "not a job ARN")
    return found


def own_region(batch: Any) -> str | None:
    """The region this app acts in: its Batch client's."""
    region = getattr(getattr(batch, "meta", None), "region_name", None)
    return region if isinstance(region, str) else os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def click_batch_client(arn: JobArn | None = None) -> Any:
    """A Batch client whose one attempt, connect and read together, fits the handler's time left,
    so no call is still running when the route answers (on Lambda it would be frozen mid-call).
    The read timeout is rounded down to a quarter second: core/clients.py keeps one client per
    config, so a few, not one per click. ``arn``: the client of the job's region and account
    (:func:`job_reach`; raise :class:`Refused` when its account cannot be reached)."""
    way = job_reach(arn) if arn is not None else None  # first: assuming a role takes some of the time
    left = time_left() - CALL_MARGIN_SECONDS
    connect = min(CONNECT_SECONDS, left / 2)
    read = math.floor((left - connect) * 4) / 4
    if connect <= 0 or read < MIN_CALL_SECONDS:
        raise Refused(OUT_OF_TIME, "out of time")
    config = ClientConfig(connect_timeout=round(connect, 2), read_timeout=min(read, 1.0), attempts=1)
    if arn is None or way is None:
        return client("batch", config)
    return client("batch", config, region=arn.region, credentials=way.credentials)


def job_reach(arn: JobArn) -> Reach:
    """How to reach the job's account (core/member_roles.py); raise :class:`Refused` (nothing done)
    when it is another account no member role reaches, or when ``MEMBER_ROLE_ARN`` is invalid."""
    try:
        way = reach(arn.account)
    except BatchNotifyError as error:  # a bad MEMBER_ROLE_ARN or ACCOUNT_NAMES: named, nothing done
        raise Refused(f"{safe_mrkdwn(str(error), MESSAGE_LIMIT)}: nothing was done.", "hub misconfigured") from None
    if way.refusal is not None:
        raise Refused(UNREACHABLE.format(why=safe_mrkdwn(way.refusal, MESSAGE_LIMIT)), "another account")
    return way


def describe_clicked_job(arn: JobArn, batch: Any, *, doing: str) -> ClickedJob:
    """DescribeJobs of the clicked job with ``batch`` (:func:`click_batch_client` of ``arn``); raise
    :class:`Refused` for a client of another region than the job's, a job of another account
    that Batch does not know, or a Batch error (``doing``: "retry", "terminate"...)."""
    region = own_region(batch)
    if region and arn.region != region:
        # Only a client handed in (tests' use_client) can be of another region than it was asked for.
        raise Refused(ELSEWHERE.format(where=f"{arn.account}, {arn.region}"), "another region")
    try:
        jobs = batch.describe_jobs(jobs=[arn.arn]).get("jobs") or []
    except Exception as error:
        raise aws_refusal(error, "batch:DescribeJobs", f"read the job to {doing} it") from None
    job = next((j for j in jobs if isinstance(j, dict) and j.get("jobArn", arn.arn) == arn.arn), None)
    if job is None:
        _refuse_if_another_account(arn)
        raise Refused("AWS Batch does not know this job any more (it keeps finished jobs for about 7 days): "
                      "nothing was done.", "job not found")
    name, queue = job.get("jobName"), job.get("jobQueue")
    return ClickedJob(arn, job, queue_name(queue) if isinstance(queue, str) else "",
                      name if isinstance(name, str) else "", str(job.get("status") or ""))


def _refuse_if_another_account(arn: JobArn) -> None:
    """DescribeJobs in the app's own account found nothing: when the job's account was not
    compared (no MEMBER_ROLE_ARN, no context), ask now (sts:GetCallerIdentity, once per container)."""
    way = reach(arn.account)
    refusal = another_account(arn.account) if way.kind == "own" and not way.verified else None
    if refusal is not None:
        raise Refused(UNREACHABLE.format(why=safe_mrkdwn(refusal, MESSAGE_LIMIT)), "another account")


def aws_refusal(error: BaseException, action: str, doing: str) -> Refused:
    """A failed AWS call as a refusal: what went wrong, in words (never AWS's own message)."""
    words = describe_aws_error(error, service="AWS Batch", action=action, doing=doing)
    return Refused(f"{safe_mrkdwn(words, MESSAGE_LIMIT)}. Nothing was done.", f"{action} failed")


def require_table() -> StateTable:
    """The state table; raise :class:`Refused` without one."""
    try:
        table = state_table()
    except BatchNotifyError as error:
        raise Refused(f"{safe_mrkdwn(str(error), MESSAGE_LIMIT)}: nothing was done.", "no state table") from None
    if table is None:
        raise Refused(NO_TABLE, "no state table")
    return table


def refuse_unless_allowed(click: Click, job: ClickedJob, statuses: Iterable[str], what: str) -> None:
    """Raise :class:`Refused` ("not allowed") unless the clicker is allowed by the route of the job
    for one of ``statuses`` (fails closed on any error)."""
    try:
        slack = Slack(settings().slack).within(time.monotonic() + time_left())
        # The route of the job's account and region, from its ARN (Batch answered for that job).
        allowed = any(may_act(click.user_id, allow_for(job.queue, job.job_name, status, account=job.arn.account,
                                                       region=job.arn.region), slack)
                      for status in statuses)
    except BatchNotifyError as error:
        log_line(logging.WARNING, warning="could not decide who may act: refused", reason=str(error)[:300])
        allowed = False
    if not allowed:
        raise Refused(NOT_ALLOWED.format(what=what), "not allowed")


def replacement(blocks: Sequence[dict[str, Any]], text: str) -> SlackMessage:
    """The clicked message's new version from raw blocks (what after_click.py returns)."""
    parsed = tuple(block for block in Block.parse_all(list(blocks)) if block is not None)
    return SlackMessage(text=text, blocks=parsed)


def clicked_at() -> datetime:
    """Now, as the messages after a click show it."""
    return datetime.fromtimestamp(now(), UTC)


def finish(click: Click, job: str | None, outcome: str, answer: ActionAnswer) -> ActionAnswer:
    """Log the click's one line (who, what, which job, how it ended) and return ``answer``."""
    # The job as clicked: a button's value, bounded (it is Slack's to check, not ours to trust).
    log_line(logging.INFO, info="handled a click", user=click.user_id, action=click.action.action_id,
             job=(job or "")[:200] or None, outcome=outcome)
    return answer


def retry_job(click: Click) -> ActionAnswer:
    """Handle ``retry_job``: submit the clicked failed job again, exactly as it ran."""
    return _retry(click, more_memory=False)


def retry_job_more_memory(click: Click) -> ActionAnswer:
    """Handle ``retry_job_more_memory``: the same, with every container's memory doubled (capped)."""
    return _retry(click, more_memory=True)


def _retry(click: Click, *, more_memory: bool) -> ActionAnswer:
    job_arn = click.action.value
    try:
        arn = job_arn_of(click.action.value)
        table = require_table()
        job = describe_clicked_job(arn, click_batch_client(arn), doing="retry")
        refuse_unless_allowed(click, job, ("FAILED",), "retry")
        answer, outcome = _retry_claimed(click, job, table, more_memory)
    except Refused as refused:
        return finish(click, job_arn, refused.outcome, ActionAnswer(ephemeral=refused.text))
    except StateError as error:
        return finish(click, job_arn, "state table failed", state_failure(error))
    return finish(click, job_arn, outcome, answer)


def state_failure(error: StateError) -> ActionAnswer:
    """The answer when the state table failed before anything was done."""
    return ActionAnswer(ephemeral=f"{safe_mrkdwn(str(error).split(';')[0], MESSAGE_LIMIT)}. Nothing was done.")


def _retry_claimed(click: Click, job: ClickedJob, table: StateTable, more_memory: bool) -> tuple[ActionAnswer, str]:
    claims = ActionClaims(table)
    claim = claims.claim(job.arn.arn, "retry", click.user_id)
    if not claim.mine:
        raise Refused(already(claim), "already retried" if claim.state == "done" else "being retried")
    try:
        request = resubmit_request(job.description, original_job_id=job.arn.job_id, more_memory=more_memory,
                                   account=job.arn.account, region=job.arn.region)
        # A client whose timeouts fit what is left now (DescribeJobs took some), or no call at all;
        # in the job's account and region (the member role's credentials are kept: no second AssumeRole).
        batch = click_batch_client(job.arn)
    except CannotResubmit as error:
        claims.release(claim)
        raise Refused(f"This job cannot be retried: {safe_mrkdwn(str(error), MESSAGE_LIMIT)}. Nothing was done.",
                      "cannot resubmit") from None
    except Refused:
        claims.release(claim)
        raise
    if not claims.calling(claim):
        raise Refused(already(claim), "being retried")
    submitted = submit_once(claims, claim, lambda: batch.submit_job(**request.kwargs), "batch:SubmitJob",
                            "submit the job again", job.queue)
    new_id, new_arn = str(submitted.get("jobId") or ""), str(submitted.get("jobArn") or submitted.get("jobId") or "")
    _record_done(claims, claim, new_id, new_arn)
    record_new_job(table, new_arn, click, job.arn.arn)
    url = batch_job_url(job.arn.region, new_id)
    blocks = after_retry(click.message_blocks, click.user_id, new_id, url, list(request.notes), at=clicked_at())
    text = f"Retried as {new_id} by <@{click.user_id}>"
    return ActionAnswer(replacement=replacement(blocks, text)), "retried"


def submit_once(claims: ActionClaims, claim: Claim, call: Callable[[], Any], action: str, doing: str,
                queue: str | None) -> Any:
    """Make the Batch call that changes something, under a claim marked calling. Batch refused it
    (an answer in 4xx): the claim is released, nothing happened, a later click may try again. No
    answer (a timeout, a lost connection, a 5xx): Batch may have done it, so the claim stays (a
    second SubmitJob would run the job twice) and the clicker is told to look before trying again."""
    try:
        return call()
    except Exception as error:
        if _refused_by_batch(error):
            claims.release(claim)
            raise aws_refusal(error, action, doing) from None
        where = f" in job queue `{safe_mrkdwn(queue, 200)}`" if queue else ""
        raise Refused(f"AWS Batch did not answer whether it did it ({type(error).__name__}): it may have. Check the "
                      f"jobs{where} in the AWS Batch console before doing it again by hand; this button stays "
                      "claimed so a second click cannot do it twice.", f"{action}: no answer") from None


def _refused_by_batch(error: BaseException) -> bool:
    """Batch answered with an error (access denied, a bad request, throttled: all before doing
    anything), as opposed to no answer, or a server error, after which it may have done it."""
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return not (isinstance(status, int) and status >= 500)


def _record_done(claims: ActionClaims, claim: Claim, new_id: str, new_arn: str) -> None:
    # The job is submitted whatever happens now: a failure to record it is logged, not shown as
    # a failure (the claim stays "doing", so no one retries it again at once).
    try:
        claims.done(claim, new_job_id=new_id, new_job_arn=new_arn)
    except StateError as error:
        log_line(logging.ERROR, error="submitted a retry but could not record its claim done (it stays claimed)",
                 job=claim.job_arn, new_job=new_arn, reason=str(error).split(";")[0][:300])


def already(claim: Claim) -> str:
    """What a second click on an action someone took is told."""
    who = f"<@{claim.by}>"
    if claim.action == "terminate":
        return (f"Already terminated by {who}." if claim.state == "done"
                else f"This job is being terminated by {who}." if claim.state == "doing"
                else f"{who} asked AWS Batch to terminate it and got no answer: check the job in the console.")
    if claim.state == "done":
        return f"Already retried as {safe_mrkdwn(claim.new_job_id or 'a new job', 200)} by {who}."
    if claim.state == "calling":
        return (f"{who} retried it and AWS Batch did not say whether it took the job: check the job queue in the "
                "console before retrying it by hand.")
    return f"This job is being retried by {who}."


def record_new_job(table: StateTable, new_job_arn: str, click: Click, original_arn: str) -> None:
    """Record ``job#<new job ARN>`` pointing at the clicked message, so the retry's later events
    update it and thread under it (deciding/job_messages.py's item); an item there is kept."""
    try:
        # The channel as the configuration named it is what the retry's events are routed by.
        original = table.get(item_key("job", original_arn)) or {}
        asked = original.get("asked") if original.get("ts") == click.message_ts else None
        at = now()
        item = {"pk": item_key("job", new_job_arn), "asked": asked if isinstance(asked, str) else click.channel_id,
                "channel": click.channel_id, "ts": click.message_ts, "order": 0, "status": "SUBMITTED", "at": at,
                "shared": False, "mentioned": False, "expires_at": table.expires(at)}
        table.put(item, condition="attribute_not_exists(pk)")
    except ConditionFailed:
        return
    except StateError as error:
        log_line(logging.WARNING, warning="could not record the retry's message: its events post on their own",
                 new_job=new_job_arn, reason=str(error)[:300])
