"""A burst of distinct FAILED events against Slack's rate limit: is each one posted exactly once?

    .venv/bin/python bench/burst.py [--events 300] [--concurrency 10] [--rate 1.0]
                                    [--retries 2] [--retry-delays 60,120]

Each worker thread is one Lambda execution environment (``--concurrency``: the function's
reserved concurrency): it takes the next event from Lambda's asynchronous queue and invokes
the real ``on_job_failed`` handler through ``chalice.test``, which posts with slack-sdk to a
Slack stand-in on 127.0.0.1 enforcing ``--rate`` messages per second per channel (429 +
Retry-After beyond it). As Lambda does, an invocation that raises is queued again after
``--retry-delays`` (Lambda: 1 then 2 minutes), at most ``--retries`` times; an event that
fails every attempt would go to the on-failure destination (the dead-letter queue).

Prints the wall time, 429s, invocations and re-invocations, and per event how many messages
Slack received (exactly once is the goal; 0 means it was dead-lettered).
"""

from __future__ import annotations

import argparse
import copy
import heapq
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHANNEL = "C0BURST0001"
TOKEN = "xoxb-burst-not-a-real-token"
HANDLER = "on_job_failed"
STAGE = "local"
# Batch job ids are UUIDs; these are recognisable in a posted message (its console links).
_JOB_ID = "b0257000-0000-4000-8000-{:012d}"
_JOB_ID_PATTERN = re.compile(r"b0257000-0000-4000-8000-(\d{12})")


def burst_events(count: int) -> list[dict[str, Any]]:
    """``count`` distinct FAILED events: tests/events/ec2_failed.json with its own event id,
    job id, ARN and name each, as Batch emits them when many jobs fail at once."""
    template = json.loads((ROOT / "tests" / "events" / "ec2_failed.json").read_text())
    old_id = template["detail"]["jobId"]
    events = []
    for index in range(count):
        event = copy.deepcopy(template)
        job_id = _JOB_ID.format(index)
        event["id"] = f"0b257000-0000-4000-9000-{index:012d}"
        event["detail"]["jobId"] = job_id
        event["detail"]["jobName"] = f"burst-shard-{index:04d}"
        event["detail"]["jobArn"] = event["detail"]["jobArn"].replace(old_id, job_id)
        event["resources"] = [r.replace(old_id, job_id) for r in event.get("resources", [])]
        events.append(event)
    return events


@dataclass
class BurstResult:
    """What happened to a burst."""

    events: int
    concurrency: int
    rate: float
    wall_seconds: float
    invocations: int
    rate_limited: int  # HTTP 429 answers Slack sent
    posts_per_event: dict[int, int]  # event index -> messages Slack accepted for its job
    failures: Counter = field(default_factory=Counter)  # exception type of each failed invocation
    dead_lettered: list[int] = field(default_factory=list)  # events that failed every attempt
    stray_messages: int = 0  # accepted messages naming no burst job (should be 0)

    @property
    def reinvocations(self) -> int:
        return self.invocations - self.events

    @property
    def delivered_once(self) -> int:
        return sum(1 for n in self.posts_per_event.values() if n == 1)

    @property
    def duplicated(self) -> int:
        return sum(1 for n in self.posts_per_event.values() if n > 1)

    @property
    def missing(self) -> int:
        return sum(1 for n in self.posts_per_event.values() if n == 0)

    @property
    def exactly_once(self) -> bool:
        return self.delivered_once == self.events and self.stray_messages == 0


class AsyncQueue:
    """Lambda's asynchronous event queue: ready events in order, retries after a delay."""

    def __init__(self, events: Sequence[dict[str, Any]]) -> None:
        self._heap: list[tuple[float, int, int, int]] = []  # (ready at, seq, event index, attempt)
        self._seq = 0
        self._open = len(events)  # events neither posted nor given up on
        self._cond = threading.Condition()
        now = time.monotonic()
        for index in range(len(events)):
            self._push(now, index, 1)

    def _push(self, ready_at: float, index: int, attempt: int) -> None:
        heapq.heappush(self._heap, (ready_at, self._seq, index, attempt))
        self._seq += 1

    def take(self) -> tuple[int, int] | None:
        """The next ready (event index, attempt number), or None when every event is settled."""
        with self._cond:
            while True:
                if self._open == 0:
                    return None
                if self._heap:
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        _, _, index, attempt = heapq.heappop(self._heap)
                        return index, attempt
                    self._cond.wait(wait)
                else:
                    self._cond.wait()

    def retry(self, index: int, attempt: int, delay: float) -> None:
        with self._cond:
            self._push(time.monotonic() + delay, index, attempt)
            self._cond.notify_all()

    def settle(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify_all()


def run_burst(events: Sequence[dict[str, Any]], *, concurrency: int, rate: float, retries: int = 2,
              retry_delays: Sequence[float] = (60.0, 120.0)) -> BurstResult:
    """Deliver ``events`` to ``on_job_failed`` from ``concurrency`` threads, Slack allowing
    ``rate`` messages per second per channel; retry a failed invocation like Lambda does.

    Sets the ``local`` stage's variables and bot-mode Slack settings in ``os.environ`` for
    the burst and restores it after (chalice.test swaps ``os.environ`` for each invocation,
    which is not thread-safe; with the stage's variables already set every swap is alike).
    """
    from chalice.test import Client

    from app import app
    from chalicelib.core import config
    from tools.slack_standin import SlackStandIn

    stage = json.loads((ROOT / ".chalice" / "config.json").read_text())
    saved = os.environ
    os.environ = os.environ.copy()  # type: ignore[assignment]  # noqa: B003 - a private copy, restored below
    queue = AsyncQueue(events)
    lock = threading.Lock()
    failures: Counter = Counter()
    dead: list[int] = []
    invocations = 0
    try:
        with SlackStandIn(bot_token=TOKEN, channels=(CHANNEL,), rate_limit_per_channel=rate) as slack:
            os.environ.update({**stage.get("environment_variables", {}),
                               **stage["stages"][STAGE].get("environment_variables", {})})
            os.environ.update(SLACK_BOT_TOKEN=TOKEN, SLACK_CHANNEL=CHANNEL, SLACK_API_URL=slack.api_url,
                              # Nothing here may reach AWS: a closed loopback port if anything tries.
                              AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="testing",
                              AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
            for name in ("SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL_PARAM", "SLACK_BOT_TOKEN_PARAM", "NOTIFY_ROUTES"):
                os.environ.pop(name, None)
            config.reset()
            client = Client(app, stage_name=STAGE)
            start = threading.Barrier(concurrency)  # the burst: every environment busy at once

            def lambda_environment() -> None:
                nonlocal invocations
                start.wait()
                while (job := queue.take()) is not None:
                    index, attempt = job
                    with lock:
                        invocations += 1
                    try:
                        client.lambda_.invoke(HANDLER, events[index])
                    except Exception as error:  # the function's error: Lambda retries it later
                        with lock:
                            failures[type(error).__name__] += 1
                        if attempt <= retries:
                            queue.retry(index, attempt + 1, retry_delays[min(attempt, len(retry_delays)) - 1])
                            continue
                        with lock:
                            dead.append(index)  # to the on-failure destination
                    queue.settle()

            started = time.monotonic()
            threads = [threading.Thread(target=lambda_environment, name=f"lambda-{i}") for i in range(concurrency)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.monotonic() - started
            posts: dict[int, int] = dict.fromkeys(range(len(events)), 0)
            stray = 0
            for message in slack.messages:
                found = {int(n) for n in _JOB_ID_PATTERN.findall(json.dumps(message))}
                if len(found) != 1:
                    stray += 1
                    continue
                posts[found.pop()] += 1
            rate_limited = slack.rate_limited_count
    finally:
        os.environ = saved  # type: ignore[assignment]  # noqa: B003
        config.reset()
    return BurstResult(events=len(events), concurrency=concurrency, rate=rate, wall_seconds=wall,
                       invocations=invocations, rate_limited=rate_limited, posts_per_event=posts,
                       failures=failures, dead_lettered=sorted(dead), stray_messages=stray)


def report(result: BurstResult, retry_delays: Sequence[float]) -> Iterator[str]:
    """The bench's printout."""
    from bench._common import table

    delays = ", ".join(f"{d:g}" for d in retry_delays)
    yield (f"{result.events} distinct FAILED events -> on_job_failed; {result.concurrency} concurrent Lambda "
           f"environments; Slack allows {result.rate:g} msg/s per channel (one channel); "
           f"Lambda retries after {delays} s")
    yield ""
    yield table(
        ["events", "concurrency", "wall (s)", "429s", "invocations", "re-invocations",
         "posted once", "duplicated", "dead-lettered"],
        [[result.events, result.concurrency, f"{result.wall_seconds:.1f}", result.rate_limited,
          result.invocations, result.reinvocations, result.delivered_once, result.duplicated,
          len(result.dead_lettered)]])
    if result.failures:
        yield "failed invocations: " + ", ".join(f"{name} x{n}" for name, n in result.failures.most_common())
    yield ("exactly once: yes" if result.exactly_once else
           f"exactly once: NO ({result.missing} never posted, {result.duplicated} posted more than once, "
           f"{result.stray_messages} unattributable messages)")


def _delays(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("a comma-separated list of seconds, e.g. 60,120")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300, help="distinct FAILED events (default 300)")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="concurrent Lambda environments, i.e. the function's reserved concurrency (default 10)")
    parser.add_argument("--rate", type=float, default=1.0, help="Slack messages per second per channel (default 1)")
    parser.add_argument("--retries", type=int, default=2, help="Lambda's retry attempts (0-2, default 2)")
    parser.add_argument("--retry-delays", type=_delays, default=[60.0, 120.0],
                        help="seconds before each retry (Lambda: 60,120)")
    args = parser.parse_args(argv)
    from bench._common import quiet_app_logs

    quiet_app_logs()
    result = run_burst(burst_events(args.events), concurrency=args.concurrency, rate=args.rate,
                       retries=args.retries, retry_delays=args.retry_delays)
    for line in report(result, args.retry_delays):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
