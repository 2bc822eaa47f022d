"""Build Slack Block Kit messages from job state changes. Pure: event view in, blocks out.

A job's message is made of named parts (:class:`MessageParts`: header, mentions, facts, reasons,
diagnosis, attempts, tail, actions, notes, context). Builders fill the parts; :meth:`MessageParts.render`
turns them into blocks, in that fixed order and within Slack's limits, in this one place. To change
one part, replace it::

    parts = job_state_parts(job)
    message = dataclasses.replace(parts, header=f":rotating_light: {job.job_name}").render()
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from chalicelib.composing.mrkdwn import (
    BUTTON_TEXT_LIMIT,
    BUTTON_URL_LIMIT,
    CONTEXT_TEXT_LIMIT,
    FALLBACK_TEXT_LIMIT,
    FIELD_TEXT_LIMIT,
    HEADER_TEXT_LIMIT,
    MAX_ACTIONS_ELEMENTS,
    MAX_BLOCKS,
    MAX_SECTION_FIELDS,
    SECTION_TEXT_LIMIT,
    safe_mrkdwn,
    safe_plain,
    truncate,
)
from chalicelib.core.logline import log_line
from chalicelib.reading.event import JobStateChange
from chalicelib.reading.links import JobLinks, job_links

UNKNOWN = "unknown"
_T = TypeVar("_T")


@dataclass(frozen=True)
class StatusStyle:
    emoji: str
    headline: str


STATUS_STYLES: dict[str, StatusStyle] = {
    "FAILED": StatusStyle(":x:", "Job failed"),
    "SUCCEEDED": StatusStyle(":white_check_mark:", "Job succeeded"),
    "RUNNING": StatusStyle(":arrow_forward:", "Job running"),
    "STARTING": StatusStyle(":hourglass_flowing_sand:", "Job starting"),
    "RUNNABLE": StatusStyle(":hourglass:", "Job runnable"),
}


def style_for(status: str | None) -> StatusStyle:
    """The emoji and headline for a status; unknown statuses get a neutral style."""
    return STATUS_STYLES.get(status or "", StatusStyle(":information_source:", f"Job {status or 'changed state'}"))


@dataclass(frozen=True)
class SlackMessage:
    """A message ready to post: the notification ``text`` fallback and the Block Kit blocks."""

    text: str
    blocks: tuple[Block, ...]
    # The named parts it was rendered from, when it was (so with_mentions can set one); not compared.
    parts: MessageParts | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON payload (``text`` + ``blocks``) for chat.postMessage or a webhook.

        The builders keep every Slack limit; should one slip (a bug), the block slack-sdk
        refuses is left out and logged, and the rest still posts: raising here would have
        Lambda retry an event that can never succeed, and dead-letter it with nothing posted.
        """
        blocks = []
        for block in self.blocks:
            try:
                blocks.append(block.to_dict())
            except SlackObjectFormationError as error:
                log_line(logging.ERROR, warning="left out a block Slack would refuse (a bug: please report it)",
                         block=block.type, reason=str(error))
        return {"text": self.text, "blocks": blocks}


def format_duration(duration: timedelta | None) -> str | None:
    """Human-readable duration, largest units first: ``2h 5m 3s``, ``37s``, ``under 1s``."""
    if duration is None:
        return None
    seconds = int(duration.total_seconds())
    if seconds < 1:
        return "under 1s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    # Three units are plenty for a glance ("1d 2h 3m", not "1d 2h 3m 4s").
    return " ".join(parts[:3])


# A fact is a (label, value) field; a value of None shows as "unknown". Values are job text.
Fact = tuple[str, str | None]
# A reason is a (label, text) section; the text is the job's, shown escaped and bounded.
Reason = tuple[str, str]


@dataclass(frozen=True)
class MessageParts:
    """A job's message by its named parts, rendered in this order by :meth:`render`.

    Job text (the header, fact values, reasons) is given as written and escaped and bounded when
    rendered; the mrkdwn parts (``diagnosis``, ``attempts``, ``notes``, ``context``) are ours,
    already escaped where they quote the job, and only bounded. ``text`` is the notification
    line, ready to send.
    """

    text: str
    header: str
    # The route's people (trusted configuration): a cc line under the header, and the notification.
    mentions: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = ()
    reasons: tuple[Reason, ...] = ()
    # FAILED messages: the hint, the attempt history's sections, the log tail (or its note).
    diagnosis: str | None = None
    attempts: tuple[str, ...] = ()
    tail: Block | None = None
    # Link buttons, then the action buttons and the snooze select (composing/action_buttons.py).
    actions: tuple[ButtonElement | StaticSelectElement, ...] = ()
    # A fork's own lines, each a context block after the buttons.
    notes: tuple[str, ...] = ()
    # The final context line's elements: ids, region, account, time, what was left out.
    context: tuple[str, ...] = ()

    def render(self) -> SlackMessage:
        """The message to post: the parts as blocks, in order, within Slack's limits."""
        blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=safe_plain(self.header, HEADER_TEXT_LIMIT),
                                                                emoji=True))]
        text = self.text
        if self.mentions:
            cc = _cc(self.mentions)
            blocks.append(_cc_section(cc))
            text = f"{cc} {text}"
        # Slack shows at most 10 fields in a section: a fork's eleventh fact starts another.
        blocks += [SectionBlock(fields=[_field(label, value) for label, value in self.facts[i:i + MAX_SECTION_FIELDS]])
                   for i in range(0, len(self.facts), MAX_SECTION_FIELDS)]
        blocks += [_text_section(label, untrusted) for label, untrusted in self.reasons]
        blocks += [_mrkdwn_section(section) for section in (*_optional(self.diagnosis), *self.attempts)]
        blocks += _optional(self.tail)
        if self.actions:
            blocks.append(ActionsBlock(elements=list(self.actions[:MAX_ACTIONS_ELEMENTS])))
        blocks += [_context_block((note,)) for note in self.notes]
        if self.context:
            blocks.append(_context_block(self.context))
        return SlackMessage(text=text, blocks=bounded_blocks(blocks), parts=self)


def _optional(part: _T | None) -> tuple[_T, ...]:
    return () if part is None else (part,)


def _mrkdwn_section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, SECTION_TEXT_LIMIT)))


def _context_block(elements: Sequence[str]) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=truncate(e, CONTEXT_TEXT_LIMIT)) for e in elements])


def _field(label: str, value: str | None) -> MarkdownTextObject:
    # Text that is all control or invisible characters shows as unknown too.
    shown = (safe_mrkdwn(value, FIELD_TEXT_LIMIT - len(label) - 4) if value else "") or f"_{UNKNOWN}_"
    return MarkdownTextObject(text=f"*{label}*\n{shown}")


def _text_section(label: str, untrusted: str) -> SectionBlock:
    prefix = f"*{label}*\n"
    return SectionBlock(text=MarkdownTextObject(text=prefix + safe_mrkdwn(untrusted, SECTION_TEXT_LIMIT - len(prefix))))


def _attempts_text(job: JobStateChange) -> str | None:
    count = len(job.attempts)
    if count == 0:
        return None
    return f"{count} of {job.max_attempts}" if job.max_attempts else str(count)


def _array_summary(job: JobStateChange) -> str | None:
    if not job.is_array_parent:
        return None
    summary = job.array_status_summary
    parts = [f"{summary[s]} {s.lower()}" for s in ("FAILED", "SUCCEEDED") if summary.get(s)]
    size = f"of {job.array_size}" if job.array_size is not None else ""
    return f"{', '.join(parts)} {size}".strip() if parts else f"{job.array_size} children"


def _duration_text(job: JobStateChange) -> str | None:
    if job.duration is not None:
        return format_duration(job.duration)
    if job.never_started:
        return "never started"
    return None


def _nodes_text(job: JobStateChange) -> str | None:
    if job.node_count is None:
        return None
    return f"{job.node_count} (main node {job.main_node})" if job.main_node is not None else str(job.node_count)


def job_facts(job: JobStateChange) -> tuple[Fact, ...]:
    """The standard message's fields: status, queue, definition, then what the event tells."""
    # Who and what are always shown (as "unknown" if the event lacks them); the rest only
    # when the event says, so an array parent does not show a meaningless "Exit code".
    always = (("Status", job.status), ("Job queue", job.job_queue_name), ("Job definition", job.job_definition))
    # A multi-node parent's exit information is its main node's (AWS Batch copies it).
    exit_label = "Exit code (main node)" if job.is_multinode_parent else "Exit code"
    optional = (
        (exit_label, None if job.exit_code is None else str(job.exit_code)),
        ("Attempts", _attempts_text(job)),
        ("Duration", _duration_text(job)),
        ("Platform", job.platform),
        ("Array children", _array_summary(job)),
        ("Nodes", _nodes_text(job)),
    )
    return (*always, *((label, value) for label, value in optional if value))


def job_reasons(job: JobStateChange) -> tuple[Reason, ...]:
    """The job's status reason, and its container's reason when that adds something."""
    reasons: list[Reason] = []
    reason = job.status_reason
    if reason:
        reasons.append(("Status reason", reason))
    container_reason = job.container_reason
    if container_reason and (reason is None or container_reason not in reason):
        reasons.append(("Container reason", container_reason))
    return tuple(reasons)


@dataclass(frozen=True)
class _Buttons:
    """The link buttons of a message, and what was left out of them (said in the context line)."""

    buttons: tuple[ButtonElement, ...]
    left_out: tuple[str, ...]


def _buttons(links: JobLinks) -> _Buttons:
    """The job's link buttons: its log stream(s), then its AWS Batch page.

    The one place a URL becomes a button, so the one place Slack's button limits are kept.
    """
    # Slack shows at most 25 elements in an actions block; the AWS Batch page keeps its place.
    shown_logs = links.logs[: MAX_ACTIONS_ELEMENTS - 1]
    wanted = [(link.label, "view_logs" if i == 0 else f"view_logs_{i + 1}", link.url)
              for i, link in enumerate(shown_logs)]
    if links.batch:
        wanted.append(("Open in AWS Batch", "open_in_batch", links.batch))
    buttons: list[ButtonElement] = []
    too_long: list[str] = []
    for label, action_id, url in wanted:
        # A label can name a container, written by whoever defined the job.
        text = safe_plain(label, BUTTON_TEXT_LIMIT) or "View logs"
        # A huge job id, group or stream name (encoded twice, it grows about 3x) makes a URL
        # Slack refuses, and with it the whole message: leave that button out and say so.
        if len(url) > BUTTON_URL_LIMIT:
            too_long.append(text)
        else:
            buttons.append(ButtonElement(text=text, action_id=action_id, url=url))
    left_out = []
    if too_long:
        left_out.append(f"{', '.join(too_long)} link{'s' if len(too_long) > 1 else ''} left out: too long for Slack.")
    if len(links.logs) > len(shown_logs):
        left_out.append(f"{len(links.logs) - len(shown_logs)} more log links left out: "
                        f"Slack shows at most {MAX_ACTIONS_ELEMENTS} buttons.")
    return _Buttons(tuple(buttons), tuple(left_out))


def _context(job: JobStateChange, links: JobLinks, left_out: Sequence[str] = ()) -> tuple[str, ...]:
    # Each part bounded on its own, so a huge job id does not push the region and account out.
    parts = [f"Job ID `{safe_mrkdwn(job.job_id or UNKNOWN, 1000)}`",
             safe_mrkdwn(job.region or "unknown region", 100), f"account {safe_mrkdwn(job.account or UNKNOWN, 100)}"]
    if job.time:
        parts.append(safe_mrkdwn(job.time, 100))
    elements = [" · ".join(parts)]
    if links.missing_logs:
        # The reason can quote the job's own log driver name: untrusted, any length.
        elements.append(safe_mrkdwn(links.missing_logs, CONTEXT_TEXT_LIMIT))
    if left_out:
        elements.append(safe_mrkdwn(" ".join(left_out), CONTEXT_TEXT_LIMIT))
    return tuple(elements)


def fallback_text(job: JobStateChange) -> str:
    """One line for notifications and clients that cannot show blocks (escaped, bounded)."""
    style = style_for(job.status)
    line = f"{style.headline}: {job.job_name or job.job_id or UNKNOWN}"
    if job.job_queue_name:
        line += f" in {job.job_queue_name}"
    if job.exit_code is not None:
        line += f" (exit {job.exit_code})"
    reason = job.container_reason if job.status == "FAILED" and job.container_reason else job.status_reason
    if reason:
        line += f": {reason}"
    # One line: it is what phones show in the notification.
    return f"{style.emoji} {safe_mrkdwn(' '.join(line.split()), FALLBACK_TEXT_LIMIT - len(style.emoji) - 1)}"


def _with_links(parts: MessageParts, job: JobStateChange) -> MessageParts:
    """``parts`` with the job's buttons and its context line (which says what has no button)."""
    links = job_links(job)
    buttons = _buttons(links)
    return replace(parts, actions=buttons.buttons, context=_context(job, links, buttons.left_out))


def job_state_parts(job: JobStateChange) -> MessageParts:
    """The standard message's parts: header, facts, reasons, buttons, context. Start a fork's here."""
    style = style_for(job.status)
    parts = MessageParts(text=fallback_text(job),
                         header=f"{style.emoji} {style.headline}: {job.job_name or job.job_id or UNKNOWN}",
                         facts=job_facts(job), reasons=job_reasons(job))
    return _with_links(parts, job)


def build_job_state_message(job: JobStateChange) -> SlackMessage:
    """The standard message for a job state change: header, facts, reasons, links, context."""
    return job_state_parts(job).render()


def bounded_blocks(blocks: Sequence[Block]) -> tuple[Block, ...]:
    """Keep at most Slack's 50 blocks, keeping the last one (the context line) when cutting."""
    if len(blocks) <= MAX_BLOCKS:
        return tuple(blocks)
    return (*blocks[: MAX_BLOCKS - 1], blocks[-1])


def queue_blocked_parts(job: JobStateChange) -> MessageParts:
    """The parts of a "Batch Job Queue Blocked" warning: the queue, the job blocking it, why."""
    queue = job.job_queue_name or UNKNOWN
    line = f"Job queue {queue} is blocked by {job.job_name or job.job_id or UNKNOWN}"
    if job.status_reason:
        line += f": {job.status_reason}"
    parts = MessageParts(
        text=":warning: " + safe_mrkdwn(" ".join(line.split()), FALLBACK_TEXT_LIMIT - 10),
        header=f":warning: Job queue blocked: {queue}",
        facts=(("Job queue", job.job_queue_name), ("Blocking job", job.job_name or job.job_id),
               ("Job definition", job.job_definition), ("Job status", job.status)),
        reasons=(("Why", job.status_reason),) if job.status_reason else (),
    )
    return _with_links(parts, job)


def build_queue_blocked_message(job: JobStateChange) -> SlackMessage:
    """Warning for a "Batch Job Queue Blocked" event: the queue, the job blocking it, why."""
    return queue_blocked_parts(job).render()


def mention_markup(mention: str) -> str:
    """Slack markup that notifies a user (U.../W...), a user group (S...), @here or @channel."""
    if mention in ("here", "channel"):
        return f"<!{mention}>"
    if mention.startswith("S"):
        return f"<!subteam^{mention}>"
    return f"<@{mention}>"


def _cc(mentions: Sequence[str]) -> str:
    """The mentions' markup: whole mentions only (half a "<@U...>" is garbage), as many as one section holds."""
    markups: list[str] = []
    room = SECTION_TEXT_LIMIT - len("cc")
    for markup in map(mention_markup, mentions):
        room -= 1 + len(markup)
        if room < 0:
            break
        markups.append(markup)
    return " ".join(markups)


def _cc_section(cc: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=f"cc {cc}"))


def with_mentions(message: SlackMessage, mentions: Sequence[str]) -> SlackMessage:
    """The message with the route's people mentioned under the header and in the notification.

    Mentions come from the routing file (trusted configuration), never from the event. A message
    rendered from parts gets its ``mentions`` part set; one built as blocks (the sweep's report)
    gets the cc line after its first block, its header.
    """
    if not mentions:
        return message
    if message.parts is not None:
        return replace(message.parts, mentions=tuple(mentions)).render()
    cc = _cc(mentions)
    header, *rest = message.blocks
    return SlackMessage(text=f"{cc} {message.text}", blocks=bounded_blocks((header, _cc_section(cc), *rest)))
