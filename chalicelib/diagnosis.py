"""Classify common AWS Batch failures and give a one-line hint: the likely cause, the next step.

:data:`DIAGNOSES` is a table, read top to bottom: **the first entry whose matcher accepts the
job wins**, so specific causes come before general ones (an image that cannot be pulled also
means a job that never started; a cancelled job never started either). A job no entry
matches gets no hint: no hint is better than a wrong one.

To extend it in a fork, put your entries in front (they win) or behind, and pass the table::

    MINE = Diagnosis("license_server", "License server unreachable",
                     lambda job: "FlexNet" in (job.container_reason or ""),
                     "The license server did not answer: check the VPN, then retry.")
    build_failure_message(job, tail, diagnoses=(MINE, *DIAGNOSES))

Matchers look only at what the event says (status reason, container reason, exit code,
attempts); the texts they match are the ones AWS Batch, ECS and Kubernetes write. Hints may
quote event text (the instance id, a person's reason): the message builder escapes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

from chalicelib.event import JobStateChange

Matcher = Callable[[JobStateChange], bool]
Hint = Union[str, Callable[[JobStateChange], str]]

# A reason quoted inside a hint is cut to this: the full text is in the message's reason section.
QUOTED_REASON_LIMIT = 300


@dataclass(frozen=True)
class Diagnosis:
    """One table entry: ``name`` (stable id, for tests and logs), ``title`` (shown in bold),
    ``matches`` (a predicate over the job view) and ``hint`` (text, or a function of the job)."""

    name: str
    title: str
    matches: Matcher
    hint: Hint

    def hint_for(self, job: JobStateChange) -> str:
        """The hint text for ``job`` (untrusted parts included: escape before showing)."""
        return self.hint(job) if callable(self.hint) else self.hint


@dataclass(frozen=True)
class Finding:
    """The entry that matched a job, with its hint worked out."""

    name: str
    title: str
    hint: str


# -- what the event says ---------------------------------------------------------------------
def _reasons(job: JobStateChange) -> str:
    """The reasons of the job's final outcome, one searchable string: its status reason, its
    container's reason and its last attempt's status reason. Earlier attempts are left out:
    the hint is about how the job ended (the attempts section shows the rest)."""
    last = job.attempts[-1].status_reason if job.attempts else None
    return "\n".join(t for t in (job.status_reason, job.container_reason, last) if t)


def _reason_has(pattern: str, flags: int = 0) -> Matcher:
    compiled = re.compile(pattern, flags)
    return lambda job: bool(compiled.search(_reasons(job)))


# EC2 (Batch's words) and Fargate Spot (ECS's stopped reason).
_HOST_TERMINATED = re.compile(r"Host EC2 \(instance (?P<instance>i-[0-9a-f]{8,17})\) terminated"
                              r"|Your Spot Task was interrupted")
# The memory words ECS (OutOfMemoryError: Container killed due to memory usage) and Kubernetes
# (OOMKilled) use. The bare word "memory" only counts in a container's reason, which Batch
# writes; a status reason can be a person's free text ("retry with more memory").
_OOM_STRONG = re.compile(r"OutOfMemoryError|OOMKilled")
_OOM_WEAK = re.compile(r"memory", re.IGNORECASE)


def _out_of_memory(job: JobStateChange) -> bool:
    if job.exit_code != 137:
        return False
    return bool(_OOM_STRONG.search(_reasons(job)) or _OOM_WEAK.search(job.container_reason or ""))


def _host_terminated_hint(job: JobStateChange) -> str:
    found = _HOST_TERMINATED.search(_reasons(job))
    instance = found.group("instance") if found and found.group("instance") else None
    where = f"The instance under the job ({instance})" if instance else "The capacity under the job"
    return (f"{where} was terminated: a Spot reclaim or a scale-in, not your code. Retry it "
            "automatically with a retryStrategy evaluateOnExit rule on onStatusReason \"Host EC2*\", "
            "or run jobs that cannot be interrupted on On-Demand capacity.")


# Texts AWS Batch / ECS / Kubernetes write into statusReason themselves. A FAILED job whose
# status reason is none of these carries the reason a person (or a tool) gave CancelJob or
# TerminateJob. Matched at the start of the reason.
_SYSTEM_REASONS = re.compile(
    r"Essential container in (?:task|pod) exited"
    r"|Task failed to start"
    r"|Job attempt duration exceeded timeout"
    r"|Dependent Job failed"
    r"|Array Child Job failed"
    r"|Host EC2 \(instance"
    r"|Your Spot Task was interrupted"
    r"|Timeout waiting for network interface provisioning"
    r"|[A-Z][A-Za-z]*(?:Error|Exception)\b"        # CannotPullContainerError: ..., OutOfMemoryError: ...
    r"|[A-Z_]+:[A-Z_]+"                             # MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT (queue actions)
)
# A job stopped from outside ends with SIGTERM (143) or, after the grace period, SIGKILL (137);
# one that never got a container has no exit code.
_STOPPED_FROM_OUTSIDE = (None, 137, 143)


def _stopped_by_person(job: JobStateChange) -> bool:
    reason = job.status_reason
    if reason is None or _SYSTEM_REASONS.match(reason.strip()):
        return False
    attempts = job.attempts
    return not attempts or attempts[-1].container.exit_code in _STOPPED_FROM_OUTSIDE


def _stopped_by_person_hint(job: JobStateChange) -> str:
    reason = " ".join((job.status_reason or "").split())
    if len(reason) > QUOTED_REASON_LIMIT:
        reason = reason[: QUOTED_REASON_LIMIT - 1] + "…"
    how = "terminated while it ran" if any(a.started_at for a in job.attempts) else "cancelled before it started"
    return (f"It was {how} by a person or a tool (CancelJob/TerminateJob), who gave the reason: “{reason}”. "
            "Nothing failed on its own: ask them before resubmitting.")


# -- the table ---------------------------------------------------------------------------------
DIAGNOSES: tuple[Diagnosis, ...] = (
    # Definite Batch texts first: they say exactly what happened.
    Diagnosis(
        "dependency_failed", "A job it depends on failed",
        lambda job: (job.status_reason or "").startswith("Dependent Job failed"),
        "Batch never ran this job because a job in its dependsOn failed: fix that job first (it has its own "
        "alert), then resubmit this one.",
    ),
    Diagnosis(
        "image_pull", "Image could not be pulled",
        _reason_has(r"CannotPullContainerError"),
        "The container image could not be pulled: check that the image and tag exist, that the instance role "
        "(EC2) or execution role (Fargate) may pull it (ecr:BatchGetImage, ecr:GetAuthorizationToken), and that "
        "the subnet reaches the registry (NAT gateway or ECR VPC endpoints).",
    ),
    Diagnosis(
        "resource_initialization", "Task resources could not be set up",
        _reason_has(r"ResourceInitializationError"),
        "The task's resources could not be set up before the container started (secrets, network interface or "
        "log driver): check that the execution role can read the job's secrets (and their KMS key), that the "
        "subnets have free IPs and reach Secrets Manager/SSM/CloudWatch Logs, and that the log configuration is valid.",
    ),
    Diagnosis(
        "host_terminated", "Spot or host termination",
        lambda job: bool(_HOST_TERMINATED.search(_reasons(job))),
        _host_terminated_hint,
    ),
    # Before out-of-memory: a timed-out attempt is killed with SIGKILL, exit 137 too.
    Diagnosis(
        "timeout", "Attempt timed out",
        _reason_has(r"Job attempt duration exceeded timeout"),
        "The attempt ran longer than the job's timeout (attemptDurationSeconds) and Batch stopped it: raise the "
        "timeout in the job definition or at submit, or find out from the log tail why it ran slower than usual.",
    ),
    Diagnosis(
        "out_of_memory", "Out of memory",
        _out_of_memory,
        "The container used more memory than it was given and was killed (exit 137): raise MEMORY in the job "
        "definition's resourceRequirements (or at submit), or make the job use less.",
    ),
    # After the definite texts: it recognises a person's reason by it being none of Batch's.
    Diagnosis(
        "stopped_by_person", "Cancelled or terminated",
        _stopped_by_person,
        _stopped_by_person_hint,
    ),
    # Last: the catch-all for jobs that never ran a container, once the specific causes are ruled out.
    Diagnosis(
        "never_started", "Never started",
        lambda job: job.never_started,
        "No attempt started a container, so there are no logs: the reasons above say what stopped it; check the "
        "job definition (image, secrets, volumes, command) and the compute environment (capacity, subnets, roles).",
    ),
)


def diagnose(job: JobStateChange, diagnoses: Optional[Sequence[Diagnosis]] = None) -> Optional[Finding]:
    """The first entry of ``diagnoses`` (default :data:`DIAGNOSES`) matching a FAILED job, or ``None``.

    Only FAILED jobs are diagnosed. A matcher that raises counts as no match: a fork's
    entry must not cost the notification.
    """
    if job.status != "FAILED":
        return None
    for entry in DIAGNOSES if diagnoses is None else diagnoses:
        try:
            if entry.matches(job):
                return Finding(entry.name, entry.title, entry.hint_for(job))
        except Exception:  # noqa: BLE001 - see the docstring
            continue
    return None
