"""Click a batch-notify button from a terminal: build Slack's block_actions request, sign it as
Slack does, POST it to the actions route, print the answer and what the clicker would see.

    .venv/bin/chalice local --stage local        # in another terminal, with SLACK_SIGNING_SECRET set
    .venv/bin/python -m tools.sign_click retry_job arn:aws:batch:us-east-1:123456789012:job/0d1e2f
    .venv/bin/python -m tools.sign_click snooze arn:aws:batch:... --option 4h --user U0123ABCD

The secret comes from ``--secret`` or ``SLACK_SIGNING_SECRET`` (the one ``chalice local`` was
given). Unless ``--response-url`` is given, the click's response_url points at a Slack stand-in
this tool runs on 127.0.0.1 (tools/slack_standin.py) holding the clicked message, so the
endpoint's answer (an ephemeral text, a replaced message) is printed here and nothing reaches
Slack. Also a library for tests: :func:`build_click`, :func:`form_body`, :func:`sign`, :func:`post`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

DEFAULT_URL = "http://127.0.0.1:8000/slack/actions"  # where `chalice local` listens
USER, USER_NAME, TEAM, CHANNEL = "U0TESTUSER", "test.user", "T0TESTTEAM", "C0TESTCHAN"
MESSAGE_TS = "1715650000.000100"
# A response_url that goes nowhere (nothing listens on loopback port 9), so a payload built
# without one never has the endpoint post anywhere real, let alone to Slack.
INERT_RESPONSE_URL = "http://127.0.0.1:9/actions/inert"


def build_click(action_id: str, value: str, *, user: str = USER, user_name: str = USER_NAME, team: str = TEAM,
                channel: str = CHANNEL, message_ts: str = MESSAGE_TS, option: str | None = None,
                response_url: str = INERT_RESPONSE_URL, blocks: Sequence[dict[str, Any]] = (),
                block_id: str = "job_actions") -> dict[str, Any]:
    """Slack's ``block_actions`` payload for ``user`` clicking ``action_id`` on message
    ``message_ts`` in ``channel``: a button with ``value`` (the job ARN), or, given ``option``,
    a static select (``snooze``) with that option chosen."""
    if option is None:
        clicked: dict[str, Any] = {"type": "button", "value": value,
                                   "text": {"type": "plain_text", "text": action_id, "emoji": True}}
    else:
        clicked = {"type": "static_select",
                   "selected_option": {"text": {"type": "plain_text", "text": option}, "value": option},
                   "placeholder": {"type": "plain_text", "text": "Snooze"}}
    clicked.update(action_id=action_id, block_id=block_id, action_ts=f"{time.time():.6f}")
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user_name, "name": user_name, "team_id": team},
        "api_app_id": "A0TESTAPP",
        "token": "legacy-verification-token-unused",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "0000000000.0000000000.0000000000000000",
        "team": {"id": team, "domain": "test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "batch-alerts"},
        "message": {"type": "message", "user": "U0STANDIN", "bot_id": "B0STANDIN", "ts": message_ts,
                    "text": "a batch-notify message", "blocks": list(blocks)},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [clicked],
    }


def form_body(payload: Any) -> bytes:
    """The request body Slack sends: the payload's JSON as the one form field ``payload``."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode("ascii")


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``: its timestamp (default now) and ``v0=`` signature."""
    when = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + when.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": when,
            "X-Slack-Signature": f"v0={digest}"}


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, str]:
    """POST ``body`` to ``url`` (no proxy: the route is local); the answer's status and text."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: sign a click and post it; 0 when the route answered 200."""
    args = _parser().parse_args(argv)
    secret = args.secret or os.environ.get("SLACK_SIGNING_SECRET", "").strip()
    if not secret:
        print("sign_click: give --secret or set SLACK_SIGNING_SECRET (the secret the route verifies with)",
              file=sys.stderr)
        return 2
    if args.response_url:
        status, text = _click(args, secret, args.response_url)
        print(f"HTTP {status} {text!r}")
        return 0 if status == 200 else 1
    from tools.slack_standin import SlackStandIn  # only when the tool answers the click itself

    with SlackStandIn(channels=(args.channel,), members=(args.user,)) as standin:
        ts = standin.post_as("U0STANDIN", args.channel, "the clicked batch-notify message")
        status, text = _click(args, secret, standin.response_url(args.channel, ts, user=args.user), ts)
        print(f"HTTP {status} {text!r}")
        time.sleep(args.wait)  # a late answer (a handler that overran) arrives after the 200
        for shown in standin.ephemerals:
            print(f"ephemeral to {shown['user']}: {shown['text']}")
        for message in standin.channel_view(args.channel):
            if message.edited:
                print(f"message replaced: {message.text}")
    return 0 if status == 200 else 1


def _click(args: argparse.Namespace, secret: str, response_url: str, ts: str = MESSAGE_TS) -> tuple[int, str]:
    payload = build_click(args.action_id, args.job_arn, user=args.user, channel=args.channel, message_ts=ts,
                          option=args.option, response_url=response_url)
    body = form_body(payload)
    return post(args.url, body, sign(body, secret))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.sign_click", description=__doc__.split("\n\n")[0])
    parser.add_argument("action_id", help="retry_job, retry_job_more_memory, terminate_job, acknowledge, snooze...")
    parser.add_argument("job_arn", help="the button's value: the job's ARN")
    parser.add_argument("--option", help="the chosen option of a select (snooze: 1h, 4h, 24h, 7d)")
    parser.add_argument("--user", default=USER, help=f"the clicker's Slack user ID (default {USER})")
    parser.add_argument("--channel", default=CHANNEL, help=f"the message's channel ID (default {CHANNEL})")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the actions route (default {DEFAULT_URL})")
    parser.add_argument("--secret", help="the signing secret (default: SLACK_SIGNING_SECRET)")
    parser.add_argument("--response-url", help="the click's response_url (default: a stand-in run by this tool)")
    parser.add_argument("--wait", type=float, default=0.5, help="seconds to wait for late answers (default 0.5)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
