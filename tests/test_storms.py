"""Failure storms: joining a group (moto's DynamoDB) and showing every job once (the Slack stand-in).

moto applies each call at once but does not lock: :class:`Locked` runs every DynamoDB call under
one lock, which is what DynamoDB's own atomic conditional writes give (tests/design: the storms
section). Each thread stands for one Lambda container handling its own events.

The storm test's count: the group message counts every job of the group, the first GROUP_AFTER
(which posted their own messages) included: 60 jobs give "60 jobs failed", and the thread lists
the 57 grouped ones.
"""

from __future__ import annotations

import copy
import queue
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.composing.messages import build_job_state_message
from chalicelib.core import clients, config
from chalicelib.core.config import ConfigError
from chalicelib.core.state_table import StateTable, state_table
from chalicelib.deciding import storms
from chalicelib.deciding.routing import Decision
from chalicelib.deciding.storms import (
    MAX_MEMBERS,
    Busy,
    Grouping,
    Joiner,
    StormKey,
    grouping_for,
    is_done,
    join,
    load_storm_settings,
    read_group,
    storm_cause,
    storm_key,
    take_lease,
)
from chalicelib.delivering.slack import Slack
from chalicelib.delivering.storm_posting import StormResult, StormTimeout, join_storm
from chalicelib.reading.event import JobStateChange
from tests.conftest import TEST_CHANNEL, load_event
from tests.state_fixtures import Serialized, create_state_table
from tools.slack_standin import Reply, SlackStandIn, block_kit_errors

TABLE = "batch-notify-test-state"
GROUPING = Grouping(after=3, window_seconds=600)
ONCALL = "U0ONCALL01"
# Short intervals, so a storm settles in a second or two.
FAST: dict[str, Any] = {"update_seconds": 0.3, "poll_seconds": (0.1, 0.2), "lease_seconds": 5.0}


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[StateTable]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(dynamodb, TABLE)
        monkeypatch.setenv("NOTIFY_STATE_TABLE", TABLE)
        config.reset()
        with clients.use_client("dynamodb", Serialized(dynamodb)):
            found = state_table()
            assert found is not None
            yield found


def failed_job(number: int, base: str = "diag_image_pull") -> JobStateChange:
    """A distinct FAILED job of one storm (same queue, same cause): the image could not be pulled."""
    event = copy.deepcopy(load_event(base))
    job_id = str(uuid.UUID(int=number + 1))
    event["detail"].update(jobId=job_id, jobName=f"invoice-export-{number:03d}",
                           jobArn=f"arn:aws:batch:eu-west-1:123456789012:job/{job_id}")
    return JobStateChange.from_event(event)


def member(number: int) -> Joiner:
    return storms.joiner(failed_job(number))


STORM = StormKey(TEST_CHANNEL, "reports-fargate-queue", "image_pull")


def run_threads(count: int, work: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as error:  # collected: a thread's failure fails the test
            errors.append(error)
    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


# -- the cause and the settings --------------------------------------------------------------------

def test_the_cause_is_the_diagnosis_else_the_exit_code_else_the_masked_reason():
    assert storm_cause(failed_job(1)) == "image_pull"
    assert storm_cause(JobStateChange.from_event(load_event("ec2_failed"))) == "exit 1"
    event = load_event("ec2_failed")
    event["detail"]["container"].pop("exitCode", None)
    for attempt in event["detail"].get("attempts", []):
        attempt.get("container", {}).pop("exitCode", None)
    event["detail"]["container"]["reason"] = "Task 0a1b2c3d4e5f6a7b stopped after 37 retries on i-0abc1234def56789"
    job = JobStateChange.from_event(event)
    if job.exit_code is None:
        assert storm_cause(job) == "Task # stopped after # retries on #"


@given(st.text(max_size=400), st.integers(0, 10**12), st.integers(0, 2**64))
@hypothesis_settings(max_examples=60, deadline=None)
def test_a_reason_cause_hides_numbers_and_ids_and_is_bounded(text, number, hex_id):
    event = load_event("never_started_failed")
    event["detail"]["statusReason"] = f"{text} {number} {hex_id:016x}"
    event["detail"].pop("container", None)
    event["detail"]["attempts"] = []
    job = JobStateChange.from_event(event)
    cause = storm_cause(job)
    assert len(cause) <= storms.CAUSE_LIMIT
    if storms.diagnose(job) is None and job.exit_code is None:
        assert not re.search(r"[0-9]", cause)
        other = copy.deepcopy(event)
        other["detail"]["statusReason"] = f"{text} {number + 1} {hex_id ^ 0xFFFF_FFFF:016x}"
        assert storm_cause(JobStateChange.from_event(other)) == cause  # same storm, whatever the ids


def test_settings_default_and_name_the_variable_on_error():
    assert load_storm_settings({}) == storms.StormSettings(after=3, window_minutes=10)
    assert load_storm_settings({"GROUP_AFTER": "0", "GROUP_WINDOW_MINUTES": "1440"}).after == 0
    for env, name in (({"GROUP_AFTER": "-1"}, "GROUP_AFTER"), ({"GROUP_AFTER": "1001"}, "GROUP_AFTER"),
                      ({"GROUP_WINDOW_MINUTES": "1441"}, "GROUP_WINDOW_MINUTES"),
                      ({"GROUP_WINDOW_MINUTES": "0"}, "GROUP_WINDOW_MINUTES"),
                      ({"GROUP_WINDOW_MINUTES": "2.5"}, "GROUP_WINDOW_MINUTES")):
        with pytest.raises(ConfigError, match=f"^{name}="):
            load_storm_settings(env)


def test_grouping_follows_the_route_else_the_settings(monkeypatch):
    monkeypatch.setenv("GROUP_AFTER", "4")
    monkeypatch.setenv("GROUP_WINDOW_MINUTES", "20")
    config.reset()
    assert grouping_for(Decision("r", True, "routed")) == Grouping(4, 1200.0)
    assert grouping_for(Decision("r", True, "routed", group_after=10, group_window_minutes=2)) == Grouping(10, 120.0)
    assert grouping_for(Decision("r", True, "routed", group_after=0)) is None
    monkeypatch.setenv("GROUP_AFTER", "0")
    config.reset()
    assert grouping_for(Decision("r", True, "routed")) is None
    assert grouping_for(Decision("r", True, "routed", group_after=2)) == Grouping(2, 1200.0)


def test_the_group_key_separates_channels_queues_and_causes():
    job = failed_job(1)
    assert storm_key(job, "C1").pk == storm_key(failed_job(2), "C1").pk
    assert len({storm_key(job, "C1").pk, storm_key(job, "C2").pk, StormKey("C1", "q", "exit 1").pk,
                StormKey("C1", "q2", "exit 1").pk}) == 4


# -- joining ---------------------------------------------------------------------------------------

def test_ordinals_are_one_to_n_with_no_gap_or_repeat_under_ten_threads(table):
    jobs: queue.Queue[int] = queue.Queue()
    for number in range(40):
        jobs.put(number)
    got: list[tuple[int, storms.Membership]] = []

    def worker() -> None:
        while True:
            try:
                number = jobs.get_nowait()
            except queue.Empty:
                return
            got.append((number, join(table, STORM, member(number), GROUPING, time.time())))
    assert run_threads(10, worker) == []
    assert sorted(m.ordinal for _, m in got) == list(range(1, 41))
    assert all(m.grouped == (m.ordinal > 3) for _, m in got)
    group = read_group(table, STORM.pk)
    assert group is not None and group.count == 40
    # Every grouped job's line waits exactly once; the first three have none (they post their own).
    assert Counter(p.digest for p in group.pending) == Counter(m.digest for _, m in got if m.grouped)


def test_a_rejoin_returns_the_first_ordinal_and_never_appends_twice(table):
    memberships = [join(table, STORM, member(n), GROUPING, 1000.0 + n) for n in range(5)]
    again = [join(table, STORM, member(4), GROUPING, 1010.0) for _ in range(3)]
    assert {m.ordinal for m in again} == {memberships[4].ordinal} == {5}
    group = read_group(table, STORM.pk)
    assert group.count == 5 and [p.line.job_name for p in group.pending] == ["invoice-export-003",
                                                                              "invoice-export-004"]
    assert group.names == tuple(f"invoice-export-{n:03d}" for n in range(5))


def test_concurrent_rejoins_of_one_job_agree(table):
    results: list[storms.Membership] = []
    assert run_threads(8, lambda: results.append(join(table, STORM, member(7), GROUPING, 1000.0))) == []
    assert {r.ordinal for r in results} == {1}
    assert read_group(table, STORM.pk).count == 1


def test_a_join_after_the_window_starts_a_new_generation(table):
    first = [join(table, STORM, member(n), GROUPING, 1000.0 + n) for n in range(4)]
    late = join(table, STORM, member(10), GROUPING, 1003.0 + GROUPING.window_seconds + 1)
    assert late.generation != first[0].generation and (late.ordinal, late.grouped) == (1, False)
    group = read_group(table, STORM.pk)
    assert group.count == 1 and group.pending == ()
    # The old generation's unshown member is not "done": it joins again (and posts on its own).
    assert is_done(group, first[3]) is None
    # Within the window of the new generation, joins go on from there.
    assert join(table, STORM, member(11), GROUPING, 1700.0).ordinal == 2


def full_group(table: StateTable, *, settled: bool) -> None:
    """A group at its member cap, put directly (joining 2000 jobs would take too long)."""
    table.put({"pk": STORM.pk, "generation": "oldgen", "channel": STORM.channel, "queue": STORM.queue,
               "cause": STORM.cause, "after": 3, "count": MAX_MEMBERS, "first_at": 900.0, "last_at": 1000.0,
               "members": {"feedfacefeedface": MAX_MEMBERS}, "names": {},
               "pending": [] if settled else [{"key": "feedfacefeedface", "line": {"name": "a", "id": "b",
                                                                                    "outcome": "exit 1"}}],
               "ts": "1.000100", "shown_count": MAX_MEMBERS if settled else MAX_MEMBERS - 1, "updated_at": 0,
               "mentioned": True, "expires_at": 99999999999})


def test_a_full_group_is_continued_by_a_new_generation_once_settled(table):
    full_group(table, settled=False)
    with pytest.raises(Busy):
        join(table, STORM, member(1), GROUPING, 1001.0)
    full_group(table, settled=True)
    joined = join(table, STORM, member(1), GROUPING, 1001.0)
    assert (joined.ordinal, joined.grouped) == (1, True)  # a continuation groups every job
    group = read_group(table, STORM.pk)
    assert group.previous == storms.Previous("1.000100", MAX_MEMBERS) and "oldgen" in group.settled
    old = storms.Membership(STORM.pk, "oldgen", "feedfacefeedface", MAX_MEMBERS, True)
    assert is_done(group, old) is True  # its line was shown before the new generation began


# -- through Slack ---------------------------------------------------------------------------------

@pytest.fixture
def slack_client(bot: SlackStandIn) -> Slack:
    config.reset()
    return Slack(config.slack_settings())


def storm(jobs: list[JobStateChange], slack: Slack, table: StateTable, threads: int = 10,
          **knobs: Any) -> list[tuple[JobStateChange, StormResult]]:
    """Each thread = one Lambda container: join the storm, and post its own message when not grouped."""
    waiting: queue.Queue[JobStateChange] = queue.Queue()
    for job in jobs:
        waiting.put(job)
    results: list[tuple[JobStateChange, StormResult]] = []

    def container() -> None:
        while True:
            try:
                job = waiting.get_nowait()
            except queue.Empty:
                return
            result = join_storm(job, TEST_CHANNEL, (ONCALL,), GROUPING, slack, table,
                                deadline=time.monotonic() + 30, **{**FAST, **knobs})
            if not result.grouped:
                slack.post(build_job_state_message(job), channel=TEST_CHANNEL)  # notify's usual path
            results.append((job, result))
    assert run_threads(threads, container) == []
    return results


def thread_job_ids(shown: Any) -> Counter[str]:
    """How often each job id appears in the group message's thread."""
    return Counter(re.findall(r"`([0-9a-f-]{36})`", " ".join(str(reply.blocks) for reply in shown.replies)))


def group_messages(bot: SlackStandIn) -> list[Any]:
    return [m for m in bot.channel_view(TEST_CHANNEL) if "jobs failed in" in m.text]


def test_sixty_jobs_in_ten_containers_give_one_group_message_with_every_job_once(bot, slack_client, table):
    jobs = [failed_job(n) for n in range(60)]
    results = storm(jobs, slack_client, table)
    assert sorted(r.ordinal for _, r in results) == list(range(1, 61))
    own = {job.job_id for job, r in results if not r.grouped}
    grouped = {job.job_id for job, r in results if r.grouped}
    assert len(own) == 3 and len(grouped) == 57

    view = bot.channel_view(TEST_CHANNEL)
    [group] = group_messages(bot)
    assert len(view) == 4  # 3 own messages + 1 group message: GROUP_AFTER + 1
    assert group.text.startswith(":rotating_light: 60 jobs failed in reports-fargate-queue: Image could not be pulled")
    assert group.blocks[0]["text"]["text"].startswith(":rotating_light: 60 jobs failed")
    ids = thread_job_ids(group)
    assert set(ids) == grouped and set(ids.values()) == {1}  # every grouped job once, none of the own ones
    # Several jobs per reply, and a handful of updates: never one per job.
    assert len(group.replies) < 57 / 2
    assert 1 <= len(bot.updates) <= 12
    # The group pinged once: its first post; the updates never.
    [first_post] = [m for m in bot.messages if "jobs failed in" in m["text"]]
    assert first_post["text"].startswith(f"<@{ONCALL}> ")
    assert all("<@" not in update["text"] for update in bot.updates)
    assert all(block_kit_errors(m["blocks"]) == [] for m in bot.messages + bot.updates)
    final = read_group(table, storm_key(jobs[0], TEST_CHANNEL).pk)
    assert final.shown_count == final.count == 60 and final.pending == () and final.lease_owner is None


def test_grouping_off_for_the_first_jobs_only(bot, slack_client, table):
    results = storm([failed_job(n) for n in range(3)], slack_client, table, threads=3)
    assert [r.grouped for _, r in results] == [False] * 3
    assert group_messages(bot) == [] and bot.updates == []


def storm_of(job: JobStateChange) -> StormKey:
    return storm_key(job, TEST_CHANNEL)


def test_a_dead_lease_holder_is_taken_over_after_its_lease(bot, slack_client, table):
    for n in range(3):
        join(table, storm_of(failed_job(0)), storms.joiner(failed_job(n)), GROUPING, time.time())
    pk = storm_of(failed_job(0)).pk
    assert take_lease(table, pk, "a-container-that-died", time.time(), 1.0) is not None
    started = time.monotonic()
    result = join_storm(failed_job(3), TEST_CHANNEL, (), GROUPING, slack_client, table,
                        deadline=time.monotonic() + 10, **FAST)
    assert result.grouped and result.ordinal == 4
    assert time.monotonic() - started >= 0.8  # it waited for the dead holder's lease to run out
    [group] = group_messages(bot)
    assert set(thread_job_ids(group)) == {failed_job(3).job_id}


def delete(bot: SlackStandIn, ts: str) -> None:
    """Delete a message as a person would (the stand-in's response URL, delete_original)."""
    import json
    import urllib.request

    request = urllib.request.Request(bot.response_url(TEST_CHANNEL, ts), data=json.dumps(
        {"delete_original": True}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200


def test_a_deleted_group_message_is_posted_anew(bot, slack_client, table):
    storm([failed_job(n) for n in range(5)], slack_client, table, threads=2)
    [first] = group_messages(bot)
    delete(bot, first.ts)
    assert group_messages(bot) == []
    result = join_storm(failed_job(5), TEST_CHANNEL, (ONCALL,), GROUPING, slack_client, table,
                        deadline=time.monotonic() + 10, **FAST)
    assert result.grouped and result.ordinal == 6
    [again] = group_messages(bot)
    assert result.ts == again.ts != first.ts and again.text.startswith(":rotating_light: 6 jobs failed")
    assert "<@" not in again.text  # the group pinged once, with its first message
    assert set(thread_job_ids(again)) == {failed_job(5).job_id}


def test_the_deadline_raises_and_the_retry_completes_without_a_second_line(bot, slack_client, table):
    for n in range(3):
        join(table, storm_of(failed_job(0)), storms.joiner(failed_job(n)), GROUPING, time.time())
    pk = storm_of(failed_job(0)).pk
    # A lease too close to its end to count on (under VOUCH_MARGIN_SECONDS): the member waits.
    take_lease(table, pk, "a-slow-container", time.time(), 1.0)
    with pytest.raises(StormTimeout, match="Lambda retries"):
        join_storm(failed_job(3), TEST_CHANNEL, (), GROUPING, slack_client, table,
                   deadline=time.monotonic() + 0.3, **FAST)
    storms.release_lease(table, pk, "a-slow-container")
    result = join_storm(failed_job(3), TEST_CHANNEL, (), GROUPING, slack_client, table,  # Lambda's retry
                        deadline=time.monotonic() + 10, **FAST)
    assert result.grouped and result.ordinal == 4
    [group] = group_messages(bot)
    assert thread_job_ids(group) == Counter({failed_job(3).job_id: 1})


def test_a_live_holder_vouches_for_a_pending_line_and_its_lines_are_posted_once(bot, slack_client, table):
    for n in range(3):
        join(table, storm_of(failed_job(0)), storms.joiner(failed_job(n)), GROUPING, time.time())
    pk = storm_of(failed_job(0)).pk
    take_lease(table, pk, "a-busy-container", time.time(), 60.0)
    started = time.monotonic()
    result = join_storm(failed_job(3), TEST_CHANNEL, (), GROUPING, slack_client, table,
                        deadline=time.monotonic() + 10, **FAST)
    # Returned at once: the holder gives its lease up only once the group is settled.
    assert result.grouped and time.monotonic() - started < 2 and bot.messages == []
    assert not storms.release_lease(table, pk, "a-busy-container", only_when_settled=True)
    # The holder dies (its lease is dropped); Lambda's retry of its event, or the next member, posts.
    storms.release_lease(table, pk, "a-busy-container")
    join_storm(failed_job(4), TEST_CHANNEL, (), GROUPING, slack_client, table, deadline=time.monotonic() + 10,
               **FAST)
    [group] = group_messages(bot)
    assert thread_job_ids(group) == Counter({failed_job(3).job_id: 1, failed_job(4).job_id: 1})


def test_a_slack_error_releases_the_lease_and_raises_then_the_retry_completes(bot, slack_client, table):
    for n in range(3):
        join(table, storm_of(failed_job(0)), storms.joiner(failed_job(n)), GROUPING, time.time())
    bot.script(Reply(200, {"ok": False, "error": "invalid_auth"}))
    with pytest.raises(Exception, match="invalid_auth"):
        join_storm(failed_job(3), TEST_CHANNEL, (), GROUPING, slack_client, table,
                   deadline=time.monotonic() + 10, **FAST)
    group = read_group(table, storm_of(failed_job(0)).pk)
    assert group.lease_owner is None and group.ts is None and group.count == 4
    result = join_storm(failed_job(3), TEST_CHANNEL, (), GROUPING, slack_client, table,
                        deadline=time.monotonic() + 10, **FAST)
    assert result.ordinal == 4
    [shown] = group_messages(bot)
    assert thread_job_ids(shown) == Counter({failed_job(3).job_id: 1})


def test_a_member_whose_line_is_shown_stays_to_finish_what_a_dead_holder_left(bot, slack_client, table):
    for n in range(5):
        join_storm(failed_job(n), TEST_CHANNEL, (), GROUPING, slack_client, table, deadline=time.monotonic() + 10,
                   **FAST)
    pk = storm_of(failed_job(0)).pk
    settled = read_group(table, pk)
    assert settled is not None and settled.is_settled and settled.count == 5
    # A holder died after posting the lines, before the update: the message still says 3 jobs.
    table.update(pk, "SET shown_count = :behind", values={":behind": 3})
    updates = len(bot.updates)
    # Lambda's retry of job 3 (its line shown, and a later member exists): it finishes the group first.
    join_storm(failed_job(3), TEST_CHANNEL, (), GROUPING, slack_client, table, deadline=time.monotonic() + 10, **FAST)
    after = read_group(table, pk)
    assert after is not None and after.shown_count == 5 and len(bot.updates) == updates + 1
