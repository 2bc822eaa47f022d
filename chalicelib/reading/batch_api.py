"""What the scheduled handlers read from AWS Batch: job queues and job summaries, every page.

Two calls only, matching the stage's IAM policy: ``batch:DescribeJobQueues`` (which queues
exist) and ``batch:ListJobs`` (the jobs of one queue, by status or created after a time).
boto3 is imported lazily, in :func:`batch_client`, like in ``chalicelib/core/secrets.py``: importing
the app must not need it.

A :class:`JobSummary` is a typed, read-only view of one entry of ``ListJobs``; like
``chalicelib.reading.event``, it never raises on a missing or malformed field.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Optional

from chalicelib.reading.event import as_int, as_text, as_utc_datetime, raw_event

# A queue of 100,000 jobs a day would take 1,000 ListJobs pages: more than a Lambda
# invocation should spend. Past this many jobs a listing stops and says it was cut.
MAX_JOBS_PER_LISTING = 10_000
FINAL_STATUSES = ("SUCCEEDED", "FAILED")
# SageMaker Training queues hold service jobs, listed by ListServiceJobs, not ListJobs.
_NOT_LISTABLE_QUEUE_TYPES = ("SAGEMAKER_TRAINING",)

_client: Any = None
_client_lock = threading.Lock()


def batch_client() -> Any:
    """The Batch client of this container (created at first use, in the Lambda's region)."""
    global _client
    with _client_lock:
        if _client is None:
            import boto3  # lazy: only the scheduled handlers talk to AWS Batch
            from botocore.config import Config

            # ListJobs is throttled per account: a few standard retries with backoff, and
            # short socket timeouts so one slow call cannot eat the invocation.
            _client = boto3.client("batch", config=Config(
                connect_timeout=3, read_timeout=10, retries={"max_attempts": 5, "mode": "standard"}))
        return _client


def reset() -> None:
    """Forget the client (tests install a stubbed one)."""
    global _client
    with _client_lock:
        _client = None


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
    job_id: Optional[str]
    name: Optional[str]
    status: Optional[str]
    status_reason: Optional[str] = None
    created_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    stopped_at: Optional[datetime] = None
    exit_code: Optional[int] = None
    container_reason: Optional[str] = None
    array_size: Optional[int] = None
    array_index: Optional[int] = None
    node_index: Optional[int] = None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], queue: str) -> "JobSummary":
        """Wrap one ``jobSummaryList`` entry; missing or malformed fields become ``None``."""
        def part(key: str) -> Mapping[str, Any]:
            value = raw.get(key)
            return value if isinstance(value, Mapping) else {}

        return cls(
            queue=queue, job_id=as_text(raw.get("jobId")), name=as_text(raw.get("jobName")),
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

    def age(self, now: datetime) -> Optional[timedelta]:
        """Time since the job was submitted (``None`` when Batch did not say, or in the future)."""
        if self.created_at is None or self.created_at > now:
            return None
        return now - self.created_at

    def run_time(self, now: datetime) -> Optional[timedelta]:
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
              created_after: Optional[datetime] = None, limit: int = MAX_JOBS_PER_LISTING) -> JobListing:
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
    return datetime.now(timezone.utc)


def scheduled_time(event: Any, fallback: Optional[datetime] = None) -> Optional[datetime]:
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
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def describe_aws_error(error: BaseException, action: str) -> str:
    """One line for a failed Batch call, saying what to fix when it is the IAM policy."""
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, Mapping) else None
    if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
        return f"{code}: the stage's IAM policy (.chalice/policy-<stage>.json) must allow {action}"
    if code:
        message = response.get("Error", {}).get("Message")
        return f"{action} failed: {code}" + (f": {message}" if message else "")
    return f"{action} failed: {type(error).__name__}: {error}"
