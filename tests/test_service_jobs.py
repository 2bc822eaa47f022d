"""Service jobs (SageMaker training jobs run through AWS Batch service environments), end to end.

Which handler an event reaches is asked of moto's EventBridge (tests/reach.py, tools/eventbridge.py):
the container patterns must not select service events, nor the service patterns container ones.
Messages are what the handlers really post through chalice.test to the Slack stand-in;
conversations and storms run against moto's DynamoDB as the state table.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.app import CloudWatchEvent
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from app import app
from chalicelib.application import BatchNotify
from chalicelib.composing.action_buttons import NO_ACTIONS, offer_for
from chalicelib.composing.mrkdwn import FALLBACK_TEXT_LIMIT
from chalicelib.composing.service_job_message import (
    build_service_job_message,
    build_service_queue_blocked_message,
    service_job_parts,
)
from chalicelib.core import clients, config
from chalicelib.deciding.job_messages import job_order, state_order
from chalicelib.deciding.routing import routing_status
from chalicelib.deciding.storms import storm_cause
from chalicelib.notify import decide, notify, parse
from chalicelib.reading.event import (
    JOB_STATE_CHANGE,
    SERVICE_JOB_QUEUE_BLOCKED,
    SERVICE_JOB_STATE_CHANGE,
    JobStateChange,
    NotAJobStateChange,
)
from chalicelib.reading.links import batch_service_job_url, sagemaker_training_job_url, training_job_logs_url
from chalicelib.reading.patterns import service_job_queue_blocked_pattern, service_job_state_pattern
from chalicelib.reading.service_event import ServiceJobStateChange, training_job_name_of
from tests.batch_stub import write_routes
from tests.conftest import TEST_CHANNEL, event_names, load_event
from tests.reach import check_reach
from tests.state_fixtures import Serialized, create_state_table
from tools.eventbridge import EventBridgeRouter, registered_patterns
from tools.slack_standin import Shown, SlackStandIn, block_kit_errors, mrkdwn_texts

SERVICE = sorted(n for n in event_names() if n.startswith("service_"))
CONTAINER = sorted(set(event_names()) - set(SERVICE))
FAILED = ["service_capacity_failed", "service_failed", "service_govcloud_failed", "service_hostile_failed",
          "service_retried_failed", "service_validation_failed"]
SUCCEEDED = ["service_china_succeeded", "service_succeeded"]
BLOCKED = ["service_queue_blocked"]
SERVICE_HANDLERS = {"on_service_job_failed": FAILED, "on_service_job_succeeded": SUCCEEDED,
                    "on_service_job_queue_blocked": BLOCKED}
CONTAINER_HANDLERS = ("on_job_failed", "on_job_succeeded", "on_job_queue_blocked", "on_critical_job_running")


def view(name: str) -> ServiceJobStateChange:
    event = load_event(name)
    job = parse(event, event["detail-type"])
    assert isinstance(job, ServiceJobStateChange)
    return job


def at_status(status: str, *, event_id: str, time: str, source: str = "service_failed") -> dict[str, Any]:
    """``source``'s job in another state: what Batch sends as it moves (SCHEDULED, RUNNING)."""
    event = copy.deepcopy(load_event(source))
    event["id"], event["time"] = event_id, time
    detail = event["detail"]
    detail["status"] = status
    if status != "FAILED":
        detail["statusReason"] = f"Service job {status.lower()}"
        for key in ("stoppedAt",):
            detail.pop(key, None)
        for attempt in detail["attempts"]:
            attempt.pop("stoppedAt", None)
            attempt.pop("statusReason", None)
    if status == "SCHEDULED":
        detail.pop("startedAt", None)
        detail["attempts"] = []
        detail.pop("latestAttempt", None)
    return event


SCHEDULED = at_status("SCHEDULED", event_id="5b0e7d3a-2f41-4c8e-9a67-000000000001", time="2025-06-03T02:36:01Z")
RUNNING = at_status("RUNNING", event_id="5b0e7d3a-2f41-4c8e-9a67-000000000002", time="2025-06-03T02:40:16Z")


# -- reaching the right handler (moto's EventBridge) ------------------------------------------------
@pytest.mark.parametrize("handler", sorted(SERVICE_HANDLERS))
def test_each_service_fixture_reaches_its_handler_and_no_other(handler):
    mine = SERVICE_HANDLERS[handler]
    check_reach(handler, reaches=mine, skips=[*(set(SERVICE) - set(mine)), *CONTAINER])


@pytest.mark.parametrize("handler", CONTAINER_HANDLERS)
def test_no_container_handler_selects_a_service_event(handler):
    check_reach(handler, reaches=[], skips=SERVICE)


def test_every_service_fixture_is_in_the_table_above():
    assert sorted(FAILED + SUCCEEDED + BLOCKED) == SERVICE


def test_scheduled_and_running_reach_no_built_in_handler_but_a_forks_pattern():
    patterns = {"fork_progress": service_job_state_pattern("SCHEDULED", "RUNNING"),
                "container_running": {"source": ["aws.batch"], "detail-type": [JOB_STATE_CHANGE],
                                      "detail": {"status": ["RUNNING", "SCHEDULED"]}}}
    with EventBridgeRouter({**registered_patterns(app), **patterns}) as bus:
        assert bus.matching(SCHEDULED) == ["fork_progress"]
        assert bus.matching(RUNNING) == ["fork_progress"]
        assert bus.matching(load_event("service_failed")) == ["on_service_job_failed"]


def test_the_service_patterns_take_detail_filters_and_refuse_no_status():
    pattern = service_job_state_pattern("FAILED", jobName=[{"prefix": "llm-"}])
    assert pattern == {"source": ["aws.batch"], "detail-type": [SERVICE_JOB_STATE_CHANGE],
                       "detail": {"status": ["FAILED"], "jobName": [{"prefix": "llm-"}]}}
    assert service_job_queue_blocked_pattern() == {"source": ["aws.batch"], "detail-type": [SERVICE_JOB_QUEUE_BLOCKED]}
    with pytest.raises(ValueError, match="at least one"):
        service_job_state_pattern()
    with EventBridgeRouter({"llm": pattern}) as bus:
        assert bus.matching(load_event("service_retried_failed")) == ["llm"]
        assert bus.matching(load_event("service_failed")) == []


# -- the view ---------------------------------------------------------------------------------------
def test_parse_picks_the_view_by_the_kind_of_event():
    assert type(parse(load_event("ec2_failed"))) is JobStateChange
    assert type(parse(load_event("service_failed"), SERVICE_JOB_STATE_CHANGE)) is ServiceJobStateChange
    assert type(parse(load_event("service_queue_blocked"), SERVICE_JOB_QUEUE_BLOCKED)) is ServiceJobStateChange
    with pytest.raises(NotAJobStateChange):
        parse(load_event("service_failed"))  # a container handler given a service event
    with pytest.raises(NotAJobStateChange):
        parse(load_event("ec2_failed"), SERVICE_JOB_STATE_CHANGE)
    with pytest.raises(NotAJobStateChange):
        ServiceJobStateChange.from_event(load_event("ec2_failed"), JOB_STATE_CHANGE)


def test_the_documented_event_reads_as_a_training_job():
    job = view("service_succeeded")
    assert (job.job_name, job.job_queue_name, job.status) == ("event-test", "HappyPathJobQueue", "SUCCEEDED")
    assert job.training_job_name == "AWSBatchmy-training-job88b610a69aa8380ca5b0a7aba3f81cb8"
    assert job.training_job_arn == ("arn:aws:sagemaker:us-east-1:123456789012:training-job/"
                                    "AWSBatchmy-training-job88b610a69aa8380ca5b0a7aba3f81cb8")
    assert job.service_job_type == "SAGEMAKER_TRAINING" and job.duration is not None
    assert job.duration.total_seconds() == 100 and job.attempt_timeout is not None
    assert job.attempt_timeout.total_seconds() == 60
    [attempt] = job.service_attempts
    assert attempt.training_job_name == job.training_job_name and attempt.duration == job.duration
    # What a container job has, a service job has not: every consumer reads "none".
    assert job.containers == () and job.container is None and job.exit_code is None
    assert job.container_reason is None and job.log_location is None and job.log_stream_name is None
    assert job.job_definition is None and job.platform is None and not job.is_array_parent
    assert job.missing_fields() == []  # a service job has no job definition to miss


def test_a_retried_job_has_one_training_job_per_attempt():
    job = view("service_retried_failed")
    names = [a.training_job_name for a in job.service_attempts]
    assert len(set(names)) == 3 and job.training_job_name == names[-1] and job.max_attempts == 3
    assert [r.action for r in job.retry_rules] == ["RETRY", "EXIT", "EXIT"]
    assert (job.share_identifier, job.scheduling_priority) == ("research", 10)


def test_a_hostile_event_reads_as_nothing_where_it_is_malformed():
    job = view("service_hostile_failed")
    assert job.training_job_arn is not None and job.training_job_name is None  # 64 characters: not a name
    assert [a.training_job_name for a in job.service_attempts] == [None, None]  # forged region; a number
    assert job.service_attempts[1].started_at is None and job.service_attempts[1].status_reason is None
    assert job.scheduling_priority is None and job.max_attempts is None and job.attempt_timeout is None
    assert job.array_size is None and not job.is_array_parent


def test_training_job_names_are_read_strictly():
    good = "arn:aws-us-gov:sagemaker:us-gov-west-1:123456789012:training-job/AWSBatchjob-1"
    assert training_job_name_of(good) == "AWSBatchjob-1"
    for bad in (good + "\n", good + "/x", good.replace("us-gov-west-1", "us-gov-west-1.evil"), good[:-1] + "-",
                good.replace("training-job", "processing-job"), None, ""):
        assert training_job_name_of(bad) is None, bad


# -- links ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("region", "domain"), [("us-east-1", "aws.amazon.com"),
                                                ("us-gov-west-1", "amazonaws-us-gov.com"),
                                                ("cn-north-1", "amazonaws.cn")])
def test_links_follow_the_events_partition(region, domain):
    home = f"https://{region}.console.{domain}"
    assert sagemaker_training_job_url(region, "AWSBatchx-1") == (
        f"{home}/sagemaker/home?region={region}#/jobs/AWSBatchx-1")
    assert training_job_logs_url(region, "AWSBatchx-1") == (
        f"{home}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/$252Faws$252Fsagemaker$252FTrainingJobs"
        "$3FlogStreamNameFilter$3DAWSBatchx-1$252F")
    assert batch_service_job_url(region, "4c7599ae-0a82") == (
        f"{home}/batch/home?region={region}#service-jobs/detail/4c7599ae-0a82")


@pytest.mark.parametrize("region", ["us-east-1.evil.example", "us-east-1\n", "evil.example/#", "", None])
def test_a_forged_region_gives_no_link(region):
    assert sagemaker_training_job_url(region, "AWSBatchx") is None
    assert training_job_logs_url(region, "AWSBatchx") is None
    assert batch_service_job_url(region, "4c7599ae") is None


@pytest.mark.parametrize("name", ["a/b", "x?y=1", "a#b", "-a", "a" * 64, "<z>", "", None])
def test_a_forged_name_or_id_gives_no_link(name):
    assert sagemaker_training_job_url("us-east-1", name) is None
    assert training_job_logs_url("us-east-1", name) is None
    if name != "a" * 64 and name != "-a":  # a service job id may be longer or start with '-'; never hold '/?#<'
        assert batch_service_job_url("us-east-1", name) is None


# -- the messages, as the handlers post them ---------------------------------------------------------
def posted(slack: SlackStandIn, handler: str, name: str) -> dict[str, Any]:
    seen = len(slack.messages)
    with Client(app, stage_name="local") as client:
        client.lambda_.invoke(handler, load_event(name))
    [message] = slack.messages[seen:]
    return message


def buttons(message: dict[str, Any]) -> dict[str, str]:
    return {e["text"]["text"]: e["url"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


def fields(message: dict[str, Any]) -> dict[str, str]:
    found = {}
    for block in message["blocks"]:
        for field in block.get("fields", []):
            label, value = field["text"].split("\n", 1)
            found[label.strip("*")] = value
    return found


@pytest.mark.parametrize(("handler", "name"), [(h, n) for h, names in sorted(SERVICE_HANDLERS.items()) for n in names])
def test_every_service_message_fits_slacks_limits(webhook, handler, name):
    message = posted(webhook, handler, name)
    assert message["text"].strip() and block_kit_errors(message["blocks"]) == []
    assert message["blocks"][-1]["type"] == "context" and "Service job ID" in json.dumps(message["blocks"][-1])


def test_a_failed_training_job_says_what_which_and_where(webhook):
    message = posted(webhook, "on_service_job_failed", "service_failed")
    assert message["text"].startswith(":x: Training job failed: resnet50-finetune-nightly in ml-training-fairshare")
    assert fields(message) == {"Status": "FAILED", "Job queue": "ml-training-fairshare",
                               "Training job": "AWSBatchresnet50-finetune-nightly7f3e9a1c2b4d6e8f0a1b2c3d4e5f6a7b",
                               "Attempts": "1 of 1", "Duration": "2h 1m", "Share": "vision", "Priority": "40",
                               "Attempt timeout": "4h"}
    tj = "AWSBatchresnet50-finetune-nightly7f3e9a1c2b4d6e8f0a1b2c3d4e5f6a7b"
    assert buttons(message) == {
        "Training job": f"https://us-west-2.console.aws.amazon.com/sagemaker/home?region=us-west-2#/jobs/{tj}",
        "Training logs": "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2#logsV2:log-groups"
                         f"/log-group/$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{tj}$252F",
        "Open in AWS Batch": "https://us-west-2.console.aws.amazon.com/batch/home?region=us-west-2#service-jobs/detail/"
                             "9d1f3c62-5b7e-4f0a-8c21-3e6a7b9d0f14"}
    assert "AlgorithmError" in json.dumps(message["blocks"]) and ":bulb:" not in json.dumps(message)  # no guess


def test_a_retried_failure_lists_each_attempt_with_its_training_job(webhook):
    message = posted(webhook, "on_service_job_failed", "service_retried_failed")
    [history] = [b["text"]["text"] for b in message["blocks"] if "*Attempt history*" in json.dumps(b)]
    lines = history.split("\n")[1:]
    assert [line.split(" · ")[0] for line in lines] == ["1. 21m 48s", "2. 21m 19s", "3. 10m 29s"]
    for line, attempt in zip(lines, view("service_retried_failed").service_attempts, strict=True):
        assert f"#/jobs/{attempt.training_job_name}|training job>" in line and "InternalServerError" in line
    assert ":bulb: *SageMaker internal error*" in json.dumps(message) and "retries these" in json.dumps(message)


@pytest.mark.parametrize(("name", "title"), [("service_capacity_failed", "No SageMaker capacity"),
                                             ("service_validation_failed", "SageMaker refused the request")])
def test_documented_reasons_get_their_diagnosis(webhook, name, title):
    assert f":bulb: *{title}*" in json.dumps(posted(webhook, "on_service_job_failed", name))


def test_a_job_without_a_training_job_links_only_to_batch_and_says_why(webhook):
    message = posted(webhook, "on_service_job_failed", "service_validation_failed")
    assert list(buttons(message)) == ["Open in AWS Batch"]
    assert fields(message)["Training job"] == "_unknown_" and "Attempts" not in fields(message)


@pytest.mark.parametrize(("handler", "name", "domain"), [
    ("on_service_job_failed", "service_govcloud_failed", "console.amazonaws-us-gov.com"),
    ("on_service_job_succeeded", "service_china_succeeded", "console.amazonaws.cn")])
def test_every_link_is_in_the_events_partition(webhook, handler, name, domain):
    links = buttons(posted(webhook, handler, name))
    assert len(links) == 3 and all(f".{domain}/" in url for url in links.values())


def test_the_queue_blocked_warning_names_the_queue_the_job_and_why(webhook):
    message = posted(webhook, "on_service_job_queue_blocked", "service_queue_blocked")
    assert message["blocks"][0]["text"]["text"] == ":warning: Job queue blocked: gpu-training"
    assert fields(message) == {"Job queue": "gpu-training", "Blocking service job": "p5-eval-sweep-03",
                               "Job status": "RUNNABLE"}
    assert "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY" in message["text"] and "waits in RUNNABLE" in json.dumps(message)


_RAW_MARKUP = re.compile(r"<(?!https://[a-z0-9.-]+\.console\.(?:aws\.amazon\.com|amazonaws\.cn|amazonaws-us-gov\.com)/)")


def test_the_hostile_event_is_escaped_bounded_and_links_nowhere_else(webhook):
    message = posted(webhook, "on_service_job_failed", "service_hostile_failed")
    for text in mrkdwn_texts(message):
        assert _RAW_MARKUP.search(text) is None, text[:200]
    assert len(message["text"]) <= FALLBACK_TEXT_LIMIT and block_kit_errors(message["blocks"]) == []
    assert list(buttons(message)) == ["Open in AWS Batch"] and "evil" not in json.dumps(buttons(message))


def test_service_jobs_get_no_action_buttons():
    # Retry, terminate, acknowledge and snooze act on job/ ARNs (reading/job_arn.py): none for service-job/.
    for name in SERVICE:
        assert offer_for(view(name), signing_on=True, allowed=True) == NO_ACTIONS


# -- routing, ordering, storms' causes -------------------------------------------------------------------
def test_routes_match_service_statuses_scheduled_included(tmp_path, monkeypatch):
    write_routes(tmp_path, monkeypatch, [
        {"name": "scheduled", "match": {"status": ["SCHEDULED"]}, "channel": "#ml-queue"},
        {"name": "blocked", "match": {"status": ["BLOCKED"]}, "channel": "#ml-blocked"},
        {"name": "rest", "channel": "#ml"}])
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("SLACK_CHANNEL", TEST_CHANNEL)
    config.reset()
    scheduled = parse(SCHEDULED, SERVICE_JOB_STATE_CHANGE)
    assert routing_status(scheduled) == "SCHEDULED" and decide(scheduled).channel == "#ml-queue"
    assert decide(view("service_queue_blocked")).channel == "#ml-blocked"
    assert decide(view("service_failed")).channel == "#ml"


def test_scheduled_orders_between_runnable_and_starting():
    assert state_order("BLOCKED") < state_order("SCHEDULED") < state_order("STARTING")
    assert state_order("RUNNABLE") < state_order("SCHEDULED")
    order = [job_order(parse(e, SERVICE_JOB_STATE_CHANGE)) for e in (SCHEDULED, RUNNING, load_event("service_failed"))]
    assert order == sorted(order) and len(set(order)) == 3


def test_a_storms_cause_is_the_status_reason():
    assert storm_cause(view("service_failed")).startswith("Received status from SageMaker: AlgorithmError")


# -- conversations and storms (bot token, moto's DynamoDB as the state table) --------------------------
fork = BatchNotify(app_name="batch-notify")


@fork.on_cw_event(service_job_state_pattern("SCHEDULED", "RUNNING"))
def on_service_job_progress(event: CloudWatchEvent) -> None:
    """A fork's handler for the states the built-in ones leave out."""
    notify(event, build_service_job_message, detail_type=SERVICE_JOB_STATE_CHANGE)


@fork.on_cw_event(service_job_state_pattern("FAILED"))
def on_service_job_failed(event: CloudWatchEvent) -> None:
    """The built-in handler's body, on the fork's app."""
    notify(event, build_service_job_message, detail_type=SERVICE_JOB_STATE_CHANGE)


@pytest.fixture
def table(bot: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Conversation mode: bot token, the state table in moto, fast pacing."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        monkeypatch.setenv("NOTIFY_STATE_TABLE", create_state_table(dynamodb))
        monkeypatch.setenv("SLACK_PACE_SECONDS", "0.02")
        config.reset()
        clients.use_client("dynamodb", Serialized(dynamodb))
        yield dynamodb


def top_level(slack: SlackStandIn) -> list[Shown]:
    return [shown for shown in slack.channel_view(TEST_CHANNEL) if not shown.broadcast]


def test_scheduled_running_failed_is_one_message_updated_in_place(table, bot):
    with Client(fork, stage_name="local") as client:
        for handler, event in (("on_service_job_progress", SCHEDULED), ("on_service_job_progress", RUNNING),
                               ("on_service_job_failed", load_event("service_failed"))):
            client.lambda_.invoke(handler, event)
    [message] = top_level(bot)
    assert message.edited and "Training job failed" in message.text and len(bot.updates) == 2
    changes = [reply.text for reply in message.replies]
    assert any("SCHEDULED → RUNNING" in text for text in changes), changes
    assert any("RUNNING → FAILED" in text for text in changes), changes


def test_a_late_scheduled_after_failed_changes_nothing(table, bot):
    with Client(fork, stage_name="local") as client:
        client.lambda_.invoke("on_service_job_failed", load_event("service_failed"))
        before = bot.calls_by_method()
        client.lambda_.invoke("on_service_job_progress", SCHEDULED)
    assert bot.calls_by_method() == before


def storm_of_service_failures(count: int) -> list[dict[str, Any]]:
    """``count`` training jobs of one queue failing alike (service_failed.json's reason), seconds apart."""
    events = []
    for index in range(1, count + 1):
        event = copy.deepcopy(load_event("service_failed"))
        job_id = f"9d1f3c62-0000-4000-8000-{index:012d}"
        detail = event["detail"]
        event["id"], event["time"] = f"9d1f3c62-0000-4000-9000-{index:012d}", f"2025-06-03T04:42:{index:02d}Z"
        detail["jobId"], detail["jobName"] = job_id, f"sweep-lr-{index:02d}"
        detail["jobArn"] = detail["jobArn"].rsplit("/", 1)[0] + "/" + job_id
        event["resources"] = [detail["jobArn"]]
        events.append(event)
    return events


def test_a_storm_of_service_failures_collapses_into_one_group(table, bot):
    events = storm_of_service_failures(6)
    with Client(app, stage_name="local") as client:
        for event in events:
            client.lambda_.invoke("on_service_job_failed", event)
    shown = top_level(bot)
    groups = [message for message in shown if "6 jobs failed" in message.text]
    assert len(shown) == 3 + 1 and len(groups) == 1, [message.text for message in shown]  # GROUP_AFTER is 3


# -- hostile details: never raises, escaped, within Slack's limits --------------------------------------
_ANY_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=3), max_leaves=8)
_TEXT = st.text(alphabet=st.sampled_from(["<", ">", "&", "*", "_", "`", "|", "!", "@", "a", "é", "\n", "🔥", "\ud800"]),
                max_size=400) | st.sampled_from(["<!channel>", "<!here>", "x" * 5000])
_ATTEMPT = st.fixed_dictionaries({}, optional={
    "serviceResourceId": st.fixed_dictionaries({"name": st.just("TrainingJobArn") | _ANY_JSON,
                                                "value": _TEXT | _ANY_JSON}),
    "startedAt": st.integers(-10, 2 ** 63) | _ANY_JSON, "stoppedAt": st.integers(-10, 2 ** 63) | _ANY_JSON,
    "statusReason": _TEXT | _ANY_JSON})
_DETAIL = st.fixed_dictionaries({"status": st.sampled_from(["FAILED", "SUCCEEDED", "RUNNABLE", "SCHEDULED"]) | _TEXT},
                                optional={
    "jobName": _TEXT | _ANY_JSON, "jobId": _TEXT | _ANY_JSON, "jobQueue": _TEXT | _ANY_JSON,
    "statusReason": _TEXT | _ANY_JSON, "attempts": st.lists(_ATTEMPT | _ANY_JSON, max_size=12) | _ANY_JSON,
    "latestAttempt": st.fixed_dictionaries({"serviceResourceId": _ATTEMPT}) | _ANY_JSON,
    "retryStrategy": _ANY_JSON, "shareIdentifier": _TEXT | _ANY_JSON, "schedulingPriority": _ANY_JSON,
    "timeoutConfig": st.fixed_dictionaries({"attemptDurationSeconds": st.integers() | _ANY_JSON}) | _ANY_JSON,
    "startedAt": _ANY_JSON, "stoppedAt": _ANY_JSON, "serviceJobType": _TEXT | _ANY_JSON,
    "preemptionSummary": _ANY_JSON, "arrayProperties": _ANY_JSON})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(detail=_DETAIL, kind=st.sampled_from([SERVICE_JOB_STATE_CHANGE, SERVICE_JOB_QUEUE_BLOCKED]),
       region=st.sampled_from(["us-east-1", "cn-north-1", "us-gov-east-1", "us-east-1.evil.example"]))
def test_hostile_service_details_never_raise_and_stay_safe(detail, kind, region):
    event = {**load_event("service_failed"), "detail-type": kind, "region": region, "detail": detail}
    job = parse(event, kind)
    build = build_service_queue_blocked_message if kind == SERVICE_JOB_QUEUE_BLOCKED else build_service_job_message
    payload = build(job).to_dict()
    assert payload["text"].strip() and len(payload["text"]) <= FALLBACK_TEXT_LIMIT
    assert block_kit_errors(payload["blocks"]) == []
    for text in mrkdwn_texts(payload):
        assert _RAW_MARKUP.search(text) is None, text[:200]
    assert all(".evil." not in url for url in buttons(payload).values())
    # The parts' own reading agrees: every view property answers without raising.
    assert service_job_parts(job).render().to_dict() == payload or job.is_queue_blocked
