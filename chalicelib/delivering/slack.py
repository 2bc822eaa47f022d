"""Every Slack call goes through :class:`Slack`: post a message, update it, reply in its thread.

- slack-sdk's clients, retry loop and answer handling, over our own transport
  (chalicelib/delivering/slack_http.py): no request follows a redirect (the token and the webhook URL stay
  with their host), each request has one deadline over connect, send and the whole answer, and
  no answer is read past 1 MiB.
- Only Slack's own success counts: a webhook's literal ``ok`` with HTTP 200, a Web API JSON
  object with ``"ok": true``. Anything else (a portal's HTML, a proxy's JSON, an empty body,
  a redirect) raises :class:`DeliveryError` naming what came back in a few safe words.
- 429 (honouring Retry-After in any form), 5xx and connection errors are retried by slack-sdk's
  retry handlers, but no retry (nor its sleep) starts that could not finish within the call's
  budget (chalicelib/delivering/retries.py). When a call still fails, :class:`DeliveryError` is
  raised so Lambda's asynchronous retry takes over: a notification is never silently dropped.
- Permanent errors (bad token, unknown channel, dead webhook...) raise
  :class:`PermanentDeliveryError` at once, with what to fix; an update or a reply to a message
  that is gone raises :class:`MessageNotFound` (chalicelib/delivering/slack_errors.py).
- Every error says how many HTTP requests were made. The token and the webhook URL never appear
  in a log line or an exception message.
- This layer adds nothing to a message: no mentions (an update or a reply never pings anyone
  anew), and links and media are never unfurled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.request import Request

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse, WebClient
from slack_sdk.webhook import WebhookClient, WebhookResponse

from chalicelib.composing.messages import SlackMessage
from chalicelib.core import masking
from chalicelib.core.config import API_URL, SlackSettings
from chalicelib.core.secrets import resolve
from chalicelib.core.state_table import StateError
from chalicelib.delivering.pacing import POST, UPDATE, Pacer
from chalicelib.delivering.retries import DEFAULT_RETRY_AFTER, Call, header, retry_after_seconds, retry_handlers
from chalicelib.delivering.slack_errors import (
    PERMANENT_ERRORS,
    REJECTED_CONTENT,
    BotTokenNeeded,
    DeliveryError,
    MessageNotFound,
    PermanentDeliveryError,
    failure,
)
from chalicelib.delivering.slack_http import BoundedTransport, RedirectRefused, UnacceptableAnswer, describe

__all__ = ["DEFAULT_RETRY_AFTER", "PERMANENT_ERRORS", "REJECTED_CONTENT", "BotTokenNeeded", "BoundedWebClient",
           "Delivery", "DeliveryError", "DeliveryReceipt", "MessageNotFound", "MessageRef", "PermanentDeliveryError",
           "Slack", "deliver", "retry_after_seconds"]

# slack-sdk logs request URLs and headers at DEBUG, and at ERROR quotes the start of an answer
# it cannot parse (a proxy's page may echo the URL or the token). Every failure it logs is also
# in the DeliveryError this module raises, so its loggers stay quiet whatever the root says.
_SDK_LOGGER = logging.getLogger("batch_notify.slack_sdk")
_SDK_LOGGER.setLevel(logging.CRITICAL)

log = logging.getLogger("batch_notify")


@dataclass(frozen=True)
class MessageRef:
    """A message Slack holds: its channel ID and timestamp (``ts``), what chat.update and a
    thread reply name it by; and the channel as it was asked for (``#alerts`` or the ID), which
    paces its replies and updates in the same queue as the posts to that channel."""

    channel: str
    ts: str
    asked: str | None = field(default=None, compare=False)  # the same message however it was asked for

    @property
    def paced_as(self) -> str:
        """The channel whose turns its replies and updates take."""
        return self.asked or self.channel


@dataclass(frozen=True)
class Delivery:
    """What a successful call took, and the message it posted or changed (``None`` from a
    webhook, which tells nothing about what it posted)."""

    attempts: int
    seconds: float
    ref: MessageRef | None = None


DeliveryReceipt = Delivery  # the name deliver() has always returned


class Slack:
    """The one way to Slack, for one delivery mode (webhook, or bot token): each call is one
    message, with its own budget (``SLACK_DELIVERY_BUDGET_SECONDS``), and returns a
    :class:`Delivery` or raises :class:`DeliveryError` (never returns unsent)."""

    def __init__(self, settings: SlackSettings, pacer: Pacer | None = None) -> None:
        """``pacer``: each Web API post, reply and update first waits for its turn there
        (chalicelib/delivering/pacing.py), within the call's budget; None: no pacing. A webhook is
        never paced (conversations, and so pacing, need the bot token)."""
        self.settings = settings
        self.pacer = pacer

    def within(self, deadline: float) -> Slack:
        """This Slack with each call's budget cut to end by ``deadline`` (``time.monotonic()``), so
        no call outlives the invocation: Lambda would kill it between posting and recording."""
        left = max(0.0, deadline - time.monotonic())
        if left >= self.settings.delivery_budget:
            return self
        return Slack(replace(self.settings, delivery_budget=left), self.pacer)

    def post(self, message: SlackMessage, *, channel: str | None = None) -> Delivery:
        """Post ``message`` to ``channel`` (default ``SLACK_CHANNEL``; bot mode only: a webhook
        has its own channel)."""
        if self.settings.mode == "webhook":
            if channel is not None:
                raise ValueError("a webhook always posts to its own channel; a channel needs a bot token")
            return self._call(message, _send_webhook)
        where = channel or self.settings.channel or ""
        return self._call(message, lambda session, payload: session.api(
            lambda web: web.chat_postMessage(channel=where, text=payload["text"], blocks=payload.get("blocks"),
                                             unfurl_links=False, unfurl_media=False), where, asked=where),
                          (POST, where))

    def update(self, ref: MessageRef, message: SlackMessage) -> Delivery:
        """Replace the text and blocks of the posted message ``ref`` (chat.update); raise
        :class:`MessageNotFound` when it is gone."""
        self._need_bot("update a posted message (chat.update)")
        # Blocks left out of chat.update are kept, says Slack: the plain-text fallback sends
        # an empty list, so the old blocks do not outlive their text.
        return self._call(message, lambda session, payload: session.api(
            lambda web: web.chat_update(channel=ref.channel, ts=ref.ts, text=payload["text"],
                                        blocks=payload.get("blocks", [])), ref.channel, ref.ts, asked=ref.asked),
                          (UPDATE, ref.paced_as))

    def reply(self, ref: MessageRef, message: SlackMessage, *, broadcast: bool = False) -> Delivery:
        """Post ``message`` in the thread of ``ref`` (shown in the channel too with ``broadcast``);
        raise :class:`MessageNotFound` when ``ref`` is gone."""
        self._need_bot("reply in a thread (chat.postMessage with thread_ts)")
        return self._call(message, lambda session, payload: session.api(
            lambda web: web.chat_postMessage(channel=ref.channel, thread_ts=ref.ts, text=payload["text"],
                                             blocks=payload.get("blocks"), unfurl_links=False, unfurl_media=False,
                                             # None: not sent at all (slack-sdk drops it)
                                             reply_broadcast=True if broadcast else None), ref.channel, ref.ts,
                                          asked=ref.asked),
                          (POST, ref.paced_as))  # a reply counts against the channel's post limit

    def _need_bot(self, what: str) -> None:
        if self.settings.mode == "webhook":
            raise BotTokenNeeded(f"a webhook cannot {what}: that needs a bot token (SLACK_BOT_TOKEN_PARAM, "
                                 "or SLACK_BOT_TOKEN, with SLACK_CHANNEL); 0 HTTP request(s) made")

    def _call(self, message: SlackMessage, send: Send, pace: tuple[str, str] | None = None) -> Delivery:
        settings = self.settings
        secret = resolve(settings.secret)
        masking.protect(secret)  # from here on, no log record or error of the process shows it
        call = Call(BoundedTransport(request_timeout=settings.request_timeout,
                                     budget_seconds=settings.delivery_budget), settings.request_timeout)
        # The wait for a turn comes out of the call's budget: the transport's deadline is the same.
        deadline = call.started + settings.delivery_budget
        if self.pacer is not None and pace is not None:
            call.repace = lambda: self._wait_turn(pace, deadline)
        session = _Session(settings, secret, call)
        # A job may log the very webhook or token the app posts with: never into the channel.
        payload = masking.mask_json(message.to_dict())
        try:
            try:
                self._wait_turn(pace, deadline)
                ref = send(session, payload)
            except PermanentDeliveryError as error:
                if error.code not in REJECTED_CONTENT:
                    raise
                log.warning(json.dumps({"warning": "Slack rejected the message; sending it once as plain text",
                                        "code": error.code, "payload_bytes": len(json.dumps(payload).encode())}))
                text = masking.mask(message.text)
                self._wait_turn(pace, deadline)  # a second post: a second turn
                ref = send(session, {"text": f"{text}\n_(Slack rejected the full message: {error.code})_"})
        except DeliveryError as error:
            raise type(error)(masking.mask(f"{error}{call.account()}"), error.code) from None
        except RedirectRefused as error:
            fix = settings.secret.variable if settings.mode == "webhook" else API_URL
            raise DeliveryError(masking.mask(f"{error}; if the URL in {fix} is wrong, fix it; giving up for now so "
                                             f"Lambda retries the event later{call.account()}")) from None
        except UnacceptableAnswer as error:
            raise DeliveryError(masking.mask(f"{error}: not counted as posted; giving up for now so Lambda retries "
                                             f"the event later{call.account()}")) from None
        except StateError:
            raise  # the pacer's table failed: not Slack's doing, and Lambda retries the invocation
        except Exception as error:  # connection refused, timeouts... after retries
            raise DeliveryError(masking.mask(
                f"could not reach Slack after {call.transport.attempts} attempt(s): {type(error).__name__}: "
                f"{_short(error)}{call.account()}")) from None
        return Delivery(attempts=call.transport.attempts, seconds=time.monotonic() - call.started, ref=ref)

    def _wait_turn(self, pace: tuple[str, str] | None, deadline: float) -> None:
        if self.pacer is not None and pace is not None and self.settings.mode != "webhook":
            method, channel = pace
            self.pacer.wait_turn(method, channel, deadline)


def deliver(message: SlackMessage, settings: SlackSettings, channel: str | None = None) -> DeliveryReceipt:
    """Post ``message`` to Slack, or raise :class:`DeliveryError` (never return unsent):
    ``Slack(settings).post(message, channel=channel)``.

    ``channel`` overrides ``SLACK_CHANNEL`` (bot mode only: a webhook has its own channel).
    """
    return Slack(settings).post(message, channel=channel)


class _Session:
    """One call's secret, budget and slack-sdk clients, sending over its bounded transport."""

    def __init__(self, settings: SlackSettings, secret: str, call: Call) -> None:
        self.settings, self.secret, self.call = settings, secret, call
        # slack-sdk wants an int; the bounded transport applies the real, fractional deadline.
        self.timeout = max(1, round(settings.request_timeout))

    def api(self, request: Callable[[WebClient], SlackResponse], channel: str,
            ts: str | None = None, *, asked: str | None = None) -> MessageRef | None:
        """Make one Web API call; the message it names, or raise Slack's refusal classified."""
        client = BoundedWebClient(self.call, token=self.secret, base_url=self.settings.api_url, timeout=self.timeout,
                            logger=_SDK_LOGGER, retry_handlers=retry_handlers(self.call))
        try:
            data = request(client).data
        except SlackApiError as error:
            answer = error.response.data if isinstance(error.response.data, dict) else {}
            code = answer.get("error")
            what = describe(error.response.status_code, header(error.response.headers, "content-type"), None)
            raise failure(code if isinstance(code, str) else None, error.response.status_code, what, self.settings,
                          channel=channel, ts=ts) from None
        posted = data if isinstance(data, dict) else {}
        where, when = posted.get("channel"), posted.get("ts")
        return MessageRef(where, when, asked) if isinstance(where, str) and isinstance(when, str) else None


# What one call sends: the payload (text + blocks) in, the message it posted or changed out.
Send = Callable[[_Session, dict[str, Any]], MessageRef | None]


def _send_webhook(session: _Session, payload: dict[str, Any]) -> None:
    client = _WebhookClient(session.call, url=session.secret, timeout=session.timeout, logger=_SDK_LOGGER,
                            retry_handlers=retry_handlers(session.call))
    response = client.send_dict(payload)
    if response.status_code == 200 and response.body == "ok":
        return None  # a webhook tells nothing about what it posted
    body = response.body or ""
    what = describe(response.status_code, header(response.headers, "content-type"), len(body.encode()))
    raise failure(body.strip() or None, response.status_code, what, session.settings)


class BoundedWebClient(WebClient):
    """slack-sdk's WebClient, sending over one call's bounded transport (no redirects, one deadline,
    answers capped), and counting only a JSON object with a true or false ``ok`` as an answer."""

    def __init__(self, call: Call, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._call = call

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        answer = self._call.transport.perform(req, context=self.ssl, proxy=self.proxy)
        text = answer.text()
        if not _is_api_answer(text):
            raise UnacceptableAnswer(f"the Web API answered {answer.summary()}, not a JSON object with a true or "
                                     "false \"ok\"")
        return {"status": answer.status, "headers": answer.headers, "body": text}


class _WebhookClient(WebhookClient):
    """slack-sdk's WebhookClient, sending over the call's bounded transport."""

    def __init__(self, call: Call, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._call = call

    def _perform_http_request_internal(self, url: str, req: Request) -> WebhookResponse:
        answer = self._call.transport.perform(req, context=self.ssl, proxy=self.proxy)
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


# An exception's text can be the server's (http.client quotes a bad status line whole): cut it.
_ERROR_TEXT_LIMIT = 200


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + f"… ({len(text)} characters)"
