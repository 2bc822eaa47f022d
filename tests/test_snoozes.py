"""Snoozes, acknowledgements and action claims in the state table (moto's DynamoDB), and the job
ARN check of the click handlers, over hostile inputs."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.core import clients, config
from chalicelib.core.state_table import StateTable, state_table
from chalicelib.deciding.acks import Acks, acknowledged
from chalicelib.deciding.snoozes import (
    INDEX_KEY,
    KEPT_AFTER_SECONDS,
    MAX_SNOOZES,
    Scope,
    Snooze,
    Snoozes,
    TooManySnoozes,
    count_skip,
    describe_snooze,
    legacy_snooze_key,
    snooze_key,
    snoozed,
    snoozed_counts,
)
from chalicelib.interactions.retry import Refused, job_arn_of
from tests.state_fixtures import STATE_TABLE, Serialized, create_state_table

ARN = "arn:aws:batch:us-east-1:123456789012:job/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
QUEUE_ARN = "arn:aws:batch:us-east-1:123456789012:job-queue/etl-queue"
SCOPE = Scope("123456789012", "us-east-1")  # ARN's


def counts() -> list[tuple[str, str, int]]:
    return [(s.queue, s.job_name, n) for s, n in snoozed_counts()]


class Clock:
    def __init__(self, at: float = 1_700_000_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[StateTable]:
    monkeypatch.setenv("NOTIFY_STATE_TABLE", STATE_TABLE)
    config.reset()
    with mock_aws():
        create_state_table(boto3.client("dynamodb", region_name="us-east-1"))
        clients.use_client("dynamodb", Serialized(boto3.client("dynamodb", region_name="us-east-1")))
        found = state_table()
        assert found is not None
        yield found


def test_a_snooze_holds_until_its_time_for_that_name_in_that_queue_only(table: StateTable) -> None:
    clock = Clock()
    snoozes = Snoozes(table, clock=clock)
    snoozes.set("etl-queue", "nightly-etl", 3600, "U0ALICE", ARN)

    assert snoozes.find("etl-queue", "nightly-etl", SCOPE) is not None
    assert snoozes.find("etl-queue", "nightly-etl-2", SCOPE) is None
    assert snoozes.find("other-queue", "nightly-etl", SCOPE) is None
    clock.at += 3600
    assert snoozes.find("etl-queue", "nightly-etl", SCOPE) is None  # ended: events post again


def test_the_module_functions_read_the_configured_table_and_count_skips(table: StateTable) -> None:
    Snoozes(table).set("etl-queue", "nightly-etl", 4 * 3600, "U0ALICE", ARN)

    found = snoozed(QUEUE_ARN, "nightly-etl", SCOPE)  # events carry the queue's ARN
    assert found is not None and found.by == "U0ALICE"
    assert "snoozed by U0ALICE until " in describe_snooze(found)["reason"]
    assert count_skip(found) == 1
    assert count_skip(found) == 2
    assert counts() == [("etl-queue", "nightly-etl", 2)]
    assert [(s.queue, n) for s, n in snoozed_counts([QUEUE_ARN])] == [("etl-queue", 2)]
    assert snoozed_counts(["other-queue"]) == []


def test_unsnooze_ends_it_and_leaves_the_index(table: StateTable) -> None:
    snoozes = Snoozes(table)
    snoozes.set("etl-queue", "nightly-etl", 3600, "U0ALICE", ARN)

    ended = snoozes.clear_for_job(ARN)
    assert ended is not None and ended.job_name == "nightly-etl"
    assert snoozed("etl-queue", "nightly-etl", SCOPE) is None
    assert snoozes.clear_for_job(ARN) is None  # twice: nothing left, no error
    assert not (table.get(INDEX_KEY) or {}).get("keys")


def test_a_snooze_is_kept_after_it_ends_for_the_digest(table: StateTable) -> None:
    clock = Clock()
    snooze = Snoozes(table, clock=clock).set("etl-queue", "nightly-etl", 3600, "U0ALICE", ARN)

    item = table.get(snooze.key)
    assert item is not None and item["expires_at"] == int(snooze.until) + KEPT_AFTER_SECONDS


def test_the_index_is_bounded_but_a_snooze_set_again_fits(table: StateTable) -> None:
    keys = {snooze_key("q", f"job-{n}", SCOPE) for n in range(MAX_SNOOZES)}
    table.put({"pk": INDEX_KEY, "keys": keys})
    snoozes = Snoozes(table)

    with pytest.raises(TooManySnoozes):
        snoozes.set("q", "one-too-many", 3600, "U0ALICE", ARN)
    snoozes.set("q", "job-7", 3600, "U0ALICE", ARN)  # already indexed
    assert snoozes.find("q", "job-7", SCOPE) is not None


def test_the_digest_listing_drops_keys_whose_item_is_gone(table: StateTable) -> None:
    table.put({"pk": INDEX_KEY, "keys": {snooze_key("q", "gone", SCOPE)}})
    Snoozes(table).set("q", "here", 3600, "U0ALICE", ARN)

    assert counts() == [("q", "here", 0)]
    assert (table.get(INDEX_KEY) or {})["keys"] == {snooze_key("q", "here", SCOPE)}


def test_an_ack_is_recorded_and_read(table: StateTable) -> None:
    assert not acknowledged(ARN)
    ack = Acks(table, clock=Clock(5.0)).record(ARN, "U0BOB")

    assert (ack.by, ack.at) == ("U0BOB", 5.0)
    assert acknowledged(ARN)
    assert not acknowledged(ARN.replace("0d1e", "ffff"))
    assert not acknowledged(None)


def test_without_a_state_table_nothing_is_snoozed_or_acknowledged() -> None:
    assert snoozed("etl-queue", "nightly-etl", SCOPE) is None
    assert not acknowledged(ARN)
    assert snoozed_counts() == []


NAMES = st.text(alphabet=st.sampled_from("ab\0\"\\[],-/"), max_size=6) | st.text(max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.tuples(NAMES, NAMES, NAMES, NAMES), st.tuples(NAMES, NAMES, NAMES, NAMES))
def test_distinct_scopes_queues_and_job_names_never_share_a_snooze(a: tuple[str, str, str, str],
                                                                   b: tuple[str, str, str, str]) -> None:
    def key(parts: tuple[str, str, str, str]) -> str:
        return snooze_key(parts[2], parts[3], Scope(parts[0], parts[1]))

    assert (key(a) == key(b)) == (a == b)
    assert key(a) != legacy_snooze_key(b[2], b[3])  # nor a key of before snoozes had a scope


def test_a_snooze_holds_in_its_jobs_account_and_region_only(table: StateTable) -> None:
    snoozes = Snoozes(table)
    snoozes.set("etl-queue", "nightly-etl", 3600, "U0ALICE", ARN)  # account 123456789012, us-east-1

    assert snoozes.find("etl-queue", "nightly-etl", Scope("123456789012", "us-east-1")) is not None
    # A hub's other account, and the same account's other region, with a queue and job of the same names.
    assert snoozes.find("etl-queue", "nightly-etl", Scope("210987654321", "us-east-1")) is None
    assert snoozes.find("etl-queue", "nightly-etl", Scope("123456789012", "eu-west-1")) is None
    assert snoozed(QUEUE_ARN, "nightly-etl", Scope.of(ARN.replace("123456789012", "210987654321"))) is None


def test_the_scope_is_the_job_arns_else_the_events() -> None:
    assert Scope.of(ARN, "999999999999", "eu-west-1") == SCOPE
    assert Scope.of("not-an-arn", "210987654321", "eu-west-1") == Scope("210987654321", "eu-west-1")
    assert Scope.of(None) == Scope("", "")


def test_a_snooze_from_before_scopes_still_holds_everywhere_until_it_ends(table: StateTable) -> None:
    clock = Clock()
    table.put({"pk": legacy_snooze_key("etl-queue", "nightly-etl"), "queue": "etl-queue", "job_name": "nightly-etl",
               "until": clock.at + 600, "by": "U0ALICE", "set_at": clock.at, "skipped": 0})
    snoozes = Snoozes(table, clock=clock)

    found = snoozes.find("etl-queue", "nightly-etl", Scope("210987654321", "eu-west-1"))
    assert isinstance(found, Snooze) and found.account is None
    clock.at += 600
    assert snoozes.find("etl-queue", "nightly-etl", SCOPE) is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=300),
                 st.builds(lambda tail: ARN.rsplit("/", 1)[0] + "/" + tail, st.text(max_size=200))))
def test_only_a_job_arn_passes_the_check(value: str | None) -> None:
    try:
        arn = job_arn_of(value)
    except Refused as refused:
        assert refused.outcome == "not a job ARN"
        return
    assert arn.arn == value
    assert arn.job_id and all(c.isalnum() or c in ":#_-" for c in arn.job_id)
    assert not any(c in (value or "") for c in "<>&| \n")
