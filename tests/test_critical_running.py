"""The worked example of a fork's own handler: pattern, message, and the handler end to end."""

import json

from chalice.test import Client

from app import app
from chalicelib.composing.critical_running import build_critical_running_message
from chalicelib.reading.event import JobStateChange
from chalicelib.reading.patterns import job_state_pattern
from tests.conftest import load_event
from tests.reach import check_reach
from tools.eventbridge import EventBridgeRouter, registered_patterns
from tools.slack_standin import block_kit_errors


def test_pattern_selects_only_critical_jobs_that_start_running():
    # What the handler's pattern selects, stated once: the fixtures it must reach and must not.
    check_reach("on_critical_job_running", reaches=["critical_running"],
                  skips=["running", "ec2_failed", "ec2_succeeded", "array_child_failed", "job_queue_blocked"])
    assert registered_patterns(app)["on_critical_job_running"] == job_state_pattern(
        "RUNNING", jobName=[{"prefix": "critical-"}])


def test_a_critical_job_that_fails_is_on_job_faileds_business():
    critical_failed = load_event("critical_running")
    critical_failed["detail"]["status"] = "FAILED"
    with EventBridgeRouter(registered_patterns(app)) as bus:
        reached = bus.matching(critical_failed)
    assert "on_job_failed" in reached and "on_critical_job_running" not in reached


def test_message_is_louder_and_says_what_comes_next():
    message = build_critical_running_message(JobStateChange.from_event(load_event("critical_running")))
    payload = message.to_dict()
    header = payload["blocks"][0]["text"]["text"]
    assert header == ":rotating_light: Critical job started: critical-billing-close-2025-07-14"
    assert payload["text"] == (":rotating_light: Critical job started: critical-billing-close-2025-07-14 "
                               "in finance-critical-queue")
    notes = [e["text"] for b in payload["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert any(n.startswith("Started at 2025-07-15 ") and "FAILED or SUCCEEDED message will follow" in n for n in notes)
    assert block_kit_errors(payload["blocks"]) == []


def test_handler_posts_it(slack, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    with Client(app, stage_name="local") as client:
        client.lambda_.invoke("on_critical_job_running", load_event("critical_running"))
    [message] = slack.messages
    assert "Critical job started" in json.dumps(message)
