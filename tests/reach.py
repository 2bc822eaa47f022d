"""Which fixture reaches which handler: asked of moto's EventBridge, with app.py's own patterns.

chalice.test invokes a handler directly and ignores its pattern, so which handlers an event
reaches is only known from here. Every fixture in tests/events is put once on an emulated bus carrying one rule per
``on_cw_event`` handler; the answer is kept for the whole test run (the fixtures and app.py do
not change while it lasts).

A handler's own test states what it reaches with :func:`check_reach`: the fixtures it must reach
and the ones it must not. Statements only ever name fixtures and handlers someone chose, so a
handler or fixture added later never makes an existing one wrong; a pattern that starts
matching a fixture its statement says it skips fails that statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from app import app
from tests.conftest import event_names, load_event
from tools.eventbridge import EventBridgeRouter, registered_patterns


@cache
def reached() -> dict[str, tuple[str, ...]]:
    """Fixture name -> the handlers EventBridge invokes for it, in app.py's order."""
    # One bus for all fixtures, then closed: a moto mock left running would leak into other tests.
    with EventBridgeRouter(registered_patterns(app)) as bus:
        return {name: tuple(bus.matching(load_event(name))) for name in event_names()}


def fixtures_reaching(handler: str) -> list[str]:
    """Every fixture whose event reaches ``handler``."""
    return [name for name, handlers in reached().items() if handler in handlers]


def check_reach(handler: str, *, reaches: Iterable[str], skips: Iterable[str] = ()) -> None:
    """Assert that ``handler``'s pattern selects every fixture in ``reaches`` and none in ``skips``.

    Names are fixture file names in tests/events without ``.json``. Fixtures named in neither
    are not this statement's business (another handler's test speaks for them).
    """
    wanted, unwanted = sorted(set(reaches)), sorted(set(skips))
    patterns = registered_patterns(app)
    assert handler in patterns, f"app.py has no on_cw_event handler {handler!r} (it has {sorted(patterns)})"
    unknown = sorted(set(wanted + unwanted) - set(reached()))
    assert unknown == [], f"no such fixture in tests/events: {unknown}"
    both = sorted(set(wanted) & set(unwanted))
    assert both == [], f"{handler}: said to reach and to skip {both}"
    missed = [name for name in wanted if handler not in reached()[name]]
    assert missed == [], (f"{handler}'s pattern does not select {missed}. Is a filter on jobQueue or "
                          "jobDefinition written for a name? In the event both are ARNs (see the README).")
    wrongly = [name for name in unwanted if handler in reached()[name]]
    assert wrongly == [], f"{handler}'s pattern selects {wrongly}, which it must skip"
