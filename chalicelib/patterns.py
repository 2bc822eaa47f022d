"""EventBridge patterns for the handlers in ``app.py``.

Filtering belongs in the pattern: an event the rule does not match never invokes (or bills)
the Lambda function.
"""

from __future__ import annotations

from typing import Any

from chalicelib.event import BATCH_SOURCE, JOB_STATE_CHANGE


def job_state_pattern(*statuses: str, **detail: Any) -> dict[str, Any]:
    """Pattern for Batch job state changes to any of ``statuses``.

    Extra keyword arguments are added to the ``detail`` part as EventBridge filters, for
    example ``jobName=[{"prefix": "critical-"}]``.
    """
    if not statuses:
        raise ValueError("name at least one job status, e.g. job_state_pattern('FAILED')")
    return {
        "source": [BATCH_SOURCE],
        "detail-type": [JOB_STATE_CHANGE],
        "detail": {"status": list(statuses), **detail},
    }
