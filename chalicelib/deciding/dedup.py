"""Optional idempotency: post each EventBridge event (by its ``id``) at most once.

EventBridge delivers at least once and Lambda retries failed invocations, so the same event
can reach a handler twice. When ``NOTIFY_DEDUP_TABLE`` names a DynamoDB table (partition key
``event_id`` (S), TTL on ``expires_at``), the handler claims the event with a conditional
write before posting, and records it as posted after::

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

An item is ``{event_id, state: "claimed", owner, claimed_until, expires_at}`` while one
invocation posts, then ``{event_id, state: "posted", posted_at, expires_at}``. A claim is a
lease: a Lambda that dies between claim and post (timeout, out of memory) cannot release it,
so once ``claimed_until`` has passed another invocation may take it over. A posted item
blocks re-posting until ``expires_at`` (``NOTIFY_DEDUP_TTL_DAYS``, default 7).

Without ``NOTIFY_DEDUP_TABLE`` every call is a no-op and :func:`claim` says "post".
The code calls only ``dynamodb:PutItem`` and ``dynamodb:DeleteItem``. The client comes from
``chalicelib/core/clients.py``, made at first use: a stage without a table never makes one.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from chalicelib.core.aws_errors import Family, describe_aws_error
from chalicelib.core.clients import ClientConfig, client
from chalicelib.core.config import ConfigError, Settings, number_setting, settings
from chalicelib.core.errors import BatchNotifyError

TABLE = "NOTIFY_DEDUP_TABLE"
TTL_DAYS = "NOTIFY_DEDUP_TTL_DAYS"
LEASE_SECONDS = "NOTIFY_DEDUP_LEASE_SECONDS"

DEFAULT_TTL_DAYS = 7.0
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

# DynamoDB table names: 3 to 255 of letters, digits, '_', '-' and '.'.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")

CLAIMED = "claimed"
POSTED = "posted"
# Everything this module calls on the table: the IAM policy grants these and no more
# (tools/merge_template.py; tests/test_dedup.py records the calls made).
IAM_ACTIONS = ("dynamodb:PutItem", "dynamodb:DeleteItem")



class Clock(Protocol):
    """Wall time (DynamoDB items hold epoch seconds) and sleep; tests pass a fake one."""

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _SystemClock:
    def time(self) -> float:
        return time.time()

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


class DedupError(BatchNotifyError):
    """DynamoDB could not record or decide a claim; the message names the table."""


class ClaimHeld(DedupError):
    """Another invocation holds a live claim on the event: raise so Lambda retries it later."""


class _ConditionFailed(Exception):
    """A conditional write lost; ``item`` is the item that won (DynamoDB's ALL_OLD)."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("conditional check failed")
        self.item = item


@dataclass(frozen=True)
class DedupSettings:
    """Where claims live and how long they last."""

    table: str
    ttl_seconds: int
    lease_seconds: int


def load_dedup_settings(env: Mapping[str, str]) -> DedupSettings | None:
    """Validate the dedup settings in ``env``: None when ``NOTIFY_DEDUP_TABLE`` is unset or
    empty (dedup off); raise :class:`ConfigError` naming the variable when one is wrong."""
    table = env.get(TABLE, "").strip()
    if not table:
        return None
    if not _TABLE_NAME.fullmatch(table):
        raise ConfigError(f"{TABLE}={table!r} is not a DynamoDB table name (3 to 255 letters, digits, "
                          "'_', '-' or '.'; the table must be in the function's region)")
    ttl_days = number_setting(env, TTL_DAYS, default=DEFAULT_TTL_DAYS, maximum=365, unit="days")
    lease = number_setting(env, LEASE_SECONDS, default=DEFAULT_LEASE_SECONDS, maximum=MAX_LEASE_SECONDS)
    return DedupSettings(table=table, ttl_seconds=round(ttl_days * 86400), lease_seconds=max(1, round(lease)))


def dedup_settings() -> DedupSettings | None:
    """This container's dedup settings (a section of the settings tree; None: dedup off)."""
    return settings().section(_dedup_section)


def _dedup_section(tree: Settings) -> DedupSettings | None:
    return load_dedup_settings(tree.env)


# Short timeouts and few attempts, as for SSM: a slow DynamoDB must not eat the Lambda's time;
# Lambda's own retry tries the whole invocation again.
DEDUP_CLIENT = ClientConfig(connect_timeout=2, read_timeout=3, attempts=3)


def dynamodb_client() -> Any:
    """This container's DynamoDB client (``core/clients.py``; tests hook its calls through
    ``meta.events``, or hand in their own with ``clients.use_client``)."""
    return client("dynamodb", DEDUP_CLIENT)


def enabled() -> bool:
    """True when ``NOTIFY_DEDUP_TABLE`` is set for this container."""
    return dedup_settings() is not None


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
    settings = dedup_settings()
    if settings is None or not event_id:
        return Claim(event_id)  # off, or nothing to key on (EventBridge always sends an id): post
    deadline = clock.time() + wait_seconds
    while True:
        token = uuid.uuid4().hex
        state, held_until = _try_claim(settings, event_id, token, clock)
        if state is None:
            return Claim(event_id, owner=token)
        if state == POSTED:
            return Claim(event_id, should_post=False)
        if clock.time() + POLL_SECONDS > deadline:
            raise _held(settings, event_id, held_until)
        clock.sleep(POLL_SECONDS)


def _held(settings: DedupSettings, event_id: str, held_until: float | None) -> ClaimHeld:
    until = datetime.fromtimestamp(held_until, UTC).strftime("%H:%M:%SZ") if held_until else "?"
    return ClaimHeld(f"event {event_id} is being posted by another invocation (its claim in DynamoDB table "
                     f"{settings.table!r} runs until {until}); raising so Lambda retries this delivery later")


def mark_posted(claim: Claim, *, clock: Clock = SYSTEM_CLOCK) -> None:
    """Record the claimed event as posted: later deliveries skip it until its TTL. No-op when
    the claim holds nothing (dedup off, no id).

    Written without a condition: whoever posted may say so, even if its lease was taken over
    meanwhile (a late "posted" can only prevent a further duplicate). Raises
    :class:`DedupError` on a DynamoDB error: the message is already in Slack, so the caller
    should log it and not raise (a retry could only post it again).
    """
    settings = dedup_settings()
    if settings is None or not claim.held:
        return
    event_id = claim.event_id
    now = int(clock.time())
    item = {"event_id": {"S": event_id}, "state": {"S": POSTED}, "posted_at": {"N": str(now)},
            "expires_at": {"N": str(now + settings.ttl_seconds)}}
    _call(settings, "PutItem", "record event " + event_id + " as posted", lambda c: c.put_item(
        TableName=settings.table, Item=item))


def release(claim: Claim) -> None:
    """Give up ``claim`` after a failed post, so Lambda's retry can post. Only our own, still
    "claimed" item is deleted (its owner is the claim's token). No-op when it holds nothing.

    Raises :class:`DedupError` on a DynamoDB error; the claim then ends with its lease, and a
    later retry posts. The caller should log it and raise the delivery's own error.
    """
    settings = dedup_settings()
    if settings is None or claim.owner is None:
        return
    token = claim.owner
    # A lost condition: the claim is no longer ours (taken over after its lease, or posted): leave it.
    with contextlib.suppress(_ConditionFailed):
        _call(settings, "DeleteItem", "release the claim on event " + claim.event_id, lambda c: c.delete_item(
            TableName=settings.table, Key={"event_id": {"S": claim.event_id}},
            ConditionExpression="#owner = :token AND #state = :claimed",
            ExpressionAttributeNames={"#owner": "owner", "#state": "state"},
            ExpressionAttributeValues={":token": {"S": token}, ":claimed": {"S": CLAIMED}}))


def _try_claim(settings: DedupSettings, event_id: str, token: str,
               clock: Clock) -> tuple[str | None, float | None]:
    """(None, None) when claimed; else the current item's state and claimed_until."""
    now = int(clock.time())
    item = {"event_id": {"S": event_id}, "state": {"S": CLAIMED}, "owner": {"S": token},
            "claimed_until": {"N": str(now + settings.lease_seconds)},
            "expires_at": {"N": str(now + settings.ttl_seconds)}}
    try:
        _call(settings, "PutItem", "claim event " + event_id, lambda c: c.put_item(
            TableName=settings.table, Item=item,
            # New; or expired but not yet removed (DynamoDB's TTL deletes lazily, up to days
            # late); or a claim whose lease ran out (its invocation died before posting).
            ConditionExpression=("attribute_not_exists(#id) OR #expires < :now "
                                 "OR (#state = :claimed AND #until < :now)"),
            # "state" is a DynamoDB reserved word (as is "owner"): attributes go through #names.
            ExpressionAttributeNames={"#id": "event_id", "#expires": "expires_at", "#state": "state",
                                      "#until": "claimed_until"},
            ExpressionAttributeValues={":now": {"N": str(now)}, ":claimed": {"S": CLAIMED}},
            # The item that won, in the same call: no read (and no dynamodb:GetItem) needed.
            ReturnValuesOnConditionCheckFailure="ALL_OLD"))
    except _ConditionFailed as failed:
        state = failed.item.get("state", {}).get("S")
        until = failed.item.get("claimed_until", {}).get("N")
        if state not in (CLAIMED, POSTED):
            raise DedupError(f"DynamoDB table {settings.table!r} ({TABLE}) holds an item for event {event_id} "
                             f"with state {state!r}: is the table used by something else?") from None
        return state, float(until) if until else None
    return None, None


def _call(settings: DedupSettings, action: str, doing: str, request: Callable[[Any], Any]) -> Any:
    """Run one DynamoDB request; raise _ConditionFailed or a DedupError naming the table and the fix."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = dynamodb_client()
    table = f"DynamoDB table {settings.table!r} ({TABLE})"
    try:
        return request(client)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        if code == "ConditionalCheckFailedException":
            raise _ConditionFailed(error.response.get("Item") or {}) from None
        if code == "ValidationException":
            message = error.response.get("Error", {}).get("Message", "")
            raise DedupError(f"could not {doing}: {table} rejected the request ({message}): its partition key "
                             "must be event_id, of type S (string)") from None
        raise DedupError(_in_words(error, action, f"{doing} in {table}", client.meta.region_name)) from None
    except BotoCoreError as error:
        raise DedupError(_in_words(error, action, f"{doing} in {table}", client.meta.region_name)) from None


def _in_words(error: BaseException, action: str, doing: str, region: str) -> str:
    fixes: dict[Family, str] = {
        "not found": f"it does not exist in {region}: create it (partition key event_id (S), TTL on expires_at) "
                     f"or fix {TABLE}",
        "access denied": f"not allowed to call dynamodb:{action}: the stage's IAM policy needs dynamodb:PutItem "
                         "and dynamodb:DeleteItem on the table",
    }
    words = describe_aws_error(error, service="DynamoDB", action=f"dynamodb:{action}", doing=doing, fixes=fixes)
    return f"{words}; raising so Lambda retries the event"
