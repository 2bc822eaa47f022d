"""Post the scheduled handlers' messages (the sweep's reports, the digests), one after another."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from chalicelib.composing.messages import SlackMessage
from chalicelib.core.config import SlackSettings
from chalicelib.core.logline import log_line
from chalicelib.delivering.slack import Delivery, PermanentDeliveryError, deliver


class ScheduledPost(NamedTuple):
    """One message of a scheduled handler: its log fields, how to build it, its channel, and what
    to do once Slack took it (the sweep records which jobs its report shows)."""

    fields: Mapping[str, Any]
    build: Callable[[], SlackMessage]
    channel: str | None
    after: Callable[[Delivery], None] | None = None


# Less time than this left of the invocation: not worth starting a delivery.
MIN_DELIVERY_SECONDS = 2.0


def post_each(posts: Iterable[ScheduledPost], settings: SlackSettings,
              deadline: float | None = None) -> tuple[int, int]:
    """Build and post several messages (the sweep's reports, the digests); return (posted, failed).

    One message's failure is logged and does not cost the others theirs; the caller decides
    whether to raise (only when nothing went out, so a retry cannot post anything twice).
    ``deadline`` (``time.monotonic()``) is when the invocation must be done: each delivery's
    budget is cut to fit, so Lambda never kills a run half-posted (its retry would post the
    first messages twice); what no longer fits is logged as not posted.
    """
    posted = failed = 0
    for fields, build, channel, after in posts:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left < MIN_DELIVERY_SECONDS:
            failed += 1
            log_line(logging.ERROR, **fields, outcome="failed",
                     reason=f"not posted: {max(left, 0.0):.1f} s left of the invocation's time")
            continue
        budget = settings if left is None else replace(settings, delivery_budget=min(settings.delivery_budget, left))
        try:
            receipt = deliver(build(), budget, channel=channel)
        except Exception as error:
            failed += 1
            log_line(logging.ERROR, **fields, outcome="failed", reason=f"{type(error).__name__}: {error}",
                     permanent=isinstance(error, PermanentDeliveryError) or None)
            continue
        posted += 1
        log_line(logging.INFO, **fields, outcome="posted", slack_attempts=receipt.attempts,
                 recorded=None if after is None else _after_posting(after, receipt))
    return posted, failed


def _after_posting(after: Callable[[Delivery], None], receipt: Delivery) -> str:
    """Run ``after``; its failure is logged in the post's line, never raised (the message is out)."""
    try:
        after(receipt)
    except Exception as error:
        return f"not recorded: {type(error).__name__}: {error}"
    return "yes"
