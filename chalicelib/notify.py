"""The path every handler takes: event in, route decided, message built and delivered.

Each event handled leaves one structured (JSON) log line: event id, job id, status, route,
outcome (posted / skipped and why / failed and why), Slack attempts and duration. Never the
token, the webhook URL or the message body.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Literal, Mapping, Optional

from chalicelib.composing.messages import SlackMessage, with_mentions
from chalicelib.core.config import ConfigError, slack_settings
from chalicelib.core.logline import log_line
from chalicelib.deciding import dedup
from chalicelib.deciding.routing import SINGLE_CHANNEL, Decision, route_table
from chalicelib.delivering.slack import deliver
from chalicelib.reading.event import JOB_STATE_CHANGE, JobStateChange, NotAJobStateChange, raw_event

MessageBuilder = Callable[[JobStateChange], SlackMessage]
Outcome = Literal["posted", "skipped"]


def decide(job: JobStateChange) -> Decision:
    """Where the job's message goes, by the routing file (or the single channel without one)."""
    table = route_table()
    if table is None:
        return SINGLE_CHANNEL
    if table.sets_channels and slack_settings().mode == "webhook":
        raise ConfigError(f"{table.source} names channels, but a webhook always posts to its own "
                          "channel: use a bot token (SLACK_BOT_TOKEN_PARAM) to route to several channels")
    return table.decide(job.job_queue_name, job.job_name, job.routing_status)


def notify(event: Any, build: MessageBuilder, detail_type: str = JOB_STATE_CHANGE) -> Outcome:
    """Route ``event``, build its message with ``build`` and post it to Slack.

    An event of another kind than ``detail_type`` is logged as an error and skipped
    (retrying it would fail the same way). Configuration and delivery errors are logged
    and raised, so Lambda retries the event.
    """
    started = time.monotonic()
    raw = raw_event(event)
    try:
        job = JobStateChange.from_event(raw, detail_type)
    except NotAJobStateChange as error:
        log_line(logging.ERROR, event_id=_id_for_log(raw), outcome="skipped",
                 reason=f"not a {detail_type} event: {error}")
        return "skipped"
    # A valid envelope has a non-empty string id (from_event checks), so dedup can key on it.
    event_id = job.event_id
    common = {"event_id": event_id, "job_id": job.job_id, "status": job.routing_status}
    missing = job.missing_fields()
    if missing:
        log_line(logging.WARNING, **common, warning=f"detail lacks {', '.join(missing)}; notifying with what is there")
    posted_note: Optional[str] = None
    try:
        decision = decide(job)
        if not decision.post:
            log_line(logging.INFO, **common, route=decision.route, outcome="skipped", reason=decision.reason)
            return "skipped"
        message = with_mentions(build(job), decision.mentions)
        # Claimed last, just before posting, so a claim is held for as short a time as possible.
        if not dedup.claim(event_id or ""):
            log_line(logging.INFO, **common, route=decision.route, outcome="skipped",
                     reason="already posted (a duplicate delivery of this event id)")
            return "skipped"
        try:
            receipt = deliver(message, slack_settings(), channel=decision.channel)
        except Exception:
            _release_quietly(event_id or "")
            raise
    except Exception as error:
        # One searchable line naming the event; Lambda logs the traceback and retries.
        log_line(logging.ERROR, **common, outcome="failed", reason=f"{type(error).__name__}: {error}",
                 duration_ms=round((time.monotonic() - started) * 1000))
        raise
    try:
        dedup.mark_posted(event_id or "")
    except dedup.DedupError as error:
        # Never raise after posting: Lambda's retry would post the message again.
        posted_note = f"posted, but not recorded as posted: {error}"
    log_line(logging.INFO, **common, route=decision.route, outcome="posted", slack_attempts=receipt.attempts,
             duration_ms=round((time.monotonic() - started) * 1000), dedup=posted_note)
    return "posted"


# An id from a rejected envelope is shown for searching, never trusted: bounded, any type.
_LOGGED_ID_LIMIT = 200


def _id_for_log(raw: Any) -> str:
    event_id = raw.get("id") if isinstance(raw, Mapping) else None
    if event_id is None or event_id == "":
        return "(no id)"
    text = event_id if isinstance(event_id, str) else repr(event_id)
    return text[:_LOGGED_ID_LIMIT]


def _release_quietly(event_id: str) -> None:
    """Free the claim so Lambda's retry can post; if that fails too, the claim's lease ends it."""
    try:
        dedup.release(event_id)
    except dedup.DedupError as error:
        log_line(logging.WARNING, event_id=event_id, dedup=f"claim not released (its lease will end): {error}")
