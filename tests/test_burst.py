"""A small burst (bench/burst.py at test size): concurrent FAILED events against Slack's rate
limit, each posted exactly once through the real handler, 429s honoured."""

from __future__ import annotations

import time

from bench.burst import burst_events, run_burst

EVENTS, CONCURRENCY, RATE = 12, 4, 5.0


def test_distinct_events_are_distinct_jobs():
    events = burst_events(3)
    assert len({e["id"] for e in events}) == len({e["detail"]["jobId"] for e in events}) == 3
    for event in events:
        assert event["detail"]["status"] == "FAILED"
        assert event["detail"]["jobId"] in event["detail"]["jobArn"]
        assert event["resources"] == [event["detail"]["jobArn"]]


def test_a_burst_under_slacks_rate_limit_posts_every_event_exactly_once():
    started = time.monotonic()
    result = run_burst(burst_events(EVENTS), concurrency=CONCURRENCY, rate=RATE, retries=2, retry_delays=(0, 0))
    assert result.exactly_once, result
    assert result.dead_lettered == [] and result.stray_messages == 0
    # All four environments post at once: Slack answered 429 and the retries honoured it.
    assert result.rate_limited >= 1
    assert result.invocations == EVENTS + result.reinvocations
    # Bounded: 12 posts at 5/s need 2.4 s; each 429 costs Retry-After (1 s) plus up to 1 s of jitter.
    assert time.monotonic() - started < 20
