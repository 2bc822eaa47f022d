"""Message building: named parts in a fixed order, styling, safety and Slack's limits.

The exact payload each handler posts per fixture is tests/test_snapshots.py's.
"""

import json
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ContextBlock, HeaderBlock, MarkdownTextObject

from chalicelib.composing.messages import (
    MessageParts,
    SlackMessage,
    build_job_state_message,
    build_queue_blocked_message,
    format_duration,
    job_state_parts,
    with_mentions,
)
from chalicelib.reading.event import JOB_STATE_CHANGE, JobStateChange, NotAJobStateChange
from tests.conftest import event_names, load_event
from tools.slack_standin import block_kit_errors, mrkdwn_texts

# The container jobs' state changes (service jobs and queue-blocked warnings have their own tests).
JOB_EVENTS = [n for n in event_names() if load_event(n)["detail-type"] == JOB_STATE_CHANGE]


def message_for(name):
    return build_job_state_message(JobStateChange.from_event(load_event(name)))


@pytest.mark.parametrize("name", JOB_EVENTS)
def test_every_fixture_fits_slacks_limits(name):
    payload = message_for(name).to_dict()
    assert payload["text"].strip()
    assert block_kit_errors(payload["blocks"]) == []


def test_failure_and_success_look_different():
    failed, succeeded = message_for("ec2_failed"), message_for("ec2_succeeded")
    assert isinstance(failed.blocks[0], HeaderBlock)
    assert failed.blocks[0].text.text.startswith(":x: Job failed: nightly-etl-load-2024-05-13")
    assert succeeded.blocks[0].text.text.startswith(":white_check_mark: Job succeeded: streamtest")
    assert failed.text.startswith(":x:") and succeeded.text.startswith(":white_check_mark:")


def test_failed_message_shows_what_a_person_needs_at_a_glance():
    fields = [f.text for f in message_for("ec2_failed").blocks[1].fields]
    assert fields == ["*Status*\nFAILED", "*Job queue*\netl-ondemand-queue", "*Job definition*\nnightly-etl:14",
                      "*Exit code*\n1", "*Attempts*\n1 of 1", "*Duration*\n12m 34s", "*Platform*\nEC2"]


def test_buttons_link_to_the_logs_and_the_job():
    actions = next(b for b in message_for("custom_log_group_failed").blocks if isinstance(b, ActionsBlock))
    buttons = {e.text.text: e.url for e in actions.elements}
    assert buttons == {
        "View logs": "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups"
                     "/log-group/$252Fbatch$252Fetl$2523nightly/log-events/etl$252Fdefault$252F"
                     "172409eea9a5e3236c89aa24f7e7e777",
        "Open in AWS Batch": "https://eu-central-1.console.aws.amazon.com/batch/home?region=eu-central-1"
                             "#jobs/detail/4bc41d21-3038-4c0d-a76d-9418fb4acac5",
    }


@pytest.mark.parametrize("name", ["never_started_failed", "eks_failed", "array_parent_failed",
                                  "splunk_log_driver_failed", "detail_missing_fields"])
def test_no_invented_log_link(name):
    payload = json.dumps(message_for(name).to_dict())
    assert "View logs" not in payload and "/cloudwatch/" not in payload


def test_never_started_job_shows_the_container_reason():
    payload = message_for("never_started_failed").to_dict()
    sections = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section" and "text" in b]
    assert sections[0] == "*Status reason*\nTask failed to start"
    assert sections[1].startswith("*Container reason*\nCannotPullContainerError: pull image manifest")
    assert "CannotPullContainerError" in payload["text"]
    assert "*Duration*\nnever started" in json.dumps(payload["blocks"][1]).replace("\\n", "\n")


def test_container_reason_is_left_out_when_it_adds_nothing():
    blocks = message_for("timeout_failed").to_dict()["blocks"]
    assert not any("Container reason" in json.dumps(b) for b in blocks)


def test_multinode_parent_shows_its_main_node():
    message = message_for("multinode_parent_failed")
    fields = [f.text for f in message.blocks[1].fields]
    assert "*Nodes*\n4 (main node 0)" in fields and "*Exit code (main node)*\n1" in fields
    # the main node's stream, as AWS Batch copies it to the parent's attempt
    assert "openfoam-mnp$252Fdefault$252Fa2fb0bd752a7ef72f463086d398fb577" in json.dumps(message.to_dict())


def test_array_parent_summarises_its_children():
    fields = [f.text for f in message_for("array_parent_failed").blocks[1].fields]
    assert "*Array children*\n3 failed, 497 succeeded of 500" in fields
    assert not any(f.startswith("*Exit code*") for f in fields)


def test_hostile_text_pings_nobody_and_links_nowhere():
    payload = message_for("hostile_text_failed").to_dict()
    for text in mrkdwn_texts(payload):
        # The only '<...>' Slack may parse are ones we wrote ourselves: there are none.
        assert "<" not in text and ">" not in text, text[:200]
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text[:200]
    joined = "\n".join(mrkdwn_texts(payload))
    assert "&lt;!channel&gt; deploy broke &amp; &lt;https://evil.example/phish|click here to fix&gt;" in joined
    assert "&lt;!here&gt;" in joined


def test_long_untrusted_text_is_cut_to_slacks_limits_with_a_mark():
    payload = message_for("hostile_text_failed").to_dict()
    reason = next(b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"
                  and b.get("text", {}).get("text", "").startswith("*Container reason*"))
    assert len(reason) == 3000 and reason.endswith("…")
    header = payload["blocks"][0]["text"]["text"]
    job_name = load_event("hostile_text_failed")["detail"]["jobName"]
    assert len(job_name) == 128 and header.endswith(job_name)  # Batch's longest name still fits
    assert len(payload["text"]) <= 500


def test_environment_values_and_command_line_never_shown():
    event = load_event("ec2_failed")
    assert "fake-env-secret-do-not-show" in json.dumps(event)  # the fixture really carries them
    for name in JOB_EVENTS:
        payload = json.dumps(message_for(name).to_dict())
        assert "do-not-show" not in payload
        assert "DB_PASSWORD" not in payload and "--api-key" not in payload


def test_missing_fields_still_give_a_useful_message():
    payload = message_for("detail_missing_fields").to_dict()
    assert payload["text"] == ":x: Job failed: 7e8b3173-dae6-496c-955a-e7372bf229a9"
    assert "*Job queue*\n_unknown_" in [f["text"] for f in payload["blocks"][1]["fields"]]


def test_a_queue_blocked_event_is_not_described_as_a_job_state_change():
    with pytest.raises(NotAJobStateChange):
        JobStateChange.from_event(load_event("job_queue_blocked"))


@pytest.mark.parametrize("seconds, text", [
    (0.4, "under 1s"), (37, "37s"), (754, "12m 34s"), (3600, "1h"), (3612, "1h 12s"),
    (90061, "1d 1h 1m"), (None, None),
])
def test_format_duration(seconds, text):
    assert format_duration(None if seconds is None else timedelta(seconds=seconds)) == text


def test_queue_blocked_message_warns_with_queue_job_and_reason():
    job = JobStateChange.from_event(load_event("job_queue_blocked"), "Batch Job Queue Blocked")
    payload = build_queue_blocked_message(job).to_dict()
    assert payload["blocks"][0]["text"]["text"] == ":warning: Job queue blocked: render-queue"
    assert payload["text"].startswith(":warning: Job queue render-queue is blocked by gpu-render-preview: "
                                      "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
    assert block_kit_errors(payload["blocks"]) == []


def test_mentions_go_under_the_header_and_into_the_notification():
    message = with_mentions(message_for("ec2_failed"), ["S0DATAENG01", "U0LEAD0001", "here"])
    payload = message.to_dict()
    assert payload["blocks"][1] == {"type": "section", "text": {
        "type": "mrkdwn", "text": "cc <!subteam^S0DATAENG01> <@U0LEAD0001> <!here>"}}
    assert payload["text"].startswith("<!subteam^S0DATAENG01> <@U0LEAD0001> <!here> :x: Job failed")
    assert with_mentions(message_for("ec2_failed"), []) == message_for("ec2_failed")


# -- no event can stop its own message --------------------------------------------------
def message_with(name="ec2_failed", container=(), **detail):
    """The message for a fixture with ``detail`` keys (and its container's keys) replaced."""
    event = load_event(name)
    event["detail"].update(detail)
    if container is None:  # a multi-container job has its containers under ecsProperties only
        del event["detail"]["container"], event["detail"]["attempts"]
    elif container:
        event["detail"]["container"].update(container)
        for attempt in event["detail"].get("attempts", []):
            attempt.get("container", {}).update(container)
    return build_job_state_message(JobStateChange.from_event(event))


def buttons_of(payload):
    return {e["text"]["text"]: e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]}


def context_notes(payload):
    return [e["text"] for e in payload["blocks"][-1]["elements"]]


def test_a_log_link_too_long_for_slack_is_left_out_and_said_so():
    # 512 non-ASCII characters, encoded twice: a URL of over 6,000 characters (Slack takes 3,000).
    message = message_with(container={"logStreamName": "é/" * 256})
    payload = message.to_dict()  # slack-sdk validates here: it raised before
    assert block_kit_errors(payload["blocks"]) == []
    assert list(buttons_of(payload)) == ["Open in AWS Batch"]
    assert "View logs link left out: too long for Slack." in context_notes(payload)


def test_a_huge_job_id_leaves_out_the_batch_link_but_not_the_rest():
    payload = message_with(jobId="j" * 4000).to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    assert "Open in AWS Batch" not in buttons_of(payload) and "View logs" in buttons_of(payload)
    ids, note = context_notes(payload)
    # The id is cut on its own, so the region and account still show.
    assert ids.endswith("…` · us-east-1 · account 123456789012 · 2024-05-14T02:14:15Z") and len(ids) < 1100
    assert note == "Open in AWS Batch link left out: too long for Slack."


def test_the_missing_log_link_reason_is_bounded_like_any_job_text():
    payload = message_with("splunk_log_driver_failed", container={"logConfiguration": {"logDriver": "<d>" * 1000}}
                           ).to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    [_, reason] = context_notes(payload)
    assert reason.startswith("Logs go to the &lt;d&gt;") and len(reason) <= 2000 and reason.endswith("…")


def test_bidi_controls_in_job_text_never_reach_slack():
    payload = message_with(jobName="invoice\u202efdp.exe", statusReason="\u2067<!channel>\u2069 done\u200f").to_dict()
    rendered = json.dumps(payload, ensure_ascii=False)
    assert not re.search("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]", rendered)
    assert payload["blocks"][0]["text"]["text"].endswith("invoicefdp.exe")
    assert "*Status reason*\n&lt;!channel&gt; done" in rendered.replace("\\n", "\n")


def test_a_field_of_only_invisible_characters_shows_as_unknown():
    fields = [f.text for f in message_with(jobQueue="\u202e\u200b").blocks[1].fields]
    assert "*Job queue*\n_unknown_" in fields


def test_many_containers_get_at_most_slacks_25_buttons_each_with_its_own_action_id():
    containers = [{"name": f"c{i}-" + "\u202ex" * 100, "essential": i == 0, "exitCode": i,
                   "logStreamName": f"sim/c{i}/ab12"} for i in range(30)]
    payload = message_with(container=None, ecsProperties={"taskProperties": [{"containers": containers}]}).to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    [actions] = [b for b in payload["blocks"] if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions["elements"]]
    assert len(ids) == 25 and len(set(ids)) == 25 and ids[-1] == "open_in_batch"
    assert all(len(e["text"]["text"]) <= 75 and "\u202e" not in e["text"]["text"] for e in actions["elements"])
    assert "6 more log links left out: Slack shows at most 25 buttons." in " ".join(context_notes(payload))


def test_a_block_slack_sdk_refuses_is_left_out_of_the_payload_not_raised(caplog):
    good = message_for("ec2_failed")
    bad = ActionsBlock(elements=[ButtonElement(text="x", action_id="x", url="https://example.com/" + "x" * 3000)])
    payload = SlackMessage(text=good.text, blocks=(*good.blocks, bad)).to_dict()
    assert payload["blocks"] == good.to_dict()["blocks"]
    assert "left out a block Slack would refuse" in caplog.text


def test_mentions_that_do_not_fit_one_section_are_left_out_whole():
    message = with_mentions(message_for("ec2_failed"), [f"U{i:09d}" for i in range(500)])
    cc = message.to_dict()["blocks"][1]["text"]["text"]
    assert len(cc) <= 3000 and cc.endswith(">") and cc.startswith("cc <@U000000000> <@U000000001>")


# -- named parts, one fixed order ---------------------------------------------------------------
def kinds(message):
    return [block.type for block in message.blocks]


def test_the_parts_render_in_one_fixed_order_whatever_order_they_are_given_in():
    everything = MessageParts(
        text="t", header="h", mentions=("here",), facts=(("Status", "FAILED"),), reasons=(("Why", "x"),),
        diagnosis="hint", attempts=("history",), tail=ContextBlock(elements=[MarkdownTextObject(text="tail")]),
        actions=(ButtonElement(text="b", action_id="b", url="https://example.com"),), notes=("note",),
        context=("ids",))
    texts = [json.dumps(block) for block in everything.render().to_dict()["blocks"]]
    order = ["header", "cc <!here>", "*Status*", "*Why*", "hint", "history", "tail", "actions", "note", "ids"]
    assert [next(i for i, t in enumerate(texts) if word in t) for word in order] == list(range(10))


def test_a_fork_changes_one_part_by_name_and_the_rest_stays():
    job = JobStateChange.from_event(load_event("ec2_failed"))
    standard = job_state_parts(job)
    louder = replace(standard, header=":rotating_light: " + standard.header).render()
    assert louder.blocks[0].text.text.startswith(":rotating_light: :x: Job failed")
    assert louder.blocks[1:] == build_job_state_message(job).blocks[1:]


def test_mentions_set_the_mentions_part_of_a_message_made_of_parts():
    message = with_mentions(message_for("ec2_failed"), ["here"])
    assert message.parts.mentions == ("here",)
    assert kinds(message) == ["header", "section", "section", "section", "actions", "context"]
    # Set, not added to: mentioning twice mentions once.
    assert with_mentions(message, ["here"]).to_dict() == message.to_dict()


def test_mentions_of_a_message_given_as_blocks_go_under_its_header():
    built = message_for("ec2_failed")
    plain = SlackMessage(text=built.text, blocks=built.blocks)  # no parts: how the sweep builds its report
    assert with_mentions(plain, ["here"]).to_dict() == with_mentions(built, ["here"]).to_dict()


def test_empty_parts_give_no_empty_blocks():
    assert kinds(MessageParts(text="t", header="h").render()) == ["header"]


def test_more_facts_than_one_section_holds_continue_in_the_next():
    facts = tuple((f"Fact {i}", str(i)) for i in range(23))
    payload = MessageParts(text="t", header="h", facts=facts).render().to_dict()
    assert block_kit_errors(payload["blocks"]) == []
    assert [len(b["fields"]) for b in payload["blocks"][1:]] == [10, 10, 3]
