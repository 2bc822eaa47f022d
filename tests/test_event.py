"""The typed event view over the fixture shapes AWS documents, and over broken input."""

import copy
import json
import re
from datetime import timedelta
from functools import cached_property

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.composing.failure_message import build_failure_message
from chalicelib.core import clients
from chalicelib.core.config import LogTailSettings
from chalicelib.reading.event import (
    ENVELOPE_LIST_FIELDS,
    ENVELOPE_TEXT_FIELDS,
    AttemptView,
    ContainerView,
    JobStateChange,
    NotAJobStateChange,
    RetryRule,
    as_text,
)
from chalicelib.reading.logtail import fetch_log_tail
from tests.conftest import load_event

ENVELOPE_FIELDS = ENVELOPE_TEXT_FIELDS + ENVELOPE_LIST_FIELDS


def envelope(detail=None, **fields):
    """A complete EventBridge envelope around ``detail`` (fields override, ``None`` drops one)."""
    event = {"version": "0", "id": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", "detail-type": "Batch Job State Change",
             "source": "aws.batch", "account": "123456789012", "time": "2025-01-01T00:00:00Z",
             "region": "us-east-1", "resources": [], "detail": {} if detail is None else detail}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}

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
    # ecsProperties: the essential container (or the first failing one) speaks for the job.
    "ecs_multicontainer_failed": ("drive-sim-scenario-0042", "FAILED", "sim-ec2-queue", "drive-sim:6", 1, 2, 593,
                                  True),
    "ecs_multicontainer_succeeded": ("catalog-export-2025-06-18", "SUCCEEDED", "ingest-fargate-queue",
                                     "catalog-export:3", 0, 1, 797, True),
    "ecs_sidecar_failed": ("frame-render-ep07-sc112", "FAILED", "render-ec2-queue", "frame-render:21", 2, 1, 376, True),
    "ecs_multinode_parent_failed": ("ray-tune-sweep-11", "FAILED", "ray-mnp-queue", "ray-cluster:4", 1, 1, 2556, True),
    # As published: no startedAt/stoppedAt on the node job itself, only on its attempt.
    "ecs_multinode_node_failed": ("ray-tune-sweep-11", "FAILED", "ray-mnp-queue", "ray-cluster:4", 1, 1, None, True),
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
    read = (job.job_name, job.exit_code, job.duration, job.log_stream_name, job.attempts)
    assert read == (None, None, None, None, ())


@pytest.mark.parametrize("event, why", [
    (load_event("job_queue_blocked"), "Batch Job Queue Blocked"),
    (envelope(source="aws.ec2"), "aws.ec2"),
    ({k: v for k, v in envelope().items() if k != "detail"}, "no 'detail'"),
    (envelope(detail="FAILED"), "no 'detail'"),
    (["not", "a", "dict"], "list"),
])
def test_not_a_job_state_change_says_why(event, why):
    with pytest.raises(NotAJobStateChange, match=why):
        JobStateChange.from_event(event)


def test_wrong_types_read_as_missing():
    job = JobStateChange.from_event(envelope({
        "jobName": 42, "status": ["FAILED"], "attempts": "many", "startedAt": "yesterday", "stoppedAt": True,
        "container": {"exitCode": True, "logStreamName": None}, "arrayProperties": [], "tags": {"a": 1}}))
    assert (job.job_name, job.status, job.attempts, job.duration, job.exit_code, job.log_stream_name) == (
        None, None, (), None, None, None)
    assert job.tags == {} and not job.is_array_parent


@pytest.mark.parametrize("name, never", [
    ("never_started_failed", True), ("array_parent_failed", False), ("ec2_failed", False),
    ("multinode_parent_failed", False), ("running", False), ("detail_missing_fields", False),
])
def test_never_started(name, never):
    assert JobStateChange.from_event(load_event(name)).never_started is never


@pytest.mark.parametrize("name", ["ecs_multinode_parent_failed", "ecs_multinode_node_failed", "ecs_sidecar_failed",
                                  "ecs_multicontainer_failed", "ecs_multicontainer_succeeded"])
def test_ecs_jobs_that_ran_did_start(name):
    assert JobStateChange.from_event(load_event(name)).ever_started


# -- multi-container (ecsProperties) jobs ------------------------------------------------------
def test_the_essential_container_speaks_for_the_job_not_a_failing_sidecar():
    # ecs_sidecar_failed: telemetry-agent (listed first, essential: false) was OOM-killed (137);
    # render (essential) exited 2 and stopped the task.
    job = JobStateChange.from_event(load_event("ecs_sidecar_failed"))
    assert [(c.name, c.essential, c.exit_code) for c in job.containers] == [
        ("telemetry-agent", False, 137), ("render", True, 2)]
    assert job.container.name == "render" and job.exit_code == 2
    assert job.container_reason is None  # render gave none; the sidecar's OOM is not the job's reason
    assert job.containers[0].reason.startswith("OutOfMemoryError")
    assert job.log_stream_name == "render/render/6c8e0a2b4d6f4e1a9b3c5d7e9f1a3b52"
    assert job.container.log_driver == "awslogs" and job.container.log_options["awslogs-group"] == "/batch/render"
    assert job.is_multi_container


def test_each_attempt_exposes_its_containers_with_the_jobs_definitions():
    job = JobStateChange.from_event(load_event("ecs_multicontainer_failed"))
    first, second = job.attempts
    # The attempt's entries carry no "essential": it comes from the job's container of that name.
    assert [(c.name, c.essential, c.exit_code) for c in first.containers] == [("app", True, 1), ("sidecar", False, 143)]
    assert first.container.name == "app" and first.container.exit_code == 1
    assert first.container.log_stream_name == "drive-sim/app/3f8a61c2d94e4b07a5e1c6d2b8f90a17"
    assert second.container.log_stream_name == job.log_stream_name == "drive-sim/app/9b1e4d7c0a2f4e3b8c6d5a4f1e2b3c9d"
    sidecar = job.attempts[0].containers[1]
    assert sidecar.log_stream_name == "drive-sim/sidecar/3f8a61c2d94e4b07a5e1c6d2b8f90a17"


def test_an_attempt_container_takes_its_log_configuration_from_the_job_definition():
    job = JobStateChange.from_event(load_event("ecs_sidecar_failed"))
    telemetry, render = job.attempts[0].containers
    assert telemetry.log_options["awslogs-group"] == "/batch/telemetry" and not telemetry.essential
    assert render.log_options["awslogs-group"] == "/batch/render" and job.attempts[0].container.name == "render"


def test_a_multinode_parent_defined_with_ecs_properties_reads_its_main_node():
    job = JobStateChange.from_event(load_event("ecs_multinode_parent_failed"))
    assert job.is_multinode_parent and job.containers == () and job.container is None
    assert job.exit_code == 1
    main = job.log_container()
    assert main.name == "application" and main.log_options == {"awslogs-group": "/batch/ray"}


def _ecs(containers, attempts=(), **detail):
    return JobStateChange.from_event(envelope({
        "jobName": "j", "jobId": "id-1", "jobQueue": "q", "jobDefinition": "d:1", "status": "FAILED",
        "ecsProperties": {"taskProperties": [{"containers": list(containers)}]}, "attempts": list(attempts),
        **detail}))


@pytest.mark.parametrize("containers, chosen", [
    # Essential and failed, even after a failing sidecar; then essential; then failed; then first.
    ([{"name": "a", "essential": False, "exitCode": 1}, {"name": "b", "exitCode": 0},
      {"name": "c", "essential": True, "exitCode": 3}], "c"),
    ([{"name": "a", "essential": False, "exitCode": 1}, {"name": "b", "essential": True, "exitCode": 0}], "b"),
    ([{"name": "a", "essential": False, "exitCode": 0}, {"name": "b", "essential": False, "exitCode": 9}], "b"),
    ([{"name": "a", "essential": False}, {"name": "b", "essential": False}], "a"),
    # "essential" omitted means essential (ECS); a string is not a flag.
    ([{"name": "a", "essential": False, "exitCode": 2}, {"name": "b", "essential": "false"}], "b"),
])
def test_which_container_speaks_for_the_task(containers, chosen):
    job = _ecs(containers)
    assert job.container.name == chosen
    assert job.exit_code == next(c for c in containers if c["name"] == chosen).get("exitCode")


def test_a_top_level_container_without_a_stream_falls_back_to_the_same_container_in_the_last_attempt():
    attempts = [{"startedAt": 1, "taskProperties": [{"containers": [
        {"name": "side", "logStreamName": "d/side/t1"}, {"name": "app", "logStreamName": "d/app/t1"}]}]},
        {"startedAt": 2, "taskProperties": [{"containers": [{"name": "side", "logStreamName": "d/side/t2"}]}]}]
    job = _ecs([{"name": "side", "essential": False}, {"name": "app"}], attempts)
    assert job.log_stream_name == "d/app/t1"  # app's own stream, not the sidecar's newer one
    assert job.log_container(job.containers[0]).log_stream_name == "d/side/t2"


def test_never_started_considers_the_new_attempt_shapes():
    # A log stream is named only once a container is RUNNING: an event without startedAt
    # anywhere (truncated) but with a task container's stream did start.
    attempts = [{"taskProperties": [{"containers": [{"name": "app", "logStreamName": "d/app/t1"}]}]}]
    job = _ecs([{"name": "app"}], attempts)
    assert job.ever_started and not job.never_started
    assert _ecs([{"name": "app", "reason": "CannotPullContainerError: x"}], [{"taskProperties": []}]).never_started


def test_views_are_computed_once_per_event():
    job = JobStateChange.from_event(load_event("ecs_multicontainer_failed"))
    assert job.attempts is job.attempts and job.containers is job.containers and job.container is job.container
    assert job.attempts[0].containers is job.attempts[0].containers
    assert job.attempts[0].container is job.attempts[0].container


_json = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["name", "essential", "exitCode", "reason", "logStreamName", "containers",
                                          "taskProperties", "logConfiguration", "options", "logDriver", "startedAt",
                                          "container", "ecsProperties", "nodeRangeProperties", "x"]),
                         inner, max_size=4),
                     max_leaves=12)


@settings(max_examples=100, deadline=None)
@given(detail=st.dictionaries(st.sampled_from(["ecsProperties", "attempts", "container", "nodeProperties",
                                               "eksAttempts", "status", "startedAt"]), _json, max_size=5))
def test_accessors_never_raise_on_any_container_shape(detail):
    job = JobStateChange.from_event(envelope(detail))
    for container in (*job.containers, *(c for a in job.attempts for c in a.containers), job.log_container()):
        if container is not None:
            (container.name, container.essential, container.exit_code, container.reason, container.log_stream_name,
             container.log_driver, dict(container.log_options))
    (job.exit_code, job.container_reason, job.log_stream_name, job.never_started, job.ever_started,
     job.is_multi_container, [a.container.exit_code for a in job.attempts])


# -- the EventBridge envelope ---------------------------------------------------------------
@pytest.mark.parametrize("field", ENVELOPE_FIELDS)
def test_an_envelope_missing_a_field_is_rejected_naming_it(field):
    event = load_event("ec2_failed")
    del event[field]
    with pytest.raises(NotAJobStateChange) as raised:
        JobStateChange.from_event(event)
    assert re.findall(r"'([a-z-]+)'", str(raised.value)) == [field]


@pytest.mark.parametrize("field, value", [
    ("id", 12345), ("id", ""), ("id", None), ("id", ["a"]), ("time", 1715652855), ("region", ""),
    ("account", 123456789012), ("version", 0), ("resources", "arn:aws:batch:us-east-1:123456789012:job/x"),
    ("resources", {"0": "arn"}), ("resources", None),
])
def test_an_envelope_field_of_the_wrong_type_is_rejected_naming_it(field, value):
    event = load_event("ec2_failed")
    event[field] = value
    with pytest.raises(NotAJobStateChange) as raised:
        JobStateChange.from_event(event)
    assert re.findall(r"'([a-z-]+)'", str(raised.value)) == [field]
    if value not in (None, ""):
        assert repr(value) not in str(raised.value)  # an untrusted value is described, never echoed


def test_the_envelope_error_says_what_is_wrong_with_each_field():
    event = load_event("ec2_failed")
    del event["time"]
    event.update(id="", resources="arn:aws:batch:us-east-1:123456789012:job/x")
    with pytest.raises(NotAJobStateChange) as raised:
        JobStateChange.from_event(event)
    assert str(raised.value) == ("malformed EventBridge envelope: 'id' is an empty string, expected a non-empty "
                                 "string; 'time' is missing; 'resources' is a string, expected a list")


def _envelope_field_ok(name, value):
    return isinstance(value, list) if name in ENVELOPE_LIST_FIELDS else isinstance(value, str) and value != ""


@settings(max_examples=150, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(ENVELOPE_FIELDS), st.none() | st.booleans() | st.integers()
                               | st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=2)
                               | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), max_size=4),
       dropped=st.sets(st.sampled_from(ENVELOPE_FIELDS), max_size=3))
def test_the_error_names_exactly_the_bad_envelope_fields(changes, dropped):
    event = copy.deepcopy(load_event("ec2_failed"))
    event.update(changes)
    for name in dropped:
        event.pop(name, None)
    bad = [name for name in ENVELOPE_FIELDS if name not in event or not _envelope_field_ok(name, event[name])]
    if not bad:
        assert JobStateChange.from_event(event).job_id == event["detail"]["jobId"]
        return
    with pytest.raises(NotAJobStateChange) as raised:
        JobStateChange.from_event(event)
    message = str(raised.value)
    assert sorted(set(re.findall(r"'(version|id|time|region|account|resources)'", message))) == sorted(bad)


def test_lone_surrogates_in_job_text_become_replacement_characters():
    # json.loads accepts "\ud800"; quote() and Slack's UTF-8 do not: the view hands out valid text.
    event = load_event("ec2_failed")
    event["detail"]["jobId"] = "job-\ud800"
    event["detail"]["container"]["logConfiguration"] = {"logDriver": "awslogs",
                                                        "options": {"awslogs-group": "/g\udfff"}}
    job = JobStateChange.from_event(event)
    assert job.job_id == "job-\ufffd"
    assert job.container is not None and job.container.log_options == {"awslogs-group": "/g\ufffd"}
    assert as_text("plain") == "plain" and as_text("") is None


# -- what the view is, and what it is not ------------------------------------------------------
VIEWS = (JobStateChange, AttemptView, ContainerView, RetryRule)


@pytest.mark.parametrize("view", VIEWS, ids=lambda view: view.__name__)
def test_every_public_property_says_what_aws_means_by_it(view):
    public = {name: member for name, member in vars(view).items() if not name.startswith("_")
              and isinstance(member, (property, cached_property))}
    assert public  # the classes really have properties to check
    assert [name for name, member in public.items() if not (member.__doc__ or "").strip()] == []


def test_the_view_has_no_routing_words():
    # What a route matches on is routing's business (chalicelib/deciding/routing.py).
    assert [name for name in dir(JobStateChange) if "rout" in name] == []


class CountingView(JobStateChange):
    """The view, counting how often a log location is worked out (a fake chosen by input)."""

    def __init__(self, event):
        super().__init__(event)
        self.log_locations_computed = 0

    def log_location_of(self, container=None):
        self.log_locations_computed += 1
        return super().log_location_of(container)


class FakeLogs:
    """CloudWatch Logs for the log tail: every stream ends with one line."""

    def get_log_events(self, **request):
        return {"events": [{"timestamp": 1, "message": "done"}]}


@pytest.mark.parametrize("name", ["retried_failed", "ec2_failed", "ecs_multicontainer_failed",
                                  "splunk_log_driver_failed", "eks_failed"])
def test_one_failed_message_works_out_the_log_location_once(name):
    # The handler's path: fetch the tail, then build the message (links, attempts, context line).
    job = CountingView(load_event(name))
    clients.use_client("logs", FakeLogs())
    tail = fetch_log_tail(job, LogTailSettings(lines=5, timeout=5.0))
    assert tail.lines == (("done",) if job.log_location is not None else ())
    build_failure_message(job, tail).to_dict()
    # One per container of a multi-container job (its buttons), else one; plus one per attempt
    # the history links (each attempt's own container, in its own log group).
    buttons = len(job.containers) if job.is_multi_container else 1
    history = sum(1 for a in job.attempts if a.container.log_stream_name) if len(job.attempts) > 1 else 0
    assert job.log_locations_computed == buttons + history
    assert job.log_location is job.log_location and job.attempts is job.attempts


def two_essential_containers_event():
    """Containers A then B, both essential, own log groups; B fails (exit 1), ECS stops A (143)."""
    event = copy.deepcopy(load_event("ecs_multicontainer_failed"))
    detail = event["detail"]
    task = detail["ecsProperties"]["taskProperties"][0]
    last = len(detail["attempts"])
    task["containers"] = [  # the job's containers carry the last attempt's results
        {"name": "A", "essential": True, "exitCode": 143, "logStreamName": f"A/a/t{last}",
         "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/grp/A"}}},
        {"name": "B", "essential": True, "exitCode": 1, "reason": "boom", "logStreamName": f"B/b/t{last}",
         "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/grp/B"}}},
    ]
    for n, attempt in enumerate(detail["attempts"], 1):
        attempt["taskProperties"][0]["containers"] = [
            {"name": "A", "exitCode": 143, "logStreamName": f"A/a/t{n}"},
            {"name": "B", "exitCode": 1, "reason": "boom", "logStreamName": f"B/b/t{n}"},
        ]
    return event


def test_the_container_that_failed_on_its_own_speaks_for_the_task_not_the_one_stopped_with_it():
    job = JobStateChange.from_event(two_essential_containers_event())
    assert job.exit_code == 1 and job.container_reason == "boom"
    assert job.log_location is not None and job.log_location.group == "/grp/B"


def test_each_attempt_links_its_own_containers_log_group():
    # Attempt 1 failed in B, the last attempt in A: the job's logs are A's, attempt 1's are B's.
    event = two_essential_containers_event()
    first, last = event["detail"]["attempts"][0], event["detail"]["attempts"][-1]
    first["taskProperties"][0]["containers"][0]["exitCode"] = 0
    last["taskProperties"][0]["containers"][0].update(exitCode=1, reason="a broke")
    last["taskProperties"][0]["containers"][1].update(exitCode=143, reason=None)
    job_containers = event["detail"]["ecsProperties"]["taskProperties"][0]["containers"]
    job_containers[0].update(exitCode=1, reason="a broke")
    job_containers[1].update(exitCode=143, reason=None)
    job = JobStateChange.from_event(event)
    assert job.log_location is not None and job.log_location.group == "/grp/A"
    history = json.dumps(build_failure_message(job, None).to_dict())
    assert "$252Fgrp$252FB/log-events/B$252Fb$252Ft1" in history
    assert "$252Fgrp$252FA/log-events/B" not in history  # never a stream in another container's group


def test_a_forged_event_of_thousands_of_containers_builds_in_linear_time():
    # AWS allows 10 containers; a hand-made direct invoke can send 8,000 in the job and in an
    # attempt. Looking each one up by name in the attempt must not be containers x containers.
    import time

    event = copy.deepcopy(load_event("ecs_multicontainer_failed"))
    names = [f"c{i}" for i in range(8000)]
    event["detail"]["ecsProperties"]["taskProperties"][0]["containers"] = [{"name": n} for n in names]
    event["detail"]["attempts"] = [{"taskProperties": [{"containers": [
        {"name": n, "exitCode": 1, "logStreamName": f"s/{n}"} for n in names]}]}]
    started = time.perf_counter()
    build_failure_message(JobStateChange.from_event(event), None).to_dict()
    assert time.perf_counter() - started < 5.0  # quadratic: minutes; linear: well under a second
