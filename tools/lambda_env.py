"""Invoke the app's handlers from many threads at once, each thread one Lambda container.

``chalice.test`` swaps ``os.environ`` for a copy holding the stage's variables around every
invocation and puts the old one back after: from several threads at once the swaps interleave,
and the process can end up with one invocation's copy as its environment (a test's variables
then outlive the test). :func:`containers` sets the stage's variables once, in a private copy
of the environment, so every swap is alike, and restores the real environment at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
Invoke = Callable[[str, Any], Any]


def stage_variables(stage: str) -> dict[str, str]:
    """The environment variables .chalice/config.json gives ``stage`` (app-wide, then the stage's)."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


@contextmanager
def containers(app: Any, stage: str = "local", env: Mapping[str, str] | None = None,
               unset: tuple[str, ...] = ()) -> Iterator[Invoke]:
    """``invoke(handler_name, event)``, safe to call from many threads, with the stage's variables,
    then ``env``, set (and ``unset`` removed) in a private copy of ``os.environ`` until the end."""
    from chalice.test import Client

    from chalicelib.core import config

    saved = os.environ
    os.environ = os.environ.copy()  # type: ignore[assignment]  # noqa: B003 - a private copy, restored below
    try:
        os.environ.update({**stage_variables(stage), **(env or {})})
        for name in unset:
            os.environ.pop(name, None)
        config.reset()
        client = Client(app, stage_name=stage, project_dir=str(ROOT))
        yield lambda handler, event: client.lambda_.invoke(handler, event)
    finally:
        os.environ = saved  # type: ignore[assignment]  # noqa: B003
        config.reset()
