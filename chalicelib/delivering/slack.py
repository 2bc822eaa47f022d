"""Deliver a message to Slack with slack-sdk: a thin layer with bounded retries.

- slack-sdk's clients, retry loop and answer handling, over our own transport
  (chalicelib/delivering/slack_http.py): no request follows a redirect (the token and the webhook URL stay
  with their host), each request has one deadline over connect, send and the whole answer, and
  no answer is read past 1 MiB.
- Only Slack's own success counts as posted: a webhook's literal ``ok`` with HTTP 200, a Web API
  JSON object with ``"ok": true``. Anything else (a portal's HTML, a proxy's JSON, an empty body,
  a redirect) raises :class:`DeliveryError` naming what came back in a few safe words.
- 429 (honouring Retry-After in any form), 5xx and connection errors are retried by slack-sdk's
  retry handlers, but no retry (nor its sleep) starts that could not finish within the delivery
  budget. When delivery still fails, :class:`DeliveryError` is raised so Lambda's asynchronous
  retry takes over: a notification is never silently dropped.
- Permanent errors (bad token, unknown channel, dead webhook...) raise
  :class:`PermanentDeliveryError` at once, with what to fix.
- Every error says how many HTTP requests were made. The token and the webhook URL never appear
  in a log line or an exception message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from http.client import RemoteDisconnected
from typing import Any, Callable, Mapping, Optional
from urllib.error import URLError
from urllib.request import Request

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient, WebhookResponse

from chalicelib.composing.messages import SlackMessage
from chalicelib.core import masking
from chalicelib.core.config import API_URL, DELIVERY_BUDGET, SlackSettings
from chalicelib.core.errors import BatchNotifyError
from chalicelib.core.secrets import resolve
from chalicelib.delivering.slack_http import BoundedTransport, RedirectRefused, UnacceptableAnswer, describe

# slack-sdk logs request URLs and headers at DEBUG, and at ERROR quotes the start of an answer
# it cannot parse (a proxy's page may echo the URL or the token). Every failure it logs is also
# in the DeliveryError this module raises, so its loggers stay quiet whatever the root says.
_SDK_LOGGER = logging.getLogger("batch_notify.slack_sdk")
_SDK_LOGGER.setLevel(logging.CRITICAL)

# Slack's answers that no retry will fix, with what the person deploying should do.
PERMANENT_ERRORS: dict[str, str] = {
    "invalid_auth": "the bot token is not valid: check the token in {secret}",
    "not_authed": "no bot token was sent: check {secret}",
    "account_inactive": "the bot token belongs to a deleted user or workspace: reinstall the app and update {secret}",
    "token_revoked": "the bot token was revoked: reinstall the app and update {secret}",
    "token_expired": "the bot token expired: reinstall the app and update {secret}",
    "missing_scope": "the bot token lacks the chat:write scope: add it in the app's OAuth settings and reinstall",
    "not_allowed_token_type": "use a bot token (xoxb-) in {secret}",
    "channel_not_found": "channel {channel} does not exist or the bot cannot see it: set SLACK_CHANNEL to a channel ID and invite the bot",
    "not_in_channel": "the bot is not a member of {channel}: invite it (/invite @your-app) or add chat:write.public",
    "is_archived": "channel {channel} is archived: set SLACK_CHANNEL to a live channel",
    "channel_is_archived": "the webhook's channel is archived: create a new webhook and update {secret}",
    "no_service": "the webhook no longer exists (404 no_service): create a new one and update {secret}",
    "invalid_token": "the webhook URL is not valid: create a new webhook and update {secret}",
    "action_prohibited": "a workspace admin restricted this webhook: ask them, or use a bot token",
    "no_text": "Slack rejected the message as empty (no_text)",
    "msg_too_long": "Slack rejected the message as too long (msg_too_long)",
    "invalid_blocks": "Slack rejected the message's blocks (invalid_blocks)",
    "invalid_payload": "Slack rejected the payload (invalid_payload)",
}

# Slack refused this message's content, not the configuration: a plain-text version still
# tells people about the job, so it is sent once instead.
REJECTED_CONTENT = frozenset({"msg_too_long", "invalid_blocks", "invalid_blocks_format", "invalid_payload",
                              "too_many_attachments"})

log = logging.getLogger("batch_notify")

# What to wait when Retry-After is missing, negative or garbled: Slack's usual minimum.
DEFAULT_RETRY_AFTER = 1.0
# Slack's error codes: quoted in errors. Anything else from the server is described, not quoted.
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class DeliveryError(BatchNotifyError):
    """Slack did not take the message; raising lets Lambda retry the invocation later."""

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code  # Slack's error code, when it gave one


class PermanentDeliveryError(DeliveryError):
    """Slack refused the message for a reason a retry will not fix (configuration)."""


@dataclass(frozen=True)
class DeliveryReceipt:
    """What a successful delivery took."""

    attempts: int
    seconds: float


def retry_after_seconds(value: Optional[str], now: Optional[datetime] = None) -> float:
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
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _header(headers: Mapping[str, Any], name: str) -> Optional[str]:
    for key, value in headers.items():
        if key.lower() == name:
            first = value[0] if isinstance(value, list) and value else value
            return first if isinstance(first, str) else None
    return None


@dataclass
class _Delivery:
    """One call of :func:`deliver`: its transport (budget, request count) and why it stopped retrying."""

    transport: BoundedTransport
    request_timeout: float
    started: float = field(default_factory=time.monotonic)
    stopped: Optional[str] = None

    def account(self) -> str:
        """What the delivery took, for an error message."""
        why = f"{self.stopped}; " if self.stopped else ""
        return f" ({why}{self.transport.requests} HTTP request(s) in {time.monotonic() - self.started:.1f} s)"


class _WithinBudget(RetryHandler):
    """Wrap a slack-sdk retry handler: it decides whether an answer is worth a retry; this wrapper
    decides the wait, and lets the retry happen only if the wait and a whole request fit in the
    budget. It sleeps itself: slack-sdk's rate-limit handler int()s Retry-After, and crashes on
    ``1.5``, a date or a negative number."""

    def __init__(self, inner: RetryHandler, delivery: _Delivery) -> None:
        super().__init__(max_retry_count=inner.max_retry_count, interval_calculator=inner.interval_calculator)
        self._inner = inner
        self._delivery = delivery
        self._wait = 0.0

    def can_retry(self, *, state: RetryState, request: HttpRequest,
                  response: Optional[HttpResponse] = None, error: Optional[Exception] = None) -> bool:
        if not self._inner.can_retry(state=state, request=request, response=response, error=error):
            return False
        if response is not None and response.status_code == 429:
            asked = retry_after_seconds(_header(response.headers, "retry-after"))
            # Jitter, as slack-sdk adds: a burst of functions does not come back all at once.
            wait = asked + random.random()
            reason = f"Slack asked to wait {asked:g} s (Retry-After)"
        else:
            wait = self.interval_calculator.calculate_sleep_duration(state.current_attempt)
            reason = f"a retry would wait {wait:.1f} s"
        left, timeout = self._delivery.transport.remaining(), self._delivery.request_timeout
        if left <= wait + timeout:
            self._delivery.stopped = (f"{reason}: that and one more request (up to {timeout:g} s) do not fit in "
                                      f"the {max(left, 0.0):.1f} s left of {DELIVERY_BUDGET}")
            return False
        self._wait = wait
        return True

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: Optional[HttpResponse] = None, error: Optional[Exception] = None) -> None:
        state.next_attempt_requested = True
        time.sleep(self._wait)
        state.increment_current_attempt()


class _ServerErrors(ServerErrorRetryHandler):
    """slack-sdk retries 500 and 503; 502 and 504 from Slack's edge are just as transient."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: Optional[HttpResponse] = None, error: Optional[Exception] = None) -> bool:
        return response is not None and response.status_code in (500, 502, 503, 504)


def _retry_handlers(delivery: _Delivery) -> list[RetryHandler]:
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
    return [_WithinBudget(handler, delivery) for handler in inner]


class _BotClient(WebClient):
    """slack-sdk's WebClient, sending over the delivery's bounded transport."""

    def __init__(self, delivery: _Delivery, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._delivery = delivery

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        answer = self._delivery.transport.perform(req, context=self.ssl, proxy=self.proxy)
        text = answer.text()
        if not _is_api_answer(text):
            raise UnacceptableAnswer(f"the Web API answered {answer.summary()}, not a JSON object with a true or "
                                     "false \"ok\"")
        return {"status": answer.status, "headers": answer.headers, "body": text}


class _WebhookClient(WebhookClient):
    """slack-sdk's WebhookClient, sending over the delivery's bounded transport."""

    def __init__(self, delivery: _Delivery, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._delivery = delivery

    def _perform_http_request_internal(self, url: str, req: Request) -> WebhookResponse:
        answer = self._delivery.transport.perform(req, context=self.ssl, proxy=self.proxy)
        # Slack's one success answer. A portal's page or a proxy's JSON with 200 is no delivery.
        if answer.status != 200 or answer.body.strip() != b"ok":
            raise UnacceptableAnswer(f"the webhook URL answered {answer.summary()}, not Slack's 'ok'")
        return WebhookResponse(url=url, status_code=200, body="ok", headers=dict(answer.headers.items()))


def _is_api_answer(text: str) -> bool:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("ok"), bool)


def _failure(code: Optional[str], status: int, what: str, settings: SlackSettings) -> DeliveryError:
    """The error for Slack's refusal: ``code`` when it is one of Slack's error codes, else ``what``
    (a description of the answer; a body from a stranger is never quoted)."""
    if code is not None and _ERROR_CODE.fullmatch(code):
        where = f"Slack answered {status} {code!r}"
        hint = PERMANENT_ERRORS.get(code)
        if hint is not None:
            return PermanentDeliveryError(
                f"{where}: " + hint.format(secret=settings.secret.variable, channel=settings.channel), code)
        return DeliveryError(f"{where}; giving up for now so Lambda retries the event later", code)
    return DeliveryError(f"Slack answered {what}, without an error code; giving up for now so Lambda "
                         "retries the event later")


Send = Callable[[str, dict[str, Any], SlackSettings, _Delivery], None]


def deliver(message: SlackMessage, settings: SlackSettings, channel: Optional[str] = None) -> DeliveryReceipt:
    """Post ``message`` to Slack, or raise :class:`DeliveryError` (never return unsent).

    ``channel`` overrides ``SLACK_CHANNEL`` (bot mode only: a webhook has its own channel).
    """
    if channel is not None and settings.mode == "webhook":
        raise ValueError("a webhook always posts to its own channel; a channel needs a bot token")
    if channel is not None:
        settings = replace(settings, channel=channel)
    secret = resolve(settings.secret)
    masking.protect(secret)  # from here on, no log record or error of the process shows it
    delivery = _Delivery(BoundedTransport(request_timeout=settings.request_timeout,
                                          budget_seconds=settings.delivery_budget), settings.request_timeout)
    send: Send = _send_webhook if settings.mode == "webhook" else _send_bot
    payload = message.to_dict()
    try:
        try:
            send(secret, payload, settings, delivery)
        except PermanentDeliveryError as error:
            if error.code not in REJECTED_CONTENT:
                raise
            log.warning(json.dumps({"warning": "Slack rejected the message; sending it once as plain text",
                                    "code": error.code, "payload_bytes": len(json.dumps(payload).encode())}))
            send(secret, {"text": f"{message.text}\n_(Slack rejected the full message: {error.code})_"},
                 settings, delivery)
    except DeliveryError as error:
        raise type(error)(masking.mask(f"{error}{delivery.account()}"), error.code) from None
    except RedirectRefused as error:
        fix = settings.secret.variable if settings.mode == "webhook" else API_URL
        raise DeliveryError(masking.mask(f"{error}; if the URL in {fix} is wrong, fix it; giving up for now so "
                                         f"Lambda retries the event later{delivery.account()}")) from None
    except UnacceptableAnswer as error:
        raise DeliveryError(masking.mask(f"{error}: not counted as posted; giving up for now so Lambda retries "
                                         f"the event later{delivery.account()}")) from None
    except Exception as error:  # connection refused, timeouts... after retries
        raise DeliveryError(masking.mask(
            f"could not reach Slack after {delivery.transport.attempts} attempt(s): {type(error).__name__}: "
            f"{error}{delivery.account()}")) from None
    return DeliveryReceipt(attempts=delivery.transport.attempts, seconds=time.monotonic() - delivery.started)


def _client_timeout(settings: SlackSettings) -> int:
    # slack-sdk wants an int; the bounded transport applies the real, fractional deadline.
    return max(1, round(settings.request_timeout))


def _send_webhook(url: str, payload: dict[str, Any], settings: SlackSettings, delivery: _Delivery) -> None:
    client = _WebhookClient(delivery, url=url, timeout=_client_timeout(settings), logger=_SDK_LOGGER,
                            retry_handlers=_retry_handlers(delivery))
    response = client.send_dict(payload)
    if response.status_code == 200 and response.body == "ok":
        return
    body = response.body or ""
    what = describe(response.status_code, _header(response.headers, "content-type"), len(body.encode()))
    raise _failure(body.strip() or None, response.status_code, what, settings)


def _send_bot(token: str, payload: dict[str, Any], settings: SlackSettings, delivery: _Delivery) -> None:
    client = _BotClient(delivery, token=token, base_url=settings.api_url, timeout=_client_timeout(settings),
                        logger=_SDK_LOGGER, retry_handlers=_retry_handlers(delivery))
    try:
        client.chat_postMessage(channel=settings.channel or "", text=payload["text"], blocks=payload.get("blocks"),
                                unfurl_links=False, unfurl_media=False)
    except SlackApiError as error:
        data = error.response.data if isinstance(error.response.data, dict) else {}
        code = data.get("error")
        what = describe(error.response.status_code, _header(error.response.headers, "content-type"), None)
        raise _failure(code if isinstance(code, str) else None, error.response.status_code, what, settings) from None
