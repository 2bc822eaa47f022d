"""Routing: validation errors that name the route and the field, decisions, and delivery."""

import json
import re

import pytest
from chalice.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from app import app
from chalicelib.core import config
from chalicelib.core.config import ConfigError, Settings
from chalicelib.deciding.routing import (
    RoutesError,
    configured_route_table,
    load_route_table,
    parse_json,
    parse_route_table,
    route_table,
)
from tests.conftest import ROOT, load_event
from tools.slack_standin import SlackStandIn

EXAMPLE = ROOT / "examples" / "routes.json"
DEFAULT = {"name": "default"}


def route_files():
    skip = {".venv", "node_modules", ".git"}
    return sorted(p for p in ROOT.rglob("routes*.json") if not skip & set(p.relative_to(ROOT).parts))


def test_the_repo_ships_an_example():
    assert EXAMPLE in route_files()


@pytest.mark.parametrize("path", route_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_route_file_in_the_repo_is_valid(path):
    assert load_route_table(path).routes[-1].is_default


@pytest.fixture(scope="module")
def example():
    return load_route_table(EXAMPLE)


@pytest.mark.parametrize("queue, job, status, expected", [
    ("airflow-task-default", "dag_run_1", "FAILED", ("workflow-engine-tasks", False, None, ())),
    ("genomics-queue", "variant-call", "FAILED", ("genomics", True, "C0GENOMICS1", ("S0GENOMICS1",))),
    # genomics wants FAILED only: its SUCCEEDED jobs stop there, they don't fall through to default
    ("genomics-queue", "variant-call", "SUCCEEDED", ("genomics", False, None, ())),
    ("gpu-queue", "resnet", "SUCCEEDED", ("ml-training", True, "C0MLTRAIN01", ())),  # mentions on failure only
    ("hpc-mnp-queue", "cfd", "BLOCKED", ("ml-training", True, "C0MLTRAIN01", ())),
    ("etl-ondemand-queue", "nightly-etl-load-1", "FAILED",
     ("nightly-etl", True, "C0DATAENG01", ("S0DATAENG01", "U0ETLLEAD01"))),
    ("etl-ondemand-queue", "Nightly-etl-load-1", "FAILED", ("default", True, "C0123456789", ())),  # case-sensitive
    ("billing-queue", "invoice", "FAILED", ("default", True, "C0123456789", ())),
    ("billing-queue", "invoice", "SUCCEEDED", ("default", False, None, ())),
    (None, None, "FAILED", ("default", True, "C0123456789", ())),  # a job with no names still gets a route
])
def test_first_matching_route_decides(example, queue, job, status, expected):
    decision = example.decide(queue, job, status)
    assert (decision.route, decision.post, decision.channel, decision.mentions) == expected


def test_match_on_status():
    table = parse_route_table({"routes": [{"name": "blocked", "match": {"status": "BLOCKED"}, "channel": "C0OPS0001"},
                                          {"name": "default"}]})
    assert table.decide("q", "j", "BLOCKED").channel == "C0OPS0001"
    assert table.decide("q", "j", "FAILED").route == "default"


@pytest.mark.parametrize("data, message", [
    ([], "expected an object"),
    ({"routes": []}, "at least one route"),
    ({"routes": [DEFAULT], "rout": 1}, "unknown top-level field"),
    ({"routes": [{"match": {"queue": "q"}}, DEFAULT]}, r"route #1: 'name'"),
    ({"routes": [{"name": "a", "match": {"queue": "q"}, "chanel": "C0AAA"}, DEFAULT]},
     r"route 'a': unknown field.*chanel"),
    ({"routes": [{"name": "a", "match": {"queues": "q"}}, DEFAULT]}, r"route 'a': unknown 'match' field.*queues"),
    ({"routes": [{"name": "a", "match": {"queue": []}}, DEFAULT]}, r"route 'a': 'match.queue' must be"),
    ({"routes": [{"name": "a", "match": {"queue": "arn:aws:batch:us-east-1:1:job-queue/q"}}, DEFAULT]},
     r"route 'a': .* is an ARN"),
    ({"routes": [{"name": "a", "match": {"status": "FAIL"}}, DEFAULT]}, r"route 'a': 'match.status': 'FAIL'"),
    ({"routes": [{"name": "a", "match": {"job": "x"}, "statuses": ["DONE"]}, DEFAULT]}, r"route 'a': 'statuses'"),
    ({"routes": [{"name": "a", "match": {"job": "x"}, "channel": "general"}, DEFAULT]}, r"route 'a': 'channel'"),
    ({"routes": [{"name": "a", "match": {"job": "x"}, "mention": ["@alice"]}, DEFAULT]},
     r"route 'a': 'mention' '@alice'"),
    ({"routes": [{"name": "a", "match": {"job": "x"}, "drop": "yes"}, DEFAULT]}, r"route 'a': 'drop'"),
    ({"routes": [{"name": "a", "match": {"job": "x"}, "drop": True, "channel": "C0AAA"}, DEFAULT]},
     r"route 'a': a 'drop' route posts nothing"),
    ({"routes": [{"name": "a", "match": {"job": "x"}}, {"name": "a"}]}, "'a' is used twice"),
    ({"routes": [{"name": "early"}, {"name": "late", "match": {"job": "x"}}]},
     r"'early' has no 'match' but is not last"),
    ({"routes": [{"name": "only", "match": {"job": "x"}}]}, r"last route \('only'\) must be the default"),
])
def test_invalid_files_are_rejected_naming_the_route_and_field(data, message):
    with pytest.raises(RoutesError, match=message):
        parse_route_table(data, source="routes.json")


def test_a_routing_error_is_a_configuration_error():
    assert issubclass(RoutesError, ConfigError)


def test_bad_json_names_the_file(tmp_path):
    path = tmp_path / "routes.json"
    path.write_text('{"routes": [')
    with pytest.raises(RoutesError, match=f"{path}: not valid JSON"):
        load_route_table(path)


# -- through the handlers -----------------------------------------------------------------

CHANNELS = ("C0GENOMICS1", "C0MLTRAIN01", "C0DATAENG01", "C0123456789")


@pytest.fixture
def routed(monkeypatch):
    with SlackStandIn(channels=CHANNELS) as slack:
        monkeypatch.setenv("NOTIFY_ROUTES", str(EXAMPLE))
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
        monkeypatch.setenv("SLACK_CHANNEL", "C0123456789")
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        yield slack


def invoke(handler, event):
    with Client(app, stage_name="local") as client:
        client.lambda_.invoke(handler, event)


def test_a_failed_job_goes_to_its_teams_channel_mentioning_its_people(routed):
    invoke("on_job_failed", load_event("retried_failed"))  # genomics-queue
    [message] = routed.messages
    assert message["channel"] == "C0GENOMICS1"
    assert message["text"].startswith("<!subteam^S0GENOMICS1> ")
    assert message["blocks"][1]["text"]["text"] == "cc <!subteam^S0GENOMICS1>"


def test_a_dropped_or_unwanted_job_posts_nothing_and_says_why(routed, caplog):
    event = load_event("ec2_succeeded")  # mybatchjob queue -> default route, which does not want SUCCEEDED
    invoke("on_job_succeeded", event)
    assert routed.requests == []
    line = json.loads([r.getMessage() for r in caplog.records if '"outcome"' in r.getMessage()][-1])
    assert line == {"event_id": event["id"], "job_id": event["detail"]["jobId"], "status": "SUCCEEDED",
                    "route": "default", "outcome": "skipped", "reason": "route 'default' does not want SUCCEEDED"}


def test_blocked_queue_is_routed_and_warns(routed):
    invoke("on_job_queue_blocked", load_event("job_queue_blocked"))  # render-queue -> default wants BLOCKED
    [message] = routed.messages
    assert message["channel"] == "C0123456789"
    assert message["blocks"][0]["text"]["text"] == ":warning: Job queue blocked: render-queue"
    assert "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in json.dumps(message["blocks"])


def test_routes_with_channels_need_a_bot_token(monkeypatch, slack):
    monkeypatch.setenv("NOTIFY_ROUTES", str(EXAMPLE))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    with pytest.raises(ConfigError, match="webhook always posts to its own channel"):
        invoke("on_job_failed", load_event("ec2_failed"))
    assert slack.requests == []


WEBHOOK_AND_CHANNELS = f"{EXAMPLE} names channels, but a webhook always posts to its own channel: use a bot token"


@pytest.mark.parametrize("env, fails", [
    ({"NOTIFY_ROUTES": str(EXAMPLE), "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook"}, True),
    ({"NOTIFY_ROUTES": str(EXAMPLE), "SLACK_BOT_TOKEN": "xoxb-t", "SLACK_CHANNEL": "C1"}, False),
], ids=["webhook", "bot"])
def test_a_webhook_cannot_pick_a_channel_is_checked_where_the_table_is_loaded(env, fails):
    tree = Settings(env)
    if fails:
        with pytest.raises(ConfigError) as error:
            tree.section(configured_route_table)
        assert str(error.value).startswith(WEBHOOK_AND_CHANNELS) and not isinstance(error.value, RoutesError)
    else:
        assert tree.section(configured_route_table).source == str(EXAMPLE)


def test_a_table_without_channels_works_with_a_webhook(tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": [{"name": "etl", "match": {"queue": "etl-*"}, "mention": ["here"]},
                                           DEFAULT]}))
    table = Settings({"NOTIFY_ROUTES": str(path)}).section(configured_route_table)  # Slack not even read
    assert table is not None and not table.sets_channels


def test_the_routing_file_is_read_once_per_container(monkeypatch, tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": [DEFAULT]}))
    monkeypatch.setenv("NOTIFY_ROUTES", str(path))
    assert route_table().routes[0].name == "default"
    path.write_text("not json")
    assert route_table().routes[0].name == "default"
    config.reset()
    with pytest.raises(RoutesError, match="not valid JSON"):
        route_table()


def test_a_missing_routing_file_names_the_variable(monkeypatch, slack):
    monkeypatch.setenv("NOTIFY_ROUTES", "chalicelib/no-such-routes.json")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    with pytest.raises(ConfigError, match=r"NOTIFY_ROUTES='chalicelib/no-such-routes\.json': no such file"):
        invoke("on_job_failed", load_event("ec2_failed"))


def test_without_a_routing_file_everything_goes_to_the_one_channel(monkeypatch, slack):
    monkeypatch.setattr("chalicelib.deciding.routing.DEFAULT_ROUTES", "chalicelib/absent-routes.json")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    invoke("on_job_succeeded", load_event("ec2_succeeded"))
    assert len(slack.messages) == 1


# -- stuck-job reports and digests (chalicelib/scheduled/stuck.py, chalicelib/scheduled/digest.py) --------------------

def test_stuck_is_a_status_routes_can_name_and_it_mentions_like_failed(example):
    table = parse_route_table({"routes": [
        {"name": "gpu", "match": {"queue": "gpu-*"}, "channel": "C0MLTRAIN01", "mention": ["U0MLONCALL1"],
         "statuses": ["FAILED", "STUCK"], "stuck_after_minutes": 120},
        {"name": "default", "channel": "C0123456789", "statuses": ["FAILED"]}]})
    decision = table.decide("gpu-queue", "train", "STUCK")
    assert (decision.route, decision.post, decision.channel, decision.mentions) == (
        "gpu", True, "C0MLTRAIN01", ("U0MLONCALL1",))
    assert table.decide("gpu-queue", "train", "SUCCEEDED").post is False
    assert table.decide("etl-queue", "load", "STUCK").reason == "route 'default' does not want STUCK"
    assert table.route_for("gpu-queue", "train", "STUCK").stuck_after_minutes == 120
    assert table.route_for("etl-queue", "load", "STUCK").stuck_after_minutes is None
    # The example file: a route without 'statuses' wants STUCK too, and the default route asks for it.
    nightly = example.decide("etl-ondemand-queue", "nightly-etl-load-1", "STUCK")
    assert nightly.mentions == ("S0DATAENG01", "U0ETLLEAD01")
    assert example.decide("billing-queue", "invoice", "STUCK").channel == "C0123456789"
    assert example.route_for("billing-queue", "invoice", "STUCK").stuck_after_minutes == 60
    assert example.decide("reports-fargate-queue", "render", "FAILED").reason == "route 'reporting' is digest-only"


def test_a_digest_only_route_skips_every_per_job_message_and_a_digest_route_keeps_them():
    table = parse_route_table({"routes": [
        {"name": "reports", "match": {"queue": "reports-*"}, "channel": "C0REPORTS01", "digest": "only"},
        {"name": "etl", "match": {"queue": "etl-*"}, "channel": "C0DATAENG01", "digest": True},
        {"name": "default"}]})
    for status in ("FAILED", "SUCCEEDED", "BLOCKED", "STUCK", "RUNNING"):
        decision = table.decide("reports-queue", "r", status)
        assert (decision.route, decision.post, decision.reason) == ("reports", False, "route 'reports' is digest-only")
    assert table.decide("etl-queue", "load", "FAILED").post is True
    assert [r.wants_digest for r in table.routes] == [True, True, False]


def test_a_route_covers_a_queue_by_its_queue_patterns_alone():
    route = parse_route_table({"routes": [{"name": "a", "match": {"queue": "etl-*", "job": "x-*"}},
                                          {"name": "b"}]}).routes
    assert route[0].covers_queue("etl-queue") and not route[0].covers_queue("gpu-queue")
    assert route[1].covers_queue("anything")


@pytest.mark.parametrize("fields, message", [
    ({"stuck_after_minutes": 0}, "'stuck_after_minutes' must be a whole number"),
    ({"stuck_after_minutes": "30"}, "'stuck_after_minutes' must be a whole number"),
    ({"stuck_after_minutes": True}, "'stuck_after_minutes' must be a whole number"),
    ({"stuck_after_minutes": 30.5}, "'stuck_after_minutes' must be a whole number"),
    ({"stuck_after_minutes": 7 * 24 * 60 + 1}, "'stuck_after_minutes' must be a whole number"),
    ({"digest": "yes"}, "'digest' must be true, false or \"only\""),
    ({"digest": 1}, "'digest' must be true, false or \"only\""),
    ({"digest": "only", "statuses": ["STUCK"]}, "a digest-only route posts no per-job messages"),
    ({"drop": True, "digest": True}, "a 'drop' route posts nothing"),
    ({"drop": True, "stuck_after_minutes": 60}, "a 'drop' route posts nothing"),
])
def test_invalid_stuck_and_digest_fields_name_the_route_and_field(fields, message):
    data = {"routes": [{"name": "a", "match": {"queue": "q-*"}, **fields}, DEFAULT]}
    with pytest.raises(RoutesError, match=f"route 'a': {re.escape(message)}"):
        parse_route_table(data, source="routes.json")


def test_valid_stuck_and_digest_fields():
    table = parse_route_table({"routes": [
        {"name": "a", "match": {"queue": "q-*"}, "stuck_after_minutes": 10080, "digest": False},
        {"name": "b", "match": {"queue": "r-*"}, "digest": True, "statuses": ["STUCK"]},
        {"name": "default", "digest": "only", "stuck_after_minutes": 1}]})
    assert [(r.stuck_after_minutes, r.digest) for r in table.routes] == [(10080, False), (None, True), (1, "only")]


# -- hostile files: every mistake is a RoutesError naming the file, never another exception ---------

def _file(*routes: str) -> bytes:
    return ('{"routes": [' + ", ".join((*routes, '{"name": "default"}')) + "]}").encode()


@pytest.mark.parametrize("content, message", [
    (b"[" * 100_000, "nested too deeply"),  # json.loads raised RecursionError
    (b'{"routes": [{"name": "d", "match": ' + b'{"queue": ' * 50_000 + b"}", "nested too deeply"),
    (_file('{"name": "cafe", "match": {"queue": "q"}}').replace(b"cafe", b"caf\xe9"),  # Latin-1
     r"not UTF-8 text \(byte 0xe9 on line 1\)"),
    (b'{\n"routes": [{"name": "default"}],\n"routes": [{"name": "default"}]}',
     r"top-level field\(s\) \['routes'\] given more than once"),
    (_file('{"name": "a", "match": {"queue": "q"}, "channel": "C0AAAAAAAA1", "channel": "C0BBBBBBBB1"}'),
     r"route 'a': field\(s\) \['channel'\] given more than once"),
    (_file('{"name": "a", "match": {"queue": "etl-*", "queue": "gpu-*"}}'),
     r"route 'a': 'match' field\(s\) \['queue'\] given more than once"),
    (_file('{"name": "a", "match": {"queue": "q"}, "description": NaN}'), "not valid JSON: NaN is not a JSON value"),
    (_file('{"name": "a", "match": {"queue": "q"}, "stuck_after_minutes": ' + "9" * 5000 + "}"),
     "not valid JSON: the number 9+... is 5000 characters long"),  # json.loads raised ValueError
    (_file('{"name": "a", "match": {"queue": "q"}, "description": {"why": "an object"}}'),
     "route 'a': field 'description' must be a string"),
    (b'{"description": ["x"], "routes": [{"name": "default"}]}', "top-level field 'description' must be a string"),
    (_file('{"name": "a", "match": {"queue": "q"}, "channel": "C0123456789\\n"}'), "route 'a': 'channel' must be"),
    (_file('{"name": "a", "match": {"queue": "q"}, "mention": "U0123456789\\n"}'),
     r"route 'a': 'mention' 'U0123456789\\n'"),
    (_file('{"name": "a", "match": {"queue": "etl-*\\n"}}'), r"route 'a': pattern 'etl-\*\\n' holds a control"),
    (_file('{"name": "a", "match": {"job": "nightly\\u200b-*"}}'), r"pattern .* invisible character \(U\+200B\)"),
    (_file('{"name": "a", "match": {"job": "x\\ud800"}}'), r"\(U\+D800\)"),  # a lone surrogate
    (_file('{"name": "a\\u0000b", "match": {"job": "x"}}'), r"route #1: 'name' 'a\\x00b' holds a control"),
])
def test_a_hostile_file_is_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "routes.json"
    path.write_bytes(content)
    with pytest.raises(RoutesError, match=f"^{re.escape(str(path))}: .*{message}"):
        load_route_table(path)


def test_a_file_bigger_than_a_mebibyte_is_refused_unread(tmp_path):
    path = tmp_path / "routes.json"
    path.write_bytes(b'{"description": "' + b"x" * (1 << 20) + b'", "routes": [{"name": "default"}]}')
    with pytest.raises(RoutesError, match=f"^{re.escape(str(path))}: bigger than 1024 KiB"):
        load_route_table(path)
    path.write_bytes(b'{"description": "' + b"x" * 1000 + b'", "routes": [{"name": "default"}]}')
    assert load_route_table(path).routes[-1].name == "default"


def test_ids_must_match_whole_and_exactly():
    for channel in ("C0123456789", "#data-eng.alerts"):
        assert parse_route_table({"routes": [{"name": "default", "channel": channel}]}).routes[0].channel == channel
    for channel in ("C0123456789\n", " C0123456789", "C0123456789 x", "#Data", "c0123456789"):
        with pytest.raises(RoutesError, match="'channel' must be"):
            parse_route_table({"routes": [{"name": "default", "channel": channel}]})
    for mention in ("here\n", "U0123\n", "channel!", "S0ABC\r"):
        with pytest.raises(RoutesError, match="'mention'"):
            parse_route_table({"routes": [{"name": "default", "mention": mention}]})


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8),
                         st.sampled_from(["C0123456789\n", "U0ONCALL001", "etl-*", "FAILED", "only"]))
ROUTE_KEYS = st.sampled_from(["name", "match", "channel", "mention", "statuses", "drop", "digest",
                              "stuck_after_minutes", "description", "queue", "job", "status", "routes"])
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(ROUTE_KEYS, inner, max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.binary(max_size=40),
    JSON_VALUES.map(lambda v: json.dumps({"routes": [v, {"name": "default"}]}).encode()),
    # A valid file cut, spliced or with raw bytes and duplicates inserted.
    st.tuples(st.integers(0, 80), st.sampled_from([b"", b"\xff", b"[[[[", b'"name": "x", ', b"\x00", b"NaN"]))
    .map(lambda t: EXAMPLE.read_bytes()[:t[0] * 40] + t[1] + EXAMPLE.read_bytes()[t[0] * 40:]),
))
def test_any_bytes_give_a_table_or_a_routes_error_never_another_exception(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("hostile") / "routes.json"
    path.write_bytes(content)
    try:
        table = load_route_table(path)
    except RoutesError as error:
        assert str(error).startswith(f"{path}: ")
        return
    assert table.routes[-1].is_default


def test_a_hostile_routing_file_fails_the_invocation_with_a_configuration_error(tmp_path, monkeypatch, slack):
    path = tmp_path / "routes.json"
    path.write_bytes(b'{"routes": ' + b"[" * 100_000)
    monkeypatch.setenv("NOTIFY_ROUTES", str(path))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    with pytest.raises(RoutesError, match=f"{re.escape(str(path))}: not a routing file: nested too deeply"):
        invoke("on_job_failed", load_event("ec2_failed"))
    assert slack.requests == []


# -- failure storm overrides (chalicelib/deciding/storms.py) -----------------------------------------

def test_group_overrides_reach_the_decision(example):
    etl = example.decide("etl-ondemand-queue", "nightly-etl-load-1", "FAILED")
    assert (etl.group_after, etl.group_window_minutes) == (5, 30)
    other = example.decide("billing-queue", "invoice", "FAILED")
    assert (other.group_after, other.group_window_minutes) == (None, None)  # the global settings


def test_group_overrides_take_their_whole_ranges():
    table = parse_route_table({"routes": [
        {"name": "never", "match": {"queue": "a"}, "group_after": 0},
        {"name": "widest", "match": {"queue": "b"}, "group_after": 1000, "group_window_minutes": 1440},
        {"name": "default", "group_window_minutes": 1}]})
    assert [(r.group_after, r.group_window_minutes) for r in table.routes] == [(0, None), (1000, 1440), (None, 1)]
    assert table.decide("a", "j", "FAILED").group_after == 0


@pytest.mark.parametrize("field, value", [
    ("group_after", -1), ("group_after", 1001), ("group_after", True), ("group_after", 2.0), ("group_after", "3"),
    ("group_window_minutes", 0), ("group_window_minutes", 1441), ("group_window_minutes", False),
    ("group_window_minutes", "10"),
])
def test_bad_group_overrides_are_rejected_naming_the_route_and_field(field, value):
    data = {"routes": [{"name": "a", "match": {"queue": "q"}, field: value}, DEFAULT]}
    with pytest.raises(RoutesError, match=rf"route 'a': '{field}' must be a whole number of"):
        parse_route_table(data, source="routes.json")


def test_a_drop_route_takes_no_group_overrides():
    data = {"routes": [{"name": "a", "match": {"queue": "q"}, "drop": True, "group_after": 2}, DEFAULT]}
    with pytest.raises(RoutesError, match=r"a 'drop' route posts nothing: .*'group_after'"):
        parse_route_table(data, source="routes.json")


# -- who may act (issue 13): a route's actions.allow ----------------------------------------------

def test_a_routes_actions_allow_reaches_its_decisions(example):
    assert example.decide("genomics-queue", "variant-call", "FAILED").actions_allow == ("S0GENOMICS1",)
    assert example.decide("etl-ondemand-queue", "nightly-etl-load-1", "FAILED").actions_allow == ("U0ETLLEAD01",)
    # ml-training has no "actions": the fallback given (SLACK_ACTIONS_ALLOW), else nobody
    assert example.decide("gpu-queue", "resnet", "FAILED").actions_allow == ()
    assert example.decide("gpu-queue", "resnet", "FAILED", default_allow=("U0PLATFORM1",)).actions_allow == (
        "U0PLATFORM1",)
    # a decision not to post shows no buttons
    assert example.decide("airflow-task-x", "t", "FAILED", default_allow=("U0PLATFORM1",)).actions_allow == ()


def test_actions_allow_takes_users_groups_and_nobody():
    table = parse_route_table({"routes": [
        {"name": "a", "match": {"queue": "a"}, "actions": {"allow": ["U0AAA", "W0BBB", "S0CCC", "U0AAA"]}},
        {"name": "b", "match": {"queue": "b"}, "actions": {"allow": "S0CCC"}},
        {"name": "c", "match": {"queue": "c"}, "actions": {"allow": []}},
        DEFAULT]})
    assert [r.actions_allow for r in table.routes] == [("U0AAA", "W0BBB", "S0CCC"), ("S0CCC",), (), None]
    assert table.decide("c", "j", "FAILED", default_allow=("U0ZZZ",)).actions_allow == ()  # [] wins too


@pytest.mark.parametrize("actions, message", [
    ({"allow": ["here"]}, r"route 'a': 'actions.allow' 'here' is not a Slack user ID .*cannot act"),
    ({"allow": ["channel"]}, r"'actions.allow' 'channel' is not"),
    ({"allow": ["C0123456789"]}, r"'actions.allow' 'C0123456789' is not"),
    ({"allow": ["u0abc"]}, r"'actions.allow' 'u0abc' is not"),
    ({"allow": ["U0ABC\n"]}, r"'actions.allow' 'U0ABC\\n' is not"),
    ({"allow": [7]}, r"'actions.allow' must be a list of Slack user IDs"),
    ({"allow": None}, r"'actions.allow' must be a list"),
    ({}, r"'actions.allow' must be a list"),
    ({"allow": ["U0ABC"], "deny": ["U0DEF"]}, r"unknown 'actions' field\(s\) \['deny'\]"),
    (["U0ABC"], r"'actions' must be an object with 'allow'"),
])
def test_a_bad_actions_field_names_the_route_and_the_field(actions, message):
    with pytest.raises(RoutesError, match=message):
        parse_route_table({"routes": [{"name": "a", "match": {"queue": "q"}, "actions": actions}, DEFAULT]})


@pytest.mark.parametrize("route, message", [
    ({"drop": True}, r"a 'drop' route posts nothing: .*'actions'"),
    ({"digest": "only"}, r"a digest-only route posts no per-job messages: remove 'statuses' and 'actions'"),
])
def test_actions_on_a_route_that_posts_no_job_messages_are_refused(route, message):
    with pytest.raises(RoutesError, match=message):
        parse_route_table({"routes": [{"name": "a", "match": {"queue": "q"}, "actions": {"allow": ["U0ABC"]},
                                       **route}, DEFAULT]})


def test_a_duplicate_key_in_actions_is_named():
    text = '{"routes": [{"name": "a", "match": {"queue": "q"}, "actions": {"allow": ["U0A1"], "allow": []}}, ' \
           '{"name": "default"}]}'
    with pytest.raises(RoutesError, match=r"'actions' field\(s\) \['allow'\] given more than once"):
        parse_route_table(parse_json(text))


# -- the hub: routes by account and region (tests/test_hub.py drives them end to end) ---------------
HUB_ACCOUNT, MEMBER_ACCOUNT = "123456789012", "210987654321"


def test_a_route_can_match_on_the_jobs_account_and_region():
    table = parse_route_table({"accounts": {MEMBER_ACCOUNT: "staging"}, "routes": [
        {"name": "staging-eu", "match": {"account": ["staging", HUB_ACCOUNT], "region": ["eu-*"]}},
        {"name": "default"}]})
    assert table.routes[0].accounts == (MEMBER_ACCOUNT, HUB_ACCOUNT) and not table.routes[0].is_default
    assert table.accounts == ((MEMBER_ACCOUNT, "staging"),)
    assert table.decide("q", "j", "FAILED", account=MEMBER_ACCOUNT, region="eu-west-1").route == "staging-eu"
    assert table.decide("q", "j", "FAILED", account=MEMBER_ACCOUNT, region="us-east-1").route == "default"
    assert table.decide("q", "j", "FAILED", account="999999999999", region="eu-west-1").route == "default"
    assert table.decide("q", "j", "FAILED").route == "default"  # other call sites: nothing known, no match


@pytest.mark.parametrize(("data", "message"), [
    ({"routes": [{"name": "a", "match": {"account": "prod"}}, {"name": "d"}]}, "'prod' is neither a 12-digit"),
    ({"routes": [{"name": "a", "match": {"account": "12345"}}, {"name": "d"}]}, "'12345' is neither a 12-digit"),
    ({"accounts": {"12345": "prod"}, "routes": [{"name": "d"}]}, "'accounts': '12345' is not a 12-digit"),
    ({"accounts": [MEMBER_ACCOUNT], "routes": [{"name": "d"}]}, "'accounts' must be an object"),
    ({"accounts": {MEMBER_ACCOUNT: "a", HUB_ACCOUNT: "a"}, "routes": [{"name": "d"}]}, "'a' is given twice"),
    ({"routes": [{"name": "a", "match": {"region": "eu-\u200bwest-1"}}, {"name": "d"}]}, "invisible character"),
    ({"routes": [{"name": "a", "match": {"region": "eu-*"}}]}, "must be the default"),
])
def test_hub_fields_are_checked_and_named(data, message):
    with pytest.raises(RoutesError, match=re.escape(message)):
        parse_route_table(data)


def test_duplicate_account_ids_in_the_file_are_refused():
    with pytest.raises(RoutesError, match="'accounts' must be an object"):
        parse_route_table(parse_json(f'{{"accounts": {{"{MEMBER_ACCOUNT}": "a", "{MEMBER_ACCOUNT}": "b"}}, '
                                     '"routes": [{"name": "d"}]}'))


def test_account_names_replace_the_files_accounts_when_set():
    data = {"accounts": {MEMBER_ACCOUNT: "from-file"}, "routes": [{"name": "d"}]}
    assert parse_route_table(data).accounts == ((MEMBER_ACCOUNT, "from-file"),)
    given_names = ((HUB_ACCOUNT, "hub"),)
    assert parse_route_table(data, account_names=given_names).accounts == given_names
