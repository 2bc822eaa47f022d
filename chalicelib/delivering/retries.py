"""Retries of one Slack call within its budget: slack-sdk's retry handlers, bounded.

slack-sdk's handlers decide whether an answer is worth another try (429, 5xx, a connection
error); :class:`WithinBudget` decides the wait, honouring ``Retry-After`` in any form, and lets
a retry happen only if the wait and one whole request fit in what is left of the budget.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import RemoteDisconnected
from typing import Any
from urllib.error import URLError

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from chalicelib.core.config import DELIVERY_BUDGET
from chalicelib.delivering.slack_http import BoundedTransport

# What to wait when Retry-After is missing, negative or garbled: Slack's usual minimum.
DEFAULT_RETRY_AFTER = 1.0


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float:
    """Seconds a ``Retry-After`` header asks to wait: a number of seconds (``1.5`` too) or an HTTP
    date (the time until then). Missing, negative or garbled: :data:`DEFAULT_RETRY_AFTER`. It can
    be huge (or infinite): the caller gives up when it does not fit the budget."""
    if value is None:
        return DEFAULT_RETRY_AFTER
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else DEFAULT_RETRY_AFTER  # nan too: nan >= 0 is false
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:  # "-0000": UTC, says RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def header(headers: Mapping[str, Any], name: str) -> str | None:
    """The first value of header ``name`` (lower case), whatever the case slack-sdk kept."""
    for key, value in headers.items():
        if key.lower() == name:
            first = value[0] if isinstance(value, list) and value else value
            return first if isinstance(first, str) else None
    return None


@dataclass
class Call:
    """One Slack call (a post, an update, a reply): its transport (budget, request count) and
    why it stopped retrying."""

    transport: BoundedTransport
    request_timeout: float
    started: float = field(default_factory=time.monotonic)
    stopped: str | None = None
    # Paced calls (chalicelib/delivering/pacing.py): after a 429, the retry takes a new turn, so it
    # does not land on another container's turn and set off a cascade of 429s.
    repace: Callable[[], None] | None = None

    def account(self) -> str:
        """What the call took, for an error message."""
        why = f"{self.stopped}; " if self.stopped else ""
        return f" ({why}{self.transport.requests} HTTP request(s) in {time.monotonic() - self.started:.1f} s)"


class WithinBudget(RetryHandler):
    """Wrap a slack-sdk retry handler: it decides whether an answer is worth a retry; this wrapper
    decides the wait, and lets the retry happen only if the wait and a whole request fit in the
    budget. It sleeps itself: slack-sdk's rate-limit handler int()s Retry-After, and crashes on
    ``1.5``, a date or a negative number."""

    def __init__(self, inner: RetryHandler, call: Call) -> None:
        super().__init__(max_retry_count=inner.max_retry_count, interval_calculator=inner.interval_calculator)
        self._inner = inner
        self._call = call
        self._wait = 0.0
        self._rate_limited = False

    def can_retry(self, *, state: RetryState, request: HttpRequest,
                  response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        if not self._inner.can_retry(state=state, request=request, response=response, error=error):
            return False
        self._rate_limited = response is not None and response.status_code == 429
        if response is not None and response.status_code == 429:
            asked = retry_after_seconds(header(response.headers, "retry-after"))
            # Jitter, as slack-sdk adds: a burst of functions does not come back all at once (a
            # paced call needs none: its next turn spaces it).
            wait = asked + (0.0 if self._call.repace else random.random())
            reason = f"Slack asked to wait {asked:g} s (Retry-After)"
        else:
            wait = self.interval_calculator.calculate_sleep_duration(state.current_attempt)
            reason = f"a retry would wait {wait:.1f} s"
        left, timeout = self._call.transport.remaining(), self._call.request_timeout
        if left <= wait + timeout:
            self._call.stopped = (f"{reason}: that and one more request (up to {timeout:g} s) do not fit in "
                                  f"the {max(left, 0.0):.1f} s left of {DELIVERY_BUDGET}")
            return False
        self._wait = wait
        return True

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        state.next_attempt_requested = True
        time.sleep(self._wait)
        if self._rate_limited and self._call.repace is not None:
            self._call.repace()  # raises DeliveryError when no turn fits the budget
        state.increment_current_attempt()


class _ServerErrors(ServerErrorRetryHandler):
    """slack-sdk retries 500 and 503; 502 and 504 from Slack's edge are just as transient."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        return response is not None and response.status_code in (500, 502, 503, 504)


def retry_handlers(call: Call) -> list[RetryHandler]:
    """The retry handlers of one call, each bounded by its budget."""
    inner: list[RetryHandler] = [
        # Honour every Retry-After the budget allows: under a burst, giving up after a few
        # waits burns Lambda's retries and dead-letters events (bench/burst.py showed it).
        RateLimitErrorRetryHandler(max_retry_count=30),
        _ServerErrors(max_retry_count=2),
        # A read timeout is retried too: Slack may then show the message twice, which beats
        # showing it never.
        ConnectionErrorRetryHandler(
            max_retry_count=2, error_types=[URLError, ConnectionError, RemoteDisconnected, TimeoutError]),
    ]
    return [WithinBudget(handler, call) for handler in inner]
