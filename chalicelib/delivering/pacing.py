"""Fair pacing of Slack's calls per channel, shared by every container through the state table.

Slack allows about one ``chat.postMessage`` per second per channel (thread replies included) and
about 50 ``chat.update`` per minute. Answering a burst with 429s and retries is a lottery: an
unlucky event keeps losing the race for a free slot until its budget runs out. A :class:`Pacer`
hands out *turns* instead, first come first served: each call reserves the next free turn of its
channel and method, then sleeps until it.

:func:`table_pacer` keeps the next free turn in the state table item ``pace#<method>#<channel>``
(``next_at``, epoch seconds; ``expires_at`` a few minutes on). A reservation is one conditional
write, with no read first, in one of two branches:

- busy (``next_at`` is now or later, and no later than the caller's deadline): ``next_at`` moves
  one interval on, and the caller's turn is the old ``next_at``;
- idle (no ``next_at``, or it has passed): ``next_at`` becomes now + one interval, and the turn
  is now.

DynamoDB applies each write atomically, so turns are granted in the order the writes land and
each caller waits only for those ahead of it: nobody is starved. A caller whose turn would come
after its deadline reserves nothing (a turn nobody uses would delay everyone behind it) and gets
a retryable :class:`DeliveryError`, so Lambda retries the event later. A state table error
(:class:`StateError`) propagates as it is: the invocation fails and Lambda retries it, as for
dedup, so no notification is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import monotonic, sleep
from typing import Protocol

from chalicelib.core import state_table
from chalicelib.core.config import Settings, number_setting, settings
from chalicelib.core.state_table import ConditionFailed, Item, StateTable
from chalicelib.delivering.slack_errors import DeliveryError

POST = "post"  # chat.postMessage, thread replies and broadcasts included
UPDATE = "update"  # chat.update
POST_INTERVAL = 1.0  # Slack: about one message per second per channel
UPDATE_INTERVAL = 1.2  # Slack: chat.update about 50 per minute
INTERVALS: Mapping[str, float] = {POST: POST_INTERVAL, UPDATE: UPDATE_INTERVAL}
# A pace item is only useful while turns are queued: after that an idle channel starts afresh,
# so the TTL keeps the table from collecting dead channels. Each write sets expires_at to its own
# deadline + this, and a write only succeeds when the queue ends before that deadline, so the
# item always outlives its queue.
KEEP_SECONDS = 300

_WHAT = {POST: "chat.postMessage", UPDATE: "chat.update"}

_BUSY = "next_at >= :now AND next_at <= :latest"
_IDLE = "attribute_not_exists(next_at) OR next_at < :now"
_ATTEMPTS = 3  # writes per reservation: two suffice (see _reserve), one spare


class Pacer(Protocol):
    """Who may call Slack when: one turn per call, per method and channel."""

    def wait_turn(self, method: str, channel: str, deadline: float) -> None:
        """Return at the caller's turn to call ``method`` ("post" or "update") in ``channel``;
        ``deadline`` is the ``time.monotonic()`` by which the call must have started. Raise
        :class:`DeliveryError` (retryable) when no turn fits before it."""
        ...


@dataclass(frozen=True)
class Clock:
    """Wall time (turns are epoch seconds, shared across containers), the monotonic time that
    deadlines are given in, and sleep. Tests pass fakes."""

    time: Callable[[], float] = state_table.now
    monotonic: Callable[[], float] = monotonic
    sleep: Callable[[float], None] = sleep


SYSTEM_CLOCK = Clock()


PACE_SECONDS = "SLACK_PACE_SECONDS"
MAX_PACE_SECONDS = 10.0


def configured_intervals() -> Mapping[str, float]:
    """The turn intervals of this stage: ``SLACK_PACE_SECONDS`` between posts per channel (default 1,
    Slack's documented pace), and 1.2 times it between updates (a section of the settings tree)."""
    return settings().section(_intervals)


# Turns a little wider than Slack's pace: a post leaves some milliseconds after its turn (a
# container's scheduling, its network), and one that lands a hair early after a late one costs a
# 429 and a retry.
MARGIN = 1.1


def _intervals(tree: Settings) -> Mapping[str, float]:
    seconds = number_setting(tree.env, PACE_SECONDS, default=POST_INTERVAL, maximum=MAX_PACE_SECONDS) * MARGIN
    return {POST: seconds, UPDATE: seconds * UPDATE_INTERVAL / POST_INTERVAL}


def table_pacer(table: StateTable, *, clock: Clock = SYSTEM_CLOCK,
                intervals: Mapping[str, float] = INTERVALS) -> Pacer:
    """A :class:`Pacer` whose turns live in ``table`` (items ``pace#<method>#<channel>``), fair
    across every container that shares the table. ``intervals``: seconds between turns per
    method (tests pass shorter ones)."""
    return _TablePacer(table, clock, intervals)


def pace_key(method: str, channel: str) -> str:
    """The state table key of the turns of ``method`` in ``channel``."""
    return f"pace#{method}#{channel}"


@dataclass(frozen=True)
class _Request:
    """One caller's reservation request, all times in epoch seconds."""

    pk: str
    now: float
    latest: float  # the last turn the caller could still use (its deadline)
    interval: float


class _TablePacer:
    def __init__(self, table: StateTable, clock: Clock, intervals: Mapping[str, float]) -> None:
        self.table, self.clock, self.intervals = table, clock, intervals
        # The last next_at this container saw per item: only a guess of which branch to try
        # first (under a burst, busy), saving a write; the table decides.
        self._seen: dict[str, float] = {}

    def wait_turn(self, method: str, channel: str, deadline: float) -> None:
        interval = self.intervals.get(method)
        if interval is None:
            raise ValueError(f"unknown Slack method {method!r} to pace: one of {', '.join(self.intervals)}")
        now, left = self.clock.time(), deadline - self.clock.monotonic()
        what = f"{_WHAT.get(method, method)} in {channel}"
        if left < 0:
            raise DeliveryError(f"no turn for {what}: the delivery budget was spent before it; nothing reserved; "
                                "giving up for now so Lambda retries the event later")
        turn = self._reserve(_Request(pace_key(method, channel), now, now + left, interval), what)
        wait = turn - self.clock.time()
        if wait > 0:
            self.clock.sleep(wait)

    def _reserve(self, request: _Request, what: str) -> float:
        """The turn reserved for ``request`` (epoch seconds), or raise when none fits in time.

        A lost condition returns the item as it was, which says which branch applies now.
        ``next_at`` only grows (each write moves it past its old value), so after one lost
        branch the other either wins or the queue reaches past ``latest``: two writes at most,
        and nothing reserved when no turn fits."""
        busy = self._seen.get(request.pk, -1.0) >= request.now
        for _ in range(_ATTEMPTS):
            try:
                turn = self._busy(request) if busy else self._idle(request)
            except ConditionFailed as lost:
                queued_until = _next_at(lost.item)
                if queued_until is not None:
                    self._seen[request.pk] = queued_until
                if queued_until is not None and queued_until > request.latest:
                    raise _too_late(request, queued_until, what) from None
                busy = queued_until is not None and queued_until >= request.now
                continue
            self._seen[request.pk] = turn + request.interval
            return turn
        # Only if the item vanished and reappeared between writes (deleted by hand): retry later.
        raise DeliveryError(f"no turn for {what}: the pace item {request.pk} kept changing under {_ATTEMPTS} writes; "
                            "giving up for now so Lambda retries the event later")

    def _idle(self, request: _Request) -> float:
        self.table.update(request.pk, "SET next_at = :next, expires_at = :expires", condition=_IDLE,
                          values={":now": request.now, ":next": request.now + request.interval,
                                  ":expires": self._expires(request)})
        return request.now

    def _busy(self, request: _Request) -> float:
        after = self.table.update(request.pk, "SET next_at = next_at + :interval, expires_at = :expires",
                                  condition=_BUSY,
                                  values={":now": request.now, ":latest": request.latest,
                                          ":interval": request.interval, ":expires": self._expires(request)})
        return float(after["next_at"]) - request.interval

    def _expires(self, request: _Request) -> int:
        return self.table.expires(request.latest, KEEP_SECONDS)


def _too_late(request: _Request, queued_until: float, what: str) -> DeliveryError:
    ahead = queued_until - request.now
    return DeliveryError(
        f"no turn for {what} within {request.latest - request.now:.1f} s: the next free turn is in {ahead:.1f} s "
        f"(about {ahead / request.interval:.0f} call(s) queued ahead); nothing reserved; giving up for now so "
        "Lambda retries the event later")


def _next_at(item: Item) -> float | None:
    value = item.get("next_at")
    return float(value) if isinstance(value, int | float) else None
