"""A hostile HTTP server on 127.0.0.1 for the delivery tests: standard library only, raw sockets.

Where tools/slack_standin.py answers like Slack, this one answers like what may stand between
a Lambda function and Slack: redirects, captive-portal pages, proxies' JSON, servers that drip
one byte every half second, answers of 60 MB. Each connection's request is read and recorded,
then answered by the next behaviour of the script (the last one repeats)::

    with HostileServer(redirect(302, "http://127.0.0.1:1/elsewhere")) as server:
        ...  # post to server.url
        assert len(server.requests) == 1
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

__all__ = ["HostileServer", "Seen", "answer", "drip", "redirect", "slack_ok", "stream"]


@dataclass(frozen=True)
class Seen:
    """A request as the server read it (header names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    received_at: float


class Out:
    """The writing side of one connection, for a behaviour."""

    def __init__(self, conn: socket.socket, server: HostileServer) -> None:
        self._conn = conn
        self._server = server

    def send(self, data: bytes) -> bool:
        """Send ``data``; False once the client has gone (or the server is stopping)."""
        if self._server.stopping.is_set():
            return False
        try:
            self._conn.sendall(data)
        except OSError:
            return False
        self._server.count_sent(len(data))
        return True

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False if the server is stopping meanwhile."""
        return not self._server.stopping.wait(seconds)


Behaviour = Callable[[Seen, Out], None]


def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} Hostile"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(status: int = 200, body: bytes | str | dict[str, object] = b"", content_type: str | None = None,
           headers: dict[str, str] | None = None) -> Behaviour:
    """A complete answer: a dict as JSON, a str as text/plain, bytes as they are."""
    if isinstance(body, dict):
        data, kind = json.dumps(body).encode(), "application/json; charset=utf-8"
    elif isinstance(body, str):
        data, kind = body.encode(), "text/plain; charset=utf-8"
    else:
        data, kind = body, None
    fields = [("Content-Length", str(len(data))), ("Connection", "close")]
    ctype = content_type or kind
    if ctype:
        fields.append(("Content-Type", ctype))
    fields += list((headers or {}).items())

    def behave(request: Seen, out: Out) -> None:
        out.send(_head(status, fields) + data)

    return behave


def slack_ok(request: Seen, out: Out) -> None:
    """What Slack answers a successful post: JSON from the Web API, ``ok`` from a webhook."""
    if request.target.startswith("/api/"):
        answer(body={"ok": True, "channel": "C0TESTCHAN", "ts": "1.000100"})(request, out)
    else:
        answer(body="ok")(request, out)


def redirect(status: int, location: str) -> Behaviour:
    """A redirect to ``location``."""
    return answer(status, body="moved", headers={"Location": location})


def drip(where: str, every: float = 0.5, count: int = 30) -> Behaviour:
    """A 200 ``ok`` answer (JSON for the Web API, text for a webhook) whose headers (``where="headers"``)
    or body (``"body"``) arrive one byte every ``every`` seconds, ``count`` bytes long: a
    client bounded only per socket read waits ``count * every`` seconds, then takes it."""

    def behave(request: Seen, out: Out) -> None:
        body = json.dumps({"ok": True, "channel": "C0TESTCHAN", "ts": "1.000100"}) if request.target.startswith(
            "/api/") else "ok"
        padded = body + " " * count if where == "body" else body
        start = b"HTTP/1.1 200 OK\r\n"
        slow = b"X-Drip: " + b"d" * count + b"\r\n" if where == "headers" else b""
        rest = (f"Content-Type: text/plain\r\nContent-Length: {len(padded)}\r\nConnection: close\r\n\r\n").encode()
        if where == "headers":
            if not out.send(start):
                return
            for byte in slow:
                if not (out.send(bytes([byte])) and out.pause(every)):
                    return
            out.send(rest + padded.encode())
        else:
            if not out.send(start + rest + body.encode()):
                return
            for byte in padded[len(body):].encode():
                if not (out.pause(every) and out.send(bytes([byte]))):
                    return

    return behave


def stream(total: int, *, declare_length: bool, chunk: int = 64 * 1024) -> Behaviour:
    """A 200 answer of ``total`` bytes sent as fast as the client reads, from one reused chunk
    (so the server itself allocates nothing per byte); with Content-Length or until close."""
    block = b"x" * chunk

    def behave(request: Seen, out: Out) -> None:
        fields = [("Content-Type", "text/plain"), ("Connection", "close")]
        if declare_length:
            fields.append(("Content-Length", str(total)))
        if not out.send(_head(200, fields)):
            return
        left = total
        while left > 0:
            piece = block if left >= chunk else block[:left]
            if not out.send(piece):
                return
            left -= len(piece)

    return behave


class HostileServer:
    """A scripted HTTP/1.1 server on 127.0.0.1 (a port of its own); one request per connection."""

    def __init__(self, *script: Behaviour, default: Behaviour = slack_ok) -> None:
        self._script = list(script)
        self._default = default
        self._lock = threading.Lock()
        self.requests: list[Seen] = []
        self.connections = 0  # accepted, whether a request could be read or not
        self.bytes_sent = 0
        self.stopping = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="hostile-accept", daemon=True)

    def script(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with ``behaviours`` (the last one repeats)."""
        with self._lock:
            self._script = list(behaviours)

    def count_sent(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    def __enter__(self) -> HostileServer:
        self._acceptor.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stopping.set()
        self._acceptor.join(timeout=2)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _next(self) -> Behaviour:
        with self._lock:
            if not self._script:
                return self._default
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), name="hostile-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            request = self._read(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            self._next()(request, Out(conn, self))
            with contextlib.suppress(OSError):  # the client has gone already
                conn.shutdown(socket.SHUT_WR)

    @staticmethod
    def _read(conn: socket.socket) -> Seen | None:
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return None
                data += piece
            head, _, body = data.partition(b"\r\n\r\n")
            first, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = first.split(" ", 2)
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            while len(body) < int(headers.get("content-length", "0")):
                piece = conn.recv(65536)
                if not piece:
                    break
                body += piece
        except (OSError, ValueError):
            return None
        return Seen(method=method, target=target, headers=headers, body=body, received_at=time.monotonic())
