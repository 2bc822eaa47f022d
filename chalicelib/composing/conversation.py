"""A job's conversation in Slack, composed: its top-level message, its thread's replies. Pure.

In conversation mode (chalicelib/delivering/conversation.py) a job has one living message, and
the channel must stay scannable, so the full message is split in two:

- :func:`headline`, the top-level message: what failed and why at a glance (header, facts with
  the exit code, reasons with the last attempt's, diagnosis, buttons, context) and a one-line
  note saying the rest is in the thread;
- :func:`detail`, the thread's first reply: the long part, the attempt history and the log tail.

A log tail that is only a note ("log tail unavailable: access denied") stays on top: it is one
line, and a reader should not open a thread to learn there is nothing in it.

Later events update the headline in place (:func:`without_mentions`: an update never pings) and
reply in the thread what changed (:func:`change_reply`: "RUNNING → FAILED after 2h 3m").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from chalicelib.composing.messages import (
    MessageParts,
    SlackMessage,
    bounded_blocks,
    format_duration,
    style_for,
    with_mentions,
)
from chalicelib.composing.mrkdwn import FALLBACK_TEXT_LIMIT, SECTION_TEXT_LIMIT, escape, safe_mrkdwn, truncate
from chalicelib.deciding.diagnosis import diagnose
from chalicelib.deciding.routing import routing_status
from chalicelib.reading.event import JobStateChange

THREAD_EMOJI = ":thread:"
ARROW = "→"
# A status label is a word (RUNNING, BLOCKED); a hostile event's "status" can be anything.
STATUS_LABEL_LIMIT = 40
# A reply is one line: its reason is cut to this (the full text is in the message itself).
REPLY_REASON_LIMIT = 300
DIAGNOSIS_TITLE_LIMIT = 100
UNKNOWN_STATUS = "UNKNOWN"  # what chalicelib/deciding/job_messages.py records for a job with no status

_CHANGE_EMOJI = {"FAILED": ":x:", "SUCCEEDED": ":white_check_mark:", "BLOCKED": ":warning:"}
# The markup messages.mention_markup writes. Job text is escaped (no raw '<' survives), so any
# such markup in a message is the route's mentions, added by with_mentions.
_MENTION = r"<(?:@[^<>|\s]+|!subteam\^[^<>|\s]+|!here|!channel)>"
_MENTION_MARKUP = re.compile(_MENTION + r"\s*")
_CC_LINE = re.compile(rf"cc(?: {_MENTION})+")


# -- the top-level message and the thread's first reply ----------------------------------------
def headline(message: SlackMessage) -> SlackMessage:
    """The top-level message in conversation mode: ``message`` without its attempt history and log
    tail, plus a note that they are in the thread.

    A message not rendered from parts (a fork's own blocks), or with nothing to move, is returned
    unchanged. The route's mentions, if set, stay: the headline is the message that pings.
    """
    parts = message.parts
    if parts is None or not _moved(parts):
        return message
    pointer = f"{THREAD_EMOJI} {_moved_label(parts)} in the thread"
    kept_tail = None if _tail_moves(parts) else parts.tail
    return replace(parts, attempts=(), tail=kept_tail, notes=(pointer, *parts.notes)).render()


def detail(message: SlackMessage) -> SlackMessage | None:
    """The thread's first reply: the attempt history and the log tail that :func:`headline` left
    out, or ``None`` when it left nothing out. Never mentions anyone: the headline pings."""
    parts = message.parts
    if parts is None or not _moved(parts):
        return None
    blocks: list[Block] = [_section(text) for text in parts.attempts]
    if parts.tail is not None and _tail_moves(parts):
        blocks.append(parts.tail)
    # The notification (and a client without blocks) names the job the thread is about.
    about = safe_mrkdwn(" ".join(parts.header.split()), FALLBACK_TEXT_LIMIT)
    text = truncate(f"{_moved_label(parts)} · {about}" if about else _moved_label(parts), FALLBACK_TEXT_LIMIT)
    return SlackMessage(text=text, blocks=bounded_blocks(blocks))


def _tail_moves(parts: MessageParts) -> bool:
    # A context block is the tail's note (no lines to show): one line, it stays on top.
    return parts.tail is not None and not isinstance(parts.tail, ContextBlock)


def _moved(parts: MessageParts) -> bool:
    return bool(parts.attempts) or _tail_moves(parts)


def _moved_label(parts: MessageParts) -> str:
    if parts.attempts and _tail_moves(parts):
        return "Attempt history and log tail"
    return "Attempt history" if parts.attempts else "Log tail"


def _section(mrkdwn: str) -> SectionBlock:
    # As MessageParts.render draws an attempts section, so the reply shows it unchanged.
    return SectionBlock(text=MarkdownTextObject(text=truncate(mrkdwn, SECTION_TEXT_LIMIT)))


# -- updates ----------------------------------------------------------------------------------
def without_mentions(message: SlackMessage) -> SlackMessage:
    """``message`` with no mention in it (no cc line, none in the notification text), for a
    ``chat.update``: an update must never ping again.

    A message from parts is rendered again with no mentions; one given as blocks loses the cc
    section that :func:`~chalicelib.composing.messages.with_mentions` added and the cc prefix of
    its text.
    """
    if message.parts is not None:
        return replace(message.parts, mentions=()).render() if message.parts.mentions else message
    blocks = tuple(block for block in message.blocks if not _is_cc_section(block))
    # Text that was nothing but mentions still needs something to show (Slack wants a text).
    text = _MENTION_MARKUP.sub("", message.text).strip() or "Updated"
    if blocks == message.blocks and text == message.text:
        return message
    return SlackMessage(text=text, blocks=blocks)


def _is_cc_section(block: Block) -> bool:
    text = block.text if isinstance(block, SectionBlock) else None
    return isinstance(text, MarkdownTextObject) and _CC_LINE.fullmatch(text.text) is not None


def change_reply(before: str, after: JobStateChange, elapsed: timedelta | None,
                 mentions: Sequence[str] = ()) -> SlackMessage:
    """A short thread reply saying what changed: ``:x: RUNNING → FAILED after 2h 3m · exit 137 ·
    Out of memory``.

    ``before`` is the label the job's message showed (RUNNING, BLOCKED, STUCK, ...); ``elapsed``
    the time since it did (``None``: not said). A failure adds its exit code and diagnosis (else
    its reason), a blocked queue its reason. ``mentions`` (the route's people) give a cc line and
    go into the notification text; without them the reply mentions nobody.
    """
    status = routing_status(after) or UNKNOWN_STATUS
    change = f"{_status_label(before)} {ARROW} {_status_label(status)}"
    if elapsed is not None:
        change += f" after {format_duration(elapsed)}"
    said = " · ".join((change, *_what_happened(after, status)))
    emoji = _CHANGE_EMOJI.get(status) or style_for(status).emoji
    # The notification names the job: a broadcast reply reaches people outside the thread.
    job = safe_mrkdwn(" ".join((after.job_name or after.job_id or "").split()), 200)
    text = f"{emoji} {job}: {said}" if job else f"{emoji} {said}"
    reply = SlackMessage(text=truncate(text, FALLBACK_TEXT_LIMIT),
                         blocks=(_section(f"{emoji} {said}"),))
    # A cc line under the reply's one block, and the cc in its notification, as every message has.
    return with_mentions(reply, mentions)


def _status_label(label: str) -> str:
    # Ours (the table, the event's status), but shown as text: escaped and bounded anyway.
    return safe_mrkdwn(" ".join(label.split()), STATUS_LABEL_LIMIT) or UNKNOWN_STATUS


def _what_happened(job: JobStateChange, status: str) -> tuple[str, ...]:
    """The facts worth a glance in the reply: a failure's exit code and diagnosis (or else its
    reason), a blocked queue's reason; nothing for the other states."""
    if status == "BLOCKED":
        return _reason(job.status_reason)
    if status != "FAILED":
        return ()
    found: list[str] = []
    if job.exit_code is not None:
        found.append(truncate(f"exit {job.exit_code}", STATUS_LABEL_LIMIT))
    finding = diagnose(job)
    if finding is not None:
        found.append(truncate(escape(finding.title), DIAGNOSIS_TITLE_LIMIT))
    # With neither, the reason is all there is to say why (the container's says more than Batch's).
    return tuple(found) or _reason(job.container_reason or job.status_reason)


def _reason(reason: str | None) -> tuple[str, ...]:
    shown = safe_mrkdwn(" ".join(reason.split()), REPLY_REASON_LIMIT) if reason else ""
    return (shown,) if shown else ()
