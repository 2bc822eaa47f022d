"""Deliver a message to Slack with slack-sdk: a thin layer with bounded retries.

- 429 (honouring Retry-After), 5xx and connection errors are retried by slack-sdk's retry
  handlers, but no retry starts that could not finish within the delivery budget. When
  delivery still fails, :class:`DeliveryError` is raised so Lambda's asynchronous retry takes
  over: a notification is never silently dropped.
- Permanent errors (bad token, unknown channel, dead webhook...) raise
  :class:`PermanentDeliveryError` at once, with what to fix.
- The token and the webhook URL never appear in a log line or an exception message.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from http.client import RemoteDisconnected
from typing import Optional
from urllib.error import URLError

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
from slack_sdk.webhook import WebhookClient

from chalicelib.config import SlackSettings
from chalicelib.messages import SlackMessage
from chalicelib.secrets import resolve

# slack-sdk logs request URLs and headers at DEBUG: a webhook URL or a bearer token would
# land in CloudWatch. Its loggers get their own level, whatever the root logger says.
_SDK_LOGGER = logging.getLogger("batch_notify.slack_sdk")
_SDK_LOGGER.setLevel(logging.WARNING)

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


class DeliveryError(RuntimeError):
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


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.retries = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def _retry_after_seconds(response: Optional[HttpResponse]) -> float:
    if response is None:
        return 0.0
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            try:
                # slack-sdk sleeps Retry-After plus up to one second of jitter.
                return float(values[0]) + 1.0
            except ValueError:
                return 2.0
    return 2.0


class _WithinBudget(RetryHandler):
    """Wrap a slack-sdk retry handler so a retry happens only if it can finish in time."""

    def __init__(self, inner: RetryHandler, budget: _Budget, request_timeout: float) -> None:
        super().__init__(max_retry_count=inner.max_retry_count, interval_calculator=inner.interval_calculator)
        self._inner = inner
        self._budget = budget
        self._request_timeout = request_timeout

    def can_retry(self, *, state: RetryState, request: HttpRequest,
                  response: Optional[HttpResponse] = None, error: Optional[Exception] = None) -> bool:
        if not self._inner.can_retry(state=state, request=request, response=response, error=error):
            return False
        if response is not None and response.status_code == 429:
            wait = _retry_after_seconds(response)
        else:
            wait = self.interval_calculator.calculate_sleep_duration(state.current_attempt) + 1.0
        return self._budget.remaining() > wait + self._request_timeout

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: Optional[HttpResponse] = None, error: Optional[Exception] = None) -> None:
        self._budget.retries += 1
        self._inner.prepare_for_next_attempt(state=state, request=request, response=response, error=error)


class _ServerErrors(ServerErrorRetryHandler):
    """slack-sdk retries 500 and 503; 502 and 504 from Slack's edge are just as transient."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: Optional[HttpResponse] = None, error: Optional[Exception] = None) -> bool:
        return response is not None and response.status_code in (500, 502, 503, 504)


def _retry_handlers(budget: _Budget, request_timeout: float) -> list[RetryHandler]:
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
    return [_WithinBudget(handler, budget, request_timeout) for handler in inner]


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _failure(code: str, status: int, settings: SlackSettings) -> DeliveryError:
    hint = PERMANENT_ERRORS.get(code)
    where = f"Slack answered {status} {code!r}"
    if hint is not None:
        return PermanentDeliveryError(
            f"{where}: " + hint.format(secret=settings.secret.variable, channel=settings.channel), code)
    return DeliveryError(f"{where}; giving up for now so Lambda retries the event later", code)


def deliver(message: SlackMessage, settings: SlackSettings, channel: Optional[str] = None) -> DeliveryReceipt:
    """Post ``message`` to Slack, or raise :class:`DeliveryError` (never return unsent).

    ``channel`` overrides ``SLACK_CHANNEL`` (bot mode only: a webhook has its own channel).
    """
    if channel is not None and settings.mode == "webhook":
        raise ValueError("a webhook always posts to its own channel; a channel needs a bot token")
    if channel is not None:
        settings = replace(settings, channel=channel)
    secret = resolve(settings.secret)
    budget = _Budget(settings.delivery_budget)
    timeout = max(1, round(settings.request_timeout))
    started = time.monotonic()
    send = _send_webhook if settings.mode == "webhook" else _send_bot
    payload = message.to_dict()
    try:
        try:
            send(secret, payload, settings, budget, timeout)
        except PermanentDeliveryError as error:
            if error.code not in REJECTED_CONTENT:
                raise
            log.warning(json.dumps({"warning": "Slack rejected the message; sending it once as plain text",
                                    "code": error.code, "payload_bytes": len(json.dumps(payload).encode())}))
            send(secret, {"text": f"{message.text}\n_(Slack rejected the full message: {error.code})_"},
                 settings, budget, timeout)
    except DeliveryError:
        raise
    except Exception as error:  # connection refused, timeouts... after retries
        detail = _redact(str(error), secret)
        raise DeliveryError(
            f"could not reach Slack after {budget.retries + 1} attempt(s): {type(error).__name__}: {detail}"
        ) from None
    return DeliveryReceipt(attempts=budget.retries + 1, seconds=time.monotonic() - started)


def _send_webhook(url: str, payload: dict, settings: SlackSettings, budget: _Budget, timeout: int) -> None:
    client = WebhookClient(url, timeout=timeout, logger=_SDK_LOGGER, retry_handlers=_retry_handlers(budget, timeout))
    response = client.send_dict(payload)
    if response.status_code == 200:
        return
    code = (response.body or "").strip()[:100] or "no body"
    raise _failure(code, response.status_code, settings)


def _send_bot(token: str, payload: dict, settings: SlackSettings, budget: _Budget, timeout: int) -> None:
    client = WebClient(token=token, base_url=settings.api_url, timeout=timeout, logger=_SDK_LOGGER,
                       retry_handlers=_retry_handlers(budget, timeout))
    try:
        client.chat_postMessage(channel=settings.channel or "", text=payload["text"], blocks=payload.get("blocks"),
                                unfurl_links=False, unfurl_media=False)
    except SlackApiError as error:
        data = error.response.data if isinstance(error.response.data, dict) else {}
        raise _failure(str(data.get("error") or "no error code"), error.response.status_code, settings) from None
