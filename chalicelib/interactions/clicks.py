"""A click on a message's button or select, read from Slack's ``block_actions`` payload.

The payload comes as a form field (``payload=<JSON>``) of a request already verified as Slack's
(chalicelib/interactions/signing.py); it is still read as untrusted input: a field's text is
written by whoever named the Slack user, built the message, or (for the value) posted the
button. So every field is checked for its type and bounded here, and a missing or malformed
one is an :class:`InvalidClick` (HTTP 400) naming the field, never quoting it. The text fields
are bounded but not escaped: escape them where they are shown (composing/mrkdwn.py).

Only what the actions need is kept, as a read-only :class:`Click`: who clicked, where (team,
channel, the message's ``ts`` and its blocks as Slack sent them), the ``response_url`` to answer
through, and the one action clicked (a button's ``value``, a static select's chosen option).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from chalicelib.interactions.signing import Rejection

# Slack's limits (Block Kit reference): action_id and block_id 255, a button's value 2000, an
# option's value 150; 50 blocks per message, 40,000 characters of text. IDs are Slack's own,
# upper-case letters and digits (U..., W..., T..., E..., C..., G..., D...).
MAX_ID_CHARS = 255
MAX_BUTTON_VALUE_CHARS = 2000
MAX_OPTION_VALUE_CHARS = 150
MAX_NAME_CHARS = 80
MAX_BLOCKS = 50
MAX_URL_CHARS = 2000
_SLACK_ID = re.compile(r"[A-Z0-9]{2,40}")
_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,8}")
# Only Slack's own hosts (and loopback, for the stand-in of the tests and tools/sign_click.py)
# get a response: the answer posted there may carry what a message shows.
_SLACK_HOSTS = ("slack.com", "slack-gov.com")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# A form has one field; a few more (a proxy's) are tolerated, thousands are not parsed.
_MAX_FORM_FIELDS = 20

ActionKind = Literal["button", "static_select"]


class InvalidClick(Rejection):
    """The payload is not a ``block_actions`` click this app can read (HTTP 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)


@dataclass(frozen=True)
class Action:
    """The one action clicked: its ``action_id``, the ``block_id`` of its block, its kind and
    its value (a button's ``value``, ``None`` if the button has none; a static select's
    ``selected_option.value``)."""

    action_id: str
    block_id: str
    kind: ActionKind
    value: str | None


@dataclass(frozen=True)
class Click:
    """A person's click on a message, as Slack reported it (bounded, type-checked, read-only).

    ``message_blocks`` returns a fresh copy each time, so a handler may edit it into the
    message's replacement without changing the click.
    """

    user_id: str
    user_name: str  # the Slack username (or name); may be empty; escape it where shown
    team_id: str
    channel_id: str
    message_ts: str  # container.message_ts: the clicked message, for chat.update and thread replies
    response_url: str
    action: Action
    _blocks_json: str = field(repr=False)

    @property
    def message_blocks(self) -> list[dict[str, Any]]:
        """The clicked message's blocks as Slack sent them (a copy)."""
        blocks: list[dict[str, Any]] = json.loads(self._blocks_json)
        return blocks


def parse_click(body: str) -> Click:
    """The click in a verified request's form ``body``; raise :class:`InvalidClick` otherwise."""
    return click_from_payload(_payload(body))


def _payload(body: str) -> Any:
    try:
        form = parse_qs(body, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except ValueError:
        raise InvalidClick(f"the form has more than {_MAX_FORM_FIELDS} fields") from None
    values = form.get("payload", [])
    if len(values) != 1:
        raise InvalidClick(f"the form has {len(values)} payload fields, not one")
    try:
        return json.loads(values[0])
    except (ValueError, RecursionError):
        raise InvalidClick("payload is not JSON") from None


def click_from_payload(payload: Any) -> Click:
    """The :class:`Click` in a parsed ``block_actions`` payload; raise :class:`InvalidClick`
    naming the first field that is missing or malformed."""
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise InvalidClick("payload is not a block_actions object")
    user = _object(payload, "user")
    container = _object(payload, "container")
    if container.get("type") != "message":
        raise InvalidClick("container.type is not message: only clicks on messages are handled")
    return Click(
        user_id=_text(user, "id", "user.id", pattern=_SLACK_ID),
        user_name=_name(user),
        team_id=_team(payload, user),
        channel_id=_channel(payload, container),
        message_ts=_text(container, "message_ts", "container.message_ts", pattern=_TS),
        response_url=_response_url(payload),
        action=_action(payload),
        _blocks_json=json.dumps(_blocks(payload)),
    )


def _object(node: Mapping[str, Any], key: str, path: str | None = None) -> Mapping[str, Any]:
    value = node.get(key)
    if not isinstance(value, dict):
        raise InvalidClick(f"{path or key} is missing or not an object")
    return value


def _text(node: Mapping[str, Any], key: str, path: str, *, limit: int = MAX_ID_CHARS,
          pattern: re.Pattern[str] | None = None) -> str:
    value = node.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidClick(f"{path} is missing or not a string")
    if len(value) > limit:
        raise InvalidClick(f"{path} is longer than {limit} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidClick(f"{path} is not shaped like a Slack value")
    return value


def _name(user: Mapping[str, Any]) -> str:
    for key in ("username", "name"):
        value = user.get(key)
        if isinstance(value, str) and value:
            return value[:MAX_NAME_CHARS]
    return ""


def _team(payload: Mapping[str, Any], user: Mapping[str, Any]) -> str:
    team = payload.get("team")
    # An org-wide (Enterprise Grid) install may send "team": null; the user's team says it then.
    if isinstance(team, dict):
        return _text(team, "id", "team.id", pattern=_SLACK_ID)
    return _text(user, "team_id", "team.id (or user.team_id)", pattern=_SLACK_ID)


def _channel(payload: Mapping[str, Any], container: Mapping[str, Any]) -> str:
    channel = _text(container, "channel_id", "container.channel_id", pattern=_SLACK_ID)
    named = payload.get("channel")
    if isinstance(named, dict) and named.get("id") not in (None, channel):
        raise InvalidClick("channel.id and container.channel_id differ")
    return channel


def _response_url(payload: Mapping[str, Any]) -> str:
    url = _text(payload, "response_url", "response_url", limit=MAX_URL_CHARS)
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise InvalidClick("response_url is not a URL") from None
    slack = parts.scheme == "https" and any(host == h or host.endswith(f".{h}") for h in _SLACK_HOSTS)
    loopback = parts.scheme in ("http", "https") and host in LOOPBACK_HOSTS
    if not (slack or loopback) or any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidClick("response_url is not an https:// URL of Slack's")
    return url


def _action(payload: Mapping[str, Any]) -> Action:
    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise InvalidClick("actions is not a list of exactly one action object")
    action = actions[0]
    action_id = _text(action, "action_id", "actions[0].action_id")
    block_id = _text(action, "block_id", "actions[0].block_id")
    kind = action.get("type")
    if kind == "button":
        value = action.get("value")
        if value is not None:
            value = _text(action, "value", "actions[0].value", limit=MAX_BUTTON_VALUE_CHARS)
        return Action(action_id, block_id, "button", value)
    if kind == "static_select":
        option = _object(action, "selected_option", "actions[0].selected_option")
        value = _text(option, "value", "actions[0].selected_option.value", limit=MAX_OPTION_VALUE_CHARS)
        return Action(action_id, block_id, "static_select", value)
    raise InvalidClick("actions[0].type is not button or static_select")


def _blocks(payload: Mapping[str, Any]) -> list[Any]:
    message = _object(payload, "message")
    blocks = message.get("blocks", [])
    if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
        raise InvalidClick("message.blocks is not a list of block objects")
    if len(blocks) > MAX_BLOCKS:
        raise InvalidClick(f"message.blocks has more than {MAX_BLOCKS} blocks")
    return blocks
