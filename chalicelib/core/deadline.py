"""When an invocation must be done: Lambda's remaining time, less a margin for the last log line."""

from __future__ import annotations

import os
import time
from typing import Any

# Kept back from Lambda's timeout for the summary line and the return.
DEADLINE_MARGIN_SECONDS = 3.0


def invocation_deadline(event: Any) -> float | None:
    """When this invocation must be done (``time.monotonic()``), from Lambda's context; None without one.

    Only on Lambda itself (``AWS_LAMBDA_FUNCTION_NAME`` set): ``chalice.test`` and ``chalice local``
    hand every invocation a context of a fixed 3 s, whatever the stage's ``lambda_timeout``.
    """
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return None
    remaining = getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    try:
        millis = float(remaining())
    except (TypeError, ValueError):
        return None
    return time.monotonic() + millis / 1000 - DEADLINE_MARGIN_SECONDS
