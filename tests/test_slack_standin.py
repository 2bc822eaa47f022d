"""Tests of the Slack stand-in, driven by the real slack_sdk clients over loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from tools.slack_standin import RecordedRequest, Reply, SlackStandIn, block_kit_errors

TOKEN = "xoxb-test-token"
CHANNEL = "C0TESTCHAN"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


def web(slack: SlackStandIn, token: str | None = TOKEN, **kwargs: Any) -> WebClient:
    # No retries unless a test asks: a retried request would hide what the stand-in answered.
    kwargs.setdefault("retry_handlers", [])
    return WebClient(token=token, base_url=slack.api_url, **kwargs)


def raw_post(url: str, data: bytes, content_type: str) -> tuple[int, str]:
    """POST with plain urllib, for bodies slack_sdk would never send."""
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except HTTPError as error:
        return error.code, error.read().decode()


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


# -- ok paths -------------------------------------------------------------------


def test_webhook_message_is_answered_ok_and_recorded(slack: SlackStandIn) -> None:
    blocks = [section("*Job failed*")]

    response = WebhookClient(slack.webhook_url).send(text="Job failed", blocks=blocks)

    assert (response.status_code, response.body) == (200, "ok")
    [request] = slack.requests
    assert isinstance(request, RecordedRequest)
    assert (request.method, request.path, request.reply_status) == ("POST", slack.webhook_path, 200)
    assert request.headers["content-type"].startswith("application/json")
    assert request.body == {"text": "Job failed", "blocks": blocks}
    assert slack.messages == [request.body]


def test_chat_post_message_is_answered_like_slack_and_recorded(slack: SlackStandIn) -> None:
    client = web(slack)

    first = client.chat_postMessage(channel=CHANNEL, text="one")
    second = client.chat_postMessage(channel="#batch-alerts", text="two")

    assert first["ok"] and first["channel"] == CHANNEL and first["message"]["text"] == "one"
    assert float(second["ts"]) > float(first["ts"])
    assert [r.path for r in slack.requests] == ["/api/chat.postMessage"] * 2
    assert slack.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert [m["text"] for m in slack.wait_for_messages(2)] == ["one", "two"]


def test_a_form_body_is_not_json(slack: SlackStandIn) -> None:
    # slack_sdk sends JSON; the stand-in parses nothing else (Slack would, but the app never sends it).
    form = urlencode({"channel": CHANNEL, "text": "hi"}).encode()
    request = urllib.request.Request(slack.api_url + "chat.postMessage", data=form, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read()) == {"ok": False, "error": "invalid_json"}
    assert slack.messages == []


# -- Slack's error answers --------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "kwargs", "error"),
    [
        ("xoxb-someone-else", {"channel": CHANNEL, "text": "x"}, "invalid_auth"),
        (None, {"channel": CHANNEL, "text": "x"}, "not_authed"),
        (TOKEN, {"channel": "C0NOSUCH", "text": "x"}, "channel_not_found"),
        pytest.param(
            TOKEN, {"channel": CHANNEL}, "no_text",
            marks=pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing"),
        ),
        (TOKEN, {"channel": CHANNEL, "text": "x" * 40_001}, "msg_too_long"),
    ],
)
def test_chat_post_message_errors(slack: SlackStandIn, token: str | None, kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(SlackApiError) as caught:
        web(slack, token).chat_postMessage(**kwargs)

    assert caught.value.response.status_code == 200  # Slack reports these in the body
    assert caught.value.response["error"] == error
    assert slack.messages == []
    assert [r.reply_status for r in slack.requests] == [200]


def test_unknown_api_method(slack: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as caught:
        web(slack).api_call("chat.scheduleMessage", json={"channel": CHANNEL, "text": "x"})
    assert caught.value.response["error"] == "unknown_method"
    assert raw_post(slack.base_url + "elsewhere", b"", "text/plain") == (404, "not_found")


def test_block_limit_violations_are_reported_to_the_web_client(slack: SlackStandIn) -> None:
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}, section("ok")]

    with pytest.raises(SlackApiError) as caught:
        web(slack).chat_postMessage(channel=CHANNEL, text="x", blocks=blocks)

    assert caught.value.response["error"] == "invalid_blocks"
    assert caught.value.response["errors"] == ["must be less than 151 characters [json-pointer:/blocks/0/text/text]"]
    assert slack.messages == []


@pytest.mark.parametrize(
    ("path", "payload", "status", "body"),
    [
        (None, b'{"text": "x"}', 404, "no_service"),  # unknown /services/... path
        ("", b"{not json", 400, "invalid_payload"),
        ("", b'{"username": "bot"}', 400, "invalid_payload"),  # neither text nor blocks
        ("", json.dumps({"text": "x", "blocks": [section("s")] * 51}).encode(), 400, "invalid_blocks"),
        ("", json.dumps({"text": "x" * 40_001}).encode(), 400, "msg_too_long"),
    ],
)
def test_webhook_errors(slack: SlackStandIn, path: str | None, payload: bytes, status: int, body: str) -> None:
    url = slack.base_url + "services/TOTHER/BOTHER/nope" if path is None else slack.webhook_url

    assert raw_post(url, payload, "application/json") == (status, body)
    assert slack.messages == []
    assert slack.requests[0].reply_status == status


# -- scripted replies ---------------------------------------------------------------


def test_scripted_429_reaches_the_clients_with_retry_after(slack: SlackStandIn) -> None:
    slack.script(
        Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}),
        Reply(429, "rate_limited"),  # no Retry-After unless the test gives one
    )

    with pytest.raises(SlackApiError) as caught:
        web(slack).chat_postMessage(channel=CHANNEL, text="x")
    response = WebhookClient(slack.webhook_url).send(text="x")

    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert (response.status_code, response.body) == (429, "rate_limited")
    assert not any(name.lower() == "retry-after" for name in response.headers)
    assert slack.rate_limited_count == 2
    # The script is used up: the next request gets the default behaviour.
    assert WebhookClient(slack.webhook_url).send(text="x").status_code == 200
    assert len(slack.requests) == 3 and len(slack.messages) == 1


def test_scripted_reply_overrides_validation_but_is_recorded(slack: SlackStandIn) -> None:
    slack.script(Reply(200, {"ok": True, "channel": "CFAKE", "ts": "1.0"}))

    response = web(slack, "xoxb-wrong").chat_postMessage(channel="nowhere", text="x")

    assert response["channel"] == "CFAKE"
    assert slack.requests[0].body == {"channel": "nowhere", "text": "x"}
    assert slack.messages == [{"channel": "nowhere", "text": "x"}]


def test_dropped_connection_is_a_connection_error_for_the_client(slack: SlackStandIn) -> None:
    slack.script(Reply(drop=True))

    with pytest.raises(ConnectionResetError):
        web(slack).chat_postMessage(channel=CHANNEL, text="x")

    assert [r.reply_status for r in slack.requests] == [0]
    assert slack.messages == []


def test_client_retrying_on_connection_errors_gets_through_after_a_drop(slack: SlackStandIn) -> None:
    slack.script(Reply(drop=True))
    retry = ConnectionErrorRetryHandler(interval_calculator=FixedValueRetryIntervalCalculator(0.0))

    response = WebhookClient(slack.webhook_url, retry_handlers=[retry]).send(text="x")

    assert response.status_code == 200
    assert [r.reply_status for r in slack.requests] == [0, 200]
    assert slack.messages == [{"text": "x"}]


def test_delayed_reply_times_the_client_out_and_does_not_hold_up_stop() -> None:
    with SlackStandIn() as slack:
        slack.script(Reply(delay=5))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            web(slack, timeout=1).chat_postMessage(channel=CHANNEL, text="x")
        assert time.monotonic() - started < 3
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 2  # the sleeping handler was woken, not waited for (its 4 s left)
    # The message counts as posted: Slack too posts it even if the client gave up waiting.
    assert [r.reply_status for r in slack.requests] == [200]


# -- rate-limit mode ------------------------------------------------------------------


def test_rate_limit_mode_answers_429_to_a_second_immediate_post() -> None:
    with SlackStandIn(rate_limit_per_channel=1.0) as slack:
        client = web(slack)
        client.chat_postMessage(channel=CHANNEL, text="first")
        with pytest.raises(SlackApiError) as caught:
            client.chat_postMessage(channel=CHANNEL, text="second")
        client.chat_postMessage(channel="#batch-alerts", text="other channel")
        hook = WebhookClient(slack.webhook_url)
        first_hook, second_hook = hook.send(text="a"), hook.send(text="b")

    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    assert caught.value.response.headers["Retry-After"] == "1"
    assert first_hook.status_code == 200
    assert (second_hook.status_code, second_hook.body, second_hook.headers["Retry-After"]) == (429, "rate_limited", "1")
    assert slack.rate_limited_count == 2
    assert [m["text"] for m in slack.messages] == ["first", "other channel", "a"]


def _status(call: Any) -> int:
    """The HTTP status a Web API call got (200 when it went through)."""
    try:
        call()
    except SlackApiError as error:
        return int(error.response.status_code)
    return 200


def test_thread_replies_and_broadcasts_count_against_the_channels_post_limit() -> None:
    # 2 posts/s: one every 0.5 s per channel, whatever kind of post.
    with SlackStandIn(rate_limit_per_channel=2.0) as slack:
        client = web(slack)
        parent = client.chat_postMessage(channel=CHANNEL, text="parent")["ts"]
        reply_at_once = _status(lambda: client.chat_postMessage(channel=CHANNEL, text="r", thread_ts=parent))
        time.sleep(0.55)
        reply_later = _status(lambda: client.chat_postMessage(channel=CHANNEL, text="r2", thread_ts=parent))
        broadcast_at_once = _status(lambda: client.chat_postMessage(channel=CHANNEL, text="b", thread_ts=parent,
                                                                    reply_broadcast=True))
        time.sleep(0.55)
        top_after_reply = _status(lambda: client.chat_postMessage(channel=CHANNEL, text="top"))
        top_at_once = _status(lambda: client.chat_postMessage(channel=CHANNEL, text="top2"))
        elsewhere = _status(lambda: client.chat_postMessage(channel="#batch-alerts", text="other"))

    assert (reply_at_once, reply_later, broadcast_at_once) == (429, 200, 429)
    assert (top_after_reply, top_at_once, elsewhere) == (200, 429, 200)
    assert slack.rate_limited_count == 3
    assert [m["text"] for m in slack.messages] == ["parent", "r2", "top", "other"]


def test_update_limit_answers_429_beyond_its_rate_per_channel_and_minute() -> None:
    with SlackStandIn(update_rate_per_minute=2, rate_limit_per_channel=100.0) as slack:
        client = web(slack)
        ts = client.chat_postMessage(channel=CHANNEL, text="v0")["ts"]
        other = client.chat_postMessage(channel="#batch-alerts", text="w0")["ts"]
        first, second = (_status(lambda n=n: client.chat_update(channel=CHANNEL, ts=ts, text=f"v{n}")) for n in (1, 2))
        with pytest.raises(SlackApiError) as caught:
            client.chat_update(channel=CHANNEL, ts=ts, text="v3")
        elsewhere = _status(lambda: client.chat_update(channel="#batch-alerts", ts=other, text="w1"))
        time.sleep(0.02)  # the post limit is its own: 100/s, not touched by the updates
        post_still_fine = _status(lambda: client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=ts))

    assert (first, second, elsewhere, post_still_fine) == (200, 200, 200, 200)
    assert caught.value.response.status_code == 429 and caught.value.response["error"] == "ratelimited"
    # The oldest of the minute's updates leaves the window in just under 60 s.
    assert 55 <= int(caught.value.response.headers["Retry-After"]) <= 60
    assert slack.channel_view(CHANNEL)[0].text == "v2"  # the refused update changed nothing
    assert [u["text"] for u in slack.updates] == ["v1", "v2", "w1"]


def test_the_update_window_slides() -> None:
    # A deterministic check of the window itself (a real minute is too long for a test).
    slack = SlackStandIn(update_rate_per_minute=1)
    with slack._lock:
        assert slack._update_rate_check("C1") is None
        retry_after = slack._update_rate_check("C1")
        assert retry_after is not None and 1 <= retry_after <= 60
        assert slack._update_rate_check("C2") is None
        slack._recent_updates["C1"][0] -= 60.0  # that update was a minute ago
        assert slack._update_rate_check("C1") is None


@pytest.mark.parametrize("bad", [0, -5])
def test_update_rate_must_be_at_least_one(bad: int) -> None:
    with pytest.raises(ValueError, match="update_rate_per_minute"):
        SlackStandIn(update_rate_per_minute=bad)


def test_calls_are_counted_per_method_whatever_the_answer() -> None:
    with SlackStandIn(rate_limit_per_channel=1.0) as slack:
        client = web(slack)
        ts = client.chat_postMessage(channel=CHANNEL, text="a")["ts"]
        refused = _status(lambda: client.chat_postMessage(channel=CHANNEL, text="b"))  # 429
        client.chat_update(channel=CHANNEL, ts=ts, text="a2")
        unknown = _status(lambda: client.chat_update(channel=CHANNEL, ts="1.000100", text="x"))  # message_not_found
        slack.script(Reply(500, "oops"))
        scripted = _status(lambda: client.chat_update(channel=CHANNEL, ts=ts, text="a3"))
        WebhookClient(slack.webhook_url).send(text="hook")
        WebhookClient(slack.webhook_url.replace("testsecret", "other")).send(text="gone")  # no_service
        raw_post(slack.response_url(CHANNEL, ts), json.dumps({"text": "r"}).encode(), "application/json")

    assert (refused, unknown, scripted) == (429, 200, 500)
    assert slack.calls_by_method() == {"chat.postMessage": 2, "chat.update": 3, "webhook": 2, "response_url": 1}
    assert sum(slack.calls_by_method().values()) == len(slack.requests)


def test_calls_by_method_is_a_snapshot(slack: SlackStandIn) -> None:
    counts = slack.calls_by_method()
    web(slack).chat_postMessage(channel=CHANNEL, text="a")
    assert counts == {} and slack.calls_by_method() == {"chat.postMessage": 1}


# -- Block Kit limits -------------------------------------------------------------------


def _button(text: str = "Open", url: str = "https://example.com") -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url}


def _field(text: str = "f") -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def test_valid_blocks_have_no_errors() -> None:
    blocks = [
        {"type": "header", "block_id": "h", "text": {"type": "plain_text", "text": "h" * 150}},
        {"type": "section", "block_id": "s", "text": _field("s" * 3000), "fields": [_field("f" * 2000)] * 10},
        {"type": "context", "elements": [_field()] * 10},
        {"type": "actions", "elements": [_button("b" * 75, "https://e.com/" + "u" * 2986)] * 25},
        {"type": "divider"},
    ]
    assert block_kit_errors(blocks) == []
    assert block_kit_errors([{"type": "divider"}] * 50) == []


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([{"type": "divider"}] * 51, "/blocks"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/blocks/0/text/text"),
        ([{"type": "header", "text": _field("mrkdwn is not allowed")}], "/blocks/0/text/type"),
        ([section("s" * 3001)], "/blocks/0/text/text"),
        ([{"type": "section", "fields": [_field()] * 11}], "/blocks/0/fields"),
        ([{"type": "section", "fields": [_field("f" * 2001)]}], "/blocks/0/fields/0/text"),
        ([{"type": "section"}], "/blocks/0"),
        ([{"type": "context", "elements": [_field()] * 11}], "/blocks/0/elements"),
        ([{"type": "actions", "elements": [_button()] * 26}], "/blocks/0/elements"),
        ([{"type": "actions", "elements": [_button("b" * 76)]}], "/blocks/0/elements/0/text/text"),
        ([{"type": "actions", "elements": [_button(url="https://e.com/" + "u" * 2987)]}], "/blocks/0/elements/0/url"),
        ([section("a", accessory=_button("b" * 76))], "/blocks/0/accessory/text/text"),
        ([section("a", block_id="x"), section("b", block_id="x")], "/blocks/1/block_id"),
        ([section("a", block_id="x" * 256)], "/blocks/0/block_id"),
        ([{"type": "section", "text": {"type": "markdown", "text": "a"}}], "/blocks/0/text/type"),
        ([section("")], "/blocks/0/text/text"),
        ([{"type": "sectoin", "text": _field()}], "/blocks/0/type"),
        ({"type": "divider"}, "/blocks"),
    ],
)
def test_block_limit_violations(blocks: Any, pointer: str) -> None:
    errors = block_kit_errors(blocks)

    assert len(errors) == 1, errors
    assert errors[0].endswith(f"[json-pointer:{pointer}]")


# -- threads, updates, ephemeral messages, response URLs ---------------------------------------------


def test_a_webhook_post_shows_in_its_channel(slack: SlackStandIn) -> None:
    WebhookClient(slack.webhook_url).send(text="hook")
    [shown] = slack.channel_view(CHANNEL)  # the webhook's channel: the first one
    assert (shown.text, shown.user, shown.replies) == ("hook", "webhook", ())


def test_replies_land_in_the_thread_and_a_broadcast_in_the_channel_too(slack: SlackStandIn) -> None:
    client = web(slack)
    parent = client.chat_postMessage(channel=CHANNEL, text="parent")["ts"]
    quiet = client.chat_postMessage(channel=CHANNEL, text="in thread", thread_ts=parent)
    loud = client.chat_postMessage(channel=CHANNEL, text="everyone", thread_ts=parent, reply_broadcast=True)
    # Slack threads a reply to a reply under the parent ("use its parent's ts instead").
    nested = client.chat_postMessage(channel=CHANNEL, text="nested", thread_ts=quiet["ts"])

    assert quiet["message"]["thread_ts"] == parent and "subtype" not in quiet["message"]
    assert loud["message"]["subtype"] == "thread_broadcast"
    top, broadcast = slack.channel_view(CHANNEL)
    assert top.text == "parent" and [r.text for r in top.replies] == ["in thread", "everyone", "nested"]
    assert (broadcast.ts, broadcast.text, broadcast.broadcast) == (loud["ts"], "everyone", True)
    assert nested["message"]["thread_ts"] == parent
    assert len(slack.messages) == 4  # replies are posts


def test_a_reply_to_an_unknown_message_is_thread_not_found(slack: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as caught:
        web(slack).chat_postMessage(channel=CHANNEL, text="x", thread_ts="1.000100")
    assert caught.value.response["error"] == "thread_not_found"
    assert slack.messages == [] and slack.channel_view(CHANNEL) == []


def test_chat_update_changes_the_message_and_keeps_blocks_left_out(slack: SlackStandIn) -> None:
    client = web(slack)
    ts = client.chat_postMessage(channel=CHANNEL, text="one", blocks=[section("*one*")])["ts"]

    answer = client.chat_update(channel=CHANNEL, ts=ts, text="two")
    assert (answer["ok"], answer["channel"], answer["ts"], answer["text"]) == (True, CHANNEL, ts, "two")
    [shown] = slack.channel_view(CHANNEL)
    assert (shown.text, shown.blocks, shown.edited) == ("two", [section("*one*")], True)  # kept, as Slack does

    client.chat_update(channel=CHANNEL, ts=ts, text="three", blocks=[])
    assert slack.channel_view(CHANNEL)[0].blocks is None  # an empty list removes them
    assert [u["text"] for u in slack.updates] == ["two", "three"] and len(slack.messages) == 1


@pytest.mark.parametrize(("ts", "error"), [("1.000100", "message_not_found"), (None, "cant_update_message")])
def test_chat_update_errors(slack: SlackStandIn, ts: str | None, error: str) -> None:
    ts = ts or slack.post_as("U0PERSON", CHANNEL, "mine")  # someone else's message
    with pytest.raises(SlackApiError) as caught:
        web(slack).chat_update(channel=CHANNEL, ts=ts, text="x")
    assert caught.value.response["error"] == error and slack.updates == []


def test_chat_post_ephemeral_shows_only_to_a_member(slack: SlackStandIn) -> None:
    client = web(slack)
    answer = client.chat_postEphemeral(channel=CHANNEL, user="U0TESTUSER", text="just you")
    with pytest.raises(SlackApiError) as caught:
        client.chat_postEphemeral(channel=CHANNEL, user="U0STRANGER", text="x")

    assert answer["ok"] and answer["message_ts"]
    assert caught.value.response["error"] == "user_not_in_channel"
    assert slack.ephemerals == [{"channel": CHANNEL, "user": "U0TESTUSER", "text": "just you", "blocks": None,
                                 "message_ts": answer["message_ts"]}]
    assert slack.channel_view(CHANNEL) == [] and slack.messages == []
    with pytest.raises(SlackApiError) as not_updatable:  # ephemeral messages cannot be updated
        client.chat_update(channel=CHANNEL, ts=answer["message_ts"], text="x")
    assert not_updatable.value.response["error"] == "message_not_found"


def respond(url: str, **payload: Any) -> tuple[int, str]:
    return raw_post(url, json.dumps(payload).encode(), "application/json")


def test_a_response_url_replaces_deletes_or_adds(slack: SlackStandIn) -> None:
    ts = web(slack).chat_postMessage(channel=CHANNEL, text="Job failed", blocks=[section("buttons")])["ts"]
    url = slack.response_url(CHANNEL, ts, user="U0TESTUSER")

    assert respond(url, text="Acknowledged by U0TESTUSER", replace_original=True) == (200, '{"ok": true}')
    [shown] = slack.channel_view(CHANNEL)
    assert (shown.ts, shown.text, shown.blocks, shown.edited) == (ts, "Acknowledged by U0TESTUSER", None, True)

    respond(url, text="only you see this")  # ephemeral: Slack's default for a response
    respond(url, text="everyone sees this", response_type="in_channel")
    assert [e["text"] for e in slack.ephemerals] == ["only you see this"]
    assert [m.text for m in slack.channel_view(CHANNEL)] == ["Acknowledged by U0TESTUSER", "everyone sees this"]

    respond(url, delete_original=True)
    assert [m.text for m in slack.channel_view(CHANNEL)] == ["everyone sees this"]


def test_a_response_url_is_good_for_five_uses(slack: SlackStandIn) -> None:
    ts = web(slack).chat_postMessage(channel=CHANNEL, text="x")["ts"]
    url = slack.response_url(CHANNEL, ts)
    assert [respond(url, text=f"{i}")[0] for i in range(6)] == [200] * 5 + [404]
    assert respond(url, text="x")[1] == '{"ok": false, "error": "expired_url"}'
    assert respond(slack.base_url + "actions/unknown", text="x")[0] == 404


# -- lifecycle and helpers ----------------------------------------------------------------


def _port_is_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return False
    return True


def test_server_stops_and_port_is_closed_after_the_with_block() -> None:
    with SlackStandIn() as slack:
        port = int(slack.base_url.rsplit(":", 1)[1].strip("/"))
        assert slack.base_url == f"http://127.0.0.1:{port}/"
        assert slack.api_url == f"http://127.0.0.1:{port}/api/"
        assert slack.webhook_url == f"http://127.0.0.1:{port}/services/TTEST/BTEST/testsecret"
        assert _port_is_open(port)
    assert not _port_is_open(port)
    assert not any(t.name == "slack-standin" for t in threading.enumerate())

    ports: list[int] = []

    def failing_block() -> None:
        with SlackStandIn() as failing:
            ports.append(int(failing.base_url.rsplit(":", 1)[1].strip("/")))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_block()
    assert not _port_is_open(ports[0])


def test_wait_for_messages(slack: SlackStandIn) -> None:
    timer = threading.Timer(0.1, lambda: WebhookClient(slack.webhook_url).send(text="later"))
    timer.start()
    try:
        assert slack.wait_for_messages(1, timeout=5) == [{"text": "later"}]
    finally:
        timer.join()
    with pytest.raises(TimeoutError, match="expected 2"):
        slack.wait_for_messages(2, timeout=0.1)


def test_no_log_lines_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with SlackStandIn() as slack:
        slack.script(Reply(drop=True))
        with pytest.raises(ConnectionResetError):
            web(slack).chat_postMessage(channel=CHANNEL, text="x")
        WebhookClient(slack.webhook_url).send(text="x")
        raw_post(slack.base_url + "elsewhere", b"", "text/plain")

    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


# -- usergroups.users.list (who may act, issue 13) ----------------------------------------------

GROUP = "S0ONCALL01"


@pytest.fixture
def groups() -> Iterator[SlackStandIn]:
    with SlackStandIn(usergroups={GROUP: ["U0ALICE001", "W0BOB00001"]}) as standin:
        yield standin


def test_usergroups_users_list_answers_the_members(groups: SlackStandIn) -> None:
    # slack-sdk sends it as a form-encoded POST with no channel: none is needed.
    answer = web(groups).usergroups_users_list(usergroup=GROUP)
    assert answer.data == {"ok": True, "users": ["U0ALICE001", "W0BOB00001"]}
    groups.set_usergroup(GROUP, ["U0CAROL001"])
    assert web(groups).usergroups_users_list(usergroup=GROUP)["users"] == ["U0CAROL001"]
    assert groups.calls_by_method() == {"usergroups.users.list": 2}
    assert groups.messages == []


def test_usergroups_users_list_as_a_get_with_a_query(groups: SlackStandIn) -> None:
    request = urllib.request.Request(groups.api_url + "usergroups.users.list?" + urlencode({"usergroup": GROUP}),
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read()) == {"ok": True, "users": ["U0ALICE001", "W0BOB00001"]}


@pytest.mark.parametrize(("kwargs", "token", "group", "error"), [
    ({}, TOKEN, "S0NOSUCH01", "no_such_subteam"),
    ({"usergroups_token_type_allowed": False}, TOKEN, GROUP, "not_allowed_token_type"),
    ({}, "xoxb-someone-else", GROUP, "invalid_auth"),
    ({}, None, GROUP, "not_authed"),
])
def test_usergroups_users_list_refuses_as_slack_does(kwargs: dict[str, Any], token: str | None, group: str,
                                                      error: str) -> None:
    with SlackStandIn(usergroups={GROUP: ["U0ALICE001"]}, **kwargs) as standin:
        with pytest.raises(SlackApiError) as raised:
            web(standin, token).usergroups_users_list(usergroup=group)
        assert raised.value.response.data == {"ok": False, "error": error}


def test_a_get_reaches_no_webhook_and_posts_nothing(groups: SlackStandIn) -> None:
    with pytest.raises(HTTPError) as raised:
        urllib.request.urlopen(groups.webhook_url + "?" + urlencode({"text": "hi"}), timeout=5)
    assert raised.value.code == 405
    assert groups.messages == []
