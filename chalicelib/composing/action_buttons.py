"""The buttons people act with: retry, retry with more memory, terminate, acknowledge, snooze.

Pure: a job (or a stuck report's jobs) and what may be offered in, Block Kit elements out.
:func:`offer_for` decides which actions a job's message gets; :func:`with_action_buttons` adds
them to a message, after its link buttons; :func:`stuck_report_buttons` adds one actions block
per job of a stuck-job report.

Every button's ``value`` is the job's ARN and nothing else (never a secret: the click handler
looks the job up again with DescribeJobs); the snooze select's option values are
``<duration>|<job ARN>``. A job whose ARN is missing, is not shaped like a Batch job ARN, or is
too long for Slack's value limits gets no button that would need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    InteractiveElement,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from chalicelib.composing.messages import SlackMessage
from chalicelib.composing.mrkdwn import MAX_ACTIONS_ELEMENTS, MAX_BLOCKS, safe_plain
from chalicelib.deciding.diagnosis import diagnose
from chalicelib.reading.event import JobStateChange
from chalicelib.reading.job_arn import JOB_ARN

if TYPE_CHECKING:
    from chalicelib.reading.batch_api import JobSummary

RETRY_JOB = "retry_job"
RETRY_JOB_MORE_MEMORY = "retry_job_more_memory"
TERMINATE_JOB = "terminate_job"
ACKNOWLEDGE = "acknowledge"
SNOOZE = "snooze"
UNSNOOZE = "unsnooze"
ACTION_IDS = frozenset({RETRY_JOB, RETRY_JOB_MORE_MEMORY, TERMINATE_JOB, ACKNOWLEDGE, SNOOZE, UNSNOOZE})
# The snooze select's choices: option value prefix -> label. The click handler parses the prefix.
SNOOZE_DURATIONS: tuple[tuple[str, str], ...] = (("1h", "1 hour"), ("4h", "4 hours"), ("24h", "24 hours"),
                                                 ("7d", "7 days"))
SNOOZE_SEPARATOR = "|"
OUT_OF_MEMORY = "out_of_memory"  # deciding/diagnosis.py's entry name

# Slack's limits (Block Kit reference) for what this module writes.
BUTTON_VALUE_LIMIT = 2000
OPTION_VALUE_LIMIT = 150
CONFIRM_TITLE_LIMIT = 100
CONFIRM_TEXT_LIMIT = 300
# The job name quoted in a confirm dialog: short enough to leave the question readable.
CONFIRM_NAME_LIMIT = 150

@dataclass(frozen=True)
class ActionOffer:
    """Which actions a message offers. :data:`NO_ACTIONS` offers none."""

    retry: bool = False
    more_memory: bool = False
    terminate: bool = False
    acknowledge: bool = False
    snooze: bool = False

    @property
    def any(self) -> bool:
        """Whether anything is offered at all."""
        return self.retry or self.more_memory or self.terminate or self.acknowledge or self.snooze


NO_ACTIONS = ActionOffer()


def is_job_arn(value: str | None) -> bool:
    """Whether ``value`` is shaped like a Batch job ARN and fits a button's value."""
    return value is not None and len(value) <= BUTTON_VALUE_LIMIT and JOB_ARN.fullmatch(value) is not None


def _is_child(job_id: str | None) -> bool:
    # An array child ("<parent>:<index>") or a multi-node node ("<id>#<node>"): retry the parent.
    return job_id is not None and (":" in job_id or "#" in job_id)


def offer_for(job: JobStateChange, *, signing_on: bool, allowed: bool) -> ActionOffer:
    """The actions ``job``'s message offers.

    ``signing_on``: bot mode with a signing secret (clicks can be verified); without it, nothing.
    ``allowed``: someone may retry or terminate on the job's route (``Decision.actions_allow``).
    FAILED: retry and, for an out-of-memory failure, retry with more memory (when allowed),
    acknowledge, snooze. Queue blocked: terminate (when allowed), acknowledge. An array child
    or a node job is retried through its parent, so it gets no retry buttons.
    """
    if not signing_on or not is_job_arn(job.job_arn):
        return NO_ACTIONS
    if job.is_queue_blocked:
        return ActionOffer(terminate=allowed, acknowledge=True)
    if job.status != "FAILED":
        return NO_ACTIONS
    retry = allowed and not _is_child(job.job_id)
    finding = diagnose(job) if retry else None
    return ActionOffer(retry=retry, more_memory=finding is not None and finding.name == OUT_OF_MEMORY,
                       acknowledge=True, snooze=True)


# -- the elements ------------------------------------------------------------------------------
def _confirm(title: str, question: str, confirm: str, *, danger: bool = False) -> ConfirmObject:
    return ConfirmObject(title=PlainTextObject(text=safe_plain(title, CONFIRM_TITLE_LIMIT)),
                         text=PlainTextObject(text=safe_plain(question, CONFIRM_TEXT_LIMIT)),
                         confirm=PlainTextObject(text=confirm), deny=PlainTextObject(text="Cancel"),
                         style="danger" if danger else "primary")


def _name_of(name: str | None, job_arn: str) -> str:
    # The job name is the submitter's text: plain_text shows it literally; bound it for the dialog.
    return safe_plain(name or job_arn.rsplit("/", 1)[-1], CONFIRM_NAME_LIMIT) or "this job"


def retry_button(job_arn: str, job_name: str | None) -> ButtonElement:
    """``retry_job``: submit the job again exactly as it ran, after a confirm dialog."""
    name = _name_of(job_name, job_arn)
    return ButtonElement(text="Retry", action_id=RETRY_JOB, value=job_arn, style="primary", confirm=_confirm(
        "Retry this job?", f"Retry {name}? It is submitted again with the same definition, queue, parameters "
        "and overrides.", "Retry"))


def more_memory_button(job_arn: str, job_name: str | None) -> ButtonElement:
    """``retry_job_more_memory``: retry with every container's memory doubled (capped)."""
    # Imported here: resubmit's job description parser is for clicks, not for composing messages.
    from chalicelib.deciding.resubmit import DEFAULT_MEMORY_CAP_MIB

    name = _name_of(job_name, job_arn)
    cap = f"{DEFAULT_MEMORY_CAP_MIB // 1024} GiB"
    return ButtonElement(text="Retry with 2× memory", action_id=RETRY_JOB_MORE_MEMORY, value=job_arn,
                         confirm=_confirm("Retry with more memory?", f"Retry {name} with its memory doubled "
                                          f"(capped at {cap})? Everything else stays as it ran.", "Retry"))


def terminate_button(job_arn: str, job_name: str | None) -> ButtonElement:
    """``terminate_job``: TerminateJob, naming the person in the reason, after a confirm dialog."""
    name = _name_of(job_name, job_arn)
    return ButtonElement(text="Terminate", action_id=TERMINATE_JOB, value=job_arn, style="danger",
                         confirm=_confirm("Terminate this job?", f"Terminate {name}? This cannot be undone.",
                                          "Terminate", danger=True))


def acknowledge_button(job_arn: str) -> ButtonElement:
    """``acknowledge``: say someone is on it; later events for the job mention no one."""
    return ButtonElement(text="Acknowledge", action_id=ACKNOWLEDGE, value=job_arn)


def snooze_select(job_arn: str) -> StaticSelectElement | None:
    """``snooze``: no messages for this job name in this queue for a while; ``None`` if the ARN is
    too long for Slack's option values (``7d|<ARN>`` must fit 150 characters)."""
    values = [(f"{duration}{SNOOZE_SEPARATOR}{job_arn}", label) for duration, label in SNOOZE_DURATIONS]
    if any(len(value) > OPTION_VALUE_LIMIT for value, _ in values):
        return None
    return StaticSelectElement(action_id=SNOOZE, placeholder=PlainTextObject(text="Snooze…"),
                               options=[Option(value=value, label=label) for value, label in values])


ActionElement = ButtonElement | StaticSelectElement


def action_elements(job_arn: str, job_name: str | None, offer: ActionOffer) -> list[ActionElement]:
    """The offered elements for one job, most important first (the order they are kept in when
    an actions block has no room for all)."""
    if not is_job_arn(job_arn):
        return []
    wanted: list[ActionElement | None] = [
        retry_button(job_arn, job_name) if offer.retry else None,
        more_memory_button(job_arn, job_name) if offer.more_memory else None,
        terminate_button(job_arn, job_name) if offer.terminate else None,
        acknowledge_button(job_arn) if offer.acknowledge else None,
        snooze_select(job_arn) if offer.snooze else None,
    ]
    return [element for element in wanted if element is not None]


# -- adding them to messages ---------------------------------------------------------------------
def with_action_buttons(message: SlackMessage, job: JobStateChange, offer: ActionOffer) -> SlackMessage:
    """``message`` with the offered actions after its link buttons.

    A message rendered from parts gets its ``actions`` part extended and is rendered again, so a
    later re-render (mentions, the conversation's headline) keeps them. Any other message gets an
    actions block before its last (context) block.
    Slack's 25 elements per actions block and 50 blocks per message are kept: what has no room
    is left out: the extra containers' log buttons first, then the least important actions.
    """
    elements = action_elements(job.job_arn or "", job.job_name, offer) if offer.any else []
    if not elements:
        return message
    if message.parts is None:
        return _with_actions_block(message, elements)
    parts = message.parts
    # Added once: a second call (or a fork's own button of the same id) must not repeat an action_id.
    present = {element.action_id for element in parts.actions}
    offered = [e for e in elements if e.action_id not in present]
    existing = _making_room(list(parts.actions), len(offered))
    kept = offered[:max(0, MAX_ACTIONS_ELEMENTS - len(existing))]
    return replace(parts, actions=(*existing, *kept)).render()


_Element = ButtonElement | StaticSelectElement
# Log buttons after the first ("view_logs_2", ...): one container's log each.
_EXTRA_LOG_BUTTON = "view_logs_"


def _making_room(existing: list[_Element], wanted: int) -> list[_Element]:
    """``existing`` without as many of its extra log buttons (the last first) as ``wanted`` more
    elements need to fit: a button that acts outranks the 24th container's log link."""
    overflow = len(existing) + wanted - MAX_ACTIONS_ELEMENTS
    extra_logs = [i for i, e in enumerate(existing) if (e.action_id or "").startswith(_EXTRA_LOG_BUTTON)]
    dropped = set(extra_logs[-overflow:]) if overflow > 0 else set()
    return [e for i, e in enumerate(existing) if i not in dropped]


def _with_actions_block(message: SlackMessage, elements: Sequence[InteractiveElement]) -> SlackMessage:
    if not message.blocks or len(message.blocks) >= MAX_BLOCKS:
        return message
    *body, last = message.blocks
    actions = ActionsBlock(elements=list(elements[:MAX_ACTIONS_ELEMENTS]))
    return replace(message, blocks=(*body, actions, last))


def stuck_report_buttons(blocks: Sequence[Block], jobs: Sequence[JobSummary], *, signing_on: bool,
                         allowed: bool) -> tuple[Block, ...]:
    """A stuck-job report's ``blocks`` with an actions block after each shown job's section:
    terminate (when ``allowed``) and acknowledge, each valued with that job's ARN.

    ``jobs`` are the shown jobs, in the order of their sections, which are the blocks just
    before the report's last (context) block (as ``scheduled/stuck.build_stuck_message`` lays
    them out, with or without a cc line). Blocks laid out otherwise are returned unchanged, as
    are all of them without ``signing_on``. Jobs are given buttons in order while the report
    stays within Slack's 50 blocks.
    """
    count = len(jobs)
    if not signing_on or count == 0 or len(blocks) < count + 1:
        return tuple(blocks)
    start = len(blocks) - 1 - count
    sections = blocks[start:-1]
    if not all(isinstance(section, SectionBlock) for section in sections):
        return tuple(blocks)
    offer = ActionOffer(terminate=allowed, acknowledge=True)
    room = MAX_BLOCKS - len(blocks)
    out: list[Block] = list(blocks[:start])
    for section, job in zip(sections, jobs, strict=True):
        out.append(section)
        elements = action_elements(job.job_arn or "", job.name, offer) if room > 0 else []
        if elements:
            out.append(ActionsBlock(elements=elements))
            room -= 1
    out.append(blocks[-1])
    return tuple(out)
