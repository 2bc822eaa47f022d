"""The replay tool (the README's demo): events in, the messages a person would read out."""

import io
import json
import re

import pytest

from tests.conftest import EVENTS_DIR, load_event
from tools import replay
from tools.slack_standin import SlackStandIn


def run_replay(monkeypatch, paths, **options):
    """What the demo prints for ``paths``, against the stand-in; (text, failures, messages)."""
    text, failures, slack = replay_against_standin(monkeypatch, paths, **options)
    return text, failures, slack.messages


def replay_against_standin(monkeypatch, paths, **options):
    """(text, failures, the stand-in after the run) for ``paths``, in conversation mode (bot token)."""
    out = io.StringIO()
    with SlackStandIn(bot_token=replay.DEMO_TOKEN, channels=(replay.DEMO_CHANNEL,),
                      channel_ids={replay.DEMO_CHANNEL: replay.DEMO_CHANNEL_ID}) as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", replay.DEMO_TOKEN)
        monkeypatch.setenv("SLACK_CHANNEL", replay.DEMO_CHANNEL)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        failures = replay.replay([str(p) for p in paths], out=out, slack=slack, **options)
    return out.getvalue(), failures, slack


_DEMO: dict[str, tuple[str, int, SlackStandIn]] = {}


@pytest.fixture
def demo(monkeypatch):
    """`make demo`'s run (the sample events, then the three scenes): run once, read by several tests.
    (Function-scoped, so its first run has conftest's offline environment; the result is kept.)"""
    if not _DEMO:
        _DEMO["run"] = replay_against_standin(monkeypatch, [EVENTS_DIR], scenes=True)
    return _DEMO["run"]


def top_level(slack):
    return [shown for shown in slack.channel_view(replay.DEMO_CHANNEL) if not shown.broadcast]


def words(shown):
    return json.dumps([shown.text, shown.blocks], ensure_ascii=False)


def sample_part(text):
    """The output up to the channel view: the sample events, one heading each."""
    return text.split(f"\n{replay.EVENT_RULE}\n{replay.DEMO_CHANNEL} as it ends")[0]


def test_demo_replays_every_fixture_through_the_matching_handlers(demo):
    text, failures, slack = demo
    assert failures == 0
    samples = sample_part(text)
    # array children, node jobs and plain RUNNING jobs reach no handler
    assert samples.count("no handler's pattern matches") == 5
    # each event under a rule naming its fixture, then what each handler did to the channel
    assert "ec2_failed.json · Batch Job State Change · FAILED\n→ on_job_failed: posted #" in samples
    labels = [label for label, _ in replay.load_events([str(EVENTS_DIR)])]
    assert samples.count(replay.EVENT_RULE) == len(labels)
    assert all(f"\n{label} · " in samples for label in labels)
    # every sample event a handler took posted a message of its own: none posted nothing, none failed
    handled = samples.count("\n→ on_")
    assert "posted nothing" not in samples and " raised " not in samples
    assert handled == len([shown for shown in top_level(slack) if not shown_in_scene(shown)]) > 30
    # the channel as it ends, as a person reads it
    channel = text.split(f"{replay.DEMO_CHANNEL} as it ends")[1].split("Scene:")[0]
    assert "❌ Job failed: nightly-etl-load-2024-05-13" in channel
    assert "[View logs] https://us-east-1.console.aws.amazon.com/cloudwatch/home" in channel
    assert "<!channel> deploy broke &" in channel  # the person's view shows text unescaped
    # JSON and Builder links only when asked for
    assert "Block Kit JSON" not in text and "block-kit-builder" not in text


def shown_in_scene(shown):
    return any(marker in words(shown) for marker in ("critical-billing-close-2025-07-15", "ingest-partition-",
                                                     replay.CLICK_JOB_NAME))


def test_demo_shows_a_jobs_message_updated_in_place(demo):
    text, _, slack = demo
    assert "Scene: A job's message, updated in place" in text
    [message] = [shown for shown in top_level(slack) if "critical-billing-close-2025-07-15" in words(shown)]
    assert message.edited and "Job failed" in words(message) and "Critical job started" not in words(message)
    assert [update["ts"] for update in slack.updates].count(message.ts) == 1
    change, tail = message.replies
    assert change.broadcast and "RUNNING → FAILED after 2h 3m" in change.text
    assert not tail.broadcast and "Last 4 log lines" in words(tail)
    scene = text.split("Scene: A job's message, updated in place")[1].split("Scene:")[0]
    posted = re.search(r"→ on_critical_job_running: posted #(\d+)\n", scene)
    assert posted, scene
    n = posted.group(1)  # the message's number in the channel: after the sample events' messages
    assert f"→ on_job_failed: updated #{n} in place; 2 replies in #{n}'s thread (1 also sent to the channel)" in scene
    assert f"#{n} · scene 1: RUNNING · on_critical_job_running · (edited)" in scene
    assert "↳ thread reply 1 of 2, also sent to the channel:\n        ❌ RUNNING → FAILED after 2h 3m · exit 1" in scene
    assert f"↪ also in the channel, #{n}'s thread reply: ❌ RUNNING → FAILED after 2h 3m" in scene


def test_demo_shows_a_failure_storm_collapsed_into_one_group_message(demo):
    text, _, slack = demo
    jobs = [event["detail"]["jobId"] for event in replay.storm_events()]
    storm = [shown for shown in top_level(slack) if "ingest-partition-" in words(shown)]
    groups = [shown for shown in storm if "jobs failed in" in shown.text]
    assert len(groups) == 1 and len(storm) == 3 + 1  # GROUP_AFTER of their own, and the group message
    [group] = groups
    assert f"{len(jobs)} jobs failed in {replay.STORM_QUEUE}: Image could not be pulled" in group.text
    # every job exactly once: its own message, or a line in the group's thread
    places = [shown for shown in storm if shown is not group] + list(group.replies)
    assert {job: sum(job in words(place) for place in places) for job in jobs} == dict.fromkeys(jobs, 1)
    assert sum(words(place).count(f"`{job}`") for place in group.replies for job in jobs) == len(jobs) - 3
    scene = text.split("Scene: A failure storm, collapsed")[1]
    assert f"→ {len(jobs)} invocations in " in scene and ", 0 failed" in scene
    assert f"🚨 {len(jobs)} jobs failed in {replay.STORM_QUEUE}: Image could not be pulled" in scene


def test_demo_shows_a_click_end_to_end(demo):
    text, failures, slack = demo
    assert failures == 0
    scene = text.split("Scene: A click, end to end")[1]
    # the job's FAILED message has the buttons (a signing secret and SLACK_ACTIONS_ALLOW for the scene)
    assert "→ on_job_failed: posted #" in scene
    assert "→ its buttons: [Retry]  [Acknowledge]  [Snooze… ▾ 1 hour | 4 hours | 24 hours | 7 days]\n" in scene
    first, second = scene.split("→ Retry clicked")[1:]
    # both clicks signed, through the real route, answered 200
    answered = f"@{replay.CLICK_USER}: POST /slack/actions answered HTTP 200\n"
    assert first.startswith(f" by {answered}") and second.startswith(f" again (a double click) by {answered}")
    # moto's Batch holds exactly one new job tagged as the retry, after either click
    tagged = re.findall(r"moto's Batch: 1 job tagged batch-notify:retry-of=([0-9a-f-]{36}): ([0-9a-f-]{36})\n", scene)
    assert len(tagged) == 2 and tagged[0] == tagged[1], scene
    original, new = tagged[0]
    assert original != new and f"job {original} ({replay.CLICK_JOB_NAME}) submitted" in scene
    # the first click replaced the message (response_url), naming the new job; the second only told the clicker
    replaced = f"the message, replaced through the click's response_url: Retried as {new} by @{replay.CLICK_USER}\n"
    assert replaced in first
    assert "replaced through" not in second and "the clicker alone sees" not in first
    assert f"the clicker alone sees: Already retried as {new} by @{replay.CLICK_USER}." in second
    [message] = [shown for shown in top_level(slack) if replay.CLICK_JOB_NAME in words(shown)]
    assert message.edited and new in words(message) and f"<@{replay.CLICK_USER}>" in words(message)
    actions = [element["action_id"] for block in message.blocks if block["type"] == "actions"
               for element in block["elements"] if "action_id" in element and "url" not in element]
    assert "retry_job" not in actions and "acknowledge" in actions  # the retry button is gone, the rest stay
    assert [e["text"] for e in slack.ephemerals] == [f"Already retried as {new} by <@{replay.CLICK_USER}>."]
    # the channel view shows the message as it ends: replaced, with the line saying who retried it as what
    shown = scene.split("What the channel shows of it:")[1]
    assert "(edited)" in shown and f"🔁 @{replay.CLICK_USER} retried this job as {new}" in shown
    assert "[Retry]" not in shown and "[Acknowledge]" in shown


def test_the_click_scene_plays_only_against_the_stand_in():
    # A real Slack's clicks go to the deployed route: without the stand-in there is nothing to click here.
    out = io.StringIO()
    assert replay.scene_click_end_to_end(None, None, out=out, channel=None, show_json=False) == 0
    assert "left out, it plays against the stand-in only" in out.getvalue()
    assert "POST /slack/actions answered" not in out.getvalue()

def test_demo_summary_counts_what_the_channel_shows(demo):
    _, failures, slack = demo
    shown = top_level(slack)
    replies = sum(len(message.replies) for message in shown)
    assert replay.summary(slack, replay.DEMO_CHANNEL, failures) == (
        f"{len(shown)} messages posted, {len(slack.updates)} updates, 1 replaced after a click, {replies} thread "
        "replies (1 also sent to the channel), failed: 0")
    # the click's answer replaced its message through the response_url: an edit, not a chat.update
    edited = [message.ts for message in shown if message.edited]
    assert len(edited) == len({update["ts"] for update in slack.updates}) + 1
    assert len(slack.messages) == len(shown) + replies  # every post is a message or a reply in a thread


def test_failed_sample_events_show_their_log_tail_with_the_secrets_masked(monkeypatch):
    text, failures, messages = run_replay(monkeypatch, [EVENTS_DIR / "ec2_failed.json",
                                                         EVENTS_DIR / "diag_timeout.json"])
    assert failures == 0 and len(messages) == 4  # each: its headline, and its detail in the thread
    assert "📄 Last 9 log lines (newest last)" in text
    assert "          │ Traceback (most recent call last):" in text
    assert "connecting to postgresql://etl:[masked]@warehouse.internal:5432/dw" in text
    assert "slack notifier configured with token xoxb-[masked]" in text
    for secret in (replay._DSN.split(":")[2].split("@")[0], replay._SLACK):
        assert secret not in text and secret not in json.dumps(messages)


def elsewhere(tmp_path, name, n):
    """A dead-letter dump of ec2_failed.json as another job (another event id): no stream in moto."""
    event = load_event("ec2_failed")
    event["id"] = f"0d1e0000-0000-4000-8000-{n:012d}"
    event["detail"]["jobId"] = event["detail"]["jobArn"] = f"0d1e0000-0000-4000-9000-{n:012d}"
    record = {"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": event}
    dump = tmp_path / name
    dump.write_text(json.dumps({"Messages": [{"MessageId": "m1", "Body": json.dumps(record)}]}))
    return dump


def test_events_from_elsewhere_replay_without_a_log_tail(monkeypatch, tmp_path):
    # A dead-letter queue's event has no stream in the emulator: no tail, and no note claiming
    # the stream is missing. The sample event after it gets its tail: the switch works both ways.
    paths = [elsewhere(tmp_path, "a.json", 1), EVENTS_DIR / "ec2_failed.json", elsewhere(tmp_path, "b.json", 2)]
    text, failures, slack = replay_against_standin(monkeypatch, paths)
    assert failures == 0
    tails = [any("log lines" in words(reply) for reply in shown.replies) for shown in top_level(slack)]
    assert tails == [False, True, False]
    assert "log tail unavailable" not in text


def test_json_flag_adds_block_kit_json_and_builder_link(capsys):
    assert replay.main(["--json", str(EVENTS_DIR / "ec2_succeeded.json")]) == 0
    text = capsys.readouterr().out
    assert "→ on_job_succeeded: posted #1\n" in text
    assert "#1 · ec2_succeeded.json · on_job_succeeded\n" in text
    assert "  Block Kit JSON: {\"text\":" in text
    assert "  Block Kit Builder: https://app.slack.com/block-kit-builder#%7B%22blocks%22" in text
    assert "Summary: 1 message posted, 0 updates, 0 thread replies (0 also sent to the channel), failed: 0." in text
    assert "Scene:" not in text  # the scenes follow the sample events only, not a file of your own


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
                                          "url": "https://example.invalid/x"},
                                         {"type": "button", "action_id": "retry_job", "value": "arn",
                                          "text": {"type": "plain_text", "text": "Retry"}},
                                         {"type": "static_select", "action_id": "snooze",
                                          "placeholder": {"type": "plain_text", "text": "Snooze"},
                                          "options": [{"text": {"type": "plain_text", "text": t}, "value": t}
                                                      for t in ("1h", "4h")]}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "see <https://example.invalid/y|the job>"}]},
    ]}
    assert replay.render(message).splitlines() == [
        "❌ Job failed: a", "===============",
        "  Status: FAILED        Exit code: 1",
        "  Job queue: unknown",
        "  Why", "  <!channel> & co @U0ONCALL1",
        "  📄 Last 2 log lines", "    │ a *b* <c>", "    │ d",
        "  [View logs] https://example.invalid/x",
        "  [Retry]",
        "  [Snooze ▾ 1h | 4h]",
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
