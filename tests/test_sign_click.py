"""tools/sign_click.py: its requests are what Slack sends, and its command line shows the answer."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier

from chalicelib.interactions.clicks import Action, click_from_payload, parse_click
from tools import sign_click

SECRET = "5e6f7a8b" * 4  # fake, shaped like a Slack signing secret
ARN = "arn:aws:batch:us-east-1:123456789012:job/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


def test_a_built_click_is_a_block_actions_payload_the_endpoint_reads():
    click = click_from_payload(sign_click.build_click("retry_job", ARN, user="U0ABCDEF", channel="C0XYZ"))
    assert (click.user_id, click.channel_id, click.action.action_id, click.action.value) == (
        "U0ABCDEF", "C0XYZ", "retry_job", ARN)
    snooze = click_from_payload(sign_click.build_click("snooze", ARN, option="24h"))
    assert (snooze.action.kind, snooze.action.value) == ("static_select", "24h")


def test_the_default_response_url_goes_nowhere_real():
    assert sign_click.INERT_RESPONSE_URL.startswith("http://127.0.0.1:9/")


@given(action_id=st.text(min_size=1, max_size=40), value=st.text(min_size=1, max_size=200),
       timestamp=st.integers(0, 2**33))
def test_the_form_body_round_trips_and_the_signature_is_slacks(action_id, value, timestamp):
    payload = sign_click.build_click(action_id, value)
    body = sign_click.form_body(payload)
    assert json.loads(parse_qs(body.decode())["payload"][0]) == payload
    assert parse_click(body.decode()).action == Action(action_id, "job_actions", "button", value)
    headers = sign_click.sign(body, SECRET, timestamp)
    verifier = SignatureVerifier(SECRET, clock=FakeClock(timestamp))
    assert verifier.is_valid(body.decode(), headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert not SignatureVerifier("0" * 32, clock=FakeClock(timestamp)).is_valid(
        body.decode(), headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


class _Route(BaseHTTPRequestHandler):
    """Plays the actions route: verifies the signature, answers the click through its response_url."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = SignatureVerifier(SECRET).is_valid(body, self.headers["X-Slack-Request-Timestamp"],
                                                self.headers["X-Slack-Signature"])
        if ok:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
            self.server.payloads.append(payload)  # type: ignore[attr-defined]
            answer = json.dumps({"text": f"got {payload['actions'][0]['action_id']}", "replace_original": False})
            request = urllib.request.Request(payload["response_url"], data=answer.encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5).close()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def route() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Route)
    server.payloads = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/slack/actions"


def test_the_command_line_signs_posts_and_prints_what_the_clicker_sees(route, capsys, monkeypatch):
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    assert sign_click.main(["snooze", ARN, "--option", "1h", "--url", _url(route), "--wait", "0"]) == 0
    out = capsys.readouterr().out
    assert "HTTP 200" in out and f"ephemeral to {sign_click.USER}: got snooze" in out
    [payload] = route.payloads  # type: ignore[attr-defined]
    assert payload["actions"][0]["selected_option"]["value"] == "1h"


def test_a_wrong_secret_shows_the_refusal_and_fails(route, capsys):
    assert sign_click.main(["retry_job", ARN, "--url", _url(route), "--secret", "f" * 32, "--wait", "0"]) == 1
    assert "HTTP 401" in capsys.readouterr().out


def test_no_secret_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    assert sign_click.main(["retry_job", ARN]) == 2
    assert "SLACK_SIGNING_SECRET" in capsys.readouterr().err
