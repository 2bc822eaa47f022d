"""A FAILED job's way through a failure storm: join its group, and see its line shown.

:func:`join_storm` joins the job to its storm (chalicelib/deciding/storms.py). The first
``GROUP_AFTER`` jobs get "not grouped": the caller posts their own messages as usual. Every other
job's invocation returns only once its line is in the group's thread and the group message counts
it. Whichever waiting invocation finds no live lease holder takes the group's lease and does the
next piece of work for everyone: post the group message (with the route's mentions: a group pings
once), post the pending lines as one reply, or update the group message (at most every
:data:`GROUP_UPDATE_SECONDS`, so a storm never costs a chat.update per job). So the group's last
job always leaves the message counting it: that is the trailing update.

Failures: a Slack error while holding the lease releases it and raises (Lambda retries; the retry
finds its job a member already); the invocation's deadline passing first raises
:class:`StormTimeout` the same way. A group message someone deleted is posted anew.

The group message says its jobs' account and region as a job's own message does: on a hub
(``MEMBER_ROLE_ARN`` or ``ACCOUNT_NAMES`` set), and whenever they are not the app's own (a
forwarded event), so two storms of same-named queues in two accounts are told apart.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chalicelib.composing.storm_message import MAX_LINES_PER_REPLY, group_message, lines_reply
from chalicelib.core import state_table
from chalicelib.core.config import hub_settings
from chalicelib.core.member_roles import own_account
from chalicelib.core.state_table import StateTable
from chalicelib.deciding.routing import account_names
from chalicelib.deciding.storms import (
    Busy,
    Group,
    Grouping,
    LeaseLost,
    Membership,
    StormError,
    is_done,
    join,
    joiner,
    next_work,
    pending_to_post,
    read_group,
    record_message,
    record_shown,
    record_update,
    release_lease,
    storm_key,
    take_lease,
    vouched_for,
)
from chalicelib.delivering.pacing import POST
from chalicelib.delivering.slack import Delivery, MessageNotFound, MessageRef, Slack
from chalicelib.reading.event import JobStateChange

# A holder's lease must have at least this long to run for another member to count on it.
VOUCH_MARGIN_SECONDS = 2.0
HOLDER_POLL_SECONDS = 0.2

# The group message is updated at most this often: chat.update allows about 50 a minute per channel.
GROUP_UPDATE_SECONDS = 3.0
# How long a waiting invocation sleeps between looks at its group (jittered, so they spread out).
POLL_SECONDS = (0.2, 0.5)
# The lease outlives one Slack call (its delivery budget) by this much, so a slow call is never
# taken over half-done (which would post its lines twice).
LEASE_MARGIN_SECONDS = 15.0


class StormTimeout(StormError):
    """The job's line was not shown before the invocation's deadline; Lambda's retry joins again
    (it finds the job a member) and waits again."""


@dataclass(frozen=True)
class StormResult:
    """What :func:`join_storm` did: ``grouped`` False means "not grouped: post your own message"
    (one of the group's first jobs); True means "shown in group ``pk`` as line ``ordinal``"."""

    grouped: bool
    pk: str
    ordinal: int
    ts: str | None = None  # the group message its line is under (grouped only): a job# record can name it

    def describe(self) -> str:
        """For the log line."""
        if not self.grouped:
            return f"not grouped (job {self.ordinal} of group {self.pk}): posts its own message"
        return f"shown in group {self.pk} as line {self.ordinal}"


@dataclass(frozen=True)
class _Where:
    """What the container knows of where it is, to say a group's account and region when it should."""

    hub: bool
    account: str | None  # the app's own, when known (no STS call is made for it here)
    region: str | None

    @classmethod
    def here(cls) -> _Where:
        return cls(hub=hub_settings().configured, account=own_account(ask=False),
                   region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))

    def names_for(self, group: Group) -> tuple[tuple[str, str], ...] | None:
        """The accounts' names when the group message says its account and region, else ``None``:
        on a hub (as every message there does), or when the jobs are not in the app's own account
        or region (known ones compared)."""
        elsewhere = ((group.account is not None and self.account is not None and group.account != self.account)
                     or (group.region is not None and self.region is not None and group.region != self.region))
        return account_names() if self.hub or elsewhere else None


@dataclass(frozen=True)
class _Storm:
    """One invocation's part in a storm: where it posts, who it is, and its knobs."""

    slack: Slack
    table: StateTable
    mentions: tuple[str, ...]
    owner: str
    deadline: float
    lease_seconds: float
    update_seconds: float
    clock: Callable[[], float]
    where: _Where


def join_storm(job: JobStateChange, channel: str, mentions: Sequence[str], grouping: Grouping, slack: Slack,
               table: StateTable, *, deadline: float, lease_seconds: float | None = None,
               update_seconds: float = GROUP_UPDATE_SECONDS, poll_seconds: tuple[float, float] = POLL_SECONDS,
               clock: Callable[[], float] = state_table.now) -> StormResult:
    """Join the FAILED ``job`` (with no living message in ``channel`` yet) to its storm.

    Return "not grouped" for one of the group's first ``grouping.after`` jobs (post its own message,
    with ``mentions``, as usual); else return once its line is shown in the group's thread and the
    group message counts it, doing the group's posting when no one else is. ``deadline`` is
    ``time.monotonic()`` by which to give up: then raise :class:`StormTimeout` (retryable). Raise
    DeliveryError (Slack), StateError (DynamoDB) or StormError so Lambda retries the event.
    """
    storm = storm_key(job, channel)
    me = joiner(job)
    lease = lease_seconds if lease_seconds is not None else slack.settings.delivery_budget + LEASE_MARGIN_SECONDS
    run = _Storm(slack, table, tuple(mentions), uuid.uuid4().hex, deadline, lease, update_seconds, clock,
                 _Where.here())
    membership: Membership | None = None
    while True:
        if membership is None:
            try:
                membership = join(table, storm, me, grouping, clock())
            except Busy:
                pass  # the group takes no line now: help it along below, then join again
            else:
                if not membership.grouped:
                    return StormResult(False, storm.pk, membership.ordinal)
        group = read_group(table, storm.pk)
        done = None if membership is None else is_done(group, membership)
        if membership is not None and group is not None and (
                done or vouched_for(group, membership, run.owner, clock(), VOUCH_MARGIN_SECONDS)) and (
                _looked_after(group, run, clock())):
            return StormResult(True, storm.pk, membership.ordinal, group.ts)
        if done is None:
            membership = None  # its generation went without showing its line: it joins the new one
        if time.monotonic() >= deadline:
            raise StormTimeout(f"job {me.key}: its line in failure group {storm.pk} was not shown before the "
                               "invocation's deadline; raising so Lambda retries the event (the retry finds the "
                               "job in its group)")
        if group is None or not _help(run, group):
            time.sleep(random.uniform(*poll_seconds))


def _looked_after(group: Group, run: _Storm, now: float) -> bool:
    """Whether the group needs no one else: settled (every line posted, the message counting
    everyone), or another invocation holds a live lease (a holder gives it up only when settled).
    A member whose own line is shown still stays and helps otherwise: the holder may have died
    with other members' lines pending and the message behind, and they returned counting on it.
    (Lambda's retry of the holder's event rejoins, and helps, too.)"""
    if group.is_settled:
        return True
    return group.lease_owner not in (None, run.owner) and group.lease_until > now + VOUCH_MARGIN_SECONDS


def _help(run: _Storm, group: Group) -> bool:
    """Take the group's lease when free and work for it until it is settled (every line posted, the
    message counting everyone): a holder gives the lease up only then (or at its deadline), which is
    what lets the other members return early (:func:`vouched_for`). False when there was nothing to
    do, or another holds the lease."""
    now = run.clock()
    if not group.lease_free(now, run.owner) or (group.is_settled and next_work(group, now, run.update_seconds) is None):
        return False
    held = take_lease(run.table, group.pk, run.owner, now, run.lease_seconds)
    if held is None:
        return False
    released = False
    try:
        while held is not None and time.monotonic() < run.deadline:
            work = next_work(held, run.clock(), run.update_seconds)
            if work is not None:
                _do(run, work, held)
            elif held.is_settled and release_lease(run.table, group.pk, run.owner, only_when_settled=True):
                released = True
                break
            else:
                time.sleep(HOLDER_POLL_SECONDS)  # an update not yet due, or a line that joined just now
            held = take_lease(run.table, group.pk, run.owner, run.clock(), run.lease_seconds)  # renew, and look
    except LeaseLost:
        return True  # taken over (our lease ran out): the new holder goes on
    finally:
        if not released:
            release_lease(run.table, group.pk, run.owner)
    return True


def _do(run: _Storm, work: str, group: Group) -> Group:
    """One piece of work on ``group``, recorded under the lease."""
    if work == "post":
        return _post(run, group, run.mentions if not group.mentioned else ())
    ref = MessageRef(group.channel_id or group.channel, group.ts or "", asked=group.channel)
    slack = run.slack.within(run.deadline)  # no call outlives the invocation
    if work == "reply":
        group, slack = _turn_first(run, group, slack, ref)
        lines = pending_to_post(group, MAX_LINES_PER_REPLY)
        try:
            slack.reply(ref, lines_reply(group, lines))
        except MessageNotFound:
            return _post(run, group, ())  # deleted: a new group message; the lines go in its thread next
        return record_shown(run.table, group, run.owner, lines)
    try:
        slack.update(ref, group_message(group, account_names=run.where.names_for(group)))
    except MessageNotFound:
        return _post(run, group, ())
    return record_update(run.table, group, run.owner, group.count, run.clock())


def _turn_first(run: _Storm, group: Group, slack: Slack, ref: MessageRef) -> tuple[Group, Slack]:
    """Wait for the reply's turn first, then read the group again: the lines that joined while it
    waited (about a second, at Slack's pace) go in this reply, not the next. The turn is taken, so
    the reply is then sent unpaced."""
    if slack.pacer is None:
        return group, slack
    slack.pacer.wait_turn(POST, ref.paced_as, run.deadline)
    renewed = take_lease(run.table, group.pk, run.owner, run.clock(), run.lease_seconds)
    if renewed is None:
        raise LeaseLost()
    return renewed, Slack(slack.settings)


def _post(run: _Storm, group: Group, mentions: Sequence[str]) -> Group:
    """Post the group message (again, when the last one was deleted: without pinging anew)."""
    message = group_message(group, mentions, account_names=run.where.names_for(group))
    delivery = run.slack.within(run.deadline).post(message, channel=group.channel)
    return record_message(run.table, group, run.owner, _ref(delivery), group.count, run.clock())


def _ref(delivery: Delivery) -> tuple[str, str]:
    if delivery.ref is None:
        raise StormError("Slack posted the group message but named no message (a webhook?): failure groups need "
                         "a bot token; raising so Lambda retries the event")
    return delivery.ref.channel, delivery.ref.ts
