"""Post the scheduled handlers' messages (the sweep's reports, the digests), one after another."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chalicelib.composing.messages import SlackMessage
from chalicelib.core.config import SlackSettings
from chalicelib.core.logline import log_line
from chalicelib.delivering.slack import PermanentDeliveryError, deliver

# One message of a scheduled handler: its log fields, how to build it, and its channel.
ScheduledPost = tuple[Mapping[str, Any], Callable[[], SlackMessage], str | None]


def post_each(posts: Iterable[ScheduledPost], settings: SlackSettings) -> tuple[int, int]:
    """Build and post several messages (the sweep's reports, the digests); return (posted, failed).

    One message's failure is logged and does not cost the others theirs; the caller decides
    whether to raise (only when nothing went out, so a retry cannot post anything twice).
    """
    posted = failed = 0
    for fields, build, channel in posts:
        try:
            receipt = deliver(build(), settings, channel=channel)
        except Exception as error:
            failed += 1
            log_line(logging.ERROR, **fields, outcome="failed", reason=f"{type(error).__name__}: {error}",
                     permanent=isinstance(error, PermanentDeliveryError) or None)
            continue
        posted += 1
        log_line(logging.INFO, **fields, outcome="posted", slack_attempts=receipt.attempts)
    return posted, failed
