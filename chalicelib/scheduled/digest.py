"""The morning digest: one calm message a day instead of a ping per job.

A daily scheduled handler (``on_daily_digest`` in app.py) posts one digest per route that asks
for it (``"digest": true``, or ``"digest": "only"`` for no per-job messages at all), or, with
no routing file, one digest to the single channel when ``DIGEST=on``. A digest says, per job
queue, how many jobs SUCCEEDED and FAILED in the last 24 hours and how many have not finished;
then the failed jobs with their reasons and links (capped, "and N more") and the longest runs.

No storage: everything comes from ``batch:ListJobs`` with the ``AFTER_CREATED_AT`` filter, all
pages. A job is counted on the day it *finished* (its ``stoppedAt``), so days tile and each job
is counted once; the listing therefore looks back 48 hours of submissions, and a job that ran
for more than a day before it finished is not counted. A job belongs to the route that would
post its per-job message (queue, name and its current status, first match wins).

The planning and the message are pure (job summaries in, digests and blocks out); the run
itself (settings, listing, posting, the summary line, when to raise) is the scheduled
handlers' one orchestration, ``chalicelib/scheduled/run.py``: :class:`DailyDigest` supplies
what is the digest's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from chalicelib.composing.account_label import account_and_region
from chalicelib.composing.messages import SlackMessage, bounded_blocks, format_duration
from chalicelib.composing.mrkdwn import (
    CONTEXT_TEXT_LIMIT,
    FALLBACK_TEXT_LIMIT,
    HEADER_TEXT_LIMIT,
    SECTION_TEXT_LIMIT,
    safe_mrkdwn,
    safe_plain,
)
from chalicelib.core.config import ScheduledSettings, hub_settings, scheduled_settings
from chalicelib.core.member_roles import own_account
from chalicelib.deciding.routing import Route, RouteTable, account_names
from chalicelib.deciding.snoozes import mark_reported, snoozed_counts
from chalicelib.delivering.slack import Delivery
from chalicelib.reading.batch_api import (
    MAX_JOBS_PER_LISTING,
    JobListing,
    JobSummary,
    list_jobs,
    to_epoch_ms,
    utcnow,
)
from chalicelib.reading.links import batch_job_url
from chalicelib.scheduled.posting import ScheduledPost
from chalicelib.scheduled.run import Plan, RunResult, run_scheduled

DIGEST_WINDOW = timedelta(hours=24)
# Submissions looked at: a job finishing today may have been submitted yesterday.
LOOKBACK = timedelta(hours=48)
MAX_FAILED_SHOWN = 10
MAX_LONGEST_SHOWN = 5
MAX_QUEUE_LINES = 20
NAME_LIMIT = 120
REASON_LIMIT = 400
WAITING = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")


def digest_time(moment: datetime) -> datetime:
    """``moment`` rounded to the nearest minute: the schedule's minute, whatever EventBridge's delay."""
    millis = to_epoch_ms(moment)
    return datetime.fromtimestamp((millis + 30_000) // 60_000 * 60, tz=UTC)


# -- planning (pure) ---------------------------------------------------------------------

class SnoozedLine(NamedTuple):
    """A digest's line for one snooze: the events it kept from Slack since the last digest."""

    queue: str
    job_name: str
    events: int
    key: str  # the snooze's item, to count the events as reported once the digest is posted
    where: str | None = None  # on a hub: its account and region, as the messages show them


@dataclass(frozen=True)
class Digest:
    """One digest: the jobs of one route (or of every queue) over the window ``(start, end]``."""

    route: str | None
    channel: str | None
    start: datetime
    end: datetime
    finished: tuple[JobSummary, ...] = ()  # SUCCEEDED or FAILED within the window
    unfinished: tuple[JobSummary, ...] = ()  # submitted within LOOKBACK, not finished yet
    notes: tuple[str, ...] = ()  # queues that could not be listed (in full)
    # Events not posted because someone snoozed their job name in their queue.
    snoozed: tuple[SnoozedLine, ...] = ()

    @property
    def failed(self) -> list[JobSummary]:
        """Failed jobs, latest first."""
        return sorted((j for j in self.finished if j.status == "FAILED"), key=_finished_at, reverse=True)

    def longest(self, count: int = MAX_LONGEST_SHOWN) -> list[tuple[JobSummary, timedelta]]:
        """The longest runs, finished in the window or still running at its end."""
        runs = [(job, job.run_time(self.end)) for job in (*self.finished, *self.unfinished)]
        timed = [(job, run) for job, run in runs if run is not None and run.total_seconds() >= 1]
        return sorted(timed, key=lambda item: (-item[1], item[0].label))[:count]


def _finished_at(job: JobSummary) -> datetime:
    # A job that failed before it started (a failed dependency) may have no stoppedAt.
    return job.stopped_at or job.created_at or datetime.min.replace(tzinfo=UTC)


def in_window(job: JobSummary, start: datetime, end: datetime) -> str | None:
    """``"finished"``, ``"unfinished"`` or ``None`` (finished outside the window, or submitted after it)."""
    if job.is_final:
        return "finished" if start < _finished_at(job) <= end else None
    if job.created_at is not None and job.created_at > end:
        return None  # submitted after the digest's minute: tomorrow's business
    return "unfinished"


def plan_digests(listings: Iterable[JobListing], end: datetime, table: RouteTable | None,
                 problems: Mapping[str, str] | None = None, *, account: str | None = None,
                 region: str | None = None) -> list[Digest]:
    """One digest per route that wants one (in the file's order), or one for everything without a table.

    ``problems`` maps a queue that could not be listed (or was cut short) to why; each digest
    whose route may cover that queue says so. ``account`` and ``region``: the listed jobs' (the
    app's own), for routes that match on them.
    """
    start = end - DIGEST_WINDOW
    problems = problems or {}
    routes = [r for r in table.routes if r.wants_digest and not r.drop] if table is not None else []
    if table is not None and not routes:
        return []
    keys: list[str | None] = [r.name for r in routes] if table is not None else [None]
    finished: dict[str | None, list[JobSummary]] = {key: [] for key in keys}
    unfinished: dict[str | None, list[JobSummary]] = {key: [] for key in keys}
    seen: set[tuple[str, str]] = set()
    for listing in listings:
        for job in listing.jobs:
            where = None if job.is_child else in_window(job, start, end)
            identity = (listing.queue, job.job_id or "")
            if where is None or (job.job_id is not None and identity in seen):
                continue  # a job listed twice (pages shift while jobs are submitted) counts once
            seen.add(identity)
            key: str | None = None
            if table is not None:
                route = table.route_for(listing.queue, job.name, job.status, account=account, region=region)
                if route is None or route.name not in finished:
                    continue
                key = route.name
            (finished if where == "finished" else unfinished)[key].append(job)
    channels = {r.name: r.channel for r in routes}
    digests = []
    for key in keys:
        route = next((r for r in routes if r.name == key), None)
        notes = tuple(f"{queue}: {why}" for queue, why in sorted(problems.items())
                      if route is None or route.covers_queue(queue))
        digests.append(Digest(route=key, channel=channels.get(key) if key else None, start=start, end=end,
                              finished=tuple(finished[key]), unfinished=tuple(unfinished[key]), notes=notes))
    return digests


# -- the message (pure) ---------------------------------------------------------------------

@dataclass
class _Counts:
    succeeded: int = 0
    failed: int = 0
    waiting: int = 0
    running: int = 0

    @property
    def unfinished(self) -> int:
        return self.waiting + self.running

    def line(self) -> str:
        parts = [f"{self.succeeded} succeeded", f"{self.failed} failed"]
        if self.unfinished:
            parts.append(f"{self.unfinished} not finished")
        return " · ".join(parts)


def _counts(jobs: Iterable[JobSummary]) -> _Counts:
    counts = _Counts()
    for job in jobs:
        if job.status == "SUCCEEDED":
            counts.succeeded += 1
        elif job.status == "FAILED":
            counts.failed += 1
        elif job.status in WAITING:
            counts.waiting += 1
        else:
            counts.running += 1
    return counts


def _lines_section(title: str, lines: Sequence[str], limit: int, more: Callable[[int], str]) -> SectionBlock:
    """``title`` and the first ``lines``: at most ``limit``, and only whole lines that fit in a
    section's 3000 characters with the "and N more" line."""
    text, shown = f"*{title}*", 0
    for line in lines[:limit]:
        rest = len(lines) - shown - 1
        if len(text) + 1 + len(line) + (1 + len(more(rest)) if rest else 0) > SECTION_TEXT_LIMIT:
            break
        text += "\n" + line
        shown += 1
    if shown < len(lines):
        text += "\n" + more(len(lines) - shown)
    return SectionBlock(text=MarkdownTextObject(text=text))


def _failed_section(job: JobSummary, index: int, region: str | None, end: datetime) -> SectionBlock:
    facts = [f"*{safe_mrkdwn(job.label, NAME_LIMIT)}*", f"`{safe_mrkdwn(job.queue, NAME_LIMIT)}`"]
    if job.exit_code is not None:
        facts.append(f"exit {job.exit_code}")
    run = job.run_time(end)
    facts.append(f"ran {format_duration(run)}" if run is not None else "never started")
    reasons = [r for r in (job.status_reason, job.container_reason) if r]
    if len(reasons) == 2 and reasons[1] in reasons[0]:
        reasons = reasons[:1]
    why = safe_mrkdwn(" · ".join(reasons), REASON_LIMIT) if reasons else "_Batch gives no reason_"
    url = batch_job_url(region, job.job_id)
    accessory = ButtonElement(text="Open in AWS Batch", action_id=f"open_failed_{index}", url=url) if url else None
    return SectionBlock(text=MarkdownTextObject(text=" · ".join(facts) + "\n" + why), accessory=accessory)


def _failed_blocks(failed: Sequence[JobSummary], region: str | None, end: datetime) -> list[Block]:
    """The failed jobs: a title, the first :data:`MAX_FAILED_SHOWN`, and how many more."""
    if not failed:
        return []
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=f"*Failed ({len(failed)})*"))]
    blocks.extend(_failed_section(job, i, region, end) for i, job in enumerate(failed[:MAX_FAILED_SHOWN]))
    if len(failed) > MAX_FAILED_SHOWN:
        rest = len(failed) - MAX_FAILED_SHOWN
        more = f"…and {rest} more failed {'job' if rest == 1 else 'jobs'}: see the AWS Batch console."
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=more)]))
    return blocks


def _run_line(job: JobSummary, run: timedelta, region: str | None) -> str:
    name = safe_mrkdwn(job.label, NAME_LIMIT)
    url = batch_job_url(region, job.job_id)
    shown = f"<{url}|{name}>" if url else f"*{name}*"
    state = "still running" if job.stopped_at is None else job.status.lower() if job.status else "finished"
    return f"`{format_duration(run)}` {shown} · `{safe_mrkdwn(job.queue, NAME_LIMIT)}` · {state}"


def build_digest_message(digest: Digest, region: str | None) -> SlackMessage:
    """The digest: totals, one line per queue, the failed jobs, the longest runs."""
    title = f"Daily digest: {digest.route}" if digest.route else "Daily digest of AWS Batch jobs"
    header = HeaderBlock(text=PlainTextObject(text=safe_plain(f":clipboard: {title}", HEADER_TEXT_LIMIT), emoji=True))
    period = f"24 h to {digest.end:%Y-%m-%d %H:%M} UTC"
    jobs = (*digest.finished, *digest.unfinished)
    total = _counts(jobs)
    if not jobs:
        summary = f"*{period}*\nNo AWS Batch job finished, and none is waiting or running."
    else:
        summary = (f"*{period}*\n:white_check_mark: *{total.succeeded}* succeeded · :x: *{total.failed}* failed"
                   f" · :hourglass_flowing_sand: *{total.unfinished}* not finished"
                   f" ({total.waiting} waiting, {total.running} running)")
    blocks: list[Block] = [header, SectionBlock(text=MarkdownTextObject(text=summary))]
    by_queue: dict[str, list[JobSummary]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, []).append(job)
    if by_queue:
        lines = [f"`{safe_mrkdwn(queue, NAME_LIMIT)}` · {_counts(by_queue[queue]).line()}"
                 for queue in sorted(by_queue)]
        blocks.append(_lines_section("By job queue", lines, MAX_QUEUE_LINES,
                                     lambda n: f"…and {n} more job {'queue' if n == 1 else 'queues'}"))
    blocks.extend(_failed_blocks(digest.failed, region, digest.end))
    if digest.snoozed:
        blocks.append(_lines_section("Snoozed (not posted)", [
            f"`{safe_mrkdwn(line.job_name, NAME_LIMIT)}` in `{safe_mrkdwn(line.queue, NAME_LIMIT)}`"
            f"{f' ({line.where})' if line.where else ''} · {line.events} {'event' if line.events == 1 else 'events'}"
            for line in digest.snoozed], MAX_QUEUE_LINES, lambda n: f"…and {n} more"))
    longest = digest.longest()
    if longest:
        blocks.append(_lines_section("Longest runs", [_run_line(job, run, region) for job, run in longest],
                                     MAX_LONGEST_SHOWN, lambda n: f"…and {n} more"))
    notes = [f"Jobs that finished between {digest.start:%Y-%m-%d %H:%M} and {digest.end:%Y-%m-%d %H:%M} UTC, "
             f"and jobs submitted since {digest.end - LOOKBACK:%Y-%m-%d %H:%M} UTC that have not finished. "
             "Array and multi-node jobs count once, as their parent."]
    notes.extend(f"Not counted in full: {note}" for note in digest.notes)
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=safe_mrkdwn(" ".join(notes), CONTEXT_TEXT_LIMIT))]))
    line = f"{title}: {total.succeeded} succeeded, {total.failed} failed, {total.unfinished} not finished ({period})"
    text = ":clipboard: " + safe_mrkdwn(line, FALLBACK_TEXT_LIMIT - 20)
    return SlackMessage(text=text, blocks=bounded_blocks(blocks))


# -- posting (AWS and Slack) ----------------------------------------------------------------

def _with_snoozes(digest: Digest, table: RouteTable | None, *, account: str | None = None,
                  region: str | None = None) -> Digest:
    """The digest with the snoozed events of its route (of every queue without a routing file)
    counted that no digest showed yet (none without a state table). Each snooze is routed by its
    own account and region (a hub's snoozes are of many; one from before snoozes had them, by the
    digest's), and, on a hub, says them."""
    hub = hub_settings().configured
    names = account_names() if hub else ()

    def ours(queue: str, name: str, snooze_account: str | None, snooze_region: str | None) -> bool:
        return table is None or table.decide(queue, name, "FAILED", account=snooze_account or account,
                                             region=snooze_region or region).route == digest.route

    found = tuple(sorted(
        SnoozedLine(s.queue, s.job_name, count, s.key,
                    account_and_region(s.account, s.region, names) if hub and s.account else None)
        for s, count in snoozed_counts() if count and ours(s.queue, s.job_name, s.account, s.region)))
    return replace(digest, snoozed=found) if found else digest


def _reported(digest: Digest, _delivery: Delivery) -> None:
    mark_reported({line.key: line.events for line in digest.snoozed})


def post_daily_digests(event: Any, now: Callable[[], datetime] = utcnow,
                       listing_limit: int = MAX_JOBS_PER_LISTING) -> RunResult:
    """Post today's digests: one per route that asks for one, or one to the single channel.

    Configuration errors raise. A queue that cannot be listed (or whose listing is cut short at
    ``listing_limit``) is logged and named in the digests it would feed; a digest Slack does
    not take is logged and the others still post. The invocation raises only when something
    failed and nothing was posted, so Lambda's retry never posts a digest twice
    (chalicelib/scheduled/run.py).
    """
    return run_scheduled(DailyDigest(scheduled_settings()), event, now, listing_limit)


@dataclass(frozen=True)
class DailyDigest:
    """What the digest supplies to :func:`run_scheduled`: a day of jobs, one digest per route."""

    settings: ScheduledSettings
    log_field: tuple[str, str] = ("digest", "daily")
    time_field: str = "end"
    name: str = "daily digest"
    noun: str = "digest"
    wants: str = "asks for a digest"

    def switched_off(self) -> str | None:
        return None  # whether the digest is on depends on the routing file

    def off_reason(self, table: RouteTable | None) -> str | None:
        return "no routing file and DIGEST is not 'on'" if table is None and not self.settings.digest else None

    def may_post(self, route: Route) -> bool:
        return route.wants_digest

    def run_time(self, fired: datetime) -> datetime:
        return digest_time(fired)

    def watched_queues(self) -> tuple[str, ...]:
        return self.settings.digest_queues

    def list_queue(self, client: Any, queue: str, at: datetime, limit: int) -> JobListing:
        return list_jobs(client, queue, created_after=at - LOOKBACK, limit=limit)

    def cut_short(self, listing: JobListing) -> str:
        return f"more than {len(listing.jobs)} jobs; the oldest were not looked at"

    def plan(self, listings: Sequence[JobListing], problems: Mapping[str, str], at: datetime,
             table: RouteTable | None, region: str | None) -> Plan:
        # The digest lists the app's own account's jobs: its account is asked only when a route matches on one.
        account = own_account() if table is not None and table.matches_accounts else None
        digests = [_with_snoozes(digest, table, account=account, region=region)
                   for digest in plan_digests(listings, at, table, problems, account=account, region=region)]
        posts = [ScheduledPost({"digest": "daily", "route": digest.route, "finished": len(digest.finished),
                                "unfinished": len(digest.unfinished)}, partial(build_digest_message, digest, region),
                               digest.channel, partial(_reported, digest) if digest.snoozed else None)
                 for digest in digests]
        return Plan(posts, {"digests": len(digests)})
