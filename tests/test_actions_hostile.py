"""Actions when things go wrong, from review: Batch's answer lost after it took the job, a claim that
reached Batch, an array job whose children run in sequence, snooze counts in the digest, and buttons on
a stage where no click could work. Each test failed on the first version of the actions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from moto import mock_aws

from chalicelib.core import clients, config
from chalicelib.core.state_table import StateTable, state_table
from chalicelib.deciding.action_claims import STALE_SECONDS, claim_key
from chalicelib.deciding.permissions import actions_on
from chalicelib.deciding.resubmit import resubmit_request
from chalicelib.deciding.routing import parse_route_table
from chalicelib.deciding.snoozes import Snoozes, mark_reported, snoozed_counts
from chalicelib.reading.batch_api import JobSummary
from chalicelib.scheduled.digest import Digest, _with_snoozes
from tests import test_action_handlers
from tests.state_fixtures import STATE_TABLE, Serialized, create_state_table
from tests.test_action_handlers import World
from tests.test_resubmit import CONTAINER, JOB, valid_request

world = test_action_handlers.world  # the fixture: moto's Batch and DynamoDB, the stand-in, the route

ARN = "arn:aws:batch:us-east-1:123456789012:job/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
ARN2 = "arn:aws:batch:us-east-1:123456789012:job/1d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"


class AnswerLost:
    """Batch takes the SubmitJob (the job exists) but its answer never arrives: a read timeout."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.lose_next = inner, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit_job(self, **kwargs: Any) -> Any:
        answer = self.inner.submit_job(**kwargs)
        if self.lose_next:
            self.lose_next = False
            raise ReadTimeoutError(endpoint_url="https://batch.us-east-1.amazonaws.com/v1/submitjob")
        return answer


def test_a_submitjob_whose_answer_is_lost_is_never_submitted_again_by_a_second_click(world: World) -> None:
    clients.use_client("batch", AnswerLost(world.batch))
    world.click("retry_job", world.job_arn)
    assert world.calls("submit_job") == 1
    assert "may have" in world.ephemerals()[0] and "Nothing was done" not in world.ephemerals()[0]
    world.click("retry_job", world.job_arn)  # the person clicks again
    assert world.calls("submit_job") == 1
    assert "check the job queue" in world.ephemerals()[-1]


def test_a_claim_that_reached_batch_is_never_taken_over_by_its_age(world: World) -> None:
    # DynamoDB throttles the one write that records the claim done (the job is already submitted).
    world.dynamodb.fail_when = lambda name, kw: name == "put_item" and kw["Item"].get("state") == {"S": "done"}
    world.click("retry_job", world.job_arn)
    assert world.calls("submit_job") == 1
    key = claim_key(world.job_arn, "retry")
    table = state_table()
    assert table is not None
    item = table.get(key)
    assert item is not None and item["state"] == "calling"
    world.dynamodb.fail_when = lambda name, kw: False
    table.update(key, "SET #at = :at", names={"#at": "at"}, values={":at": float(item["at"]) - STALE_SECONDS - 1})
    world.click("retry_job", world.job_arn)  # two minutes later
    assert world.calls("submit_job") == 1


def test_an_array_job_whose_children_ran_in_sequence_is_retried_in_sequence() -> None:
    description = {**JOB, "container": CONTAINER, "arrayProperties": {"size": 100, "statusSummary": {}},
                   "dependsOn": [{"type": "SEQUENTIAL"}, {"jobId": "f00d", "type": "N_TO_N"}]}
    retry = resubmit_request(description, original_job_id=JOB["jobId"])
    assert valid_request(retry).get("dependsOn") == [{"type": "SEQUENTIAL"}]
    assert any("1 job(s)" in note for note in retry.notes)  # the other job's dependency is not carried


def test_no_buttons_on_a_stage_without_the_state_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-abc")
    monkeypatch.setenv("SLACK_CHANNEL", "C0123ABCD")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "a1b2c3d4" * 4)
    config.reset()
    assert not actions_on()  # every action claims, acknowledges or snoozes in the table
    monkeypatch.setenv("NOTIFY_STATE_TABLE", STATE_TABLE)
    config.reset()
    assert actions_on()


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[StateTable]:
    monkeypatch.setenv("NOTIFY_STATE_TABLE", STATE_TABLE)
    config.reset()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client)
        with clients.use_client("dynamodb", Serialized(client)):
            found = state_table()
            assert found is not None
            yield found


def counted() -> list[tuple[str, str, int]]:
    """The digest's snooze counts: (queue, job name, events not yet shown)."""
    return [(s.queue, s.job_name, n) for s, n in snoozed_counts()]


def test_snoozing_again_keeps_the_skips_not_yet_in_a_digest(table: StateTable) -> None:
    snoozes = Snoozes(table)
    first = snoozes.set("etl-queue", "nightly-etl", 3600, "U0ALICE", ARN)
    for _ in range(3):
        snoozes.count_skip(first)
    snoozes.set("etl-queue", "nightly-etl", 4 * 3600, "U0BOB", ARN2)  # another message of the job name
    assert counted() == [("etl-queue", "nightly-etl", 3)]


def test_a_digest_shows_each_skip_once(table: StateTable) -> None:
    snoozes = Snoozes(table)
    snooze = snoozes.set("etl-queue", "nightly-etl", 7 * 86400, "U0ALICE", ARN)
    for _ in range(3):
        snoozes.count_skip(snooze)
    assert counted() == [("etl-queue", "nightly-etl", 3)]
    mark_reported({s.key: n for s, n in snoozed_counts()})  # today's digest posted
    snoozes.count_skip(snooze)
    assert counted() == [("etl-queue", "nightly-etl", 1)]  # tomorrow's: only what is new


def test_a_routes_digest_counts_only_its_own_routes_snoozes(table: StateTable) -> None:
    snooze = Snoozes(table).set("shared-queue", "etl-nightly", 3600, "U0ALICE", ARN)
    Snoozes(table).count_skip(snooze)
    routes = parse_route_table({"routes": [{"name": "ml", "match": {"job": "ml-*"}},
                                           {"name": "etl", "match": {"job": "etl-*"}}, {"name": "default"}]})
    end = datetime(2024, 5, 14, 9, tzinfo=UTC)
    finished = (JobSummary(queue="shared-queue", job_id="j1", name="ml-train", status="SUCCEEDED"),)
    ml = Digest(route="ml", channel="#ml", start=end - timedelta(days=1), end=end, finished=finished)
    etl = Digest(route="etl", channel="#etl", start=end - timedelta(days=1), end=end, finished=finished)
    assert _with_snoozes(ml, routes).snoozed == ()
    assert [line[:3] for line in _with_snoozes(etl, routes).snoozed] == [("shared-queue", "etl-nightly", 1)]
