"""A job's living message: which Slack message shows a job, and which of its states it shows.

One item per job in the state table (``job#<job ARN>``, or the job id without an ARN)::

    {pk, asked, channel, ts, order, status, at, mentioned, shared, expires_at}   and, while a call is in flight,
    {owner, lease_until}

EventBridge delivers at least once and in no set order, so a state is applied only when it is
*newer* than the one the message shows (:func:`state_order`): a late RUNNING after FAILED, or a
duplicate, changes nothing. The calls that change the message are serialized per job by a lease
in the same item (``owner``, ``lease_until``): two events of one job never edit its message at
once, so Slack never ends up showing the older of two states. The lease ends by itself when its
holder dies (a Lambda timeout), and the next event (or Lambda's retry) takes over.

``asked`` is the channel as the configuration names it (``#alerts`` or an ID), what a later event is
compared by; ``channel`` is the ID Slack answered with, what ``chat.update`` needs.
``shared`` marks a message that shows several jobs (the sweep's stuck report): their later
events are replies in its thread, never a ``chat.update`` of it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from chalicelib.core.errors import BatchNotifyError
from chalicelib.core.state_table import ConditionFailed, Item, StateTable, item_key, now
from chalicelib.reading.event import JobStateChange

# A job's states in the order they can happen; a later event applies only when its order is greater.
# Batch moves a job that will be retried back to RUNNABLE, so the attempt count comes first.
# Spaced by ten: a queue-blocked warning (Batch's word on why a RUNNABLE job cannot run) is news
# after a stuck report or a RUNNABLE message of the same job.
# SCHEDULED (a service job handed to SageMaker AI) comes after a queue-blocked warning of its RUNNABLE wait.
_RANKS = {"SUBMITTED": 10, "PENDING": 20, "RUNNABLE": 30, "STUCK": 30, "BLOCKED": 35, "SCHEDULED": 38,
          "STARTING": 40, "RUNNING": 50}
FINAL_ORDER = 10_000  # SUCCEEDED and FAILED: nothing comes after them
FINAL = ("SUCCEEDED", "FAILED")
_MAX_ATTEMPTS_COUNTED = 99
STUCK = "STUCK"

# The default lease, for callers that do not say: longer than a Lambda invocation (60 s on the
# deployed stages), so it never runs out under a live holder, and shorter than Lambda's retry delay.
LEASE_SECONDS = 70
POLL_SECONDS = 0.25


class JobBusy(BatchNotifyError):
    """Another invocation is changing the job's message and did not finish in time: Lambda retries."""


def job_key(job: JobStateChange) -> str | None:
    """What a job's message is recorded under: its ARN, else its id; None when the event has neither."""
    return job.job_arn or job.job_id or None


def state_label(job: JobStateChange) -> str:
    """The state a message shows: ``BLOCKED`` for a queue-blocked warning, else the job's status."""
    if job.is_queue_blocked:
        return "BLOCKED"
    return job.status or "UNKNOWN"


def state_order(label: str, attempts: int = 0) -> int:
    """Where a state stands among a job's states (see the module's docstring)."""
    if label in FINAL:
        return FINAL_ORDER
    return min(attempts, _MAX_ATTEMPTS_COUNTED) * 100 + _RANKS.get(label, 0)


def job_order(job: JobStateChange) -> int:
    """:func:`state_order` of the event's state."""
    return state_order(state_label(job), len(job.attempts))


def event_time(job: JobStateChange) -> float | None:
    """The event's time in epoch seconds (EventBridge's ``time``), None when absent or unreadable."""
    try:
        return datetime.fromisoformat(job.time).timestamp() if job.time else None
    except ValueError:
        return None


@dataclass(frozen=True)
class JobMessage:
    """What the table says about a job's message."""

    key: str
    asked: str | None
    channel: str | None
    ts: str | None
    order: int
    status: str | None
    at: float | None
    mentioned: bool
    shared: bool

    @staticmethod
    def from_item(item: Item) -> JobMessage:
        def text(name: str) -> str | None:
            value = item.get(name)
            return value if isinstance(value, str) else None

        def number(name: str) -> float | None:
            value = item.get(name)
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

        return JobMessage(key=text("key") or str(item.get("pk", "")).removeprefix("job#"), asked=text("asked"),
                          channel=text("channel"), ts=text("ts"),
                          order=int(number("order") or 0), status=text("status"), at=number("at"),
                          mentioned=item.get("mentioned") is True, shared=item.get("shared") is True)


@dataclass(frozen=True)
class Turn:
    """What :meth:`JobMessages.begin` decided for one event of a job.

    - ``first``: no message yet; post one, then :meth:`JobMessages.posted` (or :meth:`JobMessages.abandon`).
    - ``update``: the message shows an older state; change it, then :meth:`JobMessages.applied` (or abandon).
    - ``stale``: the message already shows this state or a newer one: change nothing.
    - ``elsewhere``: the job's message is in another channel: post this one on its own, record nothing.
    """

    kind: Literal["first", "update", "stale", "elsewhere"]
    owner: str | None = None
    message: JobMessage | None = None


@dataclass(frozen=True)
class NewState:
    """The state a call made the message show."""

    order: int
    status: str
    at: float | None
    mentioned: bool


class JobMessages:
    """The job items of one state table; every change is a conditional write."""

    def __init__(self, table: StateTable, *, clock: Callable[[], float] = now,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.table, self.clock, self.sleep = table, clock, sleep

    def find(self, key: str) -> JobMessage | None:
        """The job's message, if one was recorded."""
        item = self.table.get(_pk(key))
        return None if item is None or "ts" not in item else JobMessage.from_item(item)

    def begin(self, key: str, order: int, channel: str, *, deadline: float,
              lease_seconds: float = LEASE_SECONDS) -> Turn:
        """Decide what an event of state ``order`` does to the job's message in ``channel``, taking the
        job's lease when it changes something. Waits while another invocation holds the lease; past
        ``deadline`` (``time.monotonic()``) raises :class:`JobBusy` so Lambda retries later. The lease
        lasts ``lease_seconds``: longer than anything the caller will still do under it."""
        while True:
            turn = self._try_begin(key, order, channel, lease_seconds)
            if turn is not None:
                return turn
            if time.monotonic() + POLL_SECONDS > deadline:
                raise JobBusy(f"the message of job {key} is being changed by another invocation; raising so "
                              "Lambda retries this event later")
            self.sleep(POLL_SECONDS)

    def _try_begin(self, key: str, order: int, channel: str, lease: float) -> Turn | None:
        at = self.clock()
        owner = uuid.uuid4().hex
        try:
            self.table.put({"pk": _pk(key), "owner": owner, "lease_until": at + lease,
                            "expires_at": self.table.expires(at)},
                           # New; or expired but not yet removed (TTL deletes lazily); or a first post whose
                           # holder died before recording it.
                           condition="attribute_not_exists(pk) OR expires_at < :now OR "
                                     "(attribute_not_exists(ts) AND lease_until < :now)",
                           values={":now": at})
        except ConditionFailed as failed:
            return self._begin_over(key, JobMessage.from_item(failed.item), failed.item, order, channel, owner,
                                    at, lease)
        return Turn("first", owner=owner)

    def _begin_over(self, key: str, message: JobMessage, item: Item, order: int, channel: str, owner: str,
                    at: float, lease: float) -> Turn | None:
        if message.ts is None:
            return None  # its first message is being posted: wait for it
        if message.asked != channel:
            return Turn("elsewhere", message=message)
        if message.order >= order:
            return Turn("stale", message=message)
        if _leased(item, at):
            return None
        try:
            self.table.update(_pk(key), "SET #owner = :owner, lease_until = :until",
                              condition="attribute_exists(ts) AND #order < :order AND "
                                        "(attribute_not_exists(#owner) OR lease_until < :now)",
                              names={"#owner": "owner", "#order": "order"},
                              values={":owner": owner, ":until": at + lease, ":order": order, ":now": at})
        except ConditionFailed:
            return None  # changed meanwhile: look again
        return Turn("update", owner=owner, message=message)

    def posted(self, key: str, owner: str, asked: str, ref: tuple[str, str], state: NewState, *,
               shared: bool = False) -> bool:
        """Record the job's first message (or a fresh one, after the old was deleted) and end the lease:
        ``asked`` is the channel as configured, ``ref`` the (channel ID, ts) Slack answered.
        False when the lease was lost meanwhile (the caller logs it: the message is in Slack)."""
        channel, ts = ref
        return self._finish(key, "SET #asked = :asked, #channel = :channel, #ts = :ts, #shared = :shared, ", state,
                            owner, {":asked": asked, ":channel": channel, ":ts": ts, ":shared": shared})

    def applied(self, key: str, owner: str, state: NewState) -> bool:
        """Record the newer state the message now shows and end the lease (False: the lease was lost)."""
        return self._finish(key, "SET ", state, owner, {})

    def _finish(self, key: str, setting: str, state: NewState, owner: str, values: dict[str, Any]) -> bool:
        expression = (setting + "#order = :order, #status = :status, #at = :at, #mentioned = :mentioned, "
                      "#expires = :expires REMOVE #owner, #until")
        values = {**values, ":order": state.order, ":status": state.status, ":at": state.at,
                  ":mentioned": state.mentioned, ":owner": owner, ":expires": self.table.expires(self.clock())}
        try:
            self.table.update(_pk(key), expression, condition="#owner = :owner",
                              names={f"#{name}": name for name in _ATTRIBUTES if f"#{name}" in expression}
                              | {"#until": "lease_until", "#expires": "expires_at"}, values=values)
        except ConditionFailed:
            return False
        return True

    def abandon(self, key: str, owner: str) -> None:
        """Give the lease back after a failed Slack call, so Lambda's retry can try again: a first post's
        item goes; an update's lease is removed. A lost condition (the lease ran out) leaves it."""
        try:
            self.table.delete(_pk(key), condition="#owner = :owner AND attribute_not_exists(ts)",
                              names={"#owner": "owner"}, values={":owner": owner})
            return
        except ConditionFailed as failed:
            if failed.item.get("owner") != owner:
                return
        try:
            self.table.update(_pk(key), "REMOVE #owner, lease_until", condition="#owner = :owner",
                              names={"#owner": "owner"}, values={":owner": owner})
        except ConditionFailed:
            return

    def record_shared(self, key: str, asked: str, ref: tuple[str, str], label: str, at: float | None) -> bool:
        """Record that the shared message ``ref`` (the sweep's report, posted to ``asked``) shows the
        job, unless it already has a message; False when it had one."""
        channel, ts = ref
        item: dict[str, Any] = {"pk": _pk(key), "asked": asked, "channel": channel, "ts": ts,
                                "order": state_order(label), "status": label, "at": at, "mentioned": False,
                                "shared": True, "expires_at": self.table.expires(self.clock())}
        try:
            self.table.put(item, condition="attribute_not_exists(pk) OR expires_at < :now",
                           values={":now": self.clock()})
        except ConditionFailed:
            return False
        return True


# Every attribute goes through a #name: DynamoDB reserves hundreds of words ("owner", "order",
# "status", "shared", ...), and a new one in an expression fails only at run time.
_ATTRIBUTES = ("asked", "channel", "ts", "shared", "order", "status", "at", "mentioned", "owner")


def _pk(key: str) -> str:
    return item_key("job", key)


def _leased(item: Item, at: float) -> bool:
    until = item.get("lease_until")
    return "owner" in item and isinstance(until, int | float) and until >= at
