"""Failure storms on a hub: same-named queues of different accounts and regions are storms of their own,
and a group message says its jobs' account and region as a job's own message does.

The state table is moto's DynamoDB (one lock over it, as in tests/test_storms.py), Slack the stand-in.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.composing.storm_message import group_message
from chalicelib.core import clients, config, member_roles
from chalicelib.core.config import ACCOUNT_NAMES
from chalicelib.core.state_table import StateTable, state_table
from chalicelib.deciding.storms import Group, Grouping, read_group, storm_key
from chalicelib.delivering.slack import Slack
from chalicelib.delivering.storm_posting import StormResult, join_storm
from chalicelib.reading.event import JobStateChange
from tests.conftest import TEST_CHANNEL, load_event
from tests.state_fixtures import Serialized, create_state_table
from tools.slack_standin import SlackStandIn, mrkdwn_texts

TABLE = "batch-notify-test-state"
HUB, MEMBER = "123456789012", "210987654321"
HOME = "us-east-1"  # the app's own region in these tests (conftest's AWS_DEFAULT_REGION)
# The first job of each storm posts its own message; the next is a line of its group.
AFTER_ONE = Grouping(after=1, window_seconds=600)
FAST: dict[str, Any] = {"update_seconds": 0.3, "poll_seconds": (0.05, 0.1), "lease_seconds": 5.0}


class Context:
    invoked_function_arn = f"arn:aws:lambda:{HOME}:{HUB}:function:batch-notify-dev-on_job_failed"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[StateTable]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=HOME)
        create_state_table(dynamodb, TABLE)
        monkeypatch.setenv("NOTIFY_STATE_TABLE", TABLE)
        monkeypatch.delenv("AWS_REGION", raising=False)
        config.reset()
        member_roles.note_context(Context())  # what every handler does: the app's own account, known
        with clients.use_client("dynamodb", Serialized(dynamodb)):
            found = state_table()
            assert found is not None
            yield found
    config.reset()


@pytest.fixture
def slack_client(bot: SlackStandIn, table: StateTable) -> Slack:
    return Slack(config.slack_settings())


def failed_job(number: int, account: str = HUB, region: str = HOME) -> JobStateChange:
    """A FAILED job of ``account`` and ``region`` in queue reports-fargate-queue: the image could
    not be pulled (so every one has the same queue name and cause), as the hub's bus gets it."""
    event = copy.deepcopy(load_event("diag_image_pull"))
    text = json.dumps(event).replace(f":{event['region']}:", f":{region}:").replace(event["account"], account)
    event = json.loads(text)
    event["region"] = region
    job_id = str(uuid.UUID(int=number + 1))
    event["detail"].update(jobId=job_id, jobName=f"invoice-export-{number:03d}",
                           jobArn=f"arn:aws:batch:{region}:{account}:job/{job_id}")
    return JobStateChange.from_event(event)


def join(job: JobStateChange, slack: Slack, table: StateTable) -> StormResult:
    return join_storm(job, TEST_CHANNEL, (), AFTER_ONE, slack, table, deadline=time.monotonic() + 20, **FAST)


def group_texts(bot: SlackStandIn) -> list[str]:
    """Each group message in the channel, as the readers see it (every mrkdwn text of it)."""
    return [" ".join(mrkdwn_texts({"text": m.text, "blocks": m.blocks})) for m in bot.channel_view(TEST_CHANNEL)
            if "jobs failed in" in m.text or "job failed in" in m.text]


# -- the key -----------------------------------------------------------------------------------------

def test_the_storm_key_holds_the_jobs_account_and_region_from_its_arn() -> None:
    key = storm_key(failed_job(1, MEMBER, "eu-west-1"), TEST_CHANNEL)
    assert (key.account, key.region) == (MEMBER, "eu-west-1")
    same = storm_key(failed_job(2, MEMBER, "eu-west-1"), TEST_CHANNEL)
    assert same.pk == key.pk  # jobs alike in one account and region: one storm
    assert storm_key(failed_job(3, HUB, "eu-west-1"), TEST_CHANNEL).pk != key.pk
    assert storm_key(failed_job(4, MEMBER, HOME), TEST_CHANNEL).pk != key.pk


part = st.text(st.characters(codec="utf-8"), max_size=12)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.tuples(part, part, part, st.none() | part, st.none() | part),
       st.tuples(part, part, part, st.none() | part, st.none() | part))
def test_two_storms_share_a_key_only_when_every_part_is_the_same(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    from chalicelib.deciding.storms import StormKey

    assert (StormKey(*a).pk == StormKey(*b).pk) == (a == b)


def test_a_group_item_from_before_groups_had_an_account_still_reads_and_is_never_joined_again() -> None:
    import hashlib

    from chalicelib.deciding.storms import StormKey

    # The key such an item had: the channel, queue and cause joined by NULs.
    old_pk = "group#" + hashlib.sha256("\0".join((TEST_CHANNEL, "q", "image_pull")).encode()).hexdigest()
    assert old_pk not in {StormKey(TEST_CHANNEL, "q", "image_pull", account, region).pk
                          for account in (None, "", HUB) for region in (None, "", HOME)}
    old = Group.from_item({"pk": old_pk, "generation": "g1", "channel": TEST_CHANNEL, "queue": "q",
                           "cause": "image_pull", "after": 3, "count": 5, "first_at": 1.0, "last_at": 2.0})
    assert (old.account, old.region) == (None, None)
    assert "Account:" not in json.dumps(group_message(old).to_dict())


# -- through Slack -------------------------------------------------------------------------------------

def test_same_queue_and_cause_in_two_accounts_give_two_groups_and_the_members_names_its_account(
        bot: SlackStandIn, slack_client: Slack, table: StateTable) -> None:
    ours, theirs = failed_job(1, HUB), failed_job(2, MEMBER)
    first = [join(ours, slack_client, table), join(theirs, slack_client, table)]
    assert [r.grouped for r in first] == [False, False]  # each the first of its own storm
    assert first[0].pk != first[1].pk

    assert join(failed_job(3, MEMBER), slack_client, table).grouped  # the member's storm: its group message
    assert join(failed_job(4, HUB), slack_client, table).grouped  # ours: a second group message
    member_group, own_group = group_texts(bot)
    assert f"Account: {MEMBER} · {HOME}" in member_group
    assert "Account:" not in own_group  # the app's own account and region, no hub: as before
    for pk, account in ((first[0].pk, HUB), (first[1].pk, MEMBER)):
        group = read_group(table, pk)
        assert group is not None and (group.count, group.account, group.region) == (2, account, HOME)


def test_on_a_hub_every_group_says_its_account_by_name_and_another_region_is_said_too(
        bot: SlackStandIn, monkeypatch: pytest.MonkeyPatch, table: StateTable) -> None:
    monkeypatch.setenv(ACCOUNT_NAMES, f"{HUB}=hub,{MEMBER}=staging")
    config.reset()
    member_roles.note_context(Context())
    slack = Slack(config.slack_settings())
    for number, account, region in ((1, MEMBER, "eu-west-1"), (2, MEMBER, "eu-west-1"), (3, HUB, HOME),
                                    (4, HUB, HOME)):
        join(failed_job(number, account, region), slack, table)
    member_group, own_group = group_texts(bot)
    assert f"Account: staging ({MEMBER}) · eu-west-1" in member_group
    assert f"Account: hub ({HUB}) · {HOME}" in own_group  # a hub's every message says it


def test_without_the_hub_a_job_of_another_region_of_our_account_says_its_region(
        bot: SlackStandIn, slack_client: Slack, table: StateTable) -> None:
    for number in (1, 2):
        join(failed_job(number, HUB, "eu-west-1"), slack_client, table)
    [shown] = group_texts(bot)
    assert f"Account: {HUB} · eu-west-1" in shown


def test_the_account_line_stays_when_the_group_message_is_updated(
        bot: SlackStandIn, slack_client: Slack, table: StateTable) -> None:
    for number in (1, 2, 3):
        join(failed_job(number, MEMBER), slack_client, table)
    assert bot.updates, "the third job should have updated the group message"
    for update in bot.updates:
        assert f"Account: {MEMBER} · {HOME}" in " ".join(mrkdwn_texts(update))
