"""A typed, read-only view over a raw "Batch Service Job State Change" or "Batch Service Job
Queue Blocked" event: a SageMaker training job that AWS Batch queued and scheduled.

The ``detail`` follows the DescribeServiceJob response (without ``tags`` and
``serviceRequestPayload``, which the events leave out): the service job's name, id, ARN
(``service-job/``), queue, status (SUBMITTED ... RUNNABLE, SCHEDULED, STARTING, RUNNING,
SUCCEEDED, FAILED), its attempts, each naming the training job it ran as
``serviceResourceId {"name": "TrainingJobArn", "value": <ARN>}``, and ``latestAttempt``.

A service job has no job definition, no container, no exit code, no Batch log stream and no
array or node children: :class:`ServiceJobStateChange` answers those as a container job that
has none would, so every consumer of :class:`~chalicelib.reading.event.JobStateChange`
(routing, conversations, storms, dedup, the job's living message) works on it unchanged.
Everything is untrusted, as in the container view: accessors never raise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from chalicelib.reading.event import (
    SERVICE_JOB_STATE_CHANGE,
    SERVICE_KINDS,
    AttemptView,
    ContainerView,
    JobStateChange,
    LogLocation,
    NotAJobStateChange,
    as_int,
    as_text,
    as_utc_datetime,
)

SAGEMAKER_TRAINING = "SAGEMAKER_TRAINING"
TRAINING_JOB_ARN = "TrainingJobArn"  # serviceResourceId.name of a SageMaker training job
# What a complete service job event carries (no jobDefinition: service jobs have none).
EXPECTED_SERVICE_FIELDS = ("jobName", "jobId", "jobQueue", "status")
# arn:<partition>:sagemaker:<region>:<account>:training-job/<name>. SageMaker's own rule for a
# training job name: 1-63 letters, digits and inner hyphens. fullmatch only: a name that does
# not fit is none (it goes into console URLs).
_TRAINING_JOB_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:sagemaker:[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:"
                               r"training-job/(?P<name>[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62})")
_EMPTY: Mapping[str, Any] = {}
_NO_CONTAINER = ContainerView(_EMPTY)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def training_job_name_of(arn: str | None) -> str | None:
    """The training job's name from its ARN; ``None`` for anything not shaped like one."""
    found = _TRAINING_JOB_ARN.fullmatch(arn or "")
    return found["name"] if found else None


def _training_job_arn(holder: Mapping[str, Any]) -> str | None:
    """``serviceResourceId.value`` when its ``name`` says it is a training job's ARN."""
    resource = _mapping(holder.get("serviceResourceId"))
    return as_text(resource.get("value")) if resource.get("name") == TRAINING_JOB_ARN else None


class ServiceAttemptView(AttemptView):
    """One entry of a service job's ``attempts`` (ServiceJobAttemptDetail): one training job.

    An attempt with no container, as the container view's consumers expect of one.
    """

    __slots__ = ()

    @cached_property
    def containers(self) -> tuple[ContainerView, ...]:
        """None: SageMaker AI runs the training job's containers, and the event names none."""
        return ()

    @cached_property
    def container(self) -> ContainerView:
        """An empty container view (no exit code, no reason, no stream)."""
        return _NO_CONTAINER

    @property
    def training_job_arn(self) -> str | None:
        """The ARN of the SageMaker training job this attempt ran (``serviceResourceId``)."""
        return _training_job_arn(self._raw)

    @property
    def training_job_name(self) -> str | None:
        """The training job's name, from its ARN (``AWSBatch<job name><attempt id>``)."""
        return training_job_name_of(self.training_job_arn)


class ServiceJobStateChange(JobStateChange):
    """Read-only view of one service job event (state change or queue blocked).

    Build it with :meth:`from_event`; the container-only parts of :class:`JobStateChange` are
    empty here (see the module's docstring).
    """

    __slots__ = ()

    @classmethod
    def from_event(cls, event: Any, detail_type: str = SERVICE_JOB_STATE_CHANGE) -> JobStateChange:
        """Wrap a raw service job event, or raise :class:`NotAJobStateChange` saying why.

        ``detail_type`` is ``Batch Service Job State Change`` or ``Batch Service Job Queue Blocked``.
        """
        if detail_type not in SERVICE_KINDS:
            raise NotAJobStateChange(f"{detail_type!r} is not a service job event kind")
        return super().from_event(event, detail_type)

    # -- identity --------------------------------------------------------------------------
    @property
    def job_definition(self) -> str | None:
        """None: a service job is submitted with its request, not a job definition."""
        return None

    @property
    def platform(self) -> str | None:
        """None: no Batch compute environment runs it (see :attr:`service_job_type`)."""
        return None

    @property
    def service_job_type(self) -> str | None:
        """The service that runs the job: ``SAGEMAKER_TRAINING`` for a SageMaker training job."""
        return as_text(self._detail.get("serviceJobType"))

    @property
    def is_terminated(self) -> bool:
        """Whether the service job was terminated (TerminateServiceJob), per ``isTerminated``."""
        return self._detail.get("isTerminated") is True

    @property
    def share_identifier(self) -> str | None:
        """The fair-share identifier the job was submitted with."""
        return as_text(self._detail.get("shareIdentifier"))

    @property
    def scheduling_priority(self) -> int | None:
        """Its scheduling priority in a fair-share queue (higher goes first)."""
        return as_int(self._detail.get("schedulingPriority"))

    @property
    def attempt_timeout(self) -> timedelta | None:
        """``timeoutConfig.attemptDurationSeconds``: how long one attempt may run."""
        seconds = as_int(_mapping(self._detail.get("timeoutConfig")).get("attemptDurationSeconds"))
        if seconds is None or seconds <= 0:
            return None
        try:
            return timedelta(seconds=seconds)
        except OverflowError:
            return None

    @property
    def scheduled_at(self) -> datetime | None:
        """When the job was last passed to SageMaker AI (``scheduledAt``), when the event says."""
        return as_utc_datetime(self._detail.get("scheduledAt"))

    @property
    def preempted_attempts(self) -> int | None:
        """How many attempts were preempted (``preemptionSummary.preemptedAttemptCount``)."""
        return as_int(_mapping(self._detail.get("preemptionSummary")).get("preemptedAttemptCount"))

    # -- the training job ------------------------------------------------------------------
    @cached_property
    def attempts(self) -> tuple[AttemptView, ...]:
        """Each attempt, oldest first: one SageMaker training job each."""
        raw = self._detail.get("attempts")
        entries = raw if isinstance(raw, (list, tuple)) else ()
        return tuple(ServiceAttemptView(a) for a in entries if isinstance(a, Mapping))

    @property
    def service_attempts(self) -> tuple[ServiceAttemptView, ...]:
        """:attr:`attempts`, typed as the service attempts they are."""
        return tuple(a for a in self.attempts if isinstance(a, ServiceAttemptView))

    @property
    def training_job_arn(self) -> str | None:
        """The latest training job's ARN: ``latestAttempt``'s, else the last attempt's."""
        latest = _training_job_arn(_mapping(self._detail.get("latestAttempt")))
        if latest is not None:
            return latest
        for attempt in reversed(self.service_attempts):
            if attempt.training_job_arn is not None:
                return attempt.training_job_arn
        return None

    @property
    def training_job_name(self) -> str | None:
        """The latest training job's name (from :attr:`training_job_arn`; None if not shaped like one)."""
        return training_job_name_of(self.training_job_arn)

    # -- what a container job has and a service job has not --------------------------------
    @property
    def array_size(self) -> int | None:
        """None: service jobs are never array jobs (a forged ``arrayProperties`` is ignored)."""
        return None

    @property
    def array_index(self) -> int | None:
        """None: no array children."""
        return None

    @property
    def node_count(self) -> int | None:
        """None: no multi-node parallel service jobs."""
        return None

    @property
    def main_node(self) -> int | None:
        """None: no nodes."""
        return None

    @property
    def node_index(self) -> int | None:
        """None: no nodes."""
        return None

    @cached_property
    def containers(self) -> tuple[ContainerView, ...]:
        """None: SageMaker AI runs the containers."""
        return ()

    @cached_property
    def container(self) -> ContainerView | None:
        """None."""
        return None

    @property
    def exit_code(self) -> int | None:
        """None: SageMaker AI reports a status, not an exit code."""
        return None

    @property
    def container_reason(self) -> str | None:
        """None: the status reason says it all (``Received status from SageMaker: ...``)."""
        return None

    def log_container(self, of: ContainerView | None = None) -> ContainerView | None:
        """None: the training job logs under ``/aws/sagemaker/TrainingJobs`` (reading/links.py)."""
        return None

    @cached_property
    def log_location(self) -> LogLocation | None:
        """None: no Batch log stream (the training job's logs are linked by name instead)."""
        return None

    def log_location_of(self, container: ContainerView | None = None) -> LogLocation | None:
        """None, for any container."""
        return None

    def missing_fields(self) -> list[str]:
        """Names of the expected ``detail`` fields this event lacks (no job definition expected)."""
        return [name for name in EXPECTED_SERVICE_FIELDS if as_text(self._detail.get(name)) is None]
