"""The path every handler takes: event in, message built, message delivered, one log line."""

from __future__ import annotations

import logging
from typing import Any, Callable, Literal, Mapping

from chalicelib.config import slack_settings
from chalicelib.event import JobStateChange, NotAJobStateChange
from chalicelib.messages import SlackMessage
from chalicelib.slack import deliver

log = logging.getLogger("batch_notify")

MessageBuilder = Callable[[JobStateChange], SlackMessage]
Outcome = Literal["posted", "skipped"]


def raw_event(event: Any) -> Any:
    """The raw event dict, whether given a Chalice ``CloudWatchEvent`` or the dict itself."""
    to_dict = getattr(event, "to_dict", None)
    return to_dict() if callable(to_dict) else event


def notify(event: Any, build: MessageBuilder) -> Outcome:
    """Build a message for ``event`` with ``build`` and post it to Slack.

    An event that is not a job state change is logged as an error and skipped (retrying it
    would fail the same way). Delivery and configuration errors raise, so Lambda retries.
    """
    raw = raw_event(event)
    event_id = raw.get("id") if isinstance(raw, Mapping) else None
    try:
        job = JobStateChange.from_event(raw)
    except NotAJobStateChange as error:
        log.error("event %s skipped: not a Batch job state change: %s", event_id or "(no id)", error)
        return "skipped"
    missing = job.missing_fields()
    if missing:
        log.warning("event %s: detail lacks %s; notifying with what is there", event_id, ", ".join(missing))
    message = build(job)
    try:
        receipt = deliver(message, slack_settings())
    except Exception as error:
        # One searchable line naming the event; Lambda logs the traceback and retries.
        log.error("event %s: job %s (%s) not delivered: %s", event_id, job.job_id, job.status, error)
        raise
    log.info("event %s: posted job %s (%s) to Slack in %d attempt(s), %.2fs",
             event_id, job.job_id, job.status, receipt.attempts, receipt.seconds)
    return "posted"
