"""A burst of distinct FAILED jobs against Slack's rate limits, with failure grouping on and off.

    .venv/bin/python bench/burst.py [--jobs 300] [--concurrency 10] [--rate 1.0] [--mode both]
                                    [--update-rate 50] [--pace SECONDS] [--group-after 3]
                                    [--retries 2] [--retry-delays 60,120]

Each worker thread is one Lambda execution environment (``--concurrency``: the function's
reserved concurrency): it takes the next event from Lambda's asynchronous queue and invokes the
real ``on_job_failed`` handler through ``chalice.test`` (tools/lambda_env.py's ``containers``,
safe from many threads), which posts with slack-sdk to a Slack stand-in on 127.0.0.1 enforcing
``--rate`` chat.postMessage per second per channel and ``--update-rate`` chat.update per minute
(429 + Retry-After beyond them). As Lambda does, an invocation that raises is queued again after
``--retry-delays`` (Lambda: 1 then 2 minutes), at most ``--retries`` times; an event that fails
every attempt would go to the on-failure destination (the dead-letter queue).

Both modes are conversation mode (bot token + ``NOTIFY_STATE_TABLE``, a table with ``pk`` (S) in
moto's DynamoDB, its client serialized by a lock as DynamoDB applies each write atomically), with
the app's real pacing (``SLACK_PACE_SECONDS`` unset: 1 s, unless ``--pace``): grouping on
(``GROUP_AFTER=3``) and off (``GROUP_AFTER=0``, one message per job). Every job has the same queue
and cause (exit 1), so with grouping on they make one storm. :func:`run_burst` with
``group_after=None`` runs without a table instead (one message per event, as without conversations).

How the Slack side is counted, from what the stand-in accepted (its requests, in order):

- A job is *shown* by an accepted top-level message naming its job id (its own message names it in
  its links; a group message names none: it counts jobs and shows a few names), or by a line of an
  accepted thread reply naming its id (the group's thread lists one job per line). A reply in the
  thread of a message that already names the job (its own message's detail reply, a later change
  reply) is the same showing, not another; ``chat.update`` posts nothing new and shows no job again.
- *Visible*: when the stand-in received the first accepted request showing the job, from the
  burst's start (every environment starting at once). *Lost*: never shown. *Shown twice*: shown by
  more than one message or line.
- *Top-level messages*: the channel's own messages as a person sees them (thread broadcasts left
  out). *Slack API calls*: every request the stand-in received, any method, 429s included.

Prints one table with both modes side by side, the issue's targets (for 300 jobs at 10-way
concurrency and 1 post/s) beside the grouping-on figures, each marked met or not.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.slack_standin import RecordedRequest, Shown

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHANNEL = "C0BURST0001"
TOKEN = "xoxb-burst-not-a-real-token"
HANDLER = "on_job_failed"
STAGE = "local"
STATE_TABLE = "batch-notify-burst-state"
REGION = "us-east-1"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens: a stray AWS call fails at once, offline
DEFAULT_GROUP_AFTER = 3
DEFAULT_UPDATE_RATE = 50  # Slack: chat.update about 50 per minute
# Batch job ids are UUIDs; these are recognisable in a posted message (its console links, its line).
JOB_ID = "b0257000-0000-4000-8000-{:012d}"
_JOB_ID_PATTERN = re.compile(r"b0257000-0000-4000-8000-(\d{12})")
# Settings of this shell that would change what is measured (or reach AWS or Slack).
_UNSET = ("SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL_PARAM", "SLACK_BOT_TOKEN_PARAM", "NOTIFY_ROUTES",
          "NOTIFY_DEDUP_TABLE", "NOTIFY_STATE_TABLE", "GROUP_AFTER", "GROUP_WINDOW_MINUTES",
          "SLACK_PACE_SECONDS", "SLACK_DELIVERY_BUDGET_SECONDS", "SLACK_REQUEST_TIMEOUT_SECONDS",
          "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME")


def burst_events(count: int) -> list[dict[str, Any]]:
    """``count`` distinct FAILED events: tests/events/ec2_failed.json with its own event id,
    job id, ARN and name each, as Batch emits them when many jobs fail at once (one queue, one
    cause: every job exits 1)."""
    template = json.loads((ROOT / "tests" / "events" / "ec2_failed.json").read_text())
    old_id = template["detail"]["jobId"]
    events = []
    for index in range(count):
        event = copy.deepcopy(template)
        job_id = JOB_ID.format(index)
        event["id"] = f"0b257000-0000-4000-9000-{index:012d}"
        event["detail"]["jobId"] = job_id
        event["detail"]["jobName"] = f"burst-shard-{index:04d}"
        event["detail"]["jobArn"] = event["detail"]["jobArn"].replace(old_id, job_id)
        event["resources"] = [r.replace(old_id, job_id) for r in event.get("resources", [])]
        events.append(event)
    return events


# -- what Slack shows ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tally:
    """The burst as Slack shows it (see the module docstring for how each figure is counted)."""

    shown: Mapping[int, int]  # job index -> messages and lines showing it
    first_shown: Mapping[int, float]  # job index -> monotonic time of the first accepted request showing it
    top_level: int
    group_texts: tuple[str, ...] = ()  # the final text of each message whose thread lists jobs
    stray: int = 0  # accepted top-level messages naming no job and listing none in their thread


def _jobs_named(text: str) -> set[int]:
    return {int(n) for n in _JOB_ID_PATTERN.findall(text)}


def _texts(node: Any) -> Iterator[str]:
    """Every ``text`` string in a Block Kit structure."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


def reply_lines(body: Mapping[str, Any]) -> list[str]:
    """A thread reply's lines as a reader sees them: each line of its blocks' texts (its fallback
    ``text`` only when it has no blocks: the fallback repeats the blocks for notifications)."""
    texts = list(_texts(body.get("blocks"))) or [str(body.get("text") or "")]
    return [line for text in texts for line in text.split("\n")]


def accepted_posts(requests: Sequence[RecordedRequest],
                   messages: Sequence[Mapping[str, Any]]) -> list[RecordedRequest]:
    """The requests whose message the stand-in accepted, in order. It appends each accepted
    payload to ``messages`` in the order of the requests (under one lock), so walking both in step
    pairs them; 429s and refusals are in ``requests`` only."""
    found: list[RecordedRequest] = []
    pending = iter(messages)
    expected = next(pending, None)
    for request in requests:
        if expected is not None and request.reply_status == 200 and request.body == expected:
            found.append(request)
            expected = next(pending, None)
    return found


def tally(requests: Sequence[RecordedRequest], messages: Sequence[Mapping[str, Any]],
          channel_view: Sequence[Shown]) -> Tally:
    """Count what the stand-in accepted: ``requests`` and ``messages`` as it recorded them,
    ``channel_view`` its view of the channel (top-level messages in order, with their ts)."""
    top_views = [shown for shown in channel_view if not shown.broadcast]
    posts = accepted_posts(requests, messages)
    top_posts = [post for post in posts if "thread_ts" not in post.body]
    # The channel view lists top-level messages in the order they were accepted: each post's ts.
    named_by: dict[str, set[int]] = {}
    for post, view in zip(top_posts, top_views, strict=True):
        named_by[view.ts] = _jobs_named(json.dumps(post.body))
    shown: Counter[int] = Counter()
    first: dict[int, float] = {}
    listing: set[str] = set()  # top-level messages whose thread shows jobs of its own: groups
    for post in posts:
        parent = post.body.get("thread_ts")
        if parent is None:
            showings = [_jobs_named(json.dumps(post.body))]
        else:
            already = named_by.get(str(parent), set())
            showings = [_jobs_named(line) - already for line in reply_lines(post.body)]
            if any(showings):
                listing.add(str(parent))
        for jobs in showings:
            for job in jobs:
                shown[job] += 1
                first.setdefault(job, post.received_at)
    groups = tuple(view.text for view in top_views if view.ts in listing)
    stray = sum(1 for view in top_views if not named_by.get(view.ts) and view.ts not in listing)
    return Tally(shown=dict(shown), first_shown=first, top_level=len(top_views), group_texts=groups, stray=stray)


# -- the burst ---------------------------------------------------------------------------------------
@dataclass
class BurstResult:
    """What happened to a burst."""

    events: int
    concurrency: int
    rate: float
    group_after: int | None  # None: no state table (one message per event)
    wall_seconds: float
    invocations: int
    rate_limited: int  # HTTP 429 answers Slack sent
    api_calls: dict[str, int]  # requests per Slack method, whatever their answer
    shown_per_job: dict[int, int]  # job index -> messages and lines showing it (exactly 1 is the goal)
    visible_at: dict[int, float]  # job index -> seconds from the burst's start until it was first shown
    top_level: int
    group_texts: tuple[str, ...] = ()
    failures: Counter[str] = field(default_factory=Counter)  # exception type of each failed invocation
    dead_lettered: list[int] = field(default_factory=list)  # events that failed every attempt
    stray_messages: int = 0  # accepted top-level messages showing no burst job (should be 0)

    @property
    def label(self) -> str:
        if self.group_after is None:
            return "no state table"
        return f"grouping {'off' if self.group_after == 0 else 'on'} (GROUP_AFTER={self.group_after})"

    @property
    def reinvocations(self) -> int:
        return self.invocations - self.events

    @property
    def api_call_total(self) -> int:
        return sum(self.api_calls.values())

    @property
    def lost(self) -> int:
        return sum(1 for index in range(self.events) if self.shown_per_job.get(index, 0) == 0)

    @property
    def shown_twice(self) -> int:
        return sum(1 for n in self.shown_per_job.values() if n > 1)

    @property
    def all_visible_seconds(self) -> float | None:
        """Seconds until every job was visible; None when some never were."""
        if self.lost or not self.events:
            return None
        return max(self.visible_at.values())

    @property
    def exactly_once(self) -> bool:
        return self.lost == 0 and self.shown_twice == 0 and self.stray_messages == 0


class AsyncQueue:
    """Lambda's asynchronous event queue: ready events in order, retries after a delay."""

    def __init__(self, events: Sequence[dict[str, Any]]) -> None:
        self._heap: list[tuple[float, int, int, int]] = []  # (ready at, seq, event index, attempt)
        self._seq = 0
        self._open = len(events)  # events neither handled nor given up on
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


class Serialized:
    """A DynamoDB client whose calls run one at a time: moto does not lock, and DynamoDB applies
    each (conditional) write atomically, which the lock models."""

    def __init__(self, client: Any) -> None:
        self._client, self._lock = client, threading.Lock()
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


@contextmanager
def state_table_in_moto() -> Iterator[None]:
    """moto's DynamoDB with the state table (``pk`` (S), on demand), its client serialized and
    handed to the app with ``clients.use_client``; both go at the end."""
    import boto3
    from moto import mock_aws

    from chalicelib.core import clients

    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName=STATE_TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
        with clients.use_client("dynamodb", Serialized(dynamodb)):
            yield


@dataclass
class _Invocations:
    """The invocations' tally, shared by the environments."""

    count: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    dead: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _environments(invoke: Callable[[str, Any], Any], events: Sequence[dict[str, Any]], concurrency: int,
                  retries: int, retry_delays: Sequence[float]) -> tuple[_Invocations, float]:
    """Run the events from ``concurrency`` environments until each is handled or dead-lettered:
    the tally, and when the burst started (``time.monotonic()``)."""
    queue = AsyncQueue(events)
    seen = _Invocations()
    start = threading.Barrier(concurrency)  # the burst: every environment busy at once

    def lambda_environment() -> None:
        start.wait()
        while (job := queue.take()) is not None:
            index, attempt = job
            with seen.lock:
                seen.count += 1
            try:
                invoke(HANDLER, events[index])
            except Exception as error:  # the function's error: Lambda retries it later
                with seen.lock:
                    seen.failures[type(error).__name__] += 1
                if attempt <= retries:
                    queue.retry(index, attempt + 1, retry_delays[min(attempt, len(retry_delays)) - 1])
                    continue
                with seen.lock:
                    seen.dead.append(index)  # to the on-failure destination
            queue.settle()

    threads = [threading.Thread(target=lambda_environment, name=f"lambda-{i}") for i in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen, started


def burst_environment(api_url: str, group_after: int | None, pace_seconds: float | None) -> dict[str, str]:
    """The variables of the burst's functions: bot token to the stand-in, and in conversation
    mode (``group_after`` not None) the state table and ``GROUP_AFTER``."""
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": CHANNEL, "SLACK_API_URL": api_url,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    if group_after is None:
        env["AWS_ENDPOINT_URL"] = CLOSED_PORT_URL  # no table: nothing may call AWS at all
    else:
        # moto answers every AWS call (an endpoint of our own would bypass it).
        env.update(NOTIFY_STATE_TABLE=STATE_TABLE, GROUP_AFTER=str(group_after))
    if pace_seconds is not None:
        env["SLACK_PACE_SECONDS"] = f"{pace_seconds:g}"
    return env


def run_burst(events: Sequence[dict[str, Any]], *, concurrency: int, rate: float, retries: int = 2,
              retry_delays: Sequence[float] = (60.0, 120.0), group_after: int | None = None,
              pace_seconds: float | None = None,
              update_rate: int | None = DEFAULT_UPDATE_RATE) -> BurstResult:
    """Deliver ``events`` to ``on_job_failed`` from ``concurrency`` threads, Slack allowing ``rate``
    chat.postMessage per second and ``update_rate`` chat.update per minute per channel; retry a
    failed invocation like Lambda does.

    ``group_after``: None runs without a state table (one message per event); a number runs in
    conversation mode (moto's DynamoDB) with ``GROUP_AFTER`` set to it (0: grouping off).
    ``pace_seconds``: ``SLACK_PACE_SECONDS`` (None: unset, the app's 1 s).
    """
    from app import app
    from tools.lambda_env import containers
    from tools.slack_standin import SlackStandIn

    table = state_table_in_moto if group_after is not None else _nothing
    with SlackStandIn(bot_token=TOKEN, channels=(CHANNEL,), rate_limit_per_channel=rate,
                      update_rate_per_minute=update_rate) as slack:
        env = burst_environment(slack.api_url, group_after, pace_seconds)
        # The table is made inside the burst's environment: its client then sees no endpoint of this shell's.
        with containers(app, STAGE, env=env, unset=_without(_UNSET, env)) as invoke, table():
            seen, started = _environments(invoke, events, concurrency, retries, retry_delays)
            wall = time.monotonic() - started
        shown = tally(slack.requests, slack.messages, slack.channel_view(CHANNEL))
        rate_limited, calls = slack.rate_limited_count, slack.calls_by_method()
    return BurstResult(events=len(events), concurrency=concurrency, rate=rate, group_after=group_after,
                       wall_seconds=wall, invocations=seen.count, rate_limited=rate_limited, api_calls=calls,
                       shown_per_job={index: shown.shown.get(index, 0) for index in range(len(events))},
                       visible_at={job: at - started for job, at in shown.first_shown.items()},
                       top_level=shown.top_level, group_texts=shown.group_texts, failures=seen.failures,
                       dead_lettered=sorted(seen.dead), stray_messages=shown.stray)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _without(names: Sequence[str], kept: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(name for name in names if name not in kept)


# -- the printout --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """One row of the table: a figure of each mode and, when the issue set one, its target (at most)."""

    name: str
    value: Callable[[BurstResult], float | None]
    target: float | None = None
    shown: Callable[[BurstResult], str] | None = None

    def text(self, result: BurstResult) -> str:
        if self.shown is not None:
            return self.shown(result)
        value = self.value(result)
        return "-" if value is None else f"{value:g}"

    def met(self, result: BurstResult) -> bool:
        value = self.value(result)
        return self.target is not None and value is not None and value <= self.target


def _visible(result: BurstResult) -> str:
    seconds = result.all_visible_seconds
    return f"{seconds:.1f}" if seconds is not None else f"never ({result.lost} lost)"


# The targets with grouping on (issue 12, "Numbers"): for 300 jobs at 10-way concurrency.
FIGURES = (
    Figure("seconds until all jobs visible", lambda r: r.all_visible_seconds, 60, _visible),
    Figure("top-level messages", lambda r: r.top_level, 5),
    Figure("Slack API calls (all methods)", lambda r: r.api_call_total, 80),
    Figure("HTTP 429s", lambda r: r.rate_limited),
    Figure("Lambda re-invocations", lambda r: r.reinvocations),
    Figure("jobs lost", lambda r: r.lost, 0),
    Figure("jobs shown twice", lambda r: r.shown_twice, 0),
)


def _grouping_on(result: BurstResult) -> bool:
    return bool(result.group_after)


def comparison(results: Sequence[BurstResult]) -> str:
    """The side-by-side table: a column per mode, the targets and met/not beside grouping on."""
    from bench._common import table

    headers = ["figure"]
    for result in results:
        headers.append(result.label)
        if _grouping_on(result):
            headers += ["target", "met"]
    rows = []
    for figure in FIGURES:
        row = [figure.name]
        for result in results:
            row.append(figure.text(result))
            if _grouping_on(result):
                target = "" if figure.target is None else f"<= {figure.target:g}"
                row += [target, "" if figure.target is None else ("yes" if figure.met(result) else "NO")]
        rows.append(row)
    return table(headers, rows)


def report(results: Sequence[BurstResult], retry_delays: Sequence[float], pace_seconds: float | None) -> Iterator[str]:
    """The bench's printout: what ran, the table, then per mode the details behind it."""
    first = results[0]
    delays = ", ".join(f"{d:g}" for d in retry_delays)
    pace = "SLACK_PACE_SECONDS unset (1 s)" if pace_seconds is None else f"SLACK_PACE_SECONDS={pace_seconds:g}"
    yield (f"{first.events} distinct FAILED jobs (one queue, one cause: exit 1) -> on_job_failed; "
           f"{first.concurrency} concurrent Lambda environments; Slack allows {first.rate:g} chat.postMessage/s "
           f"per channel (one channel); {pace}; Lambda retries after {delays} s")
    yield ""
    yield comparison(results)
    yield ""
    for result in results:
        calls = ", ".join(f"{name} {n}" for name, n in sorted(result.api_calls.items()))
        yield f"{result.label}: wall {result.wall_seconds:.1f} s; {result.invocations} invocations; calls: {calls}"
        if result.group_texts:
            yield "  group message: " + " | ".join(result.group_texts)
        if result.failures:
            yield "  failed invocations: " + ", ".join(f"{name} x{n}" for name, n in result.failures.most_common())
        if result.dead_lettered or result.stray_messages:
            yield f"  dead-lettered: {len(result.dead_lettered)}; messages showing no job: {result.stray_messages}"
    if any(_grouping_on(r) for r in results) and (first.events, first.concurrency, first.rate) != (300, 10, 1.0):
        yield "(the targets are the issue's, for 300 jobs, 10-way concurrency and 1 post/s)"


def _delays(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("a comma-separated list of seconds, e.g. 60,120")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", "--events", type=int, default=300, help="distinct FAILED jobs (default 300)")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="concurrent Lambda environments, i.e. the function's reserved concurrency (default 10)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="Slack chat.postMessage per second per channel (default 1)")
    parser.add_argument("--update-rate", type=int, default=DEFAULT_UPDATE_RATE,
                        help="Slack chat.update per minute per channel (default 50)")
    parser.add_argument("--mode", choices=("on", "off", "both"), default="both",
                        help="grouping on (GROUP_AFTER), off (GROUP_AFTER=0), or both side by side (default)")
    parser.add_argument("--group-after", type=int, default=DEFAULT_GROUP_AFTER,
                        help="GROUP_AFTER with grouping on (default 3)")
    parser.add_argument("--pace", type=float, default=None,
                        help="SLACK_PACE_SECONDS for the app (default: unset, the app's 1 s; match --rate)")
    parser.add_argument("--retries", type=int, default=2, help="Lambda's retry attempts (0-2, default 2)")
    parser.add_argument("--retry-delays", type=_delays, default=[60.0, 120.0],
                        help="seconds before each retry (Lambda: 60,120)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    print("# quick run: .venv/bin/python bench/burst.py --jobs 30 --mode on   "
          "(defaults: 300 jobs, both modes; grouping off takes 5+ minutes)", flush=True)
    from bench._common import quiet_app_logs

    quiet_app_logs()
    modes = {"on": [args.group_after], "off": [0], "both": [args.group_after, 0]}[args.mode]
    results = [run_burst(burst_events(args.jobs), concurrency=args.concurrency, rate=args.rate,
                         retries=args.retries, retry_delays=args.retry_delays, group_after=group_after,
                         pace_seconds=args.pace, update_rate=args.update_rate)
               for group_after in modes]
    for line in report(results, args.retry_delays, args.pace):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
