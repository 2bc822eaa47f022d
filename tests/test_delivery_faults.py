"""Delivery under injected faults: for each, the HTTP attempts, a time bound, and whether the
handler raised (so Lambda retries) or not. Slack is the loopback stand-in; SSM is unreachable."""

from __future__ import annotations

import json
import logging
import time

import pytest
from chalice.test import Client

from app import app
from chalicelib.core import secrets
from chalicelib.core.secrets import SecretError
from chalicelib.delivering.slack import DeliveryError, PermanentDeliveryError
from tests.conftest import BOT_TOKEN as TOKEN
from tests.conftest import TEST_CHANNEL, closed_port, load_event
from tools.slack_standin import Reply


def invoke(event_name="ec2_failed"):
    with Client(app, stage_name="local") as client:
        client.lambda_.invoke("on_job_failed", load_event(event_name))


def timed_failure(expected):
    started = time.monotonic()
    with pytest.raises(expected) as error:
        invoke()
    return error.value, time.monotonic() - started


@pytest.mark.parametrize("code, hint", [
    ("invalid_auth", "SLACK_BOT_TOKEN"),
    ("token_revoked", "reinstall the app"),
    ("channel_not_found", TEST_CHANNEL),
    ("not_in_channel", "/invite"),
    ("is_archived", "archived"),
    ("missing_scope", "chat:write"),
])
def test_bot_errors_no_retry_fixes_raise_at_once_with_the_fix(bot, code, hint):
    bot.script(Reply(body={"ok": False, "error": code}))
    error, seconds = timed_failure(PermanentDeliveryError)
    assert hint in str(error) and TOKEN not in str(error)
    assert len(bot.requests) == 1 and seconds < 2


@pytest.mark.parametrize("status, body, hint", [
    (404, "no_service", "create a new one"),
    (403, "invalid_token", "create a new webhook"),
    (410, "channel_is_archived", "archived"),
    (403, "action_prohibited", "admin"),
])
def test_webhook_errors_no_retry_fixes_raise_at_once(webhook, status, body, hint):
    webhook.script(Reply(status=status, body=body))
    error, seconds = timed_failure(PermanentDeliveryError)
    assert hint in str(error) and "testsecret" not in str(error)
    assert len(webhook.requests) == 1 and seconds < 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_each_server_error_is_retried_and_then_delivered(bot, status):
    bot.script(Reply(status=status, body="upstream trouble"))
    invoke()
    assert [r.reply_status for r in bot.requests] == [status, 200]
    assert len(bot.messages) == 1


def test_rate_limited_three_times_then_ok_is_delivered_once(bot):
    bot.script(*[Reply(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "0"})] * 3)
    invoke()
    assert [r.reply_status for r in bot.requests] == [429, 429, 429, 200]
    assert len(bot.messages) == 1


def test_rate_limited_past_the_budget_raises_for_lambda_to_retry(bot, monkeypatch):
    # The budget, not a retry count, ends the waiting: every Retry-After that fits is honoured.
    monkeypatch.setenv("SLACK_DELIVERY_BUDGET_SECONDS", "4")
    monkeypatch.setenv("SLACK_REQUEST_TIMEOUT_SECONDS", "1")
    bot.script(*[Reply(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"})] * 20)
    error, seconds = timed_failure(DeliveryError)
    assert not isinstance(error, PermanentDeliveryError) and "429" in str(error)
    # each wait is Retry-After + up to 1 s of jitter, and one starts only with room for it + a request
    assert 2 <= len(bot.requests) <= 3 and bot.messages == []
    assert seconds < 4 + 1


@pytest.mark.parametrize("mode, reply", [
    ("bot", Reply(body={"ok": False, "error": "msg_too_long"})),
    ("bot", Reply(body={"ok": False, "error": "invalid_blocks", "errors": ["must be less than 3001 characters"]})),
    ("webhook", Reply(status=400, body="invalid_blocks")),
])
def test_a_rejected_message_falls_back_once_to_plain_text(request, caplog, mode, reply):
    slack = request.getfixturevalue(mode)
    slack.script(reply)
    invoke()
    first, second = slack.requests
    assert "blocks" in first.body and "blocks" not in second.body
    assert second.body["text"].startswith(":x: Job failed: nightly-etl-load-2024-05-13")
    assert "Slack rejected the full message" in second.body["text"]
    [warning] = [json.loads(r.getMessage()) for r in caplog.records if "plain text" in r.getMessage()]
    assert warning["payload_bytes"] == len(json.dumps(first.body if mode == "webhook" else {
        "text": first.body["text"], "blocks": first.body["blocks"]}).encode())


def test_a_rejected_fallback_raises_after_exactly_two_attempts(bot):
    bot.script(Reply(body={"ok": False, "error": "msg_too_long"}), Reply(body={"ok": False, "error": "msg_too_long"}))
    error, _ = timed_failure(PermanentDeliveryError)
    assert error.code == "msg_too_long" and len(bot.requests) == 2


def test_unreachable_ssm_fails_fast_naming_the_parameter(slack, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("SLACK_WEBHOOK_URL_PARAM", "/batch-notify/dev/slack-webhook-url")
    sends = []
    secrets.ssm_client().meta.events.register("before-send.ssm.GetParameter", lambda **kw: sends.append(1))
    started = time.monotonic()
    reading = "could not reach SSM to read parameter '/batch-notify/dev/slack-webhook-url'"
    with pytest.raises(SecretError, match=reading):
        invoke()
    assert len(sends) <= 2  # one try and one retry: no retry storm inside one invocation
    assert time.monotonic() - started < 10
    assert slack.requests == []


def test_the_failure_log_line_names_the_event_and_never_the_secret(bot, caplog):
    caplog.set_level(logging.DEBUG)
    bot.script(Reply(body={"ok": False, "error": "invalid_auth"}))
    with pytest.raises(PermanentDeliveryError):
        invoke()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    failed = [line for line in lines if line.get("outcome") == "failed"]
    assert len(failed) == 1 and failed[0]["event_id"] == load_event("ec2_failed")["id"]
    assert "invalid_auth" in failed[0]["reason"]
    assert TOKEN not in "\n".join(r.getMessage() for r in caplog.records)
