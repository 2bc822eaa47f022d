"""Classify common AWS Batch failures and give a one-line hint: the likely cause, the next step.

:data:`DIAGNOSES` is a table, read top to bottom: **the first entry whose matcher accepts the
job wins**, so specific causes come before general ones (an image that cannot be pulled also
means a job that never started). A job no entry matches gets no hint: no hint is better than
a wrong one, so every matcher needs a positive sign, a text AWS writes or a shape only one
cause leaves, never the absence of one.

To extend it in a fork, put your entries in front (they win) or behind, and pass the table::

    MINE = Diagnosis("license_server", "License server unreachable",
                     lambda job: "FlexNet" in (job.container_reason or ""),
                     "The license server did not answer: check the VPN, then retry.")
    build_failure_message(job, tail, diagnoses=(MINE, *DIAGNOSES))

Matchers look only at what the event says (status reason, container reason, exit code,
attempts, retry strategy); the texts they match are the ones AWS Batch, ECS and Kubernetes
write. Hints may quote event text (the instance id, a person's reason): the message builder
escapes them. A hint never recommends a setting the job already has (see :func:`_retry_advice`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chalicelib.reading.event import AttemptView, JobStateChange, RetryRule

Matcher = Callable[[JobStateChange], bool]
Hint = str | Callable[[JobStateChange], str]

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
def _last_attempt(job: JobStateChange) -> AttemptView | None:
    attempts = job.attempts
    return attempts[-1] if attempts else None


def _reasons(job: JobStateChange) -> str:
    """The reasons of the job's final outcome, one searchable string: its status reason, its
    container's reason and its last attempt's status reason. Earlier attempts are left out:
    the hint is about how the job ended (the attempts section shows the rest)."""
    last = _last_attempt(job)
    last_reason = last.status_reason if last else None
    return "\n".join(t for t in (job.status_reason, job.container_reason, last_reason) if t)


def _batch_reasons(job: JobStateChange) -> str:
    """Like :func:`_reasons` without the job's status reason: only what ECS or Kubernetes wrote.
    A terminated job's status reason is the caller's free text ("retry with more memory")."""
    last = _last_attempt(job)
    last_reason = last.status_reason if last else None
    return "\n".join(t for t in (job.container_reason, last_reason) if t)


def _reason_has(pattern: str, flags: int = 0) -> Matcher:
    compiled = re.compile(pattern, flags)
    return lambda job: bool(compiled.search(_reasons(job)))


def _ever_started(job: JobStateChange) -> bool:
    """A container ran: the job's startedAt, or any attempt's (an attempt's alone is enough:
    a newer job shape may leave the job's own field out)."""
    return job.started_at is not None or any(attempt.started_at for attempt in job.attempts)


def _one_line(text: str) -> str:
    """Event text for quoting inside a hint: one line, cut to :data:`QUOTED_REASON_LIMIT`."""
    text = " ".join(text.split())
    return text if len(text) <= QUOTED_REASON_LIMIT else text[: QUOTED_REASON_LIMIT - 1] + "…"


# -- the job's own retry strategy --------------------------------------------------------------
def _glob_matches(pattern: str | None, value: str | None) -> bool:
    """Batch's evaluateOnExit globs: exact text, or a prefix when the pattern ends with ``*``."""
    if pattern is None:
        return True  # the rule does not look at this field
    if value is None:
        return False
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


def _rule_matches(rule: RetryRule, job: JobStateChange) -> bool:
    last = _last_attempt(job)
    status_reason = (last.status_reason if last else None) or job.status_reason
    exit_code = job.exit_code
    return (_glob_matches(rule.on_status_reason, status_reason)
            and _glob_matches(rule.on_reason, job.container_reason)
            and _glob_matches(rule.on_exit_code, None if exit_code is None else str(exit_code)))


def _retry_advice(job: JobStateChange, field: str, glob: str, otherwise: str) -> str:
    """The next step for a failure a retry usually cures, given the job's own retryStrategy.

    Batch applies the first evaluateOnExit rule that matches the attempt and retries when none
    matches, within ``attempts``. So: advise the rule only to a job without it, say the retries
    ran out to one that retried, and name the rule that stopped a job that did not retry.
    """
    attempts = job.max_attempts or 1
    rule = next((r for r in job.retry_rules if r.action in ("RETRY", "EXIT") and _rule_matches(r, job)), None)
    if rule is not None and rule.action == "EXIT":
        return (f"Its retryStrategy has an evaluateOnExit EXIT rule that matches this: put a RETRY rule on "
                f"{field} \"{glob}\" before it, or {otherwise}.")
    if attempts <= 1:
        if rule is not None:
            return (f"Its evaluateOnExit rule retries this, but retryStrategy attempts is {attempts}: raise it "
                    f"to 2 or more, or {otherwise}.")
        return (f"Retry it automatically: retryStrategy attempts of 2 or more with an evaluateOnExit RETRY rule "
                f"on {field} \"{glob}\", or {otherwise}.")
    used = len(job.attempts)
    if used >= attempts:
        return f"Its retryStrategy retries this and all {used} attempts were used: raise attempts, or {otherwise}."
    return f"Its retryStrategy retries this already: {otherwise}."


# -- out of memory ---------------------------------------------------------------------------
# The memory words ECS (OutOfMemoryError: Container killed due to memory usage) and Kubernetes
# (OOMKilled) use, looked for only where ECS and Kubernetes write. ECS may leave the exit code
# out (Fargate does); a container that exited on its own with another code did not run out.
_OOM_STRONG = re.compile(r"OutOfMemoryError|OOMKilled")
# The bare word "memory" only counts in a container's reason, and only with SIGKILL's 137.
_OOM_WEAK = re.compile(r"memory", re.IGNORECASE)


def _out_of_memory(job: JobStateChange) -> bool:
    if job.exit_code not in (None, 137):
        return False
    if _OOM_STRONG.search(_batch_reasons(job)):
        return True
    return job.exit_code == 137 and bool(_OOM_WEAK.search(job.container_reason or ""))


def _out_of_memory_hint(job: JobStateChange) -> str:
    # The exit code is quoted only when the event has it (Fargate's OOM kills may carry none).
    killed = "killed (exit 137)" if job.exit_code == 137 else "killed"
    if job.platform == "EKS":
        # EKS job definitions size a pod's containers in Kubernetes terms, not resourceRequirements.
        return (f"The container used more memory than its limit and was {killed}: raise its "
                "resources.limits.memory (and requests.memory) in the job definition's "
                "eksProperties.podProperties.containers, or make the job use less.")
    return (f"The container used more memory than it was given and was {killed}: raise MEMORY in the job "
            "definition's resourceRequirements (or at submit), or make the job use less.")


# -- lost capacity: Spot, scale-in, Docker gone --------------------------------------------------
# EC2 (Batch's words) and Fargate Spot (ECS's stopped reason); each with the glob a retry rule
# would use for it.
_HOST_TERMINATED = re.compile(r"Host EC2 \(instance (?P<instance>i-[0-9a-f]{8,17})\) terminated"
                              r"|(?P<fargate>Your Spot Task was interrupted)")


def _host_terminated_hint(job: JobStateChange) -> str:
    found = _HOST_TERMINATED.search(_reasons(job))
    instance = found.group("instance") if found and found.group("instance") else None
    glob = "Your Spot Task*" if found and found.group("fargate") else "Host EC2*"
    where = f"The instance under the job ({instance})" if instance else "The capacity under the job"
    advice = _retry_advice(job, "onStatusReason", glob,
                           "run jobs that cannot be interrupted on On-Demand capacity")
    return f"{where} was terminated: a Spot reclaim or a scale-in, not your code. {advice}"


def _cannot_inspect_hint(job: JobStateChange) -> str:
    advice = _retry_advice(job, "onReason", "CannotInspectContainerError*",
                           "give the instances headroom (a larger root volume, fewer jobs per instance)")
    return ("The ECS agent lost touch with the container: Docker on the instance stopped answering, usually "
            f"an instance short of memory, disk space or I/O. {advice}")


# Kubernetes' eviction message: "The node was low on resource: ephemeral-storage. ..."
_EVICTED = re.compile(r"^Evicted\b|The node was low on resource: (?P<resource>[a-z-]+)", re.MULTILINE)


def _evicted(job: JobStateChange) -> bool:
    return job.platform == "EKS" and bool(_EVICTED.search(_batch_reasons(job)))


def _evicted_hint(job: JobStateChange) -> str:
    found = _EVICTED.search(_batch_reasons(job))
    resource = found.group("resource") if found else None
    # Name only the resource the kubelet named: the job may already request the others.
    low = f"ran low on {resource}" if resource else "ran low on a resource"
    what = f"a request for {resource}" if resource else "requests for memory and ephemeral-storage"
    return (f"Kubernetes evicted the pod because its node {low}: give the container {what} equal to its "
            "limit, so the scheduler reserves it, or use nodes with more.")


# -- never placed: the queue's time limit -----------------------------------------------------
# A job stuck at the head of a queue carries Batch's blocking reason; a queue's
# jobStateTimeLimitActions then cancels it with "Canceled by JobStateTimeLimit action due to
# reason: <reason>" (AWS Batch User Guide, "Jobs stuck in a RUNNABLE status").
_RUNNABLE_LIMIT = re.compile(
    r"^\s*(?:(?P<action>Cancel+ed|Terminated) by JobStateTimeLimit action due to reason: )?"
    r"(?P<code>(?:CAPACITY|MISCONFIGURATION):[A-Z_]+)\b")
_RUNNABLE_ADVICE = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY":
        "EC2 had no capacity for the compute environments' instance types: allow more instance types and "
        "Availability Zones (subnets), or add a compute environment with other capacity to the queue.",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE":
        "the job asks for more vCPUs than the compute environments' maxvCpus: raise maxvCpus, or ask for fewer.",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT":
        "no instance type the compute environments may launch fits the job's vCPU, memory or GPU request: add a "
        "larger instance type, or ask for less (an instance can give a job a little less memory than its size).",
    "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS":
        "Batch's service role may not manage the compute environments: use the service-linked role "
        "(AWSServiceRoleForBatch) or give the role the AWSBatchServiceRole policy.",
}


def _runnable_limit(job: JobStateChange) -> bool:
    return not _ever_started(job) and bool(_RUNNABLE_LIMIT.match(job.status_reason or ""))


def _runnable_limit_hint(job: JobStateChange) -> str:
    found = _RUNNABLE_LIMIT.match(job.status_reason or "")
    code = found.group("code") if found else ""
    advice = _RUNNABLE_ADVICE.get(code, f"Batch could not place it ({code}): see \"Jobs stuck in a RUNNABLE "
                                        "status\" in the AWS Batch User Guide.")
    if found and found.group("action"):
        return f"The queue's jobStateTimeLimitActions cancelled it after it waited in RUNNABLE: {advice}"
    return f"It waited in RUNNABLE and was never placed: {advice}"


# -- terminated by a person or a tool ------------------------------------------------------------
# TerminateJob writes the caller's reason into the job's statusReason, and ECS stops the task:
# SIGTERM (143), or SIGKILL (137) after the grace period. A job that fails on its own carries
# its last attempt's reason (Batch copies it), so a started job with a signal's exit code whose
# reason is none of its attempts' is the trace a TerminateJob leaves. CancelJob leaves none:
# a cancelled job never started and its reason is free text, like the reasons of other jobs
# Batch never started, so a cancelled job gets no hint (the reason section quotes the caller).
_SIGNAL_EXIT_CODES = (137, 143)
# Batch's own stop reasons, in case one reaches here (entries above match most of them first).
_BATCH_STOP_REASONS = re.compile(
    r"Essential container in (?:task|pod) exited|Task failed to start|Job attempt duration exceeded timeout"
    r"|Dependent Job failed|Array Child Job failed|Host EC2 \(instance|Your Spot Task was interrupted"
    r"|\w+ by JobStateTimeLimit action|(?:CAPACITY|MISCONFIGURATION|ACTION_REQUIRED):"
    r"|[A-Z][A-Za-z]*(?:Error|Exception)\b")


def _terminated_by_caller(job: JobStateChange) -> bool:
    reason = job.status_reason
    if reason is None or not _ever_started(job) or job.exit_code not in _SIGNAL_EXIT_CODES:
        return False
    if _BATCH_STOP_REASONS.match(reason.strip()):
        return False
    return all(attempt.status_reason != reason for attempt in job.attempts)


def _terminated_hint(job: JobStateChange) -> str:
    reason = _one_line(job.status_reason or "")
    return (f"It was terminated while it ran (TerminateJob, by a person or a tool), with the reason: “{reason}”. "
            "Nothing failed on its own: ask them before resubmitting.")


def _image_pull_hint(job: JobStateChange) -> str:
    if job.platform == "EKS":
        who = "that the node role (or the pod's imagePullSecrets) may pull it"
    else:
        who = ("that the instance role (EC2) or execution role (Fargate) may pull it (ecr:BatchGetImage, "
               "ecr:GetAuthorizationToken)")
    where = "the nodes' subnets reach" if job.platform == "EKS" else "the subnet reaches"
    return (f"The container image could not be pulled: check that the image and tag exist, {who}, and that "
            f"{where} the registry (NAT gateway or ECR VPC endpoints).")


def _never_started(job: JobStateChange) -> bool:
    # Only for a job Batch tried to start: an attempt, or a container reason, says it did. A job
    # with neither never left the queue (a cancellation), and its reason is all there is to say.
    return job.never_started and not _ever_started(job) and bool(job.attempts or job.container_reason)


# -- the table ---------------------------------------------------------------------------------
DIAGNOSES: tuple[Diagnosis, ...] = (
    # Definite Batch texts on jobs that never ran first: they say exactly what happened.
    Diagnosis(
        "dependency_failed", "A job it depends on failed",
        lambda job: (job.status_reason or "").startswith("Dependent Job failed"),
        "Batch never ran this job because a job in its dependsOn failed: fix that job first (it has its own "
        "alert), then resubmit this one.",
    ),
    Diagnosis(
        "runnable_time_limit", "Never placed on capacity",
        _runnable_limit,
        _runnable_limit_hint,
    ),
    # ECS's and Kubernetes' texts for an image that could not be pulled.
    Diagnosis(
        "image_pull", "Image could not be pulled",
        _reason_has(r"CannotPullContainerError|\bErrImagePull\b|\bImagePullBackOff\b"),
        _image_pull_hint,
    ),
    Diagnosis(
        "resource_initialization", "Task resources could not be set up",
        _reason_has(r"ResourceInitializationError"),
        "The task's resources could not be set up before the container started (secrets, network interface or "
        "log driver): check that the execution role can read the job's secrets (and their KMS key), that the "
        "subnets have free IPs and reach Secrets Manager/SSM/CloudWatch Logs, and that the log configuration is valid.",
    ),
    # Capacity lost under a running job: not the job's fault, and a retry usually cures it.
    Diagnosis(
        "cannot_inspect_container", "The instance's Docker stopped answering",
        _reason_has(r"CannotInspectContainerError"),
        _cannot_inspect_hint,
    ),
    Diagnosis(
        "host_terminated", "Spot or host termination",
        lambda job: bool(_HOST_TERMINATED.search(_reasons(job))),
        _host_terminated_hint,
    ),
    # Before out-of-memory: an eviction for memory pressure names memory too.
    Diagnosis(
        "pod_evicted", "Pod evicted from its node",
        _evicted,
        _evicted_hint,
    ),
    # Before out-of-memory: a timed-out attempt is killed with SIGKILL, exit 137 too. Kubernetes
    # says DeadlineExceeded for a pod that outlived its deadline.
    Diagnosis(
        "timeout", "Attempt timed out",
        _reason_has(r"Job attempt duration exceeded timeout|\bDeadlineExceeded\b"),
        "The attempt ran longer than the job's timeout (attemptDurationSeconds) and Batch stopped it: raise the "
        "timeout in the job definition or at submit, or find out from the log tail why it ran slower than usual.",
    ),
    Diagnosis(
        "out_of_memory", "Out of memory",
        _out_of_memory,
        _out_of_memory_hint,
    ),
    # After the definite texts: a TerminateJob's trace, not merely an unknown reason.
    Diagnosis(
        "stopped_by_person", "Terminated",
        _terminated_by_caller,
        _terminated_hint,
    ),
    # Last: the catch-all for jobs Batch tried and failed to start, once the specific causes are ruled out.
    Diagnosis(
        "never_started", "Never started",
        _never_started,
        "No attempt started a container, so there are no logs: the reasons above say what stopped it; check the "
        "job definition (image, secrets, volumes, command) and the compute environment (capacity, subnets, roles).",
    ),
)


def diagnose(job: JobStateChange, diagnoses: Sequence[Diagnosis] | None = None) -> Finding | None:
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
        except Exception:
            continue
    return None
