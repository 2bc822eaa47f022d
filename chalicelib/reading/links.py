"""AWS console links for a job: its CloudWatch Logs stream and its AWS Batch detail page.

Links always use the event's own region and partition, never the Lambda's: events may be
forwarded from other regions and accounts. :func:`job_links` gives all of a job's links at
once, for one message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

# LogLocation and the defaults are the event's reading of where a job logs; here as before.
from chalicelib.reading.event import AWSLOGS_DRIVER, DEFAULT_LOG_GROUP, ContainerView, JobStateChange, LogLocation

__all__ = ["AWSLOGS_DRIVER", "DEFAULT_LOG_GROUP", "SAGEMAKER_TRAINING_LOG_GROUP", "JobLinks", "LogLink",
           "LogLocation", "batch_job_url", "batch_service_job_url", "cloudwatch_logs_url", "console_domain",
           "job_links", "job_log_links", "job_log_url", "log_location", "missing_log_link_reason",
           "sagemaker_training_job_url", "training_job_logs_url"]

# A region is part of the link's host name: accept only what a real region looks like, so
# a forged event cannot point a button at another host. Always fullmatch: with match and
# "$", "us-east-1\n" passed. [0-9], not \d, which also matches non-ASCII digits.
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
# Slack's limit for a button's text; a container name can be 255 characters.
BUTTON_TEXT_LIMIT = 75


def console_domain(region: str) -> str:
    """The AWS console domain of the partition that holds ``region``."""
    if region.startswith("cn-"):
        return "amazonaws.cn"
    if region.startswith("us-gov-"):
        return "amazonaws-us-gov.com"
    return "aws.amazon.com"


def _console_home(region: str | None, service: str) -> str | None:
    if region is None or not _REGION.fullmatch(region):
        return None
    return f"https://{region}.console.{console_domain(region)}/{service}/home?region={region}"


def _console_fragment(value: str) -> str:
    """Encode a path segment the way the CloudWatch console does in its ``#logsV2:`` URLs.

    Percent-encode twice with nothing safe, then write every ``%`` as ``$``:
    ``/`` -> ``$252F``, ``#`` -> ``$2523``.
    """
    return quote(quote(value, safe=""), safe="").replace("%", "$")


def log_location(job: JobStateChange, container: ContainerView | None = None) -> LogLocation | None:
    """The CloudWatch Logs stream of the job, or ``None`` when there is none to link to.

    ``container`` picks one container of a multi-container job; by default it is the job's
    essential container (or the first that failed), the one that decides its exit code, and
    the answer is the one the event view keeps (``job.log_location``). See
    :meth:`JobStateChange.log_location_of` for which jobs have none.
    """
    return job.log_location if container is None else job.log_location_of(container)


def cloudwatch_logs_url(location: LogLocation) -> str | None:
    """Console URL that opens the log stream, or ``None`` if the region is not a real one."""
    home = _console_home(location.region, "cloudwatch")
    if home is None:
        return None
    return (
        f"{home}#logsV2:log-groups/log-group/{_console_fragment(location.group)}"
        f"/log-events/{_console_fragment(location.stream)}"
    )


def batch_job_url(region: str | None, job_id: str | None) -> str | None:
    """Console URL of the job's detail page in AWS Batch."""
    home = _console_home(region, "batch")
    if home is None or job_id is None:
        return None
    # Array children are "<id>:<index>" and the console keeps the ':'; '#' of multi-node
    # node ids must be encoded or it would end the fragment.
    return f"{home}#jobs/detail/{quote(job_id, safe=':')}"


def job_log_url(job: JobStateChange) -> str | None:
    """Shortcut: the CloudWatch Logs console URL of the job's stream, if it has one."""
    location = log_location(job)
    return cloudwatch_logs_url(location) if location is not None else None


@dataclass(frozen=True)
class LogLink:
    """One CloudWatch Logs console link of a job, with the label its button shows."""

    label: str
    url: str


def job_log_links(job: JobStateChange) -> tuple[LogLink, ...]:
    """Every CloudWatch Logs link of the job: one for a single-container job ("View logs"), one
    per container with a CloudWatch stream for multi-container ECS jobs ("Logs: app"), in the
    order the job defines its containers."""
    if not job.is_multi_container:
        url = job_log_url(job)
        return (LogLink("View logs", url),) if url else ()
    links = []
    for number, container in enumerate(job.containers, 1):
        # The essential container's location is the one the view keeps: not worked out twice.
        location = log_location(job, None if container is job.container else container)
        url = cloudwatch_logs_url(location) if location is not None else None
        if url:
            links.append(LogLink(_button_label(f"Logs: {container.name or f'container {number}'}"), url))
    return tuple(links)


@dataclass(frozen=True)
class JobLinks:
    """All of a job's console links, worked out once for one message."""

    logs: tuple[LogLink, ...]
    batch: str | None
    # Why there is no log link, for a person (None when there is one).
    missing_logs: str | None


def job_links(job: JobStateChange) -> JobLinks:
    """The job's log links, its AWS Batch page, and why it has no log link if it has none."""
    logs = job_log_links(job)
    return JobLinks(logs=logs, batch=batch_job_url(job.region, job.job_id),
                    missing_logs=None if logs else _missing_log_link_reason(job))


def _button_label(text: str) -> str:
    return text if len(text) <= BUTTON_TEXT_LIMIT else text[:BUTTON_TEXT_LIMIT - 1] + "…"


def missing_log_link_reason(job: JobStateChange) -> str | None:
    """Say, for a person, why the job has no CloudWatch Logs link (``None`` when it has one)."""
    return job_links(job).missing_logs


def _missing_log_link_reason(job: JobStateChange) -> str:
    """Why a job without a log link has none (the caller knows it has none)."""
    container = job.log_container() or job.container
    driver = container.log_driver if container is not None else None
    if driver is not None and driver != AWSLOGS_DRIVER:
        return f"Logs go to the {driver} log driver, not CloudWatch Logs."
    if job.platform == "EKS":
        return "EKS job: its logs are wherever the cluster ships pod logs."
    if job.is_array_parent:
        return "Array parent: each child job has its own log stream."
    if job.is_multinode_parent:
        return "Multi-node parent: each node has its own log stream."
    if job.log_stream_name is None:
        # Only a job that never ran is said not to have started: one that ran and names no
        # stream (a truncated event, a newer shape) is described as just that.
        if job.ever_started:
            return "No log stream: the event names none for the container that ran."
        if job.missing_fields():  # a truncated event says too little to tell
            return "No log stream: the event names none."
        return "No log stream: the job did not start a container."
    return "No CloudWatch Logs link: the event's region is not one the console knows."


# -- service jobs (SageMaker training through AWS Batch) ------------------------------------------
# Where SageMaker AI writes a training job's logs; each instance's stream is
# "<training job name>/algo-<N>-<epoch>", so the group filtered by "<name>/" shows them all.
SAGEMAKER_TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# The Batch console's page of a service job. Inferred, not found in AWS's documentation: the one
# place to correct should the console route differently.
SERVICE_JOB_PAGE = "service-jobs/detail/"
# SageMaker's rule for a training job name; a service job id is a UUID (Batch's ids are at most 128).
_TRAINING_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_SERVICE_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def batch_service_job_url(region: str | None, job_id: str | None) -> str | None:
    """Console URL of a service job's page in AWS Batch; ``None`` for a region or id not shaped like one."""
    home = _console_home(region, "batch")
    if home is None or job_id is None or not _SERVICE_JOB_ID.fullmatch(job_id):
        return None
    return f"{home}#{SERVICE_JOB_PAGE}{job_id}"


def sagemaker_training_job_url(region: str | None, name: str | None) -> str | None:
    """Console URL of a SageMaker training job; ``None`` for a region or name not shaped like one."""
    home = _console_home(region, "sagemaker")
    if home is None or name is None or not _TRAINING_JOB_NAME.fullmatch(name):
        return None
    return f"{home}#/jobs/{name}"


def training_job_logs_url(region: str | None, name: str | None) -> str | None:
    """Console URL of ``/aws/sagemaker/TrainingJobs`` filtered to the training job's streams
    (prefix ``<name>/``); ``None`` for a region or name not shaped like one."""
    home = _console_home(region, "cloudwatch")
    if home is None or name is None or not _TRAINING_JOB_NAME.fullmatch(name):
        return None
    # The console writes the filter's "?" and "=" encoded once ($3F, $3D), its value twice like the group.
    return (f"{home}#logsV2:log-groups/log-group/{_console_fragment(SAGEMAKER_TRAINING_LOG_GROUP)}"
            f"$3FlogStreamNameFilter$3D{_console_fragment(name + '/')}")
