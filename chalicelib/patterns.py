"""EventBridge patterns for the handlers in ``app.py``.

Filtering belongs in the pattern: an event the rule does not match never invokes (or bills)
the Lambda function. A 10,000-child array job emits 10,000 child events; the default patterns
let none of them through, only the parent's.
"""

from __future__ import annotations

from typing import Any

from chalicelib.event import BATCH_SOURCE, JOB_QUEUE_BLOCKED, JOB_STATE_CHANGE

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
