"""The replay tool (the README's demo): events in, the messages a person would read out."""

import io
import json

import pytest

from tests.conftest import EVENTS_DIR, load_event
from tools import replay
from tools.slack_standin import SlackStandIn


def run_replay(monkeypatch, paths, **options):
    """What the demo prints for ``paths``, against the stand-in; (text, failures, messages)."""
    out = io.StringIO()
    with SlackStandIn(bot_token=replay.DEMO_TOKEN, channels=(replay.DEMO_CHANNEL,)) as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", replay.DEMO_TOKEN)
        monkeypatch.setenv("SLACK_CHANNEL", replay.DEMO_CHANNEL)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        failures = replay.replay([str(p) for p in paths], out=out, slack=slack, **options)
    return out.getvalue(), failures, slack.messages


def test_demo_replays_every_fixture_through_the_matching_handlers(monkeypatch):
    text, failures, messages = run_replay(monkeypatch, [EVENTS_DIR])
    assert failures == 0
    # array children, node jobs and plain RUNNING jobs reach no handler
    assert text.count("no handler's pattern matches") == 5
    # each message under a rule, naming its fixture and the handler that posted it
    assert "ec2_failed.json · Batch Job State Change · FAILED\n→ on_job_failed posted to #batch-alerts:" in text
    assert text.count(replay.EVENT_RULE) == len(list(replay.load_events([str(EVENTS_DIR)])))
    assert len(messages) == text.count(" posted to #batch-alerts:")
    assert "❌ Job failed: nightly-etl-load-2024-05-13" in text
    assert "[View logs] https://us-east-1.console.aws.amazon.com/cloudwatch/home" in text
    assert "<!channel> deploy broke &" in text  # the person's view shows text unescaped
    # JSON and Builder links only when asked for
    assert "Block Kit JSON" not in text and "block-kit-builder" not in text


def test_failed_sample_events_show_their_log_tail_with_the_secrets_masked(monkeypatch):
    text, failures, messages = run_replay(monkeypatch, [EVENTS_DIR / "ec2_failed.json",
                                                         EVENTS_DIR / "diag_timeout.json"])
    assert failures == 0 and len(messages) == 2
    assert "📄 Last 9 log lines (newest last)" in text
    assert "    │ Traceback (most recent call last):" in text
    assert "connecting to postgresql://etl:[masked]@warehouse.internal:5432/dw" in text
    assert "slack notifier configured with token xoxb-[masked]" in text
    for secret in (replay._DSN.split(":")[2].split("@")[0], replay._SLACK):
        assert secret not in text and secret not in json.dumps(messages)


def test_events_from_elsewhere_replay_without_a_log_tail(monkeypatch, tmp_path):
    # A dead-letter queue's event has no stream in the emulator: no tail, and no note claiming
    # the stream is missing. The sample event after it gets its tail: the switch works both ways.
    record = {"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": load_event("ec2_failed")}
    dump = tmp_path / "dlq.json"
    dump.write_text(json.dumps({"Messages": [{"MessageId": "m1", "Body": json.dumps(record)}]}))
    text, failures, messages = run_replay(monkeypatch, [dump, EVENTS_DIR / "ec2_failed.json", dump])
    assert failures == 0 and len(messages) == 3
    tails = ["log lines" in json.dumps(m["blocks"]) for m in messages]
    assert tails == [False, True, False]
    assert "log tail unavailable" not in text


def test_json_flag_adds_block_kit_json_and_builder_link(capsys):
    assert replay.main(["--json", str(EVENTS_DIR / "ec2_succeeded.json")]) == 0
    text = capsys.readouterr().out
    assert "→ on_job_succeeded posted to #batch-alerts:" in text
    assert "  Block Kit JSON: {\"text\":" in text
    assert "  Block Kit Builder: https://app.slack.com/block-kit-builder#%7B%22blocks%22" in text
    assert "1 message(s) posted, 0 invocation(s) failed." in text


def test_dead_letter_queue_output_is_unwrapped(tmp_path):
    event = load_event("ec2_failed")
    record = {"version": "1.0", "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
              "requestPayload": event, "responsePayload": {"errorMessage": "Slack answered 503"}}
    dump = tmp_path / "dlq.json"
    dump.write_text(json.dumps({"Messages": [{"MessageId": "m1", "Body": json.dumps(record)}]}))
    assert list(replay.load_events([str(dump)])) == [("dlq.json", event)]


def dead_letter(tmp_path, event, function):
    record = {"requestContext": {"condition": "RetriesExhausted",
                                 "functionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{function}:$LATEST"},
              "requestPayload": event, "responsePayload": {"errorMessage": "Slack answered 503"}}
    dump = tmp_path / "dlq.json"
    dump.write_text(json.dumps({"Messages": [{"MessageId": "m1", "Body": json.dumps(record)}]}))
    return dump


def test_a_dead_letter_record_reruns_only_the_handler_that_failed(monkeypatch, tmp_path):
    # Every handler whose pattern selects the event ran once; only the one that failed runs again
    # (a fork's second FAILED handler has posted its message already).
    dump = dead_letter(tmp_path, load_event("ec2_failed"), "batch-notify-prod-on_job_failed")
    text, failures, messages = run_replay(monkeypatch, [dump])
    assert failures == 0 and len(messages) == 1
    assert "the dead-letter record names on_job_failed: only it runs again" in text


def test_a_dead_lettered_scheduled_run_is_run_again(monkeypatch, tmp_path):
    # A scheduled event matches no pattern: without the record's function it would be skipped.
    scheduled = {"version": "0", "id": "5b1d4b3e-0c61-4a1e-9c1d-2f6a1c0b9d11", "detail-type": "Scheduled Event",
                 "source": "aws.events", "account": "123456789012", "time": "2024-05-13T09:00:00Z",
                 "region": "us-east-1", "resources": [], "detail": {}}
    monkeypatch.setenv("STUCK_AFTER_MINUTES", "0")  # the sweep runs, and is off: no AWS call
    dump = dead_letter(tmp_path, scheduled, "batch-notify-dev-on_stuck_job_sweep")
    text, failures, _ = run_replay(monkeypatch, [dump])
    assert failures == 0 and "only it runs again" in text and "no handler's pattern matches" not in text


def test_a_forks_own_fixture_gets_no_made_up_log_tail(monkeypatch, tmp_path):
    # Only the fixtures whose lines the demo writes show a tail; any other FAILED event, even in
    # tests/events, is shown without one rather than with lines its stream never held.
    text, failures, messages = run_replay(monkeypatch, [EVENTS_DIR / "china_failed.json"])
    assert failures == 0 and len(messages) == 1
    assert "log lines" not in json.dumps(messages[0]["blocks"]) and "log tail unavailable" not in text


def field(label, value):
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}


def test_render_turns_blocks_into_lines():
    message = {"blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": ":x: Job failed: a"}},
        {"type": "section", "fields": [field("Status", "FAILED"), field("Exit code", "1"),
                                       field("Job queue", "_unknown_")]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Why*\n&lt;!channel&gt; &amp; co <@U0ONCALL1>"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": ":page_facing_up: *Last 2 log lines*\n```\n"
                                                                   "a *b* &lt;c&gt;\nd\n```"}},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "View logs"},
                                          "url": "https://example.invalid/x"}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "see <https://example.invalid/y|the job>"}]},
    ]}
    assert replay.render(message).splitlines() == [
        "❌ Job failed: a", "===============",
        "  Status: FAILED        Exit code: 1",
        "  Job queue: unknown",
        "  Why", "  <!channel> & co @U0ONCALL1",
        "  📄 Last 2 log lines", "    │ a *b* <c>", "    │ d",
        "  [View logs] https://example.invalid/x",
        "  see the job (https://example.invalid/y)"]


@pytest.mark.parametrize("long_side", ["left", "right"])
def test_fields_too_long_for_two_columns_go_one_per_line(long_side):
    long = "x" * 80
    fields = [field("Job definition", long if long_side == "left" else "d:1"),
              field("Job queue", long if long_side == "right" else "q")]
    lines = replay.render({"blocks": [{"type": "section", "fields": fields}]}).splitlines()
    assert lines == [f"  Job definition: {fields[0]['text'].split(chr(10))[1]}",
                     f"  Job queue: {fields[1]['text'].split(chr(10))[1]}"]


def test_an_empty_dump_replays_nothing_and_a_broken_one_says_which_file(monkeypatch, tmp_path):
    empty, broken = tmp_path / "empty.json", tmp_path / "broken.json"
    empty.write_text("")  # what `aws sqs receive-message` prints for an empty queue
    broken.write_text("{not json")
    _, failures, messages = run_replay(monkeypatch, [empty])
    assert failures == 0 and messages == []
    with pytest.raises(SystemExit, match=r"broken\.json: not JSON"):
        run_replay(monkeypatch, [broken])
