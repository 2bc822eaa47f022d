"""Build Slack Block Kit messages from job state changes. Pure: event view in, blocks out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional, Sequence

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
    SECTION_TEXT_LIMIT,
    safe_mrkdwn,
    safe_plain,
)
from chalicelib.core.logline import log_line
from chalicelib.reading.event import JobStateChange
from chalicelib.reading.links import batch_job_url, job_log_links, missing_log_link_reason

UNKNOWN = "unknown"


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


def style_for(status: Optional[str]) -> StatusStyle:
    """The emoji and headline for a status; unknown statuses get a neutral style."""
    return STATUS_STYLES.get(status or "", StatusStyle(":information_source:", f"Job {status or 'changed state'}"))


@dataclass(frozen=True)
class SlackMessage:
    """A message ready to post: the notification ``text`` fallback and the Block Kit blocks."""

    text: str
    blocks: tuple[Block, ...]

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


def format_duration(duration: Optional[timedelta]) -> Optional[str]:
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


def _field(label: str, value: Optional[str]) -> MarkdownTextObject:
    # Text that is all control or invisible characters shows as unknown too.
    shown = (safe_mrkdwn(value, FIELD_TEXT_LIMIT - len(label) - 4) if value else "") or f"_{UNKNOWN}_"
    return MarkdownTextObject(text=f"*{label}*\n{shown}")


def _attempts_text(job: JobStateChange) -> Optional[str]:
    count = len(job.attempts)
    if count == 0:
        return None
    return f"{count} of {job.max_attempts}" if job.max_attempts else str(count)


def _array_summary(job: JobStateChange) -> Optional[str]:
    if not job.is_array_parent:
        return None
    summary = job.array_status_summary
    parts = [f"{summary[s]} {s.lower()}" for s in ("FAILED", "SUCCEEDED") if summary.get(s)]
    size = f"of {job.array_size}" if job.array_size is not None else ""
    return f"{', '.join(parts)} {size}".strip() if parts else f"{job.array_size} children"


def _duration_text(job: JobStateChange) -> Optional[str]:
    if job.duration is not None:
        return format_duration(job.duration)
    if job.never_started:
        return "never started"
    return None


def _nodes_text(job: JobStateChange) -> Optional[str]:
    if job.node_count is None:
        return None
    return f"{job.node_count} (main node {job.main_node})" if job.main_node is not None else str(job.node_count)


def _fields(job: JobStateChange) -> list[MarkdownTextObject]:
    # Who and what are always shown (as "unknown" if the event lacks them); the rest only
    # when the event says, so an array parent does not show a meaningless "Exit code".
    fields = [_field("Status", job.status), _field("Job queue", job.job_queue_name),
              _field("Job definition", job.job_definition)]
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
    fields.extend(_field(label, value) for label, value in optional if value)
    return fields


def _reason_sections(job: JobStateChange) -> list[SectionBlock]:
    sections = []
    reason = job.status_reason
    if reason:
        sections.append(_text_section("Status reason", reason))
    container_reason = job.container_reason
    # Show the container's reason only when it adds something to the status reason.
    if container_reason and (reason is None or container_reason not in reason):
        sections.append(_text_section("Container reason", container_reason))
    return sections


def _text_section(label: str, untrusted: str) -> SectionBlock:
    prefix = f"*{label}*\n"
    return SectionBlock(text=MarkdownTextObject(text=prefix + safe_mrkdwn(untrusted, SECTION_TEXT_LIMIT - len(prefix))))


@dataclass(frozen=True)
class _Links:
    """The link buttons of a message, and what was left out of them (said in the context line)."""

    actions: Optional[ActionsBlock]
    left_out: tuple[str, ...]


def _links(job: JobStateChange) -> _Links:
    """The job's link buttons: its log stream(s), then its AWS Batch page.

    The one place a URL becomes a button, so the one place Slack's button limits are kept.
    """
    log_links = job_log_links(job)
    # Slack shows at most 25 elements in an actions block; the AWS Batch page keeps its place.
    shown_logs = log_links[: MAX_ACTIONS_ELEMENTS - 1]
    links = [(link.label, "view_logs" if i == 0 else f"view_logs_{i + 1}", link.url)
             for i, link in enumerate(shown_logs)]
    batch_url = batch_job_url(job.region, job.job_id)
    if batch_url:
        links.append(("Open in AWS Batch", "open_in_batch", batch_url))
    buttons: list[ButtonElement] = []
    too_long: list[str] = []
    for label, action_id, url in links:
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
    if len(log_links) > len(shown_logs):
        left_out.append(f"{len(log_links) - len(shown_logs)} more log links left out: "
                        f"Slack shows at most {MAX_ACTIONS_ELEMENTS} buttons.")
    return _Links(ActionsBlock(elements=buttons) if buttons else None, tuple(left_out))


def _context(job: JobStateChange, left_out: Sequence[str] = ()) -> ContextBlock:
    # Each part bounded on its own, so a huge job id does not push the region and account out.
    parts = [f"Job ID `{safe_mrkdwn(job.job_id or UNKNOWN, 1000)}`",
             safe_mrkdwn(job.region or "unknown region", 100), f"account {safe_mrkdwn(job.account or UNKNOWN, 100)}"]
    if job.time:
        parts.append(safe_mrkdwn(job.time, 100))
    elements = [MarkdownTextObject(text=" · ".join(parts))]
    gap = missing_log_link_reason(job)
    if gap:
        # The reason can quote the job's own log driver name: untrusted, any length.
        elements.append(MarkdownTextObject(text=safe_mrkdwn(gap, CONTEXT_TEXT_LIMIT)))
    if left_out:
        elements.append(MarkdownTextObject(text=safe_mrkdwn(" ".join(left_out), CONTEXT_TEXT_LIMIT)))
    return ContextBlock(elements=elements)


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


def build_job_state_message(job: JobStateChange) -> SlackMessage:
    """The standard message for a job state change: header, facts, reasons, links, context."""
    style = style_for(job.status)
    header = HeaderBlock(text=PlainTextObject(
        text=safe_plain(f"{style.emoji} {style.headline}: {job.job_name or job.job_id or UNKNOWN}", HEADER_TEXT_LIMIT),
        emoji=True,
    ))
    blocks: list[Block] = [header, SectionBlock(fields=_fields(job)), *_reason_sections(job)]
    links = _links(job)
    if links.actions is not None:
        blocks.append(links.actions)
    blocks.append(_context(job, links.left_out))
    return SlackMessage(text=fallback_text(job), blocks=bounded_blocks(blocks))


def bounded_blocks(blocks: Sequence[Block]) -> tuple[Block, ...]:
    """Keep at most Slack's 50 blocks, keeping the last one (the context line) when cutting."""
    if len(blocks) <= MAX_BLOCKS:
        return tuple(blocks)
    return (*blocks[: MAX_BLOCKS - 1], blocks[-1])


def build_queue_blocked_message(job: JobStateChange) -> SlackMessage:
    """Warning for a "Batch Job Queue Blocked" event: the queue, the job blocking it, why."""
    queue = job.job_queue_name or UNKNOWN
    header = HeaderBlock(text=PlainTextObject(
        text=safe_plain(f":warning: Job queue blocked: {queue}", HEADER_TEXT_LIMIT), emoji=True))
    fields = [_field("Job queue", job.job_queue_name), _field("Blocking job", job.job_name or job.job_id),
              _field("Job definition", job.job_definition), _field("Job status", job.status)]
    blocks: list[Block] = [header, SectionBlock(fields=fields)]
    if job.status_reason:
        blocks.append(_text_section("Why", job.status_reason))
    links = _links(job)
    if links.actions is not None:
        blocks.append(links.actions)
    blocks.append(_context(job, links.left_out))
    line = f"Job queue {queue} is blocked by {job.job_name or job.job_id or UNKNOWN}"
    if job.status_reason:
        line += f": {job.status_reason}"
    text = ":warning: " + safe_mrkdwn(" ".join(line.split()), FALLBACK_TEXT_LIMIT - 10)
    return SlackMessage(text=text, blocks=bounded_blocks(blocks))


def mention_markup(mention: str) -> str:
    """Slack markup that notifies a user (U.../W...), a user group (S...), @here or @channel."""
    if mention in ("here", "channel"):
        return f"<!{mention}>"
    if mention.startswith("S"):
        return f"<!subteam^{mention}>"
    return f"<@{mention}>"


def with_mentions(message: SlackMessage, mentions: Sequence[str]) -> SlackMessage:
    """The message with the route's people mentioned under the header and in the notification.

    Mentions come from the routing file (trusted configuration), never from the event.
    """
    if not mentions:
        return message
    # Whole mentions only (half a "<@U...>" is garbage), as many as one section holds.
    markups: list[str] = []
    room = SECTION_TEXT_LIMIT - len("cc")
    for markup in map(mention_markup, mentions):
        room -= 1 + len(markup)
        if room < 0:
            break
        markups.append(markup)
    cc = " ".join(markups)
    section = SectionBlock(text=MarkdownTextObject(text=f"cc {cc}"))
    blocks = (message.blocks[0], section, *message.blocks[1:])
    return SlackMessage(text=f"{cc} {message.text}", blocks=bounded_blocks(blocks))
