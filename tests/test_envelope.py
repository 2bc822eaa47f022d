"""Malformed EventBridge envelopes reach our code, are logged once, and are skipped.

Chalice builds its event object before any handler code runs; with Chalice's own class an
envelope missing ``id`` (or ``time``, ``region``...) raised ``KeyError`` there, Lambda retried
it and nothing was logged. Every handler is driven through ``chalice.test`` (the function
Lambda calls), so these tests go through the same layer as a real invocation.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import boto3
import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from app import app
from chalicelib.core import config
from tests.conftest import load_event
from tools.slack_standin import SlackStandIn

ENVELOPE_FIELDS = ("id", "time", "region", "account", "resources", "version")
EVENT_HANDLERS = {"on_job_failed": "ec2_failed", "on_job_succeeded": "ec2_succeeded",
                  "on_job_queue_blocked": "job_queue_blocked", "on_critical_job_running": "critical_running"}


def invoke(handler: str, payload: Any) -> Any:
    with Client(app, stage_name="local") as client:
        return client.lambda_.invoke(handler, payload)


def error_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records
            if r.name == "batch_notify" and r.levelno == logging.ERROR]


@pytest.mark.parametrize("handler", sorted(EVENT_HANDLERS))
@pytest.mark.parametrize("field", ENVELOPE_FIELDS)
def test_an_envelope_missing_a_field_is_logged_once_and_skipped(handler, field, bot, caplog):
    event = load_event(EVENT_HANDLERS[handler])
    del event[field]
    invoke(handler, event)  # does not raise: a retry would fail the same way
    [line] = error_lines(caplog)
    assert line["outcome"] == "skipped" and repr(field) in line["reason"]
    assert bot.requests == []


@pytest.mark.parametrize("payload", [None, [], "not an event", 42, ["id", "time"], {"detail": "x"}],
                         ids=repr)
def test_a_payload_that_is_not_an_event_object_is_logged_and_skipped(payload, bot, caplog):
    invoke("on_job_failed", payload)
    [line] = error_lines(caplog)
    assert line["outcome"] == "skipped" and line["event_id"] == "(no id)"
    assert bot.requests == []


@pytest.mark.parametrize("bad_id", [12345, None, "", ["a"], {"S": "x"}, True], ids=repr)
def test_a_non_string_event_id_with_dedup_on_is_skipped_not_a_type_error(bad_id, bot, caplog, monkeypatch):
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="batch-notify-test-state", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        monkeypatch.setenv("NOTIFY_STATE_TABLE", "batch-notify-test-state")
        config.reset()
        event = load_event("ec2_failed")
        event["id"] = bad_id
        invoke("on_job_failed", event)
        [line] = error_lines(caplog)
        # Refused before any claim: nothing was written under any key.
        assert dynamodb.scan(TableName="batch-notify-test-state")["Items"] == []
    assert line["outcome"] == "skipped" and "'id'" in line["reason"]
    assert bot.requests == []


def test_a_complete_envelope_still_posts(bot, caplog):
    invoke("on_job_failed", load_event("ec2_failed"))
    assert len(bot.requests) == 1 and error_lines(caplog) == []


def test_scheduled_handlers_tolerate_a_malformed_envelope(bot, batch):
    # A hand-made invocation without time: the sweep falls back to the clock, it does not crash.
    batch.queues([])
    invoke("on_stuck_job_sweep", {"detail-type": "Scheduled Event"})
    batch.stubber.assert_no_pending_responses()


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3),
                     max_leaves=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from((*ENVELOPE_FIELDS, "source", "detail-type", "detail")),
                               _json, min_size=1, max_size=4))
def test_any_envelope_either_posts_or_logs_one_error(changes, slack: SlackStandIn, monkeypatch, caplog):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    config.reset()
    caplog.clear()
    before = len(slack.requests)
    event = copy.deepcopy(load_event("ec2_failed"))
    event.update(changes)
    invoke("on_job_failed", event)
    posted, errors = len(slack.requests) - before, error_lines(caplog)
    assert (posted, len(errors)) in ((1, 0), (0, 1))
    if errors:
        assert errors[0]["outcome"] == "skipped"


def test_a_deeply_nested_id_is_logged_and_skipped_not_a_recursion_error(bot, caplog):
    # json.loads accepts ~1,000 levels; repr() of it recursed past Python's limit in the log line.
    event = load_event("ec2_failed")
    nested: list[object] = []
    for _ in range(1500):
        nested = [nested]
    event["id"] = nested
    invoke("on_job_failed", event)
    [line] = error_lines(caplog)
    assert line["outcome"] == "skipped" and len(line["event_id"]) <= 200
    assert bot.requests == []
