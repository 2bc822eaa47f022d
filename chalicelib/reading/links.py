"""AWS console links for a job: its CloudWatch Logs stream and its AWS Batch detail page.

Links always use the event's own region and partition, never the Lambda's: events may be
forwarded from other regions and accounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote

from chalicelib.reading.event import ContainerView, JobStateChange

DEFAULT_LOG_GROUP = "/aws/batch/job"
AWSLOGS_DRIVER = "awslogs"

# A region is part of the link's host name: accept only what a real region looks like, so
# a forged event cannot point a button at another host. Always fullmatch: with match and
# "$", "us-east-1\n" passed. [0-9], not \d, which also matches non-ASCII digits.
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
# Slack's limit for a button's text; a container name can be 255 characters.
BUTTON_TEXT_LIMIT = 75


@dataclass(frozen=True)
class LogLocation:
    """Where a job's container log lives in CloudWatch Logs."""

    region: str
    group: str
    stream: str


def console_domain(region: str) -> str:
    """The AWS console domain of the partition that holds ``region``."""
    if region.startswith("cn-"):
        return "amazonaws.cn"
    if region.startswith("us-gov-"):
        return "amazonaws-us-gov.com"
    return "aws.amazon.com"


def _console_home(region: Optional[str], service: str) -> Optional[str]:
    if region is None or not _REGION.fullmatch(region):
        return None
    return f"https://{region}.console.{console_domain(region)}/{service}/home?region={region}"


def _console_fragment(value: str) -> str:
    """Encode a path segment the way the CloudWatch console does in its ``#logsV2:`` URLs.

    Percent-encode twice with nothing safe, then write every ``%`` as ``$``:
    ``/`` -> ``$252F``, ``#`` -> ``$2523``.
    """
    return quote(quote(value, safe=""), safe="").replace("%", "$")


def log_location(job: JobStateChange, container: Optional[ContainerView] = None) -> Optional[LogLocation]:
    """The CloudWatch Logs stream of the job, or ``None`` when there is none to link to.

    ``container`` picks one container of a multi-container job; by default it is the job's
    essential container (or the first that failed), the one that decides its exit code. Its
    own log configuration (``awslogs-group``, ``awslogs-region``, driver) says where it logs.
    ``None`` for jobs that never started a container, EKS jobs and array parents (no stream),
    and for jobs whose log driver is not ``awslogs`` (splunk, fluentd...): never invent a link.
    """
    source = job.log_container(container)
    if source is None:
        return None
    stream = source.log_stream_name
    driver = source.log_driver
    if stream is None or (driver is not None and driver != AWSLOGS_DRIVER):
        return None
    options = source.log_options
    region = options.get("awslogs-region") or job.region
    if region is None:
        return None
    return LogLocation(region=region, group=options.get("awslogs-group") or DEFAULT_LOG_GROUP, stream=stream)


def cloudwatch_logs_url(location: LogLocation) -> Optional[str]:
    """Console URL that opens the log stream, or ``None`` if the region is not a real one."""
    home = _console_home(location.region, "cloudwatch")
    if home is None:
        return None
    return (
        f"{home}#logsV2:log-groups/log-group/{_console_fragment(location.group)}"
        f"/log-events/{_console_fragment(location.stream)}"
    )


def batch_job_url(region: Optional[str], job_id: Optional[str]) -> Optional[str]:
    """Console URL of the job's detail page in AWS Batch."""
    home = _console_home(region, "batch")
    if home is None or job_id is None:
        return None
    # Array children are "<id>:<index>" and the console keeps the ':'; '#' of multi-node
    # node ids must be encoded or it would end the fragment.
    return f"{home}#jobs/detail/{quote(job_id, safe=':')}"


def job_log_url(job: JobStateChange) -> Optional[str]:
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
        location = log_location(job, container)
        url = cloudwatch_logs_url(location) if location is not None else None
        if url:
            links.append(LogLink(_button_label(f"Logs: {container.name or f'container {number}'}"), url))
    return tuple(links)


def _button_label(text: str) -> str:
    return text if len(text) <= BUTTON_TEXT_LIMIT else text[:BUTTON_TEXT_LIMIT - 1] + "…"


def missing_log_link_reason(job: JobStateChange) -> Optional[str]:
    """Say, for a person, why the job has no CloudWatch Logs link (``None`` when it has one)."""
    if job_log_url(job) is not None or job_log_links(job):
        return None
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
        if not job.ever_started:
            return "No log stream: the job did not start a container."
        return "No log stream: the event names none for the container that ran."
    return "No CloudWatch Logs link: the event's region is not one the console knows."
