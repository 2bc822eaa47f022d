"""The account line of a hub's messages: "Account: prod (123456789012) · eu-west-1".

A hub (``ACCOUNT_NAMES`` or ``MEMBER_ROLE_ARN`` set) gets the events of many accounts, so each
message says in whose account and region the job ran, by the account's readable name. Pure:
the job and the names in, the message out; applied after the builder, like the mentions and the
buttons (notify.py). Without the hub a message is left as it was built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject

from chalicelib.composing.messages import SlackMessage
from chalicelib.composing.mrkdwn import MAX_BLOCKS, safe_mrkdwn
from chalicelib.reading.event import JobStateChange

# The event's account and region are untrusted text: each is cut on its own, then escaped.
MAX_ACCOUNT_CHARS = 20
MAX_REGION_CHARS = 30
MAX_NAME_CHARS = 64


def account_line(job: JobStateChange, names: Sequence[tuple[str, str]]) -> str:
    """``Account: <name> (<id>) · <region>`` (the name when ``names`` has one), escaped and bounded."""
    return f"Account: {account_and_region(job.account, job.region, names)}"


def account_and_region(account: str | None, region: str | None, names: Sequence[tuple[str, str]]) -> str:
    """``<name> (<id>) · <region>`` (the name when ``names`` has one), escaped and bounded."""
    name = next((given for id_, given in names if id_ == account), None)
    shown = safe_mrkdwn(account or "unknown", MAX_ACCOUNT_CHARS)
    if name:
        shown = f"{safe_mrkdwn(name, MAX_NAME_CHARS)} ({shown})"
    return f"{shown} · {safe_mrkdwn(region or 'unknown region', MAX_REGION_CHARS)}"


def with_account_label(message: SlackMessage, job: JobStateChange, names: Sequence[tuple[str, str]], *,
                       hub: bool) -> SlackMessage:
    """``message`` with the job's account line when ``hub`` (the hub is configured), else as is.

    A message rendered from parts gets the line as a note (a context line after the buttons), so a
    later re-render (buttons, mentions, the conversation's headline) keeps it; any other message
    gets it before its last block, when Slack's 50 blocks leave room."""
    if not hub:
        return message
    line = account_line(job, names)
    if message.parts is not None:
        if line in message.parts.notes:
            return message  # added once, whatever calls it again
        return replace(message.parts, notes=(*message.parts.notes, line)).render()
    if not message.blocks or len(message.blocks) >= MAX_BLOCKS:
        return message
    *body, last = message.blocks
    block = ContextBlock(elements=[MarkdownTextObject(text=line)])
    return SlackMessage(text=message.text, blocks=(*body, block, last))
