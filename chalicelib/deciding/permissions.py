"""Who may retry or terminate a job from Slack: the Slack user and user group IDs allowed.

A route's ``actions.allow`` in the routing file decides for its jobs; a route without
``actions``, and every job when there is no routing file, falls back to ``SLACK_ACTIONS_ALLOW``
(comma- or space-separated IDs), so one variable can allow a team everywhere. Nobody allowed
(``()``) means no retry or terminate buttons, and a click on an old one is refused.

This module only says *who*; whether a clicking user is one of them (user groups resolved
with Slack) is chalicelib/interactions/permissions.py's ``may_act``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from chalicelib.core.config import ConfigError, Settings, settings, signing_settings
from chalicelib.core.state_table import state_settings
from chalicelib.deciding.routing import ACTOR_ID, SINGLE_CHANNEL, Decision, RouteTable, route_table

ACTIONS_ALLOW = "SLACK_ACTIONS_ALLOW"
# An ID shown in an error is cut here: the variable may hold anything, a pasted file included.
_SHOWN_CHARS = 40


def parse_actions_allow(env: Mapping[str, str]) -> tuple[str, ...]:
    """The IDs in ``env[SLACK_ACTIONS_ALLOW]`` (comma- or space-separated; unset or blank: ``()``),
    each a Slack user ID (``U...``/``W...``) or user group ID (``S...``) as the routing file's
    mentions are; raise :class:`ConfigError` naming the variable and the first bad ID."""
    raw = env.get(ACTIONS_ALLOW, "")
    ids = tuple(dict.fromkeys(raw.replace(",", " ").split()))
    for candidate in ids:
        if not ACTOR_ID.fullmatch(candidate):
            raise ConfigError(f"{ACTIONS_ALLOW}: {_shown(candidate)} is not a Slack user ID (U... or W...) or user "
                              "group ID (S...); 'here' and 'channel' cannot act. Give IDs such as U0123ABCD or "
                              "S0123ABCD, comma- or space-separated")
    return ids


def _shown(text: str) -> str:
    return repr(text) if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"


def load_actions_allow(s: Settings) -> tuple[str, ...]:
    """The ``SLACK_ACTIONS_ALLOW`` section of a settings tree (see :func:`actions_allow`)."""
    return parse_actions_allow(s.env)


def actions_allow() -> tuple[str, ...]:
    """``SLACK_ACTIONS_ALLOW`` of this container, read at first use and kept (``config.reset()`` forgets it)."""
    return settings().section(load_actions_allow)


def decide_with_actions(table: RouteTable | None, queue: str | None, job_name: str | None,
                        status: str | None, *, account: str | None = None, region: str | None = None) -> Decision:
    """The routing decision for a job (``table``: the routing file, ``None`` without one) with
    :attr:`Decision.actions_allow` filled in: the route's ``actions.allow``, else
    ``SLACK_ACTIONS_ALLOW``. A decision not to post allows nobody: it shows no buttons.
    ``account`` and ``region``: the job's, for routes that match on them (unknown: ``None``)."""
    fallback = actions_allow()
    if table is None:
        return replace(SINGLE_CHANNEL, actions_allow=fallback)
    return table.decide(queue, job_name, status, default_allow=fallback, account=account, region=region)


def allow_for(queue: str | None, job_name: str | None, status: str | None, *, account: str | None = None,
              region: str | None = None) -> tuple[str, ...]:
    """Who may act on a job of ``queue`` named ``job_name``, for a message of ``status``
    (``FAILED`` for the retry buttons, ``STUCK`` or ``BLOCKED`` for terminate): the IDs the
    job's message would have been posted with, by this container's routing file and settings.

    Decided again at click time, so a route changed since the message was posted decides by
    its new rules; a route that no longer posts such messages (dropped, digest-only, another
    status) allows nobody. ``account`` and ``region``: the job's (at click time, its ARN's)."""
    return decide_with_actions(route_table(), queue, job_name, status, account=account, region=region).actions_allow


def actions_on() -> bool:
    """Whether messages carry action buttons: a bot token (a webhook's message cannot be changed
    after a click), a signing secret (the actions route verifies every click with it) and the
    state table (every action claims, acknowledges or snoozes there)."""
    return settings().slack.mode == "bot" and signing_settings().secret is not None and state_settings() is not None
