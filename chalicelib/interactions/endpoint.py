"""The actions route: a Slack click in, a Chalice ``Response`` out, well inside Slack's 3 seconds.

:func:`answer_click` checks the request (chalicelib/interactions/signing.py: 415, 413, 503, 401),
reads the click (chalicelib/interactions/clicks.py: 400), and hands it to the handler registered
for its ``action_id`` (:func:`register`, or the :func:`action` decorator). Nothing is read from
the payload, and no handler runs, before the signature is verified. Each refusal logs one line
naming what was wrong (never the body, the signature or the secret). An unknown ``action_id``
is answered 200 with an ephemeral "unknown action" to the clicker and a warning line.

A handler returns an :class:`ActionAnswer`: an ephemeral text for the clicker and/or a
replacement of the clicked message, posted to the click's ``response_url`` (bounded transport:
no redirect, one deadline, secrets masked) or made with ``chat.update`` (delivering/slack.py).
Slack itself gets HTTP 200 and an empty body: what the person sees goes through those two.

The time budget. Slack shows the clicker an error when the answer takes more than 3 s, and a
Lambda function cannot work on after it answered (the container is frozen), so everything fits
before the answer: the handler gets :data:`HANDLER_SECONDS` from the request's arrival, and
delivering its answer the rest of :data:`ANSWER_SECONDS`. A handler bounds its own work with
:func:`time_left` (an AWS call: a client whose connect and read timeouts fit in it, one
attempt; Batch's DescribeJobs, SubmitJob and TerminateJob answer in well under a second) and
reports what it could not finish in time as an outcome ("Batch did not answer: nothing was
submitted"), never by waiting longer. A handler that overruns anyway is not awaited: the clicker
is told it is still running, Slack gets its 200, and the handler's own answer is posted to the
``response_url`` when it returns (where the process keeps running: ``chalice local``, or a warm
Lambda container at its next invocation; Slack keeps a response_url for 30 minutes). Work that
can take longer than :data:`HANDLER_SECONDS` needs another shape (an asynchronous invocation of
a worker function, which the answer then only announces); the handlers here have none.

Routes are not wrapped by chalicelib/application.py (only event handlers are), so this module
installs the masking of secrets in log records and applies ``LOG_LEVEL`` itself.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.error import HTTPError

from chalice.app import Request, Response
from slack_sdk.signature import Clock

from chalicelib.composing.messages import SlackMessage
from chalicelib.composing.mrkdwn import safe_mrkdwn, truncate
from chalicelib.core import masking
from chalicelib.core.config import settings
from chalicelib.core.errors import BatchNotifyError
from chalicelib.core.logline import log_line
from chalicelib.delivering.slack import MessageRef, Slack
from chalicelib.delivering.slack_http import BoundedTransport, describe, safe_host
from chalicelib.interactions.clicks import Click, parse_click
from chalicelib.interactions.signing import Rejection, check_request

# The route's content_types: every type reaches answer_click, so a request that is not a form
# gets this module's 415 and log line (Chalice would refuse it itself, with nothing logged).
ROUTE_CONTENT_TYPES = ["*/*"]
# Slack's limit is 3 s from its request to our answer; the network to and from API Gateway,
# and API Gateway itself, take some of it.
ANSWER_SECONDS = 2.5
HANDLER_SECONDS = 1.5  # the handler's share; delivering its answer gets the rest
# Time to post an answer that arrives after the budget (the overrun path).
LATE_DELIVERY_SECONDS = 5.0
# An ephemeral text: Slack allows 40,000 characters; a section's 3000 is plenty for a reply.
EPHEMERAL_TEXT_LIMIT = 3000
UNKNOWN_ACTION = "This button is not one batch-notify knows ({action}): nothing was done."
STILL_WORKING = "⏳ Still working on it: the outcome will be posted here."
HANDLER_FAILED = "Something went wrong handling this click ({error}): nothing more was done."

log = logging.getLogger("batch_notify")


@dataclass(frozen=True)
class ActionAnswer:
    """What the clicker sees after a click: ``ephemeral``, a mrkdwn text only they see (escape
    job-controlled text in it: composing/mrkdwn.py), and/or ``replacement``, the clicked message's
    new text and blocks, made through the ``response_url`` or with ``chat.update`` (which needs the
    bot token, and can change a message a response_url no longer can: after 30 minutes or 5 uses).
    An empty answer shows nothing."""

    ephemeral: str | None = None
    replacement: SlackMessage | None = None
    replace_via: Literal["response_url", "chat.update"] = "response_url"


ActionHandler = Callable[[Click], ActionAnswer]


class Registry:
    """Handlers by ``action_id``. The app's is :data:`actions`; a test may build its own."""

    def __init__(self) -> None:
        self._handlers: dict[str, ActionHandler] = {}
        self._lock = threading.Lock()

    def register(self, action_id: str, handler: ActionHandler, *, replace: bool = False) -> None:
        """Have ``handler`` answer clicks on ``action_id``. Registering an ``action_id`` twice is
        a mistake (two modules claiming one button) unless ``replace`` says it is meant."""
        with self._lock:
            if action_id in self._handlers and not replace:
                raise ValueError(f"a handler is already registered for action_id {action_id!r}")
            self._handlers[action_id] = handler

    def action(self, action_id: str) -> Callable[[ActionHandler], ActionHandler]:
        """Decorator form of :meth:`register`."""
        def decorate(handler: ActionHandler) -> ActionHandler:
            self.register(action_id, handler)
            return handler
        return decorate

    def handler(self, action_id: str) -> ActionHandler | None:
        """The handler for ``action_id``, if any."""
        with self._lock:
            return self._handlers.get(action_id)


actions = Registry()
register = actions.register
action = actions.action

# When the current click's handler must be done (time.monotonic()); set in the handler's thread.
_handler_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("handler_deadline")


def time_left() -> float:
    """Seconds the running action handler has left (0 once spent; :data:`HANDLER_SECONDS`
    outside a handler). Give an AWS client's timeouts no more than this."""
    deadline = _handler_deadline.get(None)
    return HANDLER_SECONDS if deadline is None else max(0.0, deadline - time.monotonic())


def answer_click(request: Request | None, *, registry: Registry | None = None,
                 clock: Clock | None = None) -> Response:
    """Answer Slack's POST to the actions route (``request``: ``app.current_request``, which Chalice
    sets for every route invocation).

    ``registry`` defaults to :data:`actions`; ``clock`` is slack-sdk's clock seam for the
    timestamp check (tests). Never raises, and never answers 5xx but 503 for a missing secret.
    """
    started = time.monotonic()
    masking.install()
    try:
        logging.getLogger("batch_notify").setLevel(settings().log_level)
        if request is None:
            raise Rejection(400, "no request")
        body = request.raw_body
        text = check_request(request.headers, body if isinstance(body, bytes) else body.encode(), clock=clock)
        click = parse_click(text)
    except Rejection as refused:
        return _refuse(refused.status, refused.reason)
    except BatchNotifyError as error:  # a bad LOG_LEVEL: the stage's fault, not the caller's
        return _refuse(503, masking.mask(str(error)))
    handler = (registry or actions).handler(click.action.action_id)
    if handler is None:
        log_line(logging.WARNING, warning="a click on an unknown action: answered 'unknown action'",
                 action_id=click.action.action_id, user=click.user_id, channel=click.channel_id)
        text = UNKNOWN_ACTION.format(action=safe_mrkdwn(click.action.action_id, 80))
        _deliver(click, ActionAnswer(ephemeral=text), started + ANSWER_SECONDS)
        return _ok()
    _run(handler, click, started)
    return _ok()


def _ok() -> Response:
    return Response(body="", status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})


def _refuse(status: int, reason: str) -> Response:
    log_line(logging.WARNING, warning="refused a request to the Slack actions route", status=status, reason=reason)
    # The reason is the caller's to fix, except a misconfiguration: that is the log's to say.
    shown = "this app cannot verify Slack's requests yet (see its log)" if status == 503 else reason
    return Response(body=shown, status_code=status, headers={"Content-Type": "text/plain; charset=utf-8"})


class _Run:
    """One handler call in its thread: its answer, and who delivers it (the request, or the
    thread itself once the request stopped waiting)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answer: ActionAnswer | None = None
        self.done = False
        self.abandoned = False


def _run(handler: ActionHandler, click: Click, started: float) -> None:
    """Run ``handler`` for ``click`` within the budget and deliver its answer (see the module's
    docstring for an overrun)."""
    run = _Run()
    context = contextvars.copy_context()
    context.run(_handler_deadline.set, started + HANDLER_SECONDS)
    worker = threading.Thread(target=context.run, args=(_call, handler, click, run), daemon=True,
                              name=f"action-{click.action.action_id[:40]}")
    worker.start()
    worker.join(max(0.0, started + HANDLER_SECONDS - time.monotonic()))
    with run.lock:
        finished = run.done
        run.abandoned = not finished
    if finished and run.answer is not None:
        _deliver(click, run.answer, started + ANSWER_SECONDS)
    elif not finished:
        log_line(logging.WARNING, warning=f"an action handler overran its {HANDLER_SECONDS:g} s: Slack answered, "
                 "its outcome goes to the response_url when it returns", action_id=click.action.action_id)
        _deliver(click, ActionAnswer(ephemeral=STILL_WORKING), started + ANSWER_SECONDS)


def _call(handler: ActionHandler, click: Click, run: _Run) -> None:
    """The handler thread's body: never lets an exception escape (the clicker is told instead)."""
    try:
        answer = handler(click)
        if not isinstance(answer, ActionAnswer):
            raise TypeError(f"the handler returned {type(answer).__name__}, not an ActionAnswer")
    except Exception as error:
        log_line(logging.ERROR, error="an action handler failed", action_id=click.action.action_id,
                 type=type(error).__name__, reason=masking.mask(str(error))[:300])
        answer = ActionAnswer(ephemeral=HANDLER_FAILED.format(error=type(error).__name__))
    with run.lock:
        run.answer, run.done = answer, True
        late = run.abandoned
    if late:
        _deliver(click, answer, time.monotonic() + LATE_DELIVERY_SECONDS)


def _deliver(click: Click, answer: ActionAnswer, deadline: float) -> None:
    """Show ``answer`` to the clicker by ``deadline`` (time.monotonic()); a failure is logged,
    never raised: Slack's 200 does not depend on it."""
    if answer.replacement is not None:
        if answer.replace_via == "chat.update":
            _update(click, answer.replacement, deadline)
        else:
            respond(click.response_url, {"replace_original": True, **answer.replacement.to_dict()}, deadline=deadline)
    if answer.ephemeral:
        respond(click.response_url, {"response_type": "ephemeral", "replace_original": False,
                                     "text": truncate(answer.ephemeral, EPHEMERAL_TEXT_LIMIT)}, deadline=deadline)


def respond(response_url: str, payload: Mapping[str, Any], *, deadline: float) -> bool:
    """POST ``payload`` (JSON) to a click's ``response_url`` once, by ``deadline``
    (time.monotonic()), over the bounded transport (no redirect followed, no answer read past
    1 MiB); configured secrets masked in it. Whether Slack took it; a failure is logged (the
    URL's host only: the URL lets anyone post into the channel for 30 minutes)."""
    seconds = deadline - time.monotonic()
    data = json.dumps(masking.mask_json(dict(payload))).encode("utf-8")
    request = urllib.request.Request(response_url, data=data, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        answer = BoundedTransport(request_timeout=max(seconds, 0.0), budget_seconds=max(seconds, 0.0)).perform(request)
    except HTTPError as error:
        _not_shown(response_url, describe(error.code, error.headers.get("Content-Type"), None))
        return False
    except Exception as error:  # timeouts, refused connections, redirects, oversized answers
        _not_shown(response_url, f"{type(error).__name__}: {masking.mask(str(error))[:200]}")
        return False
    log.debug(json.dumps({"info": "answered a click via its response_url", "answer": answer.summary()}))
    return True


def _not_shown(response_url: str, what: str) -> None:
    log_line(logging.WARNING, warning="could not answer a click through its response_url", host=safe_host(response_url),
             failure=what)


def _update(click: Click, message: SlackMessage, deadline: float) -> None:
    left = deadline - time.monotonic()
    try:
        slack_settings = settings().slack
        # One short try: the stage's budget (SLACK_DELIVERY_BUDGET_SECONDS) is for events, not clicks.
        tight = dataclasses.replace(slack_settings, request_timeout=max(left, 0.1), delivery_budget=max(left, 0.1))
        Slack(tight).update(MessageRef(click.channel_id, click.message_ts), message)
    except BatchNotifyError as error:  # DeliveryError, BotTokenNeeded, ConfigError...
        log_line(logging.WARNING, warning="could not replace the clicked message (chat.update)",
                 channel=click.channel_id, failure=masking.mask(str(error))[:300])
