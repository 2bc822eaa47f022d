"""A worked example of a fork's own handler: tell people when a ``critical-*`` job starts.

The handler in app.py selects the events with its pattern (RUNNING, name prefix
``critical-``), so this module only says what the message looks like. Copy it to start your
own; see "Add your own handler" in the README.
"""

from __future__ import annotations

from slack_sdk.models.blocks import ContextBlock, HeaderBlock, MarkdownTextObject, PlainTextObject

from chalicelib.composing.messages import SlackMessage, bounded_blocks, build_job_state_message
from chalicelib.composing.mrkdwn import FALLBACK_TEXT_LIMIT, HEADER_TEXT_LIMIT, safe_mrkdwn, safe_plain
from chalicelib.reading.event import JobStateChange


def build_critical_running_message(job: JobStateChange) -> SlackMessage:
    """The standard job message with a louder header and a note on what comes next."""
    standard = build_job_state_message(job)
    name = job.job_name or job.job_id or "unknown job"
    header = HeaderBlock(text=PlainTextObject(
        text=safe_plain(f":rotating_light: Critical job started: {name}", HEADER_TEXT_LIMIT), emoji=True))
    started = f"Started at {job.started_at:%Y-%m-%d %H:%M:%S} UTC. " if job.started_at else ""
    note = ContextBlock(elements=[MarkdownTextObject(
        text=f"{started}Its FAILED or SUCCEEDED message will follow when it ends.")])
    text = ":rotating_light: " + safe_mrkdwn(f"Critical job started: {name} in {job.job_queue_name or 'unknown queue'}",
                                             FALLBACK_TEXT_LIMIT - 20)
    blocks = (header, *standard.blocks[1:-1], note, standard.blocks[-1])
    return SlackMessage(text=text, blocks=bounded_blocks(blocks))
