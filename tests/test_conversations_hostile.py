"""Conversations when things go wrong: DynamoDB failing after Slack took a message, an invocation's
deadline, channels named by name, a job's message in another channel, ranks between a stuck report
and a queue-blocked warning, and an event with a job ARN too long to be a DynamoDB key.

Found in review; each test failed on the first version of the conversation code.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from app import app
from chalicelib.composing.messages import SlackMessage, build_job_state_message
from chalicelib.core import clients, config
from chalicelib.core.config import slack_settings
from chalicelib.core.state_table import StateTable, now, state_table
from chalicelib.deciding.job_messages import JobMessages, NewState, job_key, state_order
from chalicelib.deciding.storms import Grouping
from chalicelib.delivering.conversation import Conversation, converse
from chalicelib.delivering.pacing import table_pacer
from chalicelib.delivering.slack import DeliveryError, Slack
from chalicelib.delivering.storm_posting import join_storm
from chalicelib.reading.event import JobStateChange
from tests.conftest import BOT_TOKEN, TEST_CHANNEL, load_event
from tests.state_fixtures import Serialized, create_state_table
from tools.slack_standin import Shown, SlackStandIn

RUNNING = load_event("critical_running")
OTHER = "C0123456789"  # the stand-in's second channel


@pytest.fixture
def dynamodb(bot: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[Serialized]:
    with mock_aws():
        client = boto3.client("dynamodb")
        monkeypatch.setenv("NOTIFY_STATE_TABLE", create_state_table(client))
        monkeypatch.setenv("SLACK_PACE_SECONDS", "0.02")
        monkeypatch.setenv("LOG_TAIL_LINES", "0")
        config.reset()
        proxy = Serialized(client)
        with clients.use_client("dynamodb", proxy):
            yield proxy


def table() -> StateTable:
    found = state_table()
    assert found is not None
    return found


def failed_version(source: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    """retried_failed.json (attempt history, so a detail reply) as the FAILED event of ``source``'s job."""
    event = copy.deepcopy(load_event("retried_failed"))
    event["id"], event["time"] = event_id, "2025-07-15T07:04:26Z"
    for key in ("jobArn", "jobId", "jobName"):
        event["detail"][key] = source["detail"][key]
    event["resources"] = [source["detail"]["jobArn"]]
    return event


def invoke(handler: str, event: dict[str, Any]) -> Exception | None:
    """Invoke as Lambda does; the error it raised (Lambda would retry the event), or None."""
    try:
        with Client(app, stage_name="local") as client:
            client.lambda_.invoke(handler, event)
    except Exception as error:
        return error
    return None


def top_level(slack: SlackStandIn, channel: str = TEST_CHANNEL) -> list[Shown]:
    return [shown for shown in slack.channel_view(channel) if not shown.broadcast]


def fail_nth_post_turn(proxy: Serialized, n: int) -> None:
    """The n-th reservation of a chat.postMessage turn fails (DynamoDB throttling), once."""
    seen = [0]

    def fail_when(name: str, kwargs: dict[str, Any]) -> bool:
        if name == "update_item" and kwargs.get("Key", {}).get("pk", {}).get("S", "").startswith("pace#post#"):
            seen[0] += 1
            return seen[0] == n
        return False

    proxy.fail_when = fail_when


def storm_job(index: int) -> JobStateChange:
    event = copy.deepcopy(load_event("diag_image_pull"))
    old = event["detail"]["jobId"]
    job_id = f"5707a000-0000-4000-8000-{index:012d}"
    event["id"] = f"5707a000-0000-4000-9000-{index:012d}"
    event["detail"]["jobId"], event["detail"]["jobName"] = job_id, f"storm-shard-{index:03d}"
    event["detail"]["jobArn"] = event["detail"]["jobArn"].replace(old, job_id)
    return JobStateChange.from_event(event)


def test_dynamodb_failing_after_the_headline_was_posted_does_not_post_the_job_twice(dynamodb, bot):
    failed = failed_version(RUNNING, event_id="11111111-0000-4000-8000-000000000001")
    fail_nth_post_turn(dynamodb, 2)  # 1: the headline; 2: its detail reply (the attempt history)
    assert invoke("on_job_failed", failed) is None  # the headline is out: nothing may raise after it
    assert invoke("on_job_failed", failed) is None  # a duplicate delivery changes nothing
    assert len(top_level(bot)) == 1


def test_dynamodb_failing_after_the_change_reply_does_not_ping_twice(dynamodb, bot, tmp_path, monkeypatch):
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [{"name": "default", "mention": ["U0ONCALL1"]}]}))
    monkeypatch.setenv("NOTIFY_ROUTES", str(routes))
    config.reset()
    assert invoke("on_critical_job_running", RUNNING) is None
    # Past the headline's pace turn (SLACK_PACE_SECONDS, 0.02 s): else the next invocation's new pacer
    # guesses "idle", loses that write and retries it, and the retry is the write that fails.
    time.sleep(0.2)
    failed = failed_version(RUNNING, event_id="11111111-0000-4000-8000-000000000002")
    fail_nth_post_turn(dynamodb, 2)  # 1: the change reply (with the ping); 2: the detail reply
    assert invoke("on_job_failed", failed) is None
    assert invoke("on_job_failed", failed) is None
    [message] = top_level(bot)
    pings = [reply for reply in message.replies if "U0ONCALL1" in json.dumps([reply.text, reply.blocks])]
    changes = [reply for reply in message.replies if "RUNNING → FAILED" in reply.text]
    assert len(changes) == 1 and len(pings) == 1


def test_no_slack_call_outlives_the_invocations_deadline(dynamodb, bot):
    # Other containers hold the channel's next 4 s of post turns; this invocation has 1 s left.
    table().update("pace#post#" + TEST_CHANNEL, "SET next_at = :at, expires_at = :expires",
                   values={":at": now() + 4, ":expires": int(now()) + 600})
    job = JobStateChange.from_event(RUNNING)
    conversation = Conversation(slack=Slack(slack_settings(), pacer=table_pacer(table())), table=table(),
                                channel=TEST_CHANNEL)
    deadline = time.monotonic() + 1.0
    with pytest.raises(DeliveryError):
        converse(job, build_job_state_message(job), conversation, deadline=deadline)
    assert time.monotonic() - deadline < 1.5  # slack for a loaded machine; waiting for the turn is 3 s more
    assert bot.messages == []


@pytest.fixture
def named_channel(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandIn]:
    """A channel configured by name; the stand-in answers with its ID and updates by ID only, as Slack."""
    with SlackStandIn(channel_ids={"#batch-alerts": "C0ALERTS"}) as slack, mock_aws():
        client = boto3.client("dynamodb")
        for name, value in {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_CHANNEL": "#batch-alerts",
                            "SLACK_API_URL": slack.api_url, "NOTIFY_STATE_TABLE": create_state_table(client),
                            "SLACK_PACE_SECONDS": "0.02", "LOG_TAIL_LINES": "0"}.items():
            monkeypatch.setenv(name, value)
        config.reset()
        with clients.use_client("dynamodb", Serialized(client)):
            yield slack


class RecordingPacer:
    def __init__(self, inner: Any) -> None:
        self.inner, self.keys = inner, []

    def wait_turn(self, method: str, channel: str, deadline: float) -> None:
        self.keys.append((method, channel))
        self.inner.wait_turn(method, channel, deadline)


def test_a_channel_named_by_name_is_one_post_queue(named_channel):
    pacer = RecordingPacer(table_pacer(table(), intervals={"post": 0.02, "update": 0.024}))
    conversation = Conversation(slack=Slack(slack_settings(), pacer=pacer), table=table(), channel="#batch-alerts")
    for event in (RUNNING, failed_version(RUNNING, event_id="22222222-0000-4000-8000-000000000001")):
        job = JobStateChange.from_event(event)
        converse(job, build_job_state_message(job), conversation, deadline=time.monotonic() + 20)
    assert {channel for _, channel in pacer.keys} == {"#batch-alerts"}
    [message] = top_level(named_channel, "#batch-alerts")
    assert message.edited  # updated by its ID


def test_a_storm_in_a_channel_named_by_name_keeps_its_group_message_current(named_channel):
    slack = Slack(slack_settings())
    grouping = Grouping(after=3, window_seconds=600)
    results = [join_storm(storm_job(i), "#batch-alerts", (), grouping, slack, table(),
                          deadline=time.monotonic() + 10, update_seconds=0.0) for i in range(5)]
    assert [result.grouped for result in results] == [False, False, False, True, True]
    assert named_channel.updates


def test_a_storm_of_jobs_whose_messages_are_in_another_channel_is_grouped(dynamodb, bot):
    records = JobMessages(table())
    jobs = [storm_job(i) for i in range(5)]  # 3 of their own, then 2 grouped
    for index, job in enumerate(jobs):  # each job's RUNNING message, in the other channel
        key = job_key(job)
        assert key is not None
        turn = records.begin(key, state_order("RUNNING"), OTHER, deadline=time.monotonic() + 5)
        assert turn.owner is not None
        records.posted(key, turn.owner, OTHER, (OTHER, f"17000000{index}.0001"),
                       NewState(state_order("RUNNING"), "RUNNING", None, False))
    conversation = Conversation(slack=Slack(slack_settings()), table=table(), channel=TEST_CHANNEL,
                                grouping=Grouping(after=3, window_seconds=600))
    for job in jobs:
        converse(job, build_job_state_message(job), conversation, deadline=time.monotonic() + 10)
    assert len(top_level(bot)) == 3 + 1


def test_a_queue_blocked_warning_after_a_stuck_report_is_shown(dynamodb, bot):
    blocked = load_event("job_queue_blocked")
    report = Slack(slack_settings()).post(SlackMessage(text="1 job stuck in render-queue", blocks=()))
    assert report.ref is not None
    assert JobMessages(table()).record_shared(blocked["detail"]["jobArn"], TEST_CHANNEL,
                                              (report.ref.channel, report.ref.ts), "STUCK", None)
    assert invoke("on_job_queue_blocked", blocked) is None
    [shown] = bot.channel_view(TEST_CHANNEL)
    assert shown.replies and "STUCK → BLOCKED" in shown.replies[0].text


def test_a_job_arn_too_long_for_a_dynamodb_key_is_still_notified(dynamodb, bot):
    event = copy.deepcopy(RUNNING)
    event["id"] = "33333333-0000-4000-8000-000000000001"
    event["detail"]["jobArn"] = "arn:aws:batch:us-east-1:123456789012:job/" + "x" * 2100
    assert invoke("on_critical_job_running", event) is None
    assert len(top_level(bot)) == 1
    later = failed_version(event, event_id="33333333-0000-4000-8000-000000000002")
    assert invoke("on_job_failed", later) is None
    [message] = top_level(bot)
    assert message.edited
