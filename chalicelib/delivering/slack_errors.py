"""Slack's refusals, classified: which a retry may fix, which need a person, and what to tell them.

Every failure of a Slack call is a :class:`DeliveryError` (Lambda's retry takes over). A refusal
no retry will fix is a :class:`PermanentDeliveryError`, with the fix in its message; a message
that is gone (an update or a reply to a deleted or unknown message) is :class:`MessageNotFound`,
so a caller can tell "post it anew" from "fix the configuration".
"""

from __future__ import annotations

import re

from chalicelib.core.config import SlackSettings
from chalicelib.core.errors import BatchNotifyError


class DeliveryError(BatchNotifyError):
    """Slack did not take the message; raising lets Lambda retry the invocation later."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # Slack's error code, when it gave one


class PermanentDeliveryError(DeliveryError):
    """Slack refused the message for a reason a retry will not fix (configuration)."""


class MessageNotFound(PermanentDeliveryError):
    """The message to update, or to reply to, does not exist (deleted, or never posted there)."""


class BotTokenNeeded(PermanentDeliveryError):
    """An update or a reply was asked of a webhook: only the Web API (a bot token) can do them."""


# Slack's answers that no retry will fix, with what the person deploying should do.
PERMANENT_ERRORS: dict[str, str] = {
    "invalid_auth": "the bot token is not valid: check the token in {secret}",
    "not_authed": "no bot token was sent: check {secret}",
    "account_inactive": "the bot token belongs to a deleted user or workspace: reinstall the app and update {secret}",
    "token_revoked": "the bot token was revoked: reinstall the app and update {secret}",
    "token_expired": "the bot token expired: reinstall the app and update {secret}",
    "missing_scope": "the bot token lacks the chat:write scope: add it in the app's OAuth settings and reinstall",
    "not_allowed_token_type": "use a bot token (xoxb-) in {secret}",
    "channel_not_found": ("channel {channel} does not exist or the bot cannot see it: set SLACK_CHANNEL to a channel "
                          "ID and invite the bot"),
    "not_in_channel": "the bot is not a member of {channel}: invite it (/invite @your-app) or add chat:write.public",
    "is_archived": "channel {channel} is archived: set SLACK_CHANNEL to a live channel",
    "channel_is_archived": "the webhook's channel is archived: create a new webhook and update {secret}",
    "no_service": "the webhook no longer exists (404 no_service): create a new one and update {secret}",
    "invalid_token": "the webhook URL is not valid: create a new webhook and update {secret}",
    "action_prohibited": "a workspace admin restricted this webhook: ask them, or use a bot token",
    "no_text": "Slack rejected the message as empty (no_text)",
    "msg_too_long": "Slack rejected the message as too long (msg_too_long)",
    "invalid_blocks": "Slack rejected the message's blocks (invalid_blocks)",
    "invalid_payload": "Slack rejected the payload (invalid_payload)",
    "cant_update_message": "message {ts} in {channel} was not posted by this bot token: it can update only its own",
    "edit_window_closed": "message {ts} in {channel} can no longer be edited (the workspace's edit window closed)",
}

# The message an update or a reply names is gone: chat.update's and chat.postMessage's words.
NOT_FOUND = frozenset({"message_not_found", "thread_not_found"})

# Slack refused this message's content, not the configuration: a plain-text version still
# tells people about the job, so it is sent once instead.
REJECTED_CONTENT = frozenset({"msg_too_long", "invalid_blocks", "invalid_blocks_format", "invalid_payload",
                              "too_many_attachments"})

# Slack's error codes: quoted in errors. Anything else from the server is described, not quoted.
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def failure(code: str | None, status: int, what: str, settings: SlackSettings, *,
            channel: str | None = None, ts: str | None = None) -> DeliveryError:
    """The error for Slack's refusal: ``code`` when it is one of Slack's error codes, else ``what``
    (a description of the answer; a body from a stranger is never quoted). ``channel`` and ``ts``
    name the message the call was about (default: the settings' channel)."""
    if code is not None and _ERROR_CODE.fullmatch(code):
        where = f"Slack answered {status} {code!r}"
        channel = channel or settings.channel
        if code in NOT_FOUND:
            return MessageNotFound(f"{where}: no message {ts} in {channel} (deleted, or never posted there)", code)
        hint = PERMANENT_ERRORS.get(code)
        if hint is not None:
            return PermanentDeliveryError(
                f"{where}: " + hint.format(secret=settings.secret.variable, channel=channel, ts=ts), code)
        return DeliveryError(f"{where}; giving up for now so Lambda retries the event later", code)
    return DeliveryError(f"Slack answered {what}, without an error code; giving up for now so Lambda "
                         "retries the event later")
