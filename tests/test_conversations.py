"""Conversations end to end: the real handlers (chalice.test), moto's DynamoDB as the state table, and
the Slack stand-in answering chat.postMessage, chat.update, thread replies and broadcasts as Slack does.

What a person sees is read from the stand-in's channel view: top-level messages (edited or not), and
each one's thread. Concurrency is threads, each one a Lambda container; moto does not lock, so its
calls are serialized (DynamoDB applies each conditional write atomically, which is what that models).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from app import app
from chalicelib.core import clients, config
from chalicelib.core.state_table import state_table
from tests.batch_stub import api_job, api_queue, scheduled_event
from tests.conftest import TEST_CHANNEL, load_event
from tests.state_fixtures import STATE_TABLE, Serialized, create_state_table
from tools.lambda_env import containers
from tools.slack_standin import Shown, SlackStandIn

TABLE = STATE_TABLE
RUNNING = load_event("critical_running")
JOB_ARN = RUNNING["detail"]["jobArn"]


@pytest.fixture
def table(bot: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Conversation mode: bot token, the state table in moto, fast pacing (the tests are not about it)."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        monkeypatch.setenv("NOTIFY_STATE_TABLE", create_state_table(dynamodb))
        monkeypatch.setenv("SLACK_PACE_SECONDS", "0.02")
        monkeypatch.setenv("LOG_TAIL_LINES", "0")
        config.reset()
        clients.use_client("dynamodb", Serialized(dynamodb))
        yield dynamodb


def failed_version(source: dict[str, Any], *, event_id: str, time: str) -> dict[str, Any]:
    """ec2_failed.json as the FAILED event of the job in ``source``."""
    event = copy.deepcopy(load_event("ec2_failed"))
    event["id"], event["time"] = event_id, time
    for key in ("jobArn", "jobId", "jobName"):
        event["detail"][key] = source["detail"][key]
    event["resources"] = [source["detail"]["jobArn"]]
    return event


FAILED = failed_version(RUNNING, event_id="7a1c0b2e-0000-4000-8000-000000000001", time="2025-07-15T07:04:26Z")


def invoke(handler: str, event: dict[str, Any]) -> None:
    with Client(app, stage_name="local") as client:
        client.lambda_.invoke(handler, event)


def top_level(slack: SlackStandIn) -> list[Shown]:
    """The channel's own messages: thread broadcasts show there too, but are not messages of their own."""
    return [shown for shown in slack.channel_view(TEST_CHANNEL) if not shown.broadcast]


def texts(shown: Shown) -> str:
    return json.dumps([shown.text, shown.blocks])


def test_running_then_failed_is_one_message_updated_with_one_broadcast_reply(table, bot):
    invoke("on_critical_job_running", RUNNING)
    invoke("on_job_failed", FAILED)
    [message] = top_level(bot)
    assert message.edited and "Job failed" in texts(message) and "Job running" not in texts(message)
    assert len(bot.updates) == 1
    change, *rest = message.replies
    assert change.broadcast and "RUNNING" in change.text and "FAILED" in change.text
    assert "after 2h 3m" in change.text
    # The broadcast shows in the channel too, so a failure is never hidden in a thread.
    assert [shown.ts for shown in bot.channel_view(TEST_CHANNEL) if shown.broadcast] == [change.ts]
    assert all(not reply.broadcast for reply in rest)


def test_a_late_running_after_failed_and_duplicates_change_nothing(table, bot):
    invoke("on_job_failed", FAILED)
    before = bot.calls_by_method()
    invoke("on_critical_job_running", RUNNING)  # late: Batch sent it first, EventBridge delivered it last
    invoke("on_job_failed", FAILED)  # the same event again (at-least-once delivery)
    again = dict(FAILED, id="7a1c0b2e-0000-4000-8000-000000000002")  # the same state, another event id
    invoke("on_job_failed", again)
    assert bot.calls_by_method() == before
    [message] = top_level(bot)
    assert not message.edited and "Job failed" in texts(message)


def test_a_failure_with_retries_keeps_its_history_in_the_thread(table, bot):
    invoke("on_job_failed", load_event("retried_failed"))
    [message] = top_level(bot)
    assert "*Attempt history*" not in texts(message) and "Attempt history in the thread" in texts(message)
    [detail] = message.replies
    assert "*Attempt history*" in texts(detail) and not detail.broadcast


def test_a_deleted_message_is_posted_afresh_and_recorded(table, bot):
    invoke("on_critical_job_running", RUNNING)
    [first] = top_level(bot)
    bot.delete(TEST_CHANNEL, first.ts)
    invoke("on_job_failed", FAILED)
    [fresh] = top_level(bot)
    assert fresh.ts != first.ts and "Job failed" in texts(fresh)
    recorded = state_table().get("job#" + JOB_ARN)  # type: ignore[union-attr]
    assert recorded is not None and recorded["ts"] == fresh.ts and recorded["status"] == "FAILED"


def test_running_and_failed_at_once_end_on_failed_for_every_job(table, bot):
    jobs = []
    for index in range(6):
        running = copy.deepcopy(RUNNING)
        running["id"] = f"7a1c0b2e-0000-4000-9000-{index:012d}"
        job_id = f"9e41f7d2-6b0a-4c8e-b1f3-{index:012d}"
        running["detail"]["jobId"] = job_id
        running["detail"]["jobArn"] = running["detail"]["jobArn"].rsplit("/", 1)[0] + "/" + job_id
        running["detail"]["jobName"] = f"critical-shard-{index}"
        failed = failed_version(running, event_id=f"7a1c0b2e-0000-4000-a000-{index:012d}", time="2025-07-15T06:00:00Z")
        jobs += [("on_critical_job_running", running), ("on_job_failed", failed)]
    with containers(app) as invoke_in_container, ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda pair: invoke_in_container(*pair), jobs))
    shown = top_level(bot)
    assert len(shown) == 6  # one message per job, whichever event came first
    for message in shown:
        assert "Job failed" in texts(message) and "Job running" not in texts(message)


def test_mentions_ping_once_on_the_first_failure_never_in_updates(table, bot, tmp_path, monkeypatch):
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [{"name": "default", "mention": ["U0ONCALL1"]}]}))
    monkeypatch.setenv("NOTIFY_ROUTES", str(routes))
    config.reset()
    invoke("on_critical_job_running", RUNNING)
    invoke("on_job_failed", FAILED)
    [message] = top_level(bot)
    assert "U0ONCALL1" not in texts(message)  # neither the RUNNING post nor its update pings
    assert [update for update in bot.updates if "U0ONCALL1" in json.dumps(update)] == []
    pinged = [reply for reply in message.replies if "U0ONCALL1" in texts(reply)]
    assert len(pinged) == 1 and pinged[0].broadcast


def test_webhook_mode_posts_one_message_per_event_as_before(webhook, monkeypatch, caplog):
    with mock_aws():
        monkeypatch.setenv("NOTIFY_STATE_TABLE", TABLE)
        create_state_table(boto3.client("dynamodb"))
        config.reset()
        with caplog.at_level(logging.INFO, logger="batch_notify"):
            invoke("on_critical_job_running", RUNNING)
            invoke("on_job_failed", FAILED)
    assert len(webhook.messages) == 2
    off = [record for record in caplog.records if '"conversations": "off"' in record.getMessage()]
    assert len(off) == 1 and "webhook" in off[0].getMessage()


def test_bot_mode_without_a_table_says_once_that_conversations_are_off(bot, caplog):
    with caplog.at_level(logging.INFO, logger="batch_notify"):
        invoke("on_critical_job_running", RUNNING)
        invoke("on_job_failed", FAILED)
    assert len(top_level(bot)) == 2 and bot.updates == []
    off = [record for record in caplog.records if '"conversations": "off"' in record.getMessage()]
    assert len(off) == 1 and "NOTIFY_STATE_TABLE" in off[0].getMessage()


def storm_events(count: int) -> list[dict[str, Any]]:
    """``count`` FAILED jobs of one queue, failing alike (the image could not be pulled)."""
    template = load_event("diag_image_pull")
    old_id = template["detail"]["jobId"]
    events = []
    for index in range(count):
        event = copy.deepcopy(template)
        job_id = f"5707a000-0000-4000-8000-{index:012d}"
        event["id"] = f"5707a000-0000-4000-9000-{index:012d}"
        event["detail"]["jobId"], event["detail"]["jobName"] = job_id, f"storm-shard-{index:03d}"
        event["detail"]["jobArn"] = event["detail"]["jobArn"].replace(old_id, job_id)
        event["resources"] = [job_id]
        events.append(event)
    return events


def test_a_storm_of_60_failures_from_10_containers_shows_every_job_exactly_once(table, bot):
    events = storm_events(60)
    with containers(app, env={"SLACK_PACE_SECONDS": "0.02"}) as invoke_in_container, \
            ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda event: invoke_in_container("on_job_failed", event), events))
    shown = top_level(bot)
    assert len(shown) <= 3 + 2  # GROUP_AFTER (3) of their own, and the group message
    groups = [message for message in shown if "60 jobs failed" in message.text]
    assert len(groups) == 1, [message.text for message in shown]
    seen: dict[str, int] = {}
    for message in shown:
        # A job's own message names it in its headline; a group lists its jobs in its thread's replies.
        places = [message] if message is not groups[0] else list(message.replies)
        for place in places:
            for event in events:
                if event["detail"]["jobId"] in texts(place):
                    seen[event["detail"]["jobId"]] = seen.get(event["detail"]["jobId"], 0) + 1
    assert seen == {event["detail"]["jobId"]: 1 for event in events}
    assert len(bot.updates) < 20  # kept current, not updated once per job


def test_a_job_reported_stuck_gets_its_later_events_in_the_reports_thread(table, bot, batch):
    # The sweep at 09:15 finds the job waiting in RUNNABLE since 08:40 (over the 30 minutes of the default).
    batch.queues([api_queue("finance-critical-queue")])
    batch.waiting("finance-critical-queue", runnable=[api_job(
        RUNNING["detail"]["jobId"], RUNNING["detail"]["jobName"], "RUNNABLE", datetime(2024, 5, 13, 8, 40, tzinfo=UTC),
        reason="Waiting for capacity")])
    invoke("on_stuck_job_sweep", scheduled_event("2024-05-13T09:15:03Z"))
    [report] = top_level(bot)
    invoke("on_critical_job_running", RUNNING)
    invoke("on_job_failed", FAILED)
    [message] = top_level(bot)
    assert message.ts == report.ts and not message.edited  # a report shows many jobs: never rewritten for one
    running, failed, *_ = message.replies
    assert "STUCK → RUNNING" in running.text and not running.broadcast
    assert "RUNNING → FAILED" in failed.text and failed.broadcast
