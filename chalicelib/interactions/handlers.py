"""Every action handler by its action_id: app.py registers them on the app's registry
(interactions/endpoint.py ``actions``) with :func:`register_all`; a test registers them on its own."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from chalice.app import Request, Response

from chalicelib.core import member_roles
from chalicelib.interactions.acknowledge import acknowledge
from chalicelib.interactions.endpoint import ActionHandler, Registry, actions, answer_click
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



_built_ins = threading.Lock()
_registered: set[int] = set()


def answer_with_built_ins(request: Request | None, registry: Registry = actions) -> Response:
    """Answer a click, the built-in handlers registered on ``registry`` at its first click (app.py
    imports this module in the route, so event handlers' cold starts never load the click code).
    An action_id a fork registered itself keeps its handler."""
    member_roles.note_context(getattr(request, "lambda_context", None))  # the app's own account, free
    with _built_ins:
        if id(registry) not in _registered:
            for action_id, handler in HANDLERS.items():
                if registry.handler(action_id) is None:
                    registry.register(action_id, handler)
            _registered.add(id(registry))
    return answer_click(request, registry=registry)
