"""Stuck jobs: the escalation steps and their edges, the sweep's plan and message, and the
scheduled handler end to end (chalice.test -> real handler -> Batch stub -> Slack stand-in).

AWS Batch is botocore's Stubber over a real client: moto 5.2.5's ListJobs has no pagination
and ignores AFTER_CREATED_AT, and its jobs only run with docker. The Stubber checks each
request's parameters and each response's shape against the Batch service model, and
``assert_no_pending_responses`` proves every page was read.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import Any

import pytest
from chalice.app import ScheduledEventConfig
from chalice.test import Client

import app as app_module
from app import app
from chalicelib.composing.messages import SlackMessage
from chalicelib.core.config import ConfigError, load_scheduled_settings, slack_settings
from chalicelib.deciding.routing import parse_route_table
from chalicelib.reading.batch_api import JobListing, JobSummary, list_jobs, scheduled_time
from chalicelib.reading.patterns import sweep_schedule
from chalicelib.scheduled.posting import ScheduledPost, post_each
from chalicelib.scheduled.stuck import (
    MAX_JOBS_SHOWN,
    STUCK,
    StuckJob,
    StuckReport,
    build_stuck_message,
    crossed_step,
    plan_sweep,
    steps_text,
    sweep_time,
)
from tests.batch_stub import api_job, api_queue, log_lines, scheduled_event, write_routes
from tests.conftest import TEST_CHANNEL
from tools.slack_standin import Reply, SlackStandIn, block_kit_errors

UTC = UTC
REGION = "us-east-1"
T = timedelta(minutes=30)
W = timedelta(minutes=15)
AT = datetime(2024, 5, 13, 9, 15, tzinfo=UTC)
TOKEN = "xoxb-test-token"


@pytest.fixture
def bot(monkeypatch):
    channels = (TEST_CHANNEL, "C0GENOMICS1", "C0123456789")
    with SlackStandIn(channels=channels) as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("SLACK_CHANNEL", TEST_CHANNEL)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        yield slack


def invoke(handler: str, time: str) -> Any:
    with Client(app, stage_name="local") as client:
        return client.lambda_.invoke(handler, scheduled_event(time, handler))


# -- the schedule --------------------------------------------------------------------------------

def test_the_sweep_runs_on_the_hours_grid():
    assert sweep_schedule(15) == "cron(0/15 * * * ? *)"
    assert sweep_schedule(5) == "cron(0/5 * * * ? *)"
    assert sweep_schedule(60) == "cron(0 * * * ? *)"
    for bad in (0, 7, 45, 90):
        with pytest.raises(ValueError, match="divides the hour"):
            sweep_schedule(bad)


def test_app_schedules_the_sweep_with_its_own_interval_and_the_digest_at_nine():
    schedules = {s.name: s.schedule_expression for s in app.event_sources if isinstance(s, ScheduledEventConfig)}
    assert schedules == {"on_stuck_job_sweep": sweep_schedule(app_module.STUCK_SWEEP_MINUTES),
                         "on_daily_digest": "cron(0 9 * * ? *)"}
    assert app_module.STUCK_SWEEP_MINUTES == 15


@pytest.mark.parametrize("fired, expected", [
    ("09:15:00", "09:15"), ("09:15:04", "09:15"), ("09:14:53", "09:15"), ("09:15:59", "09:15"),
    ("09:22:29", "09:15"), ("09:22:31", "09:30"), ("09:07:31", "09:15"), ("09:00:40", "09:00"),
])
def test_sweep_time_rounds_to_the_grid_so_a_late_or_early_invocation_keeps_its_window(fired, expected):
    moment = datetime.fromisoformat(f"2024-05-13T{fired}+00:00")
    assert f"{sweep_time(moment, W):%H:%M}" == expected


def test_scheduled_time_reads_the_event_and_falls_back_for_a_hand_made_one():
    assert scheduled_time(scheduled_event("2024-05-13T09:15:00Z")) == AT
    assert scheduled_time({"time": "not a time"}, fallback=AT) == AT
    assert scheduled_time({}) is None


# -- the steps and their edges ---------------------------------------------------------------------

S = timedelta(seconds=1)
MS = timedelta(milliseconds=1)
H = timedelta(hours=1)


@pytest.mark.parametrize("age, step", [
    (T - S, None),  # just before the first step: the next sweep reports it
    (T, T),  # exactly at the step
    (T + MS, T),
    (T + S, T),  # just after
    (T + W - MS, T),  # the window's near end
    (T + W, None),  # the window's far end belongs to the previous sweep (age was exactly T then)
    (T + W + S, None),
    (2 * H - S, None), (2 * H, 2 * H), (2 * H + W - S, 2 * H), (2 * H + W, None),
    (8 * H, 8 * H), (8 * H + 14 * 60 * S, 8 * H),
    (16 * H, None),  # no step between 8 h and a day
    (24 * H, 24 * H), (24 * H + 10 * 60 * S, 24 * H), (48 * H + 5 * 60 * S, 48 * H), (49 * H, None),
])
def test_a_job_is_reported_when_its_age_crosses_a_step_inside_the_window(age, step):
    assert crossed_step(age, T, W) == step


def test_steps_follow_the_routes_threshold():
    ten = timedelta(minutes=10)
    assert [crossed_step(age, ten, W) for age in (ten, 4 * ten, 16 * ten, 24 * H)] == [ten, 4 * ten, 16 * ten, 24 * H]
    assert steps_text(ten) == "10m, 40m, 2h 40m, then daily"
    assert steps_text(T) == "30m, 2h, 8h, then daily"


def test_a_window_longer_than_the_gap_between_steps_reports_the_later_step():
    one = timedelta(minutes=1)
    assert crossed_step(timedelta(minutes=5), one, W) == 4 * one


def _sweep_reports(created: datetime, sweeps: Iterable[datetime]) -> list[timedelta]:
    reported = []
    for fired in sweeps:
        at = sweep_time(fired, W)
        step = crossed_step(at - created, T, W) if at >= created else None
        if step is not None:
            reported.append(step)
    return reported


def test_each_step_is_reported_exactly_once_across_sweeps_with_clock_skew():
    rng = random.Random(7)
    start = datetime(2024, 5, 13, 0, 0, tzinfo=UTC)
    # EventBridge fires a little late (or the clocks disagree a little): -10 s to +50 s.
    sweeps = [start + k * W + timedelta(seconds=rng.uniform(-10, 50)) for k in range(4 * 24 * 4)]
    expected = [T, 2 * H, 8 * H, 24 * H, 48 * H, 72 * H]
    # Submitted on the grid, a millisecond either side of it, and all over the hour.
    offsets = [timedelta(0), MS, -MS, S, *(timedelta(seconds=37 * i) for i in range(1, 100))]
    for offset in offsets:
        created = start + 2 * H + offset
        assert _sweep_reports(created, sweeps) == expected, f"submitted at {created:%H:%M:%S.%f}"


def test_a_failed_sweep_misses_its_step_and_the_next_step_still_catches_the_job():
    start = datetime(2024, 5, 13, 0, 0, tzinfo=UTC)
    created = start + timedelta(minutes=3)
    sweeps = [start + k * W for k in range(4 * 10)]
    failed = sweep_time(created + T, W) + W  # the sweep whose window holds the 30-minute mark
    assert _sweep_reports(created, [s for s in sweeps if s != failed]) == [2 * H, 8 * H]
    assert _sweep_reports(created, sweeps) == [T, 2 * H, 8 * H]


# -- the plan -------------------------------------------------------------------------------------

def summary(job_id: str, age: timedelta, status: str = "RUNNABLE", queue: str = "etl-queue",
            name: str | None = None, **extra: Any) -> JobSummary:
    return JobSummary.from_api(api_job(job_id, name or f"job-{job_id}", status, AT - age, **extra), queue)


def test_plan_reports_newly_stuck_jobs_per_queue_and_counts_the_ones_reported_before():
    listings = [
        JobListing("etl-queue", (
            summary("a", T),  # crosses 30 m now
            summary("b", 2 * H + 5 * 60 * S, status="STARTING"),  # crosses 2 h now
            summary("c", H),  # stuck, reported at 30 m already
            summary("d", T - S),  # not yet
            summary("e", T, status="RUNNING"),  # not waiting
            summary("f", T, arrayProperties={"size": 10, "index": 3}),  # an array child: the parent speaks
            summary("g", T, jobId="g#1"),  # a multi-node node job
        )),
        JobListing("etl-queue", (summary("a", T, status="STARTING"),)),  # moved on between the two listings
        JobListing("empty-queue", ()),
    ]
    plan = plan_sweep(listings, AT, W, T, table=None)
    [report] = plan.reports
    assert (report.queue, report.route, report.channel, report.reported_before) == ("etl-queue", None, None, 1)
    assert [(s.job.job_id, s.step) for s in report.jobs] == [("b", 2 * H), ("a", T)]  # longest wait first
    assert (plan.waiting, plan.over_threshold) == (4, 3)


ROUTES = [
    {"name": "airflow", "match": {"queue": "airflow-*"}, "drop": True},
    {"name": "genomics", "match": {"queue": "genomics-*"}, "channel": "C0GENOMICS1", "mention": ["S0GENOMICS1"],
     "statuses": ["FAILED", "STUCK"], "stuck_after_minutes": 60},
    {"name": "reports", "match": {"queue": "reports-*"}, "channel": "C0REPORTS01", "digest": "only"},
    {"name": "quiet", "match": {"queue": "quiet-*"}, "statuses": ["FAILED"]},
    {"name": "default", "channel": "C0123456789", "statuses": ["FAILED", "BLOCKED", "STUCK"]},
]


def test_plan_routes_each_queue_with_its_routes_threshold_channel_and_mentions():
    table = parse_route_table({"routes": ROUTES})
    listings = [JobListing(queue, (summary(f"{queue}-30m", T, queue=queue), summary(f"{queue}-1h", H, queue=queue)))
                for queue in ("airflow-task", "genomics-queue", "reports-queue", "quiet-queue", "etl-queue")]
    plan = plan_sweep(listings, AT, W, T, table)
    found = {(r.queue, r.route, r.channel, r.mentions, r.threshold): [s.job.job_id for s in r.jobs]
             for r in plan.reports}
    assert found == {
        ("genomics-queue", "genomics", "C0GENOMICS1", ("S0GENOMICS1",), H): ["genomics-queue-1h"],
        ("etl-queue", "default", "C0123456789", (), T): ["etl-queue-30m"],
    }
    assert plan.skipped == {"route 'airflow' drops these jobs": 2, "route 'reports' is digest-only": 2,
                            "route 'quiet' does not want STUCK": 2}


def test_plan_splits_a_queue_whose_jobs_go_to_different_routes():
    table = parse_route_table({"routes": [
        {"name": "etl", "match": {"job": "nightly-*"}, "channel": "C0DATAENG01"},
        {"name": "default", "channel": "C0123456789"}]})
    listing = JobListing("shared-queue", (summary("1", T, queue="shared-queue", name="nightly-load"),
                                          summary("2", T, queue="shared-queue", name="adhoc")))
    assert [(r.route, r.channel) for r in plan_sweep([listing], AT, W, T, table).reports] == [
        ("default", "C0123456789"), ("etl", "C0DATAENG01")]


# -- the message ------------------------------------------------------------------------------------

def report_of(jobs: list[JobSummary], reported_before: int = 0) -> StuckReport:
    stuck = tuple(StuckJob(job=j, age=j.age(AT), step=T) for j in jobs)
    return StuckReport(queue="etl-queue", route=None, channel=None, mentions=(), threshold=T, at=AT, jobs=stuck,
                       reported_before=reported_before)


def test_message_names_each_job_with_its_wait_reason_and_link():
    job = summary("5b8c2e1a-1111-2222-3333-444455556666", 2 * H + 3 * 60 * S, name="nightly-etl-load",
                  reason="MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) "
                         "is higher than that can be met by the CE(s) attached to the job queue.")
    payload = build_stuck_message(report_of([job], reported_before=1), REGION).to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    assert payload["blocks"][0]["text"]["text"] == ":hourglass: 1 job stuck in etl-queue"
    section = payload["blocks"][2]
    assert section["text"]["text"].startswith("*nightly-etl-load* · `RUNNABLE` for *2h 3m*\nMISCONFIGURATION:")
    assert section["accessory"]["url"] == (f"https://{REGION}.console.aws.amazon.com/batch/home?region={REGION}"
                                           "#jobs/detail/5b8c2e1a-1111-2222-3333-444455556666")
    context = payload["blocks"][-1]["elements"][0]["text"]
    assert "1 other job in this queue has waited longer than 30m and was reported earlier." in context
    assert ("A job is reported when it has waited 30m, 2h, 8h, then daily. "
            "Sweep of 2024-05-13 09:15 UTC · us-east-1.") in context
    assert payload["text"] == ":hourglass: 1 job stuck in etl-queue (longest: nightly-etl-load, 2h 3m)"


def test_message_of_hundreds_of_hostile_jobs_stays_within_slacks_limits():
    jobs = [summary(f"id-{i}", T + i * S, name=f"<!channel> {'x' * 5000} {i}", reason="<https://evil|click> " * 500)
            for i in range(300)]
    message = build_stuck_message(report_of(sorted(jobs, key=lambda j: j.created_at)), REGION)
    payload = message.to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    assert len([b for b in payload["blocks"] if b["type"] == "section"]) == 1 + MAX_JOBS_SHOWN
    assert "…and 280 more stuck jobs." in payload["blocks"][-1]["elements"][0]["text"]
    text = json.dumps(payload)
    assert "<!channel>" not in text and "<https://evil" not in text
    assert len(payload["text"]) <= 500


def test_message_without_a_region_or_reason_still_reads():
    payload = build_stuck_message(report_of([summary("x", T)]), None).to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    assert "accessory" not in payload["blocks"][2]
    assert payload["blocks"][2]["text"]["text"].endswith("_Batch gives no status reason_")


# -- settings ---------------------------------------------------------------------------------------

def test_settings_defaults_and_queue_lists():
    s = load_scheduled_settings({})
    assert (s.stuck_after_minutes, s.stuck_queues, s.digest, s.digest_queues) == (30, (), False, ())
    s = load_scheduled_settings({"STUCK_AFTER_MINUTES": "0", "STUCK_QUEUES": "a, b  a,,c", "DIGEST": "ON",
                                 "DIGEST_QUEUES": "arn:aws:batch:us-east-1:1:job-queue/q"})
    assert (s.stuck_after_minutes, s.stuck_queues, s.digest) == (0, ("a", "b", "c"), True)


@pytest.mark.parametrize("env, variable", [
    ({"STUCK_AFTER_MINUTES": "half an hour"}, "STUCK_AFTER_MINUTES"),
    ({"STUCK_AFTER_MINUTES": "-5"}, "STUCK_AFTER_MINUTES"),
    ({"STUCK_AFTER_MINUTES": "99999"}, "STUCK_AFTER_MINUTES"),
    ({"DIGEST": "yes"}, "DIGEST"),
])
def test_bad_settings_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        load_scheduled_settings(env)


# -- the handler end to end -------------------------------------------------------------------------

def test_sweep_reads_every_page_of_every_queue_and_posts_one_message_per_queue(batch, bot, caplog):
    batch.queues([api_queue("etl-queue"), api_queue("render-queue"), api_queue("sagemaker-queue", "SAGEMAKER_TRAINING"),
                  api_queue("idle-queue")], page_size=2)
    # 350 waiting jobs over 4 pages, submitted between 08:39:11 and 08:45:00: all of them
    # reached 30 minutes inside this sweep's window (09:00, 09:15].
    runnable = [api_job(f"etl-{i:03}", f"etl-part-{i:03}", "RUNNABLE", AT - T - i * S,
                        reason="Waiting for capacity") for i in range(350)]
    batch.waiting("etl-queue", runnable=runnable, page_size=100)
    batch.waiting("idle-queue")
    batch.waiting("render-queue", starting=[api_job("r-1", "render-frame-1", "STARTING", AT - 8 * H - 60 * S)])
    invoke("on_stuck_job_sweep", "2024-05-13T09:15:03Z")
    batch.stubber.assert_no_pending_responses()
    first, second = bot.messages
    assert {first["channel"], second["channel"]} == {TEST_CHANNEL}
    assert first["blocks"][0]["text"]["text"] == ":hourglass: 350 jobs stuck in etl-queue"
    assert "…and 330 more stuck jobs." in first["blocks"][-1]["elements"][0]["text"]
    assert second["blocks"][0]["text"]["text"] == ":hourglass: 1 job stuck in render-queue"
    assert "`STARTING` for *8h 1m*" in second["blocks"][2]["text"]["text"]
    for message in (first, second):
        assert block_kit_errors(message["blocks"]) == []
    [summary_line] = [line for line in log_lines(caplog) if line.get("sweep") == "stuck" and "waiting" in line]
    assert summary_line == {"sweep": "stuck", "at": "2024-05-13T09:15:00+00:00", "window_minutes": 15, "queues": 3,
                            "waiting": 351, "over_threshold": 351, "reports": 2, "posted": 2, "failed": 0}


def test_sweep_routes_each_queues_report_to_its_team_with_mentions(batch, bot, tmp_path, monkeypatch):
    write_routes(tmp_path, monkeypatch, ROUTES)
    # Named queues: no DescribeJobQueues call. The dropped, digest-only and FAILED-only queues
    # are not even listed: no route can report them.
    monkeypatch.setenv("STUCK_QUEUES", "airflow-task genomics-queue reports-queue quiet-queue etl-queue")
    batch.waiting("genomics-queue", runnable=[api_job("g-1", "variant-call", "RUNNABLE", AT - H),
                                              api_job("g-2", "align", "RUNNABLE", AT - T)])  # under the route's 60 m
    batch.waiting("etl-queue", runnable=[api_job("e-1", "load", "RUNNABLE", AT - T)])
    invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")
    batch.stubber.assert_no_pending_responses()
    etl, genomics = bot.messages  # in queue order
    assert genomics["channel"] == "C0GENOMICS1" and genomics["text"].startswith("<!subteam^S0GENOMICS1> ")
    assert genomics["blocks"][1]["text"]["text"] == "cc <!subteam^S0GENOMICS1>"
    assert "*variant-call*" in json.dumps(genomics["blocks"]) and "align" not in json.dumps(genomics["blocks"])
    assert etl["channel"] == "C0123456789" and etl["text"].startswith(":hourglass:")


def test_consecutive_sweeps_report_each_job_once_per_step(batch, bot):
    jobs = [api_job("early", "early", "RUNNABLE", datetime(2024, 5, 13, 8, 30, tzinfo=UTC)),
            api_job("late", "late", "RUNNABLE", datetime(2024, 5, 13, 8, 44, 59, tzinfo=UTC))]
    # Each sweep fires a few seconds off its grid point, as EventBridge does.
    fired = ["2024-05-13T09:00:04Z", "2024-05-13T09:15:02Z", "2024-05-13T09:29:57Z", "2024-05-13T09:45:31Z"]
    reported = []
    for time in fired:
        batch.queues([api_queue("etl-queue")])
        batch.waiting("etl-queue", runnable=jobs)
        before = len(bot.messages)
        invoke("on_stuck_job_sweep", time)
        reported.append([s["text"]["text"].split("*")[1] for m in bot.messages[before:]
                         for s in m["blocks"] if s["type"] == "section" and "accessory" in s])
    batch.stubber.assert_no_pending_responses()
    assert reported == [["early"], ["late"], [], []]


def test_a_queue_that_cannot_be_listed_is_logged_and_the_others_still_post(batch, bot, caplog, monkeypatch):
    monkeypatch.setenv("STUCK_QUEUES", "secret-queue etl-queue")
    batch.error("list_jobs", "AccessDeniedException", {"jobQueue": "secret-queue", "jobStatus": "RUNNABLE"}, 403)
    batch.waiting("etl-queue", runnable=[api_job("e-1", "load", "RUNNABLE", AT - T)])
    result = invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")
    assert result.payload is None  # no exception: the next sweep tries again
    batch.stubber.assert_no_pending_responses()
    assert len(bot.messages) == 1
    [error] = [line for line in log_lines(caplog) if line.get("queue") == "secret-queue"]
    assert error["outcome"] == "failed"
    assert "must allow batch:ListJobs" in error["reason"]


def test_when_no_queue_can_be_listed_the_sweep_raises_so_lambda_retries(batch, bot, monkeypatch):
    monkeypatch.setenv("STUCK_QUEUES", "etl-queue")
    batch.error("list_jobs", "TooManyRequestsException", {"jobQueue": "etl-queue", "jobStatus": "RUNNABLE"}, 429)
    with pytest.raises(RuntimeError, match=r"1 of 1 queue\(s\) not listed"):
        invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")
    assert bot.requests == []


def test_describe_job_queues_denied_names_the_action_to_allow(batch, bot):
    batch.error("describe_job_queues", "AccessDeniedException", {}, 403)
    with pytest.raises(RuntimeError, match="must allow batch:DescribeJobQueues"):
        invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")


def test_a_report_slack_refuses_is_logged_and_the_other_reports_still_post(batch, bot, caplog, monkeypatch):
    from tools.slack_standin import Reply

    monkeypatch.setenv("STUCK_QUEUES", "a-queue b-queue")
    batch.waiting("a-queue", runnable=[api_job("a-1", "a", "RUNNABLE", AT - T)])
    batch.waiting("b-queue", runnable=[api_job("b-1", "b", "RUNNABLE", AT - T)])
    bot.script(Reply(body={"ok": False, "error": "channel_not_found"}))
    invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")
    assert len(bot.messages) == 1
    [failed] = [line for line in log_lines(caplog) if line.get("outcome") == "failed"]
    assert (failed["queue"], failed["permanent"]) == ("a-queue", True)


@pytest.mark.parametrize("setup", ["off", "no route posts STUCK"])
def test_nothing_to_sweep_makes_no_aws_call(batch, bot, monkeypatch, tmp_path, setup):
    if setup == "off":
        monkeypatch.setenv("STUCK_AFTER_MINUTES", "0")
    else:
        write_routes(tmp_path, monkeypatch, [
            {"name": "etl", "match": {"queue": "etl-*"}, "statuses": ["FAILED"]},
            {"name": "reports", "match": {"status": "SUCCEEDED"}, "channel": "C0REPORTS01"},
            {"name": "default", "digest": "only"}])
    invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")  # the stub has no answer: any call would fail
    assert bot.requests == []


def test_a_sweep_turned_off_reads_no_other_setting(batch, monkeypatch, tmp_path):
    # Off is off: a broken routing file (or no Slack at all) is for the handlers that post.
    monkeypatch.setenv("STUCK_AFTER_MINUTES", "0")
    (tmp_path / "routes.json").write_text("{not json")
    monkeypatch.setenv("NOTIFY_ROUTES", str(tmp_path / "routes.json"))
    invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")  # no ConfigError, no AWS call


def test_without_slack_settings_the_sweep_fails_before_any_aws_call(batch):
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL_PARAM"):
        invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")


def test_routes_with_channels_need_a_bot_token(batch, slack, tmp_path, monkeypatch):
    write_routes(tmp_path, monkeypatch, ROUTES)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    with pytest.raises(ConfigError, match="webhook always posts to its own channel"):
        invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")


def test_listing_stops_at_its_cap_and_says_so(batch):
    jobs = [api_job(f"j{i}", f"j{i}", "RUNNABLE", AT - T) for i in range(250)]
    batch.jobs("big-queue", jobs, status="RUNNABLE", page_size=100)
    listing = list_jobs(batch.client, "big-queue", statuses=["RUNNABLE"], limit=150)
    assert (len(listing.jobs), listing.truncated) == (150, True)
    assert listing.jobs[0].name == "j0" and listing.jobs[0].queue == "big-queue"


def test_the_stuck_status_is_routable():
    assert STUCK == "STUCK"
    table = parse_route_table({"routes": [{"name": "ops", "match": {"status": "STUCK"}, "channel": "C0OPS0001"},
                                          {"name": "default"}]})
    assert table.decide("q", "j", "STUCK").channel == "C0OPS0001"


# -- the one orchestration (chalicelib/scheduled/run.py): where the sweep and the digest differed --

def sweep(time: str = "2024-05-13T09:15:00Z", **kwargs: Any) -> Any:
    from chalicelib.scheduled.stuck import sweep_stuck_jobs

    return sweep_stuck_jobs(scheduled_event(time), 15, **kwargs)


def test_a_listing_cut_short_is_logged_and_said_in_the_report(batch, bot, caplog, monkeypatch):
    monkeypatch.setenv("STUCK_QUEUES", "etl-queue")
    batch.jobs("etl-queue", [api_job(f"e-{i}", f"load-{i}", "RUNNABLE", AT - T) for i in range(5)], status="RUNNABLE")
    result = sweep(listing_limit=3)  # the explicit seam: MAX_JOBS_PER_LISTING (10,000) at test size
    batch.stubber.assert_no_pending_responses()  # cut short: STARTING was not even asked for
    assert (result.posted, result.truncated, result.unlisted) == (1, 1, 0)
    [report] = bot.messages
    assert report["blocks"][0]["text"]["text"] == ":hourglass: 3 jobs stuck in etl-queue"
    assert report["blocks"][-1]["elements"][0]["text"].endswith(
        "Not swept in full: more than 3 waiting jobs; only the first were looked at.")
    lines = log_lines(caplog)
    assert {"sweep": "stuck", "queue": "etl-queue",
            "warning": "more than 3 waiting jobs; only the first were looked at"} in lines
    assert [line["truncated"] for line in lines if "posted" in line and "queues" in line] == [1]


def test_when_no_queue_can_be_listed_the_summary_is_logged_before_raising(batch, bot, caplog, monkeypatch):
    monkeypatch.setenv("STUCK_QUEUES", "a-queue b-queue")
    for queue in ("a-queue", "b-queue"):
        batch.error("list_jobs", "TooManyRequestsException", {"jobQueue": queue, "jobStatus": "RUNNABLE"}, 429)
    with pytest.raises(RuntimeError, match=r"stuck-job sweep at 2024-05-13 09:15 UTC: no job queue could be listed "
                                           r"\(2 of 2 queue\(s\) not listed\)"):
        sweep()
    assert bot.requests == []
    [summary_line] = [line for line in log_lines(caplog) if "queues" in line]
    assert summary_line == {"sweep": "stuck", "at": "2024-05-13T09:15:00+00:00", "queues": 2, "posted": 0,
                            "failed": 0, "unlisted": 2}


def test_when_every_report_fails_the_sweep_raises_naming_the_unlisted_queues_too(batch, bot, monkeypatch):
    from tools.slack_standin import Reply

    monkeypatch.setenv("STUCK_QUEUES", "secret-queue etl-queue")
    batch.error("list_jobs", "AccessDeniedException", {"jobQueue": "secret-queue", "jobStatus": "RUNNABLE"}, 403)
    batch.waiting("etl-queue", runnable=[api_job("e-1", "load", "RUNNABLE", AT - T)])
    bot.script(Reply(body={"ok": False, "error": "channel_not_found"}))
    # Nothing went out and something failed: raising cannot post anything twice.
    with pytest.raises(RuntimeError, match=r"1 report\(s\) not posted, none posted, 1 of 2 queue\(s\) not listed"):
        sweep()
    assert bot.messages == []


# -- the invocation's own deadline (Lambda kills a run at lambda_timeout) -----------------------------

def test_on_lambda_a_run_posts_only_what_fits_before_the_invocation_ends(batch, bot, caplog, monkeypatch):
    # chalice.test hands a 3 s context: on Lambda (AWS_LAMBDA_FUNCTION_NAME set) that leaves no
    # time after the margin, so nothing starts that Lambda could cut off half-posted.
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "batch-notify-dev-on_stuck_job_sweep")
    monkeypatch.setenv("STUCK_QUEUES", "a-queue")
    batch.waiting("a-queue", runnable=[api_job("a-1", "a", "RUNNABLE", AT - T)])
    with pytest.raises(RuntimeError, match="1 report\\(s\\) not posted, none posted"):
        invoke("on_stuck_job_sweep", "2024-05-13T09:15:00Z")
    assert bot.requests == []
    [failed] = [line for line in log_lines(caplog) if line.get("outcome") == "failed"]
    assert "s left of the invocation's time" in failed["reason"]


def test_each_scheduled_delivery_is_cut_to_the_time_the_invocation_has_left(bot, monkeypatch):
    monkeypatch.setenv("SLACK_DELIVERY_BUDGET_SECONDS", "20")
    bot.script(*[Reply(status=429, headers={"Retry-After": "1"})] * 30)
    message = SlackMessage(text="report", blocks=())
    started = monotonic()
    posted, failed = post_each([ScheduledPost({"sweep": "stuck"}, lambda: message, None)] * 2, slack_settings(),
                               deadline=started + 3.0)
    assert (posted, failed) == (0, 2)
    assert monotonic() - started < 3.0 + 1.5  # not 2 x 20 s of budget
