"""The app's log: one JSON object per line, so CloudWatch Logs Insights can filter on fields."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("batch_notify")


def log_line(level: int, **fields: Any) -> None:
    """Log ``fields`` (those not ``None``) as one JSON line. Never pass a secret or a message body."""
    log.log(level, json.dumps({k: v for k, v in fields.items() if v is not None}, default=str))
