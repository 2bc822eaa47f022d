"""Routing by EventBridge pattern, checked with a real EventBridge implementation (moto).

chalice.test invokes a handler directly and ignores its pattern, so only these tests (and each
handler's own, through tests/reach.py) say which events reach which handler. moto >= 5.1.20
evaluates every operator used here; older versions silently match operators they don't know,
which would make these tests pass for wrong patterns.

Nothing here changes when a handler is added: what the built-in handlers reach is stated over
their own fixtures and compared for the built-in handlers only; every other check is a fact
about every handler or every fixture. A fork states what its handler reaches in its own test.
"""

from importlib.metadata import version
from typing import Any

import pytest

from app import app
from chalicelib.reading.event import JOB_STATE_CHANGE
from chalicelib.reading.patterns import NOT_A_NODE_JOB, NOT_AN_ARRAY_CHILD, job_state_pattern
from tests.conftest import event_names, load_event
from tests.reach import check_reach, reached
from tools.eventbridge import EventBridgeRouter, registered_patterns

BUILT_IN = ("on_job_failed", "on_job_succeeded", "on_job_queue_blocked")

# The built-in handlers each shipped fixture reaches: stated once, here. Compared for BUILT_IN
# only, so a fork's handler that also selects one of these events changes nothing here (its own
# test says so). A fixture a fork adds for its own handler needs no line: see
# test_a_fixture_outside_this_table_is_for_a_handler_outside_it.
BUILT_IN_REACH: dict[str, list[str]] = {
    "array_child_failed": [],  # the parent's message summarises children
    "array_child_index0_succeeded": [],  # index 0 is still a child
    "array_parent_failed": ["on_job_failed"],
    "china_failed": ["on_job_failed"],
    "critical_running": [],  # on_critical_job_running's, stated in tests/test_critical_running.py
    "custom_log_group_failed": ["on_job_failed"],
    "detail_missing_fields": ["on_job_failed"],
    "diag_cannot_inspect_container": ["on_job_failed"],
    "diag_dependency_failed": ["on_job_failed"],
    "diag_host_terminated": ["on_job_failed"],
    "diag_image_pull": ["on_job_failed"],
    "diag_image_pull_eks": ["on_job_failed"],
    "diag_never_started": ["on_job_failed"],
    "diag_out_of_memory": ["on_job_failed"],
    "diag_out_of_memory_fargate": ["on_job_failed"],
    "diag_pod_evicted": ["on_job_failed"],
    "diag_resource_initialization": ["on_job_failed"],
    "diag_runnable_time_limit": ["on_job_failed"],
    "diag_stopped_by_person": ["on_job_failed"],
    "diag_timeout": ["on_job_failed"],
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
    "running": [],  # RUNNING is only on_critical_job_running's, and this is no critical-* job
    "splunk_log_driver_failed": ["on_job_failed"],
    "timeout_failed": ["on_job_failed"],
}


def is_child(event: dict[str, Any]) -> bool:
    """An array child (it has an index) or a multi-node node job (its id has a '#')."""
    detail = event.get("detail") or {}
    return "index" in (detail.get("arrayProperties") or {}) or "#" in str(detail.get("jobId", ""))


def job_state(name: str) -> tuple[str, bool] | None:
    """(status, is a child) of a job state change fixture; None for other events."""
    event = load_event(name)
    if event["detail-type"] != JOB_STATE_CHANGE:
        return None
    return str(event["detail"].get("status")), is_child(event)


def leaves_children_out(pattern: dict[str, Any]) -> bool:
    """The pattern is job_state_pattern's default (without ``children=True``)."""
    detail = pattern.get("detail", {})
    return detail.get("arrayProperties") == NOT_AN_ARRAY_CHILD["arrayProperties"] and \
        detail.get("jobId") == NOT_A_NODE_JOB["jobId"]


def test_moto_is_new_enough_to_evaluate_every_operator():
    major, minor, patch = (int(p) for p in version("moto").split(".")[:3])
    assert (major, minor, patch) >= (5, 1, 20)


def test_the_built_in_handlers_keep_their_public_names():
    assert set(BUILT_IN) <= set(registered_patterns(app))


@pytest.mark.parametrize("name", sorted(BUILT_IN_REACH))
def test_each_shipped_fixture_reaches_exactly_its_built_in_handlers(name):
    assert [h for h in reached()[name] if h in BUILT_IN] == BUILT_IN_REACH[name]


def test_the_table_read_per_handler():
    # The same table, as each handler's statement: catches a name typed wrong in it.
    for handler in BUILT_IN:
        check_reach(handler, reaches=[f for f, hs in BUILT_IN_REACH.items() if handler in hs],
                      skips=[f for f, hs in BUILT_IN_REACH.items() if handler not in hs])


def test_a_fixture_outside_this_table_is_for_a_handler_outside_it():
    # A new fixture comes with the handler it is for; if it reaches only built-in handlers (or
    # none), that handler's pattern does not select it, or it belongs in BUILT_IN_REACH.
    for name in sorted(set(event_names()) - set(BUILT_IN_REACH)):
        assert set(reached()[name]) - set(BUILT_IN), (
            f"{name} reaches no handler but {list(reached()[name])}: the handler it was added for does not "
            "select it (jobQueue and jobDefinition are ARNs in the event: see the README), or, if it is a "
            "fixture for a built-in handler, add it to BUILT_IN_REACH in tests/test_patterns.py")


def test_every_event_handler_is_reached_by_some_fixture():
    unreached = [h for h in registered_patterns(app) if not any(h in hs for hs in reached().values())]
    assert unreached == [], (f"no fixture in tests/events reaches {unreached}: add one its pattern must select, "
                             "and say so in its test with tests.reach.check_reach")


def test_array_children_and_node_jobs_reach_no_handler_that_leaves_them_out():
    children = [n for n in event_names() if (job_state(n) or ("", False))[1]]
    assert len(children) >= 4  # array children and node jobs, of both kinds of job definition
    defaults = {h for h, pattern in registered_patterns(app).items() if leaves_children_out(pattern)}
    assert set(BUILT_IN) - {"on_job_queue_blocked"} <= defaults
    for name in children:
        assert not set(reached()[name]) & defaults, name


@pytest.mark.parametrize("status, handler", [("FAILED", "on_job_failed"), ("SUCCEEDED", "on_job_succeeded")])
def test_every_fixture_of_a_status_that_is_not_a_child_reaches_its_handler(status, handler):
    # Whatever else selects it: covers fixtures added after the table above.
    for name in event_names():
        if job_state(name) == (status, False):
            assert handler in reached()[name], name


def test_a_child_storm_reaches_nothing_but_its_parent_does():
    child = load_event("array_child_failed")
    children = []
    for index in range(0, 300, 7):
        event = {**child, "detail": {**child["detail"], "arrayProperties": {"index": index, "size": 300},
                                     "jobId": f"{child['detail']['jobId'].split(':')[0]}:{index}"}}
        children.append(event)
    patterns = registered_patterns(app)
    with EventBridgeRouter(patterns) as bus:
        delivered = bus.deliver_all([*children, load_event("array_parent_failed")])
    for handler, events in delivered.items():
        if leaves_children_out(patterns[handler]):
            assert [e["detail"].get("arrayProperties", {}).get("index") for e in events] in ([], [None]), handler
    [parent] = delivered["on_job_failed"]
    assert parent["detail"]["arrayProperties"]["size"] == 500


def test_children_can_be_asked_for_explicitly():
    with EventBridgeRouter({"all": job_state_pattern("FAILED", children=True)}) as router:
        assert router.matching(load_event("array_child_failed")) == ["all"]
        assert router.matching(load_event("multinode_node_failed")) == ["all"]


def test_pattern_needs_a_status():
    with pytest.raises(ValueError, match="at least one job status"):
        job_state_pattern()
