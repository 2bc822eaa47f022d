"""Replay Batch events through the app's real handlers, the way Lambda would run them.

    python -m tools.replay [FILE_OR_DIR ...]      (default: tests/events)

Each event is put on an emulated EventBridge bus carrying the app's own rules, to find the
handlers its patterns select; each of those is invoked through ``chalice.test`` (the same
function Lambda calls) with the ``local`` stage, whose Slack settings come from your shell:

- with ``SLACK_WEBHOOK_URL``, or ``SLACK_BOT_TOKEN`` and ``SLACK_CHANNEL``, set, the messages
  are posted to your Slack for real;
- with neither, they go to a Slack stand-in on 127.0.0.1, and this prints what it received:
  the message as a person would read it, its Block Kit JSON and a Block Kit Builder link.

Development tool: it lives outside ``chalicelib/`` so it is never deployed. It also replays
events saved from a dead-letter queue (any file holding one event, or a JSON list of them).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import quote

from chalice.test import Client

from tools.eventbridge import EventBridgeRouter, registered_patterns
from tools.slack_standin import SlackStandIn

STAGE = "local"
DEMO_TOKEN = "xoxb-demo-not-a-real-token"
DEMO_CHANNEL = "#batch-alerts"
SLACK_VARIABLES = ("SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL_PARAM", "SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_PARAM")
BUILDER_URL = "https://app.slack.com/block-kit-builder#"
EMOJI = {":x:": "❌", ":white_check_mark:": "✅", ":arrow_forward:": "▶️", ":hourglass:": "⌛",
         ":hourglass_flowing_sand:": "⏳", ":information_source:": "ℹ️", ":warning:": "⚠️", ":bulb:": "💡",
         ":page_facing_up:": "📄", ":rotating_light:": "🚨", ":clipboard:": "📋"}


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


def load_events(paths: list[str]) -> Iterator[tuple[str, Any]]:
    """(label, event) for every event in the given files and directories (sorted): single
    events, JSON lists of them, or ``aws sqs receive-message`` output from the dead-letter queue."""
    for path in map(Path, paths):
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            data = json.loads(file.read_text())
            if isinstance(data, dict) and isinstance(data.get("Messages"), list):
                data = data["Messages"]
            items = [unwrap(item) for item in (data if isinstance(data, list) else [data])]
            for i, event in enumerate(items):
                yield (file.name if len(items) == 1 else f"{file.name}[{i}]"), event


def _plain(mrkdwn: str) -> str:
    """What a person sees of mrkdwn: entities decoded, emoji shown, links as 'text (url)'."""
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2 (\1)", mrkdwn)
    for code, glyph in EMOJI.items():
        text = text.replace(code, glyph)
    return html.unescape(text)


def render(message: dict[str, Any]) -> str:
    """A terminal rendering of a posted Block Kit message."""
    lines: list[str] = []
    for block in message.get("blocks", []):
        kind = block.get("type")
        if kind == "header":
            title = _plain(block["text"]["text"])
            lines += [title, "=" * len(title)]
        elif kind == "section":
            if "text" in block:
                lines.append(_plain(block["text"]["text"]).replace("*", ""))
            fields = [_plain(f["text"]).replace("*", "").replace("\n", ": ", 1) for f in block.get("fields", [])]
            lines.extend(f"  {a:<40}{b}" for a, b in zip(fields[::2], fields[1::2] + [""]))
        elif kind == "actions":
            lines.extend(f"  [{e['text']['text']}] {e.get('url', '')}" for e in block.get("elements", []))
        elif kind == "context":
            lines.extend(f"  {_plain(e.get('text', ''))}" for e in block.get("elements", []))
    return "\n".join(lines)


def builder_link(message: dict[str, Any]) -> str:
    """Open the message in Slack's Block Kit Builder to see it as Slack draws it."""
    return BUILDER_URL + quote(json.dumps({"blocks": message.get("blocks", [])}, separators=(",", ":")))


def _has_slack_settings() -> bool:
    return any(os.environ.get(name, "").strip() for name in SLACK_VARIABLES)


def replay(paths: list[str], *, out: Any = sys.stdout, slack: Optional[SlackStandIn] = None) -> int:
    """Replay the events; return the number of invocations that raised."""
    from app import app  # the project's app, imported as `chalice deploy` would

    failures = 0
    with EventBridgeRouter(registered_patterns(app)) as bus, Client(app, stage_name=STAGE) as client:
        for label, event in load_events(paths):
            handlers = bus.matching(event) if isinstance(event, dict) else []
            status = event.get("detail", {}).get("status") if isinstance(event, dict) else None
            print(f"\n=== {label}: {event.get('detail-type') if isinstance(event, dict) else '?'} {status or ''}",
                  file=out)
            if not handlers:
                print("    no handler's pattern matches: EventBridge would not invoke the app", file=out)
                continue
            for name in handlers:
                seen = len(slack.messages) if slack else 0
                try:
                    client.lambda_.invoke(name, event)
                except Exception as error:  # show it and go on: a replay is for looking
                    failures += 1
                    print(f"--> {name} raised {type(error).__name__}: {error}", file=out)
                    continue
                if slack is None:
                    print(f"--> {name}: posted to Slack", file=out)
                    continue
                posted = slack.messages[seen:]
                if not posted:
                    print(f"--> {name}: posted nothing (see the log line above)", file=out)
                for message in posted:
                    print(f"--> {name}: this message\n", file=out)
                    print(render(message), file=out)
                    print("\n    Block Kit JSON: " + json.dumps(
                        {"text": message.get("text"), "blocks": message.get("blocks")}, ensure_ascii=False), file=out)
                    print("    Block Kit Builder: " + builder_link(message), file=out)
    return failures


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=["tests/events"], help="event files or directories")
    args = parser.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.WARNING, format="    log %(levelname)s %(name)s: %(message)s")
    from chalicelib.core import config, secrets
    config.reset()
    secrets.reset()
    if _has_slack_settings():
        print("Slack settings found in the environment: posting to Slack for real.")
        return 1 if replay(args.paths) else 0
    print("No Slack settings (SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN + SLACK_CHANNEL): posting to a local Slack\n"
          "stand-in on 127.0.0.1 and printing what it received.")
    with SlackStandIn(bot_token=DEMO_TOKEN, channels=(DEMO_CHANNEL,)) as slack:
        os.environ.update(SLACK_BOT_TOKEN=DEMO_TOKEN, SLACK_CHANNEL=DEMO_CHANNEL, SLACK_API_URL=slack.api_url)
        failures = replay(args.paths, slack=slack)
    print(f"\n{len(slack.messages)} message(s) posted, {failures} invocation(s) failed.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
