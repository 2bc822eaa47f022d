"""Helpers shared by the bench/ scripts (``make bench`` runs every bench/*.py not starting with _).

Nothing here reaches the internet: Slack is tools.slack_standin on 127.0.0.1, and the AWS SDK
of every child process is pointed at a closed loopback port (or at a moto_server on loopback).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EVENTS_DIR = ROOT / "tests" / "events"
CLOSED_PORT_URL = "http://127.0.0.1:9"
MB = 1024 * 1024


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table; numbers right-aligned, the rest left-aligned."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for cell, width in zip(cells, widths, strict=False):  # a short row pads nothing
            numeric = cell.lstrip("-").replace(",", "").replace(".", "", 1).rstrip("x%").isdigit()
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def event_files() -> list[Path]:
    return sorted(EVENTS_DIR.glob("*.json"))


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


def routed_fixtures() -> list[tuple[str, str]]:
    """(fixture name, handler) for every fixture and every handler whose rule it reaches.

    Asked of an emulated EventBridge bus (moto, in process) carrying the app's own rules.
    """
    from app import app
    from tools.eventbridge import EventBridgeRouter, registered_patterns

    pairs = []
    with EventBridgeRouter(registered_patterns(app)) as bus:
        for path in event_files():
            for handler in bus.matching(json.loads(path.read_text())):
                pairs.append((path.stem, handler))
    return pairs


def stage_environment(stage: str) -> dict[str, str]:
    """The environment variables chalice gives a stage's functions (top level, then the stage)."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {**config.get("environment_variables", {}),
            **config["stages"][stage].get("environment_variables", {})}


def child_env(stage: str = "local", **overrides: str) -> dict[str, str]:
    """An environment for a child process running the app like Lambda would, offline.

    This shell's AWS, Slack and proxy settings are dropped; the stage's variables from
    .chalice/config.json are set; the AWS SDK gets fake credentials and a closed endpoint
    (override ``AWS_ENDPOINT_URL`` to use a moto_server).
    """
    drop = ("AWS_", "SLACK_", "LOG_TAIL_")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(drop) and k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    env.update(stage_environment(stage))
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_ENDPOINT_URL=CLOSED_PORT_URL)
    env.update(overrides)
    return env


# A child process's way of calling a handler: as Lambda's runtime does, `app.<handler>(event,
# context)`, with a minimal context object.
LAMBDA_CONTEXT_SOURCE = '''
class _Context:
    function_name = "batch-notify-bench"
    memory_limit_in_mb = 128
    aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:batch-notify-bench"
    def get_remaining_time_in_millis(self):
        return 60000
'''


def quiet_app_logs() -> None:
    """Keep the app's log lines (and Python's last-resort handler) off the bench table."""
    import logging

    logger = logging.getLogger("batch_notify")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


