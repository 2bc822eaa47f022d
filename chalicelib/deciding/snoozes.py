"""Snoozes: no messages for the jobs of one job name in one queue until a time.

A snooze holds in one account and region, the snoozed job's: a hub gets the events of many
accounts (see the README), whose queues and jobs may share names.

Items in the state table:

- ``snooze#<sha256 of account, region, queue and job name>`` {account, region, queue, job_name,
  until, by, set_at, skipped, job_arn}: one per (account, region, queue, job name). notify.py asks
  :func:`snoozed` before posting, skips a snoozed event and counts it (:func:`count_skip`). The
  item outlives its ``until`` by :data:`KEPT_AFTER_SECONDS`, so the next daily digest still counts what it skipped.
- ``snoozed-job#<job ARN>`` {snooze}: which snooze the job's message set, for its ``unsnooze``
  button (whose value is the job ARN: Batch may have forgotten the job by then).
- ``snooze-index#active`` {keys}: the string set of snooze keys, so the digest finds them without
  a Scan (which the stage's IAM does not allow). Bounded to :data:`MAX_SNOOZES`: one more is refused
  until one ends. Reading it drops keys whose item is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from chalicelib.core.errors import BatchNotifyError
from chalicelib.core.state_table import ConditionFailed, Item, StateTable, item_key, now, state_table
from chalicelib.reading.job_arn import parse_job_arn

# The snooze select's option values (Slack option values are short: "1h|<job ARN>").
DURATIONS: Mapping[str, int] = {"1h": 3600, "4h": 4 * 3600, "24h": 24 * 3600, "7d": 7 * 86400}
MAX_SNOOZES = 500
KEPT_AFTER_SECONDS = 2 * 86400  # the daily digest after a snooze ended still sees its count
INDEX_KEY = item_key("snooze-index", "active")


class TooManySnoozes(BatchNotifyError):
    """:data:`MAX_SNOOZES` snoozes are active: the message says to end one first."""


@dataclass(frozen=True)
class Snooze:
    """One snooze: jobs named ``job_name`` in ``queue`` are not posted until ``until`` (epoch
    seconds), set by Slack user ``by`` at ``set_at``; ``skipped`` events were not posted. In
    ``account`` and ``region`` (None for a snooze set before snoozes had them: it held everywhere)."""

    key: str
    queue: str
    job_name: str
    until: float
    by: str
    set_at: float
    skipped: int = 0
    reported: int = 0  # of ``skipped``, how many a digest already showed
    account: str | None = None
    region: str | None = None

    @staticmethod
    def from_item(item: Item) -> Snooze | None:
        queue, job_name, by = item.get("queue"), item.get("job_name"), item.get("by")
        until, set_at, skipped = item.get("until"), item.get("set_at"), item.get("skipped", 0)
        reported = item.get("reported", 0)
        account, region = item.get("account"), item.get("region")
        if not (isinstance(queue, str) and isinstance(job_name, str) and isinstance(by, str)
                and isinstance(until, int | float) and isinstance(set_at, int | float)):
            return None
        return Snooze(str(item["pk"]), queue, job_name, float(until), by, float(set_at),
                      skipped if isinstance(skipped, int) else 0, reported if isinstance(reported, int) else 0,
                      account if isinstance(account, str) else None, region if isinstance(region, str) else None)

    def active(self, at: float) -> bool:
        """Whether the snooze still holds at ``at``."""
        return at < self.until


class Scope(NamedTuple):
    """Where a snooze holds: an account and a region ("" when an event did not say)."""

    account: str
    region: str

    @staticmethod
    def of(job_arn: str | None, account: str | None = None, region: str | None = None) -> Scope:
        """The job's: from its ARN when it is one, else the account and region its event gave."""
        arn = parse_job_arn(job_arn)
        if arn is not None:
            return Scope(arn.account, arn.region)
        return Scope(account or "", region or "")


def snooze_key(queue: str, job_name: str, scope: Scope) -> str:
    """The ``pk`` of the snooze of ``job_name`` in ``queue`` (a queue name, not its ARN) in
    ``scope``'s account and region."""
    # JSON: no two lists of strings share a text, and the text never holds a raw NUL, which every
    # legacy key's does (so the two kinds never meet either).
    return _hashed_key(json.dumps(["snooze", *scope, queue, job_name]))


def legacy_snooze_key(queue: str, job_name: str) -> str:
    """The ``pk`` a snooze had before snoozes were per account and region (one for every account)."""
    return _hashed_key(f"{queue}\0{job_name}")


def _hashed_key(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"snooze#{digest[:40]}"


def snoozed_job_key(job_arn: str) -> str:
    """The ``pk`` of the pointer from a snoozed message's job to its snooze."""
    return item_key("snoozed-job", job_arn)


class Snoozes:
    """The snoozes of one state table."""

    def __init__(self, table: StateTable, *, clock: Callable[[], float] = now) -> None:
        self.table, self.clock = table, clock

    def set(self, queue: str, job_name: str, seconds: int, by: str, job_arn: str) -> Snooze:
        """Snooze ``job_name`` in ``queue`` for ``seconds`` from now, in ``job_arn``'s account and
        region (replacing the end of a snooze there, its count kept); raise :class:`TooManySnoozes`
        when the index is full."""
        at = self.clock()
        scope = Scope.of(job_arn)
        key = snooze_key(queue, job_name, scope)
        self._index_add(key)
        until = at + seconds
        expires = self.table.expires(until, KEPT_AFTER_SECONDS)
        # Snoozed again (another message of the job name, a replayed click): the skips counted so
        # far are kept for the digest.
        self.table.update(key, "SET #queue = :queue, job_name = :name, #until = :until, #by = :by, set_at = "
                               "if_not_exists(set_at, :at), skipped = if_not_exists(skipped, :zero), job_arn = :arn, "
                               "expires_at = :expires, account = :account, #region = :region",
                          names={"#queue": "queue", "#until": "until", "#by": "by", "#region": "region"},
                          values={":queue": queue, ":name": job_name, ":until": until, ":by": by, ":at": at,
                                  ":zero": 0, ":arn": job_arn, ":expires": expires, ":account": scope.account,
                                  ":region": scope.region})
        self.table.put({"pk": snoozed_job_key(job_arn), "snooze": key, "expires_at": expires})
        return Snooze(key, queue, job_name, until, by, at, account=scope.account, region=scope.region)

    def find(self, queue: str, job_name: str, scope: Scope) -> Snooze | None:
        """The snooze of ``job_name`` in ``queue`` in ``scope`` that holds now, if any."""
        # A snooze set before snoozes had a scope (a legacy key) held in every account; it is
        # honoured until it ends. None is left once KEPT_AFTER_SECONDS after the longest snooze
        # (7 days) has passed since this change: from 2026-12-12 this second read can go.
        for key in (snooze_key(queue, job_name, scope), legacy_snooze_key(queue, job_name)):
            item = self.table.get(key)
            snooze = None if item is None else Snooze.from_item(item)
            if snooze is not None and snooze.active(self.clock()):
                return snooze
        return None

    def clear_for_job(self, job_arn: str) -> Snooze | None:
        """End the snooze set from ``job_arn``'s message (its ``unsnooze`` button); the snooze it
        was, or None when there is none (ended, or unsnoozed already)."""
        pointer = self.table.get(snoozed_job_key(job_arn))
        key = pointer.get("snooze") if pointer else None
        if not isinstance(key, str):
            return None
        item = self.table.get(key)
        snooze = None if item is None else Snooze.from_item(item)
        self.table.delete(key)
        self.table.delete(snoozed_job_key(job_arn))
        self._index_remove([key])
        return snooze if snooze is not None and snooze.active(self.clock()) else None

    def count_skip(self, snooze: Snooze) -> int:
        """Count one event ``snooze`` skipped; the count now (0 if the snooze was removed meanwhile)."""
        try:
            after = self.table.update(snooze.key, "ADD skipped :one", condition="attribute_exists(pk)",
                                      values={":one": 1})
        except ConditionFailed:
            return 0
        skipped = after.get("skipped")
        return skipped if isinstance(skipped, int) else 0

    def listed(self) -> list[Snooze]:
        """Every snooze the index holds (active, or ended within :data:`KEPT_AFTER_SECONDS`), by
        queue and job name; keys whose item is gone are dropped from the index."""
        index = self.table.get(INDEX_KEY) or {}
        keys = index.get("keys")
        found, gone = [], []
        for key in sorted(keys) if isinstance(keys, set) else ():
            item = self.table.get(key)
            snooze = None if item is None else Snooze.from_item(item)
            if snooze is None:
                gone.append(key)
            else:
                found.append(snooze)
        self._index_remove(gone)
        return sorted(found, key=lambda s: (s.queue, s.job_name, s.account or "", s.region or ""))

    def _index_add(self, key: str) -> None:
        try:
            # Full is fine for a key already in it (a snooze set again).
            self.table.update(INDEX_KEY, "ADD #keys :key", names={"#keys": "keys"},
                              values={":key": {key}, ":max": MAX_SNOOZES, ":one": key},
                              condition="attribute_not_exists(#keys) OR size(#keys) < :max OR contains(#keys, :one)")
        except ConditionFailed:
            raise TooManySnoozes(f"{MAX_SNOOZES} snoozes are active: unsnooze one, or wait for one to end") from None

    def _index_remove(self, keys: Iterable[str]) -> None:
        gone = set(keys)
        if gone:
            self.table.update(INDEX_KEY, "DELETE #keys :gone", names={"#keys": "keys"}, values={":gone": gone})


def _snoozes() -> Snoozes | None:
    table = state_table()
    return None if table is None else Snoozes(table)


def snoozed(queue: str | None, job_name: str | None, scope: Scope) -> Snooze | None:
    """The snooze that holds now for ``job_name`` in ``queue`` (a queue name or ARN) in ``scope``
    (the job's account and region: :meth:`Scope.of`), if any; None without a state table.
    notify.py skips the event then, logs who snoozed it until when, and calls :func:`count_skip`."""
    found = _snoozes()
    if found is None or not queue or not job_name:
        return None
    return found.find(_queue_name(queue), job_name, scope)


def count_skip(snooze: Snooze) -> int:
    """Count one event ``snooze`` kept from Slack (for the digest); the count now."""
    found = _snoozes()
    return 0 if found is None else found.count_skip(snooze)


def snoozed_counts(queues: Iterable[str] | None = None) -> list[tuple[Snooze, int]]:
    """For the digest: each snooze the index holds (in ``queues`` only when given, names or
    ARNs), with the events it skipped that no digest showed yet (0 when none)."""
    found = _snoozes()
    if found is None:
        return []
    wanted = None if queues is None else {_queue_name(queue) for queue in queues}
    # Only what no digest showed yet: a 7-day snooze is not reported seven times over.
    return [(s, max(0, s.skipped - s.reported)) for s in found.listed() if wanted is None or s.queue in wanted]


def mark_reported(counts: Mapping[str, int]) -> None:
    """After a digest showed ``counts`` (snooze key -> events, from :func:`snoozed_counts`),
    count them as reported."""
    found = _snoozes()
    if found is None:
        return
    for key, count in counts.items():
        if count:
            with contextlib.suppress(ConditionFailed):
                found.table.update(key, "ADD reported :n", condition="attribute_exists(pk)", values={":n": count})


def _queue_name(queue: str) -> str:
    # The queue ARN's last part: events carry the ARN, a person and the routing file the name.
    return queue.rsplit("/", 1)[-1] if queue.startswith("arn:") else queue


def describe_snooze(snooze: Snooze) -> dict[str, Any]:
    """The log fields of a skip: who snoozed, until when (for notify.py's "skipped" line)."""
    return {"reason": f"snoozed by {snooze.by} until {_iso(snooze.until)}", "snooze_until": _iso(snooze.until)}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
