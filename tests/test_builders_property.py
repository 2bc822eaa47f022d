"""No event can stop its own message: every builder, over generated events of every shape.

The strategy builds complete EventBridge envelopes around job details of every shape the app
meets (EC2, Fargate, EKS, array parent and child, multi-node parent and node, ECS
multi-container ``ecsProperties``), with optional fields missing or of the wrong type, huge and
non-ASCII strings, bidi controls, invisible characters and Slack markup. Whatever the event, each
builder's blocks pass slack-sdk's own validation and the stand-in's Block Kit checks, no job text
can ping or link, and no bidi control reaches Slack. The FAILED handler, end to end in bot mode,
posts exactly one message.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app import app
from chalicelib.composing.critical_running import build_critical_running_message
from chalicelib.composing.failure_message import build_failure_message, describe_failure
from chalicelib.composing.messages import (
    SlackMessage,
    build_job_state_message,
    build_queue_blocked_message,
    with_mentions,
)
from chalicelib.reading.event import JOB_QUEUE_BLOCKED, JOB_STATE_CHANGE, JobStateChange
from chalicelib.reading.logtail import LogTail
from tests.conftest import load_event
from tools.slack_standin import MAX_TEXT_CHARS, SlackStandIn, block_kit_errors, mrkdwn_texts

# -- what the messages may not contain ----------------------------------------------------
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# Characters that hide text outright (tag characters can carry a whole invisible ASCII text).
HIDING = re.compile("[\U000e0000-\U000e007f\u2060\ufeff\u00ad]")
# The only markup allowed in mrkdwn (and the notification text): the attempt history's own log
# links, and the route's mentions (trusted configuration). Anything else with '<' or '>' came
# from the job. plain_text (the header, button labels) is shown literally, so it may hold them.
OUR_LINK = re.compile(r"<https://[a-z0-9-]+\.console\.(?:aws\.amazon\.com|amazonaws\.cn|amazonaws-us-gov\.com)"
                      r"/[^<>|\s]+\|log>")
MENTIONS = ("U0LEAD0001", "S0DATAENG01")
MENTION_MARKUP = ("<@U0LEAD0001>", "<!subteam^S0DATAENG01>")

# -- the strategy ---------------------------------------------------------------------------
# Realistic shapes filled with hostile values, then a few fields deleted or given the wrong type:
# mostly real enough to give links, buttons and attempt histories (the parts with limits to keep),
# never trustworthy.
PIECES = [
    "<!channel>", "<!here|here>", "<@U012ABCDEF>", "<https://evil.example/phish|click here>", "&amp;", "&lt;",
    "&", "<", ">", "```", "`", "*bold*", "_", "~", "|", ":", "/", "#", "%", "$", "?", " ", "\n", "\t",
    "\u202e", "\u202d", "\u202a", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c",
    "\u200b", "\u2060", "\ufeff", "\u00ad", "\U000e0041\U000e0042", "\x00", "\x1b", "\x7f", "\x85",
    "\ud800", "\udfff",  # lone surrogates: JSON allows them, UTF-8 does not
    "é", "ß", "🔥", "👩\u200d👩\u200d👧", "🏳️\u200d🌈", "עברית", "العربية", "日本語", "Ω", "\u0301",
]
# Few draws per string (an event has dozens): pieces from the list above, any text now and then.
short_text = st.one_of(st.lists(st.sampled_from(PIECES), min_size=1, max_size=4).map("".join), st.text(max_size=8))
# Built by repetition, so a 4,000-character string costs hypothesis two draws.
huge_text = st.builds(lambda p, n: p * n, st.sampled_from([*PIECES, "a", "é/", "x"]), st.integers(100, 4000))
text = st.one_of(short_text, huge_text)
wrong = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
                  st.just(""), st.just([]), st.just({}), st.lists(st.integers(), max_size=2))


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, else ``odd``."""
    return st.one_of(usual, usual, usual, odd)


hex_id = st.binary(min_size=16, max_size=16).map(bytes.hex)
uuid = st.uuids().map(str)
integer = mostly(st.integers(0, 255), st.one_of(st.integers(-(2**63), 2**63), st.just(10**300)))
millis = mostly(st.integers(1_500_000_000_000, 1_800_000_000_000), st.integers(-1, 10**20))
real_region = st.sampled_from(["us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1", "ap-southeast-2"])
region = mostly(real_region, text)
status = mostly(st.sampled_from(["FAILED", "SUCCEEDED", "RUNNING", "RUNNABLE", "STARTING"]), text)
job_id = mostly(uuid, text)
stream = mostly(st.builds(lambda d, n, h: f"{d}/{n}/{h}", short_text, short_text, hex_id), text)
log_configuration = st.fixed_dictionaries(
    {"logDriver": mostly(st.just("awslogs"), st.one_of(st.sampled_from(["splunk", "fluentd", "awsfirelens"]), text))},
    optional={"options": st.fixed_dictionaries({}, optional={
        "awslogs-group": mostly(st.just("/aws/batch/job"), text), "awslogs-region": region,
        "awslogs-stream-prefix": text})})


def container(**extra: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A container entry as Batch writes it: exit code, reason, stream, log configuration."""
    return st.fixed_dictionaries({"logStreamName": stream, **extra}, optional={
        "exitCode": integer, "reason": text, "logConfiguration": log_configuration})


def many(entry: st.SearchStrategy[Any], most: int = 3) -> st.SearchStrategy[list[Any]]:
    """A few entries, or one entry 10, 11 or 1,000 times (Batch stops at 10 attempts; the view does not)."""
    return mostly(st.lists(entry, min_size=1, max_size=most),
                  st.builds(lambda a, n: [a] * n, entry, st.sampled_from([10, 11, 1000])))


def attempt(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"startedAt": millis, "stoppedAt": millis, "statusReason": text, **fields})


named = container(name=text, essential=st.booleans())
task = st.fixed_dictionaries({"containers": mostly(st.lists(named, min_size=2, max_size=4),
                                                   st.builds(lambda c, n: [c] * n, named, st.integers(20, 40)))})
eks_container = st.fixed_dictionaries({"name": text}, optional={"exitCode": integer, "reason": text})
SHAPES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "ec2": {"platformCapabilities": st.just(["EC2"]), "container": container(),
            "attempts": many(attempt(container=container()))},
    "fargate": {"platformCapabilities": st.just(["FARGATE"]), "container": container(),
                "attempts": many(attempt(container=container()))},
    "eks": {"platformCapabilities": st.just(["EKS"]), "attempts": st.just([]),
            "eksProperties": st.fixed_dictionaries({"podProperties": st.fixed_dictionaries(
                {"containers": st.lists(eks_container, min_size=1, max_size=3), "podName": text})}),
            "eksAttempts": many(attempt(containers=st.lists(eks_container, min_size=1, max_size=3),
                                        podName=text, nodeName=text))},
    "array_parent": {"arrayProperties": st.fixed_dictionaries({"size": integer, "statusSummary": st.dictionaries(
        st.sampled_from(["FAILED", "SUCCEEDED", "RUNNING"]), integer)}), "attempts": st.just([]),
        "container": st.fixed_dictionaries({}, optional={"logConfiguration": log_configuration})},
    "array_child": {"jobId": st.builds(lambda j, i: f"{j}:{i}", job_id, integer), "container": container(),
                    "arrayProperties": st.fixed_dictionaries({"index": integer, "size": integer}),
                    "attempts": many(attempt(container=container()))},
    "multinode_parent": {"nodeProperties": st.fixed_dictionaries({"numNodes": integer, "mainNode": integer}),
                         "attempts": many(attempt(container=container()))},
    "multinode_node": {"jobId": st.builds(lambda j, i: f"{j}#{i}", job_id, integer), "container": container(),
                       "nodeDetails": st.fixed_dictionaries({"nodeIndex": integer, "isMainNode": st.booleans()}),
                       "attempts": many(attempt(container=container()))},
    "ecs_multi_container": {"ecsProperties": st.fixed_dictionaries({"taskProperties": st.lists(task, min_size=1,
                                                                                                max_size=2)}),
                            "attempts": many(attempt(taskProperties=st.lists(task, min_size=1, max_size=1)))},
}
COMMON: dict[str, st.SearchStrategy[Any]] = {
    "jobName": text, "jobId": job_id, "jobQueue": st.builds(lambda q: f"arn:aws:batch:::job-queue/{q}", text),
    "jobDefinition": st.builds(lambda d: f"arn:aws:batch:::job-definition/{d}", text), "status": status,
    "statusReason": text, "createdAt": millis, "startedAt": millis, "stoppedAt": millis,
    "retryStrategy": st.fixed_dictionaries({"attempts": integer}, optional={"evaluateOnExit": st.lists(
        st.fixed_dictionaries({"action": st.sampled_from(["RETRY", "EXIT", "retry"]), "onExitCode": text,
                               "onReason": text, "onStatusReason": text}), max_size=3)}),
    "tags": st.dictionaries(short_text, text, max_size=3),
}


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key (or index) path inside ``node``, the place a mutation can hit."""
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node[:3])  # the first few entries of a 1,000-attempt list are enough
    else:
        return []
    found = []
    for key, value in items:
        found.append((*path, key))
        found.extend(_paths(value, (*path, key)))
    return found


@st.composite
def job_details(draw: st.DrawFn) -> dict[str, Any]:
    """A job detail of any shape, then up to three fields deleted or replaced by the wrong type."""
    shape = draw(st.sampled_from(sorted(SHAPES)))
    detail = draw(st.fixed_dictionaries({**COMMON, **SHAPES[shape]}))
    # Copied, so no mutation reaches a strategy's own constant (st.just([...])). A repeated entry
    # stays one object: a mutation of it hits every copy, still a shape the view must take.
    detail = copy.deepcopy(detail)
    paths = _paths(detail)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths))
        parent = detail
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(wrong)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced that place
    return detail


# The envelope's text fields are never empty: the view rejects such an envelope (EventBridge
# always fills them), and this is about what the view accepts.
envelope_text = text.map(lambda s: s or "?")


@st.composite
def events(draw: st.DrawFn, detail_type: str = JOB_STATE_CHANGE, status_: str | None = None) -> dict[str, Any]:
    """A complete EventBridge envelope around a job detail of any shape, as Lambda decodes it."""
    detail = draw(job_details())
    if status_ is not None:
        detail["status"] = status_
    return {
        "version": "0", "id": draw(mostly(uuid, envelope_text)), "detail-type": detail_type, "source": "aws.batch",
        "account": draw(mostly(st.just("123456789012"), envelope_text)),
        "time": draw(mostly(st.just("2025-03-03T09:17:51Z"), envelope_text)),
        "region": draw(mostly(real_region, envelope_text)), "resources": draw(st.lists(text, max_size=2)),
        "detail": detail,
    }


def ec2_failed_with(**changes: Any) -> dict[str, Any]:
    """The ec2_failed fixture with ``detail`` keys (``container_...``: its container's) replaced."""
    event = load_event("ec2_failed")
    for key, value in changes.items():
        where = event["detail"]["container"] if key.startswith("container_") else event["detail"]
        where[key.removeprefix("container_")] = value
    return event


# The shapes that once stopped their own message, always tried (hypothesis may not draw them).
KNOWN_KILLERS = {
    "4000-character job id": ec2_failed_with(jobId="j" * 4000),
    "512-character non-ASCII stream": ec2_failed_with(container_logStreamName="é/" * 256),
    "3000-character log driver": ec2_failed_with(container_logConfiguration={"logDriver": "d" * 3000}),
    "bidi controls": ec2_failed_with(jobName="invoice\u202efdp.exe", statusReason="\u2067<!channel>\u2069 \u200fok"),
    "1000 attempts": ec2_failed_with(attempts=load_event("ec2_failed")["detail"]["attempts"] * 1000),
    "30 containers with huge names": ec2_failed_with(container=None, ecsProperties={"taskProperties": [{"containers": [
        {"name": f"{i}-" + "\u202en" * 2000, "essential": i == 0, "exitCode": i, "logStreamName": f"sim/c{i}/ab12"}
        for i in range(30)]}]}),
}

tails = st.one_of(st.none(), st.builds(LogTail, lines=st.lists(text, min_size=1, max_size=30).map(tuple)),
                  st.builds(LogTail, note=text))


# -- the checks -----------------------------------------------------------------------------
def assert_postable(message: SlackMessage) -> None:
    """What Slack would accept, with no job text able to ping, link or reorder what is shown."""
    # Each block on its own, not through SlackMessage.to_dict (whose last-resort guard would hide a bug):
    # slack-sdk's to_dict() validates and raises SlackObjectFormationError on a broken limit.
    blocks = [block.to_dict() for block in message.blocks]
    assert block_kit_errors(blocks) == []
    assert message.text.strip() and len(message.text) <= MAX_TEXT_CHARS
    payload = {"text": message.text, "blocks": blocks}
    for mrkdwn in mrkdwn_texts(payload):
        rest = OUR_LINK.sub("", mrkdwn)
        for markup in MENTION_MARKUP:
            rest = rest.replace(markup, "")
        assert "<" not in rest and ">" not in rest, rest[:300]
    rendered = json.dumps(payload, ensure_ascii=False)
    assert not BIDI.search(rendered) and not HIDING.search(rendered)


FAST = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(event=events(), tail=tails)
@example(event=KNOWN_KILLERS["4000-character job id"], tail=None)
@example(event=KNOWN_KILLERS["512-character non-ASCII stream"], tail=None)
@example(event=KNOWN_KILLERS["3000-character log driver"], tail=None)
@example(event=KNOWN_KILLERS["bidi controls"], tail=LogTail(lines=("\u202eline", "`\u200b``")))
@example(event=KNOWN_KILLERS["1000 attempts"], tail=LogTail(note="x" * 5000))
@example(event=KNOWN_KILLERS["30 containers with huge names"], tail=None)
def test_every_job_state_builder_gives_a_message_slack_accepts(event: dict[str, Any], tail: LogTail | None) -> None:
    job = JobStateChange.from_event(event)
    standard = build_job_state_message(job)
    for message in (standard, build_failure_message(job, tail), build_critical_running_message(job),
                    with_mentions(standard, MENTIONS)):
        assert_postable(message)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(event=events(detail_type=JOB_QUEUE_BLOCKED))
@example(event={**KNOWN_KILLERS["4000-character job id"], "detail-type": JOB_QUEUE_BLOCKED})
@example(event={**KNOWN_KILLERS["bidi controls"], "detail-type": JOB_QUEUE_BLOCKED})
def test_the_queue_blocked_builder_gives_a_message_slack_accepts(event: dict[str, Any]) -> None:
    assert_postable(build_queue_blocked_message(JobStateChange.from_event(event, JOB_QUEUE_BLOCKED)))


@pytest.mark.parametrize("lines", ["0", "lots"])  # off, and a bad setting (the message says which to fix)
def test_describe_failure_gives_a_message_slack_accepts(lines: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_TAIL_LINES", lines)  # no CloudWatch call either way

    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(event=events(status_="FAILED"))
    @example(event=KNOWN_KILLERS["3000-character log driver"])
    @example(event=KNOWN_KILLERS["bidi controls"])
    def check(event: dict[str, Any]) -> None:
        assert_postable(describe_failure(JobStateChange.from_event(event)))
    check()


def test_the_failed_handler_posts_exactly_one_message_for_any_event(bot: SlackStandIn) -> None:
    """Through chalice.test (the function Lambda calls) and slack-sdk to the stand-in, in bot mode."""
    with Client(app, stage_name="local") as client:

        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(event=events(status_="FAILED"))
        @example(event=KNOWN_KILLERS["4000-character job id"])
        @example(event=KNOWN_KILLERS["512-character non-ASCII stream"])
        def check(event: dict[str, Any]) -> None:
            before = len(bot.messages)
            client.lambda_.invoke("on_job_failed", event)  # raises if the handler does
            after = bot.messages
            assert len(after) == before + 1
            # The full message, not the plain-text fallback slack.py sends when Slack refuses blocks.
            expected = build_failure_message(JobStateChange.from_event(event), None).to_dict()
            assert after[-1]["blocks"] == json.loads(json.dumps(expected["blocks"]))
        check()


# -- shapes worth naming ----------------------------------------------------------------------
def test_a_thousand_attempts_show_the_last_ten_and_keep_the_buttons_and_context_line() -> None:
    message = build_failure_message(JobStateChange.from_event(KNOWN_KILLERS["1000 attempts"]), None)
    assert_postable(message)
    kinds = [block.type for block in message.blocks]
    assert kinds[-2:] == ["actions", "context"] and len(kinds) < 20
    history = "\n".join(b["text"]["text"] for b in (block.to_dict() for block in message.blocks)
                        if b["type"] == "section" and "Attempt history" in b.get("text", {}).get("text", ""))
    assert history.startswith("*Attempt history* (last 10 of 1000)\n991. exit 1")
    assert "\n1000. exit 1" in history and "\n990. " not in history


def test_an_attempt_line_is_bounded_whatever_its_exit_code_and_reason() -> None:
    first = load_event("ec2_failed")["detail"]["attempts"][0]
    huge = {**first, "container": {**first["container"], "exitCode": int("9" * 4000), "reason": "r" * 5000}}
    event = ec2_failed_with(attempts=[huge, huge])
    assert_postable(build_failure_message(JobStateChange.from_event(json.loads(json.dumps(event))), None))
