"""Conversation mode: one living message per job, its later events in its thread, storms grouped.

With a bot token and the state table (``NOTIFY_STATE_TABLE``), an event for a job:

- with no message yet in the channel: posts the headline (what failed and why, at a glance) and
  its detail (attempt history, log tail) as the thread's first reply; a FAILED job in a storm is
  a line in the storm's group message instead (chalicelib/delivering/storm_posting.py);
- whose message shows an older state: updates that message in place (``chat.update``, never
  pinging anyone again) and replies in its thread what changed, broadcast to the channel when the
  job failed; the route's people are mentioned on the job's first failure only;
- whose message already shows this state or a newer one (a duplicate, a late RUNNING): nothing.

A message deleted in Slack is posted afresh. A Slack or DynamoDB error gives the job's lease back
and raises, so Lambda retries the event; nothing is half-recorded (chalicelib/deciding/job_messages.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

from chalicelib.composing.conversation import change_reply, detail, headline, without_mentions
from chalicelib.composing.messages import SlackMessage, with_mentions
from chalicelib.core.logline import log_line
from chalicelib.core.state_table import StateError, StateTable
from chalicelib.deciding.job_messages import (
    JobMessage,
    JobMessages,
    NewState,
    event_time,
    job_key,
    job_order,
    state_label,
)
from chalicelib.deciding.storms import Grouping
from chalicelib.delivering.slack import DeliveryError, MessageNotFound, MessageRef, Slack
from chalicelib.delivering.storm_posting import join_storm
from chalicelib.reading.event import JobStateChange

# A job's lease outlives its holder's invocation by this much (clock skew between containers).
LEASE_MARGIN_SECONDS = 10.0


@dataclass(frozen=True)
class Conversed:
    """How one event went in conversation mode: its outcome, why, and the Slack HTTP requests made."""

    outcome: Literal["posted", "updated", "grouped", "skipped"]
    reason: str | None = None
    slack_attempts: int = 0


@dataclass(frozen=True)
class Conversation:
    """The pieces one event's conversation needs: where it goes and how to reach Slack and the table."""

    slack: Slack
    table: StateTable
    channel: str
    mentions: tuple[str, ...] = ()
    grouping: Grouping | None = None


def converse(job: JobStateChange, message: SlackMessage, conversation: Conversation, *, deadline: float) -> Conversed:
    """Post, update or leave the job's message for this event (the module's docstring); raise what
    Lambda should retry. ``message`` is the full message, without mentions; ``deadline`` is
    ``time.monotonic()`` by which the invocation must be done: no Slack call outlives it."""
    conversation = replace(conversation, slack=conversation.slack.within(deadline))
    key = job_key(job)
    if key is None:
        return _post_alone(message, conversation)
    records = JobMessages(conversation.table)
    # The lease outlives everything this invocation may still do, so it is never taken over from
    # a live holder (whose late chat.update would move the message backwards).
    lease = max(0.0, deadline - time.monotonic()) + LEASE_MARGIN_SECONDS
    turn = records.begin(key, job_order(job), conversation.channel, deadline=deadline, lease_seconds=lease)
    if turn.kind == "stale":
        shown = turn.message.status if turn.message else "?"
        return Conversed("skipped", reason=f"its message already shows {shown}, this state or a newer one")
    if turn.kind == "elsewhere":
        # Its message is in another channel (routed by status): in this one it starts anew,
        # storms included, but the job's record stays with its first channel.
        return _first(job, message, conversation, None, deadline)
    assert turn.owner is not None
    held = _Held(records, key, turn.owner)
    try:
        if turn.kind == "first":
            return _first(job, message, conversation, held, deadline)
        assert turn.message is not None
        return _update(job, message, conversation, held, turn.message)
    except BaseException:
        records.abandon(key, turn.owner)
        raise


@dataclass(frozen=True)
class _Held:
    """The job's record this invocation holds the lease on."""

    records: JobMessages
    key: str
    owner: str


def _post_alone(message: SlackMessage, conversation: Conversation) -> Conversed:
    """A message with nothing to thread under: posted whole, as without conversations."""
    delivery = conversation.slack.post(with_mentions(message, conversation.mentions), channel=conversation.channel)
    return Conversed("posted", slack_attempts=delivery.attempts)


def _first(job: JobStateChange, message: SlackMessage, conversation: Conversation, held: _Held | None,
           deadline: float) -> Conversed:
    state = _state(job, mentioned=bool(conversation.mentions))
    if conversation.grouping is not None and state.status == "FAILED":
        storm = join_storm(job, conversation.channel, conversation.mentions, conversation.grouping,
                           conversation.slack, conversation.table, deadline=deadline)
        if storm.grouped:
            # Recorded even without the group message's ts (its generation moved on): FAILED is final,
            # so the record only has to make a late or duplicate event of the job change nothing.
            if held is not None:
                _recorded(lambda: held.records.posted(held.key, held.owner, conversation.channel,
                                                      (conversation.channel, storm.ts or ""), state, shared=True),
                          held.key)
            return Conversed("grouped", reason=storm.describe())
    ref, attempts = _post_new(message, conversation, conversation.mentions)
    if held is not None:
        if ref is None:
            held.records.abandon(held.key, held.owner)  # nothing to update later: the next event starts anew
        else:
            _recorded(lambda: held.records.posted(held.key, held.owner, conversation.channel, _pair(ref), state),
                      held.key)
    return Conversed("posted", slack_attempts=attempts)


def _update(job: JobStateChange, message: SlackMessage, conversation: Conversation, held: _Held,
            shown: JobMessage) -> Conversed:
    assert shown.channel is not None and shown.ts is not None
    ref = MessageRef(shown.channel, shown.ts, asked=shown.asked)
    failed = state_label(job) == "FAILED"
    # The route's people hear of a job's failure once, in the reply that says it failed.
    mentions = conversation.mentions if failed and not shown.mentioned else ()
    state = _state(job, mentioned=shown.mentioned or bool(mentions))
    slack, attempts = conversation.slack, 0
    try:
        if not shown.shared:
            attempts += slack.update(ref, without_mentions(headline(message))).attempts
        attempts += slack.reply(ref, change_reply(shown.status or "?", job, _elapsed(shown, state), mentions),
                                broadcast=failed).attempts
    except MessageNotFound:
        # Deleted in Slack: this state starts a fresh message, recorded as the job's from now on.
        fresh, more = _post_new(message, conversation, conversation.mentions if failed else ())
        if fresh is not None:
            _recorded(lambda: held.records.posted(held.key, held.owner, conversation.channel, _pair(fresh), state),
                      held.key)
        return Conversed("posted", reason="its message was deleted in Slack: posted afresh",
                         slack_attempts=attempts + more)
    # From here on the change is in Slack: nothing may raise (Lambda's retry would post it again).
    attempts += _reply_detail(ref, message, slack)
    _recorded(lambda: held.records.applied(held.key, held.owner, state), held.key)
    return Conversed("updated", slack_attempts=attempts)


def _post_new(message: SlackMessage, conversation: Conversation,
              mentions: Sequence[str]) -> tuple[MessageRef | None, int]:
    """Post the headline (mentioning ``mentions``) and its detail in the thread: the message's ref
    (None if Slack named none) and the HTTP requests made. Once the headline is out nothing raises."""
    delivery = conversation.slack.post(with_mentions(headline(message), mentions), channel=conversation.channel)
    if delivery.ref is None:  # a bot token's chat.postMessage always names the message it posted
        log_line(logging.WARNING, warning="Slack posted the message but did not say which (no channel and ts in its "
                 "answer): it cannot be updated or threaded")
        return None, delivery.attempts
    return delivery.ref, delivery.attempts + _reply_detail(delivery.ref, message, conversation.slack)


def _reply_detail(ref: MessageRef, message: SlackMessage, slack: Slack) -> int:
    more = detail(message)
    if more is None:
        return 0
    try:
        return slack.reply(ref, more).attempts
    except (DeliveryError, StateError) as error:
        # Raising now would have Lambda's retry post the headline (or the change) again.
        log_line(logging.WARNING, warning="the message's detail (attempt history, log tail) was not posted in its "
                 "thread", reason=str(error), channel=ref.channel, ts=ref.ts)
        return 0


def _pair(ref: MessageRef) -> tuple[str, str]:
    return ref.channel, ref.ts


def _state(job: JobStateChange, *, mentioned: bool) -> NewState:
    return NewState(order=job_order(job), status=state_label(job), at=event_time(job), mentioned=mentioned)


def _elapsed(shown: JobMessage, state: NewState) -> timedelta | None:
    if shown.at is None or state.at is None or state.at < shown.at:
        return None
    return timedelta(seconds=state.at - shown.at)


def _recorded(record: Callable[[], bool], key: str) -> bool:
    """Run ``record`` (after Slack took the message); log instead of raising when it fails or the
    lease was lost: raising would have Lambda's retry post the message again."""
    try:
        if record():
            return True
        reason = "the job's lease ran out before it was recorded"
    except StateError as error:
        reason = str(error)
    log_line(logging.WARNING, warning="posted, but not recorded as the job's message: a later event of the job may "
             "post a message of its own", job=key, reason=reason)
    return False
