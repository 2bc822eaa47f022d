"""Routing by EventBridge pattern, checked with a real EventBridge implementation (moto).

chalice.test invokes a handler directly and ignores its pattern, so only these tests say which
events reach which handler. moto >= 5.1.20 evaluates every operator used here; older versions
silently match operators they don't know, which would make these tests pass for wrong patterns.
"""

from importlib.metadata import version

import pytest

from app import app
from chalicelib.reading.patterns import job_state_pattern
from tests.conftest import event_names, load_event
from tools.eventbridge import EventBridgeRouter, registered_patterns

# Every fixture and the handlers its event must reach; a new fixture must be added here.
EXPECTED = {
    "array_child_failed": [],  # the parent's message summarises children
    "array_child_index0_succeeded": [],  # index 0 is still a child
    "array_parent_failed": ["on_job_failed"],
    "china_failed": ["on_job_failed"],
    "critical_running": ["on_critical_job_running"],
    "custom_log_group_failed": ["on_job_failed"],
    "detail_missing_fields": ["on_job_failed"],
    "diag_cannot_inspect_container": ["on_job_failed"],
    "diag_image_pull_eks": ["on_job_failed"],
    "diag_out_of_memory_fargate": ["on_job_failed"],
    "diag_pod_evicted": ["on_job_failed"],
    "diag_runnable_time_limit": ["on_job_failed"],
    "ec2_failed": ["on_job_failed"],
    "ec2_succeeded": ["on_job_succeeded"],
    "ecs_multicontainer_failed": ["on_job_failed"],
    "ecs_multicontainer_succeeded": ["on_job_succeeded"],
    "ecs_multinode_node_failed": [],  # a node job, like multinode_node_failed
    "ecs_multinode_parent_failed": ["on_job_failed"],
    "ecs_sidecar_failed": ["on_job_failed"],
    "eks_failed": ["on_job_failed"],
    "fargate_failed": ["on_job_failed"],
    "govcloud_failed": ["on_job_failed"],
    "hostile_text_failed": ["on_job_failed"],
    "job_queue_blocked": ["on_job_queue_blocked"],
    "multinode_node_failed": [],  # node jobs: the parent's event carries the main node's result
    "multinode_parent_failed": ["on_job_failed"],
    "never_started_failed": ["on_job_failed"],
    "retried_failed": ["on_job_failed"],
    "running": [],  # RUNNING only for critical-* jobs
    "splunk_log_driver_failed": ["on_job_failed"],
    "timeout_failed": ["on_job_failed"],
}


@pytest.fixture(scope="module")
def bus():
    with EventBridgeRouter(registered_patterns(app)) as router:
        yield router


def test_moto_is_new_enough_to_evaluate_every_operator():
    major, minor, patch = (int(p) for p in version("moto").split(".")[:3])
    assert (major, minor, patch) >= (5, 1, 20)


def test_handlers_are_registered_with_their_public_names():
    assert set(registered_patterns(app)) == {"on_job_failed", "on_job_succeeded", "on_job_queue_blocked",
                                             "on_critical_job_running"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_reaches_exactly_its_handlers(bus, name):
    assert bus.matching(load_event(name)) == EXPECTED[name]


def test_every_failed_fixture_that_is_not_a_child_reaches_on_job_failed(bus):
    # Covers fixtures added after the table above (e.g. one per diagnosis entry).
    for name in event_names():
        event = load_event(name)
        detail = event["detail"]
        if (event["detail-type"] == "Batch Job State Change" and detail.get("status") == "FAILED"
                and "index" not in detail.get("arrayProperties", {}) and "#" not in detail.get("jobId", "")):
            assert bus.matching(event) == ["on_job_failed"], name


def test_a_child_storm_reaches_nothing_but_its_parent_does(bus):
    child = load_event("array_child_failed")
    children = []
    for index in range(0, 300, 7):
        event = {**child, "detail": {**child["detail"], "arrayProperties": {"index": index, "size": 300},
                                     "jobId": f"{child['detail']['jobId'].split(':')[0]}:{index}"}}
        children.append(event)
    delivered = bus.deliver_all([*children, load_event("array_parent_failed")])
    assert {name: len(events) for name, events in delivered.items() if events} == {"on_job_failed": 1}
    assert delivered["on_job_failed"][0]["detail"]["arrayProperties"]["size"] == 500


def test_children_can_be_asked_for_explicitly():
    with EventBridgeRouter({"all": job_state_pattern("FAILED", children=True)}) as router:
        assert router.matching(load_event("array_child_failed")) == ["all"]
        assert router.matching(load_event("multinode_node_failed")) == ["all"]


def test_pattern_needs_a_status():
    with pytest.raises(ValueError, match="at least one job status"):
        job_state_pattern()
