"""``terminate_job``: TerminateJob on a job from a stuck report or a queue-blocked warning, once.

As a retry (interactions/retry.py): the ARN checked, the job read with DescribeJobs in its
account and region (a member account's through its member role), the clicker
allowed by the job's route (the route of a stuck report or of a blocked warning: both show the
button), the claim ``action#<ARN>#terminate`` taken, then TerminateJob with a reason naming the
Slack user. A job already finished is not terminated (nothing to stop).
"""

from __future__ import annotations

import logging

from chalicelib.composing.after_click import after_terminate
from chalicelib.composing.mrkdwn import safe_mrkdwn, strip_hidden
from chalicelib.core.logline import log_line
from chalicelib.core.state_table import StateError, StateTable
from chalicelib.deciding.action_claims import ActionClaims
from chalicelib.interactions.clicks import Click
from chalicelib.interactions.endpoint import ActionAnswer
from chalicelib.interactions.retry import (
    FINAL_STATUSES,
    ClickedJob,
    Refused,
    already,
    aws_refusal,
    click_batch_client,
    clicked_at,
    describe_clicked_job,
    finish,
    job_arn_of,
    refuse_unless_allowed,
    replacement,
    require_table,
    state_failure,
)

# TerminateJob's reason shows in the console and in the job's statusReason: short, and ours.
MAX_REASON_CHARS = 200


def terminate_reason(click: Click) -> str:
    """``Terminated from Slack by <user name> (<user id>)``, bounded, without control characters."""
    name = "".join(c for c in strip_hidden(click.user_name) if c.isprintable())[:80] or "a Slack user"
    return f"Terminated from Slack by {name} ({click.user_id})"[:MAX_REASON_CHARS]


def terminate_job(click: Click) -> ActionAnswer:
    """Handle ``terminate_job``: terminate the clicked job, once, if the clicker may."""
    job_arn = click.action.value
    try:
        arn = job_arn_of(click.action.value)
        table = require_table()
        job = describe_clicked_job(arn, click_batch_client(arn), doing="terminate")
        refuse_unless_allowed(click, job, ("STUCK", "BLOCKED"), "terminate")
        if job.status in FINAL_STATUSES:
            raise Refused(f"This job already finished ({safe_mrkdwn(job.status, 20)}): nothing to terminate.",
                          "already finished")
        answer = _terminate_claimed(click, job, table)
    except Refused as refused:
        return finish(click, job_arn, refused.outcome, ActionAnswer(ephemeral=refused.text))
    except StateError as error:
        return finish(click, job_arn, "state table failed", state_failure(error))
    return finish(click, job_arn, "terminated", answer)


def _terminate_claimed(click: Click, job: ClickedJob, table: StateTable) -> ActionAnswer:
    claims = ActionClaims(table)
    claim = claims.claim(job.arn.arn, "terminate", click.user_id)
    if not claim.mine:
        raise Refused(already(claim), "already terminated" if claim.state == "done" else "being terminated")
    reason = terminate_reason(click)
    try:
        batch = click_batch_client(job.arn)  # the job's account and region; timeouts that fit what is left now
        batch.terminate_job(jobId=job.arn.arn, reason=reason)
    except Refused:
        claims.release(claim)
        raise
    except Exception as error:
        claims.release(claim)
        raise aws_refusal(error, "batch:TerminateJob", "terminate the job") from None
    try:
        claims.done(claim)
    except StateError as error:
        log_line(logging.ERROR, error="terminated a job but could not record its claim done", job=claim.job_arn,
                 reason=str(error)[:300])
    blocks = after_terminate(click.message_blocks, click.user_id, job.arn.arn, reason, at=clicked_at())
    return ActionAnswer(replacement=replacement(blocks, f"Terminated by <@{click.user_id}>"))
