"""Idempotency: post each EventBridge event (by its ``id``) at most once.

EventBridge delivers at least once and Lambda retries failed invocations, so the same event
can reach a handler twice. When ``NOTIFY_STATE_TABLE`` names the app's state table
(``chalicelib/core/state_table.py``: partition key ``pk`` (S), TTL on ``expires_at``), the
handler claims the event with a conditional write before posting, and records it as posted
after::

    held = claim(event_id)
    if held.should_post:         # False: already posted -> skip
        try:
            deliver(...)
        except Exception:
            release(held)        # the retry may post
            raise
        mark_posted(held)

The :class:`Claim` is a value the caller keeps: it carries the owner token of the item this
invocation wrote, so no process state remembers who holds what.

An event's item is ``{pk: "event#<id>", state: "claimed", owner, claimed_until, expires_at}``
while one invocation posts, then ``{pk, state: "posted", posted_at, expires_at}``. A claim is
a lease: a Lambda that dies between claim and post (timeout, out of memory) cannot release it,
so once ``claimed_until`` has passed another invocation may take it over. A posted item blocks
re-posting until ``expires_at`` (the state table's ``NOTIFY_STATE_TTL_DAYS``, default 7).

Without ``NOTIFY_STATE_TABLE`` every call is a no-op and :func:`claim` says "post". Claims use
only ``dynamodb:PutItem`` and ``dynamodb:DeleteItem``; a stage without a table never makes a
DynamoDB client.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from chalicelib.core import state_table
from chalicelib.core.config import Settings, number_setting, settings
from chalicelib.core.state_table import (
    KEY,
    TABLE,
    ConditionFailed,
    StateError,
    StateSettings,
    StateTable,
    item_key,
    load_state_settings,
)

LEASE_SECONDS = "NOTIFY_DEDUP_LEASE_SECONDS"
KIND = "event"  # its items' pk: event#<event id>

# A claim must outlive the invocation that made it (lambda_timeout, 60 s in .chalice/config.json):
# a live invocation never loses its claim to another. And it should end before Lambda's
# second retry (about 3 minutes after the first attempt), so the event of an invocation that
# died without releasing its claim is still posted by a retry.
DEFAULT_LEASE_SECONDS = 120
MAX_LEASE_SECONDS = 900  # Lambda's longest timeout
# How long claim() waits for another live invocation holding the same event to finish (a
# duplicate delivered concurrently); most posts take well under a second.
DEFAULT_WAIT_SECONDS = 10.0
POLL_SECONDS = 0.5

CLAIMED = "claimed"
POSTED = "posted"

# One class for callers to catch: every state table error (this module's included) is a StateError.
DedupError = StateError


class Clock(Protocol):
    """Wall time (DynamoDB items hold epoch seconds) and sleep; tests pass a fake one."""

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _SystemClock:
    def time(self) -> float:
        return state_table.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = _SystemClock()


@dataclass(frozen=True)
class Claim:
    """What :func:`claim` decided for one event id; pass it to :func:`release` or :func:`mark_posted`.

    ``owner`` is the token of the item this invocation wrote, None when it holds nothing:
    dedup is off, the event has no id, or it was already posted (``should_post`` False).
    """

    event_id: str
    owner: str | None = None
    should_post: bool = True

    @property
    def held(self) -> bool:
        """True when this invocation holds a claim in the table."""
        return self.owner is not None


class ClaimHeld(DedupError):
    """Another invocation holds a live claim on the event: raise so Lambda retries it later."""


@dataclass(frozen=True)
class DedupSettings:
    """Where claims live (the state table, whose TTL they use) and how long a claim lasts."""

    state: StateSettings
    lease_seconds: int

    @property
    def table(self) -> str:
        """The state table's name."""
        return self.state.table


def load_dedup_settings(env: Mapping[str, str]) -> DedupSettings | None:
    """Validate the dedup settings in ``env``: None when ``NOTIFY_STATE_TABLE`` is unset or
    empty (dedup off); raise :class:`ConfigError` naming the variable when one is wrong."""
    state = load_state_settings(env)  # refuses the replaced variables, even without a table
    if state is None:
        return None
    lease = number_setting(env, LEASE_SECONDS, default=DEFAULT_LEASE_SECONDS, maximum=MAX_LEASE_SECONDS)
    return DedupSettings(state=state, lease_seconds=max(1, round(lease)))


def dedup_settings() -> DedupSettings | None:
    """This container's dedup settings (a section of the settings tree; None: dedup off)."""
    return settings().section(_dedup_section)


def _dedup_section(tree: Settings) -> DedupSettings | None:
    return load_dedup_settings(tree.env)


def enabled() -> bool:
    """True when ``NOTIFY_STATE_TABLE`` is set for this container, so events are claimed."""
    return dedup_settings() is not None


def event_key(event_id: str) -> str:
    """The state table ``pk`` of ``event_id``'s claim."""
    return item_key(KIND, event_id)


# Failure semantics of claim(), decided deliberately:
#
# - A live claim held by another invocation: wait a little, then raise ClaimHeld; never skip.
#   The holder may already be dead (timeout, out of memory) with its lease still running.
#   Skipping would end this delivery as a success, so Lambda would not retry it and nothing
#   would reach the on-failure queue: the notification would be lost without a trace. Raising
#   makes Lambda retry later, when the item says "posted" (skip) or the lease ran out (post).
#   The wait covers the common case, a duplicate delivered at the same moment, without an error.
#
# - A DynamoDB error (missing table, no permission, throttling, timeout): raise DedupError and
#   post nothing. Posting without a decision would risk only a duplicate, but raising loses
#   nothing either: Lambda retries the invocation twice over about three minutes, then the
#   event goes to the on-failure queue and the Errors alarm fires (tools/merge_template.py).
#   And a wrong table name or a missing IAM permission must fail loudly at the first
#   invocation, like every other setting, instead of silently turning dedup off (or posting
#   every retry twice). The price: alerts are late while DynamoDB itself fails in the region.
def claim(event_id: str, *, wait_seconds: float = DEFAULT_WAIT_SECONDS, clock: Clock = SYSTEM_CLOCK) -> Claim:
    """Claim ``event_id`` for this invocation. The :class:`Claim` says whether to post
    (``should_post`` False: the event was already posted, skip it); always post when dedup is off.

    When another invocation holds a live claim (a duplicate delivered at the same time), wait
    up to ``wait_seconds`` for it to finish: skip once it posted, post if it released its
    claim or its lease ran out. Still held after that: raise :class:`ClaimHeld`, so Lambda
    retries this delivery later. Any DynamoDB error raises :class:`DedupError` naming the
    table. Either way nothing should be posted: let the error propagate.
    """
    found = dedup_settings()
    if found is None or not event_id:
        return Claim(event_id)  # off, or nothing to key on (EventBridge always sends an id): post
    table = StateTable(found.state)
    deadline = clock.time() + wait_seconds
    while True:
        token = uuid.uuid4().hex
        state, held_until = _try_claim(table, found.lease_seconds, event_id, token, clock)
        if state is None:
            return Claim(event_id, owner=token)
        if state == POSTED:
            return Claim(event_id, should_post=False)
        if clock.time() + POLL_SECONDS > deadline:
            raise _held(table, event_id, held_until)
        clock.sleep(POLL_SECONDS)


def _held(table: StateTable, event_id: str, held_until: float | None) -> ClaimHeld:
    until = datetime.fromtimestamp(held_until, UTC).strftime("%H:%M:%SZ") if held_until else "?"
    return ClaimHeld(f"event {event_id} is being posted by another invocation (its claim in DynamoDB table "
                     f"{table.name!r} ({TABLE}) runs until {until}); raising so Lambda retries this delivery later")


def mark_posted(claim: Claim, *, clock: Clock = SYSTEM_CLOCK) -> None:
    """Record the claimed event as posted: later deliveries skip it until its TTL. No-op when
    the claim holds nothing (dedup off, no id).

    Written without a condition: whoever posted may say so, even if its lease was taken over
    meanwhile (a late "posted" can only prevent a further duplicate). Raises
    :class:`DedupError` on a DynamoDB error: the message is already in Slack, so the caller
    should log it and not raise (a retry could only post it again).
    """
    found = dedup_settings()
    if found is None or not claim.held:
        return
    table = StateTable(found.state)
    now = int(clock.time())
    table.put({KEY: event_key(claim.event_id), "state": POSTED, "posted_at": now, "expires_at": table.expires(now)})


def release(claim: Claim) -> None:
    """Give up ``claim`` after a failed post, so Lambda's retry can post. Only our own, still
    "claimed" item is deleted (its owner is the claim's token). No-op when it holds nothing.

    Raises :class:`DedupError` on a DynamoDB error; the claim then ends with its lease, and a
    later retry posts. The caller should log it and raise the delivery's own error.
    """
    found = dedup_settings()
    if found is None or claim.owner is None:
        return
    # A lost condition: the claim is no longer ours (taken over after its lease, or posted): leave it.
    with contextlib.suppress(ConditionFailed):
        StateTable(found.state).delete(
            event_key(claim.event_id), condition="#owner = :token AND #state = :claimed",
            names={"#owner": "owner", "#state": "state"}, values={":token": claim.owner, ":claimed": CLAIMED})


def _try_claim(table: StateTable, lease_seconds: int, event_id: str, token: str,
               clock: Clock) -> tuple[str | None, float | None]:
    """(None, None) when claimed; else the current item's state and claimed_until."""
    now = int(clock.time())
    item = {KEY: event_key(event_id), "state": CLAIMED, "owner": token, "claimed_until": now + lease_seconds,
            "expires_at": table.expires(now)}
    try:
        table.put(
            item,
            # New; or expired but not yet removed (DynamoDB's TTL deletes lazily, up to days
            # late); or a claim whose lease ran out (its invocation died before posting).
            condition="attribute_not_exists(#pk) OR #expires < :now OR (#state = :claimed AND #until < :now)",
            # "state" is a DynamoDB reserved word (as is "owner"): attributes go through #names.
            names={"#pk": KEY, "#expires": "expires_at", "#state": "state", "#until": "claimed_until"},
            values={":now": now, ":claimed": CLAIMED})
    except ConditionFailed as failed:
        state = failed.item.get("state")
        until = failed.item.get("claimed_until")
        if state not in (CLAIMED, POSTED):
            raise DedupError(f"DynamoDB table {table.name!r} ({TABLE}) holds an item {event_key(event_id)} "
                             f"with state {state!r}: is the table used by something else?") from None
        return state, float(until) if isinstance(until, (int, float)) else None
    return None, None
