"""Replay Batch events through the app's real handlers, the way Lambda would run them.

    python -m tools.replay [--json] [--verbose] [FILE_OR_DIR ...]      (default: tests/events)

Each event is put on an emulated EventBridge bus carrying the app's own rules, to find the
handlers its patterns select; each of those is invoked through ``chalice.test`` (the same
function Lambda calls) with the ``local`` stage, whose Slack settings come from your shell:

- with ``SLACK_WEBHOOK_URL``, or ``SLACK_BOT_TOKEN`` and ``SLACK_CHANNEL``, set, the messages
  are posted to your Slack for real, at Slack's pace;
- with neither, they go to a Slack stand-in on 127.0.0.1 (with a bot token). This says, event by
  event, what each handler did to the channel ("posted #3", "updated #3 in place"), then prints
  the channel as it ends, as a person reads it: each message (edited or not) with its thread
  under it (``--json``: with each one's Block Kit JSON and a Block Kit Builder link).

With a bot token the handlers hold conversations (one living message per job, threads, grouped
storms): their state table is moto's, made by the replay (``NOTIFY_STATE_TABLE`` from your shell,
else the local stage's, else ``batch-notify-local-state``), and it lasts for the run only. After
the sample events of ``tests/events`` come the scenes: a job's message updated in place (RUNNING,
then FAILED); a storm of failures alike, from several containers at once, collapsed into one
group message; and, against the stand-in only, a click end to end: a job in moto's Batch fails,
its message has buttons (a signing secret and ``SLACK_ACTIONS_ALLOW`` are set for the scene),
and Retry is clicked twice, signed as Slack signs it, through the app's real ``POST
/slack/actions`` route (chalice.test): one new job, tagged as the retry, and the message says so.

The whole run is inside moto (in process), so nothing reaches AWS. The sample FAILED events
of ``tests/events`` get a CloudWatch Logs stream there, with realistic lines (a few holding
fake secrets, which the message masks), and run with the log tail on: the local stage turns
it off, the replay turns it on for those events only. Other events (yours, a dead-letter
queue's) have no stream to read, so they replay without a tail, as the local stage says.

Development tool: it lives outside ``chalicelib/`` so it is never deployed. It also replays
events saved from a dead-letter queue (any file holding one event, a JSON list of them, or
``aws sqs receive-message`` output).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import html
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from chalice.test import TestLambdaClient

from tools.eventbridge import REGION, EventBridgeRouter, registered_patterns
from tools.lambda_env import stage_variables
from tools.slack_standin import MEMBER, Shown, SlackStandIn

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "tests" / "events"
STAGE = "local"
DEMO_TOKEN = "xoxb-demo-not-a-real-token"
DEMO_CHANNEL = "#batch-alerts"
# The stand-in answers a post to the name with this ID, as Slack does: a click carries the ID.
DEMO_CHANNEL_ID = "C0DEMOALERTS"
# What the deployed stages set; the local stage's 0 is overridden for the seeded events only.
DEMO_LOG_TAIL = {"LOG_TAIL_LINES": "20"}
SLACK_VARIABLES = ("SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL_PARAM", "SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_PARAM")
# Conversation mode needs the state table: the replay makes it in moto (see state_table_name).
STATE_TABLE_VARIABLE = "NOTIFY_STATE_TABLE"
LOCAL_STATE_TABLE = "batch-notify-local-state"
# Against the stand-in, Slack's pace (1 s per message per channel) would only make the demo slow.
PACE_VARIABLE = "SLACK_PACE_SECONDS"
STANDIN_PACE_SECONDS = "0.01"
BUILDER_URL = "https://app.slack.com/block-kit-builder#"
WIDTH = 100  # fields go side by side, as Slack draws them, only while a row fits in this
EVENT_RULE = "═" * 78
MESSAGE_RULE = "─" * 78
EMOJI = {":x:": "❌", ":white_check_mark:": "✅", ":arrow_forward:": "▶️", ":hourglass:": "⌛",
         ":hourglass_flowing_sand:": "⏳", ":information_source:": "ℹ️", ":warning:": "⚠️", ":bulb:": "💡",
         ":page_facing_up:": "📄", ":rotating_light:": "🚨", ":clipboard:": "📋", ":thread:": "🧵",
         ":repeat:": "🔁", ":eyes:": "👀", ":octagonal_sign:": "🛑", ":zzz:": "💤"}

# -- the sample events' log streams ------------------------------------------------------------
# Fake secrets, assembled at run time so no file holds a string a secret scanner would flag.
# The FAILED message masks each of them ("password=[masked]", ...): that is what the demo shows.
_DSN = "postgresql://etl:" + "-".join(["demo", "pw", "4f9a"]) + "@warehouse.internal:5432/dw"
_BEARER = "Bearer " + "demo" + "0123456789abcdef" * 2
_AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret key
_PASSWORD = "-".join(["hunter2", "demo"])
_SLACK = "-".join(["xoxb", "123456789012", "1234567890123", "DemoDemoDemoDemoDemoDemo"])

DEMO_LOGS: dict[str, tuple[str, ...]] = {
    "ec2_failed": (
        "INFO  etl.load: run 2024-05-13, target warehouse.orders",
        f"DEBUG etl.db: connecting to {_DSN}",
        "INFO  etl.load: batch 38 of 40: 25000 rows -> warehouse.orders",
        "INFO  etl.load: batch 39 of 40: 25000 rows -> warehouse.orders",
        "ERROR etl.load: batch 40 of 40 failed: duplicate key value violates unique constraint \"orders_pkey\"",
        "Traceback (most recent call last):",
        "  File \"/app/etl/load.py\", line 212, in load_batch",
        "psycopg2.errors.UniqueViolation: Key (order_id)=(884213) already exists.",
        "INFO  etl.load: exiting with status 1",
    ),
    "custom_log_group_failed": (
        "INFO  etl-nightly-eu: extracting 14 tables from the eu-central-1 replica",
        f"DEBUG etl-nightly-eu: using replica credentials user=etl_eu password={_PASSWORD}",
        "WARN  etl-nightly-eu: table invoices: 3 rows with a NULL currency, skipped",
        "ERROR etl-nightly-eu: upload to s3://example-etl-eu/2025-01-08/ failed: SlowDown, giving up after 5 tries",
    ),
    "diag_out_of_memory": (
        "INFO  features: loading 48,213,977 rows from s3://example-features/2024-06-02/",
        "INFO  features: join users x events: 9.8 GiB in memory",
        "INFO  features: building rolling windows (7d, 30d, 90d)",
        "WARN  features: resident memory 15.1 GiB of 16 GiB",
    ),
    "timeout_failed": (
        "INFO  train: resnet50, 8 GPUs, batch 256, lr 0.1",
        f"INFO  train: tracking run on https://wandb.example.internal (WANDB_API_KEY={_AWS_SECRET})",
        "INFO  train: epoch 41/90: loss 1.214, top-1 71.8%, 1m24s",
        "INFO  train: epoch 42/90: loss 1.207, top-1 72.0%, 1m25s",
        "INFO  train: checkpoint saved to s3://example-models/resnet50/run42/epoch-42.pt",
    ),
    "retried_failed": (
        "INFO  variant-call: sample NA12878, reference GRCh38, attempt 3 of 3 with 32 GiB",
        "INFO  variant-call: HaplotypeCaller chr1-chr22 done",
        "ERROR variant-call: chrX: BAM index is older than the BAM file: re-run samtools index",
        "ERROR variant-call: exiting 1",
    ),
    "fargate_failed": (
        "INFO  report-render: month=2025-13 template=monthly-v4",
        "usage: render.py [-h] --month YYYY-MM --template NAME",
        "render.py: error: argument --month: '2025-13' is not a month",
    ),
    "ecs_multicontainer_failed": (
        "INFO  drive-sim: scenario 0042: 1,200 frames from the sensor sidecar",
        f"DEBUG drive-sim: POST https://scenarios.internal/api/results Authorization: {_BEARER}",
        "ERROR drive-sim: results API answered 503 three times, giving up",
        "ERROR drive-sim: exiting 1",
    ),
    "diag_stopped_by_person": (
        "INFO  backfill-orders: 2024-06-01 .. 2024-06-30 from s3://example-wrong-bucket/orders/",
        "INFO  backfill-orders: day 2024-06-04: 118,224 orders",
        "WARN  backfill-orders: received SIGTERM, flushing and stopping",
    ),
    "diag_timeout": (
        "INFO  ledger-reconcile: 2024-09, 4 ledgers, 31 days",
        "INFO  ledger-reconcile: ledger EU: day 12 of 31 (slow: 48 s per day)",
        f"DEBUG ledger-reconcile: slack notifier configured with token {_SLACK}",
        "INFO  ledger-reconcile: ledger EU: day 13 of 31",
    ),
    "hostile_text_failed": (
        "INFO  customer-export: tenant acme-corp, 3 tables",
        "WARN  customer-export: a customer named <!channel> & ``co`` exported as written",
        '{"level": "error", "msg": "upload failed", "config": {"secret": "' + _PASSWORD + '"}}',
    ),
}


_LOGGER_LINE = re.compile(r"(DEBUG|INFO|WARN|ERROR) ")


def unwrap(item: Any) -> Any:
    """The EventBridge event inside what a dead-letter queue holds.

    ``aws sqs receive-message`` gives SQS messages whose ``Body`` is a Lambda on-failure
    destination record, whose ``requestPayload`` is the event the function failed on.
    """
    if isinstance(item, dict) and isinstance(item.get("Body"), str):
        item = json.loads(item["Body"])
    if isinstance(item, dict) and isinstance(item.get("requestPayload"), dict):
        item = item["requestPayload"]
    return item


def failed_handler(item: Any) -> str | None:
    """The handler a dead-letter record's function ran (``requestContext.functionArn``), if any.

    A replay must re-run that handler only: another handler whose pattern selects the same event
    already posted it, and a scheduled handler's event matches no pattern at all.
    """
    if isinstance(item, dict) and isinstance(item.get("Body"), str):
        item = json.loads(item["Body"])
    context = item.get("requestContext") if isinstance(item, dict) else None
    arn = context.get("functionArn") if isinstance(context, dict) else None
    if not isinstance(arn, str) or ":function:" not in arn:
        return None
    function = arn.split(":function:", 1)[1].split(":", 1)[0]  # batch-notify-<stage>-<handler>
    # Handler names are Python identifiers (no '-'); the app and stage names may have some.
    return function.rsplit("-", 1)[-1] or None


def _sources(paths: list[str]) -> Iterator[tuple[Path, str, Any, str | None]]:
    for path in map(Path, paths):
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            text = file.read_text()
            if not text.strip():  # `aws sqs receive-message` prints nothing for an empty queue
                continue
            try:
                data = json.loads(text)
            except ValueError as error:
                raise SystemExit(f"{file}: not JSON ({error}): give event files, lists of events, or "
                                 "`aws sqs receive-message` output") from None
            if isinstance(data, dict) and isinstance(data.get("Messages"), list):
                data = data["Messages"]
            items = data if isinstance(data, list) else [data]
            for i, item in enumerate(items):
                yield file, (file.name if len(items) == 1 else f"{file.name}[{i}]"), unwrap(item), failed_handler(item)


def load_events(paths: list[str]) -> Iterator[tuple[str, Any]]:
    """(label, event) for every event in the given files and directories (sorted): single
    events, JSON lists of them, or ``aws sqs receive-message`` output from the dead-letter queue."""
    for _, label, event, _ in _sources(paths):
        yield label, event


# -- what a person reads -----------------------------------------------------------------------
_SPECIAL = [
    (re.compile(r"<!date\^[^|>]*\|([^>]*)>"), r"\1"),               # a date token: its fallback text
    (re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>"), r"@\1"),  # user group mention
    (re.compile(r"<@([A-Z0-9]+)>"), r"@\1"),                        # user mention
    (re.compile(r"<!(here|channel|everyone)>"), r"@\1"),
    (re.compile(r"<([^|>]+)\|([^>]+)>"), r"\2 (\1)"),               # link with a label
    (re.compile(r"<([^|>]+)>"), r"\1"),                              # bare link
]
_BOLD = re.compile(r"\*([^*\n]+)\*")
_ITALIC = re.compile(r"(?<![\w])_([^_\n]+)_(?![\w])")


def _plain(mrkdwn: str) -> str:
    """What a person sees of mrkdwn: mentions and links spelled out, emoji shown, bold and
    italics dropped, entities decoded (last, so escaped text never turns into a link)."""
    text = mrkdwn
    for pattern, replacement in _SPECIAL:
        text = pattern.sub(replacement, text)
    for code, glyph in EMOJI.items():
        text = text.replace(code, glyph)
    return html.unescape(_ITALIC.sub(r"\1", _BOLD.sub(r"\1", text)))


def _text_lines(mrkdwn: str) -> list[str]:
    """A section's text: prose as plain lines, code blocks (the log tail) behind a bar."""
    lines: list[str] = []
    for i, part in enumerate(mrkdwn.split("```")):
        if i % 2:  # inside a code block: shown as written, only the entities decoded
            lines.extend(f"    │ {html.unescape(line)}" for line in part.strip("\n").split("\n"))
        elif part.strip("\n"):
            lines.extend(f"  {line}" for line in _plain(part.strip("\n")).split("\n"))
    return lines


def _field_lines(fields: list[dict[str, Any]]) -> list[str]:
    """Slack's two columns of fields, side by side when every row fits; else one per line."""
    cells = [_plain(field.get("text", "")).replace("\n", ": ", 1).replace("\n", " ") for field in fields]
    left, right = cells[::2], cells[1::2]
    column = max(map(len, left), default=0) + 4
    if right and column + max(map(len, right)) <= WIDTH:
        return [f"  {a:<{column}}{b}".rstrip() for a, b in zip(left, [*right, ""][:len(left)], strict=True)]
    return [f"  {cell}" for cell in cells]


def _block_lines(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        title = _plain(block["text"]["text"])
        return [title, "=" * len(title)]
    if kind == "section":
        text = _text_lines(block["text"]["text"]) if "text" in block else []
        return text + _field_lines(block.get("fields", []))
    if kind == "actions":
        return [f"  {_element(element)}" for element in block.get("elements", [])]
    if kind == "context":
        return [f"  {_plain(e.get('text', ''))}" for e in block.get("elements", [])]
    if kind == "divider":
        return ["  " + "-" * 40]
    return [f"  ({kind} block)"]


def _element(element: dict[str, Any]) -> str:
    """A button as ``[its text] its URL``; a select as ``[placeholder ▾ option | option ...]``."""
    def text(obj: Any) -> str:
        return _plain(obj.get("text", "")) if isinstance(obj, dict) else ""

    if "options" in element:
        return f"[{text(element.get('placeholder'))} ▾ {' | '.join(text(o.get('text')) for o in element['options'])}]"
    return f"[{text(element.get('text'))}] {element.get('url', '')}".rstrip()


def render(message: dict[str, Any]) -> str:
    """A terminal rendering of a posted Block Kit message, block by block."""
    return "\n".join(line for block in message.get("blocks", []) for line in _block_lines(block))


def builder_link(message: dict[str, Any]) -> str:
    """Open the message in Slack's Block Kit Builder to see it as Slack draws it."""
    return BUILDER_URL + quote(json.dumps({"blocks": message.get("blocks", [])}, separators=(",", ":")))


# -- the sample events' log streams, in moto ------------------------------------------------
def _is_sample(file: Path) -> bool:
    return file.resolve().parent == EVENTS_DIR


def _demo_lines(file: Path, event: Any) -> tuple[str, ...] | None:
    """The log lines to seed for a FAILED sample event the table above writes lines for; None for
    any other (a fork's own fixture, your own events: never a made-up log)."""
    if not _is_sample(file) or not isinstance(event, dict):
        return None
    detail = event.get("detail")
    if not isinstance(detail, dict) or detail.get("status") != "FAILED":
        return None
    return DEMO_LOGS.get(file.stem)


def seed_log_stream(event: dict[str, Any], lines: tuple[str, ...]) -> bool:
    """Write ``lines`` to the stream the log tail of ``event`` will read, in the (moto) region
    the app's own ``log_location`` names; False when the event has no CloudWatch Logs stream.

    A logger's line (``INFO ...``) gets a time counting up to the job's ``stoppedAt``.
    """
    import boto3

    from chalicelib.reading.event import JobStateChange
    from chalicelib.reading.links import log_location

    try:
        location = log_location(JobStateChange.from_event(event))
    except Exception:  # not a job state change: the handler's own log line says so
        return False
    if location is None:
        return False
    logs = boto3.client("logs", region_name=location.region)
    for create, kwargs in ((logs.create_log_group, {}), (logs.create_log_stream, {"logStreamName": location.stream})):
        # Two sample events share a stream: a multi-node parent and its main node.
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            create(logGroupName=location.group, **kwargs)
    stopped = event["detail"].get("stoppedAt")
    end = datetime.fromtimestamp(stopped / 1000, UTC) if isinstance(stopped, int) else datetime.now(UTC)
    now = int(time.time() * 1000) - len(lines)  # CloudWatch Logs refuses events much older than now
    logs.put_log_events(logGroupName=location.group, logStreamName=location.stream, logEvents=[
        {"timestamp": now + i, "message": _stamped(line, end - timedelta(seconds=7 * (len(lines) - i)))}
        for i, line in enumerate(lines)])
    return True


def _stamped(line: str, at: datetime) -> str:
    # A logger's lines carry its time; a traceback or a usage message, printed as is, does not.
    return f"{at:%Y-%m-%dT%H:%M:%S}Z {line}" if _LOGGER_LINE.match(line) else line


# -- conversation mode: the state table, in moto ------------------------------------------------
def state_table_name() -> str:
    """The state table the replayed handlers use: ``NOTIFY_STATE_TABLE`` from your shell, else the
    local stage's, else :data:`LOCAL_STATE_TABLE`. Whichever it is, it is moto's (the whole run is
    in moto): the replay creates it there, and it lasts for the run only."""
    return (os.environ.get(STATE_TABLE_VARIABLE, "").strip() or stage_variables(STAGE).get(STATE_TABLE_VARIABLE)
            or LOCAL_STATE_TABLE)


def _region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION", "").strip() or os.environ.get("AWS_REGION", "").strip() or REGION


def invocation_environment(*, standin: bool) -> dict[str, str]:
    """What every invocation gets on top of the local stage's variables: the state table (so a bot
    token holds conversations), the region Lambda always sets (the table's), and, against the
    stand-in only, a short pace between Slack calls: real Slack keeps its real pace."""
    env = {STATE_TABLE_VARIABLE: state_table_name(), "AWS_DEFAULT_REGION": _region()}
    if standin:
        env[PACE_VARIABLE] = STANDIN_PACE_SECONDS
    return env


def create_state_table(name: str, region: str) -> None:
    """The app's state table (partition key ``pk``, a string), in moto."""
    import boto3

    dynamodb = boto3.client("dynamodb", region_name=region)
    with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
        dynamodb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")


class _Serialized:
    """A DynamoDB client whose calls run one at a time. moto does not lock, and DynamoDB applies
    each conditional write atomically: this is what lets several threads (containers) share it."""

    def __init__(self, client: Any) -> None:
        self._client, self._lock = client, threading.Lock()
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


# -- the replay ------------------------------------------------------------------------------
class _Invoker:
    """The handlers, invoked through chalice.test with the local stage and ``env``; for a sample
    event of tests/events whose stream the replay seeded, with the log tail on. Settings are read
    once per Lambda container, so a switch between the two starts a new one."""

    def __init__(self, app: Any, env: dict[str, str]) -> None:
        from chalice.cli.factory import CLIFactory

        def client(variables: dict[str, str]) -> TestLambdaClient:
            config = CLIFactory(str(ROOT)).create_config_obj(
                chalice_stage_name=STAGE, user_provided_params={"environment_variables": variables})
            return TestLambdaClient(app, config)

        self.app, self.env = app, dict(env)
        self._plain, self._tailed = client(self.env), client({**self.env, **DEMO_LOG_TAIL})
        self._tail_on: bool | None = None
        self.handlers = frozenset(app.handler_map)

    def invoke(self, name: str, event: Any, *, log_tail: bool) -> None:
        if self._tail_on is not None and log_tail != self._tail_on:
            from chalicelib.core import config

            config.reset()  # a new "container": the next invocation reads LOG_TAIL_LINES again
        self._tail_on = log_tail
        (self._tailed if log_tail else self._plain).invoke(name, event)


@dataclass(frozen=True)
class _Mark:
    """The channel at one moment: each message's reply count, and how many updates were made."""

    replies: dict[str, int]
    updates: int


class _Channel:
    """The stand-in's channel followed event by event: each message's number (in the order they
    appeared), what posted it, and what one invocation changed (posted, updated, replied)."""

    def __init__(self, slack: SlackStandIn, channel: str) -> None:
        self.slack, self.channel = slack, channel
        self.numbers: dict[str, int] = {}
        self.origins: dict[str, str] = {}

    def view(self) -> list[Shown]:
        """Everything the channel shows, in order, thread broadcasts included."""
        return self.slack.channel_view(self.channel)

    def messages(self) -> list[Shown]:
        """The channel's own messages (a broadcast reply shows there too, but belongs to a thread)."""
        return [shown for shown in self.view() if not shown.broadcast]

    def mark(self) -> _Mark:
        return _Mark({shown.ts: len(shown.replies) for shown in self.messages()}, len(self.slack.updates))

    def changes(self, since: _Mark, origin: str) -> list[str]:
        """What happened after ``since``, per message, in words; new messages are numbered for ``origin``."""
        updated = {str(body.get("ts")) for body in self.slack.updates[since.updates:]}
        said = []
        for shown in self.messages():
            if shown.ts not in self.numbers:
                self.numbers[shown.ts], self.origins[shown.ts] = len(self.numbers) + 1, origin
            said.extend(self._change(shown, since, updated))
        return said

    def _change(self, shown: Shown, since: _Mark, updated: set[str]) -> list[str]:
        number = self.numbers[shown.ts]
        new = shown.replies[since.replies.get(shown.ts, 0):]
        replies = _count(len(new), "reply", "replies")
        broadcast = sum(reply.broadcast for reply in new)
        also = f" ({broadcast} also sent to the channel)" if broadcast else ""
        if shown.ts not in since.replies:
            return [f"posted #{number}" + (f" with {replies} in its thread{also}" if new else "")]
        said = [f"updated #{number} in place"] if shown.ts in updated else []
        if new:
            said.append(f"{replies} in #{number}'s thread{also}")
        return said


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _heading(label: str, event: Any) -> str:
    if not isinstance(event, dict):
        return f"{label} · not a JSON object"
    status = event.get("detail", {}).get("status") if isinstance(event.get("detail"), dict) else None
    return " · ".join(str(part) for part in (label, event.get("detail-type", "?"), status) if part)


def _invoke_and_tell(invoker: _Invoker, name: str, event: Any, *, log_tail: bool, origin: str,
                     channel: _Channel | None, out: TextIO) -> int:
    """Invoke ``name``; say in one line what it did to the channel; return 1 if it raised."""
    since = channel.mark() if channel else None
    try:
        invoker.invoke(name, event, log_tail=log_tail)
    except Exception as error:  # show it and go on: a replay is for looking
        print(f"→ {name} raised {type(error).__name__}: {error}", file=out)
        return 1
    if channel is None or since is None:
        print(f"→ {name}: posted to Slack", file=out)
        return 0
    said = channel.changes(since, f"{origin} · {name}")
    print(f"→ {name}: " + "; ".join(said) if said else
          f"→ {name} posted nothing (its log line says why; --verbose shows INFO lines)", file=out)
    return 0


def _replay_one(bus: EventBridgeRouter, invoker: _Invoker, source: tuple[Path, str, Any, str | None],
                lines: tuple[str, ...] | None, *, out: TextIO, channel: _Channel | None) -> int:
    """Route one event, invoke each matching handler, say what it did; return the failures.

    A dead-letter record names the handler that failed: only that one runs again. ``lines``: the
    log lines to seed in the event's stream (then the tail is on), or None."""
    _, label, event, failed = source
    print(f"\n{EVENT_RULE}\n{_heading(label, event)}", file=out)
    handlers = _handlers_for(bus, invoker, event, failed, out)
    if not handlers:
        print("→ no handler's pattern matches: EventBridge would not invoke the app", file=out)
        return 0
    if lines is not None:
        seed_log_stream(event, lines)
    # Only a seeded stream has a tail to show; any other event runs with the tail off, as the
    # local stage does, so it never shows a made-up log or a misleading "not found".
    return sum(_invoke_and_tell(invoker, name, event, log_tail=lines is not None, origin=label, channel=channel,
                                out=out) for name in handlers)


def _handlers_for(bus: EventBridgeRouter, invoker: _Invoker, event: Any, failed: str | None,
                  out: TextIO) -> list[str]:
    if failed is not None and failed in invoker.handlers:
        print(f"→ the dead-letter record names {failed}: only it runs again", file=out)
        return [failed]
    if failed is not None:
        print(f"→ the dead-letter record names {failed!r}, which app.py does not have: routing by pattern", file=out)
    return bus.matching(event) if isinstance(event, dict) else []


# -- the channel as a person reads it ------------------------------------------------------------
def _shown_lines(shown: Shown) -> list[str]:
    if shown.blocks:
        return render({"blocks": shown.blocks}).split("\n")
    return [f"  {line}" for line in _plain(shown.text).split("\n")]


def _json_lines(shown: Shown) -> list[str]:
    message = {"text": shown.text, "blocks": shown.blocks}
    return ["", "  Block Kit JSON: " + json.dumps(message, ensure_ascii=False),
            "  Block Kit Builder: " + builder_link({"blocks": shown.blocks or []})]


def _message_lines(shown: Shown, channel: _Channel, show_json: bool) -> list[str]:
    """One top-level message: a line naming it, its blocks, then its thread, indented."""
    edited = " · (edited)" if shown.edited else ""
    lines = [f"#{channel.numbers.get(shown.ts, '?')} · {channel.origins.get(shown.ts, 'posted')}{edited}", "",
             *_shown_lines(shown), *(_json_lines(shown) if show_json else [])]
    for index, reply in enumerate(shown.replies, 1):
        also = ", also sent to the channel" if reply.broadcast else ""
        lines += ["", f"    ↳ thread reply {index} of {len(shown.replies)}{also}:"]
        lines += [f"      {line}" if line else "" for line in
                  _shown_lines(reply) + (_json_lines(reply) if show_json else [])]
    return lines


def show_channel(channel: _Channel, out: TextIO, *, show_json: bool = False,
                 only: frozenset[str] | None = None) -> None:
    """Print the channel as it is now: each top-level message (edited or not) with its thread
    under it; a reply broadcast to the channel shows where it appeared, as a line. ``only``: the
    messages (ts) to show, with their broadcasts."""
    parents = {reply.ts: shown.ts for shown in channel.messages() for reply in shown.replies}
    for shown in channel.view():
        parent = parents.get(shown.ts, shown.ts) if shown.broadcast else shown.ts
        if only is not None and parent not in only:
            continue
        if shown.broadcast:
            first = next((line.strip() for line in _shown_lines(shown) if line.strip()), "")
            print(f"  ↪ also in the channel, #{channel.numbers.get(parent, '?')}'s thread reply: {first}", file=out)
            continue
        print(MESSAGE_RULE, file=out)
        print("\n".join(_message_lines(shown, channel, show_json)), file=out)


def summary(slack: SlackStandIn, channel: str, failures: int) -> str:
    """One line: messages posted, updates (chat.update), messages a click's answer replaced (when
    any), thread replies, failed invocations."""
    shown = [message for message in slack.channel_view(channel) if not message.broadcast]
    replies = [reply for message in shown for reply in message.replies]
    broadcast = sum(reply.broadcast for reply in replies)
    replaced = replaced_after_clicks(slack)
    clicked = f", {replaced} replaced after a click" if replaced else ""
    return (f"{_count(len(shown), 'message', 'messages')} posted, {_count(len(slack.updates), 'update', 'updates')}"
            f"{clicked}, {_count(len(replies), 'thread reply', 'thread replies')} ({broadcast} also sent to the "
            f"channel), failed: {failures}")


def replaced_after_clicks(slack: SlackStandIn) -> int:
    """How many messages a click's answer replaced through its response_url (not a chat.update)."""
    return sum(1 for request in slack.requests if request.path.startswith("/actions/")
               and request.reply_status == 200 and request.body.get("replace_original") is True)


# -- the scenes: what conversations do -----------------------------------------------------------
SCENE_JOB_ID = "5ce4e001-6b0a-4c8e-b1f3-2d5a7c9e0b64"
SCENE_LOG = (
    "INFO  billing-close: period 2025-07, 41 ledgers",
    "INFO  billing-close: ledger 40 of 41 balanced",
    "ERROR billing-close: ledger EU-7: totals differ by 1204.77 EUR from the bank statement",
    "ERROR billing-close: refusing to close the period; exiting 1",
)
STORM_JOBS = 15
STORM_CONTAINERS = 5
STORM_QUEUE = "ingest-fargate-queue"


def running_then_failed() -> tuple[dict[str, Any], dict[str, Any]]:
    """A critical-* job's RUNNING (the fork's handler posts it) and its FAILED 2h 3m later."""
    running = copy.deepcopy(_sample("critical_running"))
    old_id = running["detail"]["jobId"]
    running["id"] = "5ce4e001-0000-4000-8000-000000000001"
    running["detail"]["jobName"] = "critical-billing-close-2025-07-15"
    running["detail"]["jobId"] = SCENE_JOB_ID
    running["detail"]["jobArn"] = running["detail"]["jobArn"].replace(old_id, SCENE_JOB_ID)
    running["resources"] = [running["detail"]["jobArn"]]
    failed = copy.deepcopy(running)
    detail, container = failed["detail"], failed["detail"]["container"]
    failed["id"], failed["time"] = "5ce4e001-0000-4000-8000-000000000002", "2025-07-15T07:04:26Z"
    stopped = detail["startedAt"] + (2 * 3600 + 3 * 60) * 1000
    reason = "Essential container in task exited"
    detail.update(status="FAILED", statusReason=reason, stoppedAt=stopped)
    container["exitCode"] = 1
    detail["attempts"] = [{"container": {key: container[key] for key in (
        "containerInstanceArn", "taskArn", "exitCode", "logStreamName", "networkInterfaces")},
        "startedAt": detail["startedAt"], "stoppedAt": stopped, "statusReason": reason}]
    return running, failed


def storm_events(count: int = STORM_JOBS) -> list[dict[str, Any]]:
    """``count`` jobs of one queue failing alike, seconds apart: their image could not be pulled."""
    template = _sample("diag_image_pull")
    old_id, queue = template["detail"]["jobId"], template["detail"]["jobQueue"]
    events = []
    for index in range(1, count + 1):
        event = copy.deepcopy(template)
        job_id = f"5707a000-0000-4000-8000-{index:012d}"
        detail = event["detail"]
        event["id"] = f"5707a000-0000-4000-9000-{index:012d}"
        event["time"] = f"2024-10-07T06:{33 + index // 60:02d}:{index % 60:02d}Z"
        detail["jobId"], detail["jobName"] = job_id, f"ingest-partition-{index:03d}"
        detail["jobArn"] = detail["jobArn"].replace(old_id, job_id)
        detail["jobQueue"] = queue.rsplit("/", 1)[0] + "/" + STORM_QUEUE
        event["resources"] = [detail["jobArn"]]
        events.append(event)
    return events


def _sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    return data


def _scene_title(title: str, what: str, out: TextIO) -> None:
    print(f"\n{EVENT_RULE}\n{EVENT_RULE}\nScene: {title}\n{what}", file=out)


def scene_updated_in_place(bus: EventBridgeRouter, invoker: _Invoker, *, out: TextIO,
                           channel: _Channel | None, show_json: bool) -> int:
    """A job's RUNNING, then its FAILED: one message, updated, its thread saying what changed."""
    _scene_title("A job's message, updated in place",
                 "A critical-* job starts (the fork's on_critical_job_running posts it), then fails 2h 3m later:\n"
                 "on_job_failed updates that message in place and says what changed in its thread.", out)
    since = set(channel.numbers) if channel else set()
    running, failed = running_then_failed()
    failures = _replay_one(bus, invoker, (EVENTS_DIR, "scene 1: RUNNING", running, None), None, out=out,
                           channel=channel)
    failures += _replay_one(bus, invoker, (EVENTS_DIR, "scene 1: FAILED", failed, None), SCENE_LOG, out=out,
                            channel=channel)
    _show_scene(channel, since, out, show_json)
    return failures


def scene_storm_collapsed(bus: EventBridgeRouter, invoker: _Invoker, *, out: TextIO,
                          channel: _Channel | None, show_json: bool) -> int:
    """Many jobs of one queue failing alike, from several containers at once: one group message."""
    import boto3

    from chalicelib.core import clients
    from tools.lambda_env import containers

    events: list[Mapping[str, Any]] = [*storm_events()]
    _scene_title("A failure storm, collapsed",
                 f"{len(events)} jobs of {STORM_QUEUE} fail alike (the image cannot be pulled), delivered by "
                 f"EventBridge to\n{STORM_CONTAINERS} Lambda containers at once (threads): the first 3 post their own "
                 "messages, the rest\nare counted in one group message and listed in its thread.", out)
    since, marked = (set(channel.numbers), channel.mark()) if channel else (set(), None)
    calls = [(name, event) for name, delivered in bus.deliver_all(events).items() for event in delivered]
    serialized = _Serialized(boto3.client("dynamodb", region_name=_region()))
    started = time.monotonic()
    with clients.use_client("dynamodb", serialized), containers(invoker.app, STAGE, env=invoker.env) as invoke, \
            ThreadPoolExecutor(max_workers=STORM_CONTAINERS) as pool:
        outcomes = list(pool.map(lambda call: _raised(invoke, *call), calls))
    for error in filter(None, outcomes):
        print(f"→ on_job_failed raised {error}", file=out)
    failures = sum(1 for error in outcomes if error)
    print(f"→ {len(calls)} invocations in {time.monotonic() - started:.1f} s, {failures} failed", file=out)
    if channel is not None and marked is not None:
        said = channel.changes(marked, "scene 2: the storm · on_job_failed")
        print("→ in the channel: " + "; ".join(said), file=out)
    _show_scene(channel, since, out, show_json)
    return failures


def _raised(invoke: Any, name: str, event: Any) -> str | None:
    try:
        invoke(name, event)
    except Exception as error:  # counted and shown: one job's failure must not hide the others'
        return f"{type(error).__name__}: {error}"
    return None


# -- scene 3: a click, end to end (the stand-in only) ---------------------------------------------
# Not a real secret: the stand-in's clicks are signed with it, and the route verifies them with it.
CLICK_SECRET = "-".join(["demo", "signing", "secret", "0123456789abcdef"])
CLICK_USER = MEMBER  # the stand-in's person in the channel; SLACK_ACTIONS_ALLOW names them
CLICK_QUEUE = "etl-ondemand-queue"
CLICK_JOB_NAME = "nightly-etl-load-2024-05-14"
ACTIONS_PATH = "/slack/actions"


@dataclass(frozen=True)
class DemoJob:
    """The job the click scene retries, as moto's Batch holds it."""

    job_id: str
    job_arn: str
    queue_arn: str
    definition_arn: str


def submit_demo_job(region: str) -> DemoJob:
    """In moto: a compute environment, a job queue and a job definition, and one job submitted to
    them (moto without Docker: Batch's API, no container run). Call inside a ``mock_aws`` whose
    config says ``{"batch": {"use_docker": False}}``."""
    import boto3

    role = boto3.client("iam", region_name=region).create_role(
        RoleName="batch-notify-demo-batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = boto3.client("batch", region_name=region)
    environment = batch.create_compute_environment(computeEnvironmentName="etl-ondemand-ce", type="UNMANAGED",
                                                   state="ENABLED", serviceRole=role)
    queue = batch.create_job_queue(jobQueueName=CLICK_QUEUE, state="ENABLED", priority=1, computeEnvironmentOrder=[
        {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}])["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName="nightly-etl", type="container", parameters={"date": "2024-05-14"},
        containerProperties={"image": "busybox", "command": ["python", "-m", "etl.load", "--date", "Ref::date"],
                             "resourceRequirements": [{"type": "VCPU", "value": "2"},
                                                      {"type": "MEMORY", "value": "4096"}]})["jobDefinitionArn"]
    submitted = batch.submit_job(jobName=CLICK_JOB_NAME, jobQueue=queue, jobDefinition=definition,
                                 tags={"team": "data"})
    return DemoJob(submitted["jobId"], submitted["jobArn"], queue, definition)


def clicked_job_failed(job: DemoJob) -> dict[str, Any]:
    """tests/events/ec2_failed.json as ``job``'s FAILED event (its id, ARN, name, queue, definition)."""
    event = copy.deepcopy(_sample("ec2_failed"))
    event["id"] = "c11c0000-0000-4000-8000-000000000003"  # an event of its own: not the sample's duplicate
    detail = event["detail"]
    detail.update(jobId=job.job_id, jobArn=job.job_arn, jobName=CLICK_JOB_NAME, jobQueue=job.queue_arn,
                  jobDefinition=job.definition_arn)
    event["resources"] = [job.job_arn]
    return event


def retries_of(job: DemoJob, region: str) -> list[str]:
    """The ids of the jobs in moto's Batch tagged as retries of ``job``."""
    import boto3

    from chalicelib.deciding.resubmit import RETRY_OF_TAG

    batch = boto3.client("batch", region_name=region)
    listed = batch.list_jobs(jobQueue=job.queue_arn, filters=[{"name": "JOB_NAME", "values": [CLICK_JOB_NAME]}])
    others = [summary["jobId"] for summary in listed["jobSummaryList"] if summary["jobId"] != job.job_id]
    described = batch.describe_jobs(jobs=others)["jobs"] if others else []
    return [d["jobId"] for d in described if d.get("tags", {}).get(RETRY_OF_TAG) == job.job_id]


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """``variables`` in os.environ for the block, and the settings read again on both sides of it.
    (The route, unlike an event handler, gets only the stage's variables on top of os.environ.)"""
    from chalicelib.core import config

    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    config.reset()
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config.reset()


def sign_and_post(app: Any, slack: SlackStandIn, channel: str, shown: Shown, job_arn: str) -> int:
    """``CLICK_USER`` clicks Retry on ``shown``, as Slack would send it: signed, with the message's
    channel, ts and blocks and a response_url for it, through the app's real route; the HTTP status."""
    from chalice.test import Client

    from tools.sign_click import build_click, form_body, sign

    response_url = slack.response_url(channel, shown.ts, user=CLICK_USER)
    payload = build_click("retry_job", job_arn, user=CLICK_USER, channel=channel, message_ts=shown.ts,
                          blocks=shown.blocks or (), response_url=response_url)
    body = form_body(payload)
    with Client(app, stage_name=STAGE, project_dir=str(ROOT)) as client:
        answer = client.http.post(ACTIONS_PATH, headers=sign(body, CLICK_SECRET), body=body)
    return int(answer.status_code)


def _buttons(shown: Shown) -> list[str]:
    """The message's buttons and selects a person acts with (link buttons left out)."""
    return [_element(element) for block in shown.blocks or () if block.get("type") == "actions"
            for element in block.get("elements", []) if "url" not in element]


def scene_click_end_to_end(bus: EventBridgeRouter, invoker: _Invoker, *, out: TextIO,
                           channel: _Channel | None, show_json: bool) -> int:
    """A FAILED job's message with buttons; Retry clicked (signed, through the real route), then
    clicked again: one new job in moto, tagged as the retry, and the message saying so."""
    if channel is None:
        print(f"\n{EVENT_RULE}\nScene: A click, end to end: left out, it plays against the stand-in only (a real "
              "Slack's clicks go\nto the deployed route, not to this process: unset the Slack settings to see it).",
              file=out)
        return 0
    from moto import mock_aws

    _scene_title("A click, end to end",
                 f"A job of {CLICK_QUEUE} in moto's Batch fails; with a signing secret and SLACK_ACTIONS_ALLOW "
                 f"naming @{CLICK_USER},\nits message has buttons. Retry is clicked (signed as Slack signs it, "
                 "posted to the app's real\nPOST /slack/actions route), then clicked again: a double click.", out)
    since, region = set(channel.numbers), invoker.env["AWS_DEFAULT_REGION"]
    allow = {"SLACK_SIGNING_SECRET": CLICK_SECRET, "SLACK_ACTIONS_ALLOW": CLICK_USER}
    # Nested in the replay's mock_aws: the same moto state, with a Batch that runs no container.
    with mock_aws(config={"batch": {"use_docker": False}}), _environment(allow):
        job = submit_demo_job(region)
        print(f"→ moto's Batch: job {job.job_id} ({CLICK_JOB_NAME}) submitted to {CLICK_QUEUE}", file=out)
        failures = _replay_one(bus, invoker, (EVENTS_DIR, "scene 3: FAILED", clicked_job_failed(job), None), None,
                               out=out, channel=channel)
        shown = next((m for m in reversed(channel.messages()) if job.job_id in _words(m)), None)
        if shown is None:
            print("→ the job's message was not posted: nothing to click", file=out)
            return failures + 1
        print("→ its buttons: " + "  ".join(_buttons(shown)), file=out)
        # What Slack puts in a click: the channel's ID (a post to a name is answered with it).
        channel_id = channel.slack.channel_ids.get(channel.channel.lstrip("#"), channel.channel)
        for click in ("Retry clicked", "Retry clicked again (a double click)"):
            seen = len(channel.slack.ephemerals)
            status = sign_and_post(invoker.app, channel.slack, channel_id, shown, job.job_arn)
            print(f"\n→ {click} by @{CLICK_USER}: POST {ACTIONS_PATH} answered HTTP {status}", file=out)
            for ephemeral in channel.slack.ephemerals[seen:]:
                print(f"  the clicker alone sees: {_plain(ephemeral['text'])}", file=out)
            now_shown = next(m for m in channel.messages() if m.ts == shown.ts)
            if now_shown.edited and now_shown.blocks != shown.blocks:
                print(f"  the message, replaced through the click's response_url: {_plain(now_shown.text)}", file=out)
            shown = now_shown
            retried = retries_of(job, region)
            print(f"  moto's Batch: {_count(len(retried), 'job', 'jobs')} tagged batch-notify:retry-of={job.job_id}"
                  + (f": {', '.join(retried)}" if retried else ""), file=out)
            failures += 0 if status == 200 else 1
    _show_scene(channel, since, out, show_json)
    return failures


def _words(shown: Shown) -> str:
    """A message's text and blocks, as one string to search."""
    return json.dumps([shown.text, shown.blocks], ensure_ascii=False)


def _show_scene(channel: _Channel | None, before: set[str], out: TextIO, show_json: bool) -> None:
    if channel is None:
        print("→ see your Slack channel", file=out)
        return
    print("\nWhat the channel shows of it:", file=out)
    show_channel(channel, out, show_json=show_json, only=frozenset(set(channel.numbers) - before))


# -- the run ---------------------------------------------------------------------------------------
def replay(paths: list[str], *, out: TextIO | None = None, slack: SlackStandIn | None = None,
           show_json: bool = False, verbose: bool = False, scenes: bool = False) -> int:
    """Replay the events; return the number of invocations that raised.

    With a bot token the handlers hold conversations, with a state table in moto (made here).
    With ``slack`` (the stand-in), say what each invocation did to the channel, then print the
    channel as it ends; ``show_json`` adds each message's Block Kit JSON and Builder link.
    ``scenes``: then play the scenes (a message updated in place, a storm collapsed and, with
    ``slack``, a click end to end), when the handlers hold conversations. The handlers' log
    lines are printed in place: warnings and errors, and with ``verbose`` every INFO line too.
    """
    from app import app  # the project's app, imported as `chalice deploy` would
    from chalicelib.core import config

    out = out or sys.stdout  # looked up now, not at import: whatever stdout is at the call
    handler = logging.StreamHandler(out)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("    log %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    channel = _Channel(slack, os.environ.get("SLACK_CHANNEL", DEMO_CHANNEL)) if slack else None
    env = invocation_environment(standin=slack is not None)
    failures = 0
    try:
        with EventBridgeRouter(registered_patterns(app)) as bus:
            config.reset()  # clients made before moto started would reach past it
            create_state_table(env[STATE_TABLE_VARIABLE], env["AWS_DEFAULT_REGION"])
            invoker = _Invoker(app, env)
            for source in _sources(paths):
                failures += _replay_one(bus, invoker, source, _demo_lines(source[0], source[2]), out=out,
                                        channel=channel)
            if channel is not None:
                print(f"\n{EVENT_RULE}\n{channel.channel} as it ends, as a person reads it: each message, edited or "
                      "not, and its thread under it", file=out)
                show_channel(channel, out, show_json=show_json)
            if scenes and _conversations():
                failures += scene_updated_in_place(bus, invoker, out=out, channel=channel, show_json=show_json)
                failures += scene_storm_collapsed(bus, invoker, out=out, channel=channel, show_json=show_json)
                failures += scene_click_end_to_end(bus, invoker, out=out, channel=channel, show_json=show_json)
    finally:
        logging.getLogger().removeHandler(handler)
    return failures


def _has_slack_settings() -> bool:
    return any(os.environ.get(name, "").strip() for name in SLACK_VARIABLES)


def _conversations() -> bool:
    """Whether the handlers hold conversations: a bot token (a webhook cannot update or thread)."""
    webhook = any(os.environ.get(name, "").strip() for name in SLACK_VARIABLES[:2])
    return not webhook and any(os.environ.get(name, "").strip() for name in SLACK_VARIABLES[2:])


def _mode_note(standin: bool) -> str:
    if not _conversations():
        return ("Conversations are off: a webhook cannot update or thread a message, so each event posts its own\n"
                "message (and the demo's scenes, which show conversations, are left out).")
    where = ("" if standin else ": it lasts for this run only, so a later run posts new\nmessages instead of "
             f"updating these. Posting at Slack's real pace ({PACE_VARIABLE}, default 1 s per message)")
    return (f"Conversations are on: a bot token, and the state table {STATE_TABLE_VARIABLE}={state_table_name()}\n"
            f"(in moto, in process, made by the replay){where}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=[str(EVENTS_DIR)], help="event files or directories")
    parser.add_argument("--json", action="store_true", help="also print each message's Block Kit JSON and a "
                                                            "Block Kit Builder link")
    parser.add_argument("--verbose", action="store_true", help="also print the handlers' INFO log lines")
    args = parser.parse_args(argv)
    from chalicelib.core import config, secrets
    config.reset()
    secrets.reset()
    # The scenes follow the sample events, not your own or a dead-letter queue's.
    scenes = any(Path(path).resolve() == EVENTS_DIR for path in args.paths)
    if _has_slack_settings():
        print("Slack settings found in the environment: posting to Slack for real.\n" + _mode_note(standin=False))
        failures = replay(args.paths, verbose=args.verbose, scenes=scenes)
        print(f"\n{EVENT_RULE}\nfailed: {failures}")
        return 1 if failures else 0
    print("No Slack settings (SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN + SLACK_CHANNEL): posting to a local Slack\n"
          "stand-in on 127.0.0.1 and printing what it shows.")
    with SlackStandIn(bot_token=DEMO_TOKEN, channels=(DEMO_CHANNEL,), channel_ids={DEMO_CHANNEL: DEMO_CHANNEL_ID}) \
            as slack:
        os.environ.update(SLACK_BOT_TOKEN=DEMO_TOKEN, SLACK_CHANNEL=DEMO_CHANNEL, SLACK_API_URL=slack.api_url)
        print(_mode_note(standin=True))
        failures = replay(args.paths, slack=slack, show_json=args.json, verbose=args.verbose, scenes=scenes)
    print(f"\n{EVENT_RULE}\nSummary: {summary(slack, DEMO_CHANNEL, failures)}."
          + ("" if args.json else " Add --json for each message's Block Kit JSON and a Block Kit Builder link."))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
