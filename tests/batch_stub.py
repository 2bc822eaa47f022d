"""AWS Batch for the sweep and digest tests: botocore's Stubber over a real client.

moto 5.2.5's ListJobs has no pagination and ignores AFTER_CREATED_AT, and its jobs only run
with docker. The Stubber checks each request's parameters and each response's shape against
the Batch service model. The ``batch`` fixture is registered for every test by conftest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.core import clients
from chalicelib.reading import batch_api

UTC = UTC
REGION = "us-east-1"
ACCOUNT = "123456789012"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def api_job(job_id: str, name: str, status: str, created: datetime, *, started: datetime | None = None,
            stopped: datetime | None = None, reason: str | None = None, exit_code: int | None = None,
            container_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``jobSummaryList`` entry as ListJobs returns it."""
    job: dict[str, Any] = {
        "jobArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}", "jobId": job_id, "jobName": name,
        "createdAt": ms(created), "status": status,
        "jobDefinition": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/{name.split('-')[0]}:3",
    }
    if reason:
        job["statusReason"] = reason
    if started:
        job["startedAt"] = ms(started)
    if stopped:
        job["stoppedAt"] = ms(stopped)
    if exit_code is not None or container_reason:
        job["container"] = {k: v for k, v in (("exitCode", exit_code), ("reason", container_reason)) if v is not None}
    job.update(extra)
    return job


def api_queue(name: str, queue_type: str = "ECS") -> dict[str, Any]:
    """One ``jobQueues`` entry as DescribeJobQueues returns it."""
    return {
        "jobQueueName": name, "jobQueueArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{name}",
        "state": "ENABLED", "status": "VALID", "priority": 1, "jobQueueType": queue_type,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment":
                                     f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/ce-{name}"}],
    }


def _pages(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


class FakeBatch:
    """A Stubber over a real Batch client, fed the pages in the order the code asks for them."""

    def __init__(self) -> None:
        self.client = boto3.client("batch", region_name=REGION)
        self.stubber = Stubber(self.client)

    def queues(self, queues: list[dict[str, Any]], page_size: int = 100) -> None:
        pages = _pages(queues, page_size)
        for i, page in enumerate(pages):
            response: dict[str, Any] = {"jobQueues": page}
            if i + 1 < len(pages):
                response["nextToken"] = f"queues-{i + 1}"
            self.stubber.add_response("describe_job_queues", response, {"nextToken": f"queues-{i}"} if i else {})

    def jobs(self, queue: str, jobs: list[dict[str, Any]], *, status: str | None = None,
             created_after: datetime | None = None, page_size: int = 100) -> None:
        request: dict[str, Any] = {"jobQueue": queue}
        if status:
            request["jobStatus"] = status
        if created_after:
            request["filters"] = [{"name": "AFTER_CREATED_AT", "values": [str(ms(created_after))]}]
        pages = _pages(jobs, page_size)
        for i, page in enumerate(pages):
            response: dict[str, Any] = {"jobSummaryList": page}
            if i + 1 < len(pages):
                response["nextToken"] = f"{queue}-{status}-{i + 1}"
            expected = {**request, "nextToken": f"{queue}-{status}-{i}"} if i else request
            self.stubber.add_response("list_jobs", response, expected)

    def waiting(self, queue: str, runnable: Iterable[dict[str, Any]] = (), starting: Iterable[dict[str, Any]] = (),
                page_size: int = 100) -> None:
        """The sweep's two listings of one queue: RUNNABLE, then STARTING."""
        self.jobs(queue, list(runnable), status="RUNNABLE", page_size=page_size)
        self.jobs(queue, list(starting), status="STARTING", page_size=page_size)

    def error(self, method: str, code: str, params: dict[str, Any], status: int = 400) -> None:
        self.stubber.add_client_error(method, service_error_code=code, service_message=f"{code} (stub)",
                                      http_status_code=status, expected_params=params)


@pytest.fixture
def batch():
    """AWS Batch as the code sees it: ``batch_api.batch_client()`` is the stubbed client."""
    fake = FakeBatch()
    with clients.use_client("batch", fake.client), fake.stubber:
        assert batch_api.batch_client() is fake.client
        yield fake


def scheduled_event(time: str, handler: str = "on_stuck_job_sweep") -> dict[str, Any]:
    """A scheduled EventBridge event, as the rule chalice deploys sends it."""
    return {"version": "0", "id": "5b1d4b3e-0c61-4a1e-9c1d-2f6a1c0b9d11", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT, "time": time, "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/batch-notify-dev-{handler}-event"], "detail": {}}


def write_routes(tmp_path, monkeypatch, routes: list[dict[str, Any]]) -> None:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": routes}))
    monkeypatch.setenv("NOTIFY_ROUTES", str(path))


def log_lines(caplog) -> list[dict[str, Any]]:
    lines = []
    for record in caplog.records:
        try:
            lines.append(json.loads(record.getMessage()))
        except ValueError:
            continue
    return lines
