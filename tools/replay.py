"""Replay Batch events through the app's real handlers, the way Lambda would run them.

    python -m tools.replay [--json] [--verbose] [FILE_OR_DIR ...]      (default: tests/events)

Each event is put on an emulated EventBridge bus carrying the app's own rules, to find the
handlers its patterns select; each of those is invoked through ``chalice.test`` (the same
function Lambda calls) with the ``local`` stage, whose Slack settings come from your shell:

- with ``SLACK_WEBHOOK_URL``, or ``SLACK_BOT_TOKEN`` and ``SLACK_CHANNEL``, set, the messages
  are posted to your Slack for real;
- with neither, they go to a Slack stand-in on 127.0.0.1, and this prints what it received,
  one message after another, as a person would read it (``--json``: with its Block Kit JSON
  and a Block Kit Builder link).

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
import html
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from chalice.test import Client, TestLambdaClient

from tools.eventbridge import EventBridgeRouter, registered_patterns
from tools.slack_standin import SlackStandIn

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "tests" / "events"
STAGE = "local"
DEMO_TOKEN = "xoxb-demo-not-a-real-token"
DEMO_CHANNEL = "#batch-alerts"
# What the deployed stages set; the local stage's 0 is overridden for the seeded events only.
DEMO_LOG_TAIL = {"LOG_TAIL_LINES": "20"}
SLACK_VARIABLES = ("SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL_PARAM", "SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_PARAM")
BUILDER_URL = "https://app.slack.com/block-kit-builder#"
WIDTH = 100  # fields go side by side, as Slack draws them, only while a row fits in this
EVENT_RULE = "═" * 78
MESSAGE_RULE = "─" * 78
EMOJI = {":x:": "❌", ":white_check_mark:": "✅", ":arrow_forward:": "▶️", ":hourglass:": "⌛",
         ":hourglass_flowing_sand:": "⏳", ":information_source:": "ℹ️", ":warning:": "⚠️", ":bulb:": "💡",
         ":page_facing_up:": "📄", ":rotating_light:": "🚨", ":clipboard:": "📋"}

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
        return [f"  [{e['text']['text']}] {e.get('url', '')}" for e in block.get("elements", [])]
    if kind == "context":
        return [f"  {_plain(e.get('text', ''))}" for e in block.get("elements", [])]
    if kind == "divider":
        return ["  " + "-" * 40]
    return [f"  ({kind} block)"]


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


# -- the replay ------------------------------------------------------------------------------
class _Invoker:
    """The handlers, invoked through chalice.test with the local stage; for a sample event of
    tests/events whose stream the replay seeded, with the log tail on. Settings are read once
    per Lambda container, so a switch between the two starts a new one."""

    def __init__(self, app: Any) -> None:
        from chalice.cli.factory import CLIFactory

        self._plain = Client(app, stage_name=STAGE, project_dir=str(ROOT)).lambda_
        tailed = CLIFactory(str(ROOT)).create_config_obj(
            chalice_stage_name=STAGE, user_provided_params={"environment_variables": dict(DEMO_LOG_TAIL)})
        self._tailed = TestLambdaClient(app, tailed)
        self._tail_on: bool | None = None
        self.handlers = frozenset(app.handler_map)

    def invoke(self, name: str, event: Any, *, log_tail: bool) -> None:
        if self._tail_on is not None and log_tail != self._tail_on:
            from chalicelib.core import config

            config.reset()  # a new "container": the next invocation reads LOG_TAIL_LINES again
        self._tail_on = log_tail
        (self._tailed if log_tail else self._plain).invoke(name, event)


def _heading(label: str, event: Any) -> str:
    if not isinstance(event, dict):
        return f"{label} · not a JSON object"
    status = event.get("detail", {}).get("status") if isinstance(event.get("detail"), dict) else None
    return " · ".join(str(part) for part in (label, event.get("detail-type", "?"), status) if part)


def _show_posted(name: str, posted: list[dict[str, Any]], out: TextIO, show_json: bool) -> None:
    if not posted:
        print(f"→ {name} posted nothing (its log line says why; --verbose shows INFO lines)", file=out)
    for i, message in enumerate(posted):
        if i:
            print(MESSAGE_RULE, file=out)
        channel = f" to {message['channel']}" if message.get("channel") else ""
        print(f"→ {name} posted{channel}:\n", file=out)
        print(render(message), file=out)
        if show_json:
            print("\n  Block Kit JSON: " + json.dumps(
                {"text": message.get("text"), "blocks": message.get("blocks")}, ensure_ascii=False), file=out)
            print("  Block Kit Builder: " + builder_link(message), file=out)


def _replay_one(bus: EventBridgeRouter, invoker: _Invoker, source: tuple[Path, str, Any, str | None], *,
                out: TextIO, slack: SlackStandIn | None, show_json: bool) -> int:
    """Route one event, invoke each matching handler, show what it posted; return the failures.

    A dead-letter record names the handler that failed: only that one runs again."""
    file, label, event, failed = source
    print(f"\n{EVENT_RULE}\n{_heading(label, event)}", file=out)
    handlers = _handlers_for(bus, invoker, event, failed, out)
    if not handlers:
        print("→ no handler's pattern matches: EventBridge would not invoke the app", file=out)
        return 0
    lines = _demo_lines(file, event)
    if lines is not None:
        seed_log_stream(event, lines)
    # Only a seeded stream has a tail to show; any other event runs with the tail off, as the
    # local stage does, so it never shows a made-up log or a misleading "not found".
    log_tail = lines is not None
    failures = 0
    for n, name in enumerate(handlers):
        if n:
            print(MESSAGE_RULE, file=out)
        seen = len(slack.messages) if slack else 0
        try:
            invoker.invoke(name, event, log_tail=log_tail)
        except Exception as error:  # show it and go on: a replay is for looking
            failures += 1
            print(f"→ {name} raised {type(error).__name__}: {error}", file=out)
            continue
        if slack is None:
            print(f"→ {name}: posted to Slack", file=out)
        else:
            _show_posted(name, slack.messages[seen:], out, show_json)
    return failures


def _handlers_for(bus: EventBridgeRouter, invoker: _Invoker, event: Any, failed: str | None,
                  out: TextIO) -> list[str]:
    if failed is not None and failed in invoker.handlers:
        print(f"→ the dead-letter record names {failed}: only it runs again", file=out)
        return [failed]
    if failed is not None:
        print(f"→ the dead-letter record names {failed!r}, which app.py does not have: routing by pattern", file=out)
    return bus.matching(event) if isinstance(event, dict) else []


def replay(paths: list[str], *, out: TextIO | None = None, slack: SlackStandIn | None = None,
           show_json: bool = False, verbose: bool = False) -> int:
    """Replay the events; return the number of invocations that raised.

    With ``slack`` (the stand-in), print what each handler posted; ``show_json`` adds each
    message's Block Kit JSON and Builder link. The handlers' log lines are printed in place:
    warnings and errors, and with ``verbose`` every INFO line too.
    """
    from app import app  # the project's app, imported as `chalice deploy` would

    out = out or sys.stdout  # looked up now, not at import: whatever stdout is at the call
    handler = logging.StreamHandler(out)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("    log %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    failures = 0
    try:
        with EventBridgeRouter(registered_patterns(app)) as bus:
            invoker = _Invoker(app)
            for source in _sources(paths):
                failures += _replay_one(bus, invoker, source, out=out, slack=slack, show_json=show_json)
    finally:
        logging.getLogger().removeHandler(handler)
    return failures


def _has_slack_settings() -> bool:
    return any(os.environ.get(name, "").strip() for name in SLACK_VARIABLES)


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
    if _has_slack_settings():
        print("Slack settings found in the environment: posting to Slack for real.")
        return 1 if replay(args.paths, verbose=args.verbose) else 0
    print("No Slack settings (SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN + SLACK_CHANNEL): posting to a local Slack\n"
          "stand-in on 127.0.0.1 and printing what it received.")
    with SlackStandIn(bot_token=DEMO_TOKEN, channels=(DEMO_CHANNEL,)) as slack:
        os.environ.update(SLACK_BOT_TOKEN=DEMO_TOKEN, SLACK_CHANNEL=DEMO_CHANNEL, SLACK_API_URL=slack.api_url)
        failures = replay(args.paths, slack=slack, show_json=args.json, verbose=args.verbose)
    print(f"\n{EVENT_RULE}\n{len(slack.messages)} message(s) posted, {failures} invocation(s) failed."
          + ("" if args.json else " Add --json for each message's Block Kit JSON and a Block Kit Builder link."))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
