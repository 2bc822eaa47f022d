"""The path every handler takes: event in, route decided, message built and delivered.

The steps, in order: :func:`parse` the event, :func:`decide` its route, build its message,
claim it (the state table, when set), deliver it, record it as posted. With a bot token and the
state table, delivering means the job's conversation (chalicelib/delivering/conversation.py: its
one living message, updated and threaded; failure storms grouped); otherwise one message per
event. Each event handled
leaves one structured (JSON) log line, written in one place (:func:`_log_ending`): event id,
job id, status, route, outcome (posted / skipped and why / failed and why), Slack attempts
and duration. Never the token, the webhook URL or the message body.
"""

from __future__ import annotations

import logging
import reprlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.composing.account_label import with_account_label
from chalicelib.composing.action_buttons import offer_for, with_action_buttons
from chalicelib.composing.messages import SlackMessage, with_mentions
from chalicelib.core.config import hub_settings, slack_settings
from chalicelib.core.deadline import invocation_deadline
from chalicelib.core.logline import log_line
from chalicelib.core.state_table import StateError, state_settings, state_table
from chalicelib.deciding.conversations import conversation_mode
from chalicelib.deciding.permissions import actions_on, decide_with_actions
from chalicelib.deciding.routing import Decision, account_names, route_table, routing_status
from chalicelib.delivering.slack import DeliveryReceipt, Slack, deliver
from chalicelib.reading.event import JOB_STATE_CHANGE, SERVICE_KINDS, JobStateChange, NotAJobStateChange, raw_event

if TYPE_CHECKING:
    from chalicelib.deciding.dedup import Claim
    from chalicelib.deciding.snoozes import Snooze
    from chalicelib.delivering.conversation import Conversed

MessageBuilder = Callable[[JobStateChange], SlackMessage]
Outcome = Literal["posted", "skipped"]

DUPLICATE = "already posted (a duplicate delivery of this event id)"


@dataclass(frozen=True)
class _Ending:
    """How one event's handling ended: the fields its log line adds to the event's own."""

    outcome: Literal["posted", "skipped", "failed"]
    level: int = logging.INFO
    route: str | None = None
    reason: str | None = None
    slack_attempts: int | None = None
    dedup: str | None = None
    # Conversation mode: what the event did to its job's conversation (posted, updated, grouped).
    conversation: str | None = None


def notify(event: Any, build: MessageBuilder, detail_type: str = JOB_STATE_CHANGE) -> Outcome:
    """Route ``event``, build its message with ``build`` and post it to Slack.

    An event of another kind than ``detail_type`` is logged as an error and skipped
    (retrying it would fail the same way). Configuration and delivery errors are logged
    and raised, so Lambda retries the event.
    """
    started = time.monotonic()
    raw = raw_event(event)
    try:
        job = parse(raw, detail_type)
    except NotAJobStateChange as error:
        rejected = _Ending("skipped", logging.ERROR, reason=f"not a {detail_type} event: {error}")
        _log_ending({"event_id": _id_for_log(raw)}, rejected, started)
        return "skipped"
    identity = _identity(job)
    try:
        ending = _route_and_post(job, build, _deadline(event))
    except Exception as error:
        # One searchable line naming the event; Lambda logs the traceback and retries.
        _log_ending(identity, _Ending("failed", logging.ERROR, reason=f"{type(error).__name__}: {error}"), started)
        raise
    _log_ending(identity, ending, started)
    return "posted" if ending.outcome == "posted" else "skipped"


def parse(raw: Any, detail_type: str = JOB_STATE_CHANGE) -> JobStateChange:
    """The event's typed view; raise :class:`NotAJobStateChange` for another kind of event or a
    broken envelope. Missing ``detail`` fields only warn: the message goes out with what is there."""
    # Each kind of Batch event has its view: service jobs (SageMaker training) their own, loaded
    # only by the functions of the service job handlers.
    view = JobStateChange
    if detail_type in SERVICE_KINDS:
        from chalicelib.reading.service_event import ServiceJobStateChange

        view = ServiceJobStateChange
    job = view.from_event(raw, detail_type)
    missing = job.missing_fields()
    if missing:
        log_line(logging.WARNING, **_identity(job),
                 warning=f"detail lacks {', '.join(missing)}; notifying with what is there")
    return job


def decide(job: JobStateChange) -> Decision:
    """Where the job's message goes, by the routing file (or the single channel without one),
    for the job's account and region (the event's: a hub gets member accounts' events)."""
    # route_table() refuses a table that names channels with a webhook (ConfigError), and reads
    # the hub's settings first: a bad MEMBER_ROLE_ARN or ACCOUNT_NAMES fails here, named.
    hub_settings()
    return decide_with_actions(route_table(), job.job_queue_name, job.job_name, routing_status(job),
                               account=job.account, region=job.region)


def _route_and_post(job: JobStateChange, build: MessageBuilder, deadline: float) -> _Ending:
    """Route, build, claim, deliver, record: the steps after parsing; raises what should be retried."""
    decision = decide(job)
    if not decision.post:
        return _Ending("skipped", route=decision.route, reason=decision.reason)
    # Snoozes, claims and conversations live in the state table: without one (a webhook stage)
    # there is nothing to look up, and their modules stay out of the cold start.
    stateful = state_settings() is not None
    if stateful:
        from chalicelib.deciding.snoozes import Scope, snoozed

        snooze = snoozed(job.job_queue_name, job.job_name, Scope.of(job.job_arn, job.account, job.region))
        if snooze is not None:
            return _Ending("skipped", route=decision.route, reason=_counted(snooze))
    # The hub's account line, then the buttons (after the link buttons), as the builder left room.
    labelled = with_account_label(build(job), job, account_names(), hub=hub_settings().configured)
    message = with_action_buttons(labelled, job, offer_for(job, signing_on=actions_on(),
                                                           allowed=bool(decision.actions_allow)))
    if not stateful:
        conversation_mode()  # says once, in the log, why each event posts its own message
        receipt = deliver(with_mentions(message, decision.mentions), slack_settings(), channel=decision.channel)
        return _Ending("posted", route=decision.route, slack_attempts=receipt.attempts)
    from chalicelib.deciding import dedup

    # Claimed last, just before posting, so a claim is held for as short a time as possible.
    # A valid envelope has a non-empty string id (from_event checks), so dedup can key on it.
    claim = dedup.claim(job.event_id or "")
    if not claim.should_post:
        return _Ending("skipped", route=decision.route, reason=DUPLICATE)
    if conversation_mode().on:
        conversed = _converse_claimed(job, message, decision, claim, deadline)
        if conversed.outcome == "skipped":
            _release_quietly(claim)  # nothing was posted for this event: a retry may decide again
            return _Ending("skipped", route=decision.route, reason=conversed.reason)
        return _Ending("posted", route=decision.route, reason=conversed.reason, slack_attempts=conversed.slack_attempts,
                       dedup=_record_posted(claim), conversation=conversed.outcome)
    receipt = _deliver_claimed(with_mentions(message, decision.mentions), decision, claim)
    return _Ending("posted", route=decision.route, slack_attempts=receipt.attempts, dedup=_record_posted(claim))


def _converse_claimed(job: JobStateChange, message: SlackMessage, decision: Decision, claim: Claim,
                      deadline: float) -> Conversed:
    """The event in its job's conversation; when that fails, free the claim so Lambda's retry can, and raise."""
    # Imported here: only a bot token with the state table converses, so the webhook stage's
    # cold start skips the conversation, storm and acknowledgement modules.
    from chalicelib.deciding.acks import acknowledged
    from chalicelib.deciding.storms import grouping_for
    from chalicelib.delivering.conversation import Conversation, converse
    from chalicelib.delivering.pacing import configured_intervals, table_pacer

    slack = slack_settings()
    table = state_table()
    assert table is not None  # conversation_mode() is on only with a table
    paced = Slack(slack, pacer=table_pacer(table, intervals=configured_intervals()))
    try:
        # An acknowledged job's later messages mention no one.
        mentions = () if decision.mentions and acknowledged(job.job_arn) else decision.mentions
        conversation = Conversation(slack=paced, table=table, channel=decision.channel or slack.channel or "",
                                    mentions=mentions, grouping=grouping_for(decision))
        return converse(job, message, conversation, deadline=deadline)
    except Exception:
        _release_quietly(claim)
        raise


def _deliver_claimed(message: SlackMessage, decision: Decision, claim: Claim) -> DeliveryReceipt:
    """Post ``message``; when that fails, free the claim so Lambda's retry can post, and raise."""
    try:
        return deliver(message, slack_settings(), channel=decision.channel)
    except Exception:
        _release_quietly(claim)
        raise


def _counted(snooze: Snooze) -> str:
    """Why a snoozed event is skipped, for its log line; the skip is counted for the digest (a
    failing count is said, not raised: the event is rightly not posted either way)."""
    from chalicelib.deciding.snoozes import count_skip, describe_snooze

    reason = describe_snooze(snooze)["reason"]
    try:
        count_skip(snooze)
    except StateError as error:
        return f"{reason} (not counted for the digest: {error})"
    return str(reason)


def _record_posted(claim: Claim) -> str | None:
    """Mark the claim posted; a note for the log line when that failed (never raise after posting:
    Lambda's retry would post the message again)."""
    from chalicelib.deciding import dedup

    try:
        dedup.mark_posted(claim)
    except dedup.DedupError as error:
        return f"posted, but not recorded as posted: {error}"
    return None


def _release_quietly(claim: Claim) -> None:
    """Free the claim so Lambda's retry can post; if that fails too, the claim's lease ends it."""
    from chalicelib.deciding import dedup

    try:
        dedup.release(claim)
    except dedup.DedupError as error:
        log_line(logging.WARNING, event_id=claim.event_id, dedup=f"claim not released (its lease will end): {error}")


def _identity(job: JobStateChange) -> dict[str, Any]:
    return {"event_id": job.event_id, "job_id": job.job_id, "status": routing_status(job)}


def _log_ending(identity: Mapping[str, Any], ending: _Ending, started: float) -> None:
    """The event's one log line. A skip is not timed: only posting and failing cost time worth reading."""
    duration = None if ending.outcome == "skipped" else round((time.monotonic() - started) * 1000)
    log_line(ending.level, **identity, route=ending.route, outcome=ending.outcome, reason=ending.reason,
             slack_attempts=ending.slack_attempts, duration_ms=duration, dedup=ending.dedup,
             conversation=ending.conversation)


# Off Lambda (chalice.test, the demo, the benches) no context says how long is left: as on the
# deployed stages (lambda_timeout 60 s), less the margin.
DEFAULT_INVOCATION_SECONDS = 57.0


def _deadline(event: Any) -> float:
    found = invocation_deadline(event)
    return time.monotonic() + DEFAULT_INVOCATION_SECONDS if found is None else found


# An id from a rejected envelope is shown for searching, never trusted: bounded, any type.
_LOGGED_ID_LIMIT = 200


def _id_for_log(raw: Any) -> str:
    event_id = raw.get("id") if isinstance(raw, Mapping) else None
    if event_id is None or event_id == "":
        return "(no id)"
    # reprlib: bounded in depth and length, so a 1,000-deep list cannot raise RecursionError here.
    text = event_id if isinstance(event_id, str) else reprlib.repr(event_id)
    return text[:_LOGGED_ID_LIMIT]
