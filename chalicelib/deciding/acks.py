"""Acknowledgements: someone clicked "acknowledge" on a job's message (``ack#<job ARN>`` {by, at}).

An acknowledged job's later events no longer mention anyone: a person is on it. The item is its
own (not a field of the ``job#`` record), so an ack never races the conversation's lease.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.core.state_table import StateTable, item_key, now, state_table


@dataclass(frozen=True)
class Ack:
    """Who acknowledged a job (a Slack user ID) and when (epoch seconds)."""

    by: str
    at: float


def ack_key(job_arn: str) -> str:
    """The ``pk`` of ``job_arn``'s acknowledgement."""
    return item_key("ack", job_arn)


class Acks:
    """The acknowledgements of one state table."""

    def __init__(self, table: StateTable, *, clock: Callable[[], float] = now) -> None:
        self.table, self.clock = table, clock

    def record(self, job_arn: str, by: str) -> Ack:
        """Record that user ``by`` acknowledged ``job_arn`` now (a later ack replaces it)."""
        at = self.clock()
        self.table.put({"pk": ack_key(job_arn), "by": by, "at": at, "expires_at": self.table.expires(at)})
        return Ack(by, at)

    def find(self, job_arn: str) -> Ack | None:
        """The job's acknowledgement, if any."""
        item = self.table.get(ack_key(job_arn))
        if item is None or not isinstance(item.get("by"), str):
            return None
        at = item.get("at")
        return Ack(item["by"], float(at) if isinstance(at, int | float) else 0.0)


def acknowledged(job_arn: str | None) -> bool:
    """Whether someone acknowledged the job (False without a state table or a job ARN): once it
    is, its later messages mention no one."""
    table = state_table()
    if table is None or not job_arn:
        return False
    return Acks(table).find(job_arn) is not None
