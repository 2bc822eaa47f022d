"""A typed, read-only view over a raw "Batch Job State Change" event.

Everything in the event is untrusted input: a field can be absent, empty or of the wrong
type (a hand-written test event, a newer AWS shape). Accessors therefore never raise: they
return ``None`` (or an empty tuple/mapping) for anything missing or malformed, and the
message builder shows what is there.

Each property says what AWS means by the field it reads (the ``JobDetail`` of DescribeJobs,
which the event's ``detail`` follows). The view only reads: what a route, a message or a
diagnosis makes of it lives in those stages. What is costly to derive (the attempts, the
containers, the log location) is computed once per event and kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from chalicelib.core.errors import BatchNotifyError

BATCH_SOURCE = "aws.batch"
JOB_STATE_CHANGE = "Batch Job State Change"
JOB_QUEUE_BLOCKED = "Batch Job Queue Blocked"
# Service jobs (SageMaker training run through AWS Batch service environments) have their own kinds.
SERVICE_JOB_STATE_CHANGE = "Batch Service Job State Change"
SERVICE_JOB_QUEUE_BLOCKED = "Batch Service Job Queue Blocked"
QUEUE_BLOCKED_KINDS = (JOB_QUEUE_BLOCKED, SERVICE_JOB_QUEUE_BLOCKED)
# The kinds read by reading/service_event.py's view.
SERVICE_KINDS = (SERVICE_JOB_STATE_CHANGE, SERVICE_JOB_QUEUE_BLOCKED)

# Fields a complete job state change carries; reported when absent so a person can tell a
# degraded message from a bug.
EXPECTED_DETAIL_FIELDS = ("jobName", "jobId", "jobQueue", "jobDefinition", "status")
# The EventBridge envelope every delivered event carries. An event without one was not
# delivered by EventBridge (a hand-made or truncated payload): it is rejected, not guessed at.
ENVELOPE_TEXT_FIELDS = ("version", "id", "time", "region", "account")
ENVELOPE_LIST_FIELDS = ("resources",)
# Where Batch sends a container's log unless its logConfiguration says otherwise.
DEFAULT_LOG_GROUP = "/aws/batch/job"
AWSLOGS_DRIVER = "awslogs"

_EMPTY: Mapping[str, Any] = {}


def raw_event(event: Any) -> Any:
    """The raw event dict, whether given a Chalice event object (``to_dict``) or the dict itself."""
    to_dict = getattr(event, "to_dict", None)
    return to_dict() if callable(to_dict) else event


class NotAJobStateChange(BatchNotifyError, ValueError):
    """The event is not an AWS Batch job state change this app can describe."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, (list, tuple)) else ()


# JSON may carry lone surrogates ("\ud800"), which no UTF-8 encoder (a URL, Slack's API) takes.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def as_text(value: Any) -> str | None:
    """A non-empty string, or ``None`` for anything else (absent, empty, another type).

    Lone surrogates become U+FFFD here, once, so no consumer meets text it cannot encode.
    """
    if not isinstance(value, str) or not value:
        return None
    return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)


def as_int(value: Any) -> int | None:
    """An integer, or ``None`` (a JSON ``true`` is not an exit code)."""
    # bool is an int in Python.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_utc_datetime(value: Any) -> datetime | None:
    """Epoch milliseconds (as Batch writes times) as an aware UTC datetime, or ``None``."""
    millis = as_int(value)
    if millis is None or millis <= 0:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _arn_resource_name(arn: str | None) -> str | None:
    """``arn:...:job-queue/name`` -> ``name``; a bare name is returned as is."""
    if arn is None:
        return None
    return arn.rsplit("/", 1)[-1] or None




def _span(start: datetime | None, stop: datetime | None) -> timedelta | None:
    if start is None or stop is None or stop < start:
        return None
    return stop - start


@dataclass(frozen=True)
class LogLocation:
    """Where a container's log lives in CloudWatch Logs."""

    region: str
    group: str
    stream: str


class ContainerView:
    """One container of a job or of one attempt: EC2 or Fargate, an EKS pod's container, or
    one container of a multi-container (``ecsProperties``) task.

    ``definition`` is the job-level entry of the same container: an attempt's containers carry
    only what happened (exit code, reason, stream), so their name, ``essential`` flag and log
    configuration come from there.
    """

    __slots__ = ("_definition", "_raw")

    def __init__(self, raw: Mapping[str, Any], definition: Mapping[str, Any] = _EMPTY) -> None:
        self._raw = raw
        self._definition = definition

    @property
    def name(self) -> str | None:
        """The container's name (multi-container and EKS jobs; single-container jobs have none)."""
        return as_text(self._raw.get("name")) or as_text(self._definition.get("name"))

    @property
    def essential(self) -> bool:
        """Whether the task stops when this container stops; omitted means essential (ECS)."""
        for source in (self._raw, self._definition):
            flag = source.get("essential")
            if isinstance(flag, bool):
                return flag
        return True

    @property
    def exit_code(self) -> int | None:
        """The exit code the container's process returned; absent if it never exited on its own."""
        return as_int(self._raw.get("exitCode"))

    @property
    def failed(self) -> bool:
        """It exited with a non-zero code."""
        return self.exit_code not in (None, 0)

    @property
    def reason(self) -> str | None:
        """Why the container stopped, in ECS's words (``OutOfMemoryError: ...``)."""
        return as_text(self._raw.get("reason"))

    @property
    def log_stream_name(self) -> str | None:
        """Its CloudWatch Logs stream; Batch names it once the container is RUNNING."""
        return as_text(self._raw.get("logStreamName"))

    def _log_configuration(self) -> Mapping[str, Any]:
        own = self._raw.get("logConfiguration")
        return own if isinstance(own, Mapping) else _mapping(self._definition.get("logConfiguration"))

    @property
    def log_driver(self) -> str | None:
        """``logConfiguration.logDriver``: where the log goes (``awslogs``, ``splunk``...); absent: awslogs."""
        return as_text(self._log_configuration().get("logDriver"))

    @property
    def log_options(self) -> Mapping[str, str]:
        """``logConfiguration.options`` of the driver (``awslogs-group``, ``awslogs-region``...)."""
        options = _mapping(self._log_configuration().get("options"))
        return {key: text for key, text in ((as_text(k), as_text(v)) for k, v in options.items()) if key and text}


def _task_containers(task_properties: Any) -> Iterator[Mapping[str, Any]]:
    """The container entries of ``taskProperties[].containers[]`` (ECS multi-container shapes)."""
    for task in _sequence(task_properties):
        for container in _sequence(_mapping(task).get("containers")):
            if isinstance(container, Mapping):
                yield container


_STOPPED_WITH_THE_TASK = (137, 143)


def principal_container(containers: Sequence[ContainerView]) -> ContainerView | None:
    """The container that speaks for a task: the first essential one that failed, else the first
    essential one, else the first that failed, else the first.

    A non-essential sidecar can fail without stopping the task, so it never decides the job's
    exit code while an essential container is there to do it.
    """
    essential = [c for c in containers if c.essential]
    for group in (essential, list(containers)):
        failed = [c for c in group if c.failed]
        # When one essential container fails, ECS stops the task and the others exit 143 (SIGTERM)
        # or 137 (SIGKILL): the one that failed on its own speaks for the task.
        for container in (*[c for c in failed if c.exit_code not in _STOPPED_WITH_THE_TASK], *failed, *group):
            return container
    return None


class AttemptView:
    """One entry of ``attempts`` (ECS-based jobs) or ``eksAttempts`` (EKS jobs)."""

    # __dict__ holds the cached properties.
    __slots__ = ("__dict__", "_definitions", "_raw")

    def __init__(self, raw: Mapping[str, Any],
                 definitions: Mapping[str | None, Mapping[str, Any]] | None = None) -> None:
        self._raw = raw
        # The job's own container entries by name (None: the single container of a classic job).
        self._definitions = definitions or {}

    @cached_property
    def containers(self) -> tuple[ContainerView, ...]:
        """Every container of the attempt: the one ``container``, the task's ``containers`` of a
        multi-container job, or the pod's containers of an EKS job."""
        container = self._raw.get("container")
        if isinstance(container, Mapping):
            return (ContainerView(container, self._definitions.get(None, _EMPTY)),)
        raw = [*_task_containers(self._raw.get("taskProperties"))]
        # EKS attempts list their pod's containers directly.
        raw += [c for c in _sequence(self._raw.get("containers")) if isinstance(c, Mapping)]
        return tuple(ContainerView(c, self._definition_of(as_text(c.get("name")))) for c in raw)

    @cached_property
    def containers_by_name(self) -> Mapping[str, ContainerView]:
        """The attempt's named containers by name (the first of a name): looked up once per
        container of the job, so a forged event of thousands of them stays linear."""
        named: dict[str, ContainerView] = {}
        for container in self.containers:
            if container.name is not None:
                named.setdefault(container.name, container)
        return named

    def _definition_of(self, name: str | None) -> Mapping[str, Any]:
        return self._definitions.get(name, _EMPTY) if name is not None else _EMPTY

    @cached_property
    def container(self) -> ContainerView:
        """The attempt's container; for several, the essential one (or the first that failed)."""
        return principal_container(self.containers) or ContainerView(_EMPTY)

    @property
    def started_at(self) -> datetime | None:
        """When the attempt went from STARTING to RUNNING; absent: it never started."""
        return as_utc_datetime(self._raw.get("startedAt"))

    @property
    def stopped_at(self) -> datetime | None:
        """When the attempt went from RUNNING to a terminal state."""
        return as_utc_datetime(self._raw.get("stoppedAt"))

    @property
    def duration(self) -> timedelta | None:
        """How long the attempt ran (stoppedAt - startedAt); ``None`` if it did not start or stop."""
        return _span(self.started_at, self.stopped_at)

    @property
    def status_reason(self) -> str | None:
        """Batch's short reason for the attempt's end (``Essential container in task exited``)."""
        return as_text(self._raw.get("statusReason"))


class RetryRule:
    """One ``retryStrategy.evaluateOnExit`` entry: when a failed attempt is retried or ends the job."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    @property
    def action(self) -> str | None:
        """``RETRY`` or ``EXIT`` (Batch accepts any case), upper-cased; ``None`` when absent."""
        action = as_text(self._raw.get("action"))
        return action.upper() if action else None

    @property
    def on_status_reason(self) -> str | None:
        """Glob (a trailing ``*`` at most) on the attempt's status reason."""
        return as_text(self._raw.get("onStatusReason"))

    @property
    def on_reason(self) -> str | None:
        """Glob on the container's reason."""
        return as_text(self._raw.get("onReason"))

    @property
    def on_exit_code(self) -> str | None:
        """Glob on the exit code, as text (``"137"``, ``"1*"``)."""
        return as_text(self._raw.get("onExitCode"))


def envelope_problems(event: Mapping[str, Any]) -> list[str]:
    """What is wrong with an event's EventBridge envelope, one entry per field (empty: nothing).

    ``version``, ``id``, ``time``, ``region`` and ``account`` must be non-empty strings and
    ``resources`` a list, as EventBridge always delivers them.
    """
    problems = []
    for name in ENVELOPE_TEXT_FIELDS:
        if name not in event:
            problems.append(f"{name!r} is missing")
        elif as_text(event[name]) is None:
            problems.append(f"{name!r} is {_describe(event[name])}, expected a non-empty string")
    for name in ENVELOPE_LIST_FIELDS:
        if name not in event:
            problems.append(f"{name!r} is missing")
        elif not isinstance(event[name], list):
            problems.append(f"{name!r} is {_describe(event[name])}, expected a list")
    return problems


def _describe(value: Any) -> str:
    """A value's JSON kind for an error message; never the value itself (it is untrusted)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return kind.get(type(value), f"a {type(value).__name__}")


class JobStateChange:
    """Read-only view of one job state change event.

    Build it with :meth:`from_event`, which rejects events that are not job state changes.
    Properties return ``None`` when the event does not say.
    """

    # __dict__ holds the cached properties: a message reads the containers many times.
    __slots__ = ("__dict__", "_detail", "_event")

    def __init__(self, event: Mapping[str, Any]) -> None:
        self._event = event
        self._detail = _mapping(event.get("detail"))

    @classmethod
    def from_event(cls, event: Any, detail_type: str = JOB_STATE_CHANGE) -> JobStateChange:
        """Wrap a raw EventBridge event, or raise :class:`NotAJobStateChange` saying why.

        ``detail_type`` is the kind of Batch event expected; ``Batch Job Queue Blocked``
        events describe a job too (the one blocking its queue) and share this view. The
        envelope must be complete (:func:`envelope_problems`): the error names every field
        that is missing or of the wrong type.
        """
        if not isinstance(event, Mapping):
            raise NotAJobStateChange(f"event is a {type(event).__name__}, not a JSON object")
        problems = envelope_problems(event)
        if problems:
            raise NotAJobStateChange("malformed EventBridge envelope: " + "; ".join(problems))
        source, actual_type = event.get("source"), event.get("detail-type")
        if source != BATCH_SOURCE or actual_type != detail_type:
            raise NotAJobStateChange(
                f"source={source!r} detail-type={actual_type!r}, "
                f"expected {BATCH_SOURCE!r} / {detail_type!r}"
            )
        if not isinstance(event.get("detail"), Mapping):
            raise NotAJobStateChange("the event has no 'detail' object")
        return cls(event)

    # -- envelope ------------------------------------------------------------------------
    @property
    def event_id(self) -> str | None:
        """EventBridge's id of this event, the same in every delivery of it."""
        return as_text(self._event.get("id"))

    @property
    def detail_type(self) -> str | None:
        """The kind of Batch event: ``Batch Job State Change`` or ``Batch Job Queue Blocked``."""
        return as_text(self._event.get("detail-type"))

    @property
    def is_queue_blocked(self) -> bool:
        """Whether this is a queue-blocked warning (of a job or a service job), not a state change."""
        return self.detail_type in QUEUE_BLOCKED_KINDS

    @property
    def region(self) -> str | None:
        """The region the job ran in (the event's own, not the Lambda's)."""
        return as_text(self._event.get("region"))

    @property
    def account(self) -> str | None:
        """The AWS account the job ran in."""
        return as_text(self._event.get("account"))

    @property
    def time(self) -> str | None:
        """When the change happened, as EventBridge wrote it (ISO 8601, UTC)."""
        return as_text(self._event.get("time"))

    # -- identity --------------------------------------------------------------------------
    @property
    def job_name(self) -> str | None:
        """The name given at SubmitJob (written by whoever submitted it: untrusted)."""
        return as_text(self._detail.get("jobName"))

    @property
    def job_id(self) -> str | None:
        """Batch's id of the job (``<parent>:<index>`` for an array child, ``<id>#<node>`` for a node)."""
        return as_text(self._detail.get("jobId"))

    @property
    def job_arn(self) -> str | None:
        """The job's ARN."""
        return as_text(self._detail.get("jobArn"))

    @property
    def status(self) -> str | None:
        """The state the job moved to: ``SUBMITTED`` ... ``RUNNING``, ``SUCCEEDED`` or ``FAILED``."""
        return as_text(self._detail.get("status"))

    @property
    def status_reason(self) -> str | None:
        """Batch's short, human-readable reason for the status (or TerminateJob's ``reason``)."""
        return as_text(self._detail.get("statusReason"))

    @property
    def job_queue_name(self) -> str | None:
        """The name of the job queue the job was submitted to (from its ARN)."""
        return _arn_resource_name(as_text(self._detail.get("jobQueue")))

    @property
    def job_definition(self) -> str | None:
        """``name:revision`` from the job definition ARN."""
        return _arn_resource_name(as_text(self._detail.get("jobDefinition")))

    @property
    def platform(self) -> str | None:
        """``EC2``, ``FARGATE`` or ``EKS``, as far as the event tells."""
        capabilities = [c for c in _sequence(self._detail.get("platformCapabilities")) if as_text(c)]
        if "eksProperties" in self._detail or "EKS" in capabilities:
            return "EKS"
        return capabilities[0] if capabilities else None

    @property
    def tags(self) -> Mapping[str, str]:
        """The job's tags (untrusted, like every job text); entries that are not text are left out."""
        tags = _mapping(self._detail.get("tags"))
        return {key: text for key, text in ((as_text(k), as_text(v)) for k, v in tags.items()) if key and text}

    # -- array and multi-node -----------------------------------------------------------
    @property
    def array_size(self) -> int | None:
        """How many children an array job has (``arrayProperties.size``)."""
        return as_int(_mapping(self._detail.get("arrayProperties")).get("size"))

    @property
    def array_index(self) -> int | None:
        """An array child's index in its parent (``arrayProperties.index``); parents have none."""
        return as_int(_mapping(self._detail.get("arrayProperties")).get("index"))

    @property
    def is_array_parent(self) -> bool:
        """An array job's parent: it has a size and no index."""
        return self.array_size is not None and self.array_index is None

    @property
    def array_status_summary(self) -> Mapping[str, int]:
        """An array parent's children per status (``arrayProperties.statusSummary``)."""
        summary = _mapping(_mapping(self._detail.get("arrayProperties")).get("statusSummary"))
        return {k: v for k, v in summary.items() if as_int(v) is not None}

    @property
    def node_count(self) -> int | None:
        """How many nodes a multi-node parallel job runs (``nodeProperties.numNodes``)."""
        return as_int(_mapping(self._detail.get("nodeProperties")).get("numNodes"))

    @property
    def main_node(self) -> int | None:
        """The index of a multi-node job's main node, whose result AWS Batch copies to the parent."""
        return as_int(_mapping(self._detail.get("nodeProperties")).get("mainNode"))

    @property
    def is_multinode_parent(self) -> bool:
        """A multi-node job's parent: it has nodes and is not one of them."""
        return self.node_count is not None and self.node_index is None

    @property
    def node_index(self) -> int | None:
        """A node job's index (``nodeDetails.nodeIndex``); the parent has none."""
        return as_int(_mapping(self._detail.get("nodeDetails")).get("nodeIndex"))

    # -- timing ---------------------------------------------------------------------------
    @property
    def created_at(self) -> datetime | None:
        """When the job was submitted (``createdAt``)."""
        return as_utc_datetime(self._detail.get("createdAt"))

    @property
    def started_at(self) -> datetime | None:
        """When the job (its last attempt) went from STARTING to RUNNING."""
        return as_utc_datetime(self._detail.get("startedAt"))

    @property
    def stopped_at(self) -> datetime | None:
        """When the job went from RUNNING to a terminal state."""
        return as_utc_datetime(self._detail.get("stoppedAt"))

    @property
    def duration(self) -> timedelta | None:
        """stoppedAt - startedAt; ``None`` for a job that never started or has not stopped."""
        return _span(self.started_at, self.stopped_at)

    @property
    def ever_started(self) -> bool:
        """The job, or one of its attempts, started a container.

        Said by ``startedAt`` (the job's or an attempt's, whatever the attempt's shape) or by a
        log stream: Batch names a container's stream only once it is RUNNING.
        """
        if self.started_at is not None or any(attempt.started_at for attempt in self.attempts):
            return True
        every = [*self.containers, *(c for attempt in self.attempts for c in attempt.containers)]
        return any(container.log_stream_name for container in every)

    @property
    def never_started(self) -> bool:
        """A FAILED job that no attempt ever started (image pull error, failed dependency...).

        Only inferred from a complete event: a truncated one lacks startedAt for other reasons.
        """
        return (self.status == "FAILED" and not self.is_array_parent and not self.ever_started
                and not self.missing_fields())

    # -- attempts and containers --------------------------------------------------------
    @cached_property
    def _definitions(self) -> Mapping[str | None, Mapping[str, Any]]:
        """The job's own container entries, by name; ``None`` is a classic job's one container.

        An attempt's containers take their name, ``essential`` flag and log configuration from
        here. A multi-node parent defines its containers per node range; the first range that
        names a container wins.
        """
        definitions: dict[str | None, Mapping[str, Any]] = {}
        container = self._detail.get("container")
        if isinstance(container, Mapping):
            definitions[None] = container
        ranges = _sequence(_mapping(self._detail.get("nodeProperties")).get("nodeRangeProperties"))
        for ecs in (self._detail.get("ecsProperties"), *(_mapping(r).get("ecsProperties") for r in ranges)):
            for entry in _task_containers(_mapping(ecs).get("taskProperties")):
                name = as_text(entry.get("name"))
                if name is not None:
                    definitions.setdefault(name, entry)
        return definitions

    @cached_property
    def attempts(self) -> tuple[AttemptView, ...]:
        """Each attempt to run the job, oldest first (``attempts``, or ``eksAttempts`` for EKS jobs)."""
        raw = _sequence(self._detail.get("attempts")) or _sequence(self._detail.get("eksAttempts"))
        return tuple(AttemptView(a, self._definitions) for a in raw if isinstance(a, Mapping))

    @property
    def max_attempts(self) -> int | None:
        """How many attempts ``retryStrategy`` allows (1 to 10)."""
        return as_int(_mapping(self._detail.get("retryStrategy")).get("attempts"))

    @property
    def retry_rules(self) -> tuple[RetryRule, ...]:
        """The ``retryStrategy.evaluateOnExit`` rules, in order (Batch applies the first match)."""
        rules = _sequence(_mapping(self._detail.get("retryStrategy")).get("evaluateOnExit"))
        return tuple(RetryRule(_mapping(rule)) for rule in rules if isinstance(rule, Mapping))

    @cached_property
    def containers(self) -> tuple[ContainerView, ...]:
        """The job's containers: its one ``container``, or every container of its
        ``ecsProperties`` task(s) (multi-container jobs). Empty for EKS jobs and multi-node
        parents, whose containers are the attempts' (the main node's) or their pods'."""
        container = self._detail.get("container")
        if isinstance(container, Mapping):
            return (ContainerView(container),)
        ecs = _mapping(self._detail.get("ecsProperties"))
        return tuple(ContainerView(c) for c in _task_containers(ecs.get("taskProperties")))

    @property
    def is_multi_container(self) -> bool:
        """Defined with ``ecsProperties`` and more than one container."""
        return len(self.containers) > 1

    @cached_property
    def container(self) -> ContainerView | None:
        """The job's container; for several, the essential one (or the first that failed)."""
        return principal_container(self.containers)

    def _last_attempt_container(self) -> ContainerView | None:
        attempts = self.attempts
        return attempts[-1].container if attempts else None

    @property
    def exit_code(self) -> int | None:
        """The exit code of the job's (essential) container, else of its last attempt's."""
        for container in (self.container, self._last_attempt_container()):
            if container is not None and container.exit_code is not None:
                return container.exit_code
        return None

    @property
    def container_reason(self) -> str | None:
        """Why the container stopped (for example ``CannotPullContainerError: ...``)."""
        for container in (self.container, self._last_attempt_container()):
            if container is not None and container.reason is not None:
                return container.reason
        return None

    def log_container(self, of: ContainerView | None = None) -> ContainerView | None:
        """The container view that names the log stream of ``of`` (default: the job's
        (essential) container), or ``None`` when no stream is known.

        The job's own entry if it names a stream, else the same container (by name) in the
        last attempt that names one: a retried job's top-level stream can be empty.
        """
        container = self.container if of is None else of
        if container is not None and container.log_stream_name:
            return container
        name = container.name if container is not None else None
        for attempt in reversed(self.attempts):
            candidate = attempt.container if name is None else attempt.containers_by_name.get(name)
            if candidate is not None and candidate.log_stream_name:
                return candidate
        return None

    @property
    def log_stream_name(self) -> str | None:
        """The stream of the job's (essential) container, else of the last attempt's that has one."""
        container = self.log_container()
        return container.log_stream_name if container is not None else None

    @cached_property
    def log_location(self) -> LogLocation | None:
        """Where the job's (essential) container logs in CloudWatch Logs (see :meth:`log_location_of`).

        Kept: the buttons, the context line, the attempt history and the log tail all need it.
        """
        return self.log_location_of()

    def log_location_of(self, container: ContainerView | None = None) -> LogLocation | None:
        """The CloudWatch Logs stream of ``container`` (default: the job's essential one, or the
        first that failed), or ``None`` when there is none to link to.

        Its own log configuration (``awslogs-group``, ``awslogs-region``, driver) says where it
        logs. ``None`` for jobs that never started a container, EKS jobs and array parents (no
        stream), and for log drivers other than ``awslogs`` (splunk, fluentd...): never invent one.
        """
        source = self.log_container(container)
        if source is None:
            return None
        stream = source.log_stream_name
        driver = source.log_driver
        if stream is None or (driver is not None and driver != AWSLOGS_DRIVER):
            return None
        options = source.log_options
        region = options.get("awslogs-region") or self.region
        if region is None:
            return None
        return LogLocation(region=region, group=options.get("awslogs-group") or DEFAULT_LOG_GROUP, stream=stream)

    def missing_fields(self) -> list[str]:
        """Names of the expected ``detail`` fields this event lacks."""
        return [name for name in EXPECTED_DETAIL_FIELDS if as_text(self._detail.get(name)) is None]
