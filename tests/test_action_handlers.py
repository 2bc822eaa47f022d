"""The action handlers end to end: signed clicks through a real Chalice route, AWS Batch and the
state table in moto (or, for terminate, a recording fake chosen by input), Slack the stand-in.

moto is not thread-safe, so both AWS clients are handed in wrapped in tests/state_fixtures.py's
``Serialized`` (one call at a time, as AWS applies them), which also records every call: the
number of SubmitJob/TerminateJob calls is what "exactly once" is about.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.app import Chalice
from chalice.test import Client
from moto import mock_aws

from chalicelib.application import BatchNotify
from chalicelib.core import clients, config
from chalicelib.core.state_table import state_table
from chalicelib.deciding.acks import acknowledged
from chalicelib.deciding.action_claims import ActionClaims
from chalicelib.deciding.resubmit import RETRY_OF_TAG
from chalicelib.deciding.snoozes import Scope, count_skip, snoozed, snoozed_counts
from chalicelib.interactions import endpoint
from chalicelib.interactions.endpoint import Registry, answer_click
from chalicelib.interactions.handlers import HANDLERS, answer_with_built_ins, register_all
from tests.conftest import TEST_CHANNEL
from tests.state_fixtures import STATE_TABLE, Serialized, create_state_table
from tests.test_resubmit import carried
from tools import sign_click
from tools.slack_standin import BOT_USER, MEMBER, SlackStandIn

SECRET = "a1b2c3d4" * 4
PATH = "/slack/actions"
REGION, ACCOUNT = "us-east-1", "123456789012"
OTHER_USER = "U0NOTALLOWED"
ENV_SECRET = "s3cr3t-from-the-job-env"  # an environment value: in the new job, in no log line


def blocks_for(job_arn: str) -> list[dict[str, Any]]:
    """A failure message's blocks as Slack sends them back: a summary and the action elements."""
    def button(action_id: str, text: str) -> dict[str, Any]:
        return {"type": "button", "action_id": action_id, "value": job_arn,
                "text": {"type": "plain_text", "text": text}}

    options = [{"text": {"type": "plain_text", "text": d}, "value": f"{d}|{job_arn}"} for d in ("1h", "4h")]
    return [{"type": "section", "block_id": "summary", "text": {"type": "mrkdwn", "text": "Job failed: nightly-etl"}},
            {"type": "actions", "block_id": "job_actions", "elements": [
                button("retry_job", "Retry"), button("terminate_job", "Terminate"),
                button("acknowledge", "Acknowledge"),
                {"type": "static_select", "action_id": "snooze", "options": options,
                 "placeholder": {"type": "plain_text", "text": "Snooze"}}]}]


class World:
    """moto's Batch (one queue, one job definition), the state table, the stand-in, the route."""

    def __init__(self, slack: SlackStandIn) -> None:
        self.slack = slack
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        raw_batch = boto3.client("batch", region_name=REGION)
        env = raw_batch.create_compute_environment(computeEnvironmentName="notify-ce", type="UNMANAGED",
                                                   state="ENABLED", serviceRole=role)
        self.queue = raw_batch.create_job_queue(
            jobQueueName="etl-queue", state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])["jobQueueArn"]
        definition = raw_batch.register_job_definition(
            jobDefinitionName="nightly-etl", type="container", parameters={"day": "monday"},
            containerProperties={"image": "busybox", "command": ["etl", "Ref::day"],
                                 "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                          {"type": "MEMORY", "value": "2048"}]})
        self.job_id = raw_batch.submit_job(
            jobName="nightly-etl", jobQueue=self.queue, jobDefinition=definition["jobDefinitionArn"],
            tags={"team": "data"},
            containerOverrides={"environment": [{"name": "DB_PASSWORD", "value": ENV_SECRET}]})["jobId"]
        self.job_arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{self.job_id}"
        create_state_table(boto3.client("dynamodb", region_name=REGION))
        self.batch = Serialized(raw_batch)
        self.submitted: list[dict[str, Any]] = []  # every SubmitJob request, as botocore sends it
        raw_batch.meta.events.register("before-parameter-build.batch.SubmitJob",
                                       lambda params, **_: self.submitted.append(dict(params)))
        self.dynamodb = Serialized(boto3.client("dynamodb", region_name=REGION))
        clients.use_client("batch", self.batch)
        clients.use_client("dynamodb", self.dynamodb)
        self.registry = Registry()
        register_all(self.registry)
        self.app = make_app(self.registry)

    def describe(self, job_id: str) -> dict[str, Any]:
        return dict(self.batch.describe_jobs(jobs=[job_id])["jobs"][0])

    def click(self, action_id: str, value: str, *, user: str = MEMBER, option: str | None = None) -> str:
        """Post a message, click ``action_id`` on it as ``user``; the message's ts."""
        ts = self.slack.post_as(BOT_USER, TEST_CHANNEL, "Job failed: nightly-etl")
        url = self.slack.response_url(TEST_CHANNEL, ts, user=user)
        payload = sign_click.build_click(action_id, value, user=user, message_ts=ts, option=option,
                                         blocks=blocks_for(value), response_url=url)
        body = sign_click.form_body(payload)
        with Client(self.app, stage_name="local") as client:
            answer = client.http.post(PATH, headers=sign_click.sign(body, SECRET), body=body)
        assert answer.status_code == 200
        return ts

    def shown(self, ts: str) -> Any:
        return next(m for m in self.slack.channel_view(TEST_CHANNEL) if m.ts == ts)

    def ephemerals(self) -> list[str]:
        return [e["text"] for e in self.slack.ephemerals]

    def calls(self, name: str) -> int:
        return self.batch.calls.count(name)


def make_app(registry: Registry) -> Chalice:
    app = BatchNotify(app_name="handlers-test")

    @app.route(PATH, methods=["POST"], content_types=endpoint.ROUTE_CONTENT_TYPES)
    def slack_actions() -> Any:
        return answer_click(app.current_request, registry=registry)

    return app


@pytest.fixture
def world(bot: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("NOTIFY_STATE_TABLE", STATE_TABLE)
    monkeypatch.setenv("SLACK_ACTIONS_ALLOW", MEMBER)
    config.reset()
    # chalice.test swaps os.environ for a copy during each request and puts back the one it saw:
    # requests in parallel threads can leave a copy in place, which monkeypatch would not undo.
    environ = os.environ
    try:
        with mock_aws(config={"batch": {"use_docker": False}}):
            yield World(bot)
    finally:
        os.environ = environ  # noqa: B003 (the same object, put back: not a new environment)


def test_every_action_id_has_a_handler_once_the_route_answers_its_first_click() -> None:
    assert set(HANDLERS) == {"retry_job", "retry_job_more_memory", "terminate_job", "acknowledge", "snooze",
                             "unsnooze"}
    registry = endpoint.Registry()
    assert registry.handler("retry_job") is None
    answer_with_built_ins(None, registry)  # no request: refused, but the handlers are in place
    assert all(registry.handler(action_id) is handler for action_id, handler in HANDLERS.items())


def test_a_forks_own_handler_for_a_built_in_action_id_is_kept() -> None:
    registry = endpoint.Registry()

    def own(click: Any) -> Any:
        raise AssertionError("not called here")

    registry.register("acknowledge", own)
    answer_with_built_ins(None, registry)
    assert registry.handler("acknowledge") is own and registry.handler("retry_job") is HANDLERS["retry_job"]


ROOT = Path(__file__).resolve().parent.parent


def test_importing_the_app_loads_no_click_code() -> None:
    # Event handlers' cold starts must not pay for the click route's modules.
    program = ("import sys, app; print(sorted(m for m in sys.modules if m.startswith(("
               "'chalicelib.interactions', 'chalicelib.scheduled', 'boto3', 'botocore'))))")
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_retry_submits_the_job_again_as_it_ran_and_replaces_the_message(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ts = world.click("retry_job", world.job_arn)

    assert world.calls("submit_job") == 1
    jobs = world.batch.list_jobs(jobQueue=world.queue, filters=[{"name": "JOB_NAME", "values": ["nightly-etl"]}])
    new_id = next(j["jobId"] for j in jobs["jobSummaryList"] if j["jobId"] != world.job_id)
    original, new = world.describe(world.job_id), world.describe(new_id)
    assert carried(new) == carried(original)
    assert new["tags"][RETRY_OF_TAG] == world.job_id
    shown = world.shown(ts)
    assert shown.edited
    assert new_id in str(shown.blocks) and f"<@{MEMBER}>" in str(shown.blocks)
    record = state_table().get(f"job#{new['jobArn']}")  # type: ignore[union-attr]
    assert record is not None
    assert (record["ts"], record["channel"], record["status"], record["order"]) == (ts, TEST_CHANNEL, "SUBMITTED", 0)
    assert {"name": "DB_PASSWORD", "value": ENV_SECRET} in new["container"]["environment"]
    ours = " ".join(r.getMessage() for r in caplog.records if r.name == "batch_notify")
    assert ENV_SECRET not in ours
    assert '"outcome": "retried"' in ours


def test_more_memory_doubles_the_memory_and_keeps_the_rest(world: World) -> None:
    world.click("retry_job_more_memory", world.job_arn)

    jobs = world.batch.list_jobs(jobQueue=world.queue, filters=[{"name": "JOB_NAME", "values": ["nightly-etl"]}])
    assert len(jobs["jobSummaryList"]) == 2
    # moto describes a job's memory from its definition, not its overrides: the request says it.
    (request,) = world.submitted[-1:]
    memory = {r["type"]: r["value"] for r in request["containerOverrides"]["resourceRequirements"]}
    assert memory == {"VCPU": "1", "MEMORY": "4096"}
    assert request["jobDefinition"] == world.describe(world.job_id)["jobDefinition"]


class ArrayChildBatch:
    """A Batch fake whose job is one child of an array job: it cannot be retried on its own."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = {**job, "jobId": job["jobId"] + ":3", "jobArn": job["jobArn"] + ":3",
                    "arrayProperties": {"index": 3}}
        self.meta = type("Meta", (), {"region_name": REGION})()
        self.submitted = 0

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        return {"jobs": [self.job]}

    def submit_job(self, **_: Any) -> dict[str, Any]:
        self.submitted += 1
        return {}


def test_a_job_that_cannot_be_resubmitted_is_explained_and_the_claim_released(world: World) -> None:
    fake = ArrayChildBatch(world.describe(world.job_id))
    clients.use_client("batch", fake)
    world.click("retry_job", fake.job["jobArn"])

    assert fake.submitted == 0
    assert "cannot be retried" in world.ephemerals()[0] and "array job" in world.ephemerals()[0]
    assert state_table().get(f"action#{fake.job['jobArn']}#retry") is None  # type: ignore[union-attr]


def test_a_second_click_is_told_who_retried_it_and_submits_nothing(world: World) -> None:
    world.click("retry_job", world.job_arn)
    world.click("retry_job_more_memory", world.job_arn)

    assert world.calls("submit_job") == 1
    assert any(text.startswith("Already retried as ") and f"<@{MEMBER}>" in text for text in world.ephemerals())


def test_five_concurrent_clicks_submit_one_job(world: World) -> None:
    threads = [threading.Thread(target=world.click, args=("retry_job", world.job_arn)) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert world.calls("submit_job") == 1
    assert len(world.ephemerals()) == 4  # "already retried" or "being retried", each saying by whom
    assert all(f"<@{MEMBER}>" in text for text in world.ephemerals())


def test_a_user_not_allowed_changes_nothing(world: World) -> None:
    ts = world.click("retry_job", world.job_arn, user=OTHER_USER)

    assert world.calls("submit_job") == 0
    assert "not allowed" in world.ephemerals()[0]
    assert not world.shown(ts).edited
    assert state_table().get(f"action#{world.job_arn}#retry") is None  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [
    f"arn:aws:batch:eu-west-1:{ACCOUNT}:job/0d1e2f3a-4b5c",  # another region
    "arn:aws:batch:us-east-1:210987654321:job/0d1e2f3a-4b5c",  # another account
])
def test_a_job_of_another_region_or_account_is_refused(world: World, value: str) -> None:
    world.click("retry_job", value)

    assert world.calls("submit_job") == 0
    assert "another account or region this app cannot reach" in world.ephemerals()[0]


def test_a_value_that_is_not_a_job_arn_is_refused_without_a_call(world: World) -> None:
    world.click("terminate_job", "<!channel> arn:aws:batch:nope")

    assert world.batch.calls == []
    assert "does not carry an AWS Batch job ARN" in world.ephemerals()[0]


def test_batch_failing_releases_the_claim_and_a_later_click_works(world: World) -> None:
    refusing = Refusing(world.batch._client, "submit_job")
    clients.use_client("batch", refusing)
    world.click("retry_job", world.job_arn)

    assert "access denied" in world.ephemerals()[0] and "Nothing was done" in world.ephemerals()[0]
    assert state_table().get(f"action#{world.job_arn}#retry") is None  # type: ignore[union-attr]
    clients.use_client("batch", world.batch)
    world.click("retry_job", world.job_arn)
    assert world.calls("submit_job") == 1


class Refusing:
    """A Batch client that answers AccessDenied to ``refused`` and passes the rest on."""

    def __init__(self, inner: Any, refused: str) -> None:
        self.inner, self.refused = inner, refused

    def __getattr__(self, name: str) -> Any:
        if name != self.refused:
            return getattr(self.inner, name)

        def deny(**_: Any) -> Any:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, name)

        return deny


class RunnableBatch:
    """A Batch fake for terminate: the job is RUNNABLE (moto finishes jobs at once); every
    TerminateJob call is recorded."""

    def __init__(self, describe: dict[str, Any]) -> None:
        self.job = {**describe, "status": "RUNNABLE"}
        self.terminated: list[dict[str, Any]] = []
        self.meta = type("Meta", (), {"region_name": REGION})()
        self.lock = threading.Lock()

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        return {"jobs": [self.job] if jobs == [self.job["jobArn"]] else []}

    def terminate_job(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.terminated.append(kwargs)
        return {}


def test_terminate_is_done_once_with_a_reason_naming_the_user(world: World) -> None:
    fake = RunnableBatch(world.describe(world.job_id))
    clients.use_client("batch", fake)
    threads = [threading.Thread(target=world.click, args=("terminate_job", world.job_arn)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(fake.terminated) == 1
    assert fake.terminated[0] == {"jobId": world.job_arn,
                                  "reason": f"Terminated from Slack by {sign_click.USER_NAME} ({MEMBER})"}
    assert len(world.ephemerals()) == 2


def test_terminate_by_a_user_not_allowed_calls_nothing(world: World) -> None:
    fake = RunnableBatch(world.describe(world.job_id))
    clients.use_client("batch", fake)
    world.click("terminate_job", world.job_arn, user=OTHER_USER)

    assert fake.terminated == []
    assert "not allowed" in world.ephemerals()[0]


def test_acknowledge_records_who_and_shows_it(world: World) -> None:
    assert not acknowledged(world.job_arn)
    ts = world.click("acknowledge", world.job_arn, user=OTHER_USER)  # anyone may

    assert acknowledged(world.job_arn)
    assert f"<@{OTHER_USER}> acknowledged" in str(world.shown(ts).blocks)
    assert world.calls("submit_job") == world.calls("terminate_job") == 0


def test_snooze_then_unsnooze(world: World) -> None:
    ts = world.click("snooze", world.job_arn, user=OTHER_USER, option=f"4h|{world.job_arn}")

    scope = Scope.of(world.job_arn)
    found = snoozed(world.queue, "nightly-etl", scope)
    assert found is not None and found.by == OTHER_USER and found.queue == "etl-queue"
    assert snoozed("etl-queue", "another-job", scope) is None
    assert "unsnooze" in str(world.shown(ts).blocks)
    # What notify.py does with a FAILED event of that name in that queue: skip it, count it.
    assert count_skip(found) == 1
    assert [(s.queue, s.job_name, n) for s, n in snoozed_counts(["etl-queue"])] == [("etl-queue", "nightly-etl", 1)]

    world.click("unsnooze", world.job_arn)
    assert snoozed(world.queue, "nightly-etl", scope) is None


def test_a_snooze_option_not_offered_is_refused(world: World) -> None:
    world.click("snooze", world.job_arn, option=f"99y|{world.job_arn}")

    assert snoozed(world.queue, "nightly-etl", Scope.of(world.job_arn)) is None
    assert "not a snooze" in world.ephemerals()[0]


def test_a_claim_abandoned_mid_way_can_be_taken_over_later(world: World) -> None:
    table = state_table()
    assert table is not None
    first = ActionClaims(table, clock=lambda: 1000.0).claim(world.job_arn, "retry", MEMBER)
    assert first.mine
    assert not ActionClaims(table, clock=lambda: 1010.0).claim(world.job_arn, "retry", OTHER_USER).mine
    assert ActionClaims(table, clock=lambda: 1200.0).claim(world.job_arn, "retry", OTHER_USER).mine
