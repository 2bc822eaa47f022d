"""A typed, read-only view over a raw "Batch Job State Change" event.

Everything in the event is untrusted input: a field can be absent, empty or of the wrong
type (a hand-written test event, a newer AWS shape). Accessors therefore never raise: they
return ``None`` (or an empty tuple/mapping) for anything missing or malformed, and the
message builder shows what is there.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Optional, Sequence

BATCH_SOURCE = "aws.batch"
JOB_STATE_CHANGE = "Batch Job State Change"
JOB_QUEUE_BLOCKED = "Batch Job Queue Blocked"

# Fields a complete job state change carries; reported when absent so a person can tell a
# degraded message from a bug.
EXPECTED_DETAIL_FIELDS = ("jobName", "jobId", "jobQueue", "jobDefinition", "status")

_EMPTY: Mapping[str, Any] = {}


def raw_event(event: Any) -> Any:
    """The raw event dict, whether given a Chalice event object (``to_dict``) or the dict itself."""
    to_dict = getattr(event, "to_dict", None)
    return to_dict() if callable(to_dict) else event


class NotAJobStateChange(ValueError):
    """The event is not an AWS Batch job state change this app can describe."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, (list, tuple)) else ()


def as_text(value: Any) -> Optional[str]:
    """A non-empty string, or ``None`` for anything else (absent, empty, another type)."""
    return value if isinstance(value, str) and value else None


def as_int(value: Any) -> Optional[int]:
    """An integer, or ``None`` (a JSON ``true`` is not an exit code)."""
    # bool is an int in Python.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_utc_datetime(value: Any) -> Optional[datetime]:
    """Epoch milliseconds (as Batch writes times) as an aware UTC datetime, or ``None``."""
    millis = as_int(value)
    if millis is None or millis <= 0:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _arn_resource_name(arn: Optional[str]) -> Optional[str]:
    """``arn:...:job-queue/name`` -> ``name``; a bare name is returned as is."""
    if arn is None:
        return None
    return arn.rsplit("/", 1)[-1] or None


def _span(start: Optional[datetime], stop: Optional[datetime]) -> Optional[timedelta]:
    if start is None or stop is None or stop < start:
        return None
    return stop - start


class ContainerView:
    """The container part of a job or of one attempt (EC2, Fargate, or an EKS container)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    @property
    def exit_code(self) -> Optional[int]:
        return as_int(self._raw.get("exitCode"))

    @property
    def reason(self) -> Optional[str]:
        return as_text(self._raw.get("reason"))

    @property
    def log_stream_name(self) -> Optional[str]:
        return as_text(self._raw.get("logStreamName"))

    @property
    def log_driver(self) -> Optional[str]:
        return as_text(_mapping(self._raw.get("logConfiguration")).get("logDriver"))

    @property
    def log_options(self) -> Mapping[str, str]:
        options = _mapping(_mapping(self._raw.get("logConfiguration")).get("options"))
        return {k: v for k, v in options.items() if isinstance(v, str)}


class AttemptView:
    """One entry of ``attempts`` (ECS-based jobs) or ``eksAttempts`` (EKS jobs)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    @property
    def container(self) -> ContainerView:
        container = self._raw.get("container")
        if isinstance(container, Mapping):
            return ContainerView(container)
        # EKS attempts list their pod's containers; the first is the job's main container.
        containers = _sequence(self._raw.get("containers"))
        return ContainerView(_mapping(containers[0]) if containers else _EMPTY)

    @property
    def started_at(self) -> Optional[datetime]:
        return as_utc_datetime(self._raw.get("startedAt"))

    @property
    def stopped_at(self) -> Optional[datetime]:
        return as_utc_datetime(self._raw.get("stoppedAt"))

    @property
    def duration(self) -> Optional[timedelta]:
        return _span(self.started_at, self.stopped_at)

    @property
    def status_reason(self) -> Optional[str]:
        return as_text(self._raw.get("statusReason"))


class RetryRule:
    """One ``retryStrategy.evaluateOnExit`` entry: when a failed attempt is retried or ends the job."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    @property
    def action(self) -> Optional[str]:
        """``RETRY`` or ``EXIT`` (Batch accepts any case), upper-cased; ``None`` when absent."""
        action = as_text(self._raw.get("action"))
        return action.upper() if action else None

    @property
    def on_status_reason(self) -> Optional[str]:
        """Glob (a trailing ``*`` at most) on the attempt's status reason."""
        return as_text(self._raw.get("onStatusReason"))

    @property
    def on_reason(self) -> Optional[str]:
        """Glob on the container's reason."""
        return as_text(self._raw.get("onReason"))

    @property
    def on_exit_code(self) -> Optional[str]:
        """Glob on the exit code, as text (``"137"``, ``"1*"``)."""
        return as_text(self._raw.get("onExitCode"))


class JobStateChange:
    """Read-only view of one job state change event.

    Build it with :meth:`from_event`, which rejects events that are not job state changes.
    Properties return ``None`` when the event does not say.
    """

    __slots__ = ("_event", "_detail")

    def __init__(self, event: Mapping[str, Any]) -> None:
        self._event = event
        self._detail = _mapping(event.get("detail"))

    @classmethod
    def from_event(cls, event: Any, detail_type: str = JOB_STATE_CHANGE) -> "JobStateChange":
        """Wrap a raw EventBridge event, or raise :class:`NotAJobStateChange` saying why.

        ``detail_type`` is the kind of Batch event expected; ``Batch Job Queue Blocked``
        events describe a job too (the one blocking its queue) and share this view.
        """
        if not isinstance(event, Mapping):
            raise NotAJobStateChange(f"event is a {type(event).__name__}, not a JSON object")
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
    def event_id(self) -> Optional[str]:
        return as_text(self._event.get("id"))

    @property
    def detail_type(self) -> Optional[str]:
        return as_text(self._event.get("detail-type"))

    @property
    def region(self) -> Optional[str]:
        return as_text(self._event.get("region"))

    @property
    def account(self) -> Optional[str]:
        return as_text(self._event.get("account"))

    @property
    def time(self) -> Optional[str]:
        return as_text(self._event.get("time"))

    # -- identity --------------------------------------------------------------------------
    @property
    def job_name(self) -> Optional[str]:
        return as_text(self._detail.get("jobName"))

    @property
    def job_id(self) -> Optional[str]:
        return as_text(self._detail.get("jobId"))

    @property
    def job_arn(self) -> Optional[str]:
        return as_text(self._detail.get("jobArn"))

    @property
    def status(self) -> Optional[str]:
        return as_text(self._detail.get("status"))

    @property
    def status_reason(self) -> Optional[str]:
        return as_text(self._detail.get("statusReason"))

    @property
    def routing_status(self) -> Optional[str]:
        """The status routes match on: ``BLOCKED`` for a queue-blocked event, else the job's."""
        return "BLOCKED" if self.detail_type == JOB_QUEUE_BLOCKED else self.status

    @property
    def job_queue_name(self) -> Optional[str]:
        return _arn_resource_name(as_text(self._detail.get("jobQueue")))

    @property
    def job_definition(self) -> Optional[str]:
        """``name:revision`` from the job definition ARN."""
        return _arn_resource_name(as_text(self._detail.get("jobDefinition")))

    @property
    def platform(self) -> Optional[str]:
        """``EC2``, ``FARGATE`` or ``EKS``, as far as the event tells."""
        capabilities = [c for c in _sequence(self._detail.get("platformCapabilities")) if as_text(c)]
        if "eksProperties" in self._detail or "EKS" in capabilities:
            return "EKS"
        return capabilities[0] if capabilities else None

    @property
    def tags(self) -> Mapping[str, str]:
        tags = _mapping(self._detail.get("tags"))
        return {k: v for k, v in tags.items() if isinstance(k, str) and isinstance(v, str)}

    # -- array and multi-node -----------------------------------------------------------
    @property
    def array_size(self) -> Optional[int]:
        return as_int(_mapping(self._detail.get("arrayProperties")).get("size"))

    @property
    def array_index(self) -> Optional[int]:
        return as_int(_mapping(self._detail.get("arrayProperties")).get("index"))

    @property
    def is_array_parent(self) -> bool:
        return self.array_size is not None and self.array_index is None

    @property
    def array_status_summary(self) -> Mapping[str, int]:
        summary = _mapping(_mapping(self._detail.get("arrayProperties")).get("statusSummary"))
        return {k: v for k, v in summary.items() if as_int(v) is not None}

    @property
    def node_count(self) -> Optional[int]:
        return as_int(_mapping(self._detail.get("nodeProperties")).get("numNodes"))

    @property
    def main_node(self) -> Optional[int]:
        return as_int(_mapping(self._detail.get("nodeProperties")).get("mainNode"))

    @property
    def is_multinode_parent(self) -> bool:
        return self.node_count is not None and self.node_index is None

    @property
    def node_index(self) -> Optional[int]:
        return as_int(_mapping(self._detail.get("nodeDetails")).get("nodeIndex"))

    # -- timing ---------------------------------------------------------------------------
    @property
    def created_at(self) -> Optional[datetime]:
        return as_utc_datetime(self._detail.get("createdAt"))

    @property
    def started_at(self) -> Optional[datetime]:
        return as_utc_datetime(self._detail.get("startedAt"))

    @property
    def stopped_at(self) -> Optional[datetime]:
        return as_utc_datetime(self._detail.get("stoppedAt"))

    @property
    def duration(self) -> Optional[timedelta]:
        """stoppedAt - startedAt; ``None`` for a job that never started or has not stopped."""
        return _span(self.started_at, self.stopped_at)

    @property
    def never_started(self) -> bool:
        """A FAILED job that no attempt ever started (image pull error, failed dependency...).

        Only inferred from a complete event: a truncated one lacks startedAt for other reasons.
        """
        return (self.status == "FAILED" and self.started_at is None and not self.is_array_parent
                and not any(attempt.started_at for attempt in self.attempts) and not self.missing_fields())

    # -- attempts and container ---------------------------------------------------------
    @property
    def attempts(self) -> tuple[AttemptView, ...]:
        raw = _sequence(self._detail.get("attempts")) or _sequence(self._detail.get("eksAttempts"))
        return tuple(AttemptView(a) for a in raw if isinstance(a, Mapping))

    @property
    def max_attempts(self) -> Optional[int]:
        return as_int(_mapping(self._detail.get("retryStrategy")).get("attempts"))

    @property
    def retry_rules(self) -> tuple[RetryRule, ...]:
        """The ``retryStrategy.evaluateOnExit`` rules, in order (Batch applies the first match)."""
        rules = _sequence(_mapping(self._detail.get("retryStrategy")).get("evaluateOnExit"))
        return tuple(RetryRule(_mapping(rule)) for rule in rules if isinstance(rule, Mapping))

    @property
    def container(self) -> Optional[ContainerView]:
        container = self._detail.get("container")
        return ContainerView(container) if isinstance(container, Mapping) else None

    def _last_attempt_container(self) -> Optional[ContainerView]:
        attempts = self.attempts
        return attempts[-1].container if attempts else None

    @property
    def exit_code(self) -> Optional[int]:
        for container in (self.container, self._last_attempt_container()):
            if container is not None and container.exit_code is not None:
                return container.exit_code
        return None

    @property
    def container_reason(self) -> Optional[str]:
        """Why the container stopped (for example ``CannotPullContainerError: ...``)."""
        for container in (self.container, self._last_attempt_container()):
            if container is not None and container.reason is not None:
                return container.reason
        return None

    @property
    def log_stream_name(self) -> Optional[str]:
        """The job's own stream, else the last attempt's that has one; ``None`` if none does."""
        if self.container is not None and self.container.log_stream_name:
            return self.container.log_stream_name
        for attempt in reversed(self.attempts):
            if attempt.container.log_stream_name:
                return attempt.container.log_stream_name
        return None

    def missing_fields(self) -> list[str]:
        """Names of the expected ``detail`` fields this event lacks."""
        return [name for name in EXPECTED_DETAIL_FIELDS if as_text(self._detail.get(name)) is None]
