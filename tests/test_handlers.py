"""Functional: chalice.test -> real handler -> slack-sdk -> a Slack stand-in on 127.0.0.1.

Both delivery modes, the shipped stages with their secret in SSM (moto), and Slack's
failure answers. Each failure test checks the HTTP attempts, whether the handler raised,
and that the time taken stays inside the delivery budget.
"""

from __future__ import annotations

import logging
import time

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from app import app
from chalicelib.composing.messages import build_job_state_message
from chalicelib.core import secrets
from chalicelib.core.config import ConfigError
from chalicelib.core.secrets import SecretError
from chalicelib.delivering.slack import DeliveryError, PermanentDeliveryError
from chalicelib.reading.event import JobStateChange
from tests.conftest import BOT_TOKEN as TOKEN
from tests.conftest import PROD_CHANNEL, TEST_CHANNEL, closed_port, load_event
from tools.slack_standin import Reply


def invoke(handler, event_name, stage="local"):
    with Client(app, stage_name=stage) as client:
        return client.lambda_.invoke(handler, load_event(event_name))


def expected_payload(event_name):
    return build_job_state_message(JobStateChange.from_event(load_event(event_name))).to_dict()


def test_webhook_mode_posts_the_built_message(webhook):
    invoke("on_job_failed", "ec2_failed")
    [request] = webhook.requests
    assert request.path == "/services/TTEST/BTEST/testsecret" and request.reply_status == 200
    assert request.body == expected_payload("ec2_failed")


def test_bot_mode_posts_to_the_channel_with_the_token(bot):
    invoke("on_job_succeeded", "ec2_succeeded")
    [request] = bot.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.body["channel"] == TEST_CHANNEL
    assert request.body["blocks"] == expected_payload("ec2_succeeded")["blocks"]
    assert request.body["unfurl_links"] is False


@mock_aws
def test_dev_stage_reads_the_webhook_from_ssm_once_per_container(slack):
    boto3.client("ssm").put_parameter(Name="/batch-notify/dev/slack-webhook-url", Value=slack.webhook_url,
                                      Type="SecureString")
    calls = []
    secrets.ssm_client().meta.events.register("before-call.ssm.GetParameter", lambda **kw: calls.append(kw))
    invoke("on_job_failed", "ec2_failed", stage="dev")
    invoke("on_job_failed", "fargate_failed", stage="dev")
    assert len(slack.messages) == 2
    assert len(calls) == 1


@mock_aws
def test_prod_stage_reads_the_bot_token_from_ssm(slack, monkeypatch):
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    boto3.client("ssm").put_parameter(Name="/batch-notify/prod/slack-bot-token", Value=TOKEN, Type="SecureString")
    invoke("on_job_failed", "timeout_failed", stage="prod")
    [request] = slack.requests
    assert request.body["channel"] == PROD_CHANNEL and request.reply_status == 200
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


@mock_aws
def test_missing_ssm_parameter_names_it(slack):
    with pytest.raises(SecretError, match=r"'/batch-notify/dev/slack-webhook-url' .*SLACK_WEBHOOK_URL_PARAM"):
        invoke("on_job_failed", "ec2_failed", stage="dev")
    assert slack.requests == []


def test_no_slack_settings_fails_naming_the_variables():
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL_PARAM"):
        invoke("on_job_failed", "ec2_failed")


def test_rate_limit_honours_retry_after_and_delivers_once(bot):
    bot.script(Reply(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"}))
    started = time.monotonic()
    invoke("on_job_failed", "ec2_failed")
    first, second = bot.requests
    assert (first.reply_status, second.reply_status) == (429, 200)
    assert second.received_at - first.received_at >= 1.0
    assert len(bot.messages) == 1 and time.monotonic() - started < 5


def test_webhook_rate_limit_is_retried_too(webhook):
    webhook.script(Reply(status=429, body="rate_limited", headers={"Retry-After": "1"}))
    invoke("on_job_failed", "ec2_failed")
    assert [r.reply_status for r in webhook.requests] == [429, 200]


def test_a_retry_after_longer_than_the_budget_raises_at_once(bot, monkeypatch):
    monkeypatch.setenv("SLACK_DELIVERY_BUDGET_SECONDS", "5")
    bot.script(Reply(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "30"}))
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="429 'ratelimited'") as error:
        invoke("on_job_failed", "ec2_failed")
    assert not isinstance(error.value, PermanentDeliveryError)
    assert len(bot.requests) == 1 and time.monotonic() - started < 2


def test_server_errors_are_retried_then_delivered(bot):
    bot.script(Reply(status=500, body={"ok": False}), Reply(status=502, body="bad gateway"))
    invoke("on_job_failed", "ec2_failed")
    assert [r.reply_status for r in bot.requests] == [500, 502, 200]


def test_persistent_server_errors_raise_so_lambda_retries(webhook):
    webhook.script(*[Reply(status=503, body="unavailable")] * 5)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="503") as error:
        invoke("on_job_failed", "ec2_failed")
    assert not isinstance(error.value, PermanentDeliveryError)
    assert len(webhook.requests) == 3  # first try + 2 retries
    assert time.monotonic() - started < 20


def test_invalid_auth_raises_at_once_with_the_fix_and_without_the_token(bot):
    bot.script(Reply(body={"ok": False, "error": "invalid_auth"}))
    with pytest.raises(PermanentDeliveryError, match="SLACK_BOT_TOKEN") as error:
        invoke("on_job_failed", "ec2_failed")
    assert len(bot.requests) == 1
    assert TOKEN not in str(error.value)


def test_unknown_channel_says_which_channel(bot, monkeypatch):
    monkeypatch.setenv("SLACK_CHANNEL", "C0NOTTHERE")
    with pytest.raises(PermanentDeliveryError, match="C0NOTTHERE"):
        invoke("on_job_failed", "ec2_failed")
    assert [r.body["channel"] for r in bot.requests] == ["C0NOTTHERE"]


def test_dead_webhook_raises_without_showing_its_url(slack, monkeypatch):
    dead = slack.base_url + "services/TDEAD/BDEAD/deadsecret"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", dead)
    with pytest.raises(PermanentDeliveryError, match="no_service") as error:
        invoke("on_job_failed", "ec2_failed")
    assert "deadsecret" not in str(error.value) and len(slack.requests) == 1


def test_connection_refused_is_retried_then_raises_without_the_url(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"http://127.0.0.1:{closed_port()}/services/T/B/refusedsecret")
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="could not reach Slack after 3 attempt") as error:
        invoke("on_job_failed", "ec2_failed")
    assert "refusedsecret" not in str(error.value)
    assert time.monotonic() - started < 20


def test_read_timeout_is_bounded(bot, monkeypatch):
    monkeypatch.setenv("SLACK_REQUEST_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("SLACK_DELIVERY_BUDGET_SECONDS", "3")
    ok = {"ok": True, "channel": TEST_CHANNEL, "ts": "1.000100"}
    bot.script(*[Reply(delay=2.5, body=ok)] * 3)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="TimeoutError") as error:
        invoke("on_job_failed", "ec2_failed")
    assert not isinstance(error.value, PermanentDeliveryError)
    # the first try times out after 1 s; a retry starts only if it can end within the budget
    assert 1 <= len(bot.requests) <= 2
    assert time.monotonic() - started < 3 + 1 + 1  # budget + one request timeout + slack


def test_an_event_that_is_not_a_job_state_change_is_logged_not_crashed(bot, caplog):
    event = load_event("job_queue_blocked")
    invoke("on_job_failed", "job_queue_blocked")
    assert bot.requests == []
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert event["id"] in record.getMessage() and "Batch Job Queue Blocked" in record.getMessage()


def test_missing_fields_notify_with_what_is_there_and_say_what_is_missing(bot, caplog):
    invoke("on_job_failed", "detail_missing_fields")
    assert len(bot.messages) == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "jobName, jobQueue, jobDefinition" in warning.getMessage()


def test_secrets_never_reach_a_log_line_even_at_debug(slack, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    slack.script(Reply(status=500, body="oops"))
    invoke("on_job_failed", "ec2_failed")
    monkeypatch.delenv("SLACK_WEBHOOK_URL")
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_CHANNEL", TEST_CHANNEL)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    from chalicelib.core import config
    config.reset()
    invoke("on_job_failed", "ec2_failed")
    assert len(slack.messages) == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged.count('"outcome": "posted"') == 2
    assert "testsecret" not in logged and TOKEN not in logged
