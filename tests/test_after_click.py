"""The clicked message after a click: one line says who did what and when, the buttons that no
longer apply are gone, and the blocks stay ones Slack accepts, whatever Slack sent back."""

from __future__ import annotations

import copy
import functools
import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from chalicelib.composing.action_buttons import (
    ACKNOWLEDGE,
    RETRY_JOB,
    RETRY_JOB_MORE_MEMORY,
    SNOOZE,
    TERMINATE_JOB,
    UNSNOOZE,
    offer_for,
    stuck_report_buttons,
    with_action_buttons,
)
from chalicelib.composing.after_click import (
    DONE_PREFIX,
    after_acknowledge,
    after_retry,
    after_snooze,
    after_terminate,
    after_unsnooze,
    date_token,
)
from chalicelib.composing.failure_message import build_failure_message
from chalicelib.reading.event import JobStateChange
from chalicelib.scheduled.stuck import build_stuck_message
from tests.conftest import load_event
from tests.test_action_buttons import shown, stuck_report
from tests.test_builders_property import FAST, text
from tools.slack_standin import block_kit_errors, mrkdwn_texts

AT = datetime(2025, 3, 3, 9, 17, 51, tzinfo=UTC)
USER = "U012ABCDEF"
NEW_URL = "https://us-east-1.console.aws.amazon.com/batch/home?region=us-east-1#jobs/detail/new-1"


def as_slack_sends_it(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What Slack sends back: the blocks as posted, each given a block_id (unique, as Slack's are)."""
    taken = {block.get("block_id") for block in blocks}
    fresh = (f"b{i}" for i in itertools.count() if f"b{i}" not in taken)
    return [{**block, "block_id": block.get("block_id") or next(fresh)} for block in copy.deepcopy(blocks)]


def failure_blocks() -> list[dict[str, Any]]:
    return copy.deepcopy(_failure_blocks())


@functools.cache
def _failure_blocks() -> list[dict[str, Any]]:
    job = JobStateChange.from_event(load_event("diag_out_of_memory"))
    message = with_action_buttons(build_failure_message(job, None), job,
                                  offer_for(job, signing_on=True, allowed=True))
    return as_slack_sends_it(message.to_dict()["blocks"])


@functools.cache
def _stuck_blocks(jobs: int) -> list[dict[str, Any]]:
    report = stuck_report(jobs)
    return as_slack_sends_it([b.to_dict() for b in stuck_report_buttons(
        build_stuck_message(report, "us-east-1").blocks, shown(report), signing_on=True, allowed=True)])


ARN = JobStateChange.from_event(load_event("diag_out_of_memory")).job_arn or ""


def ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e.get("action_id") for b in blocks if b.get("type") == "actions" for e in b["elements"]]


def last_line(blocks: list[dict[str, Any]]) -> str:
    assert blocks[-1]["type"] == "context" and blocks[-1]["block_id"].startswith(DONE_PREFIX)
    return " ".join(e["text"] for e in blocks[-1]["elements"])


def assert_acceptable(blocks: list[dict[str, Any]]) -> None:
    assert block_kit_errors(blocks) == []
    for block in blocks:
        assert Block.parse(block) is not None
        Block.parse(block).to_dict()  # type: ignore[union-attr]  # slack-sdk validates limits here


def test_the_date_token_shows_each_reader_their_own_time_with_a_utc_fallback() -> None:
    assert date_token(AT) == f"<!date^{int(AT.timestamp())}^{{date_short_pretty}} at {{time}}|2025-03-03 09:17 UTC>"


def test_after_a_retry_the_retry_buttons_go_and_a_line_links_the_new_job() -> None:
    before = failure_blocks()
    after = after_retry(before, USER, "new-1", NEW_URL, ("Memory doubled for <!channel>",), at=AT)
    assert RETRY_JOB in ids(before) and RETRY_JOB_MORE_MEMORY in ids(before)
    assert ids(after) == ["view_logs", "open_in_batch", ACKNOWLEDGE, SNOOZE]
    line = last_line(after)
    assert f"<@{USER}> retried this job as <{NEW_URL}|new-1>" in line and date_token(AT) in line
    assert "&lt;!channel&gt;" in line and "<!channel>" not in line
    # Everything else is left as Slack sent it.
    assert [b for b in after[:-1] if b["type"] != "actions"] == [b for b in before if b["type"] != "actions"]
    assert_acceptable(after)


def test_a_retry_with_an_odd_url_or_id_shows_the_id_escaped_without_a_link() -> None:
    line = last_line(after_retry(failure_blocks(), USER, "<!here>", "javascript:alert(1)|x", (), at=AT))
    assert "`&lt;!here&gt;`" in line and "javascript" not in line


def test_after_terminate_only_that_jobs_button_goes() -> None:
    report = stuck_report(3)
    blocks = stuck_report_buttons(build_stuck_message(report, "us-east-1").blocks, shown(report),
                                  signing_on=True, allowed=True)
    before = as_slack_sends_it([b.to_dict() for b in blocks])
    target = shown(report)[1].job_arn or ""
    after = after_terminate(before, USER, target, "Terminated from Slack by U012ABCDEF", at=AT)
    terminates = [e["value"] for b in after if b["type"] == "actions" for e in b["elements"]
                  if e["action_id"] == TERMINATE_JOB]
    assert terminates == [shown(report)[0].job_arn, shown(report)[2].job_arn]
    assert ids(after).count(ACKNOWLEDGE) == 3
    assert "terminated job `id-1`" in last_line(after) and "Reason: Terminated from Slack" in last_line(after)
    assert_acceptable(after)


def test_an_actions_block_left_empty_is_dropped() -> None:
    before = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "block_id": "s"},
              {"type": "actions", "block_id": "a", "elements": [
                  {"type": "button", "action_id": TERMINATE_JOB, "value": ARN,
                   "text": {"type": "plain_text", "text": "Terminate"}}]}]
    after = after_terminate(before, USER, ARN, None, at=AT)
    assert [b["type"] for b in after] == ["section", "context"]


def test_after_acknowledge_the_button_goes_and_the_line_says_who_and_when() -> None:
    after = after_acknowledge(failure_blocks(), USER, AT)
    assert ACKNOWLEDGE not in ids(after) and RETRY_JOB in ids(after)
    assert last_line(after) == f":eyes: <@{USER}> acknowledged · {date_token(AT)}"


def test_acknowledging_one_stuck_job_keeps_the_others_buttons() -> None:
    report = stuck_report(2)
    blocks = stuck_report_buttons(build_stuck_message(report, "us-east-1").blocks, shown(report),
                                  signing_on=True, allowed=False)
    before = as_slack_sends_it([b.to_dict() for b in blocks])
    after = after_acknowledge(before, USER, AT, job_arn=shown(report)[0].job_arn)
    assert ids(after) == [ACKNOWLEDGE]
    assert "acknowledged job `id-0`" in last_line(after)


def test_after_snooze_the_select_becomes_an_unsnooze_button_and_the_line_escapes_job_text() -> None:
    until = AT + timedelta(hours=4)
    after = after_snooze(failure_blocks(), USER, until, "<!channel> *nightly*", "etl-queue", ARN, at=AT)
    assert ids(after) == ["view_logs", "open_in_batch", RETRY_JOB, RETRY_JOB_MORE_MEMORY, ACKNOWLEDGE, UNSNOOZE]
    unsnooze = next(e for b in after if b["type"] == "actions" for e in b["elements"] if e["action_id"] == UNSNOOZE)
    assert unsnooze["value"] == ARN
    line = last_line(after)
    assert "&lt;!channel&gt;" in line and "`etl-queue`" in line and date_token(until) in line
    assert_acceptable(after)


def test_snoozing_a_message_without_a_select_adds_the_unsnooze_button_before_the_context_line() -> None:
    before = [b for b in failure_blocks() if b["type"] != "actions"]
    after = after_snooze(before, USER, AT, "job", None, ARN, at=AT)
    assert [b["type"] for b in after][-3:] == ["actions", "context", "context"] and ids(after) == [UNSNOOZE]


def test_after_unsnooze_the_button_goes() -> None:
    snoozed = after_snooze(failure_blocks(), USER, AT, "job", "q", ARN, at=AT)
    after = after_unsnooze(snoozed, "U0OTHER01", at=AT + timedelta(minutes=5))
    assert UNSNOOZE not in ids(after) and "<@U0OTHER01> ended the snooze" in last_line(after)
    assert sum(b.get("block_id", "").startswith(DONE_PREFIX) for b in after) == 2
    assert_acceptable(after)


def test_a_user_id_that_is_not_one_is_not_made_a_mention() -> None:
    assert last_line(after_acknowledge(failure_blocks(), "<!channel>", AT)).startswith(":eyes: someone acknowledged")


def test_many_clicks_stay_within_50_blocks_dropping_the_oldest_lines_first() -> None:
    filler = [{"type": "section", "text": {"type": "mrkdwn", "text": f"s{i}"}, "block_id": f"s{i}"} for i in range(47)]
    blocks = [*filler, {"type": "context", "elements": [{"type": "mrkdwn", "text": "ctx"}], "block_id": "ctx"}]
    for minute in range(6):
        blocks = after_acknowledge(as_slack_sends_it(blocks), f"U00000{minute}X", AT + timedelta(minutes=minute))
    assert len(blocks) == 50 and blocks[:48] == [*filler, blocks[47]] and blocks[47]["block_id"] == "ctx"
    assert "U000004X" in " ".join(e["text"] for e in blocks[48]["elements"]) and "U000005X" in last_line(blocks)
    assert_acceptable(blocks)


def test_a_message_at_the_limit_keeps_its_start_its_last_line_and_the_new_line() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"s{i}"}, "block_id": f"s{i}"} for i in range(50)]
    after = after_acknowledge(blocks, USER, AT)
    assert len(after) == 50 and after[:48] == blocks[:48] and after[48] == blocks[49]
    assert_acceptable(after)


@pytest.mark.parametrize("odd", [None, "blocks", 7, {}, [1, "x", None], [{"type": "actions", "elements": "no"}],
                                 [{"type": "actions", "elements": [1, None, {"action_id": 5}]}]])
def test_odd_blocks_are_never_raised_on(odd: Any) -> None:
    for after in (after_retry(odd, USER, "n", NEW_URL, (), at=AT), after_terminate(odd, USER, ARN, "r", at=AT),
                  after_acknowledge(odd, USER, AT), after_snooze(odd, USER, AT, "j", "q", ARN, at=AT),
                  after_unsnooze(odd, USER, at=AT)):
        assert isinstance(after, list) and after[-1]["block_id"].startswith(DONE_PREFIX)


def test_the_callers_blocks_are_not_changed() -> None:
    before = failure_blocks()
    kept = copy.deepcopy(before)
    after_snooze(before, USER, AT, "j", "q", ARN, at=AT)
    after_retry(before, USER, "n", NEW_URL, (), at=AT)
    assert before == kept


# -- over generated messages and clicks ---------------------------------------------------------
clicks = st.lists(st.sampled_from(["retry", "terminate", "acknowledge", "snooze", "unsnooze"]), min_size=1, max_size=8)
MARKUP = re.compile(r"<@U[A-Z0-9]+>|<!date\^\d+\^\{date_short_pretty\} at \{time\}\|[^<>]+>|<https://[^<>|\s]+\|[^<>]+>")


def click(blocks: list[dict[str, Any]], kind: str, hostile: str, arn: str) -> list[dict[str, Any]]:
    if kind == "retry":
        return after_retry(blocks, USER, hostile, NEW_URL, (hostile,), at=AT)
    if kind == "terminate":
        return after_terminate(blocks, USER, arn, hostile, at=AT)
    if kind == "acknowledge":
        return after_acknowledge(blocks, USER, AT, job_arn=arn if len(hostile) % 2 else None)
    if kind == "snooze":
        return after_snooze(blocks, USER, AT + timedelta(hours=1), hostile, hostile, arn, at=AT)
    return after_unsnooze(blocks, USER, at=AT)


@FAST
@given(kinds=clicks, hostile=text, jobs=st.integers(1, 25), stuck=st.booleans())
def test_any_sequence_of_clicks_leaves_blocks_slack_accepts(kinds: list[str], hostile: str, jobs: int,
                                                            stuck: bool) -> None:
    blocks = copy.deepcopy(_stuck_blocks(jobs)) if stuck else failure_blocks()
    arn = f"arn:aws:batch:us-east-1:123456789012:job/id-{jobs // 2}" if stuck else ARN
    for kind in kinds:
        blocks = as_slack_sends_it(click(blocks, kind, hostile, arn))
    assert_acceptable(blocks)
    assert len(blocks) <= 50
    for mrkdwn in mrkdwn_texts({"text": "", "blocks": blocks}):
        rest = MARKUP.sub("", mrkdwn)
        assert "<" not in rest and ">" not in rest, rest[:300]
    for block in blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] in (RETRY_JOB, TERMINATE_JOB, ACKNOWLEDGE, UNSNOOZE):
                assert element["value"].startswith("arn:aws:batch:")


# Blocks as Slack may send them back: ours and a fork's, in any order, up to the limit.
arns = st.sampled_from([ARN, "arn:aws:batch:us-east-1:123456789012:job/id-1", "arn:aws:batch:eu-west-1:1:job/x"])
plain = st.builds(lambda t: {"type": "plain_text", "text": t[:75] or "x"}, text)
mrkdwn_text = st.builds(lambda t: {"type": "mrkdwn", "text": t[:2000] or "x"}, text)
element = st.one_of(
    st.builds(lambda a, v, t: {"type": "button", "action_id": a, "value": v, "text": t},
              st.sampled_from([RETRY_JOB, RETRY_JOB_MORE_MEMORY, TERMINATE_JOB, ACKNOWLEDGE, UNSNOOZE, "fork_own"]),
              arns, plain),
    st.builds(lambda v: {"type": "static_select", "action_id": SNOOZE, "placeholder": {"type": "plain_text",
              "text": "Snooze"}, "options": [{"text": {"type": "plain_text", "text": "1 hour"}, "value": f"1h|{v}"}]},
              arns),
)
slack_block = st.one_of(
    st.builds(lambda t: {"type": "header", "text": {**t, "emoji": True}}, plain),
    st.builds(lambda t: {"type": "section", "text": t}, mrkdwn_text),
    st.builds(lambda es: {"type": "context", "elements": es}, st.lists(mrkdwn_text, min_size=1, max_size=3)),
    st.builds(lambda es: {"type": "actions", "elements": es}, st.lists(element, min_size=1, max_size=6)),
    st.builds(lambda t, i: {"type": "context", "elements": [t], "block_id": f"{DONE_PREFIX}{i}"}, mrkdwn_text,
              st.integers(0, 60)),
)


def with_unique_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    unique = []
    for block in blocks:
        if block.get("block_id") not in seen:
            seen.add(block.get("block_id", ""))
            unique.append(block)
    return as_slack_sends_it(unique)


@FAST
@given(blocks=st.lists(slack_block, max_size=50).map(with_unique_ids), kinds=clicks, hostile=text, arn=arns)
def test_clicks_on_any_message_slack_sends_back_leave_blocks_slack_accepts(
        blocks: list[dict[str, Any]], kinds: list[str], hostile: str, arn: str) -> None:
    for kind in kinds:
        before = blocks
        blocks = as_slack_sends_it(click(blocks, kind, hostile, arn))
        assert len(blocks) <= 50 and blocks[-1]["block_id"].startswith(DONE_PREFIX)
        # The blocks that were not ours to change are kept, in order (unless the limit cut them).
        if len(before) < 49:
            others = [b for b in before if b["type"] in ("header", "section")]
            assert [b for b in blocks if b["type"] in ("header", "section")] == others
    assert_acceptable(blocks)
    if kinds[-1] == "retry":
        assert not {RETRY_JOB, RETRY_JOB_MORE_MEMORY} & set(ids(blocks))
    if kinds[-1] == "snooze":
        assert SNOOZE not in ids(blocks) and (UNSNOOZE in ids(blocks)) == arn.startswith("arn:aws:batch:us-east-1")
