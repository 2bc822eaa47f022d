"""bench/burst.py at test size: concurrent FAILED events against Slack's rate limits through the
real handler. Without a state table each event is posted exactly once, 429s honoured; in
conversation mode a storm collapses into one group message listing every job exactly once. And
the bench's counting of what Slack shows (tally), on hand-made channels."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.burst import CHANNEL, JOB_ID, burst_events, comparison, run_burst, tally
from tools.slack_standin import RecordedRequest, Shown

EVENTS, CONCURRENCY, RATE = 12, 4, 5.0


def test_distinct_events_are_distinct_jobs():
    events = burst_events(3)
    assert len({e["id"] for e in events}) == len({e["detail"]["jobId"] for e in events}) == 3
    for event in events:
        assert event["detail"]["status"] == "FAILED"
        assert event["detail"]["jobId"] in event["detail"]["jobArn"]
        assert event["resources"] == [event["detail"]["jobArn"]]


def test_without_a_table_a_burst_posts_every_event_exactly_once_as_before():
    started = time.monotonic()
    result = run_burst(burst_events(EVENTS), concurrency=CONCURRENCY, rate=RATE, retries=2, retry_delays=(0, 0))
    assert result.exactly_once, result
    assert result.dead_lettered == [] and result.stray_messages == 0
    # One top-level message per event, nothing updated: no table, no conversation.
    assert result.top_level == EVENTS and result.api_calls.get("chat.update", 0) == 0
    # All four environments post at once: Slack answered 429 and the retries honoured it.
    assert result.rate_limited >= 1
    assert result.invocations == EVENTS + result.reinvocations
    # Bounded: 12 posts at 5/s need 2.4 s; each 429 costs Retry-After (1 s) plus up to 1 s of jitter.
    assert time.monotonic() - started < 20


def test_with_grouping_on_a_storm_shows_every_job_exactly_once_under_one_group_message():
    jobs, group_after = 30, 3
    # Turns 0.05 s apart against a stand-in allowing 30 posts/s: a little slack, as a request landing a
    # few ms early is refused (429) and its retry costs a whole second (Retry-After is whole seconds).
    result = run_burst(burst_events(jobs), concurrency=6, rate=30.0, retries=2, retry_delays=(0, 0),
                       group_after=group_after, pace_seconds=0.05)
    assert result.lost == 0 and result.shown_twice == 0, result.shown_per_job
    assert result.shown_per_job == dict.fromkeys(range(jobs), 1)
    assert result.top_level <= group_after + 2  # its first jobs' own messages and the group message
    [group] = result.group_texts
    assert f"{jobs} jobs failed" in group  # its final text counts every job
    assert len(result.visible_at) == jobs and result.all_visible_seconds is not None
    # Grouping is what keeps Slack's calls down: far fewer than one post per job.
    assert result.api_calls["chat.postMessage"] < jobs
    table = comparison([result])
    assert "target" in table and "NO" not in table, table


# -- counting what Slack shows, on hand-made channels -------------------------------------------------
def _section(lines: list[str]) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines) or "nothing"}}]


def _ids(jobs: frozenset[int]) -> str:
    return " ".join(JOB_ID.format(job) for job in sorted(jobs))


# A post: ("top", jobs it names) or ("reply", index of an earlier top-level post, the jobs of each line).
_top = st.tuples(st.just("top"), st.frozensets(st.integers(0, 5), max_size=2))
_reply = st.tuples(st.just("reply"), st.integers(0, 10), st.lists(st.frozensets(st.integers(0, 5), max_size=2),
                                                                    min_size=1, max_size=3))


def _channel(posts: list[tuple[Any, ...]], rejected_first: bool) -> tuple[list[RecordedRequest], list[Any],
                                                                            list[Shown], dict[int, int]]:
    """The stand-in's records of ``posts`` (each top-level one a message with ts), and how often each
    job is shown: a top-level message naming it, or a reply line naming it in a thread whose parent
    does not."""
    requests, messages, view, expected = [], [], [], dict.fromkeys(range(6), 0)
    tops: list[tuple[str, frozenset[int]]] = []
    for at, post in enumerate(posts):
        if post[0] == "top" or not tops:
            jobs = post[1] if post[0] == "top" else frozenset()
            ts = f"{1000 + len(tops)}.000100"
            body: dict[str, Any] = {"channel": CHANNEL, "text": "job", "blocks": _section([_ids(jobs)])}
            tops.append((ts, jobs))
            view.append(Shown(ts, "job", body["blocks"], "U0STANDIN"))
            counted = [jobs]
        else:
            ts, parent_jobs = tops[post[1] % len(tops)]
            body = {"channel": CHANNEL, "thread_ts": ts, "text": "lines",
                    "blocks": _section([_ids(line) for line in post[2]])}
            counted = [line - parent_jobs for line in post[2]]
        if rejected_first:  # a 429 first: the same payload, not accepted
            requests.append(RecordedRequest("POST", "/api/chat.postMessage", {}, body, at - 0.5, 429))
        requests.append(RecordedRequest("POST", "/api/chat.postMessage", {}, body, float(at), 200))
        messages.append(body)
        for jobs in counted:
            for job in jobs:
                expected[job] += 1
    return requests, messages, view, expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_top, _reply), max_size=12), st.booleans())
def test_tally_counts_each_message_and_line_naming_a_job_once(posts, rejected_first):
    requests, messages, view, expected = _channel(posts, rejected_first)
    counted = tally(requests, messages, view)
    assert {job: counted.shown.get(job, 0) for job in expected} == expected
    assert counted.top_level == len(view)
    # Visible when first accepted: never a 429'd request's time (those are at half-seconds).
    assert all(at == int(at) for at in counted.first_shown.values())
    assert set(counted.first_shown) == {job for job, n in expected.items() if n}


def test_a_jobs_own_thread_does_not_show_it_again_but_a_second_group_line_does():
    posts = [("top", frozenset({0})), ("reply", 0, [frozenset({0})]),  # job 0's message and its detail reply
             ("top", frozenset()), ("reply", 1, [frozenset({1}), frozenset({2})]), ("reply", 1, [frozenset({2})])]
    requests, messages, view, _ = _channel(posts, rejected_first=False)
    counted = tally(requests, messages, view)
    assert counted.shown == {0: 1, 1: 1, 2: 2}
    assert counted.first_shown == {0: 0.0, 1: 3.0, 2: 3.0}
    assert counted.group_texts == ("job",) and counted.stray == 0 and counted.top_level == 2
