"""FAILED messages that answer "why?" without a click: diagnosis, attempt history, log tail.

:func:`failure_parts` is pure: it takes the standard message's parts
(``messages.job_state_parts``) and fills three more, which render after the reasons and before
the buttons:

1. ``diagnosis``: the hint, if a table entry matches (``chalicelib/deciding/diagnosis.py``);
2. ``attempts``: the attempt history, if the job ran more than once;
3. ``tail``: the log tail as a code block, or the tail's note as a context line.

:func:`describe_failure` is what the FAILED handler calls: it fetches the tail (if the stage
turns it on) and calls the builder.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from chalicelib.composing.messages import MessageParts, SlackMessage, format_duration, job_state_parts
from chalicelib.composing.mrkdwn import CONTEXT_TEXT_LIMIT, SECTION_TEXT_LIMIT, escape, safe_mrkdwn, truncate
from chalicelib.core.config import ConfigError, log_tail_settings
from chalicelib.deciding.diagnosis import Diagnosis, diagnose
from chalicelib.reading.event import AttemptView, JobStateChange
from chalicelib.reading.links import cloudwatch_logs_url

if TYPE_CHECKING:
    from chalicelib.reading.logtail import LogTail

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
    return build_failure_message(job, _log_tail(job))


def _log_tail(job: JobStateChange) -> LogTail | None:
    # The Logs reader is imported only when there is a tail to read or explain: a stage without
    # one (LOG_TAIL_LINES=0) never loads it.
    try:
        settings = log_tail_settings()
    except ConfigError as error:
        from chalicelib.reading.logtail import UNAVAILABLE, LogTail

        log.error(json.dumps({"job_id": job.job_id, "log_tail": "misconfigured", "reason": str(error)}))
        return LogTail(note=f"{UNAVAILABLE}: {error}")
    if not settings.enabled:
        return None
    from chalicelib.reading.logtail import fetch_log_tail

    return fetch_log_tail(job, settings)


def failure_parts(job: JobStateChange, tail: LogTail | None,
                  *, diagnoses: Sequence[Diagnosis] | None = None) -> MessageParts:
    """The standard parts plus diagnosis, attempt history and log tail (``None``: not fetched).

    Pure. ``diagnoses`` replaces the default table (a fork's extended one).
    """
    return replace(job_state_parts(job), diagnosis=_diagnosis_text(job, diagnoses), attempts=_attempt_sections(job),
                   tail=_tail_block(tail))


def build_failure_message(job: JobStateChange, tail: LogTail | None,
                          *, diagnoses: Sequence[Diagnosis] | None = None) -> SlackMessage:
    """The FAILED message: :func:`failure_parts`, rendered (buttons and context line last)."""
    return failure_parts(job, tail, diagnoses=diagnoses).render()


# -- diagnosis -------------------------------------------------------------------------------
def _diagnosis_text(job: JobStateChange, diagnoses: Sequence[Diagnosis] | None) -> str | None:
    finding = diagnose(job, diagnoses)
    if finding is None:
        return None
    prefix = f"{DIAGNOSIS_EMOJI} *{escape(finding.title)}*: "
    return prefix + safe_mrkdwn(finding.hint, SECTION_TEXT_LIMIT - len(prefix))


# -- attempts --------------------------------------------------------------------------------
def _attempt_sections(job: JobStateChange) -> tuple[str, ...]:
    """The history's text, one section's worth each: a title, then one line per attempt."""
    attempts = job.attempts
    return attempt_history([_attempt_line(job, number, attempts[number - 1])
                            for number in shown_attempts(len(attempts))], len(attempts))


def shown_attempts(total: int) -> range:
    """The numbers (from 1) of the attempts a history shows: the last 10; none for fewer than two."""
    return range(max(1, total - MAX_ATTEMPTS_SHOWN + 1), total + 1) if total >= 2 else range(0)


def attempt_history(lines: Sequence[str], total: int) -> tuple[str, ...]:
    """An attempt history's sections: its title, then ``lines`` (one per shown attempt of ``total``)."""
    if not lines:
        return ()
    title = "*Attempt history*" if len(lines) == total else f"*Attempt history* (last {len(lines)} of {total})"
    sections, text = [], title
    for line in lines:
        # Ten attempts with long links can outgrow one section: continue in another.
        if len(text) + 1 + len(line) > SECTION_TEXT_LIMIT:
            sections.append(text)
            text = line
        else:
            text += "\n" + line
    sections.append(text)
    return tuple(sections)


def _attempt_line(job: JobStateChange, number: int, attempt: AttemptView) -> str:
    exit_code = attempt.container.exit_code
    duration = _attempt_duration(attempt)
    parts = [f"exit {exit_code}" if exit_code is not None else "no exit code", duration]
    reason = attempt.container.reason or attempt.status_reason
    if reason:
        parts.append(safe_mrkdwn(" ".join(reason.split()), ATTEMPT_REASON_LIMIT))
    text = truncate(f"{number}. " + " · ".join(parts), ATTEMPT_TEXT_LIMIT)
    url = _attempt_log_url(job, attempt)
    return f"{text} · <{url}|log>" if url else text


def _attempt_duration(attempt: AttemptView) -> str:
    if attempt.started_at is not None:
        return format_duration(attempt.duration) or "still running"
    # An exit code or a log stream means a container ran, whatever startedAt says.
    ran = attempt.container.exit_code is not None or attempt.container.log_stream_name is not None
    return "duration unknown" if ran else "did not start"


def _attempt_log_url(job: JobStateChange, attempt: AttemptView) -> str | None:
    # The attempt's own container, in its own log group and region (containers can differ).
    if attempt.container.log_stream_name is None:
        return None
    location = job.log_location_of(attempt.container)
    if location is None:
        return None
    url = cloudwatch_logs_url(location)
    # The URL is ours (encoded, region checked), so it holds no '|' or '>'; escape '&' anyway.
    return escape(url) if url and len(url) <= ATTEMPT_URL_LIMIT else None


# -- log tail --------------------------------------------------------------------------------
def _tail_block(tail: LogTail | None) -> Block | None:
    """The lines as a code block, or the note as a context line; nothing for ``LogTail()``."""
    if tail is None:
        return None
    if tail.lines:
        return SectionBlock(text=MarkdownTextObject(text=_tail_text(tail.lines)))
    if tail.note:
        prefix = f"{TAIL_EMOJI} "
        text = prefix + safe_mrkdwn(tail.note, CONTEXT_TEXT_LIMIT - len(prefix))
        return ContextBlock(elements=[MarkdownTextObject(text=text)])
    return None


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
