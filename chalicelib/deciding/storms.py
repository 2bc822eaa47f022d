"""Failure storms: when many jobs fail alike in one channel, the rest join one group (state, no Slack).

A storm is keyed by channel, queue, cause (:func:`storm_cause`) and the job's account and region
(a hub gets the failures of same-named queues of many accounts and regions: each is a storm of
its own). Each FAILED job joins the
open group of its key (:func:`join`), atomically and idempotently, and gets an ordinal: the
first ``GROUP_AFTER`` post their own messages as usual; the rest put a line in the group's pending
lines, which whoever holds the group's short lease posts in the group message's thread
(chalicelib/delivering/storm_posting.py). A group is open while its last join is within
``GROUP_WINDOW_MINUTES``; after that, the next join starts a new generation of it.

The group is one item of the state table, ``group#<sha256 of channel, queue, cause, account,
region>``. It stays
far below DynamoDB's 400 KB: members are keyed by a 16-hex digest of the job key, a group holds at
most :data:`MAX_MEMBERS` (then a new generation continues it), at most :data:`MAX_PENDING` lines wait
to be posted, and each line is bounded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chalicelib.core.config import ConfigError, Settings, settings, whole_number_setting
from chalicelib.core.errors import BatchNotifyError
from chalicelib.core.state_table import ConditionFailed, Item, StateTable
from chalicelib.deciding.diagnosis import diagnose
from chalicelib.deciding.routing import MAX_GROUP_AFTER, MAX_GROUP_WINDOW_MINUTES, Decision
from chalicelib.reading.event import JobStateChange
from chalicelib.reading.job_arn import parse_job_arn
from chalicelib.reading.links import job_log_url

GROUP_AFTER = "GROUP_AFTER"
GROUP_WINDOW_MINUTES = "GROUP_WINDOW_MINUTES"
DEFAULT_GROUP_AFTER = 3
DEFAULT_GROUP_WINDOW_MINUTES = 10

# Bounds that keep one group item far below DynamoDB's 400 KB (about 150 KB at worst).
MAX_MEMBERS = 2000
MAX_PENDING = 100
MAX_NAMES = 5
NAME_LIMIT = 128  # Batch's own limit for a job name
ID_LIMIT = 128
OUTCOME_LIMIT = 160
URL_LIMIT = 800  # a longer log link (a huge stream name) is left out of the line
CAUSE_LIMIT = 120
HINT_LIMIT = 1000
TITLE_LIMIT = 150
# An event's account and region are untrusted text: a real one is 12 digits, a region ~15 characters.
ACCOUNT_LIMIT = 64
REGION_LIMIT = 64
# How many earlier generations a waiter may find "settled" when a new one replaced its own.
SETTLED_KEPT = 5

Work = Literal["post", "reply", "update"]


@dataclass(frozen=True)
class Grouping:
    """Grouping for one route: the first ``after`` failures post on their own; a group is open
    while its last join is less than ``window_seconds`` old."""

    after: int
    window_seconds: float


@dataclass(frozen=True)
class StormSettings:
    """The global ``GROUP_AFTER`` (0: grouping off) and ``GROUP_WINDOW_MINUTES``."""

    after: int = DEFAULT_GROUP_AFTER
    window_minutes: int = DEFAULT_GROUP_WINDOW_MINUTES


def load_storm_settings(env: Mapping[str, str]) -> StormSettings:
    """Validate ``GROUP_AFTER`` and ``GROUP_WINDOW_MINUTES`` in ``env``; raise ConfigError naming the variable."""
    after = whole_number_setting(env, GROUP_AFTER, default=DEFAULT_GROUP_AFTER, maximum=MAX_GROUP_AFTER,
                                 unit="jobs", zero="grouping is off")
    window = whole_number_setting(env, GROUP_WINDOW_MINUTES, default=DEFAULT_GROUP_WINDOW_MINUTES,
                                  maximum=MAX_GROUP_WINDOW_MINUTES, unit="minutes", maximum_note="a day")
    if window == 0:
        # A window of nothing would group nothing: say how grouping is really turned off.
        raise ConfigError(f"{GROUP_WINDOW_MINUTES}='0': expected a whole number of minutes from 1 to "
                          f"{MAX_GROUP_WINDOW_MINUTES} (a day); to turn grouping off, set {GROUP_AFTER}=0")
    return StormSettings(after=after, window_minutes=window)


def _storm_section(tree: Settings) -> StormSettings:
    return load_storm_settings(tree.env)


def storm_settings() -> StormSettings:
    """This container's storm settings (a section of the settings tree)."""
    return settings().section(_storm_section)


def grouping_for(decision: Decision) -> Grouping | None:
    """How the decision's route groups failures (its overrides, else the global settings);
    None when grouping is off for it."""
    found = storm_settings()
    after = found.after if decision.group_after is None else decision.group_after
    minutes = found.window_minutes if decision.group_window_minutes is None else decision.group_window_minutes
    return None if after == 0 else Grouping(after=after, window_seconds=minutes * 60.0)


# -- what a storm is -----------------------------------------------------------------------------
_HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?:[a-z]+-)?[0-9a-fA-F]{8,}(?:-[0-9a-fA-F]{4,})*(?![0-9A-Za-z])")
_DIGITS = re.compile(r"[0-9]+")


def storm_cause(job: JobStateChange) -> str:
    """What a storm's jobs have in common: the diagnosis name (``image_pull``) when there is one,
    else ``exit <code>``, else the status reason with ids and numbers masked, bounded."""
    finding = diagnose(job)
    if finding is not None:
        return finding.name
    if job.exit_code is not None:
        return f"exit {job.exit_code}"
    reason = job.container_reason or job.status_reason
    if not reason:
        return "no reason given"
    masked = _DIGITS.sub("#", _HEX_ID.sub("#", reason))
    masked = " ".join(masked.split())
    return masked[:CAUSE_LIMIT]


@dataclass(frozen=True)
class StormKey:
    """One storm: failures in one channel, of one queue, with one cause, in one account and region
    (``None``: the event did not say)."""

    channel: str
    queue: str
    cause: str
    account: str | None = None
    region: str | None = None

    @property
    def pk(self) -> str:
        # JSON of the parts: no two lists of strings share a text. It never holds a raw NUL, which
        # the key of every group from before storms had an account and region does (its parts were
        # NUL-joined), so an old group is never joined again: it is harmlessly ignored (a storm
        # under way at the deploy starts a new group) and goes with its item's TTL.
        text = json.dumps(["group", self.channel, self.queue, self.cause, self.account, self.region])
        digest = hashlib.sha256(text.encode()).hexdigest()  # ASCII: json.dumps escapes the rest
        return f"group#{digest}"


def storm_key(job: JobStateChange, channel: str) -> StormKey:
    """The storm ``job`` belongs to when posted to ``channel``: its account and region are its
    ARN's when that is one, else the event's (as snoozes scope them)."""
    arn = parse_job_arn(job.job_arn)
    account = arn.account if arn is not None else job.account
    region = arn.region if arn is not None else job.region
    return StormKey(channel=channel, queue=job.job_queue_name or "unknown queue", cause=storm_cause(job),
                    account=account[:ACCOUNT_LIMIT] if account else None,
                    region=region[:REGION_LIMIT] if region else None)


def job_key(job: JobStateChange) -> str:
    """The job's key, as in its living message's ``job#`` item: its ARN, or its id."""
    return job.job_arn or job.job_id or "unknown job"


def member_digest(key: str) -> str:
    """The short digest a group knows a job by (16 hex: no collision among 2000 members)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StormLine:
    """A job's line in a group's thread: its name, id, exit code or reason, log link. Job text,
    bounded here and escaped when shown (chalicelib/composing/storm_message.py)."""

    job_name: str
    job_id: str
    outcome: str
    log_url: str | None = None

    def to_item(self) -> dict[str, str]:
        item = {"name": self.job_name, "id": self.job_id, "outcome": self.outcome}
        if self.log_url:
            item["url"] = self.log_url
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> StormLine:
        url = item.get("url")
        return cls(job_name=str(item.get("name", "")), job_id=str(item.get("id", "")),
                   outcome=str(item.get("outcome", "")), log_url=url if isinstance(url, str) else None)


def storm_line(job: JobStateChange) -> StormLine:
    """The line ``job`` shows in its group's thread, each part bounded."""
    if job.exit_code is not None:
        outcome = f"exit {job.exit_code}"
    else:
        outcome = " ".join((job.container_reason or job.status_reason or "no reason given").split())
    url = job_log_url(job)
    return StormLine(job_name=(job.job_name or job.job_id or "unknown")[:NAME_LIMIT],
                     job_id=(job.job_id or "unknown")[:ID_LIMIT], outcome=outcome[:OUTCOME_LIMIT],
                     log_url=url if url is not None and len(url) <= URL_LIMIT else None)


@dataclass(frozen=True)
class Joiner:
    """One job joining a storm: its key (ARN or id), its name, its line, and the diagnosis the
    group message shows when this job opens the group."""

    key: str
    name: str
    line: StormLine
    diagnosis_title: str | None = None
    diagnosis_hint: str | None = None

    @property
    def digest(self) -> str:
        return member_digest(self.key)


def joiner(job: JobStateChange) -> Joiner:
    """``job`` as a :class:`Joiner` of its storm."""
    finding = diagnose(job)
    return Joiner(key=job_key(job), name=(job.job_name or job.job_id or "unknown")[:NAME_LIMIT],
                  line=storm_line(job), diagnosis_title=finding.title[:TITLE_LIMIT] if finding else None,
                  diagnosis_hint=finding.hint[:HINT_LIMIT] if finding else None)


# -- the group item, read ------------------------------------------------------------------------
@dataclass(frozen=True)
class PendingLine:
    """A line not yet posted, with the digest of the job it is for."""

    digest: str
    line: StormLine


@dataclass(frozen=True)
class Previous:
    """The generation a full group's new one continues: its message and its count."""

    ts: str | None
    count: int


@dataclass(frozen=True)
class Group:
    """A group item as read (see the module docstring)."""

    pk: str
    generation: str
    channel: str
    queue: str
    cause: str
    after: int
    count: int
    first_at: float
    last_at: float
    members: Mapping[str, int] = field(default_factory=dict)
    pending: tuple[PendingLine, ...] = ()
    shown: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()
    diagnosis_title: str | None = None
    diagnosis_hint: str | None = None
    ts: str | None = None
    # The jobs' account and region (None: not said; also in every item from before they were kept).
    account: str | None = None
    region: str | None = None
    # The channel ID Slack answered the group message with: chat.update takes only an ID.
    channel_id: str | None = None
    shown_count: int = 0
    updated_at: float = 0.0
    mentioned: bool = False
    lease_owner: str | None = None
    lease_until: float = 0.0
    previous: Previous | None = None
    settled: tuple[str, ...] = ()

    @classmethod
    def from_item(cls, item: Item) -> Group:
        names = item.get("names") or {}
        previous = item.get("previous")
        return cls(
            pk=item["pk"], generation=item["generation"], channel=item["channel"], queue=item["queue"],
            cause=item["cause"], after=int(item["after"]), count=int(item["count"]),
            first_at=float(item["first_at"]), last_at=float(item["last_at"]), members=dict(item.get("members") or {}),
            pending=tuple(PendingLine(p["key"], StormLine.from_item(p["line"])) for p in item.get("pending") or ()),
            shown=frozenset(item.get("shown") or ()),
            names=tuple(names[k] for k in sorted(names, key=int)),
            diagnosis_title=item.get("diagnosis_title"), diagnosis_hint=item.get("diagnosis_hint"),
            ts=item.get("ts"), account=item.get("account"), region=item.get("region"),
            channel_id=item.get("channel_id"), shown_count=int(item.get("shown_count", 0)),
            updated_at=float(item.get("updated_at", 0)), mentioned=bool(item.get("mentioned", False)),
            lease_owner=item.get("lease_owner"), lease_until=float(item.get("lease_until", 0)),
            previous=Previous(previous.get("ts"), int(previous["count"])) if previous else None,
            settled=tuple(item.get("settled") or ()),
        )

    @property
    def is_settled(self) -> bool:
        """Every line posted and the group message counting every member."""
        return not self.pending and self.ts is not None and self.shown_count >= self.count

    def lease_free(self, now: float, owner: str) -> bool:
        """Nobody else holds a live lease on the group."""
        return self.lease_owner in (None, owner) or self.lease_until < now


def _update(table: StateTable, pk: str, expression: str, condition: str, names: Mapping[str, str],
            values: Mapping[str, Any]) -> Item:
    """``table.update`` with only the names and values the expressions use (DynamoDB refuses others)."""
    text = f"{expression} {condition}"
    return table.update(pk, expression, condition=condition, names=_used(names, text), values=_used(values, text))


def _used(mapping: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if re.search(re.escape(key) + r"(?![A-Za-z0-9_])", text)}


def read_group(table: StateTable, pk: str) -> Group | None:
    """The group item ``pk`` as it is (strongly consistent), or None."""
    item = table.get(pk)
    return None if item is None else Group.from_item(item)


# -- joining -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Membership:
    """A job's place in a group generation: ordinal ``n`` (1 = the group's first job); ``grouped``
    when n > the group's ``after``, so its line is in the group's thread, not a message of its own."""

    pk: str
    generation: str
    digest: str
    ordinal: int
    grouped: bool


class StormError(BatchNotifyError):
    """A failure group could not be joined or shown in time; Lambda's retry joins it again (idempotently)."""


class Busy(Exception):  # not an error: the caller helps the group along, then joins again
    """The group cannot take a line now (its pending lines are full, or it is full and not yet
    settled): help it along (post what is pending), then join again."""

    def __init__(self, group: Group) -> None:
        super().__init__(f"group {group.pk} is busy")
        self.group = group


_NAMES = {"#count": "count", "#members": "members", "#key": "", "#last_at": "last_at", "#pending": "pending",
          "#after": "after"}
# Both ways of joining: the new member's ordinal is count + 1, read (like every right-hand side of
# one UpdateItem) on the item as it was, so it is the count this update writes, with no gap or repeat.
_JOIN = "SET #members.#key = #count + :one, #count = #count + :one, #last_at = :now"
_JOIN_OPEN = "attribute_not_exists(#members.#key) AND #last_at >= :oldest"
_GROUPED = (f"{_JOIN}, #pending = list_append(#pending, :line)",
            f"{_JOIN_OPEN} AND #count >= #after AND #count < :cap AND size(#pending) < :max_pending")
_OWN = (_JOIN, f"{_JOIN_OPEN} AND #count < #after")


def join(table: StateTable, storm: StormKey, job: Joiner, grouping: Grouping, now: float) -> Membership:
    """Join ``job`` to the open group of ``storm``: atomic, and idempotent (a retried invocation
    gets its first ordinal back, and its line is never appended twice). A group whose last join is
    older than the window is replaced by a new generation. Raise :class:`Busy` when the group can
    take no line now; StateError (from the table) when DynamoDB fails."""
    names = {**_NAMES, "#key": job.digest}
    line = [{"key": job.digest, "line": job.line.to_item()}]
    values: dict[str, Any] = {":one": 1, ":now": now, ":oldest": now - grouping.window_seconds}
    attempt = _GROUPED
    # Each round follows what the lost condition showed; a few rounds settle any race.
    for _ in range(10):
        expression, condition = attempt
        grouped = attempt is _GROUPED
        extra = {":line": line, ":cap": MAX_MEMBERS, ":max_pending": MAX_PENDING} if grouped else {}
        try:
            item = _update(table, storm.pk, expression, condition, names, {**values, **extra})
        except ConditionFailed as lost:
            found = Group.from_item(lost.item) if lost.item else None
            next_attempt = _after_lost_join(table, storm, job, grouping, now, found)
            if isinstance(next_attempt, Membership):
                return next_attempt
            attempt = next_attempt
            continue
        group = Group.from_item(item)
        membership = Membership(storm.pk, group.generation, job.digest, group.members[job.digest], grouped)
        _remember_name(table, membership, job.name)
        return membership
    raise StormError(f"could not join failure group {storm.pk}: it kept changing under 10 joins in a row; raising "
                     "so Lambda retries the event (the retry joins again)")


def _after_lost_join(table: StateTable, storm: StormKey, job: Joiner, grouping: Grouping, now: float,
                     found: Group | None) -> Membership | tuple[str, str]:
    """What a join that lost its condition does next: it was a member already (its first ordinal),
    or the group is missing, stale or full (a new generation), busy, or the other way of joining."""
    if found is not None and job.digest in found.members:
        ordinal = found.members[job.digest]
        return Membership(storm.pk, found.generation, job.digest, ordinal, ordinal > found.after)
    if found is None or found.last_at < now - grouping.window_seconds:
        _new_generation(table, storm, job, grouping, now, found)
        return _OWN if grouping.after > 0 else _GROUPED
    if found.count >= MAX_MEMBERS:
        if not found.is_settled:
            raise Busy(found)
        _new_generation(table, storm, job, grouping, now, found, continues=True)
        return _GROUPED
    if found.count >= found.after:
        if len(found.pending) >= MAX_PENDING:
            raise Busy(found)
        return _GROUPED
    return _OWN


def _new_generation(table: StateTable, storm: StormKey, job: Joiner, grouping: Grouping, now: float,
                    old: Group | None, *, continues: bool = False) -> None:
    """Put a new generation of the group in place of ``old`` (none, stale, or full); losing the
    race to another joiner is fine: the next round joins whichever generation won."""
    item: dict[str, Any] = {
        "pk": storm.pk, "generation": uuid.uuid4().hex[:12], "channel": storm.channel, "queue": storm.queue,
        "cause": storm.cause, "after": 0 if continues else grouping.after, "count": 0, "first_at": now,
        "last_at": now, "members": {}, "pending": [], "names": {}, "shown_count": 0, "updated_at": 0,
        "mentioned": False, "expires_at": table.expires(now),
    }
    for name, value in (("account", storm.account), ("region", storm.region)):
        if value:
            item[name] = value
    if job.diagnosis_title:
        item["diagnosis_title"] = job.diagnosis_title
        item["diagnosis_hint"] = job.diagnosis_hint or ""
    if old is not None:
        # A waiter of the old generation whose line was shown learns here that it is done.
        settled = (old.generation,) if old.is_settled else ()
        item["settled"] = list((*settled, *old.settled)[:SETTLED_KEPT])
        if continues:
            # Its first jobs posted on their own long ago: every job of a continuation is a line.
            item["previous"] = {"ts": old.ts, "count": old.count}
    condition, names, values = "attribute_not_exists(pk)", None, None
    if old is not None:
        condition, names, values = "#generation = :old", {"#generation": "generation"}, {":old": old.generation}
    with contextlib.suppress(ConditionFailed):
        table.put(item, condition=condition, names=names, values=values)


def _remember_name(table: StateTable, membership: Membership, name: str) -> None:
    """The group message names its first few jobs; set again by a rejoin, to the same value."""
    if membership.ordinal > MAX_NAMES:
        return
    with contextlib.suppress(ConditionFailed):  # a new generation already: the name is not missed
        _update(table, membership.pk, "SET #names.#ordinal = :name", "#generation = :generation",
                {"#names": "names", "#ordinal": str(membership.ordinal), "#generation": "generation"},
                {":name": name, ":generation": membership.generation})


def is_done(group: Group | None, membership: Membership) -> bool | None:
    """Whether the member's line is shown and the group message counts it, or a later member will
    see that it does (True); not yet (False); or its generation is gone without its line being
    shown (None: join again).

    A later member (a higher ordinal, so grouped too) does not return until the message counts *it*,
    so the group's last member always leaves the message counting everyone (the trailing update);
    the others need not wait for an update each (at most one every few seconds), which would hold
    every wave of containers for seconds and stretch a 300-job storm well past a minute.
    """
    if group is None:
        return None
    if group.generation != membership.generation:
        return True if membership.generation in group.settled else None
    counted = group.shown_count >= membership.ordinal or group.count > membership.ordinal
    return membership.digest in group.shown and counted


# -- the lease, and the work done under it ----------------------------------------------------------
class LeaseLost(Exception):  # the holder stops: another holds the group now
    """The lease was taken over (it expired) or the generation replaced: stop and look again."""


_LEASE_NAMES = {"#owner": "lease_owner", "#until": "lease_until"}


def take_lease(table: StateTable, pk: str, owner: str, now: float, seconds: float) -> Group | None:
    """Take (or renew) the group's lease for ``seconds``: the group as it is now, or None when
    another holds a live lease (or there is no group)."""
    try:
        item = table.update(pk, "SET #owner = :owner, #until = :until",
                            condition="attribute_exists(pk) AND (attribute_not_exists(#owner) OR #owner = :owner "
                                      "OR #until < :now)",
                            names=_LEASE_NAMES, values={":owner": owner, ":until": now + seconds, ":now": now})
    except ConditionFailed:
        return None
    return Group.from_item(item)


def release_lease(table: StateTable, pk: str, owner: str, *, only_when_settled: bool = False) -> bool:
    """Give the lease up, if still ours; with ``only_when_settled``, only when no line is pending and
    the group message counts every member, read in the same write (so a line appended after the
    holder last looked keeps it holding). True when released."""
    condition = "#owner = :owner"
    values: dict[str, Any] = {":owner": owner}
    names = dict(_LEASE_NAMES)
    if only_when_settled:
        condition += " AND size(#pending) = :zero AND #shown_count >= #count AND attribute_exists(#ts)"
        names |= {"#pending": "pending", "#shown_count": "shown_count", "#count": "count", "#ts": "ts"}
        values[":zero"] = 0
    try:
        table.update(pk, "REMOVE #owner, #until", condition=condition, names=names, values=values)
    except ConditionFailed:
        return False
    return True


def vouched_for(group: Group, membership: Membership, owner: str, now: float, margin: float) -> bool:
    """Whether another invocation's live lease guarantees the member's pending line: a holder gives
    its lease up only when the group is settled (:func:`release_lease`), so it posts that line, and
    when its invocation dies first, Lambda's retry of it rejoins, holds, and posts it. The member
    may then return without waiting for its turn in the thread."""
    return (group.generation == membership.generation and group.lease_owner not in (None, owner)
            and group.lease_until > now + margin and any(line.digest == membership.digest for line in group.pending))


def _held(table: StateTable, pk: str, owner: str, expression: str, names: Mapping[str, str],
          values: Mapping[str, Any]) -> Group:
    try:
        item = _update(table, pk, expression, "#owner = :owner", {**_LEASE_NAMES, **names}, {":owner": owner, **values})
    except ConditionFailed:
        raise LeaseLost(pk) from None
    return Group.from_item(item)


def next_work(group: Group, now: float, update_seconds: float) -> Work | None:
    """The next piece of work the group needs: its message posted, its pending lines posted, or its
    message updated (when behind, at most every ``update_seconds``); None when nothing is due."""
    if group.ts is None:
        return "post" if group.count > group.after else None
    if group.pending:
        return "reply"
    if group.shown_count < group.count and now - group.updated_at >= update_seconds:
        return "update"
    return None


def pending_to_post(group: Group, most: int) -> tuple[PendingLine, ...]:
    """The lines the next reply posts: the oldest pending, at most ``most``."""
    return group.pending[:most]


def record_shown(table: StateTable, group: Group, owner: str, posted: Sequence[PendingLine]) -> Group:
    """The first ``len(posted)`` pending lines were posted: remove them (by index: only the lease
    holder removes, and joins append at the end) and remember their jobs as shown."""
    removals = ", ".join(f"#pending[{i}]" for i in range(len(posted)))
    return _held(table, group.pk, owner, f"REMOVE {removals} ADD #shown :shown",
                 {"#pending": "pending", "#shown": "shown"}, {":shown": {p.digest for p in posted}})


def record_message(table: StateTable, group: Group, owner: str, ref: tuple[str, str], shown_count: int,
                   now: float) -> Group:
    """The group message was posted (or posted anew) as ``ref`` (Slack's channel ID, ts), counting
    ``shown_count``."""
    channel_id, ts = ref
    return _held(table, group.pk, owner,
                 "SET #ts = :ts, #channel_id = :channel, #shown_count = :count, #updated_at = :now, #mentioned = :yes",
                 {"#ts": "ts", "#channel_id": "channel_id", "#shown_count": "shown_count", "#updated_at": "updated_at",
                  "#mentioned": "mentioned"},
                 {":ts": ts, ":channel": channel_id, ":count": shown_count, ":now": now, ":yes": True})


def record_update(table: StateTable, group: Group, owner: str, shown_count: int, now: float) -> Group:
    """The group message was updated to count ``shown_count``."""
    return _held(table, group.pk, owner, "SET #shown_count = :count, #updated_at = :now",
                 {"#shown_count": "shown_count", "#updated_at": "updated_at"}, {":count": shown_count, ":now": now})
