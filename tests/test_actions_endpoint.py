"""The Slack actions route, end to end: signed requests through a real Chalice route.

Requests are built and signed by tools/sign_click.py as Slack builds them, and posted through
``chalice.test``'s HTTP client to a route registered on a test-local app (app.py's route is the
lead's), and once through a real ``chalice local`` process. Slack is the stand-in on 127.0.0.1:
a click's response_url points at it, so what the clicker would see is what it recorded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from chalice.app import Chalice
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.application import BatchNotify
from chalicelib.composing.messages import SlackMessage
from chalicelib.core import config
from chalicelib.interactions import endpoint
from chalicelib.interactions.clicks import Click
from chalicelib.interactions.endpoint import ActionAnswer, Registry, answer_click
from chalicelib.interactions.signing import MAX_BODY_BYTES
from tests.chalice_cli import ROOT, aws_env
from tests.conftest import TEST_CHANNEL
from tools import sign_click
from tools.slack_standin import BOT_USER, MEMBER, SlackStandIn

SECRET = "a1b2c3d4" * 4  # a fake signing secret, shaped like Slack's (32 hex digits)
OTHER_SECRET = "0f1e2d3c" * 4
PATH = "/slack/actions"
ARN = "arn:aws:batch:us-east-1:123456789012:job/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
LOGGER = "batch_notify"


class FixedClock:
    """slack-sdk's clock seam: a time the test chooses."""

    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


class Recorder:
    """An action handler that records its clicks and answers as told."""

    def __init__(self, answer: ActionAnswer | None = None) -> None:
        self.clicks: list[Click] = []
        self.answer = answer or ActionAnswer(ephemeral="done")
        self.left: list[float] = []

    def __call__(self, click: Click) -> ActionAnswer:
        self.clicks.append(click)
        self.left.append(endpoint.time_left())
        return self.answer


def make_app(registry: Registry, clock: Any = None, content_types: list[str] | None = None) -> Chalice:
    """A BatchNotify app with the actions route, as app.py is to have it."""
    app = BatchNotify(app_name="actions-test")

    @app.route(PATH, methods=["POST"], content_types=content_types or endpoint.ROUTE_CONTENT_TYPES)
    def slack_actions() -> Any:
        return answer_click(app.current_request, registry=registry, clock=clock)

    return app


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET_PARAM", raising=False)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    config.reset()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def registry(recorder: Recorder) -> Registry:
    registry = Registry()
    registry.register("retry_job", recorder)
    registry.register("snooze", recorder)
    return registry


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with SlackStandIn(channels=(TEST_CHANNEL,)) as slack:
        yield slack


def clicked_message(standin: SlackStandIn) -> str:
    return standin.post_as(BOT_USER, TEST_CHANNEL, "❌ Job failed: nightly-etl")


def click_on(standin: SlackStandIn, action_id: str = "retry_job", **extra: Any) -> dict[str, Any]:
    """A click on a message just posted to the stand-in, its response_url the stand-in's."""
    ts = clicked_message(standin)
    return sign_click.build_click(action_id, ARN, message_ts=ts, response_url=standin.response_url(TEST_CHANNEL, ts),
                                  **extra)


def signed(payload: Any, *, secret: str = SECRET, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = sign_click.form_body(payload)
    return body, sign_click.sign(body, secret, timestamp)


def post(app: Chalice, body: bytes, headers: dict[str, str]) -> Any:
    with Client(app, stage_name="local") as client:
        return client.http.post(PATH, headers=headers, body=body)


def refusals(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == LOGGER and r.getMessage().startswith("{")]
    return [line for line in lines if line.get("warning") == "refused a request to the Slack actions route"]


def assert_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert SECRET not in record.getMessage() and OTHER_SECRET not in record.getMessage()


# -- a valid click --------------------------------------------------------------------------------

def test_a_signed_click_reaches_its_handler_once_with_the_click_as_slack_sent_it(registry, recorder, standin,
                                                                                caplog):
    ts = clicked_message(standin)
    blocks = [{"type": "section", "block_id": "headline", "text": {"type": "mrkdwn", "text": "*failed*"}}]
    payload = sign_click.build_click("retry_job", ARN, message_ts=ts, blocks=blocks,
                                     response_url=standin.response_url(TEST_CHANNEL, ts))
    caplog.set_level(logging.INFO, LOGGER)
    answer = post(make_app(registry), *signed(payload))
    assert (answer.status_code, answer.body) == (200, b"")
    [click] = recorder.clicks
    assert (click.user_id, click.user_name, click.team_id, click.channel_id, click.message_ts) == (
        sign_click.USER, sign_click.USER_NAME, sign_click.TEAM, TEST_CHANNEL, ts)
    assert (click.action.action_id, click.action.kind, click.action.value, click.action.block_id) == (
        "retry_job", "button", ARN, "job_actions")
    assert click.message_blocks == blocks
    click.message_blocks[0]["text"] = "changed"  # a copy: the click itself cannot change
    assert click.message_blocks == blocks
    assert 0 < recorder.left[0] <= endpoint.HANDLER_SECONDS
    assert [e["text"] for e in standin.ephemerals] == ["done"] and standin.ephemerals[0]["user"] == MEMBER
    assert refusals(caplog) == []


def test_a_select_gives_its_chosen_option_and_a_replacement_replaces_the_message(standin):
    ts = clicked_message(standin)
    recorder = Recorder(ActionAnswer(replacement=SlackMessage(text="snoozed by <@U0TESTUSER>", blocks=())))
    registry = Registry()
    registry.register("snooze", recorder)
    payload = sign_click.build_click("snooze", ARN, option="4h", message_ts=ts,
                                     response_url=standin.response_url(TEST_CHANNEL, ts))
    assert post(make_app(registry), *signed(payload)).status_code == 200
    assert (recorder.clicks[0].action.kind, recorder.clicks[0].action.value) == ("static_select", "4h")
    [shown] = standin.channel_view(TEST_CHANNEL)
    assert (shown.text, shown.edited) == ("snoozed by <@U0TESTUSER>", True)
    assert standin.ephemerals == []


def test_an_unknown_action_gets_an_ephemeral_answer_and_a_warning(registry, recorder, standin, caplog):
    payload = click_on(standin, "<!channel>")
    answer = post(make_app(registry), *signed(payload))
    assert answer.status_code == 200 and recorder.clicks == []
    [ephemeral] = standin.ephemerals
    assert "&lt;!channel&gt;" in ephemeral["text"] and "<!channel>" not in ephemeral["text"]
    warnings = [json.loads(r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert [w["action_id"] for w in warnings if "unknown action" in w.get("warning", "")] == ["<!channel>"]


def test_a_failing_handler_tells_the_clicker_and_logs_without_the_secret(standin, caplog):
    def broken(click: Click) -> ActionAnswer:
        raise RuntimeError(f"boom {SECRET}")

    registry = Registry()
    registry.register("retry_job", broken)
    payload = click_on(standin)
    assert post(make_app(registry), *signed(payload)).status_code == 200
    assert "went wrong" in standin.ephemerals[0]["text"]
    assert any("an action handler failed" in r.getMessage() for r in caplog.records)
    assert_no_secret(caplog)


def test_a_handler_that_overruns_is_not_awaited_and_its_answer_comes_later(standin):
    release = threading.Event()

    def slow(click: Click) -> ActionAnswer:
        release.wait(10)
        return ActionAnswer(ephemeral="finished late")

    registry = Registry()
    registry.register("retry_job", slow)
    payload = click_on(standin)
    started = time.monotonic()
    answer = post(make_app(registry), *signed(payload))
    took = time.monotonic() - started
    assert answer.status_code == 200 and took < endpoint.ANSWER_SECONDS
    assert [e["text"] for e in standin.ephemerals] == [endpoint.STILL_WORKING]
    release.set()
    deadline = time.monotonic() + 5
    while len(standin.ephemerals) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e["text"] for e in standin.ephemerals] == [endpoint.STILL_WORKING, "finished late"]


def test_registering_an_action_twice_is_refused_unless_meant(recorder):
    registry = Registry()
    registry.register("acknowledge", recorder)
    with pytest.raises(ValueError, match="acknowledge"):
        registry.register("acknowledge", recorder)
    registry.register("acknowledge", Recorder(), replace=True)
    decorated = registry.action("terminate_job")(recorder)
    assert decorated is recorder and registry.handler("terminate_job") is recorder


# -- rejections -----------------------------------------------------------------------------------

NOW = 1_715_650_000


def _signed_at(timestamp: int, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    return signed(sign_click.build_click("retry_job", ARN), secret=secret, timestamp=timestamp)


def _without(header: str) -> tuple[bytes, dict[str, str]]:
    body, headers = _signed_at(NOW)
    return body, {k: v for k, v in headers.items() if k != header}


def _with(header: str, value: str) -> tuple[bytes, dict[str, str]]:
    body, headers = _signed_at(NOW)
    return body, {**headers, header: value}


def _altered() -> tuple[bytes, dict[str, str]]:
    body, headers = _signed_at(NOW)
    return body.replace(b"retry_job", b"terminate_job", 1), headers


def _form(text: str) -> tuple[bytes, dict[str, str]]:
    body = text.encode()
    return body, sign_click.sign(body, SECRET, NOW)


def _payload(payload: Any) -> tuple[bytes, dict[str, str]]:
    return _form(f"payload={quote(json.dumps(payload))}")


def _click_without(*path: str) -> dict[str, Any]:
    payload = sign_click.build_click("retry_job", ARN)
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return payload


def _too_big() -> tuple[bytes, dict[str, str]]:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "é" * 3000}}] * 50
    body = sign_click.form_body(sign_click.build_click("retry_job", ARN, blocks=blocks))
    return body + b"&pad=" + b"x" * (MAX_BODY_BYTES - len(body)), sign_click.sign(body, SECRET, NOW)


REJECTIONS: dict[str, tuple[Callable[[], tuple[bytes, dict[str, str]]], int, str]] = {
    "no signature": (lambda: _without("X-Slack-Signature"), 401, "no x-slack-signature"),
    "no timestamp": (lambda: _without("X-Slack-Request-Timestamp"), 401, "no x-slack-request-timestamp"),
    "wrong secret": (lambda: _signed_at(NOW, OTHER_SECRET), 401, "does not match"),
    "stale": (lambda: _signed_at(NOW - 301), 401, "5 minutes"),
    "future": (lambda: _signed_at(NOW + 301), 401, "5 minutes"),
    "timestamp not a number": (lambda: _with("X-Slack-Request-Timestamp", "１７１５６５００００"), 401, "not a number"),
    "timestamp with a sign": (lambda: _with("X-Slack-Request-Timestamp", f"+{NOW}"), 401, "not a number"),
    "signature not hex": (lambda: _with("X-Slack-Signature", "v0=" + "é" * 64), 401, "64 hex digits"),
    "altered body": (_altered, 401, "does not match"),
    "too big": (_too_big, 413, "over"),
    "json content type": (lambda: _with("Content-Type", "application/json"), 415, "content type"),
    "no content type": (lambda: _without("Content-Type"), 415, "content type"),
    "no payload field": (lambda: _form("token=x"), 400, "0 payload fields"),
    "two payload fields": (lambda: _form("payload=%7B%7D&payload=%7B%7D"), 400, "2 payload fields"),
    "payload not json": (lambda: _form("payload=%7Bnot-json"), 400, "not JSON"),
    "payload a list": (lambda: _payload([]), 400, "not a block_actions"),
    "a view submission": (lambda: _payload({"type": "view_submission"}), 400, "not a block_actions"),
    "no user id": (lambda: _payload(_click_without("user", "id")), 400, "user.id"),
    "no message ts": (lambda: _payload(_click_without("container", "message_ts")), 400, "container.message_ts"),
    "no response_url": (lambda: _payload(_click_without("response_url")), 400, "response_url"),
    "no actions": (lambda: _payload(_click_without("actions")), 400, "actions"),
    "no message": (lambda: _payload(_click_without("message")), 400, "message"),
    "a foreign response_url": (lambda: _payload({**sign_click.build_click("retry_job", ARN),
                                                 "response_url": "https://evil.example/actions/x"}), 400,
                               "response_url"),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_each_rejection_answers_its_status_calls_no_handler_and_logs_one_line(case, registry, recorder, caplog):
    make, status, reason = REJECTIONS[case]
    body, headers = make()
    answer = post(make_app(registry, clock=FixedClock(NOW)), body, headers)
    assert answer.status_code == status
    assert recorder.clicks == []
    [line] = refusals(caplog)
    assert line["status"] == status and reason in line["reason"]
    assert_no_secret(caplog)
    assert body.decode("utf-8", "replace")[:60] not in json.dumps(line)  # never the body


def test_chalice_answers_a_narrow_route_415_itself_so_the_route_takes_every_type(registry, recorder, caplog):
    """Why ROUTE_CONTENT_TYPES is */*: with only the form type, Chalice refuses other types
    before answer_click runs, with nothing in the app's log."""
    body, headers = _with("Content-Type", "application/json")
    narrow = make_app(registry, content_types=["application/x-www-form-urlencoded"])
    answer = post(narrow, body, headers)
    assert answer.status_code == 415 and b"UnsupportedMediaType" in answer.body
    assert refusals(caplog) == [] and recorder.clicks == []
    assert post(make_app(registry), body, headers).status_code == 415 and len(refusals(caplog)) == 1


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_signing_secret_answers_503_naming_the_variable_and_never_verifies(value, registry, recorder, caplog,
                                                                               monkeypatch):
    if value is None:
        monkeypatch.delenv("SLACK_SIGNING_SECRET")
    else:
        monkeypatch.setenv("SLACK_SIGNING_SECRET", value)
    config.reset()
    # Signed with the empty secret: were it used, this would verify.
    body = sign_click.form_body(sign_click.build_click("retry_job", ARN))
    answer = post(make_app(registry), body, sign_click.sign(body, value or ""))
    assert answer.status_code == 503 and recorder.clicks == []
    [line] = refusals(caplog)
    assert "SLACK_SIGNING_SECRET_PARAM" in line["reason"]


def test_a_signing_secret_with_a_line_break_inside_is_a_503(registry, recorder, caplog, monkeypatch):
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET[:10] + "\n" + SECRET[10:])
    config.reset()
    body, headers = _signed_at(int(time.time()))
    assert post(make_app(registry), body, headers).status_code == 503 and recorder.clicks == []
    assert "line break" in refusals(caplog)[0]["reason"]


@mock_aws
def test_the_signing_secret_is_read_from_ssm_when_given_as_a_parameter(registry, recorder, caplog, monkeypatch):
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    monkeypatch.setenv("SLACK_SIGNING_SECRET_PARAM", "/batch-notify/prod/slack-signing-secret")
    config.reset()
    body, headers = _signed_at(int(time.time()))
    assert post(make_app(registry), body, headers).status_code == 503  # not created yet
    assert "/batch-notify/prod/slack-signing-secret" in refusals(caplog)[0]["reason"]
    boto3.client("ssm").put_parameter(Name="/batch-notify/prod/slack-signing-secret", Value=SECRET,
                                      Type="SecureString")
    assert post(make_app(registry), body, headers).status_code == 200 and len(recorder.clicks) == 1
    assert_no_secret(caplog)


# -- hostile requests -----------------------------------------------------------------------------

_HEADER_TEXT = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=80)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400) | st.text(max_size=400).map(str.encode)
       | st.just(sign_click.form_body(sign_click.build_click("retry_job", ARN))),  # a real click, badly signed
       timestamp=st.none() | _HEADER_TEXT | st.integers(NOW - 400, NOW + 400).map(str),
       signature=st.none() | _HEADER_TEXT | st.from_regex(r"v0=[0-9a-f]{64}", fullmatch=True),
       content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain", ""]))
def test_hostile_requests_never_get_a_5xx_nor_reach_a_handler(registry, recorder, body, timestamp, signature,
                                                              content_type):
    headers = {"Content-Type": content_type}
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    answer = post(make_app(registry, clock=FixedClock(NOW)), body, headers)
    assert answer.status_code in (400, 401, 413, 415)
    assert recorder.clicks == []


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=3), max_leaves=12)


def _mangled(click: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """The click with one field (at any depth) replaced by arbitrary JSON, or removed."""
    path, node = [], click
    while isinstance(node, dict) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node)))
        path.append(key)
        node = node[key]
    if not path:
        return click
    parent = click
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_JSON)
    return click


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_signed_but_mangled_payloads_get_200_or_400_and_a_handler_only_for_a_readable_click(registry, recorder,
                                                                                              data):
    recorder.clicks.clear()
    payload = _mangled(sign_click.build_click("retry_job", ARN), data)
    body = sign_click.form_body(payload)
    answer = post(make_app(registry, clock=FixedClock(NOW)), body, sign_click.sign(body, SECRET, NOW))
    assert answer.status_code in (200, 400)
    if answer.status_code == 400:
        assert recorder.clicks == []
    else:  # one click, handled once when its action is registered
        assert len(recorder.clicks) <= 1
        assert all(click.action.action_id in ("retry_job", "snooze") for click in recorder.clicks)


# -- a real `chalice local` -----------------------------------------------------------------------

LOCAL_APP = '''
from chalicelib.application import BatchNotify
from chalicelib.interactions.endpoint import ROUTE_CONTENT_TYPES, ActionAnswer, answer_click, register

app = BatchNotify(app_name="actions-local-test")
register("retry_job", lambda click: ActionAnswer(ephemeral=f"retry of {click.action.value} by {click.user_id}"))


@app.route("/slack/actions", methods=["POST"], content_types=ROUTE_CONTENT_TYPES)
def slack_actions():
    return answer_click(app.current_request)
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"chalice local exited with {process.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"chalice local did not listen on {port} within {seconds}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Its own process group: the reloader's child (were autoreload on) goes with it.
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_chalice_local_serves_the_route_to_a_click_signed_by_the_tool(tmp_path: Path, standin, capsys):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "app.py").write_text(LOCAL_APP)
    (project / ".chalice").mkdir()
    (project / ".chalice" / "config.json").write_text(json.dumps(
        {"version": "2.0", "app_name": "actions-local-test", "stages": {"local": {}}}))
    port = _free_port()
    env = {**aws_env(), "SLACK_SIGNING_SECRET": SECRET, "PYTHONPATH": str(project)}
    chalice = Path(sys.executable).with_name("chalice")
    process = subprocess.Popen([str(chalice), "local", "--port", str(port), "--stage", "local", "--no-autoreload"],
                               cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for(port, process, 30)  # chalice local starts in ~1 s, far slower on a loaded machine
        url = f"http://127.0.0.1:{port}/slack/actions"
        ts = clicked_message(standin)
        body = sign_click.form_body(sign_click.build_click(
            "retry_job", ARN, message_ts=ts, response_url=standin.response_url(TEST_CHANNEL, ts)))
        assert sign_click.post(url, body, sign_click.sign(body, SECRET)) == (200, "")
        assert [e["text"] for e in standin.ephemerals] == [f"retry of {ARN} by {sign_click.USER}"]
        status, _ = sign_click.post(url, body, sign_click.sign(body, OTHER_SECRET))
        assert status == 401 and len(standin.ephemerals) == 1
        # The README's way: the tool's own command line, answering the click with its own stand-in.
        assert sign_click.main(["retry_job", ARN, "--url", url, "--secret", SECRET, "--wait", "0"]) == 0
        assert f"ephemeral to {sign_click.USER}: retry of {ARN} by {sign_click.USER}" in capsys.readouterr().out
    finally:
        _stop(process)
    log = process.stderr.read().decode() if process.stderr else ""
    assert SECRET not in log
