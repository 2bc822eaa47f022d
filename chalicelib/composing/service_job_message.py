"""Messages for service jobs: SageMaker training jobs that AWS Batch queued. Pure: view in, blocks out.

Built from the same named parts as a container job's message (``messages.MessageParts``), so the
route's mentions, the conversation's headline and thread, and the storms treat them alike:

- :func:`build_service_job_message`: FAILED and SUCCEEDED (any state): the training job, the
  status reason (SageMaker's, as Batch passes it on), a diagnosis when the reason is one AWS
  documents, the attempts (each its own training job, with its duration, reason and link),
  duration, queue, share and priority; buttons to the training job in SageMaker AI, its logs
  under ``/aws/sagemaker/TrainingJobs`` and the service job in AWS Batch.
- :func:`build_service_queue_blocked_message`: the queue a RUNNABLE service job blocks, and why.

No log tail: the training job's streams are one per instance (``<name>/algo-N-<epoch>``), and
the message links to them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from slack_sdk.models.blocks import ButtonElement

from chalicelib.composing.failure_message import (
    ATTEMPT_REASON_LIMIT,
    ATTEMPT_TEXT_LIMIT,
    ATTEMPT_URL_LIMIT,
    DIAGNOSIS_EMOJI,
    attempt_history,
    shown_attempts,
)
from chalicelib.composing.messages import (
    UNKNOWN,
    Fact,
    MessageParts,
    Reason,
    SlackMessage,
    build_job_state_message,
    build_queue_blocked_message,
    format_duration,
    style_for,
)
from chalicelib.composing.mrkdwn import (
    BUTTON_TEXT_LIMIT,
    BUTTON_URL_LIMIT,
    CONTEXT_TEXT_LIMIT,
    FALLBACK_TEXT_LIMIT,
    SECTION_TEXT_LIMIT,
    escape,
    safe_mrkdwn,
    safe_plain,
    truncate,
)
from chalicelib.deciding.diagnosis import Diagnosis, Finding, diagnose
from chalicelib.reading.event import JobStateChange
from chalicelib.reading.links import batch_service_job_url, sagemaker_training_job_url, training_job_logs_url
from chalicelib.reading.service_event import SAGEMAKER_TRAINING, ServiceAttemptView, ServiceJobStateChange

# -- diagnosis: only texts AWS documents ------------------------------------------------------------
# AWS Batch prefixes what SageMaker AI says with this ("Service job retry strategies", AWS Batch User
# Guide), and names a lack of capacity CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY ("Jobs stuck in
# RUNNABLE due to capacity"), which a queue's jobStateTimeLimitActions may end the job on.
FROM_SAGEMAKER = "Received status from SageMaker: "
INSUFFICIENT_CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
_TIME_LIMIT = "JobStateTimeLimit"


def _reasons(job: JobStateChange) -> str:
    """The job's status reason and its last attempt's: what the hint is about (how it ended)."""
    last = job.attempts[-1].status_reason if job.attempts else None
    return "\n".join(t for t in (job.status_reason, last) if t)


def _says(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text))


_CAPACITY = re.compile(re.escape(INSUFFICIENT_CAPACITY) + r"|\bCapacityError\b")
_VALIDATION = _says(FROM_SAGEMAKER + "ValidationException")
_RESOURCE_LIMIT = _says(FROM_SAGEMAKER + "ResourceLimitExceeded")
_INTERNAL_ERROR = _says(FROM_SAGEMAKER + "InternalServerError")


def _capacity_hint(job: JobStateChange) -> str:
    if job.status != "FAILED":
        return ("SageMaker AI has no capacity for the instances its training job asks for, so it waits in RUNNABLE: "
                "AWS Batch retries it without using up its retry attempts.")
    if _TIME_LIMIT in (job.status_reason or ""):
        return ("The queue's jobStateTimeLimitActions ended its wait: SageMaker AI had no capacity for the instances "
                "its training job asks for (CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY) in the time the queue allows.")
    return ("SageMaker AI had no capacity for the instances its training job asks for. AWS Batch retries such "
            "failures without using up the job's retry attempts: nothing in the job itself failed.")


def _internal_error_hint(job: JobStateChange) -> str:
    said = "An internal error of SageMaker AI, not of the job: a retry usually gets past it."
    if any(rule.action == "RETRY" and (rule.on_status_reason or "").startswith(FROM_SAGEMAKER + "InternalServer")
           for rule in job.retry_rules):
        return f"{said} Its retry strategy retries these, and every attempt it allowed met one."
    return (f"{said} A retryStrategy rule (evaluateOnExit, action RETRY, onStatusReason "
            f"\"{FROM_SAGEMAKER}InternalServerError*\") retries them automatically.")


SERVICE_DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis("sagemaker_capacity", "No SageMaker capacity", lambda job: bool(_CAPACITY.search(_reasons(job))),
              _capacity_hint),
    Diagnosis("sagemaker_validation", "SageMaker refused the request",
              lambda job: bool(_VALIDATION.search(_reasons(job))),
              "SageMaker AI found the training job's request invalid, a client error that a retry does not fix: "
              "correct the request (serviceRequestPayload, as for CreateTrainingJob) and submit the job again."),
    Diagnosis("sagemaker_resource_limit", "SageMaker resource limit reached",
              lambda job: bool(_RESOURCE_LIMIT.search(_reasons(job))),
              "SageMaker AI refused the training job because a resource limit of the account was reached "
              "(ResourceLimitExceeded): let other training jobs end, or raise the limit in Service Quotas, then "
              "submit it again."),
    Diagnosis("sagemaker_internal_error", "SageMaker internal error",
              lambda job: bool(_INTERNAL_ERROR.search(_reasons(job))), _internal_error_hint),
)


def _finding(job: JobStateChange, *, any_status: bool = False) -> Finding | None:
    """A FAILED job's diagnosis; with ``any_status``, of a blocked one too (capacity is why it waits)."""
    if not any_status:
        return diagnose(job, SERVICE_DIAGNOSES)
    for entry in SERVICE_DIAGNOSES:
        if entry.matches(job):
            return Finding(entry.name, entry.title, entry.hint_for(job))
    return None


def _diagnosis_text(finding: Finding | None) -> str | None:
    if finding is None:
        return None
    prefix = f"{DIAGNOSIS_EMOJI} *{escape(finding.title)}*: "
    return prefix + safe_mrkdwn(finding.hint, SECTION_TEXT_LIMIT - len(prefix))


# -- the parts -------------------------------------------------------------------------------------
def _kind(job: ServiceJobStateChange) -> str:
    return "Training job" if job.service_job_type in (SAGEMAKER_TRAINING, None) else "Service job"


def _headline(job: ServiceJobStateChange) -> str:
    # "Job failed" -> "Training job failed": the status styles' words, for a service job.
    words = style_for(job.status).headline.removeprefix("Job ")
    return f"{_kind(job)} {words}"


def _name(job: JobStateChange) -> str:
    return job.job_name or job.job_id or UNKNOWN


def _attempts_text(job: ServiceJobStateChange) -> str | None:
    count = len(job.attempts)
    if count == 0:
        return None
    return f"{count} of {job.max_attempts}" if job.max_attempts else str(count)


def _duration_text(job: ServiceJobStateChange) -> str | None:
    if job.duration is not None:
        return format_duration(job.duration)
    return "never started" if job.never_started else None


def service_job_facts(job: ServiceJobStateChange) -> tuple[Fact, ...]:
    """Status, queue and training job always; attempts, duration, share, priority, timeout when the event says."""
    always: tuple[Fact, ...] = (("Status", job.status), ("Job queue", job.job_queue_name),
                                ("Training job", job.training_job_name))
    priority = job.scheduling_priority
    preempted = job.preempted_attempts
    optional: tuple[Fact, ...] = (
        ("Attempts", _attempts_text(job)),
        ("Duration", _duration_text(job)),
        ("Share", job.share_identifier),
        ("Priority", None if priority is None else str(priority)),
        ("Attempt timeout", format_duration(job.attempt_timeout)),
        ("Preempted attempts", str(preempted) if preempted else None),
        ("Service job type", None if job.service_job_type in (SAGEMAKER_TRAINING, None) else job.service_job_type),
    )
    return (*always, *((label, value) for label, value in optional if value))


def service_job_reasons(job: ServiceJobStateChange) -> tuple[Reason, ...]:
    """The status reason, and the last attempt's when it says something else."""
    reasons: list[Reason] = []
    if job.status_reason:
        reasons.append(("Status reason", job.status_reason))
    last = job.attempts[-1].status_reason if job.attempts else None
    if last and (job.status_reason is None or last not in job.status_reason):
        reasons.append(("Last attempt's reason", last))
    return tuple(reasons)


def _attempt_line(job: ServiceJobStateChange, number: int, attempt: ServiceAttemptView) -> str:
    if attempt.started_at is not None:
        duration = format_duration(attempt.duration) or "still running"
    else:
        duration = "did not start"
    parts = [duration]
    if attempt.status_reason:
        parts.append(safe_mrkdwn(" ".join(attempt.status_reason.split()), ATTEMPT_REASON_LIMIT))
    text = truncate(f"{number}. " + " · ".join(parts), ATTEMPT_TEXT_LIMIT)
    # Ours (region and name checked, nothing to escape but '&'): the attempt's own training job.
    url = sagemaker_training_job_url(job.region, attempt.training_job_name)
    return f"{text} · <{escape(url)}|training job>" if url and len(url) <= ATTEMPT_URL_LIMIT else text


def service_attempt_sections(job: ServiceJobStateChange) -> tuple[str, ...]:
    """The attempt history (two attempts or more), one section's worth each, the last 10 at most."""
    attempts = job.service_attempts
    return attempt_history([_attempt_line(job, n, attempts[n - 1]) for n in shown_attempts(len(attempts))],
                           len(attempts))


@dataclass(frozen=True)
class _Links:
    """A service job's link buttons, and what was left out (said in the context line)."""

    buttons: tuple[ButtonElement, ...]
    left_out: str | None


def service_job_buttons(job: ServiceJobStateChange) -> _Links:
    """Buttons to the training job (SageMaker AI), its logs (CloudWatch Logs) and the service job (AWS Batch)."""
    name = job.training_job_name
    wanted = (("Training job", "open_training_job", sagemaker_training_job_url(job.region, name)),
              ("Training logs", "view_logs", training_job_logs_url(job.region, name)),
              ("Open in AWS Batch", "open_in_batch", batch_service_job_url(job.region, job.job_id)))
    buttons = [ButtonElement(text=safe_plain(label, BUTTON_TEXT_LIMIT), action_id=action_id, url=url)
               for label, action_id, url in wanted if url and len(url) <= BUTTON_URL_LIMIT]
    left_out = None
    if name is None and job.attempts:
        left_out = "No training job link: the event names no training job ARN SageMaker AI would know."
    return _Links(tuple(buttons), left_out)


def _context(job: ServiceJobStateChange, left_out: str | None) -> tuple[str, ...]:
    # Each part bounded on its own, as the container jobs' context line.
    parts = [f"Service job ID `{safe_mrkdwn(job.job_id or UNKNOWN, 1000)}`",
             safe_mrkdwn(job.region or "unknown region", 100), f"account {safe_mrkdwn(job.account or UNKNOWN, 100)}"]
    if job.time:
        parts.append(safe_mrkdwn(job.time, 100))
    elements = [" · ".join(parts)]
    if left_out:
        elements.append(safe_mrkdwn(left_out, CONTEXT_TEXT_LIMIT))
    return tuple(elements)


def _text(emoji: str, line: str) -> str:
    # One line, escaped and bounded: what phones show in the notification.
    return f"{emoji} {safe_mrkdwn(' '.join(line.split()), FALLBACK_TEXT_LIMIT - len(emoji) - 1)}"


def _with_links(parts: MessageParts, job: ServiceJobStateChange) -> MessageParts:
    links = service_job_buttons(job)
    return replace(parts, actions=links.buttons, context=_context(job, links.left_out))


def service_job_parts(job: ServiceJobStateChange) -> MessageParts:
    """A service job's message by its parts: header, facts, reasons, diagnosis, attempts, buttons, context."""
    style = style_for(job.status)
    line = f"{_headline(job)}: {_name(job)}"
    if job.job_queue_name:
        line += f" in {job.job_queue_name}"
    if job.status_reason:
        line += f": {job.status_reason}"
    parts = MessageParts(text=_text(style.emoji, line), header=f"{style.emoji} {_headline(job)}: {_name(job)}",
                         facts=service_job_facts(job), reasons=service_job_reasons(job),
                         diagnosis=_diagnosis_text(_finding(job)), attempts=service_attempt_sections(job))
    return _with_links(parts, job)


def service_queue_blocked_parts(job: ServiceJobStateChange) -> MessageParts:
    """The parts of a "Batch Service Job Queue Blocked" warning: the queue, the service job blocking it, why."""
    queue = job.job_queue_name or UNKNOWN
    line = f"Job queue {queue} is blocked by {_name(job)}"
    if job.status_reason:
        line += f": {job.status_reason}"
    parts = MessageParts(
        text=_text(":warning:", line), header=f":warning: Job queue blocked: {queue}",
        facts=(("Job queue", job.job_queue_name), ("Blocking service job", job.job_name or job.job_id),
               ("Job status", job.status),
               # A RUNNABLE job has rarely been handed to SageMaker AI yet: shown only when it was.
               *((("Training job", job.training_job_name),) if job.training_job_name else ())),
        reasons=(("Why", job.status_reason),) if job.status_reason else (),
        diagnosis=_diagnosis_text(_finding(job, any_status=True)),
    )
    return _with_links(parts, job)


def build_service_job_message(job: JobStateChange) -> SlackMessage:
    """The message of a service job's state change (FAILED, SUCCEEDED or any other).

    Given a container job's view (a fork's routing gone wrong), the standard message.
    """
    if not isinstance(job, ServiceJobStateChange):
        return build_job_state_message(job)
    return service_job_parts(job).render()


def build_service_queue_blocked_message(job: JobStateChange) -> SlackMessage:
    """The warning of a "Batch Service Job Queue Blocked" event (the container warning for another view)."""
    if not isinstance(job, ServiceJobStateChange):
        return build_queue_blocked_message(job)
    return service_queue_blocked_parts(job).render()

