"""A failure storm's messages (pure): the group message, and the thread replies that list its jobs.

The group message says how many jobs failed, where and why ("37 jobs failed in etl-queue: Image
could not be pulled"), when the first and the last failed, a few of their names, and the diagnosis;
a note says that each job is listed in its thread and that the first ``GROUP_AFTER`` were posted
on their own; a group of a hub, or of jobs not in the app's own account and region, says their
account and region ("Account: staging (210987654321) · eu-west-1", as a job's own message does).
A reply lists several jobs, one line each (name, id, exit code or reason, log link).
Job text is escaped and bounded; the times are Slack date tokens, shown in each reader's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from chalicelib.composing.account_label import account_and_region
from chalicelib.composing.messages import MessageParts, SlackMessage, bounded_blocks
from chalicelib.composing.mrkdwn import (
    CONTEXT_TEXT_LIMIT,
    FALLBACK_TEXT_LIMIT,
    SECTION_TEXT_LIMIT,
    escape,
    safe_mrkdwn,
    truncate,
)
from chalicelib.deciding.storms import Group, PendingLine, StormLine

# Lines per thread reply: a screenful, well inside Slack's 50 blocks and 3000 characters a section.
MAX_LINES_PER_REPLY = 30
# One line at most: the parts are bounded when stored (deciding/storms.py), escaping can triple them.
_LINE_LIMIT = SECTION_TEXT_LIMIT // 2


def storm_cause_label(group: Group) -> str:
    """What the group's jobs have in common, for people: the diagnosis title, else the cause key."""
    return group.diagnosis_title or group.cause


def storm_title(group: Group) -> str:
    """"37 jobs failed in etl-queue: Image could not be pulled" (job text: not yet escaped)."""
    jobs = "1 job" if group.count == 1 else f"{group.count} jobs"
    return f"{jobs} failed in {group.queue}: {storm_cause_label(group)}"


def _slack_time(epoch: float) -> str:
    # Slack shows a date token in the reader's own time zone; the fallback is for old clients.
    seconds = int(epoch)
    fallback = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{seconds}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def _names_note(group: Group) -> str | None:
    if not group.names:
        return None
    shown = ", ".join(f"`{safe_mrkdwn(name, 130)}`" for name in group.names)
    more = group.count - len(group.names)
    return f"Jobs: {shown}" + (f" and {more} more" if more > 0 else "")


def _thread_note(group: Group) -> str:
    if group.previous is not None:
        return (f"Continues an earlier group of {group.previous.count} jobs in this channel (a group lists at "
                "most 2000): every job here is listed in this message's thread.")
    own = "The first job was" if group.after == 1 else f"The first {group.after} were"
    return f"Each job is listed in this message's thread. {own} posted on their own, above."


def account_note(group: Group, names: Sequence[tuple[str, str]]) -> str:
    """``Account: <name> (<id>) · <region>`` of the group's jobs (the name when ``names`` has one)."""
    return f"Account: {account_and_region(group.account, group.region, names)}"


def group_message(group: Group, mentions: Sequence[str] = (), *,
                  account_names: Sequence[tuple[str, str]] | None = None) -> SlackMessage:
    """The group message: count, queue, cause, first and last time, a few names, the diagnosis, and
    where the jobs are listed. ``mentions`` only on the first post: an update never pings.
    ``account_names`` (the accounts' readable names, maybe none) when it says the jobs' account and
    region (chalicelib/delivering/storm_posting.py decides); ``None`` when it does not."""
    title = storm_title(group)
    diagnosis = None
    if group.diagnosis_title:
        diagnosis = truncate(f"*{escape(group.diagnosis_title)}*\n{escape(group.diagnosis_hint or '')}",
                             SECTION_TEXT_LIMIT)
    times = f"First failed {_slack_time(group.first_at)} · last {_slack_time(group.last_at)}"
    where = account_note(group, account_names) if account_names is not None else None
    notes = tuple(note for note in (times, _names_note(group), _thread_note(group), where) if note)
    parts = MessageParts(
        text=":rotating_light: " + safe_mrkdwn(title, FALLBACK_TEXT_LIMIT - 20),
        header=f":rotating_light: {title}",
        mentions=tuple(mentions),
        facts=(("Jobs failed", str(group.count)), ("Job queue", group.queue), ("Cause", storm_cause_label(group))),
        diagnosis=diagnosis,
        notes=tuple(truncate(note, CONTEXT_TEXT_LIMIT) for note in notes),
    )
    return parts.render()


def job_line(line: StormLine, ordinal: int | None = None) -> str:
    """One job's line in the thread: number, name, id, exit code or reason, log link (escaped, bounded)."""
    number = f"*#{ordinal}* " if ordinal is not None else ""
    text = (f"{number}*{safe_mrkdwn(line.job_name, 200)}* · `{safe_mrkdwn(line.job_id, 200)}` · "
            f"{safe_mrkdwn(line.outcome, 300)}")
    # The link is ours (reading/links.py: a checked region, every path part percent-encoded), so it
    # holds no '|' or '>' that could end it early; it is added whole or not at all, never cut.
    link = f" · <{line.log_url}|logs>" if line.log_url else ""
    return text + link if len(text) + len(link) <= _LINE_LIMIT else truncate(text, _LINE_LIMIT)


def lines_reply(group: Group, lines: Sequence[PendingLine]) -> SlackMessage:
    """A thread reply listing ``lines`` (at most :data:`MAX_LINES_PER_REPLY`), packed into sections."""
    shown = [job_line(p.line, group.members.get(p.digest)) for p in lines[:MAX_LINES_PER_REPLY]]
    sections: list[str] = []
    for text in shown:
        if sections and len(sections[-1]) + 1 + len(text) <= SECTION_TEXT_LIMIT:
            sections[-1] += "\n" + text
        else:
            sections.append(text)
    blocks = [SectionBlock(text=MarkdownTextObject(text=section)) for section in sections]
    jobs = "1 failed job" if len(shown) == 1 else f"{len(shown)} failed jobs"
    header = f"{jobs} of this group:"
    names = ", ".join(p.line.job_name for p in lines[:MAX_LINES_PER_REPLY])
    text = safe_mrkdwn(" ".join(f"{header} {names}".split()), FALLBACK_TEXT_LIMIT)
    context = ContextBlock(elements=[MarkdownTextObject(text=header)])
    return SlackMessage(text=text, blocks=bounded_blocks([context, *blocks]))
