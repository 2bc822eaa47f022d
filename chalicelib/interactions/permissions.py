"""Whether the person who clicked may act: :func:`may_act`, at click time.

``allow`` is what chalicelib/deciding/permissions.py's ``allow_for`` gives for the clicked job:
Slack user IDs (``U...``/``W...``), matched directly, and user group IDs (``S...``), whose
members are asked of Slack (``usergroups.users.list``, bot token, scope ``usergroups:read``)
and kept :data:`GROUP_CACHE_SECONDS` per group in this container: a burst of clicks asks once,
and a person removed from the group loses the right within a minute.

It fails closed: a group Slack will not list (an error, a timeout, no bot token, an answer that
is not a list of IDs) allows nobody through that group, and a warning line says why; a failure
is not kept, so the next click asks again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from slack_sdk.errors import SlackApiError

from chalicelib.core import masking
from chalicelib.core.logline import log_line
from chalicelib.core.secrets import resolve
from chalicelib.deciding.routing import ACTOR_ID
from chalicelib.delivering.retries import Call, header, retry_handlers
from chalicelib.delivering.slack import BoundedWebClient, DeliveryError, Slack
from chalicelib.delivering.slack_http import BoundedTransport, describe

GROUP_CACHE_SECONDS = 60.0
USERGROUP_MEMBERS_METHOD = "usergroups.users.list"
# What to tell the person deploying for the refusals this method is known for.
_GROUP_ERROR_HINTS = {
    "missing_scope": "add the usergroups:read bot scope to the Slack app and reinstall it",
    "no_such_subteam": "no such user group: fix the ID in the route's actions.allow or SLACK_ACTIONS_ALLOW",
    "not_allowed_token_type": "the token cannot list user groups: use a bot token (xoxb-)",
    "plan_upgrade_required": "this workspace has no user groups: list user IDs instead",
    "invalid_auth": "the bot token is not valid",
}
# slack-sdk logs requests at DEBUG: the logger delivering/slack.py silences, shared.
_SDK_LOGGER = logging.getLogger("batch_notify.slack_sdk")


class GroupCache:
    """Members of user groups, each kept ``seconds`` from when Slack listed them.

    One per container (:data:`GROUPS`); tests make their own with a ``clock`` they move.
    Thread-safe: the click handler may overrun into another thread."""

    def __init__(self, seconds: float = GROUP_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self._members: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> frozenset[str] | None:
        """The members kept for ``key`` (API URL, group ID), or ``None`` when absent or expired."""
        with self._lock:
            kept = self._members.get(key)
            if kept is None or self.clock() - kept[0] >= self.seconds:
                return None
            return kept[1]

    def put(self, key: tuple[str, str], members: frozenset[str]) -> None:
        """Keep ``members`` for ``key`` from now."""
        with self._lock:
            self._members[key] = (self.clock(), members)

    def clear(self) -> None:
        """Forget every group."""
        with self._lock:
            self._members.clear()


GROUPS = GroupCache()


def may_act(user_id: str, allow: Sequence[str], slack: Slack, *, cache: GroupCache | None = None) -> bool:
    """Whether Slack user ``user_id`` is one of ``allow``: named, or a member of a named group.

    ``slack`` is the bot's Slack (cut to the click's time: ``slack.within(deadline)``); groups are
    listed with it only when the user is not named directly, one at a time, until one holds
    the user. ``cache``: default :data:`GROUPS`. Never raises for Slack's sake: fails closed."""
    if not _is_user_id(user_id):
        return False  # a group ID, 'here', '' or worse is nobody: never matched against allow
    if user_id in allow:
        return True
    groups = [entry for entry in allow if entry.startswith("S") and ACTOR_ID.fullmatch(entry)]
    return any(user_id in _members(group, slack, cache or GROUPS, user_id) for group in groups)


def _is_user_id(text: str) -> bool:
    return text[:1] in ("U", "W") and ACTOR_ID.fullmatch(text) is not None


def _members(group: str, slack: Slack, cache: GroupCache, user_id: str) -> frozenset[str]:
    key = (slack.settings.api_url, group)
    kept = cache.get(key)
    if kept is not None:
        return kept
    try:
        members = usergroup_members(slack, group)
    except DeliveryError as error:
        log_line(logging.WARNING, warning="could not list a Slack user group: its members are not allowed to act",
                 group=group, user=user_id, code=error.code, error=masking.mask(str(error)))
        return frozenset()
    cache.put(key, members)
    return members


def usergroup_members(slack: Slack, group: str) -> frozenset[str]:
    """The user IDs in Slack user group ``group`` (``usergroups.users.list`` with the bot token,
    over delivering/slack.py's bounded transport, budget and retries); raise
    :class:`DeliveryError` (with Slack's error code, when it gave one) otherwise."""
    settings = slack.settings
    if settings.mode != "bot":
        raise DeliveryError("a webhook cannot list user groups: that needs a bot token; 0 HTTP request(s) made")
    call = Call(BoundedTransport(request_timeout=settings.request_timeout, budget_seconds=settings.delivery_budget),
                settings.request_timeout)
    try:
        secret = resolve(settings.secret)  # inside: an SSM failure fails closed like Slack's own
        masking.protect(secret)
        client = BoundedWebClient(call, token=secret, base_url=settings.api_url,
                             timeout=max(1, round(settings.request_timeout)), logger=_SDK_LOGGER,
                             retry_handlers=retry_handlers(call))
        data = client.usergroups_users_list(usergroup=group).data
    except SlackApiError as error:
        raise _refusal(error, group, call) from None
    except DeliveryError:
        raise
    except Exception as error:  # refused redirect, odd answer, connection errors and timeouts after retries
        raise DeliveryError(masking.mask(f"could not list user group {group}: {type(error).__name__}: "
                                         f"{str(error)[:200]}{call.account()}")) from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, list) or not all(isinstance(user, str) for user in users):
        raise DeliveryError(f"Slack's {USERGROUP_MEMBERS_METHOD} answer for {group} holds no list of user IDs"
                            f"{call.account()}")
    return frozenset(users)


def _refusal(error: SlackApiError, group: str, call: Call) -> DeliveryError:
    answer = error.response.data if isinstance(error.response.data, dict) else {}
    code = answer.get("error")
    if not isinstance(code, str) or not code.replace("_", "").isalnum() or len(code) > 64:
        what = describe(error.response.status_code, header(error.response.headers, "content-type"), None)
        return DeliveryError(f"Slack answered {what} to {USERGROUP_MEMBERS_METHOD} for {group}{call.account()}")
    hint = _GROUP_ERROR_HINTS.get(code, "not allowed for now")
    return DeliveryError(f"Slack answered {code!r} to {USERGROUP_MEMBERS_METHOD} for {group}: {hint}"
                         f"{call.account()}", code)
