"""An array-job storm: 10,000 FAILED children and their parent, through the real patterns and handlers.

    .venv/bin/python bench/storm.py [--children N]

Every event goes on an emulated EventBridge bus (moto) carrying the app's own rules; each
event a rule delivers is handed to that rule's handler through chalice.test, posting to a
Slack stand-in on 127.0.0.1. Prints events in, Lambda invocations and Slack posts: with the
children filtered in the pattern, expected N + 1 / 1 / 1.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalice.test import Client  # noqa: E402

from app import app  # noqa: E402
from chalicelib.core import config  # noqa: E402
from tests.conftest import load_event  # noqa: E402
from tools.eventbridge import EventBridgeRouter, registered_patterns  # noqa: E402
from tools.slack_standin import SlackStandIn  # noqa: E402


def storm(children: int) -> list[dict]:
    """``children`` FAILED array children plus their FAILED parent, as Batch would emit them."""
    child, parent = load_event("array_child_failed"), copy.deepcopy(load_event("array_parent_failed"))
    parent_id = parent["detail"]["jobId"]
    events = []
    for index in range(children):
        event = copy.deepcopy(child)
        event["id"] = f"storm-{index}"
        event["detail"]["jobId"] = f"{parent_id}:{index}"
        event["detail"]["arrayProperties"] = {"index": index}
        events.append(event)
    parent["detail"]["arrayProperties"] = {"size": children, "statusSummary": {"FAILED": children, "SUCCEEDED": 0}}
    return [*events, parent]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=10_000)
    args = parser.parse_args()
    events = storm(args.children)
    started = time.monotonic()
    with SlackStandIn() as slack, EventBridgeRouter(registered_patterns(app)) as bus, \
            Client(app, stage_name="local") as client:
        os.environ["SLACK_WEBHOOK_URL"] = slack.webhook_url
        config.reset()
        delivered = bus.deliver_all(events)
        invocations = 0
        for handler, handler_events in delivered.items():
            for event in handler_events:
                client.lambda_.invoke(handler, event)
                invocations += 1
        posts = len(slack.messages)
    elapsed = time.monotonic() - started
    print(f"{'events in':<22}{'Lambda invocations':<22}{'Slack posts':<14}{'wall time (s)':<14}")
    print(f"{len(events):<22,}{invocations:<22,}{posts:<14,}{elapsed:<14.1f}")
    print(f"(per handler: {', '.join(f'{h}={len(e)}' for h, e in delivered.items())})")


if __name__ == "__main__":
    main()
