"""The typed event view over the fixture shapes AWS documents, and over broken input."""

from datetime import timedelta

import pytest

from chalicelib.event import JobStateChange, NotAJobStateChange
from tests.conftest import load_event

# fixture: (job name, status, queue, definition, exit code, attempts, duration seconds, log stream?)
EXPECTED = {
    "ec2_failed": ("nightly-etl-load-2024-05-13", "FAILED", "etl-ondemand-queue", "nightly-etl:14", 1, 1, 754, True),
    "ec2_succeeded": ("streamtest", "SUCCEEDED", "mybatchjob", "mybatchjob:3", 0, 1, 37, True),
    "fargate_failed": ("monthly-report-render", "FAILED", "reports-fargate-queue", "report-render:7", 2, 1, 183, True),
    "array_parent_failed": ("thumbnail-backfill", "FAILED", "media-spot-queue", "thumbnail-worker:22", None, 0, None,
                            False),
    "array_child_failed": ("thumbnail-backfill", "FAILED", "media-spot-queue", "thumbnail-worker:22", 1, 1, 12, True),
    "multinode_node_failed": ("cfd-wing-sweep-17", "FAILED", "hpc-mnp-queue", "openfoam-mnp:5", 1, 1, 5417, True),
    "eks_failed": ("feature-build-daily", "FAILED", "eks-batch-queue", "feature-build-eks:3", 1, 1, 268, False),
    "never_started_failed": ("etl-extract-orders", "FAILED", "etl-ondemand-queue", "etl-extract:31", None, 1, None,
                             False),
    "timeout_failed": ("resnet50-finetune-run42", "FAILED", "gpu-queue", "ml-train:9", 137, 1, 3612, True),
    "retried_failed": ("variant-call-sample-NA12878", "FAILED", "genomics-queue", "variant-call:18", 1, 3, 402, True),
    "splunk_log_driver_failed": ("invoice-reconcile", "FAILED", "billing-queue", "invoice-reconcile:12", 3, 1, 96,
                                 False),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_view_reads_each_documented_shape(name):
    job = JobStateChange.from_event(load_event(name))
    job_name, status, queue, definition, exit_code, attempts, seconds, has_stream = EXPECTED[name]
    assert (job.job_name, job.status, job.job_queue_name, job.job_definition) == (job_name, status, queue, definition)
    assert job.exit_code == exit_code
    assert len(job.attempts) == attempts
    if seconds is None:
        assert job.duration is None
    else:
        assert timedelta(seconds=seconds) <= job.duration < timedelta(seconds=seconds + 1)
    assert (job.log_stream_name is not None) == has_stream


def test_platforms():
    assert JobStateChange.from_event(load_event("fargate_failed")).platform == "FARGATE"
    assert JobStateChange.from_event(load_event("eks_failed")).platform == "EKS"
    assert JobStateChange.from_event(load_event("ec2_failed")).platform == "EC2"


def test_array_and_multinode_shapes():
    parent = JobStateChange.from_event(load_event("array_parent_failed"))
    assert parent.is_array_parent and parent.array_size == 500
    assert parent.array_status_summary["FAILED"] == 3 and parent.array_status_summary["SUCCEEDED"] == 497
    child = JobStateChange.from_event(load_event("array_child_index0_succeeded"))
    assert child.array_index == 0 and not child.is_array_parent
    mnp = JobStateChange.from_event(load_event("multinode_parent_failed"))
    assert mnp.node_count == 4 and mnp.node_index is None
    node = JobStateChange.from_event(load_event("multinode_node_failed"))
    assert node.node_index == 0 and node.job_id.endswith("#0")


def test_never_started_job_takes_its_reason_from_the_last_attempt():
    job = JobStateChange.from_event(load_event("never_started_failed"))
    assert job.container_reason.startswith("CannotPullContainerError")
    assert job.started_at is None and job.duration is None


def test_retried_job_falls_back_to_the_last_attempts_stream():
    job = JobStateChange.from_event(load_event("retried_failed"))
    assert job.container.log_stream_name is None  # "" in the event
    assert job.log_stream_name == job.attempts[-1].container.log_stream_name
    assert [a.container.exit_code for a in job.attempts] == [137, 137, 1]
    assert job.max_attempts == 3


def test_missing_fields_are_named_not_fatal():
    job = JobStateChange.from_event(load_event("detail_missing_fields"))
    assert job.missing_fields() == ["jobName", "jobQueue", "jobDefinition"]
    assert (job.job_name, job.exit_code, job.duration, job.log_stream_name, job.attempts) == (None, None, None, None, ())


@pytest.mark.parametrize("event, why", [
    (load_event("job_queue_blocked"), "Batch Job Queue Blocked"),
    ({"source": "aws.ec2", "detail-type": "Batch Job State Change", "detail": {}}, "aws.ec2"),
    ({"source": "aws.batch", "detail-type": "Batch Job State Change"}, "no 'detail'"),
    ({"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": "FAILED"}, "no 'detail'"),
    (["not", "a", "dict"], "list"),
])
def test_not_a_job_state_change_says_why(event, why):
    with pytest.raises(NotAJobStateChange, match=why):
        JobStateChange.from_event(event)


def test_wrong_types_read_as_missing():
    job = JobStateChange.from_event({"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {
        "jobName": 42, "status": ["FAILED"], "attempts": "many", "startedAt": "yesterday", "stoppedAt": True,
        "container": {"exitCode": True, "logStreamName": None}, "arrayProperties": [], "tags": {"a": 1}}})
    assert (job.job_name, job.status, job.attempts, job.duration, job.exit_code, job.log_stream_name) == (
        None, None, (), None, None, None)
    assert job.tags == {} and not job.is_array_parent


@pytest.mark.parametrize("name, never", [
    ("never_started_failed", True), ("array_parent_failed", False), ("ec2_failed", False),
    ("multinode_parent_failed", False), ("running", False), ("detail_missing_fields", False),
])
def test_never_started(name, never):
    assert JobStateChange.from_event(load_event(name)).never_started is never
