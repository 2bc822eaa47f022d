"""The replay tool (the README's demo): events in, the messages a person would read out."""

import io
import json

from tests.conftest import EVENTS_DIR, load_event
from tools import replay


def test_demo_replays_every_fixture_through_the_matching_handlers(monkeypatch):
    out = io.StringIO()
    from tools.slack_standin import SlackStandIn
    with SlackStandIn(bot_token=replay.DEMO_TOKEN, channels=(replay.DEMO_CHANNEL,)) as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", replay.DEMO_TOKEN)
        monkeypatch.setenv("SLACK_CHANNEL", replay.DEMO_CHANNEL)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        failures = replay.replay([str(EVENTS_DIR)], out=out, slack=slack)
    text = out.getvalue()
    assert failures == 0
    # array children, node jobs and plain RUNNING jobs reach no handler
    assert text.count("no handler's pattern matches") == 5
    assert "❌ Job failed: nightly-etl-load-2024-05-13" in text
    assert "[View logs] https://us-east-1.console.aws.amazon.com/cloudwatch/home" in text
    assert "Block Kit Builder: https://app.slack.com/block-kit-builder#%7B%22blocks%22" in text
    assert "&lt;" not in text.split("Block Kit JSON")[0]  # the person's view shows text unescaped
    assert len(slack.messages) == text.count("this message")


def test_dead_letter_queue_output_is_unwrapped(tmp_path):
    event = load_event("ec2_failed")
    record = {"version": "1.0", "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
              "requestPayload": event, "responsePayload": {"errorMessage": "Slack answered 503"}}
    dump = tmp_path / "dlq.json"
    dump.write_text(json.dumps({"Messages": [{"MessageId": "m1", "Body": json.dumps(record)}]}))
    assert list(replay.load_events([str(dump)])) == [("dlq.json", event)]


def test_render_turns_blocks_into_lines():
    message = {"blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": ":x: Job failed: a"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Status*\nFAILED"},
                                       {"type": "mrkdwn", "text": "*Exit code*\n1"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Why*\n&lt;!channel&gt; &amp; co"}},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "View logs"},
                                          "url": "https://example.invalid/x"}]},
    ]}
    assert replay.render(message).splitlines() == [
        "❌ Job failed: a", "===============", "  Status: FAILED                          Exit code: 1",
        "Why", "<!channel> & co", "  [View logs] https://example.invalid/x"]
