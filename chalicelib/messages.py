"""Build Slack Block Kit messages from job state changes. Pure: event view in, blocks out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional, Sequence

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

from chalicelib.event import JobStateChange
from chalicelib.links import batch_job_url, job_log_url, missing_log_link_reason
from chalicelib.mrkdwn import (
    CONTEXT_TEXT_LIMIT,
    FALLBACK_TEXT_LIMIT,
    FIELD_TEXT_LIMIT,
    HEADER_TEXT_LIMIT,
    MAX_BLOCKS,
    SECTION_TEXT_LIMIT,
    escape,
    safe_mrkdwn,
    safe_plain,
)

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
        """The JSON payload (``text`` + ``blocks``) for chat.postMessage or a webhook."""
        return {"text": self.text, "blocks": [block.to_dict() for block in self.blocks]}


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
    shown = safe_mrkdwn(value, FIELD_TEXT_LIMIT - len(label) - 4) if value else f"_{UNKNOWN}_"
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


def _buttons(job: JobStateChange) -> Optional[ActionsBlock]:
    links = (("View logs", "view_logs", job_log_url(job)),
             ("Open in AWS Batch", "open_in_batch", batch_job_url(job.region, job.job_id)))
    buttons = [ButtonElement(text=label, action_id=action, url=url) for label, action, url in links if url]
    return ActionsBlock(elements=buttons) if buttons else None


def _context(job: JobStateChange) -> ContextBlock:
    parts = [f"Job ID `{job.job_id or UNKNOWN}`", job.region or "unknown region",
             f"account {job.account or UNKNOWN}"]
    if job.time:
        parts.append(job.time)
    elements = [MarkdownTextObject(text=safe_mrkdwn(" · ".join(parts), CONTEXT_TEXT_LIMIT))]
    gap = missing_log_link_reason(job)
    if gap:
        elements.append(MarkdownTextObject(text=escape(gap)))
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
    actions = _buttons(job)
    if actions is not None:
        blocks.append(actions)
    blocks.append(_context(job))
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
    actions = _buttons(job)
    if actions is not None:
        blocks.append(actions)
    blocks.append(_context(job))
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
    cc = " ".join(mention_markup(m) for m in mentions)
    section = SectionBlock(text=MarkdownTextObject(text=f"cc {cc}"))
    blocks = (message.blocks[0], section, *message.blocks[1:])
    return SlackMessage(text=f"{cc} {message.text}", blocks=bounded_blocks(blocks))
