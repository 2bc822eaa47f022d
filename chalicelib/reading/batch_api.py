"""What the scheduled handlers read from AWS Batch: job queues and job summaries, every page.

Two calls only, matching the stage's IAM policy: ``batch:DescribeJobQueues`` (which queues
exist) and ``batch:ListJobs`` (the jobs of one queue, by status or created after a time).
The client comes from ``chalicelib/core/clients.py``, made at first use: importing the app
must not need boto3.

A :class:`JobSummary` is a typed, read-only view of one entry of ``ListJobs``; like
``chalicelib.reading.event``, it never raises on a missing or malformed field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core import config
from chalicelib.core.aws_errors import describe_aws_error as describe_error
from chalicelib.core.clients import ClientConfig, client
from chalicelib.reading.event import as_int, as_text, as_utc_datetime, raw_event

# A queue of 100,000 jobs a day would take 1,000 ListJobs pages: more than a Lambda
# invocation should spend. Past this many jobs a listing stops and says it was cut.
MAX_JOBS_PER_LISTING = 10_000
FINAL_STATUSES = ("SUCCEEDED", "FAILED")
# SageMaker Training queues hold service jobs, listed by ListServiceJobs, not ListJobs.
_NOT_LISTABLE_QUEUE_TYPES = ("SAGEMAKER_TRAINING",)

# ListJobs is throttled per account: a few standard retries with backoff (6 attempts in all),
# and short socket timeouts so one slow call cannot eat the invocation.
BATCH_CLIENT = ClientConfig(connect_timeout=3, read_timeout=10, attempts=6)


def batch_client() -> Any:
    """The Batch client of this container (created at first use, in the Lambda's region)."""
    return client("batch", BATCH_CLIENT)


def reset() -> None:
    """Forget the client, with the rest of the settings tree (a later change can call
    ``chalicelib.core.config.reset()`` instead)."""
    config.reset()


def to_epoch_ms(moment: datetime) -> int:
    """``moment`` as Batch's timestamps: whole milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def queue_name(queue: str) -> str:
    """``arn:...:job-queue/name`` -> ``name``; a bare name is returned as is."""
    return queue.rsplit("/", 1)[-1] if queue.startswith("arn:") else queue


@dataclass(frozen=True)
class JobSummary:
    """One job as ``ListJobs`` describes it, in the queue it was listed from."""

    queue: str
    job_id: str | None
    name: str | None
    status: str | None
    status_reason: str | None = None
    job_arn: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    exit_code: int | None = None
    container_reason: str | None = None
    array_size: int | None = None
    array_index: int | None = None
    node_index: int | None = None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], queue: str) -> JobSummary:
        """Wrap one ``jobSummaryList`` entry; missing or malformed fields become ``None``."""
        def part(key: str) -> Mapping[str, Any]:
            value = raw.get(key)
            return value if isinstance(value, Mapping) else {}

        return cls(
            queue=queue, job_id=as_text(raw.get("jobId")), name=as_text(raw.get("jobName")),
            job_arn=as_text(raw.get("jobArn")),
            status=as_text(raw.get("status")), status_reason=as_text(raw.get("statusReason")),
            created_at=as_utc_datetime(raw.get("createdAt")), started_at=as_utc_datetime(raw.get("startedAt")),
            stopped_at=as_utc_datetime(raw.get("stoppedAt")), exit_code=as_int(part("container").get("exitCode")),
            container_reason=as_text(part("container").get("reason")),
            array_size=as_int(part("arrayProperties").get("size")),
            array_index=as_int(part("arrayProperties").get("index")),
            node_index=as_int(part("nodeProperties").get("nodeIndex")),
        )

    @property
    def label(self) -> str:
        """The job's name, else its ID: what a person recognises it by."""
        return self.name or self.job_id or "unknown job"

    @property
    def is_child(self) -> bool:
        """An array child or a multi-node node job: its parent speaks for it, as in the event patterns."""
        return self.array_index is not None or self.node_index is not None or "#" in (self.job_id or "")

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def age(self, now: datetime) -> timedelta | None:
        """Time since the job was submitted (``None`` when Batch did not say, or in the future)."""
        if self.created_at is None or self.created_at > now:
            return None
        return now - self.created_at

    def run_time(self, now: datetime) -> timedelta | None:
        """How long it ran: stopped - started, or now - started while it still runs."""
        if self.started_at is None:
            return None
        end = self.stopped_at or now
        return end - self.started_at if end >= self.started_at else None


@dataclass(frozen=True)
class JobListing:
    """The jobs of one queue, and whether :data:`MAX_JOBS_PER_LISTING` cut the listing short."""

    queue: str
    jobs: tuple[JobSummary, ...]
    truncated: bool = False


def list_queue_names(client: Any) -> list[str]:
    """Names of every job queue of the account and region (``DescribeJobQueues``, all pages)."""
    names = []
    for page in client.get_paginator("describe_job_queues").paginate():
        for queue in page.get("jobQueues", []):
            name = as_text(queue.get("jobQueueName"))
            if name and queue.get("jobQueueType") not in _NOT_LISTABLE_QUEUE_TYPES:
                names.append(name)
    return sorted(set(names))


def list_jobs(client: Any, queue: str, *, statuses: Iterable[str] = (),
              created_after: datetime | None = None, limit: int = MAX_JOBS_PER_LISTING) -> JobListing:
    """The jobs of ``queue`` (a name or ARN) in ``statuses``, or created after ``created_after``.

    With ``created_after``, ``ListJobs`` uses the ``AFTER_CREATED_AT`` filter and returns jobs
    in every status, newest first (``jobStatus`` is ignored with a filter); otherwise one
    listing per status. Every page is read, up to ``limit`` jobs in all.
    """
    requests: list[dict[str, Any]]
    if created_after is not None:
        requests = [{"filters": [{"name": "AFTER_CREATED_AT", "values": [str(to_epoch_ms(created_after))]}]}]
    else:
        requests = [{"jobStatus": status} for status in statuses]
    jobs: list[JobSummary] = []
    name = queue_name(queue)
    for request in requests:
        for page in client.get_paginator("list_jobs").paginate(jobQueue=queue, **request):
            for raw in page.get("jobSummaryList", []):
                if len(jobs) >= limit:
                    return JobListing(name, tuple(jobs), truncated=True)
                if isinstance(raw, Mapping):
                    jobs.append(JobSummary.from_api(raw, name))
    return JobListing(name, tuple(jobs))


def utcnow() -> datetime:
    """Now, in UTC (the sweep and the digest take it as a parameter, so tests can set it)."""
    return datetime.now(UTC)


def scheduled_time(event: Any, fallback: datetime | None = None) -> datetime | None:
    """The ``time`` of a scheduled EventBridge event (when the schedule fired), in UTC.

    ``fallback`` when the event has no readable time (a hand-made invocation).
    """
    raw_dict = raw_event(event)
    raw = raw_dict.get("time") if isinstance(raw_dict, Mapping) else None
    if not isinstance(raw, str) or not raw.strip():
        return fallback
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def describe_aws_error(error: BaseException, action: str) -> str:
    """One line for a failed Batch call (``action``: ``batch:ListJobs``...), saying what to fix."""
    return describe_error(error, service="AWS Batch", action=action, doing=f"call {action}")
