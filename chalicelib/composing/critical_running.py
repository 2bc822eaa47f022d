"""A worked example of a fork's own handler: tell people when a ``critical-*`` job starts.

The handler in app.py selects the events with its pattern (RUNNING, name prefix
``critical-``), so this module only says what the message looks like: the standard message's
parts with a louder header and notification, and a note. Copy it to start your own; see
"Add your own handler" in the README.
"""

from __future__ import annotations

from dataclasses import replace

from chalicelib.composing.messages import SlackMessage, job_state_parts
from chalicelib.composing.mrkdwn import FALLBACK_TEXT_LIMIT, safe_mrkdwn
from chalicelib.reading.event import JobStateChange


def build_critical_running_message(job: JobStateChange) -> SlackMessage:
    """The standard job message with a louder header and a note on what comes next."""
    name = job.job_name or job.job_id or "unknown job"
    queue = job.job_queue_name or "unknown queue"
    started = f"Started at {job.started_at:%Y-%m-%d %H:%M:%S} UTC. " if job.started_at else ""
    return replace(
        job_state_parts(job),
        # The header is plain text, bounded when rendered; the notification line is mrkdwn: escape it.
        header=f":rotating_light: Critical job started: {name}",
        text=":rotating_light: " + safe_mrkdwn(f"Critical job started: {name} in {queue}", FALLBACK_TEXT_LIMIT - 20),
        notes=(f"{started}Its FAILED or SUCCEEDED message will follow when it ends.",),
    ).render()
