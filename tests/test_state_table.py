"""The state table (chalicelib/core/state_table.py) against moto's DynamoDB.

Plain Python values go in and come out as they went in; a lost condition raises
ConditionFailed with the item that won (as DynamoDB returns it, in the same call); every
other AWS error is a StateError naming the table, the variable and the fix, never botocore's
ClientError. AWS answers moto cannot give (access denied, throttling, an unreachable
endpoint) come from a botocore Stubber or a fake client handed in with clients.use_client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from botocore.stub import Stubber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.core import clients, config, state_table
from chalicelib.core.config import ConfigError
from chalicelib.core.errors import BatchNotifyError
from chalicelib.core.state_table import (
    IAM_ACTIONS,
    ConditionFailed,
    StateError,
    StateSettings,
    StateTable,
    load_state_settings,
)

TABLE = "batch-notify-test-state"
DAY = 86400
PK = "job#arn:aws:batch:us-east-1:123456789012:job/4f6a2b8c"


def create_table(name: str = TABLE, key: str = "pk") -> Any:
    client = boto3.client("dynamodb")
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])
    return client


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[StateTable]:
    """The state table in moto, named by NOTIFY_STATE_TABLE, as the app finds it."""
    with mock_aws():
        create_table()
        monkeypatch.setenv("NOTIFY_STATE_TABLE", TABLE)
        config.reset()
        found = state_table.state_table()
        assert found is not None
        yield found


def raw_item(pk: str) -> dict[str, Any]:
    """The item as DynamoDB holds it, read with a client of the test's own."""
    return boto3.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": pk}}).get("Item", {})


# -- values ---------------------------------------------------------------------------------------

EVERY_KIND = {
    "pk": PK,
    "count": 3,
    "big": 12345678901234567890,
    "negative": -7,
    "ratio": 0.25,
    "at": 1760000000.5,
    "channel": "C0TESTCHAN",
    "empty": "",
    "unicode": "étape ✅ 𝄞",
    "shared": True,
    "mentioned": False,
    "lines": ["a", 2, 0.5, False, ["nested", {"deep": 1.5}]],
    "no_lines": [],
    "ref": {"channel": "C1", "ts": "1760000000.000100", "order": 305, "extra": {"list": [1, 2.5]}},
    "no_ref": {},
    "members": {"job-1", "job-2"},
    "ordinals": {1, 2, 3},
    "times": {0.5, 1.25},
}


def test_every_value_kind_round_trips(table):
    table.put(EVERY_KIND)
    got = table.get(PK)
    assert got == EVERY_KIND
    # == cannot tell True from 1 or 3 from 3.0: the kinds themselves come back too.
    assert type(got["count"]) is int and type(got["big"]) is int and type(got["ratio"]) is float
    assert got["shared"] is True and got["mentioned"] is False
    assert type(got["members"]) is set and type(got["ordinals"]) is set
    assert type(got["lines"][3]) is bool and type(got["ref"]["extra"]["list"][1]) is float


def test_values_are_stored_as_dynamodbs_own_types(table):
    # What another reader of the table (the aws CLI, the console) sees.
    table.put(EVERY_KIND)
    stored = raw_item(PK)
    assert stored["pk"] == {"S": PK}
    assert stored["count"] == {"N": "3"} and stored["ratio"] == {"N": "0.25"}
    assert stored["shared"] == {"BOOL": True}
    assert set(stored["members"]["SS"]) == {"job-1", "job-2"}
    assert set(stored["times"]["NS"]) == {"0.5", "1.25"}
    assert stored["ref"]["M"]["ts"] == {"S": "1760000000.000100"}
    assert stored["lines"]["L"][4]["L"][1]["M"]["deep"] == {"N": "1.5"}


def test_a_whole_float_comes_back_as_an_int_that_equals_it(table):
    table.put({"pk": PK, "at": 1760000000.0})
    got = table.get(PK)["at"]
    assert got == 1760000000 and type(got) is int


# Numbers DynamoDB holds exactly: 38 significant digits, magnitudes 1e-130 to 1e125; a float's
# repr has at most 17 digits. Floats within 2**53, as times and durations are: a whole float
# beyond it comes back as the int its repr spells, which may differ from the float's exact value.
# Sets are never empty (DynamoDB refuses an empty set).
_numbers = st.integers(min_value=-(10**37), max_value=10**37) | st.floats(
    allow_nan=False, allow_infinity=False, min_value=-(2.0**53), max_value=2.0**53).filter(
    lambda x: x == 0 or abs(x) > 1e-120)
_scalars = st.text(max_size=30) | st.booleans() | _numbers
_values = st.recursive(
    _scalars | st.frozensets(st.text(max_size=10), min_size=1, max_size=4).map(set)
    | st.frozensets(st.integers(-1000, 1000), min_size=1, max_size=4).map(set),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=4),
    max_leaves=12)


def _tagged(value: Any) -> Any:
    """``value`` with each leaf's kind beside it, so == tells True from 1 and "1" from 1. Numbers
    are one kind: a whole float comes back as an int equal to it."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, list):
        return ("list", [_tagged(item) for item in value])
    if isinstance(value, dict):
        return ("map", {key: _tagged(item) for key, item in value.items()})
    if isinstance(value, set):
        return ("set", frozenset(_tagged(item) for item in value))
    return (type(value).__name__, value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k != "pk"), _values, max_size=5))
def test_any_plain_values_round_trip(table, values):
    table.put({"pk": PK, **values})
    got = table.get(PK)
    assert got is not None and got.pop("pk") == PK
    assert _tagged(got) == _tagged(values)


def test_a_missing_item_is_none(table):
    assert table.get("job#never-written") is None


# -- conditions -----------------------------------------------------------------------------------

def test_a_lost_put_condition_carries_the_item_that_won(table):
    first = {"pk": PK, "owner": "first", "order": 305, "members": {"a"}}
    table.put(first, condition="attribute_not_exists(pk)")
    with pytest.raises(ConditionFailed) as lost:
        table.put({"pk": PK, "owner": "second"}, condition="attribute_not_exists(pk)")
    assert lost.value.item == first
    assert table.get(PK) == first  # the loser wrote nothing


def test_a_lost_update_condition_carries_the_item_as_it_was(table):
    table.put({"pk": PK, "order": 10000, "status": "FAILED"})
    with pytest.raises(ConditionFailed) as lost:
        table.update(PK, "SET #order = :order, #status = :status", condition="#order < :order",
                     names={"#order": "order", "#status": "status"}, values={":order": 305, ":status": "RUNNING"})
    assert lost.value.item == {"pk": PK, "order": 10000, "status": "FAILED"}


def test_a_lost_condition_on_a_missing_item_carries_an_empty_item(table):
    with pytest.raises(ConditionFailed) as lost:
        table.delete(PK, condition="attribute_exists(pk)")
    assert lost.value.item == {}
    with pytest.raises(ConditionFailed) as lost:
        table.update(PK, "SET n = :one", condition="attribute_exists(pk)", values={":one": 1})
    assert lost.value.item == {}
    assert table.get(PK) is None  # a failed update made nothing


def test_a_conditional_delete_deletes_only_when_it_holds(table):
    table.put({"pk": PK, "owner": "mine"})
    with pytest.raises(ConditionFailed):
        table.delete(PK, condition="#owner = :me", names={"#owner": "owner"}, values={":me": "someone else"})
    assert table.get(PK) is not None
    table.delete(PK, condition="#owner = :me", names={"#owner": "owner"}, values={":me": "mine"})
    assert table.get(PK) is None
    table.delete(PK)  # no condition: deleting nothing is fine


def test_update_makes_a_missing_item_and_returns_all_of_it_after(table):
    counting = {"expression": "ADD #n :one SET #at = :at", "names": {"#n": "n", "#at": "at"}}
    assert table.update(PK, **counting, values={":one": 1, ":at": 0.5}) == {"pk": PK, "n": 1, "at": 0.5}
    table.update(PK, "SET #members = :members", names={"#members": "members"}, values={":members": {"job-1"}})
    # ALL_NEW: every attribute, not only the updated ones.
    assert table.update(PK, **counting, values={":one": 1, ":at": 2.5}) == {
        "pk": PK, "n": 2, "at": 2.5, "members": {"job-1"}}


def test_update_with_a_condition_that_holds(table):
    table.put({"pk": PK, "order": 305})
    after = table.update(PK, "SET #order = :order", condition="#order < :order", names={"#order": "order"},
                         values={":order": 10000})
    assert after == {"pk": PK, "order": 10000}


# -- expiry ---------------------------------------------------------------------------------------

def test_expires_is_the_write_time_plus_the_ttl_or_the_given_seconds(table):
    assert table.settings.ttl_seconds == 7 * DAY
    assert table.expires(1760000000.9) == 1760000000 + 7 * DAY
    assert table.expires(1760000000, seconds=600) == 1760000600
    assert abs(state_table.now() - time.time()) < 5


@pytest.mark.parametrize("raw, seconds", [
    ("", 7 * DAY), ("  ", 7 * DAY), ("1", DAY), ("1.5", 129600), (" 30 ", 30 * DAY), ("365", 365 * DAY),
    ("0.01", 3600),  # at least an hour: a claim or a living message must outlive its invocation
])
def test_ttl_days(raw, seconds):
    found = load_state_settings({"NOTIFY_STATE_TABLE": TABLE, "NOTIFY_STATE_TTL_DAYS": raw})
    assert found == StateSettings(table=TABLE, ttl_seconds=seconds)


@pytest.mark.parametrize("raw", ["0", "-1", "366", "a week", "nan", "inf", "1e3", "7d", "1_0", "7\n"])
def test_bad_ttl_days_name_the_variable_and_the_range(raw):
    with pytest.raises(ConfigError, match=r"NOTIFY_STATE_TTL_DAYS.*at most 365"):
        load_state_settings({"NOTIFY_STATE_TABLE": TABLE, "NOTIFY_STATE_TTL_DAYS": raw})


# -- settings -------------------------------------------------------------------------------------

def test_no_table_no_state_and_no_client(monkeypatch):
    monkeypatch.setenv("NOTIFY_STATE_TABLE", "  ")
    config.reset()
    assert state_table.state_settings() is None and state_table.state_table() is None
    assert load_state_settings({}) is None
    assert clients.made() == ()


@pytest.mark.parametrize("name", ["abc", "batch-notify-prod-state", "a.b_c-D9", " padded-name ", "x" * 255])
def test_good_table_names(name):
    assert load_state_settings({"NOTIFY_STATE_TABLE": name}) == StateSettings(table=name.strip(),
                                                                              ttl_seconds=7 * DAY)


@pytest.mark.parametrize("name", ["ab", "x" * 256, "has space", "table/name", "tablé",
                                  "arn:aws:dynamodb:us-east-1:123456789012:table/batch-notify-state"])
def test_bad_table_names_are_refused_naming_the_variable(name):
    with pytest.raises(ConfigError, match=r"NOTIFY_STATE_TABLE=.* is not a DynamoDB table name"):
        load_state_settings({"NOTIFY_STATE_TABLE": name})


@pytest.mark.parametrize("env", [{"NOTIFY_DEDUP_TABLE": "batch-notify-prod-dedup"},
                                 {"NOTIFY_DEDUP_TABLE": "old", "NOTIFY_STATE_TABLE": "batch-notify-prod-state"}])
def test_the_replaced_dedup_table_is_refused_saying_how_to_move(env):
    with pytest.raises(ConfigError) as refused:
        load_state_settings(env)
    words = str(refused.value)
    assert "NOTIFY_DEDUP_TABLE was replaced by NOTIFY_STATE_TABLE" in words
    assert "partition key pk (S)" in words and "expires_at" in words
    assert "README: Moving from NOTIFY_DEDUP_TABLE" in words


def test_settings_are_read_once_until_reset(monkeypatch):
    monkeypatch.setenv("NOTIFY_STATE_TABLE", "first-table")
    config.reset()
    assert state_table.state_table().name == "first-table"
    monkeypatch.setenv("NOTIFY_STATE_TABLE", "second-table")
    assert state_table.state_table().name == "first-table"
    config.reset()
    assert state_table.state_table().name == "second-table"


# -- what the code calls: exactly the policies' actions -------------------------------------------

def test_the_four_calls_are_exactly_the_iam_actions(table):
    calls: list[str] = []
    state_table.dynamodb_client().meta.events.register("before-call.dynamodb",
                                                       lambda model, **_: calls.append(model.name))
    table.put({"pk": PK})
    table.get(PK)
    table.update(PK, "SET n = :one", values={":one": 1})
    table.delete(PK)
    assert calls == ["PutItem", "GetItem", "UpdateItem", "DeleteItem"]
    assert set(IAM_ACTIONS) == {f"dynamodb:{name}" for name in calls}


# -- errors: the table, the variable and the fix; never a bare ClientError -----------------------

CALLS = {  # StateTable method -> (client operation, IAM action, what the message says it did)
    "get": ("get_item", "GetItem", f"read {PK}"),
    "put": ("put_item", "PutItem", f"write {PK}"),
    "update": ("update_item", "UpdateItem", f"update {PK}"),
    "delete": ("delete_item", "DeleteItem", f"delete {PK}"),
}


def _call(table: StateTable, method: str) -> Any:
    if method == "put":
        return table.put({"pk": PK})
    if method == "update":
        return table.update(PK, "SET n = :one", values={":one": 1})
    return getattr(table, method)(PK)


def _stubbed(method: str, code: str) -> Any:
    """A real DynamoDB client in eu-west-1 whose one call answers ``code`` (a botocore Stubber)."""
    dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
    stubber = Stubber(dynamodb)
    stubber.add_client_error(CALLS[method][0], service_error_code=code, service_message=f"{code} for arn:aws:secret")
    stubber.activate()
    return dynamodb


def _raises_state_error(table: StateTable, method: str) -> StateError:
    with pytest.raises(StateError) as raised:
        _call(table, method)
    error = raised.value
    assert isinstance(error, BatchNotifyError)
    assert not isinstance(error, ClientError | BotoCoreError)
    # Raised "from None": the traceback Lambda logs shows no ClientError (and no AWS message) either.
    assert error.__cause__ is None and error.__suppress_context__
    return error


def _settings_table(monkeypatch: pytest.MonkeyPatch) -> StateTable:
    monkeypatch.setenv("NOTIFY_STATE_TABLE", TABLE)
    config.reset()
    found = state_table.state_table()
    assert found is not None
    return found


@pytest.mark.parametrize("method", sorted(CALLS))
def test_a_missing_table_names_the_table_the_region_and_how_to_create_it(method, monkeypatch):
    with clients.use_client("dynamodb", _stubbed(method, "ResourceNotFoundException")):
        error = _raises_state_error(_settings_table(monkeypatch), method)
    _, _, doing = CALLS[method]
    assert str(error) == (
        f"could not {doing} in DynamoDB table '{TABLE}' (NOTIFY_STATE_TABLE): ResourceNotFoundException: "
        "it does not exist in eu-west-1: create it (partition key pk (S), TTL on expires_at; README: Conversations) "
        "or fix NOTIFY_STATE_TABLE; raising so Lambda retries the event")
    assert "arn:aws:secret" not in str(error)  # AWS's own message is never shown


@pytest.mark.parametrize("method", sorted(CALLS))
def test_access_denied_names_the_action_and_the_policy_to_fix(method, monkeypatch):
    with clients.use_client("dynamodb", _stubbed(method, "AccessDeniedException")):
        error = _raises_state_error(_settings_table(monkeypatch), method)
    _, action, doing = CALLS[method]
    assert str(error) == (
        f"could not {doing} in DynamoDB table '{TABLE}' (NOTIFY_STATE_TABLE): access denied: not allowed to call "
        f"dynamodb:{action}: the stage's IAM policy needs dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem, "
        "dynamodb:DeleteItem on the table; raising so Lambda retries the event")


@pytest.mark.parametrize("code, words", [
    ("ProvisionedThroughputExceededException", "throttled by DynamoDB; raising so Lambda retries the event"),
    ("ThrottlingException", "throttled by DynamoDB; raising so Lambda retries the event"),
    ("InternalServerError", "DynamoDB answered InternalServerError; raising so Lambda retries the event"),
])
def test_other_aws_answers_are_state_errors_naming_the_table(code, words, monkeypatch):
    with clients.use_client("dynamodb", _stubbed("update", code)):
        error = _raises_state_error(_settings_table(monkeypatch), "update")
    assert f"DynamoDB table '{TABLE}' (NOTIFY_STATE_TABLE)" in str(error) and str(error).endswith(words)


class _Unreachable:
    """A DynamoDB client whose every call fails before reaching AWS (a VPC without a route)."""

    class meta:  # botocore's attribute name
        region_name = "us-east-1"

    def __getattr__(self, name: str) -> Any:
        def fail(**_: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")
        return fail


@pytest.mark.parametrize("method", sorted(CALLS))
def test_an_unreachable_dynamodb_is_a_state_error_saying_so(method, monkeypatch):
    with clients.use_client("dynamodb", _Unreachable()):
        error = _raises_state_error(_settings_table(monkeypatch), method)
    _, _, doing = CALLS[method]
    assert str(error) == (f"could not reach DynamoDB to {doing} in DynamoDB table '{TABLE}' (NOTIFY_STATE_TABLE): "
                          "EndpointConnectionError; raising so Lambda retries the event")


def test_a_missing_table_in_moto_too(monkeypatch):
    with mock_aws():
        monkeypatch.setenv("NOTIFY_STATE_TABLE", "no-such-table")
        config.reset()
        with pytest.raises(StateError, match=r"'no-such-table' \(NOTIFY_STATE_TABLE\): ResourceNotFoundException: "
                                             "it does not exist in us-east-1: create it"):
            state_table.state_table().get(PK)


def test_a_table_with_another_key_says_what_the_key_must_be(monkeypatch):
    with mock_aws():
        create_table("batch-notify-prod-dedup", key="event_id")  # the old dedup table's schema
        monkeypatch.setenv("NOTIFY_STATE_TABLE", "batch-notify-prod-dedup")
        config.reset()
        with pytest.raises(StateError, match=r"could not write job#.*: DynamoDB table 'batch-notify-prod-dedup' "
                                             r"\(NOTIFY_STATE_TABLE\) rejected the request \(.*event_id.*\): its "
                                             r"partition key must be pk, of type S \(string\)"):
            state_table.state_table().put({"pk": PK})


# -- the stage policies ---------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_stage_policy_grants_exactly_the_state_tables_actions_on_its_table(stage):
    root = Path(__file__).resolve().parent.parent
    policy = json.loads((root / ".chalice" / f"policy-{stage}.json").read_text())
    dynamodb = [st for st in policy["Statement"] if any(a.startswith("dynamodb:") for a in st["Action"])]
    assert dynamodb == [{"Sid": "StateTable", "Effect": "Allow", "Action": list(IAM_ACTIONS),
                         "Resource": [f"arn:*:dynamodb:*:*:table/batch-notify-{stage}-state"]}]
    assert load_state_settings({"NOTIFY_STATE_TABLE": f"batch-notify-{stage}-state"}) is not None
