"""Every action handler by its action_id: app.py registers them on the app's registry
(interactions/endpoint.py ``actions``) with :func:`register_all`; a test registers them on its own."""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.interactions.acknowledge import acknowledge
from chalicelib.interactions.endpoint import ActionHandler, Registry
from chalicelib.interactions.retry import retry_job, retry_job_more_memory
from chalicelib.interactions.snooze import snooze, unsnooze
from chalicelib.interactions.terminate import terminate_job

# The action_ids of the messages' buttons (composing/action_buttons.py) and their handlers.
HANDLERS: Mapping[str, ActionHandler] = {
    "retry_job": retry_job,
    "retry_job_more_memory": retry_job_more_memory,
    "terminate_job": terminate_job,
    "acknowledge": acknowledge,
    "snooze": snooze,
    "unsnooze": unsnooze,
}


def register_all(registry: Registry) -> None:
    """Register every handler of :data:`HANDLERS` on ``registry`` (replacing what was there)."""
    for action_id, handler in HANDLERS.items():
        registry.register(action_id, handler, replace=True)

