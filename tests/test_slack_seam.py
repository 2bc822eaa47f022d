"""The delivery seam (chalicelib.delivering.slack.Slack) against the stand-in: post, update, reply.

Each call returns what it took and a reference to the message; the channel is then read as a
person would (``channel_view``). The guarantees of a post (retries within the budget, Slack's
refusals classified, the plain-text fallback, no secret in an error) hold for every call.
"""

from __future__ import annotations

import time

import pytest
from slack_sdk.models.blocks import SectionBlock

from chalicelib.composing.messages import SlackMessage
from chalicelib.core.config import SlackSettings, load_slack_settings
from chalicelib.delivering.slack import (
    BotTokenNeeded,
    Delivery,
    DeliveryError,
    MessageNotFound,
    MessageRef,
    PermanentDeliveryError,
    Slack,
    deliver,
)
from tests.conftest import BOT_TOKEN, PROD_CHANNEL, TEST_CHANNEL
from tools.slack_standin import Reply, SlackStandIn

RUNNING = SlackMessage(text="Job running: etl", blocks=(SectionBlock(text="*etl* is running"),))
FAILED = SlackMessage(text="Job failed: etl", blocks=(SectionBlock(text="*etl* failed"),))
LOG_TAIL = SlackMessage(text="the last log lines", blocks=(SectionBlock(text="```Killed```"),))


def bot_settings(slack: SlackStandIn, **env: str) -> SlackSettings:
    return load_slack_settings({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_CHANNEL": TEST_CHANNEL,
                                "SLACK_API_URL": slack.api_url, **env})


@pytest.fixture
def bot(slack: SlackStandIn) -> Slack:
    return Slack(bot_settings(slack))


def section_texts(blocks: list[dict] | None) -> list[str]:
    return [block["text"]["text"] for block in blocks or []]


# -- post, update, reply ----------------------------------------------------------------------------

def test_post_returns_a_reference_to_the_message_slack_posted(slack, bot):
    posted = bot.post(RUNNING)
    assert isinstance(posted, Delivery) and posted.attempts == 1 and posted.seconds < 2
    [shown] = slack.channel_view(TEST_CHANNEL)
    assert posted.ref == MessageRef(TEST_CHANNEL, shown.ts)
    assert (shown.text, section_texts(shown.blocks)) == ("Job running: etl", ["*etl* is running"])
    # a channel of the routing file: the reference names it
    assert bot.post(RUNNING, channel=PROD_CHANNEL).ref.channel == PROD_CHANNEL


def test_update_changes_that_message_in_place(slack, bot):
    ref = bot.post(RUNNING).ref
    updated = bot.update(ref, FAILED)
    assert updated.ref == ref and updated.attempts == 1
    [shown] = slack.channel_view(TEST_CHANNEL)
    assert (shown.ts, shown.text, section_texts(shown.blocks), shown.edited) == (
        ref.ts, "Job failed: etl", ["*etl* failed"], True)
    # the message as built: this layer adds no mention (an update never pings anyone anew)
    [update] = slack.updates
    assert update == {"channel": TEST_CHANNEL, "ts": ref.ts, **FAILED.to_dict()}


def test_a_reply_lands_in_the_thread_only(slack, bot):
    ref = bot.post(FAILED).ref
    replied = bot.reply(ref, LOG_TAIL)
    [shown] = slack.channel_view(TEST_CHANNEL)
    [reply] = shown.replies
    assert replied.ref == MessageRef(TEST_CHANNEL, reply.ts) and reply.ts != ref.ts
    assert (reply.text, reply.broadcast) == ("the last log lines", False)
    sent = slack.requests[-1].body
    assert sent["thread_ts"] == ref.ts and "reply_broadcast" not in sent
    assert (sent["unfurl_links"], sent["unfurl_media"]) == (False, False)


def test_a_broadcast_reply_shows_in_the_channel_too(slack, bot):
    ref = bot.post(FAILED).ref
    replied = bot.reply(ref, LOG_TAIL, broadcast=True)
    first, second = slack.channel_view(TEST_CHANNEL)
    assert first.ts == ref.ts and [r.ts for r in first.replies] == [replied.ref.ts]
    assert (second.ts, second.text, second.broadcast) == (replied.ref.ts, "the last log lines", True)
    assert slack.requests[-1].body["reply_broadcast"] is True


def test_deliver_is_a_post(slack):
    receipt = deliver(RUNNING, bot_settings(slack))
    assert receipt.attempts == 1 and receipt.ref == MessageRef(TEST_CHANNEL, slack.channel_view(TEST_CHANNEL)[0].ts)


# -- a message that is gone, one that is not ours ----------------------------------------------------

def test_updating_an_unknown_message_raises_message_not_found(slack, bot):
    with pytest.raises(MessageNotFound) as raised:
        bot.update(MessageRef(TEST_CHANNEL, "1.000100"), FAILED)
    error = raised.value
    assert isinstance(error, PermanentDeliveryError) and error.code == "message_not_found"
    assert "1.000100" in str(error) and "1 HTTP request(s)" in str(error) and BOT_TOKEN not in str(error)
    assert len(slack.requests) == 1 and slack.updates == []


def test_replying_to_an_unknown_message_raises_message_not_found(slack, bot):
    with pytest.raises(MessageNotFound) as raised:
        bot.reply(MessageRef(TEST_CHANNEL, "1.000100"), LOG_TAIL)
    assert raised.value.code == "thread_not_found" and slack.messages == []


def test_a_message_someone_else_posted_cannot_be_updated(slack, bot):
    ts = slack.post_as("U0PERSON", TEST_CHANNEL, "hello")
    with pytest.raises(PermanentDeliveryError) as raised:
        bot.update(MessageRef(TEST_CHANNEL, ts), FAILED)
    assert not isinstance(raised.value, MessageNotFound) and "only its own" in str(raised.value)
    assert slack.channel_view(TEST_CHANNEL)[0].text == "hello"


# -- a webhook: no reference, no update, no reply ---------------------------------------------------

def test_a_webhook_posts_without_a_reference_and_cannot_update_or_reply(slack):
    hook = Slack(load_slack_settings({"SLACK_WEBHOOK_URL": slack.webhook_url}))
    posted = hook.post(RUNNING)
    assert posted.ref is None and posted.attempts == 1
    assert [m.text for m in slack.channel_view(TEST_CHANNEL)] == ["Job running: etl"]  # the webhook's channel
    somewhere = MessageRef(TEST_CHANNEL, slack.channel_view(TEST_CHANNEL)[0].ts)
    with pytest.raises(BotTokenNeeded, match="needs a bot token"):
        hook.update(somewhere, FAILED)
    with pytest.raises(BotTokenNeeded, match="needs a bot token"):
        hook.reply(somewhere, LOG_TAIL)
    with pytest.raises(ValueError, match="own channel"):
        hook.post(RUNNING, channel=PROD_CHANNEL)
    assert len(slack.requests) == 1  # nothing was sent for what a webhook cannot do


# -- the guarantees of a post hold for every call ----------------------------------------------------

def test_an_update_is_retried_after_a_server_error_and_a_rate_limit(slack, bot):
    ref = bot.post(RUNNING).ref
    slack.script(Reply(503, "unavailable"), Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"}))
    assert bot.update(ref, FAILED).attempts == 3
    assert slack.channel_view(TEST_CHANNEL)[0].text == "Job failed: etl"


def test_a_reply_gives_up_within_its_budget(slack):
    bounded = Slack(bot_settings(slack, SLACK_DELIVERY_BUDGET_SECONDS="2", SLACK_REQUEST_TIMEOUT_SECONDS="1"))
    ref = bounded.post(FAILED).ref
    slack.script(Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}))
    started = time.monotonic()
    with pytest.raises(DeliveryError) as raised:
        bounded.reply(ref, LOG_TAIL)
    assert time.monotonic() - started < 1.5 and not isinstance(raised.value, PermanentDeliveryError)
    assert "wait 30 s (Retry-After)" in str(raised.value) and "1 HTTP request(s)" in str(raised.value)
    assert slack.channel_view(TEST_CHANNEL)[0].replies == ()


def test_a_rejected_update_falls_back_to_plain_text_and_drops_the_old_blocks(slack, bot):
    ref = bot.post(RUNNING).ref
    slack.script(Reply(body={"ok": False, "error": "invalid_blocks"}))
    assert bot.update(ref, FAILED).attempts == 2
    fallback = slack.requests[-1].body
    assert fallback["blocks"] == [] and fallback["text"].startswith("Job failed: etl\n")
    [shown] = slack.channel_view(TEST_CHANNEL)
    assert shown.blocks is None and "Slack rejected the full message: invalid_blocks" in shown.text


def test_each_call_has_its_own_budget(slack):
    # Two calls of one Slack object: the second is not charged for the first one's wait.
    bounded = Slack(bot_settings(slack, SLACK_DELIVERY_BUDGET_SECONDS="3", SLACK_REQUEST_TIMEOUT_SECONDS="1"))
    slack.script(Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0.5"}))
    ref = bounded.post(FAILED).ref
    slack.script(Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0.5"}))
    assert bounded.reply(ref, LOG_TAIL).attempts == 2
