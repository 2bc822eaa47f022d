"""Retry a job exactly as it ran: DescribeJobs in, a SubmitJob request out (chalicelib/deciding/resubmit.py).

The acceptance test of issue 13 ("the retried job's fields equal the original's") runs against
moto's Batch: a job is submitted, described, rebuilt, submitted again, and the new job's
description is compared with the original's, field by field. moto describes the container,
array, multi-node and EKS shapes, but not ecsProperties (it cannot register such a job
definition) nor a job's retryStrategy, shareIdentifier, schedulingPriority or propagateTags:
those are checked on realistic DescribeJobs answers (botocore's JobDetail shape), and every
request is validated against botocore's SubmitJob model, as boto3 would before sending it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import validate_parameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.deciding.resubmit import (
    DEFAULT_MEMORY_CAP_MIB,
    MAX_TAGS,
    RETRY_OF_TAG,
    CannotResubmit,
    IncompleteDescription,
    JobElsewhere,
    Resubmit,
    RetryTheParent,
    resubmit_request,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
SECRET = "s3cr3t-db-password"  # an environment value that must never leave the request
SUBMIT_JOB = botocore.session.get_session().get_service_model("batch").operation_model("SubmitJob").input_shape


def valid_request(retry: Resubmit) -> dict[str, Any]:
    """The request, after botocore's own validation of it (raises ParamValidationError)."""
    validate_parameters(retry.kwargs, SUBMIT_JOB)
    return retry.kwargs


class MotoBatch:
    """moto's Batch with one queue, without Docker: jobs succeed at once."""

    def __init__(self) -> None:
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.client = boto3.client("batch", region_name=REGION)
        env = self.client.create_compute_environment(
            computeEnvironmentName="notify-ce", type="UNMANAGED", state="ENABLED", serviceRole=role)
        self.queue = self.client.create_job_queue(
            jobQueueName="etl-queue", state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])["jobQueueArn"]

    def describe(self, job_id: str) -> dict[str, Any]:
        jobs = self.client.describe_jobs(jobs=[job_id])["jobs"]
        assert len(jobs) == 1
        return dict(jobs[0])

    def retry(self, original: dict[str, Any], **options: Any) -> tuple[Resubmit, dict[str, Any]]:
        """Rebuild the request, submit it, and describe the new job."""
        retry = resubmit_request(original, original_job_id=original["jobId"], account=ACCOUNT, region=REGION,
                                 **options)
        new = self.client.submit_job(**valid_request(retry))
        return retry, self.describe(new["jobId"])


@pytest.fixture
def moto_batch() -> Iterator[MotoBatch]:
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield MotoBatch()


def carried(description: dict[str, Any]) -> dict[str, Any]:
    """What a retry must keep of a description: everything but identity, times, status and the
    retry-of tag (the environment without AWS_BATCH_* variables, which Batch sets per job)."""
    kept = {key: copy.deepcopy(value) for key, value in description.items()
            if key in ("jobName", "jobQueue", "jobDefinition", "parameters", "timeout", "retryStrategy",
                       "propagateTags", "shareIdentifier", "schedulingPriority", "nodeProperties", "eksProperties")}
    kept["tags"] = {k: v for k, v in description.get("tags", {}).items() if k != RETRY_OF_TAG}
    if "container" in description:
        container = {k: v for k, v in description["container"].items()
                     if k in ("command", "vcpus", "memory", "resourceRequirements", "instanceType")}
        container["environment"] = [e for e in description["container"].get("environment", [])
                                    if not e["name"].startswith("AWS_BATCH")]
        kept["container"] = container
    kept["arraySize"] = description.get("arrayProperties", {}).get("size")
    return kept


# --- against moto: the retried job's fields equal the original's ---------------------------------


def test_a_container_job_is_retried_with_every_field_it_ran_with(moto_batch: MotoBatch) -> None:
    definition = moto_batch.client.register_job_definition(
        jobDefinitionName="nightly-etl", type="container", parameters={"day": "monday"},
        containerProperties={"image": "busybox", "command": ["etl", "Ref::day"],
                             "resourceRequirements": [{"type": "VCPU", "value": "2"},
                                                      {"type": "MEMORY", "value": "4096"}],
                             "environment": [{"name": "STAGE", "value": "prod"}]})
    original_id = moto_batch.client.submit_job(
        jobName="nightly-etl-load", jobQueue=moto_batch.queue, jobDefinition=definition["jobDefinitionArn"],
        parameters={"day": "tuesday"}, timeout={"attemptDurationSeconds": 900}, tags={"team": "data"},
        containerOverrides={"command": ["etl", "--load", "Ref::day"],
                            "environment": [{"name": "DB_PASSWORD", "value": SECRET}]})["jobId"]
    original = moto_batch.describe(original_id)

    retry, new = moto_batch.retry(original)

    assert carried(new) == carried(original)
    assert new["jobId"] != original_id
    assert new["tags"][RETRY_OF_TAG] == original_id
    assert new["jobDefinition"].endswith(":1")  # the exact revision, not the latest
    assert {"name": "DB_PASSWORD", "value": SECRET} in new["container"]["environment"]
    # moto reports AWS_BATCH_JOB_ID as the job's own: it is Batch's to set, never an override.
    assert all(not e["name"].startswith("AWS_BATCH") for e in retry.kwargs["containerOverrides"]["environment"])
    assert retry.notes == ()


def test_the_revision_it_ran_with_is_kept_when_a_newer_one_exists(moto_batch: MotoBatch) -> None:
    props = {"image": "busybox", "command": ["one"], "vcpus": 1, "memory": 512}
    first = moto_batch.client.register_job_definition(jobDefinitionName="rev", type="container",
                                                      containerProperties=props)
    job = moto_batch.client.submit_job(jobName="rev-job", jobQueue=moto_batch.queue, jobDefinition="rev")["jobId"]
    moto_batch.client.register_job_definition(jobDefinitionName="rev", type="container",
                                              containerProperties={**props, "command": ["two"]})

    _, new = moto_batch.retry(moto_batch.describe(job))

    assert new["jobDefinition"] == first["jobDefinitionArn"]
    assert new["container"]["command"] == ["one"]


def test_an_array_parent_is_retried_with_its_size_and_a_child_is_refused(moto_batch: MotoBatch) -> None:
    moto_batch.client.register_job_definition(
        jobDefinitionName="fan-out", type="container",
        containerProperties={"image": "busybox", "command": ["work"], "vcpus": 1, "memory": 256})
    parent = moto_batch.client.submit_job(jobName="fan-out", jobQueue=moto_batch.queue, jobDefinition="fan-out",
                                          arrayProperties={"size": 3})["jobId"]
    original = moto_batch.describe(parent)

    retry, new = moto_batch.retry(original)

    assert retry.kwargs["arrayProperties"] == {"size": 3}
    assert carried(new) == carried(original) and new["arrayProperties"]["size"] == 3
    child = moto_batch.describe(f"{parent}:1")
    with pytest.raises(RetryTheParent, match="child of array job") as refused:
        resubmit_request(child, original_job_id=child["jobId"])
    assert refused.value.parent_job_id == parent


def test_a_multi_node_job_is_retried_with_every_node_range(moto_batch: MotoBatch) -> None:
    moto_batch.client.register_job_definition(
        jobDefinitionName="mpi", type="multinode",
        nodeProperties={"numNodes": 3, "mainNode": 0, "nodeRangeProperties": [
            {"targetNodes": "0", "container": {"image": "busybox", "command": ["main"], "vcpus": 2, "memory": 1024}},
            {"targetNodes": "1:", "container": {
                "image": "busybox", "command": ["worker"], "instanceType": "c5.large",
                "environment": [{"name": "TOKEN", "value": SECRET}],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}},
        ]})
    job = moto_batch.client.submit_job(jobName="mpi-run", jobQueue=moto_batch.queue, jobDefinition="mpi")["jobId"]
    original = moto_batch.describe(job)

    retry, new = moto_batch.retry(original)

    assert carried(new) == carried(original)
    assert "containerOverrides" not in retry.kwargs  # a multi-node job takes nodeOverrides only
    assert retry.kwargs["nodeOverrides"] == {"numNodes": 3, "nodePropertyOverrides": [
        {"targetNodes": "0", "containerOverrides": {
            "command": ["main"],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "1024"}]}},
        {"targetNodes": "1:", "containerOverrides": {
            "command": ["worker"], "environment": [{"name": "TOKEN", "value": SECRET}], "instanceType": "c5.large",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}},
    ]}
    with pytest.raises(RetryTheParent, match="node of multi-node job") as refused:
        resubmit_request({**original, "jobId": f"{job}#1"}, original_job_id=f"{job}#1")
    assert refused.value.parent_job_id == job


def test_num_nodes_is_left_out_without_an_open_ended_range() -> None:
    # Batch refuses a numNodes override unless some range is open-ended ("n:").
    description = {**JOB, "nodeProperties": {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [
        {"targetNodes": "0:1", "container": {"command": ["run"], "vcpus": 1, "memory": 512}}]}}
    assert "numNodes" not in valid_request(resubmit_request(description, original_job_id=JOB_ID))["nodeOverrides"]


def test_an_eks_job_is_retried_with_its_pod_containers(moto_batch: MotoBatch) -> None:
    moto_batch.client.register_job_definition(
        jobDefinitionName="eks-train", type="container",
        eksProperties={"podProperties": {"containers": [{
            "name": "train", "image": "busybox", "command": ["python"], "args": ["train.py"],
            "env": [{"name": "MODE", "value": "full"}],
            "resources": {"limits": {"memory": "4Gi", "cpu": "2"}, "requests": {"memory": "4Gi", "cpu": "2"}}}]}})
    job = moto_batch.client.submit_job(
        jobName="eks-train", jobQueue=moto_batch.queue, jobDefinition="eks-train",
        eksPropertiesOverride={"podProperties": {"containers": [
            {"name": "train", "command": ["python", "-u"], "env": [{"name": "API_KEY", "value": SECRET}]}]}})["jobId"]
    original = moto_batch.describe(job)

    retry, new = moto_batch.retry(original)

    assert carried(new) == carried(original)
    assert retry.kwargs["eksPropertiesOverride"]["podProperties"]["containers"][0]["command"] == ["python", "-u"]


def test_more_memory_doubles_it_and_moto_takes_the_request(moto_batch: MotoBatch) -> None:
    moto_batch.client.register_job_definition(
        jobDefinitionName="oom", type="container",
        containerProperties={"image": "busybox", "command": ["eat"], "vcpus": 2, "memory": 4096})
    job = moto_batch.client.submit_job(jobName="oom", jobQueue=moto_batch.queue, jobDefinition="oom")["jobId"]

    retry, _ = moto_batch.retry(moto_batch.describe(job), more_memory=True)

    assert retry.kwargs["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "8192"}]
    assert retry.notes == ("the memory of the container was doubled from 4096 MiB to 8192 MiB",)


# --- realistic DescribeJobs answers: shapes and fields moto does not describe ----------------------

JOB_ID = "4a8c3e1b-0f5d-4a9e-8c1d-2b7f6e9a0c3d"
JOB: dict[str, Any] = {
    "jobArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{JOB_ID}", "jobId": JOB_ID, "jobName": "nightly-etl-load",
    "jobQueue": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/etl-ondemand-queue",
    "jobDefinition": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/nightly-etl:14",
    "status": "FAILED", "createdAt": 1715652000000, "startedAt": 1715652060000,
}
CONTAINER = {"image": "etl:1.4", "command": ["python", "-m", "etl"], "vcpus": 2, "memory": 8192,
             "environment": [{"name": "DB_PASSWORD", "value": SECRET}, {"name": "AWS_BATCH_JOB_ATTEMPT", "value": "1"}],
             "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}


def test_the_fields_moto_leaves_out_are_carried_exactly() -> None:
    retry_strategy = {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"},
                                                        {"onReason": "*", "action": "EXIT"}]}
    description = {**JOB, "container": CONTAINER, "retryStrategy": retry_strategy,
                   "timeout": {"attemptDurationSeconds": 3600}, "propagateTags": True,
                   "shareIdentifier": "teamA", "schedulingPriority": 40,
                   "consumableResourceProperties": {"consumableResourceList": [{"consumableResource": "licenses",
                                                                                 "quantity": 2}]}}

    request = valid_request(resubmit_request(description, original_job_id=JOB_ID))

    assert request["retryStrategy"] == retry_strategy
    assert request["timeout"] == {"attemptDurationSeconds": 3600}
    assert request["propagateTags"] is True
    assert (request["shareIdentifier"], request["schedulingPriorityOverride"]) == ("teamA", 40)
    assert request["consumableResourcePropertiesOverride"] == description["consumableResourceProperties"]
    assert request["containerOverrides"] == {
        "command": ["python", "-m", "etl"], "environment": [{"name": "DB_PASSWORD", "value": SECRET}],
        "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "8192"}]}


def test_resource_requirements_win_over_the_legacy_fields_and_gpus_are_kept() -> None:
    container = {"command": ["x"], "vcpus": 0, "memory": 2048, "resourceRequirements": [
        {"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}, {"type": "GPU", "value": "1"}]}
    request = valid_request(resubmit_request({**JOB, "container": container}, original_job_id=JOB_ID))
    assert request["containerOverrides"]["resourceRequirements"] == container["resourceRequirements"]


ECS_JOB = {**JOB, "platformCapabilities": ["FARGATE"], "ecsProperties": {"taskProperties": [{
    "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/c/abc", "platformVersion": "LATEST",
    "containers": [
        {"name": "app", "image": "app:3", "essential": True, "command": ["serve"],
         "environment": [{"name": "SESSION_KEY", "value": SECRET}],
         "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
         "exitCode": 137, "reason": "OutOfMemoryError"},
        {"name": "log-router", "image": "fluent-bit", "essential": False,
         "resourceRequirements": [{"type": "MEMORY", "value": "256"}]},
    ]}]}}


def test_an_ecs_properties_job_gets_an_override_per_container() -> None:
    request = valid_request(resubmit_request(ECS_JOB, original_job_id=JOB_ID))
    assert request["ecsPropertiesOverride"] == {"taskProperties": [{"containers": [
        {"name": "app", "command": ["serve"], "environment": [{"name": "SESSION_KEY", "value": SECRET}],
         "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]},
        {"name": "log-router", "resourceRequirements": [{"type": "MEMORY", "value": "256"}]},
    ]}]}
    assert "containerOverrides" not in request


def test_more_memory_doubles_every_ecs_container_and_warns_about_fargate_sizes() -> None:
    retry = resubmit_request(ECS_JOB, original_job_id=JOB_ID, more_memory=True)
    containers = valid_request(retry)["ecsPropertiesOverride"]["taskProperties"][0]["containers"]
    assert [c["resourceRequirements"][-1]["value"] for c in containers] == ["4096", "512"]
    assert "the memory of container 'app' was doubled from 2048 MiB to 4096 MiB" in retry.notes
    assert any("Fargate" in note for note in retry.notes)


EKS_JOB = {**JOB, "eksProperties": {"podProperties": {
    "podName": "aws-batch.abc", "nodeName": "ip-10-0-0-1.ec2.internal",
    "metadata": {"labels": {"team": "ml"}},
    "initContainers": [{"name": "fetch", "image": "aws-cli", "command": ["aws", "s3", "cp"],
                        "args": ["s3://b/k", "/data"], "resources": {"limits": {"memory": "512Mi", "cpu": "0.5"}}}],
    "containers": [{"name": "train", "image": "trainer:7", "command": ["python"], "args": ["train.py", "--epochs", "3"],
                    "env": [{"name": "HF_TOKEN", "value": SECRET}],
                    "resources": {"limits": {"memory": "4Gi", "cpu": "2", "nvidia.com/gpu": "1"},
                                  "requests": {"memory": "4Gi", "cpu": "2"}},
                    "exitCode": 137, "reason": "OOMKilled"}]}}}


def test_an_eks_job_gets_command_args_env_and_resources_per_container() -> None:
    request = valid_request(resubmit_request(EKS_JOB, original_job_id=JOB_ID))
    assert request["eksPropertiesOverride"] == {"podProperties": {
        "containers": [{"name": "train", "command": ["python"], "args": ["train.py", "--epochs", "3"],
                        "env": [{"name": "HF_TOKEN", "value": SECRET}],
                        "resources": {"limits": {"memory": "4Gi", "cpu": "2", "nvidia.com/gpu": "1"},
                                      "requests": {"memory": "4Gi", "cpu": "2"}}}],
        "initContainers": [{"name": "fetch", "command": ["aws", "s3", "cp"], "args": ["s3://b/k", "/data"],
                            "resources": {"limits": {"memory": "512Mi", "cpu": "0.5"}}}],
        "metadata": {"labels": {"team": "ml"}},
    }}
    assert all("image" not in c for c in request["eksPropertiesOverride"]["podProperties"]["containers"])


@pytest.mark.parametrize("before,after", [
    ("4Gi", "8Gi"), ("4096Mi", "8192Mi"), ("1.5Gi", "3Gi"), ("0.75Gi", "1.5Gi"), ("4G", "8G"), ("4000M", "8000M"),
    ("4e9", "8e9"), ("524288Ki", "1048576Ki"), ("4294967296", "8589934592"),
    ("100Gi", f"{DEFAULT_MEMORY_CAP_MIB}Mi"),  # 200Gi passes the cap
    ("130Gi", "130Gi"),  # above the cap already: never lowered
])
def test_eks_memory_quantities_double_in_their_own_unit(before: str, after: str) -> None:
    pod = {"containers": [{"name": "c", "resources": {"limits": {"memory": before}, "requests": {"memory": before}}}]}
    retry = resubmit_request({**JOB, "eksProperties": {"podProperties": pod}}, original_job_id=JOB_ID, more_memory=True)
    resources = valid_request(retry)["eksPropertiesOverride"]["podProperties"]["containers"][0]["resources"]
    assert resources == {"limits": {"memory": after}, "requests": {"memory": after}}  # requests still equal limits
    assert len(retry.notes) == 2


def test_the_cap_is_said_and_never_lowers_memory() -> None:
    container = {"command": ["x"], "resourceRequirements": [{"type": "MEMORY", "value": "6000"}]}
    capped = resubmit_request({**JOB, "container": container}, original_job_id=JOB_ID, more_memory=True,
                              memory_cap_mib=8192)
    assert capped.kwargs["containerOverrides"]["resourceRequirements"] == [{"type": "MEMORY", "value": "8192"}]
    assert capped.notes == ("the memory of the container was capped at 8192 MiB (6000 MiB doubled would pass the cap)",)
    above = resubmit_request({**JOB, "container": container}, original_job_id=JOB_ID, more_memory=True,
                             memory_cap_mib=4096)
    assert above.kwargs["containerOverrides"]["resourceRequirements"] == [{"type": "MEMORY", "value": "6000"}]
    assert "not increased" in above.notes[0]


def test_more_memory_says_so_when_no_container_states_its_memory() -> None:
    retry = resubmit_request({**JOB, "container": {"command": ["x"]}}, original_job_id=JOB_ID, more_memory=True)
    assert retry.notes == ("no container of the job states its memory: it runs with the same memory as before",)


def test_a_multi_node_ecs_range_doubles_memory_and_names_the_range() -> None:
    description = {**JOB, "nodeProperties": {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [
        {"targetNodes": "0:", "instanceTypes": ["p4d.24xlarge"], "ecsProperties": ECS_JOB["ecsProperties"]}]}}
    retry = resubmit_request(description, original_job_id=JOB_ID, more_memory=True)
    node = valid_request(retry)["nodeOverrides"]["nodePropertyOverrides"][0]
    assert node["instanceTypes"] == ["p4d.24xlarge"]
    assert node["ecsPropertiesOverride"]["taskProperties"][0]["containers"][0]["resourceRequirements"][-1] == {
        "type": "MEMORY", "value": "4096"}
    assert "the memory of nodes '0:', container 'app' was doubled from 2048 MiB to 4096 MiB" in retry.notes


# --- tags, dependencies, refusals ------------------------------------------------------------------


def test_tags_gain_retry_of_and_stay_within_batchs_limits() -> None:
    tags = {f"k{i:02}": "v" for i in range(MAX_TAGS)}
    tags.update({RETRY_OF_TAG: "an-older-job", "aws:batch:owner": "x", "long": "v" * 257})
    retry = resubmit_request({**JOB, "container": CONTAINER, "tags": tags}, original_job_id=JOB_ID)
    sent = valid_request(retry)["tags"]
    assert len(sent) == MAX_TAGS and sent[RETRY_OF_TAG] == JOB_ID  # a retry of a retry points at its own original
    assert "k49" not in sent and "aws:batch:owner" not in sent and "long" not in sent
    assert any("'aws:batch:owner'" in note for note in retry.notes)
    assert any("'long'" in note and "longer than Batch allows" in note for note in retry.notes)
    assert any("1 tag(s) not carried" in note and "'k49'" in note for note in retry.notes)


def test_dependencies_are_not_carried_and_the_notes_say_so() -> None:
    description = {**JOB, "container": CONTAINER, "dependsOn": [{"jobId": "a"}, {"jobId": "b", "type": "SEQUENTIAL"}]}
    retry = resubmit_request(description, original_job_id=JOB_ID)
    assert "dependsOn" not in valid_request(retry)
    assert any("dependencies are not carried" in note and "2 job(s)" in note for note in retry.notes)


def test_an_original_job_arn_is_accepted_as_its_id() -> None:
    retry = resubmit_request({**JOB, "container": CONTAINER}, original_job_id=JOB["jobArn"])
    assert retry.kwargs["tags"][RETRY_OF_TAG] == JOB_ID and retry.original_job_id == JOB_ID


@pytest.mark.parametrize("options,match", [
    ({"account": "999999999999"}, "account '123456789012'"),
    ({"region": "eu-west-1"}, "region 'us-east-1'"),
])
def test_a_job_of_another_account_or_region_is_refused(options: dict[str, str], match: str) -> None:
    with pytest.raises(JobElsewhere, match=match):
        resubmit_request({**JOB, "container": CONTAINER}, original_job_id=JOB_ID, **options)


def test_a_description_of_another_job_is_refused() -> None:
    with pytest.raises(CannotResubmit, match="not of 'other-job'"):
        resubmit_request({**JOB, "container": CONTAINER}, original_job_id="other-job")


@pytest.mark.parametrize("change,field", [
    ({"jobName": None}, "jobName"), ({"jobQueue": ""}, "jobQueue"), ({"jobDefinition": 14}, "jobDefinition"),
    ({"container": None}, "container"),
    ({"container": {"environment": [{"value": "x"}]}}, "container.environment[0].name"),
    ({"container": {"command": ["ok", 3]}}, "container.command[1]"),
    ({"container": {"resourceRequirements": [{"type": "MEMORY"}]}}, "container.resourceRequirements[0].value"),
    ({"retryStrategy": {"evaluateOnExit": [{"onReason": "*"}]}}, "retryStrategy.evaluateOnExit[0].action"),
    ({"tags": ["not", "a", "map"]}, "tags"),
])
def test_a_missing_or_malformed_field_is_named(change: dict[str, Any], field: str) -> None:
    description = {**JOB, "container": CONTAINER, **change}
    with pytest.raises(IncompleteDescription) as refused:
        resubmit_request({k: v for k, v in description.items() if v is not None}, original_job_id=JOB_ID)
    assert refused.value.field == field
    assert field in str(refused.value)


def test_a_description_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(IncompleteDescription):
        resubmit_request(["not", "a", "job"], original_job_id=JOB_ID)  # type: ignore[arg-type]


def test_environment_values_stay_out_of_repr_notes_errors_and_the_loggable_copy() -> None:
    for description in ({**JOB, "container": CONTAINER, "tags": {"aws:x": "y"}, "dependsOn": [{"jobId": "a"}]},
                        ECS_JOB, EKS_JOB):
        retry = resubmit_request(description, original_job_id=JOB_ID, more_memory=True)
        assert SECRET in str(retry.kwargs)  # the retry runs with it...
        assert SECRET not in repr(retry) and SECRET not in str(retry.notes)  # ...and nothing shows it
        assert SECRET not in str(retry.loggable())
    broken = {**JOB, "container": {**CONTAINER, "environment": [{"name": 7, "value": SECRET}]}}
    with pytest.raises(IncompleteDescription) as refused:
        resubmit_request(broken, original_job_id=JOB_ID)
    assert SECRET not in str(refused.value)


def test_the_loggable_copy_masks_commands_and_leaves_the_request_alone() -> None:
    retry = resubmit_request({**JOB, "container": CONTAINER}, original_job_id=JOB_ID)
    logged = retry.loggable()
    assert logged["containerOverrides"]["command"] == ["[masked]"] * 3
    assert retry.kwargs["containerOverrides"]["command"] == ["python", "-m", "etl"]


# --- any description: a valid request or a clear refusal --------------------------------------------

MARK = "§env§"  # in every generated environment value, and in no other generated text
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_:/#", min_size=1, max_size=12)
env_values = st.text(max_size=8).map(lambda text: MARK + text)
junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=3),
                 st.lists(st.integers(), max_size=2), st.dictionaries(names, st.integers(), max_size=2))


def maybe_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly well formed, now and then (1 in 40) the wrong type (a newer AWS shape, a hand-made answer)."""
    return st.integers(0, 39).flatmap(lambda draw: junk if draw == 0 else strategy)


def shape(required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
          ) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({k: maybe_junk(v) for k, v in required.items()},
                                 optional={k: maybe_junk(v) for k, v in optional.items()})


memory_mib = st.integers(0, 400_000).map(str)
quantities = st.one_of(memory_mib.map(lambda mib: f"{mib}Mi"), st.integers(1, 300).map(lambda g: f"{g}Gi"),
                       st.decimals(0, 300, places=2).map(lambda d: f"{d}G"),
                       st.sampled_from(["4e9", "500m", "x", "1.5Ti"]))
environment = st.lists(shape({"name": names}, {"value": env_values}), max_size=3)
requirements = st.lists(shape({"type": st.sampled_from(["MEMORY", "VCPU", "GPU"]),
                               "value": st.one_of(memory_mib, st.sampled_from(["0.25", "abc"]))}, {}), max_size=3)
container = shape({}, {"name": names, "command": st.lists(names, max_size=3), "environment": environment,
                       "resourceRequirements": requirements, "vcpus": st.integers(0, 8),
                       "memory": st.integers(0, 300_000), "instanceType": names})
eks_resources = shape({}, {"limits": st.dictionaries(st.sampled_from(["memory", "cpu"]), quantities, max_size=2),
                           "requests": st.dictionaries(st.sampled_from(["memory", "cpu"]), quantities, max_size=2)})
eks_container = shape({}, {"name": names, "command": st.lists(names, max_size=2), "args": st.lists(names, max_size=2),
                           "env": environment, "resources": eks_resources})
metadata = shape({}, {"labels": st.dictionaries(names, names, max_size=2),
                      "annotations": st.dictionaries(names, names, max_size=1)})
eks = shape({"podProperties": shape({"containers": st.lists(eks_container, max_size=2)},
                                    {"initContainers": st.lists(eks_container, max_size=1), "metadata": metadata})}, {})
ecs = shape({"taskProperties": st.lists(shape({"containers": st.lists(container, max_size=2)}, {}), max_size=2)}, {})
node_range = shape({"targetNodes": st.sampled_from(["0", "1:", "0:3", ":"])},
                   {"container": container, "ecsProperties": ecs, "eksProperties": eks,
                    "instanceTypes": st.lists(names, max_size=2)})
nodes = shape({"numNodes": st.integers(1, 8), "nodeRangeProperties": st.lists(node_range, min_size=1, max_size=3)},
              {"mainNode": st.integers(0, 3)})
descriptions = shape(
    {"jobId": st.sampled_from([JOB_ID] * 8 + [f"{JOB_ID}:2", f"{JOB_ID}#1"]),
     "jobName": names, "jobQueue": names, "jobDefinition": names},
    {"jobArn": st.just(JOB["jobArn"]), "parameters": st.dictionaries(names, names, max_size=2),
     "tags": st.dictionaries(names, st.text(max_size=300), max_size=60), "propagateTags": st.booleans(),
     "shareIdentifier": names, "schedulingPriority": st.integers(0, 9999),
     "timeout": shape({"attemptDurationSeconds": st.integers(60, 9999)}, {}),
     "retryStrategy": shape({}, {"attempts": st.integers(1, 10),
                                 "evaluateOnExit": st.lists(shape({"action": st.sampled_from(["RETRY", "exit"])},
                                                                  {"onExitCode": names}), max_size=2)}),
     "arrayProperties": shape({}, {"size": st.integers(2, 100), "index": st.integers(0, 3)}),
     "dependsOn": st.lists(shape({"jobId": names}, {}), max_size=2),
     "platformCapabilities": st.lists(st.sampled_from(["EC2", "FARGATE"]), max_size=1)})
# Mostly one shape, as Batch writes them; now and then none, or two.
job_shapes = st.one_of(*(st.fixed_dictionaries({key: value}) for key, value in (
    ("container", container), ("nodeProperties", nodes), ("ecsProperties", ecs), ("eksProperties", eks))),
    st.just({}), st.fixed_dictionaries({"container": container, "eksProperties": eks}))
jobs = st.builds(lambda base, job_shape: {**base, **job_shape}, descriptions, job_shapes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(description=jobs, more_memory=st.booleans())
def test_any_description_gives_a_valid_request_or_a_clear_refusal(description: dict[str, Any],
                                                                   more_memory: bool) -> None:
    job_id = description["jobId"] if isinstance(description.get("jobId"), str) else JOB_ID
    try:
        retry = resubmit_request(description, original_job_id=job_id, more_memory=more_memory)
    except CannotResubmit as refused:
        assert MARK not in str(refused)
        return
    validate_parameters(retry.kwargs, SUBMIT_JOB)
    assert MARK not in repr(retry) and MARK not in str(retry.notes) and MARK not in str(retry.loggable())
    assert retry.kwargs["tags"][RETRY_OF_TAG] == job_id and len(retry.kwargs["tags"]) <= MAX_TAGS
    assert "dependsOn" not in retry.kwargs


@given(mib=st.integers(1, 10**7), cap=st.integers(1, 10**6))
def test_doubled_memory_is_twice_the_old_or_the_cap_and_never_less(mib: int, cap: int) -> None:
    description = {**JOB, "container": {"resourceRequirements": [{"type": "MEMORY", "value": str(mib)}]}}
    retry = resubmit_request(description, original_job_id=JOB_ID, more_memory=True, memory_cap_mib=cap)
    new = int(retry.kwargs["containerOverrides"]["resourceRequirements"][0]["value"])
    assert new == (2 * mib if 2 * mib <= cap else max(mib, cap))
    assert len(retry.notes) == 1
