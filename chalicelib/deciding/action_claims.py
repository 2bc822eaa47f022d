"""Exactly-once claims for the actions that change a job: ``action#<job ARN>#<retry|terminate>``.

Batch's SubmitJob has no idempotency token, so a double click, two people clicking at once, or
Slack retrying a request would each submit a job. Before calling Batch, a handler takes the
claim (a conditional put: only one writer wins); the others find the claim and answer with what
it says ("already retried as <job> by <@user>", or "being retried by ..."). After Batch answered,
the claim is recorded done with what Batch returned; if Batch failed, the claim is released
(nothing happened) so a later click can try again.

A claim moves to "calling" just before the Batch call that changes something (SubmitJob,
TerminateJob). A claim still "doing" after :data:`STALE_SECONDS` was abandoned before that call,
and may be taken over. A "calling" claim is never taken over by age: its call may have reached
Batch (an answer lost to a timeout is no proof it did not), and a second SubmitJob would run the
job twice. Such a claim stays until its TTL; the clicker is told to check the queue instead.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.core.state_table import ConditionFailed, Item, StateTable, item_key, now

ActionName = Literal["retry", "terminate"]
# Far longer than a handler may run (interactions/endpoint.py HANDLER_SECONDS), so a live holder
# is never overtaken, and short enough that a person can try again after a crash.
STALE_SECONDS = 120


@dataclass(frozen=True)
class Claim:
    """What the table says about one action on one job: who started it, when, and how far it got.
    ``new_job_id``/``new_job_arn`` are set once a retry's SubmitJob answered."""

    job_arn: str
    action: str
    by: str
    at: float
    state: Literal["doing", "calling", "done"]
    new_job_id: str | None = None
    new_job_arn: str | None = None
    owner: str = ""  # the holder's token: only it may release the claim
    mine: bool = False  # this call took it

    @staticmethod
    def from_item(item: Item, job_arn: str, action: str) -> Claim:
        def text(name: str) -> str | None:
            value = item.get(name)
            return value if isinstance(value, str) and value else None

        at = item.get("at")
        return Claim(job_arn=job_arn, action=action, by=text("by") or "someone",
                     at=float(at) if isinstance(at, int | float) and not isinstance(at, bool) else 0.0,
                     state=_state(item.get("state")),
                     new_job_id=text("new_job_id"), new_job_arn=text("new_job_arn"), owner=text("owner") or "")


def _state(value: Any) -> Literal["doing", "calling", "done"]:
    if value == "done":
        return "done"
    return "calling" if value == "calling" else "doing"


def claim_key(job_arn: str, action: str) -> str:
    """The ``pk`` of the claim on ``action`` for ``job_arn``."""
    return item_key("action", f"{job_arn}#{action}")


class ActionClaims:
    """The action claims of one state table."""

    def __init__(self, table: StateTable, *, clock: Callable[[], float] = now) -> None:
        self.table, self.clock = table, clock

    def claim(self, job_arn: str, action: ActionName, by: str) -> Claim:
        """Take the claim on ``action`` for ``job_arn`` for user ``by``: a claim with ``mine`` set
        when taken (go ahead, then :meth:`done` or :meth:`release` it), else the claim someone else
        holds or finished (do nothing; say what it says)."""
        at = self.clock()
        owner = uuid.uuid4().hex
        item: dict[str, Any] = {"pk": claim_key(job_arn, action), "by": by, "at": at, "state": "doing",
                                "owner": owner, "expires_at": self.table.expires(at)}
        try:
            self.table.put(item, condition="attribute_not_exists(pk) OR expires_at < :now OR "
                                           "(#state = :doing AND #at < :stale)",
                           names={"#state": "state", "#at": "at"},
                           values={":now": at, ":doing": "doing", ":stale": at - STALE_SECONDS})
        except ConditionFailed as failed:
            return Claim.from_item(failed.item, job_arn, action)
        return Claim(job_arn, action, by, at, "doing", owner=owner, mine=True)

    def calling(self, claim: Claim) -> bool:
        """Mark ``claim`` as calling Batch, just before the call: from now on it is never taken over
        by age. False when it is no longer ours (taken over): then do not call."""
        try:
            self.table.update(claim_key(claim.job_arn, claim.action), "SET #state = :calling",
                              condition="#owner = :owner AND #state = :doing",
                              names={"#state": "state", "#owner": "owner"},
                              values={":calling": "calling", ":owner": claim.owner, ":doing": "doing"})
        except ConditionFailed:
            return False
        return True

    def done(self, claim: Claim, *, new_job_id: str | None = None, new_job_arn: str | None = None) -> None:
        """Record that ``claim``'s action happened (after Batch answered), with a retry's new job;
        only while the claim is still ours."""
        at = self.clock()
        item: dict[str, Any] = {"pk": claim_key(claim.job_arn, claim.action), "by": claim.by, "at": at,
                                "state": "done", "owner": claim.owner, "expires_at": self.table.expires(at)}
        item.update({key: value for key, value in (("new_job_id", new_job_id), ("new_job_arn", new_job_arn))
                     if value})
        with contextlib.suppress(ConditionFailed):
            self.table.put(item, condition="#owner = :owner", names={"#owner": "owner"},
                           values={":owner": claim.owner})

    def release(self, claim: Claim) -> None:
        """Give back ``claim`` (one :meth:`claim` took; Batch refused: nothing happened),
        so a later click can try again. A claim done, or taken over meanwhile, is left alone."""
        try:
            self.table.delete(claim_key(claim.job_arn, claim.action),
                              condition="#state IN (:doing, :calling) AND #owner = :owner",
                              names={"#state": "state", "#owner": "owner"},
                              values={":doing": "doing", ":calling": "calling", ":owner": claim.owner})
        except ConditionFailed:
            return
