"""FAILED messages with diagnosis, attempt history and log tail: order, safety, limits, handler.

The exact payload the FAILED handler posts per fixture is tests/test_snapshots.py's.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws
from slack_sdk.models.blocks import ActionsBlock, ContextBlock

from app import app
from chalicelib.composing.failure_message import LOG_LINE_LIMIT, build_failure_message, describe_failure
from chalicelib.composing.messages import build_job_state_message
from chalicelib.core import clients, config
from chalicelib.reading.event import JOB_STATE_CHANGE, JobStateChange
from chalicelib.reading.logtail import MAX_LINE_SCAN, LogTail
from tests.conftest import NoCalls, event_names, load_event
from tools.slack_standin import block_kit_errors

ROOT = Path(__file__).resolve().parent.parent
# The container jobs' state changes (service jobs and queue-blocked warnings have their own tests).
JOB_EVENTS = [n for n in event_names() if load_event(n)["detail-type"] == JOB_STATE_CHANGE]

# What retried_failed's last attempt might have printed (already masked, as fetch_log_tail returns it).
RETRIED_TAIL = LogTail(lines=(
    "2025-03-03 09:17:41,002 INFO  gatk HaplotypeCaller --input NA12878.bam --output NA12878.g.vcf.gz",
    "2025-03-03 09:17:44,518 INFO  ProgressMeter - chr1:1000000  0.1 min",
    "2025-03-03 09:17:49,930 WARN  reference index is older than the FASTA: <ref.fa.fai> & <ref.fa>",
    "2025-03-03 09:17:50,004 INFO  uploading with AKIA[masked] to s3://genomics-results/NA12878/",
    "2025-03-03 09:17:50,117 ERROR ```\n<!channel> reference mismatch ``` on contig chrM",
    "Traceback (most recent call last):",
    '  File "/opt/pipeline/call.py", line 212, in <module>',
    "ValueError: contig chrM not in reference",
))


def job(name):
    return JobStateChange.from_event(load_event(name))


def payload(name, tail=None):
    return build_failure_message(job(name), tail).to_dict()


def block_texts(blocks):
    return [json.dumps(block, ensure_ascii=False) for block in blocks]


def tail_section(payload_):
    [text] = [b["text"]["text"] for b in payload_["blocks"] if b["type"] == "section"
              and b.get("text", {}).get("text", "").startswith(":page_facing_up:")]
    return text


def test_the_added_blocks_sit_between_the_reasons_and_the_buttons():
    message = build_failure_message(job("diag_timeout"), RETRIED_TAIL)
    standard = build_job_state_message(job("diag_timeout"))
    kinds = [b.type for b in message.blocks]
    assert isinstance(message.blocks[-2], ActionsBlock) and isinstance(message.blocks[-1], ContextBlock)
    assert message.blocks[-1].to_dict() == standard.blocks[-1].to_dict()
    assert message.text == standard.text
    texts = block_texts(message.to_dict()["blocks"])
    reason = next(i for i, t in enumerate(texts) if "*Status reason*" in t)
    hint = next(i for i, t in enumerate(texts) if ":bulb: *Attempt timed out*" in t)
    history = next(i for i, t in enumerate(texts) if "*Attempt history*" in t)
    tail = next(i for i, t in enumerate(texts) if ":page_facing_up: *Last 8 log lines*" in t)
    assert reason < hint < history < tail < kinds.index("actions")


def test_nothing_to_add_gives_the_standard_message():
    # ec2_failed: unknown cause (no hint), one attempt, tail not fetched.
    assert payload("ec2_failed") == build_job_state_message(job("ec2_failed")).to_dict()
    assert payload("ec2_failed", LogTail()) == build_job_state_message(job("ec2_failed")).to_dict()


def test_the_tail_note_is_one_context_line():
    note = "log tail unavailable: access denied (logs:GetLogEvents)"
    blocks = payload("ec2_failed", LogTail(note=note))["blocks"]
    assert blocks[-3] == {"type": "context", "elements": [{"type": "mrkdwn", "text": f":page_facing_up: {note}"}]}
    assert blocks[-2]["type"] == "actions"


def test_the_tail_is_escaped_and_cannot_close_its_code_block():
    text = tail_section(payload("retried_failed", RETRIED_TAIL))
    assert text.count("```") == 2 and text.startswith(":page_facing_up: *Last 8 log lines* (newest last)\n```\n")
    assert text.endswith("ValueError: contig chrM not in reference\n```")
    assert "&lt;!channel&gt;" in text and "&lt;ref.fa.fai&gt; &amp; &lt;ref.fa&gt;" in text
    assert "<" not in text and ">" not in text


def test_long_lines_are_cut_and_the_oldest_lines_go_first_to_fit():
    lines = tuple(f"{i:03d} " + "é&<" * 2000 for i in range(100))
    text = tail_section(payload("ec2_failed", LogTail(lines=lines)))
    body = text.split("```\n", 1)[1].rsplit("\n```", 1)[0].split("\n")
    assert len(text) <= 3000
    assert all(len(line) <= LOG_LINE_LIMIT and line.endswith("…") for line in body)
    assert body[-1].startswith("099 ")  # newest kept, last
    assert text.startswith(f":page_facing_up: *Last {len(body)} of 100 log lines* "
                           "(newest last; older ones cut to fit Slack)")


def test_every_shown_character_was_masked():
    # Lines are cut for masking at MAX_LINE_SCAN; what is shown must be well inside that.
    assert LOG_LINE_LIMIT < MAX_LINE_SCAN


def test_attempt_history_lists_each_attempt_with_its_own_log():
    [history] = [t for t in block_texts(payload("retried_failed")["blocks"]) if "*Attempt history*" in t]
    text = json.loads(history)["text"]["text"]
    lines = text.split("\n")[1:]
    assert [line.split(" · ")[:2] for line in lines] == [["1. exit 137", "30m 4s"], ["2. exit 137", "29m 59s"],
                                                         ["3. exit 1", "6m 42s"]]
    assert "OutOfMemoryError: Container killed due to memory usage" in lines[0]
    assert "Essential container in task exited" in lines[2]
    streams = ["86d698f5daf613bd2af99b47354bdc64", "734f10cb56de471aaa3195495d2ecb84",
               "4657f2727463bdbee378d10b64d6e5bf"]
    for line, stream in zip(lines, streams, strict=True):
        assert re.search(r"<https://us-east-1\.console\.aws\.amazon\.com/cloudwatch/home\?region=us-east-1#logsV2:"
                         r"log-groups/log-group/\$252Faws\$252Fbatch\$252Fjob/log-events/"
                         rf"variant-call\$252Fdefault\$252F{stream}\|log>$",
                         line), line


def test_attempt_links_use_the_jobs_log_group_and_region():
    event = load_event("custom_log_group_failed")
    first = json.loads(json.dumps(event["detail"]["attempts"][0]))
    first["container"]["logStreamName"] = "etl/default/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    event["detail"]["attempts"].insert(0, first)
    text = json.dumps(build_failure_message(JobStateChange.from_event(event), None).to_dict())
    assert "eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups/log-group/" \
           "$252Fbatch$252Fetl$2523nightly/log-events/etl$252Fdefault$252Faaaaaaaa" in text


def test_one_attempt_has_no_history_and_eks_attempts_have_no_links():
    assert not any("Attempt history" in t for t in block_texts(payload("ec2_failed", RETRIED_TAIL)["blocks"]))
    event = load_event("eks_failed")
    event["detail"]["eksAttempts"].append(event["detail"]["eksAttempts"][0])
    text = json.dumps(build_failure_message(JobStateChange.from_event(event), None).to_dict())
    assert "Attempt history" in text and "|log>" not in text


def test_ten_attempts_with_huge_names_stay_within_limits():
    event = load_event("retried_failed")
    attempts = event["detail"]["attempts"]
    while len(attempts) < 10:  # Batch's most
        attempts.append(json.loads(json.dumps(attempts[-1])))
    for i, attempt in enumerate(attempts):
        attempt["container"]["logStreamName"] = f"variant-call/default/{i}" + "%/#" * 40
        attempt["container"]["reason"] = "<!here> " + "x" * 5000
    message = build_failure_message(JobStateChange.from_event(event), RETRIED_TAIL).to_dict()
    assert block_kit_errors(message["blocks"]) == []
    history = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "exit 1" in json.dumps(b)]
    assert len(history) >= 2 and history[0].startswith("*Attempt history*\n1. exit 137")
    assert "\n10. exit 1 · " in "\n" + "\n".join(history)


HOSTILE_TAIL = LogTail(lines=tuple(("`" * 7 + "<!channel>&" + "🔥" * 400 + "\u200d") for _ in range(100)))


@pytest.mark.parametrize("name", JOB_EVENTS)
@pytest.mark.parametrize("tail", [None, RETRIED_TAIL, HOSTILE_TAIL, LogTail(note="x" * 5000)],
                         ids=["none", "tail", "hostile", "note"])
def test_every_fixture_fits_slacks_limits(name, tail):
    message = payload(name, tail)
    assert message["text"].strip()
    assert block_kit_errors(message["blocks"]) == []
    assert message["blocks"][-1]["type"] == "context"


def test_describe_failure_respects_the_switch(monkeypatch):
    monkeypatch.setenv("LOG_TAIL_LINES", "0")
    clients.use_client("logs", NoCalls("no call expected"))
    assert describe_failure(job("timeout_failed")).to_dict() == payload("timeout_failed")


def test_a_bad_setting_still_notifies_and_says_what_to_fix(monkeypatch):
    monkeypatch.setenv("LOG_TAIL_LINES", "lots")
    blocks = describe_failure(job("ec2_failed")).to_dict()["blocks"]
    assert blocks[-3]["elements"][0]["text"] == (
        ":page_facing_up: log tail unavailable: LOG_TAIL_LINES='lots': expected a whole number of lines "
        "from 0 (the tail is off) to 100")


def test_describe_failure_returns_at_the_deadline_and_says_why(monkeypatch):
    class Hung:
        def get_log_events(self, **kwargs):
            time.sleep(5)
    monkeypatch.setenv("LOG_TAIL_TIMEOUT_SECONDS", "1")
    clients.use_client("logs", Hung())
    started = time.monotonic()
    message = describe_failure(job("ec2_failed")).to_dict()
    assert time.monotonic() - started < 1 + 1.0  # slack for a loaded machine; the call hangs 5 s
    assert ":page_facing_up: log tail unavailable: CloudWatch Logs did not answer within 1s" in json.dumps(message)


# -- through the handler -------------------------------------------------------------------------
def _project_with_local_tail(tmp_path, lines):
    """A copy of the project config whose ``local`` stage has the tail on (it ships off)."""
    (tmp_path / ".chalice").mkdir()
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["local"]["environment_variables"]["LOG_TAIL_LINES"] = str(lines)
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    for policy in (ROOT / ".chalice").glob("policy-*.json"):
        shutil.copy(policy, tmp_path / ".chalice" / policy.name)
    return str(tmp_path)


@mock_aws
def test_the_failed_handler_posts_the_tail(slack, monkeypatch, tmp_path):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    config.reset()
    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName="/aws/batch/job")
    stream = "nightly-etl/default/abeb2b9a53a1dc5d73f28f5ae029cd0c"
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName="/aws/batch/job", logStreamName=stream, logEvents=[
        {"timestamp": now - 2, "message": "loading 2024-05-13 into warehouse (password=hunter2)"},
        {"timestamp": now - 1, "message": "psycopg2.OperationalError: could not connect to server: Connection refused"},
    ])
    with Client(app, stage_name="local", project_dir=_project_with_local_tail(tmp_path, 5)) as client:
        client.lambda_.invoke("on_job_failed", load_event("ec2_failed"))
    [posted] = slack.messages
    text = tail_section(posted)
    assert text.startswith(":page_facing_up: *Last 2 log lines* (newest last)")
    assert "loading 2024-05-13 into warehouse (password=[masked])" in text and "hunter2" not in json.dumps(posted)
    assert text.endswith("psycopg2.OperationalError: could not connect to server: Connection refused\n```")
    assert block_kit_errors(posted["blocks"]) == []
    config.reset()


def test_the_shipped_local_stage_keeps_the_tail_off(slack, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    clients.use_client("logs", NoCalls("the local stage must not call AWS"))
    with Client(app, stage_name="local") as client:
        client.lambda_.invoke("on_job_failed", load_event("diag_out_of_memory"))
    [posted] = slack.messages
    text = json.dumps(posted)
    assert ":bulb: *Out of memory*" in text and ":page_facing_up:" not in text


def test_an_attempt_with_an_exit_code_and_a_stream_is_never_said_not_to_have_started():
    event = load_event("retried_failed")
    del event["detail"]["attempts"][0]["startedAt"]
    text = json.dumps(build_failure_message(JobStateChange.from_event(event), None).to_dict())
    assert "1. exit 137 \\u00b7 duration unknown" in text and "did not start" not in text  # json.dumps escapes ·
