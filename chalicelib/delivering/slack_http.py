"""A small bounded HTTP transport for the Slack clients (http.client, no urllib opener).

urllib's ``urlopen`` follows redirects (keeping the ``Authorization`` header on the way to
another host), applies its timeout to each socket read only (a server dripping a byte at a
time holds it for ever) and reads a whole answer into memory. This transport:

- never follows a redirect: a 3xx raises :class:`RedirectRefused`, naming only the target's host;
- bounds each request as a whole (DNS aside: connect, TLS, send, headers, body) by a deadline:
  a watchdog shuts the socket down when it passes, and no socket read waits longer than what is
  left; the deadline is the request timeout or what is left of the delivery budget, if less;
- reads at most :data:`MAX_ANSWER_BYTES` of any answer (:class:`AnswerTooLarge` beyond);
- raises :class:`urllib.error.HTTPError` for a non-2xx answer, and ``URLError`` for a failure
  to connect or send, exactly where ``urlopen`` would, so slack-sdk's retry handlers (429,
  5xx, connection errors) keep working unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import re
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.error import HTTPError, URLError
from urllib.parse import SplitResult, unquote, urlsplit

# Slack's answers are a few hundred bytes; chat.postMessage echoes the message (40 KB of text
# and 50 blocks at most). A larger answer is not Slack's, and must not fill a 128 MB function.
MAX_ANSWER_BYTES = 1024 * 1024
# A request with less time than this left could not even finish a TLS handshake: not started.
MIN_REQUEST_SECONDS = 0.1
_READ_CHUNK = 64 * 1024
_HOST_NAME = re.compile(r"[A-Za-z0-9.:-]{1,253}")  # a name, an IPv4 or (unbracketed) IPv6 address
_CONTENT_TYPE = re.compile(r"[a-z0-9.+-]{1,40}/[a-z0-9.+-]{1,60}")


class UnacceptableAnswer(Exception):
    """The server answered, but not with anything that counts as delivered or can be retried.

    Deliberately not an ``OSError``: slack-sdk's connection-error retry handler must not retry it.
    """


class RedirectRefused(UnacceptableAnswer):
    """A 3xx answer. The request is never repeated elsewhere: its secret stays with its host."""

    def __init__(self, status: int, location: str | None) -> None:
        self.status = status
        self.target_host = safe_host(location)
        super().__init__(f"the server answered {status}, a redirect{_where(location, self.target_host)}: refused "
                         "(requests to Slack never follow redirects)")


def _where(location: str | None, host: str | None) -> str:
    if host is not None:
        return f" to host {host}"
    try:
        relative = bool(location) and not urlsplit((location or "").strip()).netloc
    except ValueError:
        relative = False
    return " on the same host" if relative else ""


class AnswerTooLarge(UnacceptableAnswer):
    """An answer longer than :data:`MAX_ANSWER_BYTES` (read up to the limit, then dropped)."""

    def __init__(self, status: int, declared: int | None, limit: int) -> None:
        size = f"of {declared} bytes" if declared is not None else f"of more than {limit} bytes"
        super().__init__(f"the server answered {status} with a body {size}, and this app reads at most {limit}: "
                         "not Slack's answer")


def safe_host(location: str | None) -> str | None:
    """The host of a redirect target, if it looks like one; never its path, query or user info."""
    if not location:
        return None
    try:
        host = urlsplit(location.strip()).hostname
    except ValueError:
        return None
    if host is None:
        return None  # a relative Location, or none at all
    return host if _HOST_NAME.fullmatch(host) else None


def describe(status: int, content_type: str | None, length: int | None) -> str:
    """A few safe words about an answer: status, content type, length. Never the body itself,
    which a proxy or portal may fill with the request's URL or headers."""
    if content_type is None:
        kind = "no content type"
    else:
        ctype = content_type.split(";", 1)[0].strip().lower()
        kind = ctype if _CONTENT_TYPE.fullmatch(ctype) else "an unusual content type"
    size = f", {length} bytes" if length is not None else ""
    return f"HTTP {status} ({kind}{size})"


@dataclass(frozen=True)
class Answer:
    """A 2xx answer, its body read in full (and bounded)."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def text(self) -> str:
        """The body decoded as UTF-8 (Slack's only encoding); undecodable bytes replaced."""
        return self.body.decode("utf-8", errors="replace")

    def summary(self) -> str:
        """:func:`describe` for this answer."""
        return describe(self.status, self.headers.get("Content-Type"), len(self.body))


class _Watchdog:
    """Shuts a request's sockets down at its deadline, whatever call is blocked on them.

    It keeps a duplicate of each socket: shutdown acts on the connection, not the descriptor,
    so it also ends a read inside a TLS socket that took the original over.
    """

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self._lock = threading.Lock()
        self._handles: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        """Seconds until the deadline; raises ``TimeoutError`` once it has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0 or self.fired:
            raise TimeoutError("the request's deadline passed")
        return left

    @property
    def expired(self) -> bool:
        return self.fired or time.monotonic() >= self.deadline

    def watch(self, sock: socket.socket) -> None:
        handle = sock.dup()
        with self._lock:
            self._handles.append(handle)
            fired = self.fired
        if fired:
            _shutdown(handle)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            handles = list(self._handles)
        for handle in handles:
            _shutdown(handle)

    def stop(self) -> None:
        self._timer.cancel()
        with self._lock:
            handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to interrupt
        sock.shutdown(socket.SHUT_RDWR)


_default_context: ssl.SSLContext | None = None


def _tls_context(context: ssl.SSLContext | None) -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds: once per container, not per request.
    global _default_context
    if context is not None:
        return context
    if _default_context is None:
        _default_context = ssl.create_default_context()
    return _default_context


class BoundedTransport:
    """Performs the requests of one delivery: each bounded in time and size, the whole bounded
    by the delivery budget, and counted: :attr:`attempts` started, of which :attr:`requests` got
    as far as sending the request (the connection, and TLS, were up)."""

    def __init__(self, *, request_timeout: float, budget_seconds: float,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.request_timeout = request_timeout
        self.deadline = time.monotonic() + budget_seconds
        self.max_answer_bytes = max_answer_bytes
        self.attempts = 0
        self.requests = 0

    def remaining(self) -> float:
        """Seconds left of the delivery budget (negative once spent)."""
        return self.deadline - time.monotonic()

    def perform(self, request: urllib.request.Request, *, context: ssl.SSLContext | None = None,
                proxy: str | None = None) -> Answer:
        """Send ``request`` once and return its 2xx answer; raise ``HTTPError`` for a non-2xx one,
        :class:`UnacceptableAnswer` for a redirect or an oversized answer, ``URLError`` when the
        connection or the sending fails, and ``TimeoutError`` when the deadline passes."""
        url = urlsplit(request.full_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("only http:// and https:// URLs are requested")
        seconds = min(self.request_timeout, self.remaining())
        if seconds < MIN_REQUEST_SECONDS:
            raise TimeoutError(f"{max(seconds, 0.0):.1f} s left of the delivery budget: too little to start a request")
        self.attempts += 1
        watchdog = _Watchdog(seconds)
        try:
            return self._exchange(request, url, watchdog, context, proxy)
        except (HTTPError, UnacceptableAnswer):
            raise  # the whole answer was read in time: it stands, whatever the watchdog did since
        except Exception:
            if watchdog.expired:
                raise TimeoutError(f"no complete answer within {seconds:.1f} s") from None
            raise
        finally:
            watchdog.stop()

    def _exchange(self, request: urllib.request.Request, url: SplitResult, watchdog: _Watchdog,
                  context: ssl.SSLContext | None, proxy: str | None) -> Answer:
        host, https = url.hostname or "", url.scheme == "https"
        port = url.port or (443 if https else 80)
        via = _proxy(proxy, host)
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        sock: socket.socket | None = None
        conn: http.client.HTTPConnection | None = None
        try:
            try:
                sock = _connect(via[0] if via else (host, port), watchdog)
                if via and https:
                    _tunnel(sock, host, port, via[1], watchdog)
                elif via:
                    target = request.full_url  # a plain-HTTP proxy takes the absolute URL
                if https:
                    sock = _tls_context(context).wrap_socket(sock, server_hostname=host)
                    conn = http.client.HTTPSConnection(host, port, context=_tls_context(context))
                else:
                    conn = http.client.HTTPConnection(host, port)
                conn.sock = sock  # connected under the watchdog: http.client never connects by itself
                headers = dict(request.header_items())
                headers["Connection"] = "close"
                if via and not https and via[1]:
                    headers["Proxy-Authorization"] = via[1]
                sock.settimeout(watchdog.left())
                self.requests += 1
                conn.request(request.get_method(), target, body=request.data, headers=headers)
            except OSError as error:
                raise URLError(error) from None  # as urlopen does: slack-sdk retries connection errors
            sock.settimeout(watchdog.left())
            response = conn.getresponse()
            try:
                return self._answer(request, response, sock, watchdog)
            finally:
                response.close()
        finally:
            if conn is not None:
                conn.close()
            if sock is not None:
                sock.close()

    def _answer(self, request: urllib.request.Request, response: http.client.HTTPResponse,
                sock: socket.socket, watchdog: _Watchdog) -> Answer:
        status = response.status
        if 300 <= status < 400:
            raise RedirectRefused(status, response.getheader("Location"))  # its body is not even read
        if response.length is not None and response.length > self.max_answer_bytes:
            raise AnswerTooLarge(status, response.length, self.max_answer_bytes)
        chunks: list[bytes] = []
        size = 0
        while size <= self.max_answer_bytes and not response.isclosed():  # closed: the whole body is in
            sock.settimeout(watchdog.left())
            chunk = response.read(min(_READ_CHUNK, self.max_answer_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > self.max_answer_bytes:
            raise AnswerTooLarge(status, response.length, self.max_answer_bytes)
        if response.length:  # http.client's remainder of a declared Content-Length: it broke off
            what = describe(status, response.getheader("Content-Type"), size)
            raise UnacceptableAnswer(f"the server's answer ({what}) ended before its declared length")
        body = b"".join(chunks)
        if not 200 <= status < 300:
            # slack-sdk decodes an error body with the declared charset and no error handler:
            # an unknown or lying charset would crash it, so it gets UTF-8, as Slack sends.
            headers = response.msg
            if headers.get_content_charset() not in (None, "utf-8"):
                headers.set_param("charset", "utf-8")
            body = body.decode("utf-8", errors="replace").encode("utf-8")
            # The origin only: slack-sdk never reads the URL, and a webhook's URL is its secret.
            raise HTTPError(url_origin(request.full_url), status, response.reason, headers, io.BytesIO(body))
        return Answer(status=status, headers=response.msg, body=body)


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: never its path, query or user info."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _connect(address: tuple[str, int], watchdog: _Watchdog) -> socket.socket:
    """socket.create_connection, with every address's connect bounded by the one deadline."""
    error: OSError = OSError(f"no address found for {address[0]}")
    for family, kind, proto, _, where in socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            watchdog.watch(sock)
            sock.settimeout(watchdog.left())
            sock.connect(where)
        except OSError as failed:
            sock.close()
            error = failed
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise error


def _proxy(proxy: str | None, host: str) -> tuple[tuple[str, int], str | None] | None:
    """(proxy address, Proxy-Authorization value) for the proxy slack-sdk found, unless the
    target host is in ``no_proxy``, as urllib's ProxyHandler does."""
    if not proxy or not proxy.strip() or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("only http:// proxies are supported")
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    return (parts.hostname, parts.port or 80), auth


def _tunnel(sock: socket.socket, host: str, port: int, auth: str | None, watchdog: _Watchdog) -> None:
    """Open an HTTPS tunnel through a proxy (CONNECT): the proxy never sees the request."""
    lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    sock.settimeout(watchdog.left())
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    reply = http.client.HTTPResponse(sock, method="CONNECT")
    try:
        reply.begin()
        if reply.status != 200:
            raise OSError(f"the proxy refused the tunnel: {reply.status}")
    finally:
        reply.close()
