"""A local stand-in for Slack: incoming webhooks and the Web API's chat.postMessage.

Tests and the demo replay must never reach slack.com, yet they should drive the
real slack_sdk clients over real HTTP so that Slack's failure modes (error
bodies, 429 with Retry-After, slow or reset connections, Block Kit limits) are
exercised end to end. Standard library only, so it runs anywhere the app does.

Usage::

    with SlackStandIn() as slack:
        WebhookClient(slack.webhook_url).send(text="hi")
        WebClient(token=slack.bot_token, base_url=slack.api_url).chat_postMessage(
            channel="C0TESTCHAN", text="hi"
        )
        assert [m["text"] for m in slack.wait_for_messages(2)] == ["hi", "hi"]
"""

from __future__ import annotations

import json
import math
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

__all__ = ["RecordedRequest", "Reply", "SlackStandIn", "block_kit_errors", "mrkdwn_texts"]

# Limits as documented by Slack (chat.postMessage and Block Kit reference).
MAX_TEXT_CHARS = 40_000
MAX_ATTACHMENTS = 100
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

# Slack rejects unknown block types outright, so a typo should fail here too.
KNOWN_BLOCK_TYPES = frozenset(
    {"actions", "context", "divider", "file", "header", "image", "input", "markdown",
     "rich_text", "section", "video"}
)
TEXT_OBJECT_TYPES = ("plain_text", "mrkdwn")


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
    object or the form fields; a body that cannot be parsed is kept as
    ``{"_raw": text}``. ``reply_status`` is 0 when the connection was dropped.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float
    reply_status: int


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
        if "block_id" in block:
            block_id = block["block_id"]
            if not isinstance(block_id, str) or not 0 < len(block_id) <= MAX_BLOCK_ID_CHARS:
                errors.append(
                    f"must be a string of 1 to {MAX_BLOCK_ID_CHARS} characters "
                    f"[json-pointer:{where}/block_id]"
                )
            elif block_id in seen_ids:
                errors.append(f"duplicate block_id {block_id!r} [json-pointer:{where}/block_id]")
            else:
                seen_ids.add(block_id)
        block_type = block.get("type")
        if block_type not in KNOWN_BLOCK_TYPES:
            errors.append(f"unknown block type {block_type!r} [json-pointer:{where}/type]")
        elif block_type == "header":
            errors += _text_errors(block.get("text"), f"{where}/text", MAX_HEADER_TEXT_CHARS, plain_only=True)
        elif block_type == "section":
            errors += _section_errors(block, where)
        elif block_type == "context":
            errors += _elements_errors(block, where, MAX_CONTEXT_ELEMENTS, _context_element_errors)
        elif block_type == "actions":
            errors += _elements_errors(block, where, MAX_ACTIONS_ELEMENTS, _action_element_errors)
    return errors


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


def _parse_body(content_type: str, raw: bytes) -> tuple[dict[str, Any], str | None]:
    """Return (fields, error code or None) for a JSON or form-encoded body."""
    text = raw.decode("utf-8", errors="replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(text, keep_blank_values=True)), None
    if content_type.startswith("multipart/"):
        return {"_raw": text}, "invalid_form_data"  # file uploads are out of scope
    if not text.strip():
        return {}, None
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"_raw": text}, "invalid_json"
    return (parsed, None) if isinstance(parsed, dict) else ({"_raw": text}, "invalid_json")


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

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass  # quiet: test and demo output must not be buried under access logs

    def _dispatch(self) -> None:
        self.server.standin._serve(self)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _dispatch


class SlackStandIn:
    """A Slack look-alike on 127.0.0.1 (free port) that records what it receives.

    Use as a context manager (or call start()/stop()). Serves the incoming
    webhook at ``webhook_path`` and the Web API's chat.postMessage under /api/,
    answering like Slack does unless replies were queued with script().
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        channels: Iterable[str] = ("C0TESTCHAN", "#batch-alerts"),
        webhook_path: str = "/services/TTEST/BTEST/testsecret",
        rate_limit_per_channel: float | None = None,
    ) -> None:
        if rate_limit_per_channel is not None and rate_limit_per_channel <= 0:
            raise ValueError("rate_limit_per_channel must be positive (or None to disable)")
        self.bot_token = bot_token
        self.channels = frozenset(channels)
        self.webhook_path = webhook_path if webhook_path.startswith("/") else "/" + webhook_path
        self.rate_limit_per_channel = rate_limit_per_channel
        self.base_url = self.api_url = self.webhook_url = ""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._messages: list[dict[str, Any]] = []
        self._rate_limited = 0
        self._last_accepted: dict[str, float] = {}
        self._ts = int(time.time())
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

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
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
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
        """Snapshot of the payloads that were accepted (answered ok), in order.

        Web API payloads have form-encoded ``blocks``/``attachments`` decoded and
        no ``token`` field, so they can be printed safely.
        """
        with self._lock:
            return list(self._messages)

    @property
    def rate_limited_count(self) -> int:
        """How many requests were answered 429 (scripted or by rate-limit mode)."""
        with self._lock:
            return self._rate_limited

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
        body, parse_error = _parse_body(headers.get("content-type", ""), raw)
        # Decide, record and count under one lock so the answer, the rate-limit
        # window and the snapshots stay consistent across concurrent requests.
        with self._changed:
            if self._script:
                reply = self._script.popleft()
                message = _message_of(body)[0] if _is_accepted(reply) else None
            else:
                reply, message = self._default_reply(handler.command, handler.path, headers, body, parse_error)
            status = 0 if reply.drop else reply.status
            if status == 429:
                self._rate_limited += 1
            # Recorded before answering: once a client has its answer, the record is visible.
            # With a delay, Slack has likewise posted the message before the client gives up.
            self._requests.append(
                RecordedRequest(handler.command, handler.path, headers, body, received_at, status)
            )
            if message is not None:
                self._messages.append(message)
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

    def _default_reply(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any],
        parse_error: str | None,
    ) -> tuple[Reply, dict[str, Any] | None]:
        route = path.split("?", 1)[0]
        if method != "POST":
            return Reply(405, "method_not_allowed"), None
        if route == self.webhook_path:
            return self._webhook(body, parse_error)
        if route.startswith("/services/"):
            return Reply(404, "no_service"), None
        if route.startswith("/api/"):
            if route != "/api/chat.postMessage":
                return _api_error("unknown_method"), None
            return self._post_message(headers, body, parse_error)
        return Reply(404, "not_found"), None

    def _webhook(self, body: dict[str, Any], parse_error: str | None) -> tuple[Reply, dict[str, Any] | None]:
        payload, payload_error = _message_of(body)
        if parse_error or payload_error:
            return Reply(400, "invalid_payload"), None
        text, blocks = payload.get("text"), payload.get("blocks")
        if text is not None and not isinstance(text, str):
            return Reply(400, "invalid_payload"), None
        if not text and not blocks and not payload.get("attachments"):
            return Reply(400, "invalid_payload"), None
        if text and len(text) > MAX_TEXT_CHARS:
            return Reply(400, "msg_too_long"), None
        if blocks is not None and block_kit_errors(blocks):
            return Reply(400, "invalid_blocks"), None
        if _too_many_attachments(payload):
            return Reply(400, "too_many_attachments"), None
        retry_after = self._rate_check("webhook:" + self.webhook_path)
        if retry_after is not None:
            return Reply(429, "rate_limited", {"Retry-After": str(retry_after)}), None
        return Reply(200, "ok"), payload

    def _post_message(
        self, headers: dict[str, str], body: dict[str, Any], parse_error: str | None
    ) -> tuple[Reply, dict[str, Any] | None]:
        if parse_error:
            return _api_error(parse_error), None
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else body.get("token")
        if not token:
            return _api_error("not_authed"), None
        if token != self.bot_token:
            return _api_error("invalid_auth"), None
        payload, payload_error = _message_of(body)
        if payload_error:
            return _api_error(payload_error), None
        channel = payload.get("channel")
        if not isinstance(channel, str) or not self._known_channel(channel):
            return _api_error("channel_not_found"), None
        text, blocks = payload.get("text"), payload.get("blocks")
        if not text and not blocks and not payload.get("attachments"):
            return _api_error("no_text"), None
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            return _api_error("msg_too_long"), None
        if blocks is not None:
            if not isinstance(blocks, list):
                return _api_error("invalid_blocks_format"), None
            errors = block_kit_errors(blocks)
            if errors:
                return _api_error("invalid_blocks", errors=errors), None
        if _too_many_attachments(payload):
            return _api_error("too_many_attachments"), None
        retry_after = self._rate_check("channel:" + channel.lstrip("#"))
        if retry_after is not None:
            return Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}), None
        self._ts += 1  # Slack's ts is unique and increasing per message
        ts = f"{self._ts}.000100"
        message = {"type": "message", "user": "U0STANDIN", "bot_id": "B0STANDIN", "ts": ts, "text": text or ""}
        message.update({k: payload[k] for k in ("blocks", "attachments", "thread_ts") if k in payload})
        return Reply(200, {"ok": True, "channel": channel, "ts": ts, "message": message}), payload

    def _known_channel(self, channel: str) -> bool:
        # Slack accepts a channel name with or without the leading "#".
        return channel.lstrip("#") in {c.lstrip("#") for c in self.channels}

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


def _message_of(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Return (message payload, error code or None) carried by a request body.

    Form posts carry JSON inside fields (a webhook's ``payload``, the API's
    ``blocks``/``attachments``); those are decoded. ``token`` is dropped so
    recorded messages never show a credential.
    """
    if set(body) == {"payload"} and isinstance(body["payload"], str):
        try:
            decoded = json.loads(body["payload"])
        except ValueError:
            return {}, "invalid_payload"
        return (decoded, None) if isinstance(decoded, dict) else ({}, "invalid_payload")
    message = {k: v for k, v in body.items() if k != "token"}
    for key, error in (("blocks", "invalid_blocks_format"), ("attachments", "invalid_attachments")):
        if isinstance(message.get(key), str):
            try:
                message[key] = json.loads(message[key])
            except ValueError:
                return message, error
    return message, None


def _too_many_attachments(payload: dict[str, Any]) -> bool:
    attachments = payload.get("attachments")
    return isinstance(attachments, list) and len(attachments) > MAX_ATTACHMENTS
