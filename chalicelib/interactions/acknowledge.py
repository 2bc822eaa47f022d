"""``acknowledge``: anyone in the channel says they are on it; the job's later events mention no one.

No Batch call: the ARN is only checked for its shape and recorded (``ack#<ARN>``,
deciding/acks.py); the message then shows who acknowledged and when.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.composing.after_click import after_acknowledge
from chalicelib.core.state_table import StateError
from chalicelib.deciding.acks import Acks
from chalicelib.interactions.clicks import Click
from chalicelib.interactions.endpoint import ActionAnswer
from chalicelib.interactions.retry import Refused, finish, job_arn_of, replacement, require_table, state_failure


def acknowledge(click: Click) -> ActionAnswer:
    """Handle ``acknowledge``: record who acknowledged the job, and show it on the message."""
    job_arn = click.action.value
    try:
        arn = job_arn_of(click.action.value)
        ack = Acks(require_table()).record(arn.arn, click.user_id)
    except Refused as refused:
        return finish(click, job_arn, refused.outcome, ActionAnswer(ephemeral=refused.text))
    except StateError as error:
        return finish(click, job_arn, "state table failed", state_failure(error))
    blocks = after_acknowledge(click.message_blocks, click.user_id, datetime.fromtimestamp(ack.at, UTC),
                               job_arn=arn.arn)
    answer = ActionAnswer(replacement=replacement(blocks, f"Acknowledged by <@{click.user_id}>"))
    return finish(click, arn.arn, "acknowledged", answer)
