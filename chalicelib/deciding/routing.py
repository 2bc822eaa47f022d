"""Route each job to the people who own it: a JSON file of ordered routes, first match wins.

A route matches on job queue name, job name (glob patterns, names not ARNs) and status, and
for a hub of several accounts on the job's account (IDs, or names given by ``ACCOUNT_NAMES``
or the file's ``accounts``) and region (globs), and says where to post (a channel, in bot
mode), whom to mention when a job fails, which statuses it wants, or that matching jobs are
dropped. The last route is the default (no ``match``).
A route may also say who may retry or terminate its jobs from Slack (``actions.allow``; read
through chalicelib/deciding/permissions.py, which adds the ``SLACK_ACTIONS_ALLOW`` fallback).
The format is in the README; ``examples/routes.json`` is a realistic one.

No routing file (the default path absent) keeps the single-channel setup: every event is
posted to ``SLACK_CHANNEL`` or the webhook.
"""

from __future__ import annotations

import fnmatch
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.core.config import (
    ACCOUNT_ID,
    ACCOUNT_NAMES,
    MAX_STUCK_AFTER_MINUTES,
    ROUTES,
    ConfigError,
    Settings,
    parse_account_names,
    settings,
)
from chalicelib.reading.event import JobStateChange

# Statuses a route can name (SCHEDULED is a service job's). BLOCKED stands for queue-blocked events, STUCK for the
# stuck-job sweep's reports (chalicelib/scheduled/stuck.py).
STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED",
            "BLOCKED", "STUCK")
# Statuses whose messages mention the route's people; the others are for reading, not paging.
MENTION_STATUSES = ("FAILED", "STUCK")
_ROUTE_KEYS = {"name", "description", "match", "channel", "mention", "statuses", "drop", "stuck_after_minutes",
               "digest", "group_after", "group_window_minutes", "actions"}
DIGEST_ONLY = "only"
_MATCH_KEYS = {"queue", "job", "status", "account", "region"}
_TOP_LEVEL_KEYS = {"routes", "description", "accounts"}
_ACTIONS_KEYS = {"allow"}
# U/W: users, S: user groups: who may be mentioned, and who may act on a job from Slack (never
# "here" or "channel": an action is allowed to people, not to whoever is in the channel). Always
# fullmatch(): with match() and "$", "C0123456789\n" passed and reached Slack as a channel that is not there.
ACTOR_ID = re.compile(r"[UWS][A-Z0-9]{2,}")
_MENTION = re.compile(rf"{ACTOR_ID.pattern}|here|channel")
_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,}|#[a-z0-9][a-z0-9._-]{0,79}")
# A routing file is a page or two; a bigger one is the wrong file (a log, a dump), and reading it
# whole would spend the function's memory before any check could say so.
MAX_FILE_BYTES = 1024 * 1024
# Failure storms (chalicelib/deciding/storms.py): GROUP_AFTER and GROUP_WINDOW_MINUTES, and the
# routes' overrides, share these ranges. More than 1000 own messages is no grouping at all; a window
# of more than a day would join unrelated failures into one group.
MAX_GROUP_AFTER = 1000
MAX_GROUP_WINDOW_MINUTES = 24 * 60
# Integers in the file are minutes (at most 10080); int() of a longer digit string only costs
# time, and past 4300 digits raises a ValueError of its own.
_MAX_INT_DIGITS = 20


class RoutesError(ConfigError):
    """The routing file is invalid; the message names the file, the route and the field."""


@dataclass(frozen=True)
class Route:
    """One entry of the routing file."""

    name: str
    queues: tuple[str, ...] = ()
    jobs: tuple[str, ...] = ()
    match_statuses: tuple[str, ...] = ()
    channel: str | None = None
    mentions: tuple[str, ...] = ()
    statuses: tuple[str, ...] | None = None  # None: every status
    drop: bool = False
    stuck_after_minutes: int | None = None  # None: STUCK_AFTER_MINUTES
    digest: bool | str = False  # True: a daily digest too; "only": the digest and nothing else
    group_after: int | None = None  # None: GROUP_AFTER; 0: this route's failures are never grouped
    group_window_minutes: int | None = None  # None: GROUP_WINDOW_MINUTES
    # Who may retry or terminate this route's jobs from Slack. None: no "actions" field, so
    # SLACK_ACTIONS_ALLOW decides; (): nobody, whatever SLACK_ACTIONS_ALLOW says.
    actions_allow: tuple[str, ...] | None = None
    # The hub: the jobs' accounts (12-digit IDs, names already resolved) and regions (globs).
    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    @property
    def wants_digest(self) -> bool:
        return self.digest is True or self.digest == DIGEST_ONLY

    @property
    def is_default(self) -> bool:
        return not (self.queues or self.jobs or self.match_statuses or self.accounts or self.regions)

    def covers_queue(self, queue: str) -> bool:
        """Whether jobs of ``queue`` may match, judging by the queue patterns alone."""
        return _any_glob(self.queues, queue)

    def matches(self, queue: str | None, job: str | None, status: str | None, *, account: str | None = None,
                region: str | None = None) -> bool:
        """True when every part of ``match`` given in the file accepts the job. A job whose
        account or region is not known (``None``) matches no route that names them."""
        return (_any_glob(self.queues, queue) and _any_glob(self.jobs, job)
                and (not self.match_statuses or status in self.match_statuses)
                and (not self.accounts or account in self.accounts) and _any_glob(self.regions, region))


def _any_glob(patterns: tuple[str, ...], value: str | None) -> bool:
    if not patterns:
        return True
    # fnmatchcase: queue and job names are case-sensitive in AWS Batch.
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True)
class Decision:
    """What to do with one event: post (where, mentioning whom) or skip (and why)."""

    route: str | None
    post: bool
    reason: str
    channel: str | None = None
    mentions: tuple[str, ...] = ()
    # The route's failure storm overrides (chalicelib/deciding/storms.py); None: the global setting.
    group_after: int | None = None
    group_window_minutes: int | None = None
    # Slack user and user group IDs who may retry or terminate the job from its message (the
    # route's actions.allow, else SLACK_ACTIONS_ALLOW): () shows no such buttons.
    actions_allow: tuple[str, ...] = ()


SINGLE_CHANNEL = Decision(route=None, post=True, reason="no routing file")


def routing_status(job: JobStateChange) -> str | None:
    """The status routes match on: ``BLOCKED`` for a queue-blocked event (of a job or a service job), else the job's."""
    return "BLOCKED" if job.is_queue_blocked else job.status


@dataclass(frozen=True)
class RouteTable:
    """The validated routes of one file, in order."""

    source: str
    routes: tuple[Route, ...]
    # The accounts' readable names, (ID, name): ACCOUNT_NAMES when set, else the file's "accounts".
    accounts: tuple[tuple[str, str], ...] = ()

    def route_for(self, queue: str | None, job: str | None, status: str | None, *, account: str | None = None,
                  region: str | None = None) -> Route | None:
        """The first route that matches; the default route (last) always does."""
        return next((route for route in self.routes
                     if route.matches(queue, job, status, account=account, region=region)), None)

    def decide(self, queue: str | None, job: str | None, status: str | None, *,
               default_allow: tuple[str, ...] = (), account: str | None = None, region: str | None = None) -> Decision:
        """First matching route wins; the default route (last) always matches. ``default_allow``
        is who may act on jobs of a route without ``actions`` (SLACK_ACTIONS_ALLOW: use
        chalicelib/deciding/permissions.py's ``decide_with_actions``, which passes it). ``account``
        and ``region``: the job's (the event's), for routes that match on them."""
        route = self.route_for(queue, job, status, account=account, region=region)
        if route is None:
            return Decision(None, False, "no route matches")  # unreachable with a default route
        if route.drop:
            return Decision(route.name, False, f"route {route.name!r} drops these jobs")
        if route.digest == DIGEST_ONLY:
            # Decided here, so every per-job path (notify.py, the stuck sweep) skips alike.
            return Decision(route.name, False, f"route {route.name!r} is digest-only")
        if route.statuses is not None and status not in route.statuses:
            return Decision(route.name, False, f"route {route.name!r} does not want {status}")
        mentions = route.mentions if status in MENTION_STATUSES else ()
        allow = route.actions_allow if route.actions_allow is not None else default_allow
        return Decision(route.name, True, "routed", channel=route.channel, mentions=mentions,
                        group_after=route.group_after, group_window_minutes=route.group_window_minutes,
                        actions_allow=allow)

    @property
    def sets_channels(self) -> bool:
        return any(route.channel for route in self.routes)

    @property
    def matches_accounts(self) -> bool:
        """Whether some route matches on the job's account (the sweep and the digest then ask
        which account is the app's own: their jobs are all of it)."""
        return any(route.accounts for route in self.routes)


# -- loading and validation ------------------------------------------------------------------

def load_route_table(path: Path, *, account_names: tuple[tuple[str, str], ...] = ()) -> RouteTable:
    """Read and validate a routing file; raise :class:`RoutesError` naming what is wrong.
    ``account_names``: ``ACCOUNT_NAMES``, which replaces the file's ``accounts`` when given."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise RoutesError(f"{path}: cannot read the routing file: {error.strerror or error}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise RoutesError(f"{path}: bigger than {MAX_FILE_BYTES // 1024} KiB: is it the routing file?")
    try:
        text = raw.decode("utf-8")  # not the locale's encoding: the Lambda runtime's may be ASCII
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise RoutesError(f"{path}: not UTF-8 text (byte {raw[error.start]:#04x} on line {line})") from None
    return parse_route_table(parse_json(text, source=str(path)), source=str(path), account_names=account_names)


class _Object(dict[str, Any]):
    """A JSON object of the file, remembering the keys it gave twice (a plain dict keeps the last
    silently, so half of what was written would be ignored)."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) < len(pairs):
        obj.duplicates = tuple(sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1))
    return obj


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"the number {digits[:_MAX_INT_DIGITS]}... is {len(digits)} characters long")
    return int(digits)


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")  # json.loads takes NaN and Infinity by default


def parse_json(text: str, source: str = "routes") -> Any:
    """Parse the text of a routing file; raise :class:`RoutesError` naming ``source`` when it is
    not JSON. Objects remember duplicate keys for :func:`parse_route_table` to name."""
    try:
        return json.loads(text, object_pairs_hook=_object, parse_int=_integer, parse_constant=_constant)
    except RecursionError:  # json.loads recurses once per nested [ or {
        raise RoutesError(f"{source}: not a routing file: nested too deeply") from None
    except ValueError as error:  # json.JSONDecodeError, or _integer / _constant
        raise RoutesError(f"{source}: not valid JSON: {error}") from None


def _fields(value: Any, where: str, kind: str, allowed: set[str]) -> dict[str, Any]:
    # Every object a valid file holds (the file, a route, a match) passes here, so no duplicate
    # key can hide anywhere: any other object is rejected for its type.
    if not isinstance(value, dict):
        raise RoutesError(f"{where}: {kind.strip() or 'a route'} must be an object with {_fields_list(allowed)}")
    duplicates = getattr(value, "duplicates", ())
    if duplicates:
        raise RoutesError(f"{where}: {kind}field(s) {list(duplicates)} given more than once (JSON keeps only "
                          "the last): keep one of each")
    unknown = set(value) - allowed
    if unknown:
        raise RoutesError(f"{where}: unknown {kind}field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if not isinstance(value.get("description", ""), str):
        raise RoutesError(f"{where}: {kind}field 'description' must be a string")
    return value


def _fields_list(names: set[str]) -> str:
    *rest, last = sorted(names)
    return f"{', '.join(map(repr, rest))} and/or {last!r}" if rest else repr(last)


def parse_route_table(data: Any, source: str = "routes", *,
                      account_names: tuple[tuple[str, str], ...] = ()) -> RouteTable:
    """Validate already-parsed routing data (see :func:`load_route_table`). The accounts' names
    routes may use are ``account_names`` (``ACCOUNT_NAMES``) when given, else the file's ``accounts``
    (``{"123456789012": "prod"}``): one list or the other, never a mix of both."""
    if isinstance(data, dict):  # first, so a second "routes" is named as such
        _fields(data, source, "top-level ", _TOP_LEVEL_KEYS)
    if not isinstance(data, dict) or not isinstance(data.get("routes"), list) or not data["routes"]:
        raise RoutesError(f'{source}: expected an object {{"routes": [...]}} with at least one route')
    accounts = account_names or _file_accounts(data.get("accounts"), source)
    routes = [_parse_route(raw, i, source, accounts) for i, raw in enumerate(data["routes"])]
    names = [r.name for r in routes]
    for name in names:
        if names.count(name) > 1:
            raise RoutesError(f"{source}: route name {name!r} is used twice")
    for route in routes[:-1]:
        if route.is_default:
            raise RoutesError(f"{source}: route {route.name!r} has no 'match' but is not last: "
                              "the routes after it could never match")
    if not routes[-1].is_default:
        raise RoutesError(f"{source}: the last route ({routes[-1].name!r}) must be the default: give it no 'match'")
    return RouteTable(source=source, routes=tuple(routes), accounts=accounts)


def _file_accounts(value: Any, source: str) -> tuple[tuple[str, str], ...]:
    """The file's ``accounts``: an object of account ID to name, checked as ``ACCOUNT_NAMES`` is."""
    if value is None:
        return ()
    where = f"{source}: 'accounts'"
    if not isinstance(value, dict) or getattr(value, "duplicates", None):
        raise RoutesError(f"{where} must be an object of 12-digit account IDs to names, each ID once, "
                          'e.g. {"123456789012": "prod"}')
    try:
        return parse_account_names(value.items(), where)
    except ConfigError as error:
        raise RoutesError(str(error)) from None


def _parse_route(raw: Any, index: int, source: str, names: tuple[tuple[str, str], ...] = ()) -> Route:
    name, where = _route_name(raw, index, source)
    _fields(raw, where, "", _ROUTE_KEYS)
    match = _fields(raw.get("match", {}), where, "'match' ", _MATCH_KEYS)
    queues, jobs, match_statuses = _parse_match(match, where)
    accounts = _accounts(match.get("account"), f"{where}: 'match.account'", names)
    regions = _strings(match.get("region"), f"{where}: 'match.region'")
    for pattern in regions:
        _printable(pattern, f"{where}: 'match.region'")
    drop = raw.get("drop", False)
    if not isinstance(drop, bool):
        raise RoutesError(f"{where}: 'drop' must be true or false")
    channel = _channel(raw.get("channel"), where)
    mentions = _mentions(raw.get("mention"), where)
    statuses = _statuses(raw.get("statuses"), f"{where}: 'statuses'") if "statuses" in raw else None
    stuck_after = _stuck_after(raw.get("stuck_after_minutes"), where)
    digest = raw.get("digest", False)
    if not (isinstance(digest, bool) or digest == DIGEST_ONLY):
        raise RoutesError(f"{where}: 'digest' must be true, false or \"only\"")
    group_after = _whole(raw.get("group_after"), f"{where}: 'group_after'", 0, MAX_GROUP_AFTER,
                         "jobs (0: never group this route's failures)")
    group_window = _whole(raw.get("group_window_minutes"), f"{where}: 'group_window_minutes'", 1,
                          MAX_GROUP_WINDOW_MINUTES, "minutes (a day at most)")
    actions_allow = _actions(raw.get("actions"), where) if "actions" in raw else None
    route = Route(name=name, queues=queues, jobs=jobs, match_statuses=match_statuses, channel=channel,
                  mentions=mentions, statuses=statuses, drop=drop, stuck_after_minutes=stuck_after, digest=digest,
                  group_after=group_after, group_window_minutes=group_window, actions_allow=actions_allow,
                  accounts=accounts, regions=regions)
    _check_combination(route, where)
    return route


def _accounts(value: Any, where: str, names: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """``match.account``: 12-digit IDs or the accounts' names, as IDs (exact: no globs)."""
    by_name = {name: account for account, name in names}
    accounts = []
    for item in _strings(value, where):
        account = item if ACCOUNT_ID.fullmatch(item) else by_name.get(item)
        if account is None:
            raise RoutesError(f"{where}: {item!r} is neither a 12-digit account ID nor an account name given in "
                              f"{ACCOUNT_NAMES} (or, without it, the file's 'accounts')")
        accounts.append(account)
    return tuple(dict.fromkeys(accounts))


def _route_name(raw: Any, index: int, source: str) -> tuple[str, str]:
    """The route's name and the prefix its errors start with."""
    where = f"{source}: route #{index + 1}"
    if not isinstance(raw, dict):
        raise RoutesError(f"{where}: expected an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RoutesError(f"{where}: 'name' must be a non-empty string")
    _printable(name, f"{where}: 'name'")
    return name, f"{source}: route {name!r}"


def _parse_match(match: dict[str, Any], where: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    queues = _strings(match.get("queue"), f"{where}: 'match.queue'")
    jobs = _strings(match.get("job"), f"{where}: 'match.job'")
    for pattern in (*queues, *jobs):
        if pattern.startswith("arn:"):
            raise RoutesError(f"{where}: {pattern!r} is an ARN; match on names (e.g. 'etl-*')")
        _printable(pattern, f"{where}: pattern")
    return queues, jobs, _statuses(match.get("status"), f"{where}: 'match.status'")


def _channel(channel: Any, where: str) -> str | None:
    if channel is not None and (not isinstance(channel, str) or not _CHANNEL.fullmatch(channel)):
        raise RoutesError(f"{where}: 'channel' must be a channel ID like 'C0123456789' (or '#name')")
    return channel


def _mentions(value: Any, where: str) -> tuple[str, ...]:
    mentions = _strings(value, f"{where}: 'mention'")
    for mention in mentions:
        if not _MENTION.fullmatch(mention):
            raise RoutesError(f"{where}: 'mention' {mention!r} is not a Slack user ID (U...), "
                              "user group ID (S...), 'here' or 'channel'")
    return mentions


def _actions(value: Any, where: str) -> tuple[str, ...]:
    """``{"allow": [...]}``: the user and user group IDs who may act; ``[]`` allows nobody."""
    allow = _fields(value, where, "'actions' ", _ACTIONS_KEYS).get("allow")
    items = [allow] if isinstance(allow, str) else allow
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise RoutesError(f"{where}: 'actions.allow' must be a list of Slack user IDs (U...) and user group IDs "
                          "(S...), e.g. [\"S0ONCALL01\"]; [] allows nobody")
    for item in items:
        if not ACTOR_ID.fullmatch(item):
            raise RoutesError(f"{where}: 'actions.allow' {item!r} is not a Slack user ID (U... or W...) or user "
                              "group ID (S...); 'here' and 'channel' cannot act: name the people or their group")
    return tuple(dict.fromkeys(items))  # an ID given twice allows no more than once


def _stuck_after(value: Any, where: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or not 1 <= value <= MAX_STUCK_AFTER_MINUTES):
        raise RoutesError(f"{where}: 'stuck_after_minutes' must be a whole number of minutes from 1 to "
                          f"{MAX_STUCK_AFTER_MINUTES} (a week)")
    return value


def _whole(value: Any, where: str, low: int, high: int, unit: str) -> int | None:
    """An optional whole number from ``low`` to ``high`` (JSON's true and 5.0 are not one)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
        raise RoutesError(f"{where} must be a whole number of {unit} from {low} to {high}")
    return value


def _check_combination(route: Route, where: str) -> None:
    """Fields that contradict each other: a drop route that also posts, a digest-only route with statuses."""
    if route.drop and (route.channel or route.mentions or route.statuses is not None or route.digest
                       or route.stuck_after_minutes is not None or route.group_after is not None
                       or route.group_window_minutes is not None or route.actions_allow is not None):
        raise RoutesError(f"{where}: a 'drop' route posts nothing: remove 'channel', 'mention', 'statuses', "
                          "'digest', 'stuck_after_minutes', 'group_after', 'group_window_minutes' and 'actions'")
    if route.digest == DIGEST_ONLY and (route.statuses is not None or route.actions_allow is not None):
        # Buttons sit on per-job messages: a digest-only route shows none, so 'actions' would mislead.
        raise RoutesError(f"{where}: a digest-only route posts no per-job messages: remove 'statuses' and "
                          "'actions', or use \"digest\": true with the statuses still wanted (e.g. [\"STUCK\"])")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise RoutesError(f"{where} must be a non-empty string or a list of them")
    return tuple(items)


def _printable(text: str, where: str) -> None:
    # Control and invisible characters (a pasted newline, a zero-width space, a bidi mark): no
    # queue or job name holds one, so a pattern with one could never match, however right it looks.
    for char in text:
        if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp"):
            raise RoutesError(f"{where} {text!r} holds a control or invisible character (U+{ord(char):04X})")


def _statuses(value: Any, where: str) -> tuple[str, ...]:
    statuses = _strings(value, where)
    for status in statuses:
        if status not in STATUSES:
            raise RoutesError(f"{where}: {status!r} is not one of {', '.join(STATUSES)}")
    return statuses


# -- the table of this container ---------------------------------------------------------------

# The Lambda task root holds app.py and chalicelib/; relative paths are taken from there.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROUTES = "chalicelib/routes.json"


def route_table() -> RouteTable | None:
    """The routing table of this container (a section of the settings tree, see
    :func:`configured_route_table`); ``None`` when the default file does not exist."""
    return settings().section(configured_route_table)


def configured_route_table(s: Settings) -> RouteTable | None:
    """The routing table named by ``NOTIFY_ROUTES`` (default ``chalicelib/routes.json``),
    validated; ``None`` when the default file does not exist. Raise :class:`ConfigError` when
    the table names channels and Slack is a webhook: the one place that rule is stated."""
    table = _load_configured(s.env, s.hub.names)
    if table is not None and table.sets_channels and s.slack.mode == "webhook":
        # Every path that posts (notify, the sweep, the digest) reads the table first, so none
        # can send a route's channel to a webhook (which would post to its own channel instead).
        raise ConfigError(f"{table.source} names channels, but a webhook always posts to its own "
                          "channel: use a bot token (SLACK_BOT_TOKEN_PARAM) to route to several channels")
    return table


def _load_configured(env: Mapping[str, str], account_names: tuple[tuple[str, str], ...]) -> RouteTable | None:
    configured = env.get(ROUTES, "").strip()
    path = Path(configured or DEFAULT_ROUTES)
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    if not configured and not path.exists():
        return None
    if not path.exists():
        raise RoutesError(f"{ROUTES}={configured!r}: no such file (looked at {path})")
    return load_route_table(path, account_names=account_names)


def account_names() -> tuple[tuple[str, str], ...]:
    """The accounts' readable names of this container, (ID, name): ``ACCOUNT_NAMES`` when set, else
    the routing file's ``accounts`` (the route table's, which holds whichever applies)."""
    table = route_table()
    return table.accounts if table is not None else settings().hub.names
