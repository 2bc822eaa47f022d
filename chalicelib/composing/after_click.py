"""The clicked message, changed to say what was done: pure, raw Block Kit dicts in and out.

The click handler replaces the clicked message (``response_url``, ``replace_original``) with
the blocks Slack sent back (``Click.message_blocks``), passed through one of these functions:
each appends one context line (who, what, when, as a Slack date token that each reader sees in
their own time zone), removes the buttons that no longer apply, drops an actions block left
empty, and keeps the message within Slack's 50 blocks (older "what was done" lines go first).

Slack sends back what was posted, but the blocks are still read as untrusted: anything that is
not a list of objects is skipped, never raised on, and every text put in is escaped and bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import ButtonElement, ContextBlock, MarkdownTextObject

from chalicelib.composing.action_buttons import (
    ACKNOWLEDGE,
    RETRY_JOB,
    RETRY_JOB_MORE_MEMORY,
    SNOOZE,
    TERMINATE_JOB,
    UNSNOOZE,
    is_job_arn,
)
from chalicelib.composing.mrkdwn import CONTEXT_TEXT_LIMIT, MAX_ACTIONS_ELEMENTS, MAX_BLOCKS, escape, safe_mrkdwn

Blocks = list[dict[str, Any]]
# The block_id of a "what was done" line: how the next click finds the older ones to drop.
DONE_PREFIX = "batch_notify_done_"
NAME_LIMIT = 200
NOTES_LIMIT = CONTEXT_TEXT_LIMIT
URL_LIMIT = 1000
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,40}")
# Our own console links only: https, no characters that would end or split a mrkdwn link.
_SAFE_URL = re.compile(r"https://[^\s<>|]+")
_Matcher = Callable[[dict[str, Any]], bool]


# -- the what-was-done line -----------------------------------------------------------------
def _who(user_id: str) -> str:
    # A Slack user id becomes a mention (shown as the person's name); anything else is shown as text.
    return f"<@{user_id}>" if isinstance(user_id, str) and _USER_ID.fullmatch(user_id) else "someone"


def _epoch(moment: datetime) -> int:
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def date_token(moment: datetime) -> str:
    """Slack's ``<!date^…>`` token: the reader's own time zone, with a UTC fallback."""
    fallback = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return f"<!date^{_epoch(moment)}^{{date_short_pretty}} at {{time}}|{fallback:%Y-%m-%d %H:%M} UTC>"


def _job_id_of(job_arn: str) -> str:
    return job_arn.rsplit("/", 1)[-1] if is_job_arn(job_arn) else "a job"


def _done_line(blocks: Blocks, *texts: str) -> dict[str, Any]:
    taken = {b.get("block_id") for b in blocks}
    number = len(blocks)
    while f"{DONE_PREFIX}{number}" in taken:
        number += 1
    elements = [MarkdownTextObject(text=text[:CONTEXT_TEXT_LIMIT]) for text in texts if text]
    return ContextBlock(elements=elements, block_id=f"{DONE_PREFIX}{number}").to_dict()


# -- reading and pruning the blocks -------------------------------------------------------------
def _blocks(blocks: Any) -> Blocks:
    """The usable blocks: a list's objects, copied one level (the caller's are not changed)."""
    if not isinstance(blocks, list):
        return []
    return [dict(block) for block in blocks if isinstance(block, dict)]


def _by_action(*action_ids: str, value: str | None = None) -> _Matcher:
    def matches(element: dict[str, Any]) -> bool:
        return element.get("action_id") in action_ids and (value is None or element.get("value") == value)
    return matches


def _without(blocks: Blocks, matches: _Matcher) -> Blocks:
    """``blocks`` without the matching elements; an actions block left empty goes too."""
    out: Blocks = []
    for block in blocks:
        if block.get("type") == "actions" and isinstance(block.get("elements"), list):
            elements = [e for e in block["elements"] if not (isinstance(e, dict) and matches(e))]
            if not elements:
                continue
            block = {**block, "elements": elements}
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and matches(accessory):
            block = {key: value for key, value in block.items() if key != "accessory"}
        out.append(block)
    return out


def _bounded(blocks: Blocks, line: dict[str, Any]) -> Blocks:
    """``blocks`` and the new ``line`` within 50 blocks: older lines go first, then the middle."""
    blocks = [*blocks, line]
    for i in range(len(blocks) - 1):
        if len(blocks) <= MAX_BLOCKS:
            break
        if str(blocks[i].get("block_id", "")).startswith(DONE_PREFIX):
            blocks[i] = {}
    blocks = [b for b in blocks if b]
    if len(blocks) > MAX_BLOCKS:
        # Still too many (a message posted at the limit): keep its start, its last line and ours.
        blocks = [*blocks[: MAX_BLOCKS - 2], *blocks[-2:]]
    return blocks


def _changed(blocks: Any, remove: _Matcher, *texts: str) -> Blocks:
    kept = _without(_blocks(blocks), remove)
    return _bounded(kept, _done_line(kept, *texts))


# -- the actions ---------------------------------------------------------------------------------
def after_retry(blocks: Any, user_id: str, new_job_id: str, new_job_url: str | None, notes: Sequence[str] = (),
                *, at: datetime) -> Blocks:
    """The message after a retry: who retried, when, a link to the new job, the resubmit's notes
    (escaped: they quote container and tag names); the retry buttons removed."""
    # Text that is all invisible characters escapes to nothing: a link needs something to click.
    shown = safe_mrkdwn(new_job_id or "", NAME_LIMIT) or "the new job"
    url = new_job_url if new_job_url and len(new_job_url) <= URL_LIMIT and _SAFE_URL.fullmatch(new_job_url) else None
    new_job = f"<{escape(url)}|{shown}>" if url else f"`{shown}`"
    line = f":repeat: {_who(user_id)} retried this job as {new_job} · {date_token(at)}"
    joined = " ".join(note for note in notes if isinstance(note, str))
    return _changed(blocks, _by_action(RETRY_JOB, RETRY_JOB_MORE_MEMORY), line,
                    safe_mrkdwn(joined, NOTES_LIMIT) if joined.strip() else "")


def after_terminate(blocks: Any, user_id: str, job_arn: str, reason: str | None = None, *, at: datetime) -> Blocks:
    """The message after TerminateJob: who, when, which job, the reason given; only that job's
    terminate button removed (a stuck report has one per job)."""
    line = (f":octagonal_sign: {_who(user_id)} terminated job `{safe_mrkdwn(_job_id_of(job_arn), NAME_LIMIT)}` · "
            f"{date_token(at)}")
    why = f"Reason: {safe_mrkdwn(reason, NOTES_LIMIT - 8)}" if reason and reason.strip() else ""
    return _changed(blocks, _by_action(TERMINATE_JOB, value=job_arn), line, why)


def after_acknowledge(blocks: Any, user_id: str, at: datetime, *, job_arn: str | None = None) -> Blocks:
    """The message after an acknowledgement: who and when; the acknowledge button removed (with
    ``job_arn``, only that job's: a stuck report has one per job, and the line names the job)."""
    which = f" job `{safe_mrkdwn(_job_id_of(job_arn), NAME_LIMIT)}`" if job_arn is not None else ""
    line = f":eyes: {_who(user_id)} acknowledged{which} · {date_token(at)}"
    return _changed(blocks, _by_action(ACKNOWLEDGE, value=job_arn), line)


def after_snooze(blocks: Any, user_id: str, until: datetime, job_name: str | None, queue: str | None,
                 job_arn: str, *, at: datetime) -> Blocks:
    """The message after a snooze: who snoozed which job name in which queue until when; the
    snooze select replaced by an ``unsnooze`` button (value: the job ARN)."""
    name = safe_mrkdwn(job_name or "", NAME_LIMIT) or "this job"
    queue_shown = safe_mrkdwn(queue or "", NAME_LIMIT)
    where = f" in `{queue_shown}`" if queue_shown else ""
    line = (f":zzz: {_who(user_id)} snoozed messages for *{name}*{where} until {date_token(until)} · "
            f"{date_token(at)}")
    kept = _with_unsnooze(_blocks(blocks), job_arn)
    return _bounded(kept, _done_line(kept, line))


def _with_unsnooze(blocks: Blocks, job_arn: str) -> Blocks:
    """The snooze select(s) removed, an unsnooze button in the first one's place (or a new
    actions block at the end, if the message had none)."""
    if not is_job_arn(job_arn):
        return _without(blocks, _by_action(SNOOZE, UNSNOOZE))
    button = ButtonElement(text="Unsnooze", action_id=UNSNOOZE, value=job_arn).to_dict()
    is_snooze = _by_action(SNOOZE, UNSNOOZE)
    for i, block in enumerate(blocks):
        elements = block.get("elements")
        if block.get("type") == "actions" and isinstance(elements, list) and any(
                isinstance(e, dict) and is_snooze(e) for e in elements):
            kept = [e for e in elements if not (isinstance(e, dict) and is_snooze(e))]
            swapped = {**block, "elements": [*kept[: MAX_ACTIONS_ELEMENTS - 1], button]}
            return [*_without(blocks[:i], is_snooze), swapped, *_without(blocks[i + 1:], is_snooze)]
    actions = {"type": "actions", "elements": [button]}
    return [*blocks[:-1], actions, *blocks[-1:]]


def after_unsnooze(blocks: Any, user_id: str, *, at: datetime) -> Blocks:
    """The message after the snooze is lifted: who and when; the unsnooze button removed."""
    line = f":bell: {_who(user_id)} ended the snooze: messages for this job resume · {date_token(at)}"
    return _changed(blocks, _by_action(UNSNOOZE), line)
