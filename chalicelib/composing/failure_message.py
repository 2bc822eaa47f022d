"""FAILED messages that answer "why?" without a click: diagnosis, attempt history, log tail.

:func:`build_failure_message` is pure: it takes the standard message
(``messages.build_job_state_message``) and inserts, after the reasons and before the buttons,

1. the diagnosis hint, if a table entry matches (``chalicelib/deciding/diagnosis.py``);
2. the attempt history, if the job ran more than once;
3. the log tail as a code block, or the tail's note as a context line.

:func:`describe_failure` is what the FAILED handler calls: it fetches the tail (if the stage
turns it on) and calls the builder.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Optional, Sequence

from slack_sdk.models.blocks import ActionsBlock, Block, ContextBlock, MarkdownTextObject, SectionBlock

from chalicelib.composing.messages import SlackMessage, bounded_blocks, build_job_state_message, format_duration
from chalicelib.composing.mrkdwn import CONTEXT_TEXT_LIMIT, SECTION_TEXT_LIMIT, escape, safe_mrkdwn, truncate
from chalicelib.core.config import ConfigError, log_tail_settings
from chalicelib.deciding.diagnosis import Diagnosis, diagnose
from chalicelib.reading.event import AttemptView, JobStateChange
from chalicelib.reading.links import LogLocation, cloudwatch_logs_url, log_location
from chalicelib.reading.logtail import UNAVAILABLE, LogTail, fetch_log_tail

log = logging.getLogger("batch_notify")

DIAGNOSIS_EMOJI = ":bulb:"
TAIL_EMOJI = ":page_facing_up:"
# Each log line is cut to this (after escaping); the whole block, fences included, to one section.
# Below logtail.MAX_LINE_SCAN, so every character shown was masked (tests check).
LOG_LINE_LIMIT = 300
ATTEMPT_REASON_LIMIT = 150
# A link longer than this (a huge group or stream name) is left out rather than crowd the section.
ATTEMPT_URL_LIMIT = 1000
# An attempt's line without its link; its exit code and reason are the event's, of any size.
ATTEMPT_TEXT_LIMIT = 300
# AWS Batch runs at most 10 attempts; an event listing more shows its last 10, so the history
# cannot crowd the buttons and the context line out of Slack's 50 blocks.
MAX_ATTEMPTS_SHOWN = 10
FENCE = "```"

# A backtick followed by another: a zero-width space after it means no three ever touch,
# so a log line cannot close (or open) the code block.
_BACKTICK_RUN = re.compile(r"`(?=`)")


def describe_failure(job: JobStateChange) -> SlackMessage:
    """The FAILED message with the log tail fetched as the stage says (``LOG_TAIL_*``).

    A bad log tail setting does not stop the notification: it goes out without the tail
    and says which variable to fix.
    """
    try:
        settings = log_tail_settings()
    except ConfigError as error:
        log.error(json.dumps({"job_id": job.job_id, "log_tail": "misconfigured", "reason": str(error)}))
        tail: Optional[LogTail] = LogTail(note=f"{UNAVAILABLE}: {error}")
    else:
        tail = fetch_log_tail(job, settings) if settings.enabled else None
    return build_failure_message(job, tail)


def build_failure_message(job: JobStateChange, tail: Optional[LogTail],
                          *, diagnoses: Optional[Sequence[Diagnosis]] = None) -> SlackMessage:
    """The standard message plus diagnosis, attempt history and log tail (``None``: not fetched).

    Pure. Buttons and the final context line stay last, and Slack's limits hold.
    ``diagnoses`` replaces the default table (a fork's extended one).
    """
    base = build_job_state_message(job)
    extra = [*_diagnosis_blocks(job, diagnoses), *_attempt_blocks(job), *_tail_blocks(tail)]
    if not extra:
        return base
    blocks = list(base.blocks)
    at = _insertion_point(blocks)
    blocks[at:at] = extra
    return SlackMessage(text=base.text, blocks=bounded_blocks(blocks))


def _insertion_point(blocks: Sequence[Block]) -> int:
    """Before the buttons, or before the final context line when there are none."""
    for index, block in enumerate(blocks):
        if isinstance(block, ActionsBlock):
            return index
    return len(blocks) - 1 if blocks and isinstance(blocks[-1], ContextBlock) else len(blocks)


# -- diagnosis -------------------------------------------------------------------------------
def _diagnosis_blocks(job: JobStateChange, diagnoses: Optional[Sequence[Diagnosis]]) -> list[Block]:
    finding = diagnose(job, diagnoses)
    if finding is None:
        return []
    prefix = f"{DIAGNOSIS_EMOJI} *{escape(finding.title)}*: "
    text = prefix + safe_mrkdwn(finding.hint, SECTION_TEXT_LIMIT - len(prefix))
    return [SectionBlock(text=MarkdownTextObject(text=text))]


# -- attempts --------------------------------------------------------------------------------
def _attempt_blocks(job: JobStateChange) -> list[Block]:
    attempts = job.attempts
    if len(attempts) < 2:
        return []
    # Each attempt's own stream, in the job's log group and the log's region.
    location = log_location(job)
    first = max(1, len(attempts) - MAX_ATTEMPTS_SHOWN + 1)
    lines = [_attempt_line(number, attempts[number - 1], location) for number in range(first, len(attempts) + 1)]
    title = "*Attempt history*" if first == 1 else f"*Attempt history* (last {len(lines)} of {len(attempts)})"
    sections, text = [], title
    for line in lines:
        # Ten attempts with long links can outgrow one section: continue in another.
        if len(text) + 1 + len(line) > SECTION_TEXT_LIMIT:
            sections.append(text)
            text = line
        else:
            text += "\n" + line
    sections.append(text)
    return [SectionBlock(text=MarkdownTextObject(text=section)) for section in sections]


def _attempt_line(number: int, attempt: AttemptView, location: Optional[LogLocation]) -> str:
    exit_code = attempt.container.exit_code
    if attempt.started_at is None:
        duration = "did not start"
    else:
        duration = format_duration(attempt.duration) or "still running"
    parts = [f"exit {exit_code}" if exit_code is not None else "no exit code", duration]
    reason = attempt.container.reason or attempt.status_reason
    if reason:
        parts.append(safe_mrkdwn(" ".join(reason.split()), ATTEMPT_REASON_LIMIT))
    text = truncate(f"{number}. " + " · ".join(parts), ATTEMPT_TEXT_LIMIT)
    url = _attempt_log_url(attempt, location)
    return f"{text} · <{url}|log>" if url else text


def _attempt_log_url(attempt: AttemptView, location: Optional[LogLocation]) -> Optional[str]:
    stream = attempt.container.log_stream_name
    if location is None or stream is None:
        return None
    url = cloudwatch_logs_url(LogLocation(region=location.region, group=location.group, stream=stream))
    # The URL is ours (encoded, region checked), so it holds no '|' or '>'; escape '&' anyway.
    return escape(url) if url and len(url) <= ATTEMPT_URL_LIMIT else None


# -- log tail --------------------------------------------------------------------------------
def _tail_blocks(tail: Optional[LogTail]) -> list[Block]:
    if tail is None:
        return []
    if tail.lines:
        return [SectionBlock(text=MarkdownTextObject(text=_tail_text(tail.lines)))]
    if tail.note:
        prefix = f"{TAIL_EMOJI} "
        text = prefix + safe_mrkdwn(tail.note, CONTEXT_TEXT_LIMIT - len(prefix))
        return [ContextBlock(elements=[MarkdownTextObject(text=text)])]
    return []


def _code_line(line: str) -> str:
    """One log line made safe inside a code block: escaped, no backtick fence, bounded."""
    return truncate(_BACKTICK_RUN.sub("`\u200b", escape(line)), LOG_LINE_LIMIT)


def _tail_text(lines: Sequence[str]) -> str:
    """Title and code block, newest line last, within one section: the oldest lines go first."""
    shown = [_code_line(line) for line in lines]
    while True:
        if len(shown) == len(lines):
            title = f"{TAIL_EMOJI} *Last {len(lines)} log line{'s' if len(lines) != 1 else ''}* (newest last)"
        else:
            title = (f"{TAIL_EMOJI} *Last {len(shown)} of {len(lines)} log lines* "
                     "(newest last; older ones cut to fit Slack)")
        text = f"{title}\n{FENCE}\n" + "\n".join(shown) + f"\n{FENCE}"
        if len(text) <= SECTION_TEXT_LIMIT or len(shown) == 1:
            return text
        shown.pop(0)
