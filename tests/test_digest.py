"""The daily digest: which jobs a day counts, one digest per route, the message within Slack's
limits, and the scheduled handler end to end (chalice.test -> real handler -> Batch stub ->
Slack stand-in). AWS Batch is botocore's Stubber (see tests/test_stuck.py for why)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib.core import config
from chalicelib.deciding.routing import parse_route_table
from chalicelib.reading.batch_api import JobListing, JobSummary
from chalicelib.scheduled.digest import (
    LOOKBACK,
    MAX_FAILED_SHOWN,
    Digest,
    build_digest_message,
    digest_time,
    in_window,
    plan_digests,
)
from tests.batch_stub import api_job, api_queue, log_lines, scheduled_event, write_routes
from tests.conftest import TEST_CHANNEL, load_event
from tools.slack_standin import Reply, SlackStandIn, block_kit_errors

UTC = UTC
REGION = "us-east-1"
END = datetime(2024, 5, 13, 9, 0, tzinfo=UTC)
START = END - timedelta(hours=24)
H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)

ROUTES = [
    {"name": "etl", "match": {"queue": "etl-*"}, "channel": "C0DATAENG01", "mention": ["S0DATAENG01"],
     "digest": True},
    {"name": "reports", "match": {"queue": "reports-*"}, "channel": "C0REPORTS01", "digest": "only"},
    {"name": "airflow", "match": {"queue": "airflow-*"}, "drop": True},
    {"name": "default", "channel": "C0123456789", "statuses": ["FAILED"]},
]
CHANNELS = (TEST_CHANNEL, "C0DATAENG01", "C0REPORTS01", "C0123456789")


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, second, tzinfo=UTC)


def etl_day(queue: str = "etl-queue") -> list[dict[str, Any]]:
    """A day of one queue, in ListJobs' order (newest first), with the edges of the window."""
    jobs = [
        api_job("late", "submitted-after-the-digest", "SUBMITTED", at(13, 9, 0, 30)),
        api_job("wait", "waiting", "RUNNABLE", at(13, 8), reason="Waiting for capacity"),
        api_job("run", "still-running", "RUNNING", at(13, 6), started=at(13, 6, 5)),
        api_job("dep", "never-started", "FAILED", at(13, 1), stopped=at(13, 1, 0, 5),
                reason="Dependent Job failed"),
        api_job("oom", "nightly-etl-load", "FAILED", at(12, 22), started=at(12, 22, 1), stopped=at(12, 22, 13),
                reason="Essential container in task exited", exit_code=137,
                container_reason="OutOfMemoryError: Container killed due to memory usage"),
        api_job("ok", "nightly-etl-extract", "SUCCEEDED", at(12, 20), started=at(12, 20, 5), stopped=at(12, 21)),
        api_job("edge", "finished-at-the-start", "SUCCEEDED", at(12, 8), started=at(12, 8, 1), stopped=at(12, 9)),
        api_job("long", "backfill", "SUCCEEDED", at(11, 20), started=at(11, 20, 1), stopped=at(12, 10, 1)),
        api_job("old", "finished-yesterday", "SUCCEEDED", at(11, 10), started=at(11, 10), stopped=at(12, 8, 59)),
        api_job("child", "backfill", "FAILED", at(12, 23), stopped=at(12, 23, 5),
                arrayProperties={"size": 10, "index": 4}),
    ]
    return jobs


def listing(queue: str, jobs: list[dict[str, Any]]) -> JobListing:
    return JobListing(queue, tuple(JobSummary.from_api(job, queue) for job in jobs))


# -- the window ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fired, expected", [
    ("09:00:00", "09:00"), ("09:00:29", "09:00"), ("08:59:45", "09:00"), ("09:00:31", "09:01"),
])
def test_digest_time_is_the_schedules_minute(fired, expected):
    assert f"{digest_time(datetime.fromisoformat(f'2024-05-13T{fired}+00:00')):%H:%M}" == expected


def test_a_job_counts_on_the_day_it_finished_and_days_tile():
    jobs = {job.job_id: job for job in listing("etl-queue", etl_day()).jobs}
    where = {job_id: in_window(job, START, END) for job_id, job in jobs.items()}
    assert where == {
        "late": None,  # submitted after the digest's minute: tomorrow's
        "wait": "unfinished", "run": "unfinished",
        "dep": "finished",  # failed before it started: counted by its stop (or submission) time
        "oom": "finished", "ok": "finished",
        "edge": None,  # stopped exactly at the window's start: yesterday's digest counted it
        "long": "finished",  # submitted two days ago, finished today
        "old": None, "child": "finished",
    }
    yesterday = {job_id for job_id, job in jobs.items() if in_window(job, START - 24 * H, START) == "finished"}
    assert yesterday == {"edge", "old"}


# -- the plan -------------------------------------------------------------------------------------

def test_one_digest_per_route_that_asks_in_the_files_order():
    table = parse_route_table({"routes": ROUTES})
    listings = [listing("etl-queue", etl_day()), listing("reports-queue", etl_day()),
                listing("airflow-task", etl_day()), listing("misc-queue", etl_day())]
    digests = plan_digests(listings, END, table, problems={"etl-other": "AccessDeniedException: ...",
                                                           "reports-x": "more than 10000 jobs"})
    assert [(d.route, d.channel) for d in digests] == [("etl", "C0DATAENG01"), ("reports", "C0REPORTS01")]
    etl, reports = digests
    assert sorted(j.job_id for j in etl.finished) == ["dep", "long", "ok", "oom"]  # no array child
    assert sorted(j.job_id for j in etl.unfinished) == ["run", "wait"]
    assert {j.queue for j in (*etl.finished, *reports.finished)} == {"etl-queue", "reports-queue"}
    assert etl.notes == ("etl-other: AccessDeniedException: ...",)
    assert reports.notes == ("reports-x: more than 10000 jobs",)


def test_without_a_routing_table_one_digest_covers_every_queue():
    [digest] = plan_digests([listing("a-queue", etl_day()), listing("b-queue", etl_day())], END, None)
    assert (digest.route, digest.channel, len(digest.finished), len(digest.unfinished)) == (None, None, 8, 4)


def test_no_route_asking_means_no_digest_and_a_quiet_route_still_gets_one():
    assert plan_digests([listing("etl-queue", etl_day())], END, parse_route_table({"routes": [{"name": "d"}]})) == []
    table = parse_route_table({"routes": [{"name": "gpu", "match": {"queue": "gpu-*"}, "digest": True},
                                          {"name": "default"}]})
    [digest] = plan_digests([listing("etl-queue", etl_day())], END, table)
    assert (digest.route, digest.finished, digest.unfinished) == ("gpu", (), ())


def test_a_job_follows_the_route_of_its_status():
    table = parse_route_table({"routes": [
        {"name": "failures", "match": {"status": "FAILED"}, "channel": "C0ONCALL01", "digest": True},
        {"name": "default", "digest": "only"}]})
    failures, default = plan_digests([listing("etl-queue", etl_day())], END, table)
    assert {j.status for j in failures.finished} == {"FAILED"}
    assert {j.status for j in default.finished} == {"SUCCEEDED"}


# -- the message ------------------------------------------------------------------------------------

def test_message_counts_by_queue_lists_failures_with_reasons_and_the_longest_runs():
    table = parse_route_table({"routes": ROUTES[:1] + ROUTES[3:]})
    [digest] = plan_digests([listing("etl-queue", etl_day())], END, table)
    payload = build_digest_message(digest, REGION).to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    texts = [b["text"]["text"] for b in payload["blocks"] if b["type"] in ("header", "section")]
    assert texts[0] == ":clipboard: Daily digest: etl"
    assert texts[1] == ("*24 h to 2024-05-13 09:00 UTC*\n:white_check_mark: *2* succeeded · :x: *2* failed"
                        " · :hourglass_flowing_sand: *2* not finished (1 waiting, 1 running)")
    assert texts[2] == "*By job queue*\n`etl-queue` · 2 succeeded · 2 failed · 2 not finished"
    assert texts[3] == "*Failed (2)*"
    assert texts[4] == ("*never-started* · `etl-queue` · never started\nDependent Job failed")
    assert texts[5] == ("*nightly-etl-load* · `etl-queue` · exit 137 · ran 12m\n"
                        "Essential container in task exited · OutOfMemoryError: Container killed due to memory usage")
    url = f"https://{REGION}.console.aws.amazon.com/batch/home?region={REGION}#jobs/detail/"
    assert payload["blocks"][5]["accessory"]["url"] == url + "oom"
    assert texts[6].split("\n") == [
        "*Longest runs*",
        f"`14h` <{url}long|backfill> · `etl-queue` · succeeded",
        f"`2h 55m` <{url}run|still-running> · `etl-queue` · still running",
        f"`55m` <{url}ok|nightly-etl-extract> · `etl-queue` · succeeded",
        f"`12m` <{url}oom|nightly-etl-load> · `etl-queue` · failed",
    ]
    assert "cc <" not in json.dumps(payload)  # a digest is for reading: it mentions nobody
    assert payload["text"] == (":clipboard: Daily digest: etl: 2 succeeded, 2 failed, 2 not finished "
                               "(24 h to 2024-05-13 09:00 UTC)")


def test_an_empty_day_says_so():
    payload = build_digest_message(Digest(route=None, channel=None, start=START, end=END), REGION).to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    assert payload["blocks"][1]["text"]["text"].endswith("No AWS Batch job finished, and none is waiting or running.")
    assert [b["type"] for b in payload["blocks"]] == ["header", "section", "context"]


def test_a_big_hostile_day_stays_within_slacks_limits():
    jobs = []
    for q in range(60):
        queue = f"queue-{q:02}-" + "q" * 100
        for i in range(20):
            failed = i % 3 == 0
            jobs.append(JobSummary(
                queue=queue, job_id=f"{q}-{i}", name=f"<!channel> {'x' * 3000}",
                status="FAILED" if failed else "SUCCEEDED",
                status_reason="<https://evil|click> " * 300 if failed else None,
                created_at=END - 5 * H, started_at=END - 4 * H - i * M, stopped_at=END - H))
    digest = Digest(route="everything", channel=None, start=START, end=END, finished=tuple(jobs),
                    notes=tuple(f"queue-{i}: AccessDeniedException" for i in range(100)))
    payload = build_digest_message(digest, REGION).to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    text = json.dumps(payload, ensure_ascii=False)
    assert "<!channel>" not in text and "<https://evil" not in text
    queues = payload["blocks"][2]["text"]["text"].split("\n")
    assert queues[-1].startswith("…and ") and queues[-1].endswith(" more job queues") and len(queues) == 22
    failed = [b for b in payload["blocks"] if b["type"] == "section" and "accessory" in b]
    assert len(failed) == MAX_FAILED_SHOWN
    assert f"…and {420 - MAX_FAILED_SHOWN} more failed jobs: see the AWS Batch console." in text
    assert len(payload["text"]) <= 500


# -- the handler end to end -------------------------------------------------------------------------

@pytest.fixture
def bot(monkeypatch):
    with SlackStandIn(channels=CHANNELS) as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
        monkeypatch.setenv("SLACK_CHANNEL", TEST_CHANNEL)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        yield slack


def invoke(event: dict[str, Any], handler: str = "on_daily_digest") -> Any:
    with Client(app, stage_name="local") as client:
        return client.lambda_.invoke(handler, event)


def digest_event(time: str = "2024-05-13T09:00:12Z") -> dict[str, Any]:
    return scheduled_event(time, "on_daily_digest")


def test_each_route_gets_its_digest_in_its_channel(batch, bot, tmp_path, monkeypatch):
    write_routes(tmp_path, monkeypatch, ROUTES)
    batch.queues([api_queue(n) for n in ("airflow-task", "etl-queue", "misc-queue", "reports-queue")], page_size=3)
    after = END - LOOKBACK
    batch.jobs("etl-queue", etl_day(), created_after=after, page_size=4)
    # Hundreds of jobs over several pages (ListJobs returns up to 100 per page with a filter).
    reports = [api_job(f"r{i:03}", f"report-{i:03}", "FAILED" if i % 50 == 0 else "SUCCEEDED", at(12, 12),
                       started=at(12, 12, 1), stopped=at(12, 12, 1) + i * S, reason="Essential container exited")
               for i in range(450)]
    batch.jobs("reports-queue", reports, created_after=after, page_size=100)
    invoke(digest_event())
    batch.stubber.assert_no_pending_responses()  # airflow-task and misc-queue feed no digest: not listed
    etl, report = bot.messages
    assert (etl["channel"], report["channel"]) == ("C0DATAENG01", "C0REPORTS01")
    assert etl["blocks"][0]["text"]["text"] == ":clipboard: Daily digest: etl"
    assert ":x: *2* failed" in etl["blocks"][1]["text"]["text"] and "S0DATAENG01" not in json.dumps(etl)
    assert report["blocks"][1]["text"]["text"].startswith(
        "*24 h to 2024-05-13 09:00 UTC*\n:white_check_mark: *441* succeeded · :x: *9* failed")
    for message in (etl, report):
        assert block_kit_errors(message["blocks"]) == []


def test_a_digest_only_route_gets_no_per_job_message_but_its_digest(batch, bot, tmp_path, monkeypatch, caplog):
    write_routes(tmp_path, monkeypatch, [{"name": "everything", "channel": "C0REPORTS01", "digest": "only"}])
    event = load_event("ec2_failed")
    invoke(event, "on_job_failed")
    assert bot.requests == []
    [line] = [x for x in log_lines(caplog) if x.get("event_id") == event["id"]]
    assert (line["outcome"], line["reason"]) == ("skipped", "route 'everything' is digest-only")
    monkeypatch.setenv("DIGEST_QUEUES", "etl-queue")
    config.reset()  # settings are read once per container: the handler above read them
    batch.jobs("etl-queue", etl_day(), created_after=END - LOOKBACK)
    invoke(digest_event())
    [digest] = bot.messages
    assert digest["channel"] == "C0REPORTS01"


def test_without_a_routing_file_the_digest_needs_DIGEST_on(batch, bot, monkeypatch, caplog):
    invoke(digest_event())  # DIGEST unset: no AWS call (the stub has no answer), no post
    assert bot.requests == []
    skipped = {"digest": "daily", "outcome": "skipped", "reason": "no routing file and DIGEST is not 'on'"}
    assert skipped in log_lines(caplog)
    monkeypatch.setenv("DIGEST", "on")
    config.reset()  # settings are read once per container
    batch.queues([])  # an account with no job queue yet
    invoke(digest_event())
    [digest] = bot.messages
    assert digest["channel"] == TEST_CHANNEL
    assert digest["blocks"][0]["text"]["text"] == ":clipboard: Daily digest of AWS Batch jobs"
    assert "No AWS Batch job finished" in digest["blocks"][1]["text"]["text"]


def test_webhook_mode_posts_the_single_digest_too(batch, slack, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    monkeypatch.setenv("DIGEST", "on")
    monkeypatch.setenv("DIGEST_QUEUES", "etl-queue")
    batch.jobs("etl-queue", etl_day(), created_after=END - LOOKBACK)
    invoke(digest_event("2024-05-13T08:59:58Z"))  # a touch early: still the 09:00 digest
    [digest] = slack.messages
    assert digest["blocks"][1]["text"]["text"].startswith("*24 h to 2024-05-13 09:00 UTC*")


def test_a_queue_that_cannot_be_listed_is_named_in_the_digest(batch, bot, monkeypatch, caplog):
    monkeypatch.setenv("DIGEST", "on")
    monkeypatch.setenv("DIGEST_QUEUES", "secret-queue etl-queue")
    filters = [{"name": "AFTER_CREATED_AT", "values": [str(int((END - LOOKBACK).timestamp() * 1000))]}]
    batch.error("list_jobs", "AccessDeniedException", {"jobQueue": "secret-queue", "filters": filters}, 403)
    batch.jobs("etl-queue", etl_day(), created_after=END - LOOKBACK)
    invoke(digest_event())
    [digest] = bot.messages
    context = digest["blocks"][-1]["elements"][0]["text"]
    # The reason is describe_aws_error's (chalicelib/core/aws_errors.py), naming what to allow.
    assert "Not counted in full: secret-queue: " in context and "must allow batch:ListJobs" in context
    assert any(x.get("queue") == "secret-queue" and x["outcome"] == "failed" for x in log_lines(caplog))


def test_when_no_queue_can_be_listed_the_digest_raises_so_lambda_retries(batch, bot, monkeypatch):
    monkeypatch.setenv("DIGEST", "on")
    monkeypatch.setenv("DIGEST_QUEUES", "etl-queue")
    filters = [{"name": "AFTER_CREATED_AT", "values": [str(int((END - LOOKBACK).timestamp() * 1000))]}]
    batch.error("list_jobs", "TooManyRequestsException", {"jobQueue": "etl-queue", "filters": filters}, 429)
    with pytest.raises(RuntimeError, match="no job queue could be listed"):
        invoke(digest_event())
    assert bot.requests == []


def test_one_digest_slack_refuses_does_not_cost_the_others_theirs(batch, bot, tmp_path, monkeypatch, caplog):
    write_routes(tmp_path, monkeypatch, ROUTES)
    monkeypatch.setenv("DIGEST_QUEUES", "etl-queue reports-queue")
    batch.jobs("etl-queue", etl_day(), created_after=END - LOOKBACK)
    batch.jobs("reports-queue", [], created_after=END - LOOKBACK)
    bot.script(Reply(body={"ok": False, "error": "not_in_channel"}))
    invoke(digest_event())  # one posted: no raise, so a retry cannot post that one twice
    [posted] = bot.messages
    assert posted["channel"] == "C0REPORTS01"
    [failed] = [x for x in log_lines(caplog) if x.get("outcome") == "failed"]
    assert (failed["route"], failed["permanent"]) == ("etl", True)


def test_when_every_digest_fails_the_handler_raises(batch, bot, monkeypatch):
    monkeypatch.setenv("DIGEST", "on")
    monkeypatch.setenv("DIGEST_QUEUES", "etl-queue")
    batch.jobs("etl-queue", [], created_after=END - LOOKBACK)
    bot.script(Reply(body={"ok": False, "error": "channel_not_found"}))
    with pytest.raises(RuntimeError, match="none posted"):  # nothing went out: a retry posts nothing twice
        invoke(digest_event())


# -- the one orchestration (chalicelib/scheduled/run.py): where the sweep and the digest differed --

def test_a_listing_cut_short_is_logged_and_said_in_the_digest(batch, bot, monkeypatch, caplog):
    from chalicelib.scheduled.digest import post_daily_digests

    monkeypatch.setenv("DIGEST", "on")
    monkeypatch.setenv("DIGEST_QUEUES", "etl-queue")
    batch.jobs("etl-queue", etl_day(), created_after=END - LOOKBACK)
    result = post_daily_digests(digest_event(), listing_limit=3)  # the seam: MAX_JOBS_PER_LISTING at test size
    assert (result.posted, result.truncated, result.unlisted) == (1, 1, 0)
    [digest] = bot.messages
    assert digest["blocks"][-1]["elements"][0]["text"].endswith(
        "Not counted in full: etl-queue: more than 3 jobs; the oldest were not looked at")
    lines = log_lines(caplog)
    # Logged the way the sweep logs it (the digest used to say so only in the message).
    assert {"digest": "daily", "queue": "etl-queue",
            "warning": "more than 3 jobs; the oldest were not looked at"} in lines
    [summary_line] = [line for line in lines if "digests" in line]
    assert (summary_line["truncated"], "unlisted" in summary_line) == (1, False)


def test_when_no_queue_can_be_listed_the_summary_is_logged_before_raising(batch, bot, monkeypatch, caplog):
    monkeypatch.setenv("DIGEST", "on")
    monkeypatch.setenv("DIGEST_QUEUES", "etl-queue")
    filters = [{"name": "AFTER_CREATED_AT", "values": [str(int((END - LOOKBACK).timestamp() * 1000))]}]
    batch.error("list_jobs", "TooManyRequestsException", {"jobQueue": "etl-queue", "filters": filters}, 429)
    with pytest.raises(RuntimeError, match=r"daily digest at 2024-05-13 09:00 UTC: no job queue could be listed"):
        invoke(digest_event())
    assert bot.requests == []  # a digest of nothing would mislead
    [summary_line] = [line for line in log_lines(caplog) if "queues" in line]
    assert summary_line == {"digest": "daily", "end": "2024-05-13T09:00:00+00:00", "queues": 1, "posted": 0,
                            "failed": 0, "unlisted": 1}
