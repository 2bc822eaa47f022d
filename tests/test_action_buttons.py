"""Which buttons a message gets (retry, more memory, terminate, acknowledge, snooze), and that they
keep Slack's limits and carry nothing but the job's ARN, whatever the event."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.blocks import ButtonElement

from chalicelib.composing.action_buttons import (
    ACKNOWLEDGE,
    ACTION_IDS,
    NO_ACTIONS,
    RETRY_JOB,
    RETRY_JOB_MORE_MEMORY,
    SNOOZE,
    SNOOZE_DURATIONS,
    TERMINATE_JOB,
    ActionOffer,
    offer_for,
    stuck_report_buttons,
    with_action_buttons,
)
from chalicelib.composing.failure_message import build_failure_message
from chalicelib.composing.messages import (
    MessageParts,
    SlackMessage,
    build_job_state_message,
    build_queue_blocked_message,
    with_mentions,
)
from chalicelib.reading.batch_api import JobSummary
from chalicelib.reading.event import JOB_QUEUE_BLOCKED, JobStateChange
from chalicelib.scheduled.stuck import MAX_JOBS_SHOWN, StuckJob, StuckReport, build_stuck_message
from tests.conftest import load_event
from tests.test_builders_property import FAST, assert_postable, events, mostly, text
from tools.slack_standin import block_kit_errors

ARN = "arn:aws:batch:us-east-1:123456789012:job/b8a1abcd-1a69-46c7-8da4-f9fc3c6da5d7"
ALL = {"signing_on": True, "allowed": True}


def job_of(name: str, **detail: Any) -> JobStateChange:
    event = load_event(name)
    event["detail"].update(detail)
    return JobStateChange.from_event(event, event["detail-type"])


def elements_of(message: SlackMessage) -> list[dict[str, Any]]:
    """Every element of every actions block, as posted."""
    return [e for block in message.to_dict()["blocks"] if block["type"] == "actions" for e in block["elements"]]


def action_ids(message: SlackMessage) -> list[str]:
    return [e["action_id"] for e in elements_of(message)]


# -- offer_for --------------------------------------------------------------------------------
def test_an_out_of_memory_failure_offers_retry_more_memory_acknowledge_and_snooze() -> None:
    job = job_of("diag_out_of_memory")
    assert offer_for(job, **ALL) == ActionOffer(retry=True, more_memory=True, acknowledge=True, snooze=True)


def test_another_failure_offers_no_more_memory() -> None:
    assert offer_for(job_of("ec2_failed"), **ALL) == ActionOffer(retry=True, acknowledge=True, snooze=True)


def test_with_no_one_allowed_a_failure_offers_only_acknowledge_and_snooze() -> None:
    offer = offer_for(job_of("diag_out_of_memory"), signing_on=True, allowed=False)
    assert offer == ActionOffer(acknowledge=True, snooze=True)


@pytest.mark.parametrize("name", ["diag_out_of_memory", "job_queue_blocked", "ec2_succeeded"])
def test_without_a_signing_secret_nothing_is_offered(name: str) -> None:
    assert offer_for(job_of(name), signing_on=False, allowed=True) == NO_ACTIONS


def test_a_blocked_queue_offers_terminate_and_acknowledge() -> None:
    job = job_of("job_queue_blocked")
    assert job.detail_type == JOB_QUEUE_BLOCKED
    assert offer_for(job, **ALL) == ActionOffer(terminate=True, acknowledge=True)
    assert offer_for(job, signing_on=True, allowed=False) == ActionOffer(acknowledge=True)


@pytest.mark.parametrize("name", ["ec2_succeeded", "running"])
def test_other_statuses_offer_nothing(name: str) -> None:
    assert offer_for(job_of(name), **ALL) == NO_ACTIONS


@pytest.mark.parametrize("job_id", ["e47141c8-f5c1-4692-9511-abe48f1a8943:7", "e47141c8-f5c1-4692-9511-abe48f1a8943#2"])
def test_array_children_and_node_jobs_are_not_retried_but_can_be_acknowledged(job_id: str) -> None:
    job = job_of("diag_out_of_memory", jobId=job_id, jobArn=f"arn:aws:batch:us-east-1:123456789012:job/{job_id}")
    offer = offer_for(job, **ALL)
    assert not offer.retry and not offer.more_memory and offer.acknowledge


@pytest.mark.parametrize("arn", [
    None, "", 12, "not an arn", "arn:aws:batch:us-east-1:123456789012:job/<!channel>",
    "arn:aws:iam::123456789012:role/x", f"{ARN}\n", "arn:aws:batch:us-east-1:1:job/x",
    "arn:aws:batch:us-east-1:123456789012:job/" + "a" * 2000,  # over Slack's 2000-character value
])
def test_a_job_without_a_proper_job_arn_gets_no_buttons(arn: Any) -> None:
    job = job_of("diag_out_of_memory", jobArn=arn)
    assert offer_for(job, **ALL) == NO_ACTIONS
    message = build_failure_message(job, None)
    assert with_action_buttons(message, job, ActionOffer(retry=True, acknowledge=True)) == message


# -- with_action_buttons ----------------------------------------------------------------------
def test_the_buttons_follow_the_link_buttons_in_order_with_styles_and_confirm_dialogs() -> None:
    job = job_of("diag_out_of_memory")
    message = with_action_buttons(build_failure_message(job, None), job, offer_for(job, **ALL))
    assert action_ids(message) == ["view_logs", "open_in_batch", RETRY_JOB, RETRY_JOB_MORE_MEMORY, ACKNOWLEDGE, SNOOZE]
    by_id = {e["action_id"]: e for e in elements_of(message)}
    assert by_id[RETRY_JOB]["style"] == "primary" and by_id[RETRY_JOB]["value"] == ARN
    assert by_id[RETRY_JOB]["confirm"]["text"]["text"].startswith(f"Retry {job.job_name}?")
    assert "doubled" in by_id[RETRY_JOB_MORE_MEMORY]["confirm"]["text"]["text"]
    assert "capped" in by_id[RETRY_JOB_MORE_MEMORY]["confirm"]["text"]["text"]
    assert "confirm" not in by_id[ACKNOWLEDGE]
    assert [o["value"] for o in by_id[SNOOZE]["options"]] == [f"{d}|{ARN}" for d, _ in SNOOZE_DURATIONS]
    assert block_kit_errors(message.to_dict()["blocks"]) == []
    # The parts keep the buttons, so a later render (a fork's replace) keeps them too.
    assert message.parts is not None
    assert [b.action_id for b in message.parts.actions][-4:] == [RETRY_JOB, RETRY_JOB_MORE_MEMORY, ACKNOWLEDGE, SNOOZE]


def test_the_actions_outrank_the_last_containers_log_buttons_when_slacks_25_are_full() -> None:
    # Found by hypothesis: 24 logged containers filled the block and left Terminate out.
    event = load_event("ecs_multicontainer_failed")
    task = event["detail"]["ecsProperties"]["taskProperties"][0]
    task["containers"] = [{**task["containers"][0], "name": f"c{i}", "logStreamName": f"sim/c{i}/{i:032x}"}
                          for i in range(30)]
    event["detail"]["attempts"] = []
    job = JobStateChange.from_event(event, event["detail-type"])
    message = with_action_buttons(build_failure_message(job, None), job, offer_for(job, **ALL))
    ids = action_ids(message)
    assert len(ids) == 25 and ids[0] == "view_logs" and "open_in_batch" in ids
    assert ids[-3:] == [RETRY_JOB, ACKNOWLEDGE, SNOOZE]
    assert block_kit_errors(message.to_dict()["blocks"]) == []


def test_terminate_is_a_danger_button_with_a_danger_confirm() -> None:
    job = job_of("job_queue_blocked")
    message = with_action_buttons(build_queue_blocked_message(job), job, offer_for(job, **ALL))
    terminate = next(e for e in elements_of(message) if e["action_id"] == TERMINATE_JOB)
    assert terminate["style"] == "danger" and terminate["confirm"]["style"] == "danger"
    assert terminate["confirm"]["text"]["text"].startswith("Terminate gpu-render-preview?")
    assert terminate["value"] == job.job_arn


def test_a_hostile_job_name_is_bounded_and_cleaned_in_the_confirm_dialog() -> None:
    job = job_of("ec2_failed", jobName="\u202e<!channel>" + "x" * 5000)
    message = with_action_buttons(build_failure_message(job, None), job, offer_for(job, **ALL))
    retry = next(e for e in elements_of(message) if e["action_id"] == RETRY_JOB)
    question = retry["confirm"]["text"]["text"]
    assert len(question) <= 300 and "\u202e" not in question and question.startswith("Retry <!channel>x")
    assert retry["confirm"]["text"]["type"] == "plain_text"  # shown literally: it pings nobody


def test_an_arn_too_long_for_a_select_option_gets_buttons_but_no_snooze() -> None:
    arn = "arn:aws:batch:us-east-1:123456789012:job/" + "a" * 110  # 152 characters: over 150 with "7d|"
    job = job_of("ec2_failed", jobArn=arn)
    message = with_action_buttons(build_failure_message(job, None), job, offer_for(job, **ALL))
    assert SNOOZE not in action_ids(message) and ACKNOWLEDGE in action_ids(message)
    assert all(e.get("value") == arn for e in elements_of(message) if e["action_id"] in ACTION_IDS)


def test_a_message_not_from_parts_gets_an_actions_block_before_its_context_line() -> None:
    job = job_of("ec2_failed")
    built = build_job_state_message(job)
    bare = SlackMessage(text=built.text, blocks=built.blocks)
    message = with_action_buttons(bare, job, offer_for(job, **ALL))
    assert len(message.blocks) == len(bare.blocks) + 1
    assert message.blocks[-1] == bare.blocks[-1] and message.blocks[-2].type == "actions"
    assert [e["action_id"] for e in message.to_dict()["blocks"][-2]["elements"]] == [RETRY_JOB, ACKNOWLEDGE, SNOOZE]


def test_a_full_actions_block_keeps_25_elements_and_the_most_important_actions_first() -> None:
    links = tuple(ButtonElement(text=f"Logs {i}", action_id=f"view_logs_{i}", url="https://example.com")
                  for i in range(23))
    message = MessageParts(text="t", header="h", actions=links, context=("c",)).render()
    job = job_of("diag_out_of_memory")
    ids = action_ids(with_action_buttons(message, job, offer_for(job, **ALL)))
    # The actions take the place of the last extra log buttons, never the other way round.
    assert len(ids) == 25 and ids[-4:] == [RETRY_JOB, RETRY_JOB_MORE_MEMORY, ACKNOWLEDGE, SNOOZE]
    assert ids[:21] == [f"view_logs_{i}" for i in range(21)]


def test_buttons_are_added_once() -> None:
    job = job_of("diag_out_of_memory")
    once = with_action_buttons(build_failure_message(job, None), job, offer_for(job, **ALL))
    assert action_ids(with_action_buttons(once, job, offer_for(job, **ALL))) == action_ids(once)


def test_mentions_then_buttons_keep_both() -> None:
    job = job_of("ec2_failed")
    message = with_action_buttons(with_mentions(build_failure_message(job, None), ["U0LEAD0001"]), job,
                                  offer_for(job, **ALL))
    assert "<@U0LEAD0001>" in message.text and SNOOZE in action_ids(message)


# -- stuck reports ----------------------------------------------------------------------------
AT = datetime(2025, 3, 3, 9, 15, tzinfo=UTC)


def stuck_report(count: int, *, arn: bool = True) -> StuckReport:
    jobs = tuple(StuckJob(job=JobSummary(queue="etl-queue", job_id=f"id-{i}", name=f"job-{i}", status="RUNNABLE",
                                         job_arn=f"arn:aws:batch:us-east-1:123456789012:job/id-{i}" if arn else None,
                                         created_at=AT - timedelta(hours=1)),
                          age=timedelta(hours=1), step=timedelta(minutes=30)) for i in range(count))
    return StuckReport(queue="etl-queue", route=None, channel=None, mentions=(), threshold=timedelta(minutes=30),
                       at=AT, jobs=jobs)


def shown(report: StuckReport) -> list[JobSummary]:
    return [stuck.job for stuck in report.jobs[:MAX_JOBS_SHOWN]]


def test_each_stuck_job_gets_terminate_and_acknowledge_after_its_section() -> None:
    report = stuck_report(3)
    message = build_stuck_message(report, "us-east-1")
    blocks = stuck_report_buttons(message.blocks, shown(report), **ALL)
    dicts = [b.to_dict() for b in blocks]
    assert block_kit_errors(dicts) == []
    assert [b["type"] for b in dicts] == ["header", "section", *["section", "actions"] * 3, "context"]
    for i, job in enumerate(shown(report)):
        actions = dicts[3 + 2 * i]
        assert job.name in dicts[2 + 2 * i]["text"]["text"]
        assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [(TERMINATE_JOB, job.job_arn),
                                                                               (ACKNOWLEDGE, job.job_arn)]


def test_stuck_jobs_without_anyone_allowed_get_acknowledge_only_and_without_signing_nothing() -> None:
    report = stuck_report(2)
    blocks = build_stuck_message(report, "us-east-1").blocks
    acked = [b.to_dict() for b in stuck_report_buttons(blocks, shown(report), signing_on=True, allowed=False)]
    assert [[e["action_id"] for e in b["elements"]] for b in acked if b["type"] == "actions"] == [[ACKNOWLEDGE]] * 2
    assert stuck_report_buttons(blocks, shown(report), signing_on=False, allowed=True) == blocks


def test_a_report_with_a_cc_line_and_the_most_jobs_stays_within_50_blocks() -> None:
    report = stuck_report(MAX_JOBS_SHOWN + 5)
    message = with_mentions(build_stuck_message(report, "us-east-1"), ["U0LEAD0001"])
    blocks = stuck_report_buttons(message.blocks, shown(report), **ALL)
    assert len(blocks) <= 50 and sum(b.type == "actions" for b in blocks) == MAX_JOBS_SHOWN
    assert block_kit_errors([b.to_dict() for b in blocks]) == []


def test_a_stuck_job_without_an_arn_gets_no_buttons_and_a_mismatched_layout_is_left_alone() -> None:
    report = stuck_report(2, arn=False)
    blocks = build_stuck_message(report, "us-east-1").blocks
    assert stuck_report_buttons(blocks, shown(report), **ALL) == blocks
    assert stuck_report_buttons(blocks[-2:], shown(stuck_report(5)), **ALL) == blocks[-2:]


# -- whatever the event -----------------------------------------------------------------------
job_arns = mostly(st.builds(lambda i: f"arn:aws:batch:us-east-1:123456789012:job/{i}",
                            st.one_of(st.uuids().map(str), st.text("abc0:#-", min_size=1, max_size=1990))), text)


def assert_values_are_job_arns(message: SlackMessage, arn: str | None) -> None:
    for element in elements_of(message):
        if element["action_id"] not in ACTION_IDS:
            assert "value" not in element
        elif element["type"] == "static_select":
            assert [o["value"] for o in element["options"]] == [f"{d}|{arn}" for d, _ in SNOOZE_DURATIONS]
        else:
            assert element["value"] == arn and len(arn or "") <= 2000


@FAST
@given(event=events(status_="FAILED"), arn=job_arns, signing_on=st.booleans(), allowed=st.booleans())
def test_every_failure_message_with_buttons_is_one_slack_accepts(event: dict[str, Any], arn: Any, signing_on: bool,
                                                                 allowed: bool) -> None:
    event = copy.deepcopy(event)
    event["detail"]["jobArn"] = arn
    job = JobStateChange.from_event(event)
    message = with_action_buttons(build_failure_message(job, None), job,
                                  offer_for(job, signing_on=signing_on, allowed=allowed))
    assert_postable(message)
    assert_values_are_job_arns(message, job.job_arn)


@FAST
@given(event=events(detail_type=JOB_QUEUE_BLOCKED), arn=job_arns, allowed=st.booleans())
def test_every_blocked_warning_with_buttons_is_one_slack_accepts(event: dict[str, Any], arn: Any,
                                                                 allowed: bool) -> None:
    event = copy.deepcopy(event)
    event["detail"]["jobArn"] = arn
    job = JobStateChange.from_event(event, JOB_QUEUE_BLOCKED)
    offer = offer_for(job, signing_on=True, allowed=allowed)
    message = with_action_buttons(build_queue_blocked_message(job), job, offer)
    assert_postable(message)
    assert_values_are_job_arns(message, job.job_arn)
    assert (TERMINATE_JOB in action_ids(message)) == (allowed and offer.any)
