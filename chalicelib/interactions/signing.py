"""Is this request really Slack's? The checks that come before anything else on the actions route.

Slack signs each request with the app's signing secret: ``X-Slack-Signature`` is ``v0=`` and the
hex HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}``. slack-sdk's
``SignatureVerifier`` computes and compares it (in constant time, ``hmac.compare_digest``) and
refuses a timestamp more than 5 minutes away from its clock, in the past or in the future.

What the SDK does not guard is checked here first, since each would be an exception (a 500), not
a refusal: a timestamp that ``int()`` reads though no one writes it so (``+5``, ``1_0``,
non-ASCII digits, 5,000 digits), a signature with non-ASCII characters (``compare_digest``
raises on those), a body that is not UTF-8 (the SDK decodes it strictly).

:func:`check_request` answers in order: 415 (not a form), 413 (too big), 503 (no signing secret
configured, or it cannot be read: a misconfiguration, never verified with an empty secret), 401
(no valid signature). Each refusal is a :class:`Rejection` with a reason made of fixed words,
never of the request's content, the signature or the secret. Nothing here has a side effect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from slack_sdk.signature import Clock, SignatureVerifier

from chalicelib.core.config import signing_settings
from chalicelib.core.errors import BatchNotifyError
from chalicelib.core.secrets import resolve

FORM = "application/x-www-form-urlencoded"
TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"
# Slack's block_actions payload carries the whole clicked message: up to 50 blocks of up to 3000
# characters (a section's 10 fields add 2000 each), JSON-escaped, then URL-encoded, where one
# non-ASCII character can take 9 bytes (%E2%80%A6) or 12 (a JSON \\u escape, encoded). This app's
# messages are a few KB; 2 MiB holds any message Slack can send, and stays far below Lambda's 6 MB
# request limit and what a 128 MB function can parse.
MAX_BODY_BYTES = 2 * 1024 * 1024
# Plain ASCII digits, at most 12 (year 33658): the SDK's int() takes much more than that.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class Rejection(Exception):
    """A refused request: the HTTP status and a reason in fixed words, safe to log (never the
    body, a header's value or the secret)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


def is_form(content_type: str | None) -> bool:
    """Whether a Content-Type header names a URL-encoded form (parameters such as charset allowed)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == FORM


def check_request(headers: Mapping[str, str], body: bytes, *, clock: Clock | None = None) -> str:
    """The body of a request that Slack signed, as text; raise :class:`Rejection` otherwise.

    ``headers`` is looked up by lower-case name (Chalice's headers are case-insensitive);
    ``clock`` is slack-sdk's clock seam (tests move time; default: the real clock).
    """
    if not is_form(headers.get("content-type")):
        raise Rejection(415, f"content type is not {FORM}")
    if len(body) > MAX_BODY_BYTES:
        raise Rejection(413, f"body is over {MAX_BODY_BYTES} bytes")
    verifier = SignatureVerifier(signing_secret(), clock=clock or Clock())
    timestamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise Rejection(401, f"no {TIMESTAMP_HEADER if not timestamp else SIGNATURE_HEADER} header")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Rejection(401, f"{TIMESTAMP_HEADER} is not a number of seconds")
    if abs(verifier.clock.now() - int(timestamp)) > 5 * 60:
        # The SDK checks the same again; said here so the log line can tell it from a bad signature.
        raise Rejection(401, "timestamp is more than 5 minutes away from now (a replay, or a clock off)")
    if not _SIGNATURE.fullmatch(signature):
        raise Rejection(401, f"{SIGNATURE_HEADER} is not v0= and 64 hex digits")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejection(401, "body is not UTF-8, so not what Slack signed") from None
    if not verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
        raise Rejection(401, "signature does not match the body (wrong secret, or altered after signing)")
    return text


def signing_secret() -> str:
    """The configured signing secret (read from SSM once per container when given as a
    parameter), or raise :class:`Rejection` 503 naming the variable: never an empty secret."""
    try:
        setting = signing_settings().require()
        secret = resolve(setting)  # protected (masked in every log record) from here on
    except BatchNotifyError as error:  # ConfigError, or SSM failing (SecretError)
        raise Rejection(503, str(error)) from None
    if not secret or any(c.isspace() or not c.isprintable() for c in secret):
        raise Rejection(503, f"the signing secret in {setting.variable} is empty or has a space, a line break "
                             "or a control character inside: copy it again from the Slack app's Basic Information")
    return secret
