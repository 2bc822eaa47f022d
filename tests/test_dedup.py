"""Idempotency with the state table (moto): one post per event id, however often it arrives.

Time is a fake clock passed to claim() and mark_posted() (claims hold epoch seconds, and
claim()'s wait sleeps on it), so lease and TTL expiry are tested without waiting. "Another
invocation" is a second claim() call: the table, not the process, decides who owns an event,
and each invocation keeps its own Claim value. A claim is the state table's item
``event#<event id>`` (chalicelib/core/state_table.py; the table itself: tests/test_state_table.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.core import clients, config, state_table
from chalicelib.core.config import ConfigError
from chalicelib.core.state_table import StateError, StateSettings
from chalicelib.deciding import dedup
from chalicelib.deciding.dedup import Claim, ClaimHeld, DedupError, release
from tests.state_fixtures import Serialized, create_state_table

ROOT = Path(__file__).resolve().parent.parent
TABLE = "batch-notify-test-state"
EVENT = "c6f2a3a8-0b4e-4f0e-9a57-2d4c1a0e5b11"
START = 1_760_000_000.0
DAY = 86400


class FakeClock:
    """A dedup.Clock: sleeping advances the clock and runs what the test scheduled."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.now = START
        self.sleeps = 0
        self.during_sleep: Callable[[], None] | None = None

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        if self.during_sleep is not None:
            self.during_sleep()


CLOCK = FakeClock()  # the clock the helpers below pass to dedup; the clock fixture resets it


@pytest.fixture
def clock() -> FakeClock:
    CLOCK.reset()
    return CLOCK


def claim(event_id: str, wait_seconds: float = dedup.DEFAULT_WAIT_SECONDS) -> Claim:
    return dedup.claim(event_id, wait_seconds=wait_seconds, clock=CLOCK)


def posts(event_id: str) -> bool:
    """claim() as an invocation that only wants to know whether to post."""
    return claim(event_id).should_post


def mark_posted(held: Claim) -> None:
    dedup.mark_posted(held, clock=CLOCK)


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> Iterator[Any]:
    """The state table as the README creates it, with NOTIFY_STATE_TABLE naming it."""
    with mock_aws():
        client = boto3.client("dynamodb")
        create_state_table(client, TABLE)
        monkeypatch.setenv("NOTIFY_STATE_TABLE", TABLE)
        config.reset()
        yield client


def item(client: Any, event_id: str = EVENT) -> dict[str, Any]:
    """The event's item, read with the raw client (not the code under test), without its pk."""
    raw = client.get_item(TableName=TABLE, Key={"pk": {"S": f"event#{event_id}"}},
                          ConsistentRead=True).get("Item", {})
    return {k: (int(v["N"]) if "N" in v else v["S"]) for k, v in raw.items() if k != "pk"}


def another_invocation() -> bool:
    """claim() as a second, concurrent invocation would call it: no patience. Whether it posts."""
    return claim(EVENT, wait_seconds=0).should_post


def test_first_claim_wins_and_holds_a_lease(table, clock):
    held = claim(EVENT)
    assert (held.should_post, held.event_id) == (True, EVENT)
    stored = item(table)
    assert (stored["state"], stored["owner"]) == ("claimed", held.owner)
    assert stored["claimed_until"] == START + dedup.DEFAULT_LEASE_SECONDS
    assert stored["expires_at"] == START + 7 * DAY  # abandoned claims are cleaned up by the TTL too
    with pytest.raises(ClaimHeld, match=f"{EVENT} is being posted by another invocation"):
        another_invocation()
    assert item(table)["owner"] == held.owner  # the loser changed nothing


def test_a_second_delivery_of_a_posted_event_is_skipped(table, clock):
    mark_posted(claim(EVENT))
    assert item(table) == {"state": "posted", "posted_at": START, "expires_at": START + 7 * DAY}
    assert table.scan(TableName=TABLE)["Items"][0]["pk"] == {"S": f"event#{EVENT}"}
    assert claim(EVENT) == Claim(EVENT, owner=None, should_post=False)  # holds nothing: nothing to release
    assert another_invocation() is False
    assert clock.sleeps == 0  # a posted event is decided at once


def test_a_concurrent_duplicate_waits_for_the_holder_and_is_skipped_when_it_posts(table, clock):
    held = claim(EVENT)
    clock.during_sleep = lambda: mark_posted(held)  # the holder finishes while the duplicate waits
    assert posts(EVENT) is False
    assert clock.sleeps == 1


def test_a_concurrent_duplicate_takes_over_when_the_holder_releases(table, clock):
    held = claim(EVENT)
    clock.during_sleep = lambda: release(held)  # the holder's post failed
    second = claim(EVENT)
    assert second.should_post and second.owner != held.owner
    assert item(table)["state"] == "claimed"


def test_a_claim_held_past_the_wait_raises_so_lambda_retries_later(table, clock):
    assert posts(EVENT)
    with pytest.raises(ClaimHeld, match=f"DynamoDB table '{TABLE}'"):
        claim(EVENT, wait_seconds=3)
    # Tried again every 0.5 s for the 3 s it was given, then gave up.
    assert (clock.sleeps, clock.now - START) == (6, 3)


def test_a_released_claim_can_be_claimed_again(table, clock):
    release(claim(EVENT))
    assert item(table) == {}
    assert another_invocation() is True


def test_an_expired_lease_can_be_claimed_and_the_late_holder_cannot_release_it(table, clock):
    first = claim(EVENT)
    clock.now += dedup.DEFAULT_LEASE_SECONDS - 1
    with pytest.raises(ClaimHeld):
        another_invocation()  # still the first invocation's
    clock.now += 2
    second = claim(EVENT, wait_seconds=0)  # the first one died between claim and post
    assert second.should_post and second.owner != first.owner
    assert item(table)["owner"] == second.owner
    assert item(table)["claimed_until"] == clock.now + dedup.DEFAULT_LEASE_SECONDS
    # The first invocation wakes up late and its post fails: releasing must not free the
    # second invocation's claim.
    release(first)
    assert item(table)["owner"] == second.owner


def test_a_posted_event_is_not_claimable_after_any_lease_only_after_its_ttl(table, clock):
    mark_posted(claim(EVENT))
    clock.now += 6 * DAY
    assert another_invocation() is False
    # DynamoDB's TTL deletes lazily (up to days late): an expired item counts as gone.
    clock.now += DAY + 1
    assert another_invocation() is True


def test_release_without_a_claim_and_events_are_independent(table, clock):
    release(Claim(EVENT))  # nothing held: nothing to do
    assert posts(EVENT)
    mark_posted(claim("another-event"))
    assert posts("another-event") is False
    with pytest.raises(ClaimHeld):
        another_invocation()


def test_an_event_without_an_id_is_posted_without_a_claim(table, clock):
    held = claim("")
    assert held == Claim("") and claim("").should_post  # nothing to key on: post rather than fail
    mark_posted(held)
    release(held)
    assert table.scan(TableName=TABLE)["Items"] == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event_id=st.text(min_size=1, max_size=200))
def test_any_event_id_is_claimed_posted_and_then_skipped_under_its_own_key(table, clock, event_id):
    held = claim(event_id)
    assert held.should_post and held.held
    mark_posted(held)
    assert claim(event_id, wait_seconds=0) == Claim(event_id, should_post=False)
    assert item(table, event_id)["state"] == "posted"
    # Cleaned up by hand, so an id hypothesis tries again starts from an empty table.
    table.delete_item(TableName=TABLE, Key={"pk": {"S": f"event#{event_id}"}})


def test_other_kinds_of_state_with_the_same_id_do_not_collide(table, clock):
    # The same string under another kind's prefix (a job, a group) is another item.
    for other in (f"job#{EVENT}", EVENT, f"group#{EVENT}"):
        table.put_item(TableName=TABLE, Item={"pk": {"S": other}, "state": {"S": "posted"}})
    assert posts(EVENT)


def test_an_event_item_in_an_unknown_state_is_an_error_not_a_guess(table, clock):
    table.put_item(TableName=TABLE, Item={"pk": {"S": f"event#{EVENT}"}, "state": {"S": "snoozed"},
                                          "expires_at": {"N": str(int(START) + DAY)}})
    with pytest.raises(DedupError, match=rf"'{TABLE}' \(NOTIFY_STATE_TABLE\) holds an item event#{EVENT} "
                                         r"with state 'snoozed': is the table used by something else"):
        claim(EVENT)


def test_concurrent_invocations_post_an_event_once(table):
    # Eight containers receive the same event at once (real threads, the real clock, no patience).
    outcomes: list[str] = []

    def invocation() -> None:
        try:
            held = dedup.claim(EVENT, wait_seconds=0)
        except ClaimHeld:
            outcomes.append("retried later")
            return
        if held.should_post:
            outcomes.append("posted")
            dedup.mark_posted(held)
        else:
            outcomes.append("skipped")

    with clients.use_client("dynamodb", Serialized(boto3.client("dynamodb"))):
        threads = [threading.Thread(target=invocation) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert dedup.claim(EVENT, wait_seconds=0).should_post is False  # and once posted, never again
    assert len(outcomes) == 8 and outcomes.count("posted") == 1


def test_callers_catch_one_class_for_every_state_table_error():
    assert DedupError is StateError
    assert issubclass(ClaimHeld, StateError)


def test_ttl_and_lease_come_from_the_environment(table, clock, monkeypatch):
    monkeypatch.setenv("NOTIFY_STATE_TTL_DAYS", "1.5")
    monkeypatch.setenv("NOTIFY_DEDUP_LEASE_SECONDS", "90")
    config.reset()
    held = claim(EVENT)
    assert item(table)["claimed_until"] == START + 90
    mark_posted(held)
    assert item(table)["expires_at"] == START + 1.5 * DAY


def test_the_code_calls_only_the_actions_the_policy_grants(table, clock):
    calls: list[str] = []
    state_table.dynamodb_client().meta.events.register("before-call.dynamodb",
                                                       lambda model, **_: calls.append(model.name))
    release(claim(EVENT))
    mark_posted(claim(EVENT))
    assert posts(EVENT) is False
    # Claims need no read: two of the state table's actions, all within what the policies grant.
    assert {f"dynamodb:{name}" for name in calls} == {"dynamodb:PutItem", "dynamodb:DeleteItem"}
    assert set(state_table.IAM_ACTIONS) >= {f"dynamodb:{name}" for name in calls}


def test_the_system_clock_is_the_default():
    assert abs(dedup.SYSTEM_CLOCK.time() - time.time()) < 5
    dedup.SYSTEM_CLOCK.sleep(0)


# -- errors ---------------------------------------------------------------------------------

def test_a_missing_table_is_an_error_naming_it(clock, monkeypatch):
    with mock_aws():
        monkeypatch.setenv("NOTIFY_STATE_TABLE", "no-such-table")
        config.reset()
        missing = r"'no-such-table' \(NOTIFY_STATE_TABLE\): ResourceNotFoundException: it does not exist in us-east-1"
        with pytest.raises(DedupError, match=missing):
            claim(EVENT)


def test_a_table_with_another_key_is_an_error_saying_what_key(clock, monkeypatch):
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="wrong-key", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        monkeypatch.setenv("NOTIFY_STATE_TABLE", "wrong-key")
        config.reset()
        with pytest.raises(DedupError, match=r"'wrong-key'.*partition key must be pk"):
            claim(EVENT)


def _answer(code: str, operation: str = "PutItem") -> Callable[..., None]:
    from botocore.exceptions import ClientError

    def raise_error(**_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": code}}, operation)
    return raise_error


@pytest.mark.parametrize("code, expected", [
    ("AccessDeniedException", "in DynamoDB table 'batch-notify-test-state' .*: access denied: not allowed to call "
                              "dynamodb:PutItem"),
    ("ProvisionedThroughputExceededException", "throttled by DynamoDB; raising so Lambda retries"),
    ("InternalServerError", "DynamoDB answered InternalServerError; raising so Lambda retries"),
])
def test_dynamodb_errors_on_claim_raise_naming_the_table(table, clock, code, expected):
    state_table.dynamodb_client().meta.events.register("before-call.dynamodb.PutItem", _answer(code))
    with pytest.raises(DedupError, match=expected) as error:
        claim(EVENT)
    assert not isinstance(error.value, ClaimHeld)


def test_mark_posted_and_release_errors_raise_dedup_errors(table, clock):
    held, other = claim(EVENT), claim("other")
    client = state_table.dynamodb_client()
    client.meta.events.register("before-call.dynamodb.PutItem", _answer("InternalServerError"))
    client.meta.events.register("before-call.dynamodb.DeleteItem", _answer("InternalServerError", "DeleteItem"))
    with pytest.raises(DedupError, match=f"could not write event#{EVENT} in DynamoDB table '{TABLE}'"):
        mark_posted(held)
    with pytest.raises(DedupError, match="could not delete event#other in DynamoDB table"):
        release(other)


def test_an_unreachable_dynamodb_fails_fast_naming_the_table(clock, monkeypatch):
    # Nothing listens on port 9: connection refused at once, then botocore's short retries.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("NOTIFY_STATE_TABLE", TABLE)
    config.reset()
    started = time.monotonic()
    expected = f"could not reach DynamoDB to write event#{EVENT} in DynamoDB table '{TABLE}'"
    with pytest.raises(DedupError, match=expected):
        claim(EVENT)
    assert time.monotonic() - started < 15


def test_without_a_table_nothing_reaches_aws(clock, monkeypatch):
    # Any DynamoDB call would go to a closed port and raise DedupError (the test above).
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    config.reset()
    assert not dedup.enabled()
    held = claim(EVENT)
    assert held == Claim(EVENT) and not held.held and posts(EVENT)
    mark_posted(held)
    release(held)
    release(Claim(EVENT, owner="a token from elsewhere"))  # dedup off: not even a stray owner is looked up
    assert clients.made() == ()  # not even a client was made


@pytest.mark.parametrize("env, variable", [
    ({"NOTIFY_STATE_TABLE": "arn:aws:dynamodb:us-east-1:123456789012:table/t"}, "NOTIFY_STATE_TABLE"),
    ({"NOTIFY_STATE_TABLE": "ab"}, "NOTIFY_STATE_TABLE"),
    ({"NOTIFY_STATE_TABLE": "t1t", "NOTIFY_STATE_TTL_DAYS": "a week"}, "NOTIFY_STATE_TTL_DAYS"),
    ({"NOTIFY_STATE_TABLE": "t1t", "NOTIFY_STATE_TTL_DAYS": "0"}, "NOTIFY_STATE_TTL_DAYS"),
    ({"NOTIFY_STATE_TABLE": "t1t", "NOTIFY_STATE_TTL_DAYS": "nan"}, "NOTIFY_STATE_TTL_DAYS"),
    ({"NOTIFY_STATE_TABLE": "t1t", "NOTIFY_DEDUP_LEASE_SECONDS": "1000"}, "NOTIFY_DEDUP_LEASE_SECONDS"),
    ({"NOTIFY_STATE_TABLE": "t1t", "NOTIFY_DEDUP_LEASE_SECONDS": "0"}, "NOTIFY_DEDUP_LEASE_SECONDS"),
    ({"NOTIFY_DEDUP_TABLE": "batch-notify-prod-dedup"}, "NOTIFY_DEDUP_TABLE was replaced by NOTIFY_STATE_TABLE"),
])
def test_bad_settings_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        dedup.load_dedup_settings(env)


@pytest.mark.parametrize("env", [{"NOTIFY_DEDUP_TTL_DAYS": "7"},
                                 {"NOTIFY_STATE_TABLE": "batch-notify-state", "NOTIFY_DEDUP_TTL_DAYS": "1.5"}])
def test_the_replaced_ttl_setting_is_refused_naming_its_replacement(env):
    # Even with no table: whoever set it expects a TTL the app no longer reads.
    with pytest.raises(ConfigError, match="NOTIFY_DEDUP_TTL_DAYS was replaced by NOTIFY_STATE_TTL_DAYS"):
        dedup.load_dedup_settings(env)


def test_the_replaced_ttl_setting_fails_the_invocation_before_any_aws_call(clock, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("NOTIFY_DEDUP_TTL_DAYS", "7")
    config.reset()
    with pytest.raises(ConfigError, match="NOTIFY_DEDUP_TTL_DAYS"):
        claim(EVENT)
    assert clients.made() == ()


def test_settings_defaults_and_off():
    assert dedup.load_dedup_settings({}) is None
    assert dedup.load_dedup_settings({"NOTIFY_STATE_TABLE": "  "}) is None
    assert dedup.load_dedup_settings({"NOTIFY_DEDUP_TABLE": "  "}) is None  # empty: as good as unset
    found = dedup.load_dedup_settings({"NOTIFY_STATE_TABLE": "batch-notify-state"})
    assert found == dedup.DedupSettings(StateSettings(table="batch-notify-state", ttl_seconds=7 * DAY),
                                        lease_seconds=120)
    assert found.table == "batch-notify-state"


def test_settings_are_read_once_until_reset(monkeypatch):
    monkeypatch.setenv("NOTIFY_STATE_TABLE", "first-table")
    config.reset()
    assert dedup.dedup_settings().table == "first-table"
    monkeypatch.setenv("NOTIFY_STATE_TABLE", "second-table")
    assert dedup.dedup_settings().table == "first-table"
    config.reset()
    assert dedup.dedup_settings().table == "second-table"


def _stage_timeouts() -> dict[str, int]:
    cfg = json.loads((ROOT / ".chalice" / "config.json").read_text())
    found = {"(top level)": cfg.get("lambda_timeout", 60)}
    for name, function in cfg.get("lambda_functions", {}).items():
        if "lambda_timeout" in function:
            found[name] = function["lambda_timeout"]
    for stage_name, stage in cfg["stages"].items():
        if "lambda_timeout" in stage:
            found[stage_name] = stage["lambda_timeout"]
        for name, function in stage.get("lambda_functions", {}).items():
            if "lambda_timeout" in function:
                found[f"{stage_name}/{name}"] = function["lambda_timeout"]
    return found


def test_the_default_lease_outlasts_every_lambda_timeout():
    # A live invocation must never lose its claim to another: raise NOTIFY_DEDUP_LEASE_SECONDS
    # (and the README's advice) along with lambda_timeout.
    for where, timeout in _stage_timeouts().items():
        assert timeout + 30 <= dedup.DEFAULT_LEASE_SECONDS, (
            f".chalice/config.json {where}: lambda_timeout {timeout} s leaves the dedup lease "
            f"({dedup.DEFAULT_LEASE_SECONDS} s) too short: set NOTIFY_DEDUP_LEASE_SECONDS above it")


# -- through the handler: EventBridge's second delivery and Lambda's retry --------------------

def _invoke(event: dict[str, Any]) -> None:
    from chalice.test import Client

    from app import app
    with Client(app, stage_name="local") as client:
        client.lambda_.invoke("on_job_failed", event)


def test_a_redelivered_event_is_posted_once_and_logged_as_a_duplicate(table, clock, webhook, caplog):
    from tests.conftest import load_event
    event = load_event("ec2_failed")
    _invoke(event)
    _invoke(event)  # EventBridge delivers at least once: the same id again
    assert len(webhook.messages) == 1
    assert item(table, event["id"])["state"] == "posted"
    skipped = [json.loads(r.getMessage()) for r in caplog.records if '"skipped"' in r.getMessage()]
    assert skipped[-1]["reason"] == "already posted (a duplicate delivery of this event id)"


@pytest.mark.parametrize("variable", ["NOTIFY_DEDUP_TTL_DAYS", "NOTIFY_DEDUP_TABLE"])
def test_a_replaced_setting_fails_a_webhook_stage_event_with_no_table_and_posts_nothing(variable, webhook, monkeypatch):
    # Without a table the handler looks up no claim or snooze, but still refuses what was replaced.
    from tests.conftest import load_event
    monkeypatch.delenv("NOTIFY_STATE_TABLE", raising=False)
    monkeypatch.setenv(variable, "7")
    config.reset()
    posted = len(webhook.messages)
    with pytest.raises(ConfigError, match=f"{variable} was replaced"):
        _invoke(load_event("ec2_failed"))
    assert len(webhook.messages) == posted


def test_a_failed_post_releases_the_claim_so_lambdas_retry_posts(table, clock, webhook):
    from chalicelib.delivering.slack import DeliveryError
    from tests.conftest import load_event
    from tools.slack_standin import Reply
    event = load_event("ec2_failed")
    webhook.script(*[Reply(status=503, body="unavailable")] * 3)
    with pytest.raises(DeliveryError):
        _invoke(event)
    assert item(table, event["id"]) == {}  # released
    _invoke(event)  # Lambda's asynchronous retry
    assert len(webhook.messages) == 1 and item(table, event["id"])["state"] == "posted"
