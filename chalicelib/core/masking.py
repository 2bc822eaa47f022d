"""Keep the configured secrets (bot token, webhook URL) out of every log record and error.

One mechanism at one boundary, not a redaction per call site: every secret the app resolves
is registered with :func:`protect`, and :func:`install` puts a log record factory in front of
every logger of the process (the app's, slack-sdk's, botocore's, urllib3's...), which masks
each record as it is created: its message with its arguments, its traceback (pre-formatted
into ``exc_text``, which is what handlers print) and its ``stack_info``. :func:`mask` is the
same masking for text that leaves by another way (an exception message that Lambda prints).

How a secret is found in every form it takes. Quoting, escaping and splitting change a
secret's punctuation and whitespace, never its ASCII letters and digits: ``quote(url, safe="")``,
``repr`` (``\\n`` as http.client writes it in ``InvalidURL``), JSON (``\\/``), a value with an
inner newline or a line a library split. So text is compared by its *letters*: its ASCII
letters and digits, in order, once escape sequences (``%XX`` at any depth of encoding,
``\\n``, ``\\xXX``, ``\\uXXXX``, ``&#NN;``) are dropped as a whole, since their hex digits are
not the text's own. A secret's letters found there are masked from their first to their last
character in the original text, whatever lies between. For a URL, its path (and query) is a
secret of its own: http.client and urllib3 log and raise with the path alone.

Cost: nothing when no secret is registered; otherwise two C-level substitutions and a
substring test per secret, and a pass mapping positions only when a secret is really there.
Registered secrets are an immutable tuple swapped under a lock, read without one.
The factory never raises: a record it cannot mask is replaced by a note saying so, since a
record that fails to format would be printed raw by ``logging``'s error handler.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit

MASKED = "***"
# Fewer letters are no secret (a real token or webhook path has 30+) and would mask ordinary
# words in every record; such values fail validation in chalicelib/core/secrets.py anyway.
MIN_LETTERS = 8

# A backslash as itself or percent-encoded (at any depth: %5C, %255C...), then what it escapes;
# a percent-encoded byte; an HTML character reference.
_BACKSLASH = r"(?:\\|%(?:25)*5[cC])"
# What follows the backslashes is optional: a run of them always matches once, from its first
# one, so a line of 60,000 backslashes is linear work, not quadratic (a server can send that).
_ESCAPE = (_BACKSLASH + r"+(?:[nrtbfv]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})?"
           r"|%(?:25)*[0-9a-fA-F]{2}|&#(?:[xX][0-9a-fA-F]+|[0-9]+);")
_ESCAPES = re.compile(_ESCAPE)
_NOT_LETTERS = re.compile(r"[^A-Za-z0-9]+")
_ASCII_NOT_LETTERS = str.maketrans("", "", "".join(chr(c) for c in range(128) if not chr(c).isalnum()))
_ESCAPE_OR_LETTERS = re.compile(f"(?:{_ESCAPE})|([A-Za-z0-9]+)")

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # the letters of each registered secret and URL path
_formatter = logging.Formatter()


def _letters(text: str) -> str:
    # The membership tests and translate() are fast paths for the usual record: plain ASCII.
    if "\\" in text or "%" in text or "&" in text:
        text = _ESCAPES.sub("", text)
    return text.translate(_ASCII_NOT_LETTERS) if text.isascii() else _NOT_LETTERS.sub("", text)


def protect(secret: str) -> None:
    """Register ``secret`` so that :func:`mask` and every log record hide it from now on."""
    global _secrets
    core = "".join(secret.split())  # a value with an inner space or newline is masked whole, too
    parts = [core]
    try:
        netloc = urlsplit(core).netloc
    except ValueError:  # not a URL after all
        netloc = ""
    if netloc and "://" in core:
        parts.append(core.split(netloc, 1)[1])
    new = {letters for letters in map(_letters, parts) if len(letters) >= MIN_LETTERS}
    if new.issubset(_secrets):  # the usual case: protected at every use, registered at the first
        return
    with _lock:
        _secrets = tuple(sorted(new.union(_secrets)))


def mask(text: str) -> str:
    """``text`` with every registered secret, in any form, replaced by ``***``."""
    registered = _secrets
    if not registered:
        return text
    letters = _letters(text)
    if not any(secret in letters for secret in registered):
        return text
    # Where each run of letters starts in ``text`` and in ``letters``, by the same scan as
    # _letters; the letters are joined again from it, so positions always agree with them.
    runs: list[str] = []
    starts: list[int] = []
    offsets: list[int] = []
    total = 0
    for match in _ESCAPE_OR_LETTERS.finditer(text):
        if match.group(1):
            runs.append(match.group(1))
            starts.append(match.start(1))
            offsets.append(total)
            total += len(match.group(1))
    letters = "".join(runs)

    def position(index: int) -> int:
        run = bisect.bisect_right(offsets, index) - 1
        return starts[run] + index - offsets[run]

    spans: list[tuple[int, int]] = []
    for secret in registered:
        found = letters.find(secret)
        while found >= 0:
            spans.append((position(found), position(found + len(secret) - 1) + 1))
            found = letters.find(secret, found + len(secret))
    out: list[str] = []
    end = 0
    for start, stop in sorted(spans):
        if start >= end:
            out.append(text[end:start] + MASKED)
        end = max(end, stop)
    return "".join(out) + text[end:]


def _mask_record(record: logging.LogRecord) -> None:
    try:
        # Formatted here, once: the arguments may hold the secret in a form only str() shows.
        record.msg, record.args = mask(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _formatter.formatException(record.exc_info)
        if record.exc_text:
            masked = mask(record.exc_text)
            if masked != record.exc_text:
                # A JSON formatter (Lambda's own) writes str(exc_info[1]): keep only the masked text.
                record.exc_info = None
            record.exc_text = masked
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
    except Exception as error:
        record.msg, record.args = f"(log record withheld: masking it failed with {type(error).__name__})", None
        record.exc_info, record.exc_text, record.stack_info = None, None, None


class _MaskingFactory:
    """A log record factory that masks each record the previous factory makes."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.previous(*args, **kwargs)
        if _secrets:
            _mask_record(record)
        return record


def install() -> None:
    """Mask every log record of the process from now on (idempotent)."""
    with _lock:
        current = logging.getLogRecordFactory()
        if not isinstance(current, _MaskingFactory):
            logging.setLogRecordFactory(_MaskingFactory(current))


def forget() -> None:
    """Forget every registered secret (tests switch settings)."""
    global _secrets
    with _lock:
        _secrets = ()


def mask_json(value: Any) -> Any:
    """``value`` (a JSON payload) with the configured secrets masked in every string: a job may
    log the very token the app posts with, and a message may quote that log."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [mask_json(item) for item in value]
    if isinstance(value, dict):
        return {key: mask_json(item) for key, item in value.items()}
    return value
