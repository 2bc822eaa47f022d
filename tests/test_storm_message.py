"""A storm's messages (pure): the group message and the thread replies, escaped and within Slack's limits."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chalicelib.composing.storm_message import MAX_LINES_PER_REPLY, group_message, job_line, lines_reply
from chalicelib.deciding.storms import Group, PendingLine, Previous, StormLine, member_digest
from tools.slack_standin import block_kit_errors, mrkdwn_texts

HOSTILE = "<!channel> <https://evil.example|click> &amp; \u202eevil\u202c"


def group(**changes) -> Group:
    fields: dict[str, object] = {
        "pk": "group#x", "generation": "g1", "channel": "C0TESTCHAN", "queue": "etl-queue", "cause": "image_pull",
        "after": 3, "count": 37, "first_at": 1_715_650_000.0, "last_at": 1_715_650_420.0,
        "names": ("load-1", "load-2", "load-3", "load-4", "load-5"),
        "diagnosis_title": "Image could not be pulled", "diagnosis_hint": "Check the image and its tag."}
    fields.update(changes)
    return Group(**fields)  # type: ignore[arg-type]


def texts(message) -> str:
    return " ".join(mrkdwn_texts(message.to_dict()))


def test_the_group_message_says_how_many_where_why_when_and_where_the_jobs_are():
    message = group_message(group())
    payload = message.to_dict()
    assert payload["text"] == ":rotating_light: 37 jobs failed in etl-queue: Image could not be pulled"
    assert payload["blocks"][0]["text"]["text"] == payload["text"]
    shown = texts(message)
    assert "*Image could not be pulled*\nCheck the image and its tag." in shown
    assert "<!date^1715650000^" in shown and "<!date^1715650420^" in shown  # the readers' own time zones
    assert "`load-1`, `load-2`, `load-3`, `load-4`, `load-5` and 32 more" in shown
    assert "listed in this message's thread" in shown and "The first 3 were posted on their own" in shown
    assert block_kit_errors(payload["blocks"]) == []


def test_mentions_only_when_given_and_a_continuation_says_so():
    assert group_message(group(), ("U0ONCALL01",)).text.startswith("<@U0ONCALL01> ")
    assert "<@" not in json.dumps(group_message(group()).to_dict())
    continued = texts(group_message(group(after=0, previous=Previous("1.0001", 2000))))
    assert "Continues an earlier group of 2000 jobs" in continued and "posted on their own" not in continued


def test_without_a_diagnosis_the_cause_key_is_shown():
    message = group_message(group(diagnosis_title=None, diagnosis_hint=None, cause="exit 137"))
    assert message.text.endswith("37 jobs failed in etl-queue: exit 137")


def test_job_text_is_escaped_everywhere():
    message = group_message(group(queue=HOSTILE, names=(HOSTILE,), diagnosis_hint=HOSTILE, cause=HOSTILE,
                                  diagnosis_title=None))
    line = StormLine(HOSTILE, HOSTILE, HOSTILE, None)
    reply = lines_reply(group(), [PendingLine("d", line)])
    for payload in (message.to_dict(), reply.to_dict()):
        for text in mrkdwn_texts(payload):
            assert "<!channel>" not in text and "<https://evil" not in text and "\u202e" not in text


def test_a_reply_lists_each_line_once_numbered_with_its_link():
    lines = [PendingLine(member_digest(f"job-{n}"), StormLine(f"load-{n}", f"id-{n}", "exit 1",
                                                              f"https://eu-west-1.console.aws.amazon.com/x{n}"))
             for n in range(40)]
    members = {p.digest: n + 4 for n, p in enumerate(lines)}
    reply = lines_reply(group(members=members), lines)
    shown = texts(reply)
    assert [f"`id-{n}`" in shown for n in range(40)] == [True] * MAX_LINES_PER_REPLY + [False] * 10
    assert "*#4* *load-0* · `id-0` · exit 1 · <https://eu-west-1.console.aws.amazon.com/x0|logs>" in shown
    assert reply.text.startswith("30 failed jobs of this group: load-0, load-1")
    assert block_kit_errors(reply.to_dict()["blocks"]) == []


def test_a_line_too_long_for_its_link_drops_the_link_whole():
    line = StormLine("&" * 128, "<" * 128, ">" * 160, "https://eu-west-1.console.aws.amazon.com/" + "a" * 800)
    text = job_line(line, 7)
    assert "|logs>" not in text and "https://" not in text and len(text) <= 1500


_TEXT = st.text(st.characters(codec="utf-8"), max_size=300)


@given(st.lists(st.tuples(_TEXT, _TEXT, _TEXT, st.none() | st.just("https://eu-west-1.console.aws.amazon.com/l")),
                max_size=45), _TEXT, st.lists(_TEXT, max_size=5), st.integers(1, 5000))
@hypothesis_settings(max_examples=60, deadline=None)
def test_any_text_gives_messages_slack_accepts(raw_lines, queue, names, count):
    lines = [PendingLine(str(n), StormLine(*fields)) for n, fields in enumerate(raw_lines)]
    subject = group(queue=queue, names=tuple(names), count=count, diagnosis_hint=queue)
    for message in (group_message(subject, ("U0ONCALL01",)), lines_reply(subject, lines)):
        payload = message.to_dict()
        assert block_kit_errors(payload["blocks"]) == []
        assert len(payload["text"]) <= 600
