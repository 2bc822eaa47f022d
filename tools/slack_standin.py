"""A local stand-in for Slack: an incoming webhook, the Web API's chat methods, response URLs.

Tests and the demo replay must never reach slack.com, yet they should drive the real slack_sdk
clients over real HTTP, so that Slack's answers (error bodies, 429 with Retry-After, 5xx, slow
or reset connections, Block Kit limits) are exercised end to end. It keeps the channel as a
person would see it (:meth:`SlackStandIn.channel_view`): top-level messages in order, each with
its current text and blocks and its thread. Standard library only, so it runs anywhere the app
does. What it answers follows Slack's documentation of each method:

- the incoming webhook (``webhook_url``): ``ok``, or a plain-text error (``invalid_payload``,
  ``msg_too_long``, ``invalid_blocks``, ``no_service`` for an unknown webhook path);
- ``chat.postMessage``: a message; with ``thread_ts`` a reply in that message's thread
  (``thread_not_found`` for an unknown parent), shown in the channel too with ``reply_broadcast``;
- ``chat.update``: the message's new text, and new blocks if any were sent (blocks left out are
  kept, an empty list removes them); ``message_not_found`` for an unknown ``ts``,
  ``cant_update_message`` for a message someone else posted;
- ``chat.postEphemeral``: a message only ``user`` sees (``user_not_in_channel``), answered with
  its ``message_ts``; it is in :attr:`SlackStandIn.ephemerals`, never in the channel;
- ``usergroups.users.list`` (a form-encoded POST, as slack-sdk sends it, a JSON one, or a GET with
  a query): the ``users`` of
  a user group given as ``usergroups`` (:meth:`SlackStandIn.set_usergroup` changes one), or
  ``no_such_subteam`` for another ID; ``not_allowed_token_type`` when made with
  ``usergroups_token_type_allowed=False``. It needs no channel;
- response URLs (:meth:`SlackStandIn.response_url`, what an interaction payload carries): a
  JSON post that replaces (``replace_original``) or deletes (``delete_original``) the message,
  or adds one, ephemeral (the default) or ``in_channel``; usable 5 times in 30 minutes.

Every Web API method checks the bearer token (``not_authed``, ``invalid_auth``) and the channel
(``channel_not_found``). Slack's rate limits, when asked for, answer 429 with Retry-After:
``rate_limit_per_channel`` (posts per second per channel: every ``chat.postMessage``, thread
replies and broadcasts included, and each webhook's posts) and ``update_rate_per_minute``
(``chat.update`` per channel in any 60 s). :meth:`SlackStandIn.calls_by_method` counts the
requests per method, whatever their answer. :meth:`SlackStandIn.script` queues answers that
replace all of this, one request each.

Usage::

    with SlackStandIn() as slack:
        WebhookClient(slack.webhook_url).send(text="hi")
        WebClient(token=slack.bot_token, base_url=slack.api_url).chat_postMessage(
            channel="C0TESTCHAN", text="hi"
        )
        assert [m["text"] for m in slack.wait_for_messages(2)] == ["hi", "hi"]
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["RecordedRequest", "Reply", "Shown", "SlackStandIn", "block_kit_errors", "mrkdwn_texts"]

# Limits as documented by Slack (chat.postMessage and Block Kit reference).
MAX_TEXT_CHARS = 40_000
MAX_BLOCKS = 50
MAX_BLOCK_ID_CHARS = 255
MAX_HEADER_TEXT_CHARS = 150
MAX_SECTION_TEXT_CHARS = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT_CHARS = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT_CHARS = 75
MAX_URL_CHARS = 3000
# A response URL: "up to 5 times within 30 minutes", says Slack.
RESPONSE_URL_USES = 5
RESPONSE_URL_SECONDS = 30 * 60
# chat.update is "Tier 3": about 50 per minute, counted here per channel over a sliding minute.
UPDATE_WINDOW_SECONDS = 60.0

# Slack rejects unknown block types outright, so a typo should fail here too.
KNOWN_BLOCK_TYPES = frozenset(
    {"actions", "context", "divider", "file", "header", "image", "input", "markdown",
     "rich_text", "section", "video"}
)
TEXT_OBJECT_TYPES = ("plain_text", "mrkdwn")
BOT_USER = "U0STANDIN"  # who the bot token posts as
MEMBER = "U0TESTUSER"  # a person in every channel (ephemeral messages, response URLs)


@dataclass(frozen=True)
class Reply:
    """One scripted answer, used instead of the default behaviour for one request.

    ``body``: a dict is sent as JSON, a str as text/plain (webhooks answer plain
    text such as "ok", "no_service", "invalid_token"), None as an empty body.
    ``delay`` sleeps before answering (to provoke client read timeouts); ``drop``
    resets the connection without any response.
    """

    status: int = 200
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the stand-in saw it.

    ``headers`` names are lower-cased: HTTP names are case-insensitive and urllib
    (used by slack_sdk) sends e.g. "Content-type". ``body`` is the parsed JSON
    object; a body that cannot be parsed is kept as ``{"_raw": text}``.
    ``reply_status`` is 0 when the connection was dropped.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float
    reply_status: int


@dataclass(frozen=True)
class Shown:
    """A message as a person sees it in the channel: its current text and blocks (``None``:
    none), whether it was edited, and its thread's replies (a reply broadcast to the channel
    shows there too, with ``broadcast`` set and no replies of its own)."""

    ts: str
    text: str
    blocks: list[Any] | None
    user: str
    edited: bool = False
    broadcast: bool = False
    replies: tuple[Shown, ...] = ()


@dataclass
class _Message:
    channel: str
    ts: str
    text: str
    blocks: list[Any] | None
    user: str
    thread_ts: str | None = None
    broadcast: bool = False
    edited: bool = False
    deleted: bool = False
    replies: list[str] = field(default_factory=list)


@dataclass
class _ResponseUrl:
    channel: str
    ts: str
    user: str
    created: float
    uses: int = 0


def mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    """Every string Slack parses as mrkdwn in a message payload, the ``text`` fallback first."""
    found = [payload["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload["blocks"])
    return found


def block_kit_errors(blocks: Any) -> list[str]:
    """Return what Slack would reject in ``blocks``; an empty list means acceptable.

    Messages imitate Slack's ``invalid_blocks`` details, e.g.
    "must be less than 151 characters [json-pointer:/blocks/0/text/text]".
    Only the limits a notifier can plausibly hit are checked, not all of Block Kit.
    """
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"must provide no more than {MAX_BLOCKS} items [json-pointer:/blocks]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict):
            errors.append(f"must be an object [json-pointer:{where}]")
            continue
        errors += _block_id_errors(block, where, seen_ids) + _block_errors(block, where)
    return errors


def _block_id_errors(block: dict[str, Any], where: str, seen_ids: set[str]) -> list[str]:
    if "block_id" not in block:
        return []
    block_id = block["block_id"]
    if not isinstance(block_id, str) or not 0 < len(block_id) <= MAX_BLOCK_ID_CHARS:
        return [f"must be a string of 1 to {MAX_BLOCK_ID_CHARS} characters [json-pointer:{where}/block_id]"]
    if block_id in seen_ids:
        return [f"duplicate block_id {block_id!r} [json-pointer:{where}/block_id]"]
    seen_ids.add(block_id)
    return []


def _block_errors(block: dict[str, Any], where: str) -> list[str]:
    block_type = block.get("type")
    if block_type not in KNOWN_BLOCK_TYPES:
        return [f"unknown block type {block_type!r} [json-pointer:{where}/type]"]
    if block_type == "header":
        return _text_errors(block.get("text"), f"{where}/text", MAX_HEADER_TEXT_CHARS, plain_only=True)
    if block_type == "section":
        return _section_errors(block, where)
    if block_type == "context":
        return _elements_errors(block, where, MAX_CONTEXT_ELEMENTS, _context_element_errors)
    if block_type == "actions":
        return _elements_errors(block, where, MAX_ACTIONS_ELEMENTS, _action_element_errors)
    return []


def _text_errors(obj: Any, where: str, max_chars: int, *, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict):
        return [f"must be a text object [json-pointer:{where}]"]
    allowed = ("plain_text",) if plain_only else TEXT_OBJECT_TYPES
    errors: list[str] = []
    if obj.get("type") not in allowed:
        errors.append(f"must be one of {', '.join(allowed)} [json-pointer:{where}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"must be more than 0 characters [json-pointer:{where}/text]")
    elif len(text) > max_chars:
        errors.append(f"must be less than {max_chars + 1} characters [json-pointer:{where}/text]")
    return errors


def _section_errors(block: dict[str, Any], where: str) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        return [f"must provide text or fields [json-pointer:{where}]"]
    errors: list[str] = []
    if text is not None:
        errors += _text_errors(text, f"{where}/text", MAX_SECTION_TEXT_CHARS)
    if fields is not None:
        if not isinstance(fields, list) or not fields:
            errors.append(f"must be a non-empty array [json-pointer:{where}/fields]")
        else:
            if len(fields) > MAX_SECTION_FIELDS:
                errors.append(
                    f"must provide no more than {MAX_SECTION_FIELDS} items [json-pointer:{where}/fields]"
                )
            for j, item in enumerate(fields):
                errors += _text_errors(item, f"{where}/fields/{j}", MAX_FIELD_TEXT_CHARS)
    accessory = block.get("accessory")
    if isinstance(accessory, dict) and accessory.get("type") == "button":
        errors += _button_errors(accessory, f"{where}/accessory")
    return errors


def _elements_errors(
    block: dict[str, Any], where: str, max_items: int, check: Callable[[Any, str], list[str]]
) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [f"must be a non-empty array [json-pointer:{where}/elements]"]
    errors: list[str] = []
    if len(elements) > max_items:
        errors.append(f"must provide no more than {max_items} items [json-pointer:{where}/elements]")
    for j, element in enumerate(elements):
        errors += check(element, f"{where}/elements/{j}")
    return errors


def _context_element_errors(element: Any, where: str) -> list[str]:
    if isinstance(element, dict) and element.get("type") == "image":
        return []
    # Context text has no documented own cap; the section text limit is the safe bound.
    return _text_errors(element, where, MAX_SECTION_TEXT_CHARS)


def _action_element_errors(element: Any, where: str) -> list[str]:
    if not isinstance(element, dict):
        return [f"must be an object [json-pointer:{where}]"]
    return _button_errors(element, where) if element.get("type") == "button" else []


def _button_errors(button: dict[str, Any], where: str) -> list[str]:
    errors = _text_errors(button.get("text"), f"{where}/text", MAX_BUTTON_TEXT_CHARS, plain_only=True)
    url = button.get("url")
    if url is not None and (not isinstance(url, str) or len(url) > MAX_URL_CHARS):
        errors.append(f"must be less than {MAX_URL_CHARS + 1} characters [json-pointer:{where}/url]")
    return errors


def _api_error(error: str, **extra: Any) -> Reply:
    # The Web API reports failures in the JSON body with HTTP 200, as Slack does.
    return Reply(200, {"ok": False, "error": error, **extra})


def _is_accepted(reply: Reply) -> bool:
    """Whether a (scripted) reply tells the client its message was posted."""
    if reply.drop or not 200 <= reply.status < 300:
        return False
    if isinstance(reply.body, dict):
        return reply.body.get("ok", True) is not False
    return reply.body in (None, "", "ok")


def _parse_body(raw: bytes) -> dict[str, Any] | None:
    """The JSON object a request carries (slack_sdk sends JSON); None when it is not one."""
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _content_error(payload: dict[str, Any]) -> tuple[str, list[str]] | None:
    """Slack's refusal of a message's content (error code, details), or None."""
    text, blocks = payload.get("text"), payload.get("blocks")
    if text is not None and not isinstance(text, str):
        return "invalid_arguments", []
    if not text and not blocks:
        return "no_text", []
    if text and len(text) > MAX_TEXT_CHARS:
        return "msg_too_long", []
    errors = block_kit_errors(blocks) if blocks is not None else []
    return ("invalid_blocks", errors) if errors else None


def _channel_key(channel: str) -> str:
    # Slack accepts a channel name with or without the leading "#".
    return channel.lstrip("#")


class _Server(ThreadingHTTPServer):
    standin: SlackStandIn

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can
        # stall in sandboxes; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or reset leave broken sockets behind: expected, not worth printing.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0 (the default) closes after each answer, so no idle keep-alive
    # connection can keep a handler thread (which stop() joins) alive; the timeout
    # bounds clients that connect and never send.
    timeout = 10

    def setup(self) -> None:
        super().setup()
        self.server.standin._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.standin._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # the base class's signature
        pass  # quiet: test and demo output must not be buried under access logs

    def do_POST(self) -> None:  # Slack takes every method as a POST; reads as a GET too; others get 501
        self.server.standin._serve(self)

    def do_GET(self) -> None:  # Slack documents reads (usergroups.users.list) as GET with a query
        self.server.standin._serve(self)


Answer = tuple[Reply, dict[str, Any] | None]  # the reply, and the payload it posted (for messages)


class SlackStandIn:
    """A Slack look-alike on 127.0.0.1 (free port) that records what it receives.

    Use as a context manager (or call start()/stop()). Serves the incoming webhook at
    ``webhook_path`` (posting to ``webhook_channel``, default the first of ``channels``) and the
    Web API under /api/, answering like Slack does unless replies were queued with script().
    ``members`` are the people in every channel.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        channels: Iterable[str] = ("C0TESTCHAN", "#batch-alerts"),
        webhook_path: str = "/services/TTEST/BTEST/testsecret",
        webhook_channel: str | None = None,
        members: Iterable[str] = (MEMBER,),
        rate_limit_per_channel: float | None = None,
        update_rate_per_minute: int | None = None,
        channel_ids: Mapping[str, str] | None = None,
        usergroups: Mapping[str, Iterable[str]] | None = None,
        usergroups_token_type_allowed: bool = True,
    ) -> None:
        """``channel_ids`` maps channel names (``#alerts``) to IDs: a post to a name is answered with the
        ID and filed under it, and chat.update refuses the name (``channel_not_found``), as Slack does.
        Without it, a name is a channel of its own (and answered as given).

        ``usergroups`` maps user group IDs (``S...``) to their members' user IDs, for
        ``usergroups.users.list``; ``usergroups_token_type_allowed=False`` makes that method answer
        ``not_allowed_token_type``, as Slack does for a token it does not take."""
        if rate_limit_per_channel is not None and rate_limit_per_channel <= 0:
            raise ValueError("rate_limit_per_channel must be positive (or None to disable)")
        if update_rate_per_minute is not None and update_rate_per_minute < 1:
            raise ValueError("update_rate_per_minute must be at least 1 (or None to disable)")
        self.bot_token = bot_token
        listed = tuple(channels)
        self.channel_ids = {_channel_key(name): channel for name, channel in (channel_ids or {}).items()}
        self.channels = frozenset((*listed, *self.channel_ids.values(), *(channel_ids or {})))
        self.webhook_path = webhook_path if webhook_path.startswith("/") else "/" + webhook_path
        self.webhook_channel = webhook_channel or (listed[0] if listed else "C0WEBHOOK")
        self.members = frozenset(members)
        self.rate_limit_per_channel = rate_limit_per_channel
        self.update_rate_per_minute = update_rate_per_minute
        self.usergroups_token_type_allowed = usergroups_token_type_allowed
        self._usergroups = {group: tuple(users) for group, users in (usergroups or {}).items()}
        self.base_url = self.api_url = self.webhook_url = ""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._messages: list[dict[str, Any]] = []
        self._updates: list[dict[str, Any]] = []
        self._ephemerals: list[dict[str, Any]] = []
        self._store: dict[tuple[str, str], _Message] = {}
        self._timeline: dict[str, list[str]] = {}  # channel -> ts shown at the top level, in order
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._rate_limited = 0
        self._last_accepted: dict[str, float] = {}
        self._recent_updates: dict[str, deque[float]] = {}  # channel -> when its accepted updates were
        self._calls: dict[str, int] = {}
        self._ts = int(time.time())
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "chat.postMessage": self._post_message, "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral}
        # Methods that name no channel and post nothing: no channel or content check.
        self._reads: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "usergroups.users.list": self._usergroup_users}

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> SlackStandIn:
        """Bind a free loopback port and serve in a background thread."""
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a SlackStandIn can be started only once")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        port = server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/"
        self.api_url = f"{self.base_url}api/"
        self.webhook_url = f"http://127.0.0.1:{port}{self.webhook_path}"
        self._server = server
        # A short poll interval keeps stop() fast.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the port and join all threads. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a Reply.delay
        try:
            server.shutdown()
            # Unblock handlers still reading from a client, so joining them is quick.
            with self._lock:
                open_connections = list(self._connections)
            for conn in open_connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            server.server_close()  # closes the listening socket and joins handler threads
        finally:
            thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test-facing API -----------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies used, in order, for the next requests before the default behaviour."""
        with self._lock:
            self._script.extend(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Snapshot of the payloads posted (webhook and chat.postMessage, replies included) that
        were answered ok, in order, as they were sent."""
        with self._lock:
            return list(self._messages)

    @property
    def updates(self) -> list[dict[str, Any]]:
        """Snapshot of the chat.update payloads that were answered ok, in order."""
        with self._lock:
            return list(self._updates)

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """Snapshot of the ephemeral messages shown (chat.postEphemeral, response URLs): each with
        its ``channel``, ``user``, ``text``, ``blocks`` (or None) and ``message_ts``."""
        with self._lock:
            return [dict(e) for e in self._ephemerals]

    @property
    def rate_limited_count(self) -> int:
        """How many requests were answered 429 (scripted or by rate-limit mode)."""
        with self._lock:
            return self._rate_limited

    def calls_by_method(self) -> dict[str, int]:
        """How many requests each method received, whatever the answer (429s, errors and scripted
        replies included): Web API methods by name (``chat.postMessage``, ``chat.update``, ...),
        ``webhook`` for incoming webhooks (any path under /services/), ``response_url`` for
        response URLs."""
        with self._lock:
            return dict(self._calls)

    def channel_view(self, channel: str) -> list[Shown]:
        """The channel as a person reads it: top-level messages in order (deleted ones gone),
        each with its current text and blocks and its thread's replies."""
        channel = self.channel_ids.get(_channel_key(channel), channel)
        with self._lock:
            return [self._shown(m) for m in (self._store[(_channel_key(channel), ts)]
                                             for ts in self._timeline.get(_channel_key(channel), []))
                    if not m.deleted]

    def post_as(self, user: str, channel: str, text: str) -> str:
        """Add a message a person posted (one the bot cannot update); return its ts."""
        with self._lock:
            return self._add(channel, text, None, user).ts

    def set_usergroup(self, group: str, users: Iterable[str]) -> None:
        """Make user group ``group`` (``S...``) hold ``users`` from now on (an empty list keeps the group)."""
        with self._lock:
            self._usergroups[group] = tuple(users)

    def delete(self, channel: str, ts: str) -> None:
        """Delete message ``ts`` as a person would: an update or a reply to it then gets
        ``message_not_found`` / ``thread_not_found``, and the channel no longer shows it."""
        with self._lock:
            self._store[(_channel_key(channel), ts)].deleted = True

    def response_url(self, channel: str, ts: str, *, user: str = MEMBER) -> str:
        """The response URL Slack would put in the payload of ``user``'s click on message ``ts``."""
        token = secrets.token_hex(8)
        with self._lock:
            self._response_urls[token] = _ResponseUrl(_channel_key(channel), ts, user, time.monotonic())
        return f"{self.base_url}actions/{token}"

    def wait_for_messages(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` messages were accepted and return all of them.

        Raises TimeoutError (listing what was received) if that takes longer than ``timeout``.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._messages) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = ", ".join(f"{r.method} {r.path} -> {r.reply_status}" for r in self._requests)
                    raise TimeoutError(
                        f"expected {n} accepted Slack message(s) within {timeout}s, "
                        f"got {len(self._messages)}; requests: [{seen}]"
                    )
                self._changed.wait(remaining)
            return list(self._messages)

    # -- serving (handler threads) -------------------------------------------

    def _read_arguments(self, route: str, headers: dict[str, str], raw: bytes, query: str) -> dict[str, Any] | None:
        """A read method's arguments: its query and form body (slack-sdk sends usergroups.users.list
        form-encoded), the last of a name given twice; None for any other request (JSON only)."""
        if route.removeprefix("/api/") not in self._reads:
            return None
        arguments = dict(urllib.parse.parse_qsl(query))
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            arguments.update(urllib.parse.parse_qsl(raw.decode("utf-8", errors="replace")))
            return arguments
        body = _parse_body(raw)
        return None if body is None else {**arguments, **body}

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _serve(self, handler: _Handler) -> None:
        received_at = time.monotonic()
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        route, _, query = handler.path.partition("?")
        parsed = self._read_arguments(route, headers, raw, query)
        if parsed is None:
            parsed = _parse_body(raw)
        body = parsed if parsed is not None else {"_raw": raw.decode("utf-8", errors="replace")}
        # Decide, record and count under one lock so the answer, the rate-limit
        # window and the snapshots stay consistent across concurrent requests.
        with self._changed:
            method = "webhook" if route == self.webhook_path else _method_name(route)
            self._calls[method] = self._calls.get(method, 0) + 1
            if self._script:
                reply = self._script.popleft()
                posting = route == self.webhook_path or route == "/api/chat.postMessage"
                posted = body if posting and _is_accepted(reply) else None
            elif handler.command == "GET" and not route.startswith("/api/"):
                reply, posted = Reply(405, "method_not_allowed"), None  # webhooks and response URLs: POST only
            else:
                reply, posted = self._default_reply(route, headers, parsed)
            status = 0 if reply.drop else reply.status
            if status == 429:
                self._rate_limited += 1
            # Recorded before answering: once a client has its answer, the record is visible.
            # With a delay, Slack has likewise posted the message before the client gives up.
            self._requests.append(
                RecordedRequest(handler.command, handler.path, headers, body, received_at, status)
            )
            if posted is not None:
                self._messages.append(posted)
                self._changed.notify_all()
        self._answer(handler, reply)

    def _answer(self, handler: _Handler, reply: Reply) -> None:
        if reply.delay > 0 and self._stopping.wait(reply.delay):
            return  # shutting down: abandon the reply rather than hold up stop()
        if reply.drop:
            # SO_LINGER 0 makes close() send a RST: the client sees "connection reset".
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()  # the fd really closes when finish() closes rfile
            handler.close_connection = True
            return
        if isinstance(reply.body, dict):
            data, content_type = json.dumps(reply.body).encode(), "application/json; charset=utf-8"
        else:
            data, content_type = (reply.body or "").encode(), "text/plain; charset=utf-8"
        custom = {name.lower() for name in reply.headers}
        try:
            handler.send_response(reply.status)
            if "content-type" not in custom and reply.body is not None:
                handler.send_header("Content-Type", content_type)
            if "content-length" not in custom:
                handler.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client gave up (e.g. timed out on a delayed reply); nobody to tell

    # -- Slack's behaviour (lock held) ----------------------------------------

    def _default_reply(self, route: str, headers: dict[str, str], body: dict[str, Any] | None) -> Answer:
        if route == self.webhook_path:
            return self._webhook(body)
        if route.startswith("/services/"):
            return Reply(404, "no_service"), None
        if route.startswith("/actions/"):
            return self._respond(route.removeprefix("/actions/"), body), None
        if not route.startswith("/api/"):
            return Reply(404, "not_found"), None
        return self._api_reply(route.removeprefix("/api/"), headers, body)

    def _api_reply(self, name: str, headers: dict[str, str], body: dict[str, Any] | None) -> Answer:
        read, method = self._reads.get(name), self._methods.get(name)
        if read is None and method is None:
            return _api_error("unknown_method"), None
        refusal = self._auth_error(headers)
        if refusal is not None:
            return _api_error(refusal), None
        if body is None:
            return _api_error("invalid_json"), None
        if read is not None:
            return read(body)
        assert method is not None
        channel = body.get("channel")
        if not isinstance(channel, str) or _channel_key(channel) not in {_channel_key(c) for c in self.channels}:
            return _api_error("channel_not_found"), None
        refused = _content_error(body)
        if refused is not None:
            code, errors = refused
            return _api_error(code, **({"errors": errors} if errors else {})), None
        return method(body)

    def _auth_error(self, headers: dict[str, str]) -> str | None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else ""
        if not token:
            return "not_authed"
        return "invalid_auth" if token != self.bot_token else None

    def _webhook(self, body: dict[str, Any] | None) -> Answer:
        refused = _content_error(body) if body is not None else ("invalid_payload", [])
        if refused is not None:
            code = refused[0] if refused[0] in ("msg_too_long", "invalid_blocks") else "invalid_payload"
            return Reply(400, code), None
        assert body is not None
        retry_after = self._rate_check("webhook:" + self.webhook_path)
        if retry_after is not None:
            return Reply(429, "rate_limited", {"Retry-After": str(retry_after)}), None
        self._add(self.webhook_channel, body.get("text") or "", body.get("blocks"), "webhook")
        return Reply(200, "ok"), body

    def _post_message(self, body: dict[str, Any]) -> Answer:
        channel, thread_ts = self.channel_ids.get(_channel_key(body["channel"]), body["channel"]), body.get("thread_ts")
        parent = None
        if thread_ts is not None:
            parent = self._store.get((_channel_key(channel), str(thread_ts)))
            if parent is None or parent.deleted:
                return _api_error("thread_not_found"), None
            if parent.thread_ts is not None:  # a reply's ts: Slack threads it under the parent
                parent = self._store[(parent.channel, parent.thread_ts)]
        retry_after = self._rate_check("channel:" + _channel_key(channel))
        if retry_after is not None:
            return Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}), None
        broadcast = parent is not None and body.get("reply_broadcast") is True
        posted = self._add(channel, body.get("text") or "", body.get("blocks"), BOT_USER, parent, broadcast)
        return Reply(200, {"ok": True, "channel": channel, "ts": posted.ts, "message": self._echo(posted)}), body

    def _update(self, body: dict[str, Any]) -> Answer:
        channel, ts = body["channel"], body.get("ts")
        if _channel_key(channel) in self.channel_ids:
            return _api_error("channel_not_found"), None  # Slack updates by channel ID only
        message = self._store.get((_channel_key(channel), str(ts)))
        if message is None or message.deleted:
            return _api_error("message_not_found"), None
        if message.user != BOT_USER:
            return _api_error("cant_update_message"), None
        retry_after = self._update_rate_check(message.channel)
        if retry_after is not None:
            return Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}), None
        message.text = body.get("text") or ""
        if "blocks" in body:  # left out: the old blocks stay; an empty list removes them
            message.blocks = body["blocks"] or None
        message.edited = True
        self._updates.append(body)
        return Reply(200, {"ok": True, "channel": channel, "ts": message.ts, "text": message.text,
                           "message": self._echo(message)}), None

    def _post_ephemeral(self, body: dict[str, Any]) -> Answer:
        user = body.get("user")
        if user not in self.members:
            return _api_error("user_not_in_channel"), None
        ts = self._show_ephemeral(_channel_key(body["channel"]), str(user), body)
        return Reply(200, {"ok": True, "message_ts": ts}), None

    def _usergroup_users(self, body: dict[str, Any]) -> Answer:
        if not self.usergroups_token_type_allowed:
            return _api_error("not_allowed_token_type"), None
        group = body.get("usergroup")
        if not isinstance(group, str) or not group:
            return _api_error("invalid_arguments"), None
        if group not in self._usergroups:
            return _api_error("no_such_subteam"), None
        return Reply(200, {"ok": True, "users": list(self._usergroups[group])}), None

    def _respond(self, token: str, body: dict[str, Any] | None) -> Reply:
        url = self._response_urls.get(token)
        if url is None or url.uses >= RESPONSE_URL_USES or time.monotonic() - url.created > RESPONSE_URL_SECONDS:
            return Reply(404, {"ok": False, "error": "expired_url"})
        if body is None:
            return Reply(400, {"ok": False, "error": "invalid_payload"})
        url.uses += 1
        original = self._store.get((url.channel, url.ts))
        if body.get("delete_original") is True:
            if original is not None:
                original.deleted = True
            return Reply(200, {"ok": True})
        refused = _content_error(body)
        if refused is not None:
            return Reply(400, {"ok": False, "error": refused[0]})
        if body.get("replace_original") is True:
            if original is None or original.deleted:
                return Reply(404, {"ok": False, "error": "message_not_found"})
            original.text, original.blocks, original.edited = body.get("text") or "", body.get("blocks"), True
        elif body.get("response_type") == "in_channel":
            self._add(url.channel, body.get("text") or "", body.get("blocks"), BOT_USER)
        else:  # ephemeral, Slack's default for a response
            self._show_ephemeral(url.channel, url.user, body)
        return Reply(200, {"ok": True})

    def _add(self, channel: str, text: str, blocks: list[Any] | None, user: str,
             parent: _Message | None = None, broadcast: bool = False) -> _Message:
        message = _Message(_channel_key(channel), self._next_ts(), text, blocks, user,
                           parent.ts if parent else None, broadcast)
        self._store[(message.channel, message.ts)] = message
        if parent is not None:
            parent.replies.append(message.ts)
        if parent is None or broadcast:
            self._timeline.setdefault(message.channel, []).append(message.ts)
        return message

    def _show_ephemeral(self, channel: str, user: str, body: dict[str, Any]) -> str:
        ts = self._next_ts()
        self._ephemerals.append({"channel": channel, "user": user, "text": body.get("text") or "",
                                 "blocks": body.get("blocks"), "message_ts": ts})
        return ts

    def _next_ts(self) -> str:
        self._ts += 1  # Slack's ts is unique and increasing per message
        return f"{self._ts}.000100"

    def _echo(self, message: _Message) -> dict[str, Any]:
        echo: dict[str, Any] = {"type": "message", "user": message.user, "bot_id": "B0STANDIN", "ts": message.ts,
                                "text": message.text}
        if message.blocks is not None:
            echo["blocks"] = message.blocks
        if message.thread_ts is not None:
            echo["thread_ts"] = message.thread_ts
        if message.broadcast:
            echo["subtype"] = "thread_broadcast"
        return echo

    def _shown(self, message: _Message) -> Shown:
        thread = [self._store[(message.channel, ts)] for ts in message.replies] if message.thread_ts is None else []
        return Shown(message.ts, message.text, message.blocks, message.user, message.edited, message.broadcast,
                     tuple(self._shown(reply) for reply in thread if not reply.deleted))

    def _rate_check(self, key: str) -> int | None:
        """Return Retry-After seconds if ``key`` is over the rate, else count this post. Lock held."""
        if self.rate_limit_per_channel is None:
            return None
        now, interval = time.monotonic(), 1.0 / self.rate_limit_per_channel
        last = self._last_accepted.get(key)
        if last is not None and now - last < interval:
            return max(1, math.ceil(interval - (now - last)))
        self._last_accepted[key] = now
        return None

    def _update_rate_check(self, channel: str) -> int | None:
        """Return Retry-After seconds if ``channel`` had its ``update_rate_per_minute`` updates in the
        last 60 s, else count this one. Lock held."""
        if self.update_rate_per_minute is None:
            return None
        now = time.monotonic()
        recent = self._recent_updates.setdefault(channel, deque())
        while recent and now - recent[0] >= UPDATE_WINDOW_SECONDS:
            recent.popleft()
        if len(recent) >= self.update_rate_per_minute:
            return max(1, math.ceil(UPDATE_WINDOW_SECONDS - (now - recent[0])))
        recent.append(now)
        return None


def _method_name(route: str) -> str:
    """What :meth:`SlackStandIn.calls_by_method` counts a request under."""
    if route.startswith("/api/"):
        return route.removeprefix("/api/")
    if route.startswith("/services/"):
        return "webhook"
    if route.startswith("/actions/"):
        return "response_url"
    return route
