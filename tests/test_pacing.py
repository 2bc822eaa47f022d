"""Fair pacing of Slack's calls (chalicelib/delivering/pacing.py) against moto's DynamoDB.

Most tests use a fake clock (pacing.Clock): sleeping records the wait and, unless the test
freezes time, moves wall and monotonic time on together, so turns are checked to the
millisecond without waiting. Concurrency tests run threads like Lambda containers sharing one
table; moto does not lock, so every DynamoDB call runs under one lock (:class:`Serialized`),
which models DynamoDB applying each conditional write atomically. The end-to-end test posts
for real through :class:`Slack` to the stand-in enforcing its per-channel rate.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.composing.messages import SlackMessage
from chalicelib.core import clients, config
from chalicelib.core.config import SlackSettings, load_slack_settings
from chalicelib.core.state_table import StateError, StateTable, state_table
from chalicelib.delivering import pacing
from chalicelib.delivering.pacing import POST, UPDATE, Clock, table_pacer
from chalicelib.delivering.slack import DeliveryError, MessageRef, Slack
from tests import state_fixtures
from tests.conftest import BOT_TOKEN, PROD_CHANNEL, TEST_CHANNEL
from tools.slack_standin import Reply, SlackStandIn

TABLE = "batch-notify-test-state"
START = 1_760_000_000.0  # wall time of the fake clock, epoch seconds
MONO = 5_000.0  # its monotonic time at START
BUDGET = 100.0  # a deadline nothing in these tests reaches, unless the test says so


class FakeClock:
    """Wall and monotonic time that move together when sleeping (``frozen``: they do not move,
    as if every caller asked at the same instant). Records every sleep, per thread."""

    def __init__(self, *, frozen: bool = False) -> None:
        self.wall, self.mono, self.frozen = START, MONO, frozen
        self.lock = threading.Lock()
        self.sleeps: list[tuple[str, float]] = []

    def clock(self) -> Clock:
        return Clock(time=lambda: self.wall, monotonic=lambda: self.mono, sleep=self.sleep)

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append((threading.current_thread().name, seconds))
            if not self.frozen:
                self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def deadline(self, seconds: float = BUDGET) -> float:
        return self.mono + seconds

    def waits(self) -> list[float]:
        return [seconds for _, seconds in self.sleeps]


class Serialized(state_fixtures.Serialized):
    """The serialized DynamoDB client, also recording the order in which pace writes went through:
    (thread name, the next_at it left)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.granted: list[tuple[str, float]] = []

    def seen(self, name: str, answer: Any) -> None:
        after = answer.get("Attributes", {}).get("next_at") if isinstance(answer, dict) else None
        if after is not None:
            self.granted.append((threading.current_thread().name, float(after["N"])))


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Serialized]:
    with mock_aws():
        made = boto3.client("dynamodb", region_name="us-east-1")
        state_fixtures.create_state_table(made, TABLE)
        monkeypatch.setenv("NOTIFY_STATE_TABLE", TABLE)
        config.reset()
        proxy = Serialized(made)
        with clients.use_client("dynamodb", proxy):
            yield proxy


@pytest.fixture
def table(dynamodb: Serialized) -> StateTable:
    found = state_table()
    assert found is not None
    return found


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


def next_at(table: StateTable, method: str, channel: str) -> float | None:
    item = table.get(pacing.pace_key(method, channel))
    return None if item is None else float(item["next_at"])


# -- turns, one channel and method at a time ---------------------------------------------------------------


def test_an_idle_channel_gives_a_turn_at_once(table: StateTable, fake: FakeClock) -> None:
    table_pacer(table, clock=fake.clock()).wait_turn(POST, TEST_CHANNEL, fake.deadline())

    assert fake.sleeps == []
    item = table.get(f"pace#post#{TEST_CHANNEL}")
    assert item is not None and item["next_at"] == pytest.approx(START + pacing.POST_INTERVAL)
    # Kept a few minutes past the last turn it could hold (the caller's deadline), then gone.
    assert START + BUDGET < item["expires_at"] <= START + BUDGET + 600


def test_turns_are_one_interval_apart_per_channel(table: StateTable) -> None:
    frozen = FakeClock(frozen=True)  # everyone asks at once
    pacer = table_pacer(table, clock=frozen.clock())
    for _ in range(3):
        pacer.wait_turn(POST, TEST_CHANNEL, frozen.deadline())
    for _ in range(3):
        pacer.wait_turn(UPDATE, TEST_CHANNEL, frozen.deadline())

    posts, updates = frozen.waits()[:2], frozen.waits()[2:]  # the first of each is at once: no sleep
    assert posts == pytest.approx([1.0, 2.0]) and updates == pytest.approx([1.2, 2.4])
    assert next_at(table, POST, TEST_CHANNEL) == pytest.approx(START + 3.0)
    assert next_at(table, UPDATE, TEST_CHANNEL) == pytest.approx(START + 3.6)


def test_channels_and_methods_pace_independently(table: StateTable) -> None:
    frozen = FakeClock(frozen=True)
    pacer = table_pacer(table, clock=frozen.clock())
    pacer.wait_turn(POST, TEST_CHANNEL, frozen.deadline())
    pacer.wait_turn(POST, PROD_CHANNEL, frozen.deadline())  # another channel: its own turns
    pacer.wait_turn(UPDATE, TEST_CHANNEL, frozen.deadline())  # another method: its own turns
    pacer.wait_turn(POST, TEST_CHANNEL, frozen.deadline())  # the first channel's second post waits
    assert frozen.waits() == pytest.approx([1.0])


def test_a_caller_waits_only_for_the_turns_still_ahead(table: StateTable, fake: FakeClock) -> None:
    pacer = table_pacer(table, clock=fake.clock())
    pacer.wait_turn(POST, TEST_CHANNEL, fake.deadline())
    fake.advance(0.4)  # 0.4 s after a post, the next may go 0.6 s later
    pacer.wait_turn(POST, TEST_CHANNEL, fake.deadline())
    fake.advance(5.0)  # the queue has long passed: idle again, a turn at once
    pacer.wait_turn(POST, TEST_CHANNEL, fake.deadline())
    assert fake.waits() == pytest.approx([0.6])
    assert next_at(table, POST, TEST_CHANNEL) == pytest.approx(fake.wall + 1.0)


def test_turns_are_shared_by_every_container_using_the_table(table: StateTable) -> None:
    frozen = FakeClock(frozen=True)
    one, other = (table_pacer(table, clock=frozen.clock()) for _ in range(2))  # no state shared but the table
    one.wait_turn(POST, TEST_CHANNEL, frozen.deadline())
    other.wait_turn(POST, TEST_CHANNEL, frozen.deadline())
    one.wait_turn(POST, TEST_CHANNEL, frozen.deadline())
    assert frozen.waits() == pytest.approx([1.0, 2.0])


def test_an_unknown_method_is_refused(table: StateTable, fake: FakeClock) -> None:
    with pytest.raises(ValueError, match="'delete'"):
        table_pacer(table, clock=fake.clock()).wait_turn("delete", TEST_CHANNEL, fake.deadline())


# -- deadlines --------------------------------------------------------------------------------------------


def test_a_deadline_that_cannot_be_met_raises_without_reserving(table: StateTable, dynamodb: Serialized) -> None:
    frozen = FakeClock(frozen=True)
    pacer = table_pacer(table, clock=frozen.clock())
    for _ in range(4):  # turns at +0, +1, +2, +3: the next free one is at +4
        pacer.wait_turn(POST, TEST_CHANNEL, frozen.deadline())
    with pytest.raises(DeliveryError) as caught:
        pacer.wait_turn(POST, TEST_CHANNEL, frozen.deadline(3.5))

    error = caught.value
    assert TEST_CHANNEL in str(error) and "within 3.5 s" in str(error) and "in 4.0 s" in str(error)
    assert "nothing reserved" in str(error) and type(error) is DeliveryError  # retryable, not permanent
    assert next_at(table, POST, TEST_CHANNEL) == pytest.approx(START + 4.0)
    # The next requester's turn is not pushed back by the one that gave up.
    pacer.wait_turn(POST, TEST_CHANNEL, frozen.deadline(4.0))  # exactly at its deadline still fits
    assert frozen.waits()[-1] == pytest.approx(4.0)


def test_a_spent_budget_raises_without_asking_the_table(table: StateTable, dynamodb: Serialized,
                                                        fake: FakeClock) -> None:
    with pytest.raises(DeliveryError, match=f"chat.update in {TEST_CHANNEL}: the delivery budget was spent"):
        table_pacer(table, clock=fake.clock()).wait_turn(UPDATE, TEST_CHANNEL, fake.deadline(-0.1))
    assert dynamodb.calls == [] and fake.sleeps == []


def test_a_new_container_that_guesses_idle_learns_the_queue_from_the_lost_write(
        table: StateTable, dynamodb: Serialized) -> None:
    frozen = FakeClock(frozen=True)
    table_pacer(table, clock=frozen.clock()).wait_turn(POST, TEST_CHANNEL, frozen.deadline())
    fresh = table_pacer(table, clock=frozen.clock())
    dynamodb.calls.clear()
    fresh.wait_turn(POST, TEST_CHANNEL, frozen.deadline())  # idle lost, then busy
    fresh.wait_turn(POST, TEST_CHANNEL, frozen.deadline())  # it knows the channel is busy: one write
    assert dynamodb.calls == ["update_item"] * 3
    assert frozen.waits() == pytest.approx([1.0, 2.0])


# -- many requesters at once -------------------------------------------------------------------------------


def test_concurrent_requesters_are_served_in_order_and_none_is_starved(table: StateTable,
                                                                       dynamodb: Serialized) -> None:
    threads, each = 10, 4
    frozen = FakeClock(frozen=True)  # all ask at the same instant: the worst case for a race
    turns: dict[str, list[float]] = {}
    start = threading.Barrier(threads)

    def container(name: str) -> None:
        pacer = table_pacer(table, clock=frozen.clock())
        start.wait()
        for _ in range(each):
            before = len(frozen.sleeps)
            pacer.wait_turn(POST, TEST_CHANNEL, frozen.deadline())
            mine = [s for who, s in frozen.sleeps[before:] if who == name]
            turns.setdefault(name, []).append(START + (mine[0] if mine else 0.0))

    run_threads(threads, container)

    granted = sorted(t for thread_turns in turns.values() for t in thread_turns)
    # Every turn handed out once, one interval apart, none skipped (a skipped turn delays all behind it).
    assert granted == pytest.approx([START + n * pacing.POST_INTERVAL for n in range(threads * each)])
    # First come, first served: the n-th write that went through got the n-th turn, so each waited
    # exactly its place in line times the interval, never more.
    for place, (_, left_next_at) in enumerate(dynamodb.granted):
        assert left_next_at == pytest.approx(START + (place + 1) * pacing.POST_INTERVAL)
    by_thread = {name: [n * pacing.POST_INTERVAL + START for n, (who, _) in enumerate(dynamodb.granted)
                        if who == name] for name in turns}
    assert all(turns[name] == pytest.approx(by_thread[name]) for name in turns)
    # At most two writes per reservation (a lost guess, then the win).
    assert len(dynamodb.calls) <= 2 * threads * each


def test_under_contention_a_tight_deadline_fails_alone(table: StateTable, dynamodb: Serialized) -> None:
    frozen = FakeClock(frozen=True)
    outcomes: dict[str, str] = {}

    def container(name: str) -> None:
        # Thread 0 can wait 2.5 s at most: it gets a turn only if at most 2 others are ahead.
        budget = 2.5 if name == "t0" else BUDGET
        try:
            table_pacer(table, clock=frozen.clock()).wait_turn(POST, TEST_CHANNEL, frozen.deadline(budget))
            outcomes[name] = "turn"
        except DeliveryError:
            outcomes[name] = "gave up"

    run_threads(8, container)

    served = [name for name, _ in dynamodb.granted]
    assert sorted(served + [n for n, o in outcomes.items() if o == "gave up"]) == sorted(outcomes)
    assert (outcomes["t0"] == "turn") == ("t0" in served[:3])
    # Whoever gave up left no hole: the 7 or 8 turns granted are back to back.
    assert next_at(table, POST, TEST_CHANNEL) == pytest.approx(START + len(served) * pacing.POST_INTERVAL)


def run_threads(count: int, target: Callable[[str], None]) -> None:
    errors: list[BaseException] = []

    def guarded(name: str) -> None:
        try:
            target(name)
        except BaseException as error:  # surfaced below: a thread's failure must fail the test
            errors.append(error)

    workers = [threading.Thread(target=guarded, args=(f"t{n}",), name=f"t{n}") for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers), "a requester never got its answer"
    assert errors == [], errors


# -- a model of fair pacing, over open-ended sequences -------------------------------------------------------

_channels = itertools.count()

step = st.tuples(st.sampled_from([POST, UPDATE]), st.integers(0, 1),  # method, channel
                 st.floats(0, 3, allow_nan=False),  # seconds the clock moves before the call
                 st.floats(0, 5, allow_nan=False),  # the caller's budget
                 st.integers(0, 1))  # which of two containers calls


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=10))
def test_turns_follow_the_fair_queue_model(table: StateTable,
                                           steps: list[tuple[str, int, float, float, int]]) -> None:
    """Per channel and method, a queue: the next free turn is max(now, last turn + interval); a
    caller gets it when it is within its deadline, else an error and the queue unchanged. Two
    containers (two pacers) share the queue through the table alone."""
    fake = FakeClock()
    pacers = [table_pacer(table, clock=fake.clock()) for _ in range(2)]
    channels = [f"C{next(_channels)}", f"C{next(_channels)}"]  # fresh channels: a fresh queue each example
    free: dict[tuple[str, str], float] = {}
    for method, which, pause, budget, caller in steps:
        fake.advance(pause)
        channel, now = channels[which], fake.wall
        turn = max(now, free.get((method, channel), now))
        slept = len(fake.sleeps)
        try:
            pacers[caller].wait_turn(method, channel, fake.deadline(budget))
        except DeliveryError:
            # Only when the turn is past the deadline (a turn exactly at it may go either way: the
            # table adds decimals, the model floats), and without waiting.
            assert turn > now + budget - 1e-6 and len(fake.sleeps) == slept
        else:
            assert turn <= now + budget + 1e-6
            assert fake.wall == pytest.approx(turn, abs=1e-6)  # it returned at its turn, no sooner
            free[(method, channel)] = turn + pacing.INTERVALS[method]
        stored = next_at(table, method, channel)
        assert (stored is None) == ((method, channel) not in free)
        if stored is not None:
            assert stored == pytest.approx(free[(method, channel)], abs=1e-6)


# -- the state table failing --------------------------------------------------------------------------------


def test_a_state_table_error_propagates_so_lambda_retries(monkeypatch: pytest.MonkeyPatch, fake: FakeClock) -> None:
    with mock_aws():  # no table created: DynamoDB answers ResourceNotFoundException
        monkeypatch.setenv("NOTIFY_STATE_TABLE", "no-such-table")
        config.reset()
        missing = state_table()
        assert missing is not None
        with pytest.raises(StateError, match="no-such-table"):
            table_pacer(missing, clock=fake.clock()).wait_turn(POST, TEST_CHANNEL, fake.deadline())


def test_slack_lets_the_pacers_state_error_through_and_posts_nothing(
        slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        monkeypatch.setenv("NOTIFY_STATE_TABLE", "no-such-table")
        config.reset()
        missing = state_table()
        assert missing is not None
        with pytest.raises(StateError):  # not a DeliveryError "could not reach Slack"
            Slack(bot_settings(slack), pacer=table_pacer(missing)).post(MESSAGE)
    assert slack.requests == []


# -- Slack asks for a turn before every Web API post and update ------------------------------------------------

MESSAGE = SlackMessage(text="Job failed: etl", blocks=())


@dataclass
class RecordingPacer:
    """A Pacer that grants every turn at once (or refuses with ``refuse``) and records the asks."""

    asked: list[tuple[str, str, float]] = field(default_factory=list)
    refuse: bool = False

    def wait_turn(self, method: str, channel: str, deadline: float) -> None:
        self.asked.append((method, channel, deadline))
        if self.refuse:
            raise DeliveryError(f"no turn for {method} in {channel}")


def bot_settings(slack: SlackStandIn, **env: str) -> SlackSettings:
    return load_slack_settings({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_CHANNEL": TEST_CHANNEL,
                                "SLACK_API_URL": slack.api_url, **env})


def test_every_post_reply_and_update_waits_its_turn_within_the_budget(slack: SlackStandIn) -> None:
    pacer = RecordingPacer()
    paced = Slack(bot_settings(slack, SLACK_DELIVERY_BUDGET_SECONDS="7"), pacer=pacer)
    before = time.monotonic()
    ref = paced.post(MESSAGE).ref
    assert ref is not None
    paced.reply(ref, MESSAGE, broadcast=True)
    paced.update(ref, MESSAGE)
    paced.post(MESSAGE, channel=PROD_CHANNEL)
    after = time.monotonic()

    assert [(m, c) for m, c, _ in pacer.asked] == [(POST, TEST_CHANNEL), (POST, TEST_CHANNEL),
                                                  (UPDATE, TEST_CHANNEL), (POST, PROD_CHANNEL)]
    # Each deadline is its own call's start plus the budget.
    assert all(before + 7 <= deadline <= after + 7 for _, _, deadline in pacer.asked)


def test_no_turn_means_no_request_and_a_retryable_error(slack: SlackStandIn) -> None:
    with pytest.raises(DeliveryError, match=f"no turn for post in {TEST_CHANNEL}") as caught:
        Slack(bot_settings(slack), pacer=RecordingPacer(refuse=True)).post(MESSAGE)
    assert "0 HTTP request(s)" in str(caught.value) and slack.requests == []
    with pytest.raises(DeliveryError):
        Slack(bot_settings(slack), pacer=RecordingPacer(refuse=True)).update(MessageRef(TEST_CHANNEL, "1.2"), MESSAGE)
    assert slack.requests == []


def test_the_plain_text_fallback_is_a_second_post_and_waits_a_second_turn(slack: SlackStandIn) -> None:
    slack.script(Reply(200, {"ok": False, "error": "invalid_blocks"}))
    pacer = RecordingPacer()
    Slack(bot_settings(slack), pacer=pacer).post(MESSAGE)
    assert [m for m, _, _ in pacer.asked] == [POST, POST] and len(slack.messages) == 1


def test_a_webhook_is_not_paced(webhook: SlackStandIn) -> None:
    pacer = RecordingPacer(refuse=True)
    Slack(load_slack_settings({"SLACK_WEBHOOK_URL": webhook.webhook_url}), pacer=pacer).post(MESSAGE)
    assert pacer.asked == [] and len(webhook.messages) == 1


# -- end to end: paced posts meet the stand-in's rate limit ------------------------------------------------------


def test_six_concurrent_posters_paced_through_the_table_get_no_429(table: StateTable) -> None:
    # Scaled down so the test takes about 4 s: the stand-in allows 20 posts/s per channel (one per
    # 0.05 s) and the pacer spaces them 0.75 s, leaving 0.7 s for a thread that wakes late on
    # a busy machine (Slack's real limit, about 1/s, is met the same way with the 1.0 s interval).
    threads, interval = 6, 0.75
    with SlackStandIn(channels=(TEST_CHANNEL,), rate_limit_per_channel=20.0) as standin:
        settings_ = bot_settings(standin)
        start = threading.Barrier(threads)

        def container(name: str) -> None:
            pacer = table_pacer(table, intervals={POST: interval, UPDATE: interval})
            start.wait()
            Slack(settings_, pacer=pacer).post(SlackMessage(text=f"job {name}", blocks=()))

        began = time.monotonic()
        run_threads(threads, container)
        took = time.monotonic() - began

        assert standin.rate_limited_count == 0
        assert sorted(m["text"] for m in standin.messages) == sorted(f"job t{n}" for n in range(threads))
        assert standin.calls_by_method() == {"chat.postMessage": threads}  # no retries needed
        assert took >= (threads - 1) * interval - 0.05  # they really were spaced, not lucky
