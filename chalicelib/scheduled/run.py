"""One run of a scheduled handler (the stuck-job sweep, the daily digest), the same steps for both.

Read the settings (a configuration error raises), skip when nothing could be posted, take the
run's time from the scheduled event, list the watched queues, plan and build the messages,
post each, log one summary line. A :class:`ScheduledWork` supplies only what differs: what to
list, how to group, how to build.

Failure rules, the same for every scheduled handler:

- A queue that cannot be listed is logged as an error, named in the messages that would count
  it, and the run goes on with the others. A listing cut short (``MAX_JOBS_PER_LISTING``) is
  logged as a warning and named in those messages too.
- Not one queue listed: nothing is posted (a message of nothing would mislead).
- The run raises, so Lambda retries the same event (hence the same time and window), only
  when nothing went out and something failed: every message refused, or not one queue listed.
  Once anything is posted, a retry could post it twice, so the run does not raise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib.core.config import slack_settings
from chalicelib.core.deadline import invocation_deadline
from chalicelib.core.logline import log_line
from chalicelib.deciding.routing import Route, RouteTable, route_table
from chalicelib.reading.batch_api import (
    MAX_JOBS_PER_LISTING,
    JobListing,
    batch_client,
    describe_aws_error,
    list_queue_names,
    queue_name,
    scheduled_time,
)
from chalicelib.scheduled.posting import ScheduledPost, post_each


@dataclass(frozen=True)
class Plan:
    """The messages of one run, and the figures its summary line adds (jobs seen, reports...)."""

    posts: Sequence[ScheduledPost]
    figures: Mapping[str, Any] = field(default_factory=dict)


class ScheduledWork(Protocol):
    """What one scheduled handler supplies to :func:`run_scheduled`."""

    @property
    def log_field(self) -> tuple[str, str]:
        """The first field of each of its log lines: ``("sweep", "stuck")``."""

    @property
    def time_field(self) -> str:
        """The summary line's name for the run's time: ``"at"``, ``"end"``."""

    @property
    def name(self) -> str:
        """The run, in errors: ``"stuck-job sweep"``."""

    @property
    def noun(self) -> str:
        """One of its messages, in errors: ``"report"``."""

    @property
    def wants(self) -> str:
        """The end of "no route of routes.json ...": ``"posts STUCK"``."""

    def switched_off(self) -> str | None:
        """Why this handler is off by its own setting alone (read before routes and Slack); None when on."""

    def off_reason(self, table: RouteTable | None) -> str | None:
        """Why this handler is off by its own settings, before any AWS call; None when it is on."""

    def may_post(self, route: Route) -> bool:
        """Whether some message of this handler could reach Slack through ``route``."""

    def run_time(self, fired: datetime) -> datetime:
        """The run's time: when the schedule fired, rounded to the schedule."""

    def watched_queues(self) -> tuple[str, ...]:
        """The queues the settings name (empty: every queue of the account and region)."""

    def list_queue(self, client: Any, queue: str, at: datetime, limit: int) -> JobListing:
        """The jobs of ``queue`` this handler looks at."""

    def cut_short(self, listing: JobListing) -> str:
        """What a listing cut short at its limit missed, for the log and the messages."""

    def plan(self, listings: Sequence[JobListing], problems: Mapping[str, str], at: datetime,
             table: RouteTable | None, region: str | None) -> Plan:
        """The messages to post (pure). ``problems`` maps a queue not listed in full to why."""


@dataclass(frozen=True)
class RunResult:
    """What one run did, for the tests (its log line says the same)."""

    at: datetime | None
    queues: int = 0
    posted: int = 0
    failed: int = 0  # messages Slack did not take
    unlisted: int = 0  # queues that could not be listed
    truncated: int = 0  # listings cut short
    reason: str | None = None  # why nothing was done


@dataclass
class _Listings:
    listings: list[JobListing] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # queue name -> why it is not counted in full
    unlisted: int = 0
    truncated: int = 0


def run_scheduled(work: ScheduledWork, event: Any, now: Callable[[], datetime],
                  listing_limit: int = MAX_JOBS_PER_LISTING) -> RunResult:
    """One run of ``work`` for the scheduled ``event``; see the module's failure rules."""
    off = work.switched_off()  # a handler turned off needs no other setting, even a broken one
    if off is not None:
        return _skipped(work, off)
    table = route_table()  # refuses routes that name channels with a webhook
    slack = slack_settings()  # checked before any AWS call: without Slack there is nothing to do
    reason = work.off_reason(table) or _no_route_reason(work, table)
    if reason is not None:
        return _skipped(work, reason)
    at = _run_time(work, event, now)
    client = batch_client()
    queues = _queues(work, client, table)
    found = _list_each(work, client, queues, at, listing_limit)
    posted = failed = 0
    figures: Mapping[str, Any] = {}
    # Not one queue listed: post nothing, a message of nothing would mislead. No queue at all
    # (a new account) is a true answer: the digest says the day was empty.
    if found.listings or not queues:
        plan = work.plan(found.listings, found.problems, at, table, _region(client))
        posted, failed = post_each(plan.posts, slack, deadline=invocation_deadline(event))
        figures = plan.figures
    log_line(logging.INFO, **_tag(work), **{work.time_field: at.isoformat()}, queues=len(queues), **figures,
             posted=posted, failed=failed, unlisted=found.unlisted or None, truncated=found.truncated or None)
    result = RunResult(at=at, queues=len(queues), posted=posted, failed=failed, unlisted=found.unlisted,
                       truncated=found.truncated)
    _raise_when_nothing_went_out(work, result)
    return result


def _skipped(work: ScheduledWork, reason: str) -> RunResult:
    log_line(logging.INFO, **_tag(work), outcome="skipped", reason=reason)
    return RunResult(at=None, reason=reason)


def _tag(work: ScheduledWork) -> dict[str, str]:
    return {work.log_field[0]: work.log_field[1]}


def _no_route_reason(work: ScheduledWork, table: RouteTable | None) -> str | None:
    if table is not None and not any(work.may_post(route) for route in table.routes):
        return f"no route of {table.source} {work.wants}"
    return None


def _run_time(work: ScheduledWork, event: Any, now: Callable[[], datetime]) -> datetime:
    fired = scheduled_time(event)
    if fired is None:
        log_line(logging.WARNING, **_tag(work), warning="the event has no readable 'time'; using the clock")
    return work.run_time(fired or now())


def _queues(work: ScheduledWork, client: Any, table: RouteTable | None) -> list[str]:
    """The queues to list: those the settings name, else every queue; without those no route can
    post from, judging by their names (not worth a listing)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        queues = list(work.watched_queues()) or list_queue_names(client)
    except (BotoCoreError, ClientError) as error:
        raise RuntimeError(describe_aws_error(error, "batch:DescribeJobQueues")) from None
    if table is None:
        return queues
    return [q for q in queues if any(work.may_post(r) and r.covers_queue(queue_name(q)) for r in table.routes)]


def _list_each(work: ScheduledWork, client: Any, queues: Sequence[str], at: datetime, limit: int) -> _Listings:
    """Each queue's listing; a queue that cannot be listed, or is cut short, is logged and noted."""
    from botocore.exceptions import BotoCoreError, ClientError

    found = _Listings()
    for queue in queues:
        try:
            listing = work.list_queue(client, queue, at, limit)
        except (BotoCoreError, ClientError) as error:
            found.unlisted += 1
            found.problems[queue_name(queue)] = describe_aws_error(error, "batch:ListJobs")
            log_line(logging.ERROR, **_tag(work), queue=queue, outcome="failed",
                     reason=found.problems[queue_name(queue)])
            continue
        if listing.truncated:
            found.truncated += 1
            found.problems[listing.queue] = work.cut_short(listing)
            log_line(logging.WARNING, **_tag(work), queue=queue, warning=found.problems[listing.queue])
        found.listings.append(listing)
    return found


def _region(client: Any) -> str | None:
    region = getattr(getattr(client, "meta", None), "region_name", None)
    return region if isinstance(region, str) else None


def _raise_when_nothing_went_out(work: ScheduledWork, result: RunResult) -> None:
    # Only for failures a retry may cure: every message refused, or not one queue listed.
    # One broken queue among many is only logged (and named in the messages).
    none_listed = result.queues > 0 and result.unlisted == result.queues
    if result.posted or not (result.failed or none_listed):
        return
    title = f"{work.name} at {result.at:%Y-%m-%d %H:%M} UTC"
    if none_listed:
        raise RuntimeError(f"{title}: no job queue could be listed ({result.unlisted} of {result.queues} "
                           "queue(s) not listed); see the log lines above")
    unlisted = f", {result.unlisted} of {result.queues} queue(s) not listed" if result.unlisted else ""
    raise RuntimeError(f"{title}: {result.failed} {work.noun}(s) not posted, none posted{unlisted}; "
                       "see the log lines above")
