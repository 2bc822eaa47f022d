"""Delivery against hostile servers (tests/hostile_http.py on 127.0.0.1): redirects, answers
that are not Slack's success, servers that drip, oversized answers, odd Retry-After values.
For each: the HTTP requests the server saw, what the error says (and never says), and a
wall-clock bound where a deadline is promised."""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app import app
from chalicelib.composing.messages import SlackMessage, build_job_state_message
from chalicelib.core import masking
from chalicelib.core.config import SlackSettings, load_slack_settings
from chalicelib.delivering.slack import (
    DEFAULT_RETRY_AFTER,
    DeliveryError,
    MessageRef,
    PermanentDeliveryError,
    Slack,
    deliver,
    retry_after_seconds,
)
from chalicelib.delivering.slack_http import MAX_ANSWER_BYTES
from chalicelib.reading.event import JobStateChange
from tests.conftest import FAKE_BOT_TOKEN, TEST_CHANNEL, closed_port, load_event
from tests.hostile_http import HostileServer, answer, drip, redirect, stream

MESSAGE = build_job_state_message(JobStateChange.from_event(load_event("ec2_failed")))
RATELIMITED = {"ok": False, "error": "ratelimited"}


@pytest.fixture(autouse=True)
def no_secret_registered_yet() -> Iterator[None]:
    # Each test proves for itself that deliver() registers its secret with the masking.
    masking.forget()
    yield
    masking.forget()


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        yield hostile


@pytest.fixture
def elsewhere() -> Iterator[HostileServer]:
    """Another host (port) a redirect points to: it must never be contacted."""
    with HostileServer() as other:
        yield other


def webhook_path() -> str:
    return "/services/" + "/".join(["T00000000", "B00000000", "W" * 24])


def settings_for(mode: str, server: HostileServer, **env: str) -> SlackSettings:
    base = ({"SLACK_BOT_TOKEN": FAKE_BOT_TOKEN, "SLACK_CHANNEL": TEST_CHANNEL, "SLACK_API_URL": server.url + "/api/"}
            if mode == "bot" else {"SLACK_WEBHOOK_URL": server.url + webhook_path()})
    return load_slack_settings({**base, **env})


def failure(mode: str, server: HostileServer, **env: str) -> tuple[DeliveryError, float]:
    started = time.monotonic()
    with pytest.raises(DeliveryError) as raised:
        deliver(MESSAGE, settings_for(mode, server, **env))
    return raised.value, time.monotonic() - started


def requests_in(error: Exception) -> int:
    """The number of HTTP requests the error message reports."""
    text = str(error)
    marker = " HTTP request(s) in "
    assert marker in text, text
    return int(text[:text.index(marker)].rsplit(" ", 1)[-1].lstrip("("))


def assert_no_secret(text: str) -> None:
    assert FAKE_BOT_TOKEN not in text and webhook_path() not in text and "W" * 24 not in text


# -- 1. The secret stays with its host ------------------------------------------------------------

@pytest.mark.parametrize("mode", ["bot", "webhook"])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_refused_and_its_target_never_contacted(server, elsewhere, caplog, mode, status):
    caplog.set_level(logging.DEBUG)
    server.script(redirect(status, f"{elsewhere.url}/steal?token={FAKE_BOT_TOKEN}"))
    error, _ = failure(mode, server)
    assert elsewhere.connections == 0 and elsewhere.requests == []  # so never the Authorization header
    assert len(server.requests) == 1 == requests_in(error)
    assert not isinstance(error, PermanentDeliveryError)
    text = str(error)
    assert "redirect" in text and "refused" in text and "127.0.0.1" in text
    assert "steal" not in text and "token=" not in text
    assert_no_secret(text + "\n".join(r.getMessage() for r in caplog.records))


@pytest.mark.parametrize("call", ["update", "reply"])
def test_updates_and_replies_refuse_redirects_too(server, elsewhere, call):
    # Every call of the seam goes through the one bounded transport.
    server.script(redirect(307, f"{elsewhere.url}/api/chat.{call}"))
    slack, ref = Slack(settings_for("bot", server)), MessageRef(TEST_CHANNEL, "1700000000.000100")
    with pytest.raises(DeliveryError) as raised:
        slack.update(ref, MESSAGE) if call == "update" else slack.reply(ref, MESSAGE)
    assert elsewhere.requests == [] and len(server.requests) == 1 == requests_in(raised.value)
    assert "refused" in str(raised.value)
    assert_no_secret(str(raised.value))


# -- 2. Only Slack's success counts -----------------------------------------------------------------

@pytest.mark.parametrize("reply, words", [
    pytest.param(answer(body=b"<html><title>Captive portal</title>" + webhook_path().encode() + b"</html>",
                        content_type="text/html"), "text/html", id="html"),
    pytest.param(answer(body={"ok": True}), "application/json", id="json"),
    pytest.param(answer(body=b""), "0 bytes", id="empty"),
])
def test_a_webhook_post_counts_only_when_slack_answers_ok(server, reply, words):
    server.script(reply, answer(body="ok"))
    error, _ = failure("webhook", server)
    assert not isinstance(error, PermanentDeliveryError)
    assert "HTTP 200" in str(error) and words in str(error) and "not counted as posted" in str(error)
    assert "Captive" not in str(error) and '"ok"' not in str(error)
    assert_no_secret(str(error))
    # the literal answer Slack gives is a delivery
    assert deliver(MESSAGE, settings_for("webhook", server)).attempts == 1


@pytest.mark.parametrize("reply", [
    pytest.param(answer(body=b"<html>Sign in to the network. Authorization: Bearer " + FAKE_BOT_TOKEN.encode()
                        + b"</html>", content_type="text/html"), id="html"),
    pytest.param(answer(body={"ok": "yes"}), id="ok-not-true"),
    pytest.param(answer(body=b"[true]", content_type="application/json"), id="json-array"),
])
def test_bot_mode_counts_only_a_json_object_with_ok_true(server, reply):
    server.script(reply, answer(body={"ok": True, "channel": TEST_CHANNEL, "ts": "1.0"}))
    error, _ = failure("bot", server)
    assert not isinstance(error, PermanentDeliveryError)
    assert "HTTP 200" in str(error) and "<html" not in str(error) and "Sign in" not in str(error)
    assert_no_secret(str(error))
    assert deliver(MESSAGE, settings_for("bot", server)).attempts == 1


@pytest.mark.parametrize("mode, status", [("webhook", 404), ("bot", 400)])
def test_an_error_page_is_described_never_echoed(server, mode, status):
    # A proxy's error page may echo the request: the webhook's URL, the bearer token.
    echo = f"<html>{status}: POST {server.url}{webhook_path()} Authorization: Bearer {FAKE_BOT_TOKEN}</html>"
    server.script(answer(status, body=echo.encode(), content_type="text/html"))
    error, _ = failure(mode, server)
    assert f"HTTP {status} (text/html" in str(error) and "<html" not in str(error)
    assert_no_secret(str(error))
    assert masking.mask(FAKE_BOT_TOKEN if mode == "bot" else server.url + webhook_path()) == masking.MASKED


# -- 3. Every wait has a wall-clock bound --------------------------------------------------------

@pytest.mark.parametrize("mode, where", [("bot", "headers"), ("webhook", "body")])
def test_a_dripping_server_is_cut_off_at_the_delivery_budget(server, mode, where):
    server.script(drip(where, every=0.5, count=30))  # 15 s to answer in full
    error, seconds = failure(mode, server, SLACK_DELIVERY_BUDGET_SECONDS="2", SLACK_REQUEST_TIMEOUT_SECONDS="5")
    assert seconds < 2 + 1.5
    assert "TimeoutError" in str(error) and len(server.requests) == 1 == requests_in(error)


@pytest.mark.parametrize("declare_length", [True, False])
def test_an_oversized_answer_is_not_read_past_the_cap(server, declare_length):
    size = 60 * 1024 * 1024
    server.script(stream(size, declare_length=declare_length))
    tracemalloc.start()
    try:
        error, _ = failure("webhook", server)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"reads at most {MAX_ANSWER_BYTES}" in str(error) and "not counted as posted" in str(error)
    assert peak < 8 * MAX_ANSWER_BYTES  # a 60 MB answer read in full would be 60 MB and more
    # the client stopped reading: what the server got out is what loopback buffers hold
    assert server.bytes_sent < size // 4


# -- 4. Retry-After in every shape ----------------------------------------------------------------

def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize("retry_after", ["-1", "abc", "1.5", "http-date"])
def test_each_retry_after_is_waited_sensibly_and_the_requests_counted(server, retry_after):
    value = http_date(1) if retry_after == "http-date" else retry_after
    server.script(answer(429, body=RATELIMITED, headers={"Retry-After": value}),
                  answer(429, body=RATELIMITED, headers={"Retry-After": "99999"}))
    error, seconds = failure("bot", server, SLACK_DELIVERY_BUDGET_SECONDS="3.5", SLACK_REQUEST_TIMEOUT_SECONDS="0.5")
    assert seconds < 3.5 + 1.5
    assert len(server.requests) == 2 == requests_in(error)
    assert "429 'ratelimited'" in str(error) and "wait 99999 s (Retry-After)" in str(error)


def test_a_retry_after_beyond_the_budget_gives_up_at_once_saying_so(server):
    server.script(answer(429, body=RATELIMITED, headers={"Retry-After": "99999"}))
    error, seconds = failure("webhook", server, SLACK_DELIVERY_BUDGET_SECONDS="5")
    assert seconds < 1.5 and not isinstance(error, PermanentDeliveryError)
    assert "wait 99999 s (Retry-After)" in str(error) and "left of SLACK_DELIVERY_BUDGET_SECONDS" in str(error)
    assert len(server.requests) == 1 == requests_in(error)


NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("value, seconds", [
    ("30", 30.0), ("1.5", 1.5), ("0", 0.0), (" 2 ", 2.0), ("99999", 99999.0),
    ("-1", DEFAULT_RETRY_AFTER), ("abc", DEFAULT_RETRY_AFTER), ("", DEFAULT_RETRY_AFTER),
    ("nan", DEFAULT_RETRY_AFTER), (None, DEFAULT_RETRY_AFTER),
    (email.utils.format_datetime(NOW + timedelta(seconds=7), usegmt=True), 7.0),
    (email.utils.format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),  # already past: no wait
])
def test_retry_after_values(value, seconds):
    assert retry_after_seconds(value, now=NOW) == seconds


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=40), st.floats().map(repr), st.integers().map(str)))
def test_any_retry_after_gives_a_wait_and_never_raises(value):
    wait = retry_after_seconds(value, now=NOW)
    assert wait >= 0 and not math.isnan(wait)


# -- 5. The error counts every request, the plain-text fallback included ------------------------

def test_the_count_includes_the_plain_text_fallback(server):
    server.script(answer(body={"ok": False, "error": "msg_too_long"}),
                  answer(429, body=RATELIMITED, headers={"Retry-After": "99999"}))
    error, _ = failure("bot", server)
    assert len(server.requests) == 2 == requests_in(error)
    assert "blocks" in json.loads(server.requests[0].body) and "blocks" not in json.loads(server.requests[1].body)


def test_a_refused_connection_is_an_attempt_but_no_http_request():
    port = closed_port()
    settings = load_slack_settings({"SLACK_WEBHOOK_URL": f"http://127.0.0.1:{port}{webhook_path()}",
                                    "SLACK_DELIVERY_BUDGET_SECONDS": "1", "SLACK_REQUEST_TIMEOUT_SECONDS": "0.5"})
    with pytest.raises(DeliveryError) as raised:
        deliver(MESSAGE, settings)
    assert "could not reach Slack after 1 attempt(s)" in str(raised.value) and requests_in(raised.value) == 0
    assert_no_secret(str(raised.value))


# -- The handler path: the JSON log line tells the truth -----------------------------------------

def invoke_failed_handler() -> None:
    with Client(app, stage_name="local") as client:
        client.lambda_.invoke("on_job_failed", load_event("ec2_failed"))


def outcome_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    return [line for line in lines if "outcome" in line]


def test_the_handler_logs_a_refused_redirect_as_failed(server, elsewhere, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SLACK_BOT_TOKEN", FAKE_BOT_TOKEN)
    monkeypatch.setenv("SLACK_CHANNEL", TEST_CHANNEL)
    monkeypatch.setenv("SLACK_API_URL", server.url + "/api/")
    server.script(redirect(302, elsewhere.url + "/api/chat.postMessage"))
    with pytest.raises(DeliveryError):
        invoke_failed_handler()
    [line] = outcome_lines(caplog)
    assert line["outcome"] == "failed" and "redirect" in line["reason"]
    assert elsewhere.requests == []
    assert_no_secret("\n".join(r.getMessage() for r in caplog.records))


def test_the_handler_logs_an_html_200_from_a_webhook_as_failed(server, caplog, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", server.url + webhook_path())
    server.script(answer(body=b"<html>Welcome to the hotel wifi</html>", content_type="text/html"))
    with pytest.raises(DeliveryError):
        invoke_failed_handler()
    [line] = outcome_lines(caplog)
    assert line["outcome"] == "failed" and "text/html" in line["reason"] and "hotel" not in line["reason"]


# -- found by an outside review ----------------------------------------------------------------------

def test_an_answer_cut_short_of_its_content_length_is_not_a_delivery(server):
    def broken_off(request, out):  # says 1,000 bytes, sends "ok", closes
        out.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\nConnection: close\r\n\r\nok")

    server.script(broken_off)
    error, _ = failure("webhook", server, SLACK_DELIVERY_BUDGET_SECONDS="2")
    assert "ended before its declared length" in str(error)


def test_a_status_line_of_backslashes_cannot_hold_the_invocation(server):
    # http.client quotes a bad status line whole in its error; the masking must stay linear on it.
    def backslashes(request, out):
        out.send(b"X" + b"\\" * 60_000 + b"\r\n\r\n")

    server.script(backslashes)
    started = time.monotonic()
    error, _ = failure("bot", server, SLACK_DELIVERY_BUDGET_SECONDS="2", SLACK_REQUEST_TIMEOUT_SECONDS="1")
    assert time.monotonic() - started < 2 + 1.5
    assert len(str(error)) < 1000  # the server's text is cut, not quoted whole


def test_a_secret_a_job_logged_is_masked_in_the_message_itself(server):
    # The webhook's path in a log line the tail shows: Slack must never be sent it.
    line = f"DEBUG http.client: send: b'POST {webhook_path()} HTTP/1.1'"
    message = SlackMessage(text=f"failed: {line}", blocks=())
    deliver(message, settings_for("webhook", server))
    [request] = server.requests
    assert "W" * 24 not in request.body.decode()
