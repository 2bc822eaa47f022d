"""Snoozes on a hub: each holds in its job's account and region, and a member's job can be snoozed.

A hub gets the events of many accounts (and regions), whose queues and job names may be the
same. A snooze set from account B's message silences B's job name in B's queue, never A's, and
the Snooze click on B's job reads the job in B through the member role, as retry and terminate do.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from chalicelib.core import clients, config
from chalicelib.core.config import ACCOUNT_NAMES
from chalicelib.deciding.routing import parse_route_table
from chalicelib.deciding.snoozes import Scope, Snoozes, snoozed
from chalicelib.reading.batch_api import JobSummary
from chalicelib.scheduled.digest import Digest, _with_snoozes
from tests import test_hub
from tests.state_fixtures import STATE_TABLE, Serialized, create_state_table
from tests.test_hub import HUB, MEMBER_ACCOUNT, NAMES, REGION, MemberBatch, forwarded, on_job_failed
from tools.slack_standin import SlackStandIn

# test_hub's fixtures, for these tests too.
aws, dev_stage, member_batch = test_hub.aws, test_hub.dev_stage, test_hub.member_batch

QUEUE, JOB = "etl-ondemand-queue", "nightly-etl-load-2024-05-13"  # ec2_failed's
JOB_ID = "e47141c8-f5c1-4692-9511-abe48f1a8943"


def job_arn(account: str, region: str = REGION) -> str:
    return f"arn:aws:batch:{region}:{account}:job/{JOB_ID}"


def test_a_snooze_click_on_a_member_accounts_job_reads_it_there_and_snoozes_it_there(
        member_batch: MemberBatch) -> None:
    member_batch.click("snooze", option=f"4h|{member_batch.job_arn}")

    assert member_batch.ephemerals() == []  # not "AWS Batch does not know this job"
    found = snoozed("etl-queue", "nightly-etl", Scope(MEMBER_ACCOUNT, REGION))
    assert found is not None and found.account == MEMBER_ACCOUNT
    assert snoozed("etl-queue", "nightly-etl", Scope(HUB, REGION)) is None


@pytest.fixture
def stage_with_table(dev_stage: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> SlackStandIn:
    """The dev stage (webhook from SSM, hub configured) with the state table its snoozes live in."""
    monkeypatch.setenv("NOTIFY_STATE_TABLE", STATE_TABLE)
    monkeypatch.setenv("LOG_TAIL_LINES", "0")
    config.reset()
    create_state_table(boto3.client("dynamodb", region_name=REGION))
    clients.use_client("dynamodb", Serialized(boto3.client("dynamodb", region_name=REGION)))
    return dev_stage


def snooze(account: str, region: str = REGION) -> None:
    from chalicelib.core.state_table import state_table

    table = state_table()
    assert table is not None
    Snoozes(table).set(QUEUE, JOB, 3600, "U0ALICE", job_arn(account, region))


def posted_for(event: dict[str, Any], slack: SlackStandIn) -> bool:
    event["id"] = str(uuid.uuid4())  # each its own event, not a duplicate delivery
    before = len(slack.messages)
    on_job_failed(event)
    return len(slack.messages) > before


def test_a_snooze_in_one_account_silences_that_account_only(stage_with_table: SlackStandIn) -> None:
    snooze(MEMBER_ACCOUNT)

    assert not posted_for(forwarded(account=MEMBER_ACCOUNT), stage_with_table)  # B's: snoozed
    assert posted_for(forwarded(account=HUB), stage_with_table)  # A's, same queue and job names
    assert posted_for(forwarded(account=MEMBER_ACCOUNT, region="eu-west-1"), stage_with_table)  # B's other region


def test_the_digest_counts_each_accounts_snooze_on_its_own_line(stage_with_table: SlackStandIn,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.core.state_table import state_table

    monkeypatch.setenv(ACCOUNT_NAMES, NAMES)
    config.reset()
    table = state_table()
    assert table is not None
    snoozes = Snoozes(table)
    for account, skips in ((HUB, 1), (MEMBER_ACCOUNT, 2)):
        found = snoozes.set(QUEUE, JOB, 3600, "U0ALICE", job_arn(account))
        for _ in range(skips):
            snoozes.count_skip(found)
    end = datetime(2026, 12, 2, 9, tzinfo=UTC)
    finished = (JobSummary(queue=QUEUE, job_id="j1", name=JOB, status="SUCCEEDED"),)
    digest = Digest(route=None, channel=None, start=end - timedelta(days=1), end=end, finished=finished)

    lines = _with_snoozes(digest, None).snoozed
    assert sorted((line.events, line.where) for line in lines) == [
        (1, f"hub ({HUB}) · {REGION}"), (2, f"staging ({MEMBER_ACCOUNT}) · {REGION}")]
    # A route that matches on the account takes only its account's snooze.
    routes = parse_route_table({"routes": [{"name": "staging", "match": {"account": MEMBER_ACCOUNT}},
                                           {"name": "default"}]})
    staging = Digest(route="staging", channel="#staging", start=digest.start, end=end, finished=finished)
    assert [line.events for line in _with_snoozes(staging, routes).snoozed] == [2]
