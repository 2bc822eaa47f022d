"""A job's conversation, composed: the headline on top, the detail in the thread, the replies.

Pure functions over messages and event views: the headline keeps what an on-call reader needs at
a glance and says where the rest is; the detail holds exactly what the headline left out; updates
ping nobody; a change reply says what changed in one line. Properties run over the event
strategies of tests/test_builders_property.py (every shape, hostile text).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import ContextBlock, HeaderBlock, MarkdownTextObject, PlainTextObject, SectionBlock

from chalicelib.composing.conversation import change_reply, detail, headline, without_mentions
from chalicelib.composing.failure_message import build_failure_message, failure_parts
from chalicelib.composing.messages import (
    MessageParts,
    SlackMessage,
    build_job_state_message,
    build_queue_blocked_message,
    format_duration,
    with_mentions,
)
from chalicelib.reading.event import JOB_QUEUE_BLOCKED, JobStateChange
from chalicelib.reading.logtail import LogTail
from tests.conftest import load_event
from tests.test_builders_property import KNOWN_KILLERS, MENTION_MARKUP, MENTIONS, assert_postable, events, tails
from tools.slack_standin import mrkdwn_texts

TAIL = LogTail(lines=("INFO  starting", "ERROR <!channel> disk full", "INFO  exiting with status 1"))
NOTE_TAIL = LogTail(note="log tail unavailable: access denied (logs:GetLogEvents)")
POINTER = ":thread: Attempt history and log tail in the thread"
# Any mention markup Slack would ping on (user, user group, @here, @channel, @everyone).
PINGS = re.compile(r"<(?:@|!subteam\^|!here|!channel|!everyone)")


def job(name: str) -> JobStateChange:
    return JobStateChange.from_event(load_event(name))


def failed(name: str = "retried_failed", tail: LogTail | None = TAIL) -> SlackMessage:
    return build_failure_message(job(name), tail)


def payload(message: SlackMessage) -> dict[str, Any]:
    return {"text": message.text, "blocks": [block.to_dict() for block in message.blocks]}


def texts(message: SlackMessage) -> str:
    return "\n".join(mrkdwn_texts(payload(message)))


def kinds(message: SlackMessage) -> list[str]:
    return [block.type for block in message.blocks]


def moved_blocks(parts: MessageParts) -> list[dict[str, Any]]:
    """What the headline should leave out, as the full message drew it: the attempts' sections and
    a tail with lines (a tail that is a note, a context block, stays on top)."""
    sections = [SectionBlock(text=MarkdownTextObject(text=text)).to_dict() for text in parts.attempts]
    tail = [parts.tail.to_dict()] if parts.tail is not None and not isinstance(parts.tail, ContextBlock) else []
    return sections + tail


def has_pings(message: SlackMessage) -> bool:
    return any(PINGS.search(text) for text in mrkdwn_texts(payload(message)))


# -- headline and detail ----------------------------------------------------------------------
def test_the_headline_keeps_what_failed_and_why_and_points_to_the_thread():
    full = failed()
    top = headline(full)
    assert kinds(top) == ["header", "section", "section", "actions", "context", "context"]
    shown = texts(top)
    assert "*Exit code*\n1" in shown and "*Attempts*\n3 of 3" in shown
    assert "*Status reason*\nEssential container in task exited" in shown
    assert "Attempt history*" not in shown and "```" not in shown and "disk full" not in shown
    assert top.blocks[-2].to_dict()["elements"][0]["text"] == POINTER
    assert top.text == full.text  # the notification is the full message's
    assert top.blocks[-1].to_dict() == full.blocks[-1].to_dict()  # the context line stays last


def test_the_headline_keeps_the_diagnosis_and_the_last_attempts_reason():
    top = headline(failed("diag_out_of_memory"))
    shown = texts(top)
    assert ":bulb: *Out of memory*" in shown
    assert "*Container reason*\nOutOfMemoryError: Container killed due to memory usage" in shown
    assert "*Exit code*\n137" in shown
    # A single attempt has no history: only the tail moved, and the pointer says so.
    assert ":thread: Log tail in the thread" in shown and "```" not in shown


def test_the_detail_is_the_attempt_history_then_the_log_tail_and_names_the_job():
    full = failed()
    reply = detail(full)
    assert reply is not None
    assert [b.to_dict() for b in reply.blocks] == moved_blocks(full.parts)
    assert texts(reply).count("*Attempt history*") == 1 and "disk full" in texts(reply)
    assert reply.text == "Attempt history and log tail · :x: Job failed: variant-call-sample-NA12878"
    assert reply.parts is None  # a reply: with_mentions would not give it a header's cc line


def test_a_tail_that_is_only_a_note_stays_on_top_and_only_the_history_moves():
    full = failed(tail=NOTE_TAIL)
    top, reply = headline(full), detail(full)
    assert reply is not None
    assert "access denied (logs:GetLogEvents)" in texts(top) and "access denied" not in texts(reply)
    assert ":thread: Attempt history in the thread" in texts(top)
    assert reply.text.startswith("Attempt history · ")
    assert [b.to_dict() for b in reply.blocks] == moved_blocks(full.parts)


def test_a_message_with_nothing_long_is_its_own_headline_and_has_no_detail():
    for message in (build_job_state_message(job("ec2_failed")), failed("ec2_failed", None),
                    failed("ec2_failed", NOTE_TAIL)):
        assert payload(headline(message)) == payload(message)
        assert detail(message) is None


def test_a_message_given_as_blocks_is_unchanged_and_has_no_detail():
    full = failed()
    forks = SlackMessage(text=full.text, blocks=full.blocks)  # no parts: a fork's own blocks
    assert headline(forks) is forks
    assert detail(forks) is None


def test_the_headline_of_a_headline_is_itself_and_has_no_detail():
    top = headline(failed())
    assert payload(headline(top)) == payload(top)
    assert detail(top) is None


def test_the_headline_keeps_the_mentions_and_the_detail_never_has_them():
    mentioned = with_mentions(failed(), MENTIONS)
    top = headline(mentioned)
    assert top.blocks[1].to_dict()["text"]["text"] == "cc <@U0LEAD0001> <!subteam^S0DATAENG01>"
    assert top.text.startswith("<@U0LEAD0001> <!subteam^S0DATAENG01> :x: Job failed")
    # Either order gives the same top-level message (the lead's code mentions after the split).
    assert payload(with_mentions(headline(failed()), MENTIONS)) == payload(top)
    reply = detail(mentioned)
    assert reply is not None and not has_pings(reply)


def test_job_text_in_the_detail_is_escaped():
    event = load_event("retried_failed")
    event["detail"]["jobName"] = "<!channel> <@U0EVIL0001> & co"
    reply = detail(build_failure_message(JobStateChange.from_event(event), TAIL))
    assert reply is not None
    assert reply.text.endswith("Job failed: &lt;!channel&gt; &lt;@U0EVIL0001&gt; &amp; co")
    assert not has_pings(reply)
    assert "&lt;!channel&gt; disk full" in texts(reply)  # the log line's markup, escaped in the tail


# -- without_mentions -------------------------------------------------------------------------
def test_without_mentions_renders_a_message_of_parts_again_with_none():
    plain = headline(failed())
    quiet = without_mentions(with_mentions(plain, MENTIONS))
    assert payload(quiet) == payload(plain)
    assert quiet.parts is not None and quiet.parts.mentions == ()
    assert without_mentions(plain) is plain


def test_without_mentions_takes_the_cc_line_out_of_a_message_given_as_blocks():
    header = HeaderBlock(text=PlainTextObject(text=":hourglass: 3 jobs stuck in etl-queue"))
    body = SectionBlock(text=MarkdownTextObject(text="*nightly-etl* waiting 42m"))
    report = SlackMessage(text=":hourglass: 3 jobs stuck in etl-queue", blocks=(header, body))  # as the sweep's
    loud = with_mentions(report, ("U0LEAD0001", "here", "channel", "S0DATAENG01"))
    assert has_pings(loud)
    quiet = without_mentions(loud)
    assert payload(quiet) == payload(report)
    assert without_mentions(report) is report


def test_without_mentions_leaves_a_forks_section_that_only_starts_with_cc():
    header = HeaderBlock(text=PlainTextObject(text="h"))
    fork = SectionBlock(text=MarkdownTextObject(text="cc the data team on anything odd"))
    message = SlackMessage(text="t", blocks=(header, fork))
    assert without_mentions(message) is message


def test_without_mentions_of_a_text_that_was_only_mentions_still_has_a_text():
    header = HeaderBlock(text=PlainTextObject(text="h"))
    quiet = without_mentions(SlackMessage(text="<!here> <@U0LEAD0001>", blocks=(header,)))
    assert quiet.text.strip() and not PINGS.search(quiet.text)


# -- change_reply -----------------------------------------------------------------------------
def reply_line(message: SlackMessage) -> str:
    line: str = message.blocks[0].to_dict()["text"]["text"]
    return line


def test_a_failure_reply_says_the_change_the_time_the_exit_code_and_the_diagnosis():
    reply = change_reply("RUNNING", job("diag_out_of_memory"), timedelta(hours=2, minutes=3, seconds=9))
    assert reply_line(reply) == ":x: RUNNING → FAILED after 2h 3m 9s · exit 137 · Out of memory"
    assert reply.text == ":x: feature-build-2024-06-02: RUNNING → FAILED after 2h 3m 9s · exit 137 · Out of memory"
    assert len(reply.blocks) == 1 and not has_pings(reply)


def test_a_failure_with_no_exit_code_and_no_diagnosis_gives_its_reason():
    event = load_event("ec2_failed")
    event["detail"]["container"].pop("exitCode", None)
    for attempt in event["detail"]["attempts"]:
        attempt["container"].pop("exitCode", None)
    event["detail"]["container"]["reason"] = "Something  odd\nhappened <@U0EVIL0001>"
    reply = change_reply("STARTING", JobStateChange.from_event(event), None)
    assert reply_line(reply) == ":x: STARTING → FAILED · Something odd happened &lt;@U0EVIL0001&gt;"


def test_a_success_reply_says_only_the_change_and_the_time():
    reply = change_reply("RUNNING", job("ec2_succeeded"), timedelta(minutes=41))
    assert reply_line(reply) == ":white_check_mark: RUNNING → SUCCEEDED after 41m"


def test_a_blocked_queue_reply_warns_with_its_reason():
    blocked = JobStateChange.from_event(load_event("job_queue_blocked"), JOB_QUEUE_BLOCKED)
    line = reply_line(change_reply("RUNNABLE", blocked, timedelta(minutes=30)))
    assert line.startswith(":warning: RUNNABLE → BLOCKED after 30m · MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")


def test_no_elapsed_time_says_no_after():
    assert reply_line(change_reply("STUCK", job("running"), None)) == ":arrow_forward: STUCK → RUNNING"


def test_the_before_label_is_escaped_and_bounded():
    line = reply_line(change_reply("<!channel>\n" + "X" * 500, job("ec2_succeeded"), None))
    assert line.startswith(":white_check_mark: &lt;!channel&gt; XXX") and len(line) < 120
    assert reply_line(change_reply("  ", job("ec2_succeeded"), None)).startswith(":white_check_mark: UNKNOWN → ")


def test_a_reply_with_mentions_has_a_cc_line_and_pings_in_its_notification():
    reply = change_reply("RUNNING", job("diag_out_of_memory"), None, MENTIONS)
    assert [b.to_dict()["text"]["text"] for b in reply.blocks] == [
        ":x: RUNNING → FAILED · exit 137 · Out of memory", "cc <@U0LEAD0001> <!subteam^S0DATAENG01>"]
    assert reply.text.startswith("<@U0LEAD0001> <!subteam^S0DATAENG01> :x: feature-build-2024-06-02: RUNNING")
    assert payload(without_mentions(reply)) == payload(change_reply("RUNNING", job("diag_out_of_memory"), None))


# -- properties over events of every shape ----------------------------------------------------
PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(event=events(), tail=tails, mentioned=st.booleans())
@example(event=KNOWN_KILLERS["1000 attempts"], tail=LogTail(lines=("x" * 5000,) * 30), mentioned=True)
@example(event=KNOWN_KILLERS["bidi controls"], tail=LogTail(note="\u202e<!channel>"), mentioned=False)
@example(event=KNOWN_KILLERS["30 containers with huge names"], tail=TAIL, mentioned=True)
def test_headline_and_detail_hold_the_long_part_once_and_the_rest_unchanged(
        event: dict[str, Any], tail: LogTail | None, mentioned: bool) -> None:
    job_view = JobStateChange.from_event(event)
    parts = failure_parts(job_view, tail)
    full = with_mentions(parts.render(), MENTIONS) if mentioned else parts.render()
    top, reply = headline(full), detail(full)
    moved = moved_blocks(parts)
    top_blocks = [block.to_dict() for block in top.blocks]
    reply_blocks = [block.to_dict() for block in reply.blocks] if reply is not None else []
    # Nothing lost, nothing twice: each moved block once, in the reply, in order; none on top.
    assert reply_blocks == moved
    assert not [block for block in top_blocks if block in moved]
    # The rest of the message is unchanged, plus the one pointer (when something moved).
    pointers = [b for b in top_blocks if b["type"] == "context" and b["elements"][0]["text"].startswith(":thread: ")]
    assert len(pointers) == (1 if moved else 0)
    assert [b for b in top_blocks if b not in pointers] == [b for b in payload(full)["blocks"] if b not in moved]
    assert top.text == full.text
    for message in (top, *([reply] if reply is not None else []), without_mentions(top)):
        assert_postable(message)
    assert has_pings(top) == mentioned
    assert not has_pings(without_mentions(top))
    assert reply is None or not has_pings(reply)


labels = st.one_of(st.sampled_from(["RUNNING", "RUNNABLE", "BLOCKED", "STUCK", "STARTING", "SUBMITTED", "?"]),
                   st.sampled_from(["<!channel>", "<@U0EVIL0001>", "\u202eX", "", "a" * 3000]))
elapsed = st.one_of(st.none(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))


@PROPERTY
@given(event=st.one_of(events(), events(status_="FAILED"), events(detail_type=JOB_QUEUE_BLOCKED)),
       before=labels, since=elapsed, mentions=st.sampled_from([(), MENTIONS]))
@example(event=KNOWN_KILLERS["bidi controls"], before="<!here>", since=None, mentions=())
@example(event=KNOWN_KILLERS["4000-character job id"], before="RUNNING", since=timedelta(days=3), mentions=MENTIONS)
def test_every_change_reply_is_one_short_line_slack_accepts(
        event: dict[str, Any], before: str, since: timedelta | None, mentions: tuple[str, ...]) -> None:
    detail_type = event["detail-type"]
    job_view = JobStateChange.from_event(event, detail_type) if detail_type == JOB_QUEUE_BLOCKED \
        else JobStateChange.from_event(event)
    reply = change_reply(before, job_view, since, mentions)
    assert_postable(reply)
    assert len(reply.blocks) == (2 if mentions else 1)
    line = reply_line(reply)
    assert "\n" not in line and len(line) < 800
    if since is not None:
        assert f" after {format_duration(since)}" in line
    assert has_pings(reply) == bool(mentions)
    if mentions:
        assert all(markup in reply.text for markup in MENTION_MARKUP)
    assert not has_pings(without_mentions(reply))
    assert not PINGS.search(reply_line(reply))  # the line itself never pings, whatever the job wrote


@pytest.mark.parametrize("build", [build_job_state_message, build_queue_blocked_message])
def test_messages_without_a_long_part_pass_through_every_function_unchanged(build: Any) -> None:
    kind = JOB_QUEUE_BLOCKED if build is build_queue_blocked_message else "Batch Job State Change"
    message = build(JobStateChange.from_event(load_event("job_queue_blocked" if build is build_queue_blocked_message
                                                         else "ec2_failed"), kind))
    assert json.dumps(payload(headline(message))) == json.dumps(payload(message))
    assert detail(message) is None
    assert without_mentions(message) is message
