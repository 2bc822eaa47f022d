"""EventBridge patterns for the handlers in ``app.py``.

Filtering belongs in the pattern: an event the rule does not match never invokes (or bills)
the Lambda function. A 10,000-child array job emits 10,000 child events; the default patterns
let none of them through, only the parent's.
"""

from __future__ import annotations

from typing import Any

from chalicelib.reading.event import (
    BATCH_SOURCE,
    JOB_QUEUE_BLOCKED,
    JOB_STATE_CHANGE,
    SERVICE_JOB_QUEUE_BLOCKED,
    SERVICE_JOB_STATE_CHANGE,
)

# Array children carry arrayProperties.index (0 included); parents and plain jobs don't.
# ("exists" works on leaf fields only, hence index rather than arrayProperties.)
NOT_AN_ARRAY_CHILD = {"arrayProperties": {"index": [{"exists": False}]}}
# Multi-node node jobs are "<parent id>#<node index>"; the parent's id has no '#'.
NOT_A_NODE_JOB = {"jobId": [{"anything-but": {"wildcard": "*#*"}}]}


def job_state_pattern(*statuses: str, children: bool = False, **detail: Any) -> dict[str, Any]:
    """Pattern for Batch job state changes to any of ``statuses``.

    Array children and multi-node node jobs are left out unless ``children=True``: their
    parent's event summarises them. Extra keyword arguments are added to the ``detail`` part
    as EventBridge filters, for example ``jobName=[{"prefix": "critical-"}]``.
    """
    if not statuses:
        raise ValueError("name at least one job status, e.g. job_state_pattern('FAILED')")
    filters: dict[str, Any] = {"status": list(statuses)}
    if not children:
        filters.update(NOT_AN_ARRAY_CHILD)
        filters.update(NOT_A_NODE_JOB)
    filters.update(detail)
    return {"source": [BATCH_SOURCE], "detail-type": [JOB_STATE_CHANGE], "detail": filters}


def queue_blocked_pattern(**detail: Any) -> dict[str, Any]:
    """Pattern for "Batch Job Queue Blocked" events (a RUNNABLE job blocks its queue)."""
    pattern: dict[str, Any] = {"source": [BATCH_SOURCE], "detail-type": [JOB_QUEUE_BLOCKED]}
    if detail:
        pattern["detail"] = dict(detail)
    return pattern


def service_job_state_pattern(*statuses: str, **detail: Any) -> dict[str, Any]:
    """Pattern for "Batch Service Job State Change" events (SageMaker training jobs run through
    AWS Batch) to any of ``statuses`` (``SCHEDULED`` included).

    Service jobs have no array children or node jobs, so nothing is left out. Extra keyword
    arguments are added to the ``detail`` part, as in :func:`job_state_pattern`.
    """
    if not statuses:
        raise ValueError("name at least one service job status, e.g. service_job_state_pattern('FAILED')")
    filters: dict[str, Any] = {"status": list(statuses)}
    filters.update(detail)
    return {"source": [BATCH_SOURCE], "detail-type": [SERVICE_JOB_STATE_CHANGE], "detail": filters}


def service_job_queue_blocked_pattern(**detail: Any) -> dict[str, Any]:
    """Pattern for "Batch Service Job Queue Blocked" events (a RUNNABLE service job blocks its queue)."""
    pattern: dict[str, Any] = {"source": [BATCH_SOURCE], "detail-type": [SERVICE_JOB_QUEUE_BLOCKED]}
    if detail:
        pattern["detail"] = dict(detail)
    return pattern


# Sweep intervals that divide the hour: the sweep runs on a grid (":00, :15, :30, :45"), and
# rounding to the grid absorbs an invocation up to half an interval early or late. Five
# minutes at least: EventBridge may deliver a scheduled event tens of seconds late.
SWEEP_MINUTES = (5, 10, 15, 20, 30, 60)


def sweep_schedule(minutes: int) -> str:
    """The EventBridge cron expression that runs the sweep every ``minutes`` on the hour's grid."""
    if minutes not in SWEEP_MINUTES:
        raise ValueError(f"the stuck-job sweep runs every {', '.join(map(str, SWEEP_MINUTES))} minutes, "
                         f"not every {minutes}: pick one that divides the hour")
    return "cron(0 * * * ? *)" if minutes == 60 else f"cron(0/{minutes} * * * ? *)"
