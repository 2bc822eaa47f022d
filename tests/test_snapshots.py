"""Snapshots of what the handlers really post: the exact payloads that reach Slack.

Each snapshot is made the way Lambda runs the app: every fixture in ``tests/events`` goes to the
handlers whose EventBridge patterns select it (asked of moto's EventBridge, with the app's own
registered patterns), each of those handlers is invoked through ``chalice.test`` with the
fixture, and what the Slack stand-in accepted is compared with
``tests/snapshots/<handler>/<fixture>.json``. The FAILED handler runs with the log tail on,
against moto's CloudWatch Logs holding :data:`TAIL` in the job's own stream, so its snapshots
show the diagnosis, the attempt history and the tail it really sends. The scheduled handlers
(the sweep, the digest) run over :data:`SCHEDULED`'s scenarios against a stubbed AWS Batch.

A fork's new handler or fixture gets its snapshot test without touching this file. A missing
snapshot is written on a developer's first run (with a warning to review and commit it), so the
README's recipe passes ``make test`` as it stands; in CI (``CI`` set) a missing snapshot fails,
so CI never passes on a message nobody has looked at. A different snapshot always fails, naming
the command that rewrites it: ``UPDATE_SNAPSHOTS=1 make test``; then review the diff by eye.
A snapshot that no handler posts any more fails too, so none stays behind to mislead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from app import app
from chalicelib.core import config
from chalicelib.reading.event import JOB_STATE_CHANGE, JobStateChange
from chalicelib.reading.links import log_location
from chalicelib.scheduled.digest import LOOKBACK
from tests.batch_stub import FakeBatch, api_job, scheduled_event, write_routes
from tests.conftest import PROD_CHANNEL, ROOT, event_names, load_event
from tools import replay
from tools.eventbridge import EventBridgeRouter, registered_patterns
from tools.slack_standin import SlackStandIn

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = bool(os.environ.get("UPDATE_SNAPSHOTS"))
IN_CI = bool(os.environ.get("CI"))

# What a FAILED job's stream holds at its end (the stand-in for CloudWatch Logs' answer): a
# secret, to show it masked, and mrkdwn that must stay text.
TAIL = (
    "INFO  connecting to postgres://etl:hunter2@db.internal:5432/warehouse",
    "WARN  retrying <batch 42> & <batch 43>",
    "ERROR job failed: see the traceback above",
)


# -- comparing -------------------------------------------------------------------------------------
def rendered(posted: list[dict[str, Any]]) -> str:
    return json.dumps(posted, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def check_snapshot(handler: str, name: str, posted: list[dict[str, Any]]) -> None:
    """``posted`` equals the stored snapshot; with ``UPDATE_SNAPSHOTS`` set, it becomes it."""
    path = SNAPSHOTS / handler / f"{name}.json"
    text = rendered(posted)
    if UPDATE or (not path.exists() and not IN_CI):
        if not path.exists():
            warnings.warn(f"wrote tests/snapshots/{handler}/{name}.json, the first snapshot of what {handler} "
                          f"posts for {name}: review it and commit it", stacklevel=2)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), (f"no snapshot of what {handler} posts for {name}: run UPDATE_SNAPSHOTS=1 make test, "
                           f"then review and commit tests/snapshots/{handler}/{name}.json")
    assert text == path.read_text(), (f"{handler} posts something else for {name} than its snapshot: after a "
                                      "deliberate change, run UPDATE_SNAPSHOTS=1 make test and review the diff")


def stored(name: str) -> set[str]:
    """The handlers that have a snapshot for ``name``."""
    return {path.parent.name for path in SNAPSHOTS.glob(f"*/{name}.json")}


# -- the app as Lambda runs it ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def reached() -> dict[str, list[str]]:
    """Fixture name -> the handlers EventBridge invokes for it (the app's own patterns)."""
    with EventBridgeRouter(registered_patterns(app)) as bus:
        return {name: bus.matching(load_event(name)) for name in event_names()}


def project_copy(root: Path, **variables: str | None) -> str:
    """A copy of the project's config in ``root`` whose ``local`` stage turns the log tail on (it
    ships off), with a deadline loose enough for a busy test machine, and ``variables`` set (None:
    removed)."""
    (root / ".chalice").mkdir()
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env = config["stages"]["local"]["environment_variables"]
    env.update(LOG_TAIL_LINES="20", LOG_TAIL_TIMEOUT_SECONDS="10")
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    for policy in (ROOT / ".chalice").glob("policy-*.json"):
        shutil.copy(policy, root / ".chalice" / policy.name)
    return str(root)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The project without a state table: one message per event, everything in it (what a webhook,
    or a bot token without ``NOTIFY_STATE_TABLE``, posts). The conversation snapshots are below."""
    return project_copy(tmp_path_factory.mktemp("project"), NOTIFY_STATE_TABLE=None)


@pytest.fixture
def cloudwatch_logs() -> Iterator[Callable[[dict[str, Any]], None]]:
    """moto's CloudWatch Logs; the function it gives puts :data:`TAIL` in an event's job stream."""
    with mock_aws():
        config.reset()  # clients made before moto started would reach past it

        def put_tail(event: dict[str, Any]) -> None:
            if event["detail-type"] != JOB_STATE_CHANGE or event["detail"].get("status") != "FAILED":
                return  # only FAILED messages carry a tail
            location = log_location(JobStateChange.from_event(event))
            if location is None:
                return
            logs = boto3.client("logs", region_name=location.region)
            logs.create_log_group(logGroupName=location.group)
            logs.create_log_stream(logGroupName=location.group, logStreamName=location.stream)
            now = int(time.time() * 1000)
            logs.put_log_events(logGroupName=location.group, logStreamName=location.stream, logEvents=[
                {"timestamp": now - len(TAIL) + i, "message": line} for i, line in enumerate(TAIL)])

        yield put_tail
    config.reset()


def invoke(project_dir: str, slack: SlackStandIn, handler: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    """What ``handler`` posted for ``event``, invoked as Lambda does."""
    seen = len(slack.messages)
    with Client(app, stage_name="local", project_dir=project_dir) as client:
        client.lambda_.invoke(handler, event)
    return slack.messages[seen:]


# -- the event handlers, over every fixture --------------------------------------------------------
@pytest.mark.parametrize("name", event_names())
def test_each_handler_a_fixture_reaches_posts_its_snapshot(name, reached, project, bot, cloudwatch_logs):
    event = load_event(name)
    cloudwatch_logs(event)
    for handler in reached[name]:
        check_snapshot(handler, name, invoke(project, bot, handler, event))
    if UPDATE:
        for handler in stored(name) - set(reached[name]):
            (SNAPSHOTS / handler / f"{name}.json").unlink()
    assert stored(name) == set(reached[name]), (f"snapshots of {name} for handlers it does not reach: "
                                                "run UPDATE_SNAPSHOTS=1 make test to remove them")


# -- the scheduled handlers, over scenarios --------------------------------------------------------
UTC = UTC
SWEEP_AT = datetime(2024, 5, 13, 9, 15, tzinfo=UTC)
DIGEST_AT = datetime(2024, 5, 13, 9, 0, tzinfo=UTC)
Scenario = Callable[[FakeBatch, Path, pytest.MonkeyPatch], dict[str, Any]]


def stuck_in_two_teams_queues(batch: FakeBatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The sweep: one queue routed to a team's channel with a mention, one to the default channel."""
    write_routes(tmp_path, monkeypatch, [
        {"name": "genomics", "match": {"queue": "genomics-*"}, "channel": PROD_CHANNEL, "mention": ["S0GENOMICS1"],
         "statuses": ["FAILED", "STUCK"]},
        {"name": "default", "statuses": ["FAILED", "STUCK"]}])
    monkeypatch.setenv("STUCK_QUEUES", "etl-queue genomics-queue")
    batch.waiting(
        "etl-queue",
        runnable=[api_job("e-1", "nightly-etl-load", "RUNNABLE", SWEEP_AT - timedelta(minutes=30),
                          reason="Waiting for capacity")],
        starting=[api_job("e-2", "nightly-etl-extract", "STARTING", SWEEP_AT - timedelta(hours=8, minutes=1))])
    batch.waiting("genomics-queue", runnable=[api_job(
        "g-1", "variant-call", "RUNNABLE", SWEEP_AT - timedelta(hours=2, minutes=3),
        reason="MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is "
               "higher than that can be met by the CE(s) attached to the job queue.")])
    return scheduled_event("2024-05-13T09:15:03Z", "on_stuck_job_sweep")


def a_day_of_two_routes(batch: FakeBatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The digest: a team's route with its own digest, and the default route's."""
    write_routes(tmp_path, monkeypatch, [
        {"name": "etl", "match": {"queue": "etl-*"}, "channel": PROD_CHANNEL, "mention": ["S0DATAENG01"],
         "digest": True},
        {"name": "default", "digest": True}])
    monkeypatch.setenv("DIGEST_QUEUES", "etl-queue render-queue")
    day = DIGEST_AT - timedelta(hours=12)
    batch.jobs("etl-queue", [
        api_job("wait", "waiting", "RUNNABLE", DIGEST_AT - timedelta(hours=1), reason="Waiting for capacity"),
        api_job("dep", "never-started", "FAILED", day, stopped=day + timedelta(seconds=5),
                reason="Dependent Job failed"),
        api_job("oom", "nightly-etl-load", "FAILED", day, started=day + timedelta(minutes=1),
                stopped=day + timedelta(minutes=13), reason="Essential container in task exited", exit_code=137,
                container_reason="OutOfMemoryError: Container killed due to memory usage"),
        api_job("ok", "nightly-etl-extract", "SUCCEEDED", day, started=day, stopped=day + timedelta(minutes=55)),
    ], created_after=DIGEST_AT - LOOKBACK)
    batch.jobs("render-queue", [
        api_job("r-1", "render-frame-1", "SUCCEEDED", day, started=day, stopped=day + timedelta(hours=3)),
        api_job("r-2", "render-frame-2", "RUNNING", day, started=day + timedelta(hours=1)),
    ], created_after=DIGEST_AT - LOOKBACK)
    return scheduled_event("2024-05-13T09:00:12Z", "on_daily_digest")


def a_quiet_day_without_routes(batch: FakeBatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The digest without a routing file (``DIGEST=on``), over an account with no job queue yet."""
    monkeypatch.setenv("DIGEST", "on")
    batch.queues([])
    return scheduled_event("2024-05-13T09:00:12Z", "on_daily_digest")


# Handler -> scenario name -> the scenario (it feeds the Batch stub and returns the event).
SCHEDULED: dict[str, dict[str, Scenario]] = {
    "on_stuck_job_sweep": {"stuck_in_two_teams_queues": stuck_in_two_teams_queues},
    "on_daily_digest": {"a_day_of_two_routes": a_day_of_two_routes,
                        "a_quiet_day_without_routes": a_quiet_day_without_routes},
}


@pytest.mark.parametrize("handler, scenario", [(h, s) for h, scenarios in SCHEDULED.items() for s in scenarios])
def test_each_scheduled_handler_posts_its_snapshot(handler, scenario, project, batch, bot, tmp_path, monkeypatch):
    event = SCHEDULED[handler][scenario](batch, tmp_path, monkeypatch)
    check_snapshot(handler, scenario, invoke(project, bot, handler, event))
    batch.stubber.assert_no_pending_responses()


def test_no_snapshot_is_left_of_a_fixture_or_scenario_that_is_gone():
    known = {(handler, name) for handler, scenarios in SCHEDULED.items() for name in scenarios}
    known |= {(CONVERSATION, name) for name in CONVERSATIONS}
    fixtures = set(event_names())
    leftover = sorted(str(path.relative_to(SNAPSHOTS)) for path in SNAPSHOTS.rglob("*.json")
                      if (path.parent.name, path.stem) not in known and path.stem not in fixtures)
    assert leftover == [], "snapshots of fixtures or scenarios that no longer exist: delete them"
    # Every snapshot sits in its handler's folder: a file at the top level is one no handler posted.
    assert sorted(p.name for p in SNAPSHOTS.iterdir() if p.is_file()) == []


# -- conversation mode: what the handlers post when they hold conversations ------------------------
# A bot token and the state table: a job's first message is its headline with its detail (attempt
# history, log tail) as the thread's first reply; a newer state updates it and says what changed in
# its thread; a storm of failures alike collapses into one group message. These snapshots hold every
# chat.postMessage and chat.update call, in order, as Slack received them, in
# tests/snapshots/conversation/<scenario>.json.
CONVERSATION = "conversation"
STATE_TABLE = "batch-notify-snapshot-state"
# What the stand-in makes up, different on every run: message timestamps, and the storm's times
# (the group message shows when its jobs failed, by the clock, as Slack date tokens).
_SLACK_DATE = re.compile(r"<!date\^\d+\^([^|>]*)\|[^>]*>")


@pytest.fixture(scope="module")
def conversation_project(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The project in conversation mode: the state table named, and a short pace between Slack
    calls (the stand-in is not Slack's rate limit)."""
    return project_copy(tmp_path_factory.mktemp("conversation-project"), NOTIFY_STATE_TABLE=STATE_TABLE,
                        SLACK_PACE_SECONDS="0.01")


@pytest.fixture
def state_table(cloudwatch_logs: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """The state table in moto (the same mock as the log streams); gives ``cloudwatch_logs``' function."""
    boto3.client("dynamodb").create_table(
        TableName=STATE_TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    return cloudwatch_logs


def slack_calls(slack: SlackStandIn, since: int) -> list[dict[str, Any]]:
    """The chat.postMessage and chat.update calls Slack took after request ``since``, as sent; each
    message's ts named by the order it first appears in them ("<ts 1>"), date tokens by their format."""
    calls = [{"method": request.path.rsplit("/", 1)[-1], "body": request.body} for request in slack.requests[since:]
             if request.path.startswith("/api/chat.") and request.reply_status == 200]
    names: dict[str, str] = {}
    for call in calls:
        for key in ("ts", "thread_ts"):
            if key in call["body"]:
                ts = call["body"][key]
                call["body"][key] = names.setdefault(ts, f"<ts {len(names) + 1}>")
    text = _SLACK_DATE.sub(r"<!date^(when)^\1|(when)>", json.dumps(calls, ensure_ascii=False))
    loaded: list[dict[str, Any]] = json.loads(text)
    return loaded


def converse(project_dir: str, slack: SlackStandIn, *invocations: tuple[str, dict[str, Any]]) -> int:
    """Invoke each (handler, event) in turn, as Lambda does; return the request count before the last."""
    before = 0
    with Client(app, stage_name="local", project_dir=project_dir) as client:
        for handler, event in invocations:
            before = len(slack.requests)
            client.lambda_.invoke(handler, event)
    return before


def failed_headline_and_detail(slack: SlackStandIn, project_dir: str,
                               put_tail: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """A retried job's FAILED: the headline on top, the attempt history and log tail in its thread."""
    event = load_event("retried_failed")
    put_tail(event)
    converse(project_dir, slack, ("on_job_failed", event))
    return slack_calls(slack, 0)


def running_then_failed(slack: SlackStandIn, project_dir: str,
                        put_tail: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """A critical-* job's RUNNING, then its FAILED 2h 3m later: its message updated in place (no
    mention), "RUNNING → FAILED after 2h 3m" in its thread, sent to the channel too, then its detail."""
    running, failed = replay.running_then_failed()
    put_tail(failed)
    converse(project_dir, slack, ("on_critical_job_running", running), ("on_job_failed", failed))
    return slack_calls(slack, 0)


def failure_storm_group(slack: SlackStandIn, project_dir: str,
                        put_tail: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Four jobs of one queue failing alike: the first three post their own (not shown here), the
    fourth posts the group message and lists itself in its thread."""
    events = replay.storm_events(4)
    last = converse(project_dir, slack, *(("on_job_failed", event) for event in events))
    return slack_calls(slack, last)


ConversationScenario = Callable[[SlackStandIn, str, Callable[[dict[str, Any]], None]], list[dict[str, Any]]]
CONVERSATIONS: dict[str, ConversationScenario] = {
    "failed_headline_and_detail": failed_headline_and_detail,
    "running_then_failed": running_then_failed,
    "failure_storm_group": failure_storm_group,
}


@pytest.mark.parametrize("scenario", sorted(CONVERSATIONS))
def test_conversation_mode_posts_its_snapshot(scenario, conversation_project, bot, state_table):
    calls = CONVERSATIONS[scenario](bot, conversation_project, state_table)
    assert calls, f"{scenario}: nothing was posted"
    check_snapshot(CONVERSATION, scenario, calls)
