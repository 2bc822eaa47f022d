"""Keep the configured secrets (bot token, webhook URL) out of every log record and error.

One mechanism at one boundary, not a redaction per call site: every secret the app resolves
is registered with :func:`protect`, and :func:`install` puts a log record factory in front of
every logger of the process (the app's, slack-sdk's, botocore's, urllib3's...), which masks
each record as it is created. :func:`mask` is the same masking for text that leaves by another
way (an exception message that Lambda prints, a message to Slack).

A secret is masked in every form it can take in text: as is, percent-encoded or quoted the
way urllib and http.client quote URLs (``repr`` escapes), split by an inner newline or
space, and for a URL its path part (``/services/...``) alone.
"""

from __future__ import annotations

import logging
import threading

MASKED = "***"

_lock = threading.Lock()
_secrets: set[str] = set()


def protect(secret: str) -> None:
    """Register ``secret`` so that :func:`mask` and every log record hide it from now on."""
    value = secret.strip()
    if not value:
        return
    with _lock:
        _secrets.add(value)


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASKED)
    return text


_installed = False


def install() -> None:
    """Mask every log record of the process from now on (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)  # type: ignore[arg-type]
            if _secrets:
                record.msg, record.args = mask(record.getMessage()), None
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def forget() -> None:
    """Forget every registered secret (tests switch settings)."""
    with _lock:
        _secrets.clear()
