"""Stuck jobs: what no state-change event announces. A job that sits in RUNNABLE or STARTING
for hours because nothing can place it (no capacity, a vCPU/memory request no compute
environment can meet, an image that cannot be pulled) emits no event at all.

A scheduled sweep (``on_stuck_job_sweep`` in app.py) lists the RUNNABLE and STARTING jobs of
the watched queues and posts one message per queue (and route) naming the jobs whose wait
crossed an escalation step since the previous sweep: at the threshold T (default 30 minutes,
``STUCK_AFTER_MINUTES`` or the route's ``stuck_after_minutes``), at 4T and 16T (30 min, 2 h,
8 h by default), then once a day.

**Once per step, without a database.** A job is reported by the sweep whose window holds the
moment its age reached a step: a step ``s`` is reported when ``age - window < s <= age``. The
windows of consecutive sweeps tile time, so each step falls in exactly one of them. Each sweep
takes its time from the scheduled event, rounded to its grid (every 15 minutes on the
quarter hour by default), so an invocation a few seconds early or late still gets the same
window. The trade-off: a sweep that fails (AWS Batch or Slack unavailable for the whole
invocation) loses its window, and a job whose step fell in it is not reported at that step;
the next step still catches it (2 h after 30 min, 8 h after 2 h, then daily).

Age counts from submission (``createdAt``): ListJobs says nothing about when a job became
RUNNABLE. A job that first waited on its dependencies in PENDING, or that is waiting for a
retry, is reported at the next step its age crosses while it is RUNNABLE or STARTING.

The planning and the message are pure (job summaries in, reports and blocks out); the run
itself (settings, listing, posting, the summary line, when to raise) is the scheduled
handlers' one orchestration, ``chalicelib/scheduled/run.py``: :class:`StuckSweep` supplies
what is the sweep's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from chalicelib.composing.action_buttons import stuck_report_buttons
from chalicelib.composing.messages import SlackMessage, bounded_blocks, format_duration, with_mentions
from chalicelib.composing.mrkdwn import (
    CONTEXT_TEXT_LIMIT,
    FALLBACK_TEXT_LIMIT,
    HEADER_TEXT_LIMIT,
    safe_mrkdwn,
    safe_plain,
)
from chalicelib.core.config import ScheduledSettings, scheduled_settings, slack_settings
from chalicelib.core.member_roles import own_account
from chalicelib.core.state_table import state_table
from chalicelib.deciding.acks import acknowledged
from chalicelib.deciding.conversations import conversation_mode
from chalicelib.deciding.job_messages import JobMessages
from chalicelib.deciding.permissions import actions_on, decide_with_actions
from chalicelib.deciding.routing import DIGEST_ONLY, Decision, Route, RouteTable
from chalicelib.deciding.snoozes import Scope, count_skip, snoozed
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

STUCK = "STUCK"  # the status routes name for the sweep's reports
WAITING_STATUSES = ("RUNNABLE", "STARTING")
# Escalation: the threshold T, then 4T and 16T (30 min, 2 h, 8 h), then every whole day of age.
STEP_FACTORS = (1, 4, 16)
DAILY = timedelta(days=1)
# Jobs listed in one message; the rest are counted ("and 12 more").
MAX_JOBS_SHOWN = 20
REASON_LIMIT = 500
NAME_LIMIT = 200


# -- the schedule and the steps (pure) -------------------------------------------------------

def sweep_time(moment: datetime, every: timedelta) -> datetime:
    """``moment`` rounded to the nearest point of the sweep's grid (multiples of ``every``).

    EventBridge fires a few seconds (at worst tens of seconds) after the scheduled minute;
    rounding gives every invocation of one schedule slot the same time, hence the same window.
    """
    step = int(every.total_seconds() * 1000)
    millis = to_epoch_ms(moment)
    return datetime.fromtimestamp((millis + step // 2) // step * step / 1000, tz=UTC)


def crossed_step(age: timedelta, threshold: timedelta, window: timedelta) -> timedelta | None:
    """The escalation step ``age`` reached during the last ``window`` (the largest, if several).

    Steps are ``threshold`` x 1, 4 and 16, then each whole day of age after the last of them.
    A step ``s`` is crossed when ``age - window < s <= age``: exactly at a step counts, and the
    window's far end belongs to the previous sweep, so consecutive sweeps never both report it.
    """
    steps = [threshold * factor for factor in STEP_FACTORS]
    days = DAILY * (age // DAILY)
    if days > steps[-1]:
        steps.append(days)
    crossed = [step for step in steps if age - window < step <= age]
    return max(crossed) if crossed else None


def steps_text(threshold: timedelta) -> str:
    """``30m, 2h, 8h, then daily``: when a stuck job is reported."""
    return ", ".join(format_duration(threshold * f) or "" for f in STEP_FACTORS) + ", then daily"


# -- planning (pure) ---------------------------------------------------------------------

@dataclass(frozen=True)
class StuckJob:
    """A job whose wait crossed an escalation step in this sweep."""

    job: JobSummary
    age: timedelta
    step: timedelta


@dataclass(frozen=True)
class StuckReport:
    """One message: the newly stuck jobs of one queue that one route sends to one channel."""

    queue: str
    route: str | None
    channel: str | None
    mentions: tuple[str, ...]
    threshold: timedelta
    at: datetime
    jobs: tuple[StuckJob, ...]
    reported_before: int = 0  # jobs of the same queue and route past the threshold, reported at an earlier step
    notes: tuple[str, ...] = ()  # why the queue was not swept in full (a listing cut short)
    actions_allow: tuple[str, ...] = ()  # who may terminate its jobs from Slack (the route's, or SLACK_ACTIONS_ALLOW)


@dataclass
class SweepPlan:
    """The reports to post, and what the sweep saw (for its log line)."""

    reports: list[StuckReport] = field(default_factory=list)
    waiting: int = 0
    over_threshold: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> jobs (dropped, not wanted...)


def route_may_post_stuck(route: Route) -> bool:
    """Whether some stuck job could reach Slack through ``route``."""
    return (not route.drop and route.digest != DIGEST_ONLY
            and (route.statuses is None or STUCK in route.statuses)
            and (not route.match_statuses or STUCK in route.match_statuses))


def plan_sweep(listings: Iterable[JobListing], at: datetime, window: timedelta, default_threshold: timedelta,
               table: RouteTable | None, problems: Mapping[str, str] | None = None, *,
               account: str | None = None, region: str | None = None) -> SweepPlan:
    """Which jobs to report, grouped into one report per queue and route.

    ``at`` is the sweep's (grid) time and ``window`` its interval. A job's threshold is its
    route's ``stuck_after_minutes`` (the route that would post its STUCK report), else
    ``default_threshold``. Without a routing ``table`` everything goes to the single channel.
    ``problems`` maps a queue not listed in full to why; its reports say so. ``account`` and
    ``region``: the listed jobs' (the app's own), for routes that match on them.
    """
    plan = SweepPlan()
    groups: dict[tuple[str, str | None], _Group] = {}
    for queue, job in _waiting_jobs(listings):
        age = job.age(at)
        if age is None:
            continue
        plan.waiting += 1
        threshold = _threshold(table, queue, job, default_threshold, account, region)
        if age < threshold:
            continue
        plan.over_threshold += 1
        decision = decide_with_actions(table, queue, job.name, STUCK, account=account, region=region)
        if not decision.post:
            plan.skipped[decision.reason] = plan.skipped.get(decision.reason, 0) + 1
            continue
        # One route gives every job of its group the same threshold (route_for decides both).
        group = groups.setdefault((queue, decision.route), _Group(decision, threshold))
        group.add(job, age, crossed_step(age, threshold, window))
    for (queue, _route), group in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        if group.jobs:
            notes = (problems[queue],) if problems and queue in problems else ()
            plan.reports.append(group.report(queue, at, notes))
    return plan


def _waiting_jobs(listings: Iterable[JobListing]) -> Iterator[tuple[str, JobSummary]]:
    """(queue, job) for each waiting job that speaks for itself (no array child or node), once."""
    seen: set[tuple[str, str]] = set()
    for listing in listings:
        for job in listing.jobs:
            if job.is_child or job.status not in WAITING_STATUSES:
                continue
            # A job that moved from RUNNABLE to STARTING between the two listings is in both.
            if job.job_id is not None:
                if (listing.queue, job.job_id) in seen:
                    continue
                seen.add((listing.queue, job.job_id))
            yield listing.queue, job


def _threshold(table: RouteTable | None, queue: str, job: JobSummary, default: timedelta, account: str | None,
               region: str | None) -> timedelta:
    route = table.route_for(queue, job.name, STUCK, account=account, region=region) if table is not None else None
    minutes = route.stuck_after_minutes if route is not None else None
    return timedelta(minutes=minutes) if minutes else default


@dataclass
class _Group:
    """The jobs of one queue that one route reports, while planning."""

    decision: Decision
    threshold: timedelta
    jobs: list[StuckJob] = field(default_factory=list)
    reported_before: int = 0

    def add(self, job: JobSummary, age: timedelta, step: timedelta | None) -> None:
        if step is None:
            self.reported_before += 1
        else:
            self.jobs.append(StuckJob(job=job, age=age, step=step))

    def report(self, queue: str, at: datetime, notes: tuple[str, ...]) -> StuckReport:
        jobs = sorted(self.jobs, key=lambda s: (-s.age, s.job.label))
        decision = self.decision
        return StuckReport(queue=queue, route=decision.route, channel=decision.channel, mentions=decision.mentions,
                           threshold=self.threshold, at=at, jobs=tuple(jobs), reported_before=self.reported_before,
                           notes=notes, actions_allow=decision.actions_allow)


# -- the message (pure) ---------------------------------------------------------------------

def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _job_section(stuck: StuckJob, index: int, region: str | None) -> SectionBlock:
    job = stuck.job
    # Name and reason are the submitter's text: escaped and bounded, well inside a section's 3000.
    reason = safe_mrkdwn(job.status_reason, REASON_LIMIT) if job.status_reason else "_Batch gives no status reason_"
    text = f"*{safe_mrkdwn(job.label, NAME_LIMIT)}* · `{job.status}` for *{format_duration(stuck.age)}*\n{reason}"
    url = batch_job_url(region, job.job_id)
    accessory = ButtonElement(text="Open in AWS Batch", action_id=f"open_in_batch_{index}", url=url) if url else None
    return SectionBlock(text=MarkdownTextObject(text=text), accessory=accessory)


def build_stuck_message(report: StuckReport, region: str | None) -> SlackMessage:
    """The message for one report: the queue, then each job with its wait, reason and link."""
    count = len(report.jobs)
    queue = report.queue
    header = HeaderBlock(text=PlainTextObject(
        text=safe_plain(f":hourglass: {_plural(count, 'job')} stuck in {queue}", HEADER_TEXT_LIMIT), emoji=True))
    threshold = format_duration(report.threshold)
    intro = SectionBlock(text=MarkdownTextObject(text=(
        f"In job queue `{safe_mrkdwn(queue, NAME_LIMIT)}`, waiting in RUNNABLE or STARTING for more than "
        f"*{threshold}* since submitted. Check the status reason, the compute environments' capacity "
        "and the jobs' vCPU, memory and GPU requests.")))
    shown = report.jobs[:MAX_JOBS_SHOWN]
    blocks: list[Block] = [header, intro, *(_job_section(stuck, i, region) for i, stuck in enumerate(shown))]
    notes = []
    if count > len(shown):
        notes.append(f"…and {count - len(shown)} more stuck {'job' if count - len(shown) == 1 else 'jobs'}.")
    if report.reported_before:
        one = report.reported_before == 1
        notes.append(f"{_plural(report.reported_before, 'other job')} in this queue {'has' if one else 'have'} "
                     f"waited longer than {threshold} and {'was' if one else 'were'} reported earlier.")
    notes.append(f"A job is reported when it has waited {steps_text(report.threshold)}. Sweep of "
                 f"{report.at:%Y-%m-%d %H:%M} UTC" + (f" · {region}" if region else "") + ".")
    notes.extend(f"Not swept in full: {note}." for note in report.notes)
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=safe_mrkdwn(" ".join(notes), CONTEXT_TEXT_LIMIT))]))
    oldest = report.jobs[0]
    line = f"{_plural(count, 'job')} stuck in {queue} (longest: {oldest.job.label}, {format_duration(oldest.age)})"
    text = ":hourglass: " + safe_mrkdwn(" ".join(line.split()), FALLBACK_TEXT_LIMIT - 20)
    return SlackMessage(text=text, blocks=bounded_blocks(blocks))


# -- the sweep (AWS and Slack) --------------------------------------------------------------

def sweep_stuck_jobs(event: Any, every_minutes: int, now: Callable[[], datetime] = utcnow,
                     listing_limit: int = MAX_JOBS_PER_LISTING) -> RunResult:
    """Report the jobs whose wait in RUNNABLE or STARTING crossed a step since the last sweep.

    ``every_minutes`` is the schedule's interval (app.py's constant), which is the window;
    ``listing_limit`` caps each queue's listing (tests make it small). Configuration errors
    raise (nothing can work). A queue that cannot be listed, or a message Slack does not take,
    is logged as an error and the sweep goes on with the others; the invocation raises only
    when something failed and nothing was posted, so Lambda's retry never posts a report twice
    (chalicelib/scheduled/run.py).
    """
    return run_scheduled(StuckSweep(scheduled_settings(), timedelta(minutes=every_minutes)), event, now,
                         listing_limit)


@dataclass(frozen=True)
class StuckSweep:
    """What the sweep supplies to :func:`run_scheduled`: the waiting jobs, grouped per queue and route."""

    settings: ScheduledSettings
    window: timedelta
    log_field: tuple[str, str] = ("sweep", "stuck")
    time_field: str = "at"
    name: str = "stuck-job sweep"
    noun: str = "report"
    wants: str = f"posts {STUCK}"

    def switched_off(self) -> str | None:
        return "STUCK_AFTER_MINUTES=0 turns the sweep off" if self.settings.stuck_after_minutes == 0 else None

    def off_reason(self, table: RouteTable | None) -> str | None:
        return None

    def may_post(self, route: Route) -> bool:
        return route_may_post_stuck(route)

    def run_time(self, fired: datetime) -> datetime:
        return sweep_time(fired, self.window)

    def watched_queues(self) -> tuple[str, ...]:
        return self.settings.stuck_queues

    def list_queue(self, client: Any, queue: str, at: datetime, limit: int) -> JobListing:
        return list_jobs(client, queue, statuses=WAITING_STATUSES, limit=limit)

    def cut_short(self, listing: JobListing) -> str:
        return f"more than {len(listing.jobs)} waiting jobs; only the first were looked at"

    def plan(self, listings: Sequence[JobListing], problems: Mapping[str, str], at: datetime,
             table: RouteTable | None, region: str | None) -> Plan:
        threshold = timedelta(minutes=self.settings.stuck_after_minutes)
        # The sweep lists the app's own account's jobs: which account that is is asked (STS, once
        # per container) only when a route matches on accounts.
        account = own_account() if table is not None and table.matches_accounts else None
        sweep = plan_sweep(listings, at, self.window, threshold, table, problems, account=account, region=region)
        sweep.reports[:] = [report for report in map(_heeding_clicks, sweep.reports) if report.jobs]
        remember = conversation_mode().on
        posts = [ScheduledPost({"sweep": "stuck", "queue": report.queue, "route": report.route,
                                "jobs": len(report.jobs)}, partial(_report_message, report, region), report.channel,
                               partial(_remember_report, report) if remember else None) for report in sweep.reports]
        figures = {"window_minutes": round(self.window.total_seconds() / 60), "waiting": sweep.waiting,
                   "over_threshold": sweep.over_threshold, "reports": len(sweep.reports),
                   "skipped": sweep.skipped or None}
        return Plan(posts, figures)


def _heeding_clicks(report: StuckReport) -> StuckReport:
    """The report without the jobs someone snoozed (their skips counted for the digest), and
    mentioning no one when every job it shows was acknowledged."""
    jobs = []
    for stuck in report.jobs:
        snooze = snoozed(report.queue, stuck.job.name, Scope.of(stuck.job.job_arn))
        if snooze is None:
            jobs.append(stuck)
        else:
            count_skip(snooze)
    shown = jobs[:MAX_JOBS_SHOWN]
    acked = bool(report.mentions and shown) and all(acknowledged(stuck.job.job_arn) for stuck in shown)
    return replace(report, jobs=tuple(jobs), mentions=() if acked else report.mentions)


def _report_message(report: StuckReport, region: str | None) -> SlackMessage:
    built = build_stuck_message(report, region)
    # Each shown job gets its own terminate (for those allowed) and acknowledge buttons.
    blocks = stuck_report_buttons(built.blocks, [stuck.job for stuck in report.jobs[:MAX_JOBS_SHOWN]],
                                  signing_on=actions_on(), allowed=bool(report.actions_allow))
    return with_mentions(SlackMessage(text=built.text, blocks=blocks), report.mentions)


def _remember_report(report: StuckReport, delivery: Delivery) -> None:
    """Conversation mode: record the report as the message of each job it shows (unless the job has
    one already), so the job's later events are replies in the report's thread."""
    table = state_table()
    if table is None or delivery.ref is None:
        return
    records = JobMessages(table)
    at = report.at.timestamp()
    for stuck in report.jobs:
        key = stuck.job.job_arn or stuck.job.job_id
        if key:
            records.record_shared(key, report.channel or slack_settings().channel or "",
                                  (delivery.ref.channel, delivery.ref.ts), STUCK, at)
