"""Who may act (issue 13): SLACK_ACTIONS_ALLOW, a route's actions.allow and its fallback, and
may_act against the Slack stand-in (user groups listed, cached 60 s, failing closed)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chalicelib.core import config
from chalicelib.core.config import ConfigError, load_slack_settings
from chalicelib.deciding.permissions import (
    ACTIONS_ALLOW,
    actions_allow,
    allow_for,
    decide_with_actions,
    parse_actions_allow,
)
from chalicelib.deciding.routing import ACTOR_ID, parse_route_table
from chalicelib.delivering.slack import DeliveryError, Slack
from chalicelib.interactions.permissions import GROUP_CACHE_SECONDS, GroupCache, may_act, usergroup_members
from tests.conftest import BOT_TOKEN, TEST_CHANNEL
from tools.slack_standin import Reply, SlackStandIn

ONCALL = "S0ONCALL01"
ALICE, BOB, MALLORY = "U0ALICE001", "W0BOB00001", "U0MALLORY1"
LIST = "usergroups.users.list"


@pytest.fixture(autouse=True)
def no_allow_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's shell may set these: each test says what it wants.
    monkeypatch.delenv(ACTIONS_ALLOW, raising=False)
    monkeypatch.delenv("NOTIFY_ROUTES", raising=False)
    config.reset()


# -- SLACK_ACTIONS_ALLOW ---------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("", ()),
    ("   ", ()),
    ("U0ALICE001", ("U0ALICE001",)),
    ("U0ALICE001,S0ONCALL01", ("U0ALICE001", "S0ONCALL01")),
    (" U0ALICE001 ,  W0BOB00001\tS0ONCALL01 ", ("U0ALICE001", "W0BOB00001", "S0ONCALL01")),
    ("U0ALICE001,,U0ALICE001", ("U0ALICE001",)),  # given twice: allowed once
])
def test_the_variable_takes_ids_separated_by_commas_or_spaces(raw, expected):
    assert parse_actions_allow({ACTIONS_ALLOW: raw}) == expected


@pytest.mark.parametrize("bad", ["here", "channel", "@here", "u0alice001", "C0123456789", "U0", "U0ALICE-01",
                                 "<@U0ALICE001>", "S0ONCALL01;U0X", "Ｕ0ALICE001"])
def test_a_bad_id_names_the_variable_and_the_id(bad):
    with pytest.raises(ConfigError) as raised:
        parse_actions_allow({ACTIONS_ALLOW: f"U0ALICE001, {bad}"})
    assert str(raised.value).startswith(f"{ACTIONS_ALLOW}: {bad!r} is not a Slack user ID")


def test_a_long_bad_value_is_cut_in_the_error():
    with pytest.raises(ConfigError) as raised:
        parse_actions_allow({ACTIONS_ALLOW: "x" * 10_000})
    assert len(str(raised.value)) < 400 and "(10000 characters)" in str(raised.value)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("UWSCuhere ,\t\n\u200b\u00a0@<>|-_0AZ9"), max_size=40) | st.text(max_size=40))
def test_any_value_gives_valid_ids_or_an_error_naming_the_variable(raw):
    try:
        ids = parse_actions_allow({ACTIONS_ALLOW: raw})
    except ConfigError as error:
        assert str(error).startswith(f"{ACTIONS_ALLOW}: ")
    else:
        assert all(ACTOR_ID.fullmatch(i) for i in ids)
        assert len(set(ids)) == len(ids) and all(i in raw for i in ids)


def test_the_setting_is_read_through_the_settings_tree(monkeypatch):
    monkeypatch.setenv(ACTIONS_ALLOW, ALICE)
    config.reset()
    assert actions_allow() == (ALICE,)
    monkeypatch.setenv(ACTIONS_ALLOW, "here")
    assert actions_allow() == (ALICE,)  # kept for the container...
    config.reset()
    with pytest.raises(ConfigError, match=ACTIONS_ALLOW):  # ...until the tree is read again
        actions_allow()


# -- a route's allow, else the variable -------------------------------------------------------

TABLE = {"routes": [
    {"name": "etl", "match": {"queue": "etl-*"}, "actions": {"allow": [ONCALL, ALICE]}},
    {"name": "nobody", "match": {"queue": "secret-*"}, "actions": {"allow": []}},
    {"name": "dropped", "match": {"queue": "airflow-*"}, "drop": True},
    {"name": "failures-only", "match": {"queue": "gpu-*"}, "statuses": ["FAILED"]},
    {"name": "default"},
]}


@pytest.fixture
def routes_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(TABLE))
    monkeypatch.setenv("NOTIFY_ROUTES", str(path))
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_CHANNEL", TEST_CHANNEL)
    config.reset()
    return path


@pytest.mark.parametrize("queue, status, expected", [
    ("etl-queue", "FAILED", (ONCALL, ALICE)),  # the route's allow wins over the variable
    ("etl-queue", "STUCK", (ONCALL, ALICE)),
    ("secret-queue", "FAILED", ()),  # "allow": [] is nobody, whatever the variable says
    ("airflow-q", "FAILED", ()),  # a route that posts nothing shows no buttons
    ("gpu-queue", "STUCK", ()),  # ... nor for a status it does not post
    ("gpu-queue", "FAILED", (BOB,)),  # no "actions": the variable
    ("billing-queue", "FAILED", (BOB,)),
])
def test_the_route_decides_and_a_route_without_actions_falls_back(routes_file, monkeypatch, queue, status, expected):
    monkeypatch.setenv(ACTIONS_ALLOW, BOB)
    config.reset()
    assert allow_for(queue, "job", status) == expected


def test_without_the_variable_a_route_without_actions_allows_nobody(routes_file):
    assert allow_for("billing-queue", "job", "FAILED") == ()
    assert allow_for("etl-queue", "job", "FAILED") == (ONCALL, ALICE)


def test_without_a_routing_file_the_variable_decides(monkeypatch):
    assert allow_for("any-queue", "job", "FAILED") == ()
    monkeypatch.setenv(ACTIONS_ALLOW, f"{ONCALL} {BOB}")
    config.reset()
    assert allow_for("any-queue", "job", "FAILED") == (ONCALL, BOB)
    decision = decide_with_actions(None, "any-queue", "job", "FAILED")
    assert decision.post and decision.route is None and decision.actions_allow == (ONCALL, BOB)


def test_the_decision_of_a_post_carries_who_may_act(monkeypatch):
    monkeypatch.setenv(ACTIONS_ALLOW, BOB)
    config.reset()
    table = parse_route_table(TABLE)
    assert decide_with_actions(table, "etl-queue", "j", "FAILED").actions_allow == (ONCALL, ALICE)
    assert decide_with_actions(table, "billing-queue", "j", "FAILED").actions_allow == (BOB,)
    assert table.decide("billing-queue", "j", "FAILED").actions_allow == ()  # no fallback given: nobody


def test_a_bad_variable_fails_the_decision_naming_it(monkeypatch):
    monkeypatch.setenv(ACTIONS_ALLOW, "@channel")
    config.reset()
    with pytest.raises(ConfigError, match=ACTIONS_ALLOW):
        allow_for("q", "j", "FAILED")


# -- may_act, against the stand-in ---------------------------------------------------------------

class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def groups() -> Iterator[SlackStandIn]:
    with SlackStandIn(channels=(TEST_CHANNEL,), usergroups={ONCALL: [ALICE, BOB], "S0EMPTY001": []}) as standin:
        yield standin


def bot_slack(standin: SlackStandIn, **env: str) -> Slack:
    return Slack(load_slack_settings({"SLACK_BOT_TOKEN": standin.bot_token, "SLACK_CHANNEL": TEST_CHANNEL,
                                      "SLACK_API_URL": standin.api_url, **env}))


def test_a_named_user_may_act_without_asking_slack(groups):
    cache = GroupCache()
    assert may_act(ALICE, [ALICE], bot_slack(groups), cache=cache)
    assert may_act(BOB, ["S0OTHER001", BOB], bot_slack(groups), cache=cache)
    assert groups.calls_by_method() == {}


def test_a_group_member_may_act_and_others_may_not(groups):
    cache, slack = GroupCache(), bot_slack(groups)
    assert may_act(ALICE, [ONCALL], slack, cache=cache)
    assert may_act(BOB, [ONCALL], slack, cache=cache)
    assert not may_act(MALLORY, [ONCALL], slack, cache=cache)
    assert groups.calls_by_method() == {LIST: 1}  # one listing served all three clicks
    request = groups.requests[0]
    assert request.body["usergroup"] == ONCALL
    assert request.headers["authorization"] == f"Bearer {groups.bot_token}"


def test_nobody_allowed_means_nobody(groups):
    assert not may_act(ALICE, [], bot_slack(groups), cache=GroupCache())
    assert not may_act(ALICE, ["S0EMPTY001"], bot_slack(groups), cache=GroupCache())


@pytest.mark.parametrize("clicker", [ONCALL, "here", "channel", "", "u0alice001", f"{ALICE}\n", "S0EMPTY001"])
def test_a_clicker_id_that_is_not_a_user_is_never_allowed(groups, clicker):
    # A group's own ID, or 'here', never matches an allow entry, however the list reads.
    assert not may_act(clicker, [ONCALL, "here", "channel", "S0EMPTY001", clicker], bot_slack(groups),
                       cache=GroupCache())


def test_the_members_are_kept_60_seconds_per_group(groups):
    clock = Clock()
    cache, slack = GroupCache(clock=clock), bot_slack(groups)
    assert may_act(ALICE, [ONCALL], slack, cache=cache)
    groups.set_usergroup(ONCALL, [MALLORY])  # ALICE leaves the group
    clock.now += GROUP_CACHE_SECONDS - 1
    assert may_act(ALICE, [ONCALL], slack, cache=cache)  # still the kept listing: no request
    assert groups.calls_by_method() == {LIST: 1}
    clock.now += 1
    assert not may_act(ALICE, [ONCALL], slack, cache=cache)  # expired: listed again
    assert may_act(MALLORY, [ONCALL], slack, cache=cache)
    assert groups.calls_by_method() == {LIST: 2}


def test_groups_are_listed_until_one_holds_the_user(groups):
    groups.set_usergroup("S0SECOND01", [MALLORY])
    cache, slack = GroupCache(), bot_slack(groups)
    assert may_act(ALICE, [ONCALL, "S0SECOND01"], slack, cache=cache)
    assert groups.calls_by_method() == {LIST: 1}  # the first group held ALICE: the second was not asked
    assert may_act(MALLORY, [ONCALL, "S0SECOND01"], slack, cache=cache)
    assert groups.calls_by_method() == {LIST: 2}


@pytest.mark.parametrize("standin_kwargs, allow, code", [
    ({"usergroups_token_type_allowed": False}, [ONCALL], "not_allowed_token_type"),
    ({}, ["S0NOSUCH01"], "no_such_subteam"),
])
def test_slack_refusing_the_listing_fails_closed_with_a_warning(standin_kwargs, allow, code, caplog):
    with SlackStandIn(channels=(TEST_CHANNEL,), usergroups={ONCALL: [ALICE]}, **standin_kwargs) as standin:
        cache = GroupCache()
        with caplog.at_level(logging.WARNING, logger="batch_notify"):
            assert not may_act(ALICE, allow, bot_slack(standin), cache=cache)
            assert not may_act(ALICE, allow, bot_slack(standin), cache=cache)
        assert standin.calls_by_method() == {LIST: 2}  # a failure is not kept: the next click asks again
    lines = [json.loads(r.getMessage()) for r in caplog.records if "user group" in r.getMessage()]
    assert len(lines) == 2 and lines[0]["code"] == code and lines[0]["group"] == allow[0]
    assert lines[0]["user"] == ALICE and BOT_TOKEN not in caplog.text


@pytest.mark.parametrize("reply", [
    Reply(200, {"ok": False, "error": "invalid_auth"}),
    Reply(200, {"ok": True, "users": "U0ALICE001"}),  # not a list: nobody
    Reply(200, {"ok": True}),
    Reply(200, "<html>portal</html>"),
    Reply(302, None, {"Location": "http://elsewhere.example/"}),
    Reply(404, {"ok": False, "error": "unknown_method"}),
])
def test_an_odd_or_failed_answer_fails_closed(groups, reply):
    groups.script(reply)
    assert not may_act(ALICE, [ONCALL], bot_slack(groups, SLACK_DELIVERY_BUDGET_SECONDS="0.5"), cache=GroupCache())


def test_slack_down_fails_closed_within_the_budget(groups):
    groups.script(*[Reply(503, {"ok": False, "error": "service_unavailable"})] * 5)
    assert not may_act(ALICE, [ONCALL], bot_slack(groups, SLACK_DELIVERY_BUDGET_SECONDS="1"), cache=GroupCache())


def test_a_webhook_cannot_list_groups(groups):
    webhook = Slack(load_slack_settings({"SLACK_WEBHOOK_URL": groups.webhook_url}))
    assert not may_act(ALICE, [ONCALL], webhook, cache=GroupCache())
    assert may_act(ALICE, [ALICE], webhook, cache=GroupCache())
    with pytest.raises(DeliveryError, match="bot token"):
        usergroup_members(webhook, ONCALL)
    assert groups.requests == []


def test_usergroup_members_lists_the_group(groups):
    assert usergroup_members(bot_slack(groups), ONCALL) == frozenset({ALICE, BOB})
    with pytest.raises(DeliveryError) as raised:
        usergroup_members(bot_slack(groups), "S0NOSUCH01")
    assert raised.value.code == "no_such_subteam" and "actions.allow" in str(raised.value)


@hypothesis_settings(max_examples=200, deadline=None)
@given(clicker=st.text(max_size=30) | st.from_regex(r"[UWS][A-Z0-9]{2,8}", fullmatch=True),
       allow=st.lists(st.text(max_size=30) | st.from_regex(r"[UWS][A-Z0-9]{2,8}", fullmatch=True), max_size=5))
def test_hostile_ids_never_allow_anyone_not_named(clicker, allow):
    # Without Slack at all (a closed port): only a user ID named exactly in allow may act.
    slack = Slack(load_slack_settings({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_CHANNEL": TEST_CHANNEL,
                                       "SLACK_API_URL": "http://127.0.0.1:9/api/",
                                       "SLACK_DELIVERY_BUDGET_SECONDS": "0.2"}))
    allowed = may_act(clicker, allow, slack, cache=GroupCache())
    assert allowed == (clicker in allow and clicker[:1] in "UW" and ACTOR_ID.fullmatch(clicker) is not None)
