"""``snooze`` and ``unsnooze``: no messages for a job name in a queue until a time; anyone may.

The select's option value is ``<duration>|<job ARN>`` (``1h``, ``4h``, ``24h``, ``7d``). The
queue and job name are read from DescribeJobs (the clicked message's text is not trusted), and
the snooze recorded (deciding/snoozes.py). ``unsnooze``'s value is the job ARN whose message set
the snooze: it needs no Batch call (Batch may have forgotten the job by then).
"""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.composing.after_click import after_snooze, after_unsnooze
from chalicelib.core.state_table import StateError
from chalicelib.deciding.snoozes import DURATIONS, Snoozes, TooManySnoozes
from chalicelib.interactions.clicks import Click
from chalicelib.interactions.endpoint import ActionAnswer
from chalicelib.interactions.retry import (
    Refused,
    click_batch_client,
    clicked_at,
    describe_clicked_job,
    finish,
    job_arn_of,
    replacement,
    require_table,
    state_failure,
)

NOT_A_SNOOZE = "This is not a snooze batch-notify offers (1h, 4h, 24h or 7d): nothing was done."


def snooze(click: Click) -> ActionAnswer:
    """Handle ``snooze``: snooze the clicked job's name in its queue for the chosen duration."""
    duration, _, job_arn = (click.action.value or "").partition("|")
    try:
        if duration not in DURATIONS:
            raise Refused(NOT_A_SNOOZE, "not a snooze")
        arn = job_arn_of(job_arn)
        table = require_table()
        job = describe_clicked_job(arn, click_batch_client(arn), doing="snooze")
        if not job.queue or not job.job_name:
            raise Refused("AWS Batch did not say the job's queue and name: nothing was done.", "no name")
        snoozed = Snoozes(table).set(job.queue, job.job_name, DURATIONS[duration], click.user_id, arn.arn)
    except Refused as refused:
        return finish(click, job_arn, refused.outcome, ActionAnswer(ephemeral=refused.text))
    except TooManySnoozes as error:
        return finish(click, job_arn, "too many snoozes", ActionAnswer(ephemeral=f"{error}: nothing was done."))
    except StateError as error:
        return finish(click, job_arn, "state table failed", state_failure(error))
    blocks = after_snooze(click.message_blocks, click.user_id, datetime.fromtimestamp(snoozed.until, UTC),
                          job.job_name, job.queue, arn.arn, at=clicked_at())
    answer = ActionAnswer(replacement=replacement(blocks, f"Snoozed by <@{click.user_id}>"))
    return finish(click, arn.arn, f"snoozed {duration}", answer)


def unsnooze(click: Click) -> ActionAnswer:
    """Handle ``unsnooze``: end the snooze the clicked message set."""
    job_arn = click.action.value
    try:
        arn = job_arn_of(job_arn)
        ended = Snoozes(require_table()).clear_for_job(arn.arn)
    except Refused as refused:
        return finish(click, job_arn, refused.outcome, ActionAnswer(ephemeral=refused.text))
    except StateError as error:
        return finish(click, job_arn, "state table failed", state_failure(error))
    blocks = after_unsnooze(click.message_blocks, click.user_id, at=clicked_at())
    answer = ActionAnswer(replacement=replacement(blocks, f"Unsnoozed by <@{click.user_id}>"))
    return finish(click, arn.arn, "unsnoozed" if ended else "no snooze to end", answer)
