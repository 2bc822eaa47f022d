"""Warm path: per-event handler time without HTTP, and events per second end to end.

    .venv/bin/python bench/warm_path.py [--rounds N] [--events N]

1. Parse + build: every fixture is handed to each handler whose deployed rule it reaches
   (asked of moto's EventBridge), called as Lambda calls it, with Slack delivery replaced by
   a recorder that serialises the message. That is the handler's whole own work: parse the
   event, decide the route, build the Block Kit message. Median and p99 per event.
2. End to end: the same events through ``chalice.test.Client(app, stage_name="local")``,
   posting over real HTTP to ``tools.slack_standin.SlackStandIn`` on 127.0.0.1 (webhook and
   bot token modes). The stand-in runs in this process, so its work shares the GIL with the
   handler's: a conservative figure.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from _common import load_event, median, percentile, quiet_app_logs, routed_fixtures, stage_environment, table
from chalice.test import Client

import chalicelib.notify
from app import app
from chalicelib.core import config
from tools.slack_standin import SlackStandIn

SLACK_VARIABLES = ("SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL_PARAM", "SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_PARAM",
                   "SLACK_CHANNEL", "SLACK_API_URL")


class _Context:
    function_name = "batch-notify-bench"
    memory_limit_in_mb = 128
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def set_slack(**values: str) -> None:
    for name in SLACK_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(values)
    config.reset()


def parse_and_build(pairs: list[tuple[str, str]], rounds: int) -> tuple[list[list[Any]], list[float]]:
    """Time each (fixture, handler) ``rounds`` times with delivery replaced by a recorder."""
    built: list[dict[str, Any]] = []

    def record(message: Any, settings: Any, **kwargs: Any) -> Any:
        built.append(message.to_dict())
        return SimpleNamespace(attempts=1, seconds=0.0)

    original = chalicelib.notify.deliver
    chalicelib.notify.deliver = record
    try:
        set_slack(SLACK_WEBHOOK_URL="http://127.0.0.1:9/services/T/B/unused")
        rows, everything = [], []
        for name, handler_name in pairs:
            event, handler = load_event(name), app.handler_map[handler_name]
            handler(event, _Context())  # first call untimed (lazy imports, caches)
            samples = []
            for _ in range(rounds):
                started = time.perf_counter_ns()
                handler(event, _Context())
                samples.append((time.perf_counter_ns() - started) / 1000)
            everything += samples
            rows.append([name, handler_name, f"{median(samples):.0f}", f"{percentile(samples, 99):.0f}"])
        if len(built) != len(pairs) * (rounds + 1):
            raise SystemExit(f"expected {len(pairs) * (rounds + 1)} messages built, got {len(built)}")
        return rows, everything
    finally:
        chalicelib.notify.deliver = original


def end_to_end(pairs: list[tuple[str, str]], count: int,
               configure: Callable[[SlackStandIn], None]) -> tuple[float, list[float]]:
    """Invoke ``count`` events (cycling through ``pairs``); return (events per second, per-event ms)."""
    events = [(load_event(name), handler) for name, handler in pairs]
    with SlackStandIn() as slack, Client(app, stage_name="local") as client:
        configure(slack)
        client.lambda_.invoke(events[0][1], events[0][0])  # warm-up
        latencies = []
        started = time.perf_counter()
        for i in range(count):
            event, handler = events[i % len(events)]
            t0 = time.perf_counter()
            client.lambda_.invoke(handler, event)
            latencies.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - started
        if len(slack.messages) != count + 1:
            raise SystemExit(f"expected {count + 1} Slack posts, the stand-in has {len(slack.messages)}")
    return count / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed calls per fixture and handler")
    parser.add_argument("--events", type=int, default=1000, help="end-to-end events per Slack mode")
    args = parser.parse_args()
    quiet_app_logs()
    os.environ.update(stage_environment("local"))
    pairs = routed_fixtures()

    rows, samples = parse_and_build(pairs, args.rounds)
    print(f"Parse + build (handler without HTTP), {args.rounds} timed calls per fixture, microseconds\n")
    rows.append(["all fixtures", "", f"{median(samples):.0f}", f"{percentile(samples, 99):.0f}"])
    print(table(["fixture", "handler", "median us", "p99 us"], rows))

    modes = {
        "webhook": lambda slack: set_slack(SLACK_WEBHOOK_URL=slack.webhook_url),
        "bot token": lambda slack: set_slack(SLACK_BOT_TOKEN=slack.bot_token, SLACK_CHANNEL="C0TESTCHAN",
                                             SLACK_API_URL=slack.api_url),
    }
    e2e_rows = []
    for mode, configure in modes.items():
        rate, latencies = end_to_end(pairs, args.events, configure)
        e2e_rows.append([mode, args.events, f"{rate:.0f}", f"{median(latencies):.2f}",
                         f"{percentile(latencies, 99):.2f}"])
    set_slack()
    print(f"\nEnd to end through chalice.test.Client to the Slack stand-in on 127.0.0.1 "
          f"({len(pairs)} routed fixtures, cycled)\n")
    print(table(["Slack mode", "events", "events/s", "median ms", "p99 ms"], e2e_rows))


if __name__ == "__main__":
    main()
