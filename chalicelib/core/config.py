"""Settings from environment variables, read once per Lambda container at first use.

The variables are set per stage in ``.chalice/config.json``. Nothing is read at import time,
so ``chalice deploy`` / ``chalice package`` can import the app on a laptop with no settings;
a misconfiguration fails at the first invocation with a message naming the variable to set.
A value is taken whole or refused (one parser per kind of value, below), never half-read.

All of it is one tree, :func:`settings` (a :class:`Settings`): the environment and its
sections, each parsed at first use and kept; :func:`reset` forgets it. Tests supply
settings one way: set the environment, then ``reset()``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from chalicelib.core.errors import BatchNotifyError

WEBHOOK_URL = "SLACK_WEBHOOK_URL"
WEBHOOK_URL_PARAM = "SLACK_WEBHOOK_URL_PARAM"
BOT_TOKEN = "SLACK_BOT_TOKEN"
BOT_TOKEN_PARAM = "SLACK_BOT_TOKEN_PARAM"
CHANNEL = "SLACK_CHANNEL"
API_URL = "SLACK_API_URL"
REQUEST_TIMEOUT = "SLACK_REQUEST_TIMEOUT_SECONDS"
DELIVERY_BUDGET = "SLACK_DELIVERY_BUDGET_SECONDS"

ROUTES = "NOTIFY_ROUTES"

DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_REQUEST_TIMEOUT = 5.0
# Well inside the default 60 s lambda_timeout: when Slack is still failing after this,
# the handler raises and Lambda's asynchronous retry tries again later.
DEFAULT_DELIVERY_BUDGET = 20.0
# Ten minutes: more is a typo (milliseconds for seconds), and longer than any Lambda may run.
MAX_SLACK_SECONDS = 600.0


T = TypeVar("T")


class ConfigError(BatchNotifyError):
    """The stage's environment variables are missing or contradictory."""


@dataclass(frozen=True)
class Secret:
    """A secret given either directly or as the name of an SSM SecureString parameter."""

    variable: str  # the environment variable it came from, for error messages
    value: str | None = None
    parameter: str | None = None

    def __repr__(self) -> str:  # never show the value, even in a traceback's locals
        return f"Secret(variable={self.variable!r}, parameter={self.parameter!r})"


@dataclass(frozen=True)
class SlackSettings:
    """How to reach Slack: an incoming webhook, or a bot token and a channel."""

    mode: Literal["webhook", "bot"]
    secret: Secret
    channel: str | None
    api_url: str
    request_timeout: float
    delivery_budget: float


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _secret(env: Mapping[str, str], direct: str, param: str) -> Secret | None:
    # A direct value wins over a parameter, so a developer can override a stage locally.
    if _get(env, direct):
        return Secret(variable=direct, value=_get(env, direct))
    if _get(env, param):
        return Secret(variable=param, parameter=_get(env, param))
    return None


# -- one parser per kind of value: each rule is stated here once -------------------------------
# Only spaces and tabs around a value are forgiven. A newline or any other character in a number
# or a choice is a mistake (a pasted line, a YAML block scalar), named rather than half-accepted.
_SURROUNDING = " \t"
# Plain ASCII decimals only: float() and int() also take '+5', '1_0', a trailing newline and
# non-ASCII digits, and float() 'nan', 'inf' and '1e309' (inf). None is how anyone writes seconds.
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_WHOLE = re.compile(r"[0-9]+")


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip(_SURROUNDING)
    return value or None


def _invalid(env: Mapping[str, str], name: str, expected: str) -> ConfigError:
    # The value as given (repr shows a newline), cut short: a variable can hold 128 KiB.
    value = env.get(name, "")
    shown = repr(value) if len(value) <= 40 else f"{value[:40]!r}... ({len(value)} characters)"
    return ConfigError(f"{name}={shown}: {expected}")


def number_setting(env: Mapping[str, str], name: str, *, default: float, maximum: float,
                   unit: str = "seconds") -> float:
    """The plain decimal number in ``env[name]``, more than 0 and at most ``maximum``; ``default``
    when unset or empty. Raise :class:`ConfigError` naming ``name`` and the range otherwise."""
    raw = _raw(env, name)
    if raw is None:
        return default
    # fullmatch first, so float() only ever sees digits and one point (no nan, inf or 1e309);
    # a long run of digits can still overflow to inf, which the range check refuses.
    value = float(raw) if _DECIMAL.fullmatch(raw) else None
    if value is None or not 0 < value <= maximum:
        raise _invalid(env, name, f"expected a number of {unit} more than 0 and at most {maximum:g}, "
                                  "in plain digits (e.g. 2 or 0.5)")
    return value


def whole_number_setting(env: Mapping[str, str], name: str, *, default: int, maximum: int, unit: str,
                         zero: str = "", maximum_note: str = "") -> int:
    """The whole number in ``env[name]``, from 0 to ``maximum``; ``default`` when unset or empty.
    ``zero`` says what 0 means (e.g. "off"). Raise :class:`ConfigError` naming ``name`` and the range."""
    raw = _raw(env, name)
    if raw is None:
        return default
    # Compare lengths before int(): int() refuses more than 4300 digits with a ValueError.
    digits = raw.lstrip("0") or "0"
    value = int(digits) if _WHOLE.fullmatch(raw) and len(digits) <= len(str(maximum)) else None
    if value is None or not 0 <= value <= maximum:
        low = f"0 ({zero})" if zero else "0"
        note = f" ({maximum_note})" if maximum_note else ""
        raise _invalid(env, name, f"expected a whole number of {unit} from {low} to {maximum}{note}")
    return value


def choice_setting(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    """Which of ``choices`` ``env[name]`` names, in any case, spelled as in ``choices``; ``default``
    when unset or empty. Raise :class:`ConfigError` naming ``name`` and the choices otherwise."""
    raw = _raw(env, name)
    if raw is None:
        return default
    # isascii(): str.lower() maps some non-ASCII letters onto ASCII ones ('\u212a' -> 'k').
    wanted = raw.lower() if raw.isascii() else None
    for choice in choices:
        if choice.lower() == wanted:
            return choice
    raise _invalid(env, name, f"expected one of {', '.join(choices)} (any case)")


def load_slack_settings(env: Mapping[str, str]) -> SlackSettings:
    """Validate the Slack settings in ``env``; raise :class:`ConfigError` naming what to set."""
    webhook = _secret(env, WEBHOOK_URL, WEBHOOK_URL_PARAM)
    token = _secret(env, BOT_TOKEN, BOT_TOKEN_PARAM)
    channel = _get(env, CHANNEL)
    if webhook and token:
        raise ConfigError(
            f"both a webhook ({webhook.variable}) and a bot token ({token.variable}) are set: "
            "set only one of them for this stage"
        )
    if not webhook and not token:
        raise ConfigError(
            f"Slack is not configured: set {WEBHOOK_URL_PARAM} (or {WEBHOOK_URL}) for an incoming "
            f"webhook, or {BOT_TOKEN_PARAM} (or {BOT_TOKEN}) and {CHANNEL} for a bot, in the "
            "stage's environment_variables in .chalice/config.json"
        )
    if token and not channel:
        raise ConfigError(f"{token.variable} is set but {CHANNEL} is not: "
                          f"set {CHANNEL} to a channel ID such as C0123456789")
    if webhook and channel:
        # Webhooks made by a Slack app are bound to one channel; silently ignoring the
        # setting would post somewhere the user did not ask for.
        raise ConfigError(f"{CHANNEL} is set but a webhook always posts to its own channel: "
                          f"unset {CHANNEL} or use a bot token")
    api_url = _get(env, API_URL) or DEFAULT_API_URL
    if not api_url.endswith("/"):
        api_url += "/"
    return SlackSettings(
        mode="bot" if token else "webhook",
        secret=token or webhook,  # type: ignore[arg-type]  # one of them is set, checked above
        channel=channel,
        api_url=api_url,
        request_timeout=number_setting(env, REQUEST_TIMEOUT, default=DEFAULT_REQUEST_TIMEOUT,
                                       maximum=MAX_SLACK_SECONDS),
        delivery_budget=number_setting(env, DELIVERY_BUDGET, default=DEFAULT_DELIVERY_BUDGET,
                                       maximum=MAX_SLACK_SECONDS),
    )


# -- Log tail of failed jobs (chalicelib/reading/logtail.py) ---------------------------------------
LOG_TAIL_LINES = "LOG_TAIL_LINES"
LOG_TAIL_TIMEOUT = "LOG_TAIL_TIMEOUT_SECONDS"

DEFAULT_LOG_TAIL_LINES = 20
DEFAULT_LOG_TAIL_TIMEOUT = 2.0
# A Slack section holds 3000 characters: more lines than this would only be cut again.
MAX_LOG_TAIL_LINES = 100
# The tail is a nice-to-have in front of the delivery: it may never eat the Lambda's time.
MAX_LOG_TAIL_TIMEOUT = 10.0


@dataclass(frozen=True)
class LogTailSettings:
    """How many log lines to show in FAILED messages (0 = off) and how long to wait for them."""

    lines: int = DEFAULT_LOG_TAIL_LINES
    timeout: float = DEFAULT_LOG_TAIL_TIMEOUT

    @property
    def enabled(self) -> bool:
        return self.lines > 0


def load_log_tail_settings(env: Mapping[str, str]) -> LogTailSettings:
    """Validate the log tail settings in ``env``; raise :class:`ConfigError` naming the variable."""
    lines = whole_number_setting(env, LOG_TAIL_LINES, default=DEFAULT_LOG_TAIL_LINES, maximum=MAX_LOG_TAIL_LINES,
                                 unit="lines", zero="the tail is off")
    timeout = number_setting(env, LOG_TAIL_TIMEOUT, default=DEFAULT_LOG_TAIL_TIMEOUT, maximum=MAX_LOG_TAIL_TIMEOUT)
    return LogTailSettings(lines=lines, timeout=timeout)


# -- Stuck-job sweep and daily digest (chalicelib/scheduled/stuck.py, chalicelib/scheduled/digest.py) ----------
# Their schedules are constants in app.py: Chalice reads a schedule when it imports app.py to
# deploy, where the stage's environment variables are not set.
STUCK_AFTER_MINUTES = "STUCK_AFTER_MINUTES"
STUCK_QUEUES = "STUCK_QUEUES"
DIGEST = "DIGEST"
DIGEST_QUEUES = "DIGEST_QUEUES"

DEFAULT_STUCK_AFTER_MINUTES = 30
# A week: a longer threshold is likelier a typo (hours for minutes) than a wish.
MAX_STUCK_AFTER_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class ScheduledSettings:
    """The sweep's default threshold (0 = sweep off), the queues each handler watches (empty =
    every queue of the account and region), and whether a digest is posted without routes."""

    stuck_after_minutes: int = DEFAULT_STUCK_AFTER_MINUTES
    stuck_queues: tuple[str, ...] = ()
    digest: bool = False
    digest_queues: tuple[str, ...] = ()


def _queues(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _get(env, name) or ""
    # Commas or spaces: "etl-queue, gpu-queue" and "etl-queue gpu-queue" both work.
    return tuple(dict.fromkeys(q for q in raw.replace(",", " ").split() if q))


def load_scheduled_settings(env: Mapping[str, str]) -> ScheduledSettings:
    """Validate the sweep and digest settings in ``env``; raise :class:`ConfigError` naming the variable."""
    minutes = whole_number_setting(env, STUCK_AFTER_MINUTES, default=DEFAULT_STUCK_AFTER_MINUTES,
                                   maximum=MAX_STUCK_AFTER_MINUTES, unit="minutes", zero="the sweep is off",
                                   maximum_note="a week")
    digest = choice_setting(env, DIGEST, ("on", "off"), default="off")
    return ScheduledSettings(stuck_after_minutes=minutes, stuck_queues=_queues(env, STUCK_QUEUES),
                             digest=digest == "on", digest_queues=_queues(env, DIGEST_QUEUES))


# -- Log level (applied by chalicelib/application.py at every invocation) -------------------
LOG_LEVEL = "LOG_LEVEL"
LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
              "CRITICAL": logging.CRITICAL}
DEFAULT_LOG_LEVEL = "INFO"


def load_log_level(env: Mapping[str, str]) -> int:
    """The ``logging`` level named by ``LOG_LEVEL`` in ``env`` (any case; default INFO); raise
    :class:`ConfigError` naming the variable and the accepted names otherwise."""
    # Names only: a number ("5", "15") is likelier a typo than a wish for a custom level.
    return LOG_LEVELS[choice_setting(env, LOG_LEVEL, tuple(LOG_LEVELS), default=DEFAULT_LOG_LEVEL)]


# -- Slack request signing (the /slack/actions route: chalicelib/interactions/) ------------------
SIGNING_SECRET = "SLACK_SIGNING_SECRET"
SIGNING_SECRET_PARAM = "SLACK_SIGNING_SECRET_PARAM"


@dataclass(frozen=True)
class SigningSettings:
    """The Slack app's signing secret, which every request to the actions route must be signed
    with: given directly (``SLACK_SIGNING_SECRET``, local use) or as an SSM SecureString
    parameter (``SLACK_SIGNING_SECRET_PARAM``), read like the bot token (core/secrets.py).
    ``secret`` is ``None`` when neither is set: no request can be verified, so none is accepted."""

    secret: Secret | None

    def require(self) -> Secret:
        """The secret; raise :class:`ConfigError` naming the variables to set when there is none."""
        if self.secret is None:
            raise ConfigError(f"Slack request signing is not configured: set {SIGNING_SECRET_PARAM} (or "
                              f"{SIGNING_SECRET}) to the Slack app's signing secret (Basic Information -> App "
                              "Credentials) in the stage's environment_variables in .chalice/config.json")
        return self.secret


def load_signing_settings(env: Mapping[str, str]) -> SigningSettings:
    """The signing secret setting in ``env`` (a blank value counts as unset: never an empty secret)."""
    return SigningSettings(secret=_secret(env, SIGNING_SECRET, SIGNING_SECRET_PARAM))


# -- The hub: events forwarded from member accounts (core/member_roles.py, composing/account_label.py) ----
MEMBER_ROLE_ARN = "MEMBER_ROLE_ARN"
ACCOUNT_NAMES = "ACCOUNT_NAMES"
ACCOUNT_PLACEHOLDER = "{account}"
ACCOUNT_ID = re.compile(r"[0-9]{12}")
# A name is read in a context line and typed in routes: a word or a few, not a paragraph.
MAX_ACCOUNT_NAME_CHARS = 64
# An organization's accounts: a few hundred. More is a pasted file, not a list of names.
MAX_ACCOUNT_NAMES = 1000
# An IAM role ARN of any partition (aws, aws-cn, aws-us-gov, aws-iso...): a path, then a name of
# IAM's characters (at most 64). re.ASCII: \w is IAM's [A-Za-z0-9_], not any letter.
_ROLE_ARN = re.compile(r"arn:aws(?:-[a-z]+){0,3}:iam::(?P<account>[0-9]{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}",
                       re.ASCII)
_SAMPLE_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class HubSettings:
    """The hub (one app for many accounts): ``member_role_arn`` is the template of the role this
    app assumes in a member account (``{account}`` in it), ``None`` when unset; ``names`` the
    readable names of accounts, ``(id, name)`` pairs in the order given (``ACCOUNT_NAMES``)."""

    member_role_arn: str | None = None
    names: tuple[tuple[str, str], ...] = ()

    @property
    def configured(self) -> bool:
        """Whether the hub is set up (a member role or account names): messages then say the account."""
        return self.member_role_arn is not None or bool(self.names)

    def role_arn(self, account: str) -> str | None:
        """The member role to assume in ``account`` (a 12-digit ID); ``None`` without MEMBER_ROLE_ARN."""
        if self.member_role_arn is None or not ACCOUNT_ID.fullmatch(account):
            return None
        return self.member_role_arn.replace(ACCOUNT_PLACEHOLDER, account)

    def name_of(self, account: str | None) -> str | None:
        """The readable name ``ACCOUNT_NAMES`` gives ``account``, if any."""
        return next((name for id_, name in self.names if id_ == account), None)


def parse_member_role_arn(env: Mapping[str, str]) -> str | None:
    """``MEMBER_ROLE_ARN``: a role ARN template whose account is ``{account}``
    (``arn:aws:iam::{account}:role/batch-notify-member``); ``None`` when unset. Raise
    :class:`ConfigError` naming the variable when it is not an IAM role ARN once filled."""
    raw = _raw(env, MEMBER_ROLE_ARN)
    if raw is None:
        return None
    filled = _ROLE_ARN.fullmatch(raw.replace(ACCOUNT_PLACEHOLDER, _SAMPLE_ACCOUNT))
    # The account field must be the placeholder itself, once: a fixed account would send every
    # member's jobs to one account's role ("{account}" in the role name alone is that mistake).
    if filled is None or raw.count(ACCOUNT_PLACEHOLDER) != 1 or raw.split(":")[4] != ACCOUNT_PLACEHOLDER:
        raise _invalid(env, MEMBER_ROLE_ARN, "expected an IAM role ARN with {account} as its account, e.g. "
                                             "arn:aws:iam::{account}:role/batch-notify-member")
    return raw


def parse_account_names(pairs: Iterable[tuple[str, Any]], where: str) -> tuple[tuple[str, str], ...]:
    """Validated ``(account ID, name)`` pairs: 12-digit IDs, names of 1 to 64 printable characters
    (not an ID, no ``=`` or ``,``), no ID or name twice. Raise :class:`ConfigError` starting with
    ``where`` (the variable, or the routing file's field) and naming the first bad entry."""
    seen_ids: set[str] = set()
    seen_names: set[str] = set()
    names: list[tuple[str, str]] = []
    for account, name in pairs:
        if len(names) >= MAX_ACCOUNT_NAMES:
            raise ConfigError(f"{where}: more than {MAX_ACCOUNT_NAMES} accounts: is it the right value?")
        if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
            raise ConfigError(f"{where}: {_shown(account)} is not a 12-digit AWS account ID")
        if (not isinstance(name, str) or not name or name != name.strip() or len(name) > MAX_ACCOUNT_NAME_CHARS
                or not name.isprintable() or "=" in name or "," in name or ACCOUNT_ID.fullmatch(name)):
            raise ConfigError(f"{where}: the name of {account} ({_shown(name)}) must be 1 to "
                              f"{MAX_ACCOUNT_NAME_CHARS} printable characters without '=' or ',' (and not an "
                              "account ID)")
        if account in seen_ids or name in seen_names:
            twice = account if account in seen_ids else repr(name)
            raise ConfigError(f"{where}: {twice} is given twice: give each account one name, each name once")
        seen_ids.add(account)
        seen_names.add(name)
        names.append((account, name))
    return tuple(names)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}... ({len(text)} characters)"


def load_hub_settings(env: Mapping[str, str]) -> HubSettings:
    """Validate ``MEMBER_ROLE_ARN`` and ``ACCOUNT_NAMES`` (``123456789012=prod,210987654321=staging``:
    commas between entries, spaces around them forgiven); raise :class:`ConfigError` naming the variable."""
    raw = _raw(env, ACCOUNT_NAMES) or ""
    pairs = []
    for entry in (e.strip(_SURROUNDING) for e in raw.split(",")):
        if not entry:
            continue  # a trailing comma
        account, equals, name = entry.partition("=")
        if not equals:
            raise ConfigError(f"{ACCOUNT_NAMES}: {_shown(entry)} is not <account ID>=<name> "
                              "(e.g. 123456789012=prod,210987654321=staging)")
        pairs.append((account.strip(_SURROUNDING), name.strip(_SURROUNDING)))
    return HubSettings(member_role_arn=parse_member_role_arn(env), names=parse_account_names(pairs, ACCOUNT_NAMES))


# -- the settings tree of this container --------------------------------------------------------
# One cache: settings() builds one Settings per container; each section is parsed at its first use
# and kept there; reset() forgets the whole tree. Sections stay lazy on purpose: a bad LOG_TAIL_*
# only costs FAILED messages their tail (composing/failure_message.py says what to fix), a bad
# STUCK_AFTER_MINUTES only fails the sweep, and a stage that never posts a FAILED message never
# parses LOG_TAIL_*. A section that raises is not kept: the next invocation parses it again.

Loader = Callable[["Settings"], T]


class ProcessEnvironment(Mapping[str, str]):
    """``os.environ`` as it is when read: each section sees the environment of its first use,
    as before the tree existed. (chalice.test replaces the ``os.environ`` object during an
    invocation, so a reference to it, or a copy made before, would miss the stage's variables.)"""

    def __getitem__(self, name: str) -> str:
        return os.environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)

    def __repr__(self) -> str:  # never the values: they hold credentials and secrets
        return "ProcessEnvironment()"


@dataclass(frozen=True, eq=False)
class Settings:
    """This container's settings: an environment, and each section parsed from it (and
    checked) at its first use, then kept. Thread-safe: a section is loaded once.

    The built-in sections are properties (:attr:`slack`, :attr:`log_tail`, :attr:`scheduled`,
    :attr:`log_level`, :attr:`signing`, :attr:`hub`). A stage above core adds its own with :meth:`section` and a
    loader taking
    this object (``settings().section(load_route_table)``): core needs not import it, and the
    section is still forgotten by :func:`reset` with the rest. The boto3 session and clients
    (``core/clients.py``) and the secrets read from SSM (``core/secrets.py``) are sections too.
    """

    env: Mapping[str, str] = field(repr=False)  # repr=False: it holds credentials and secrets
    _sections: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)
    # Re-entrant: a loader may read another section (the route table reads the Slack mode).
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def __post_init__(self) -> None:
        # A mapping given by a caller is copied, read-only: a section cannot see it change.
        if not isinstance(self.env, ProcessEnvironment):
            object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def section(self, load: Loader[T]) -> T:
        """The section ``load`` makes from this settings tree: loaded at first use, then kept.
        ``load`` is the section's key: pass the same function every time."""
        with self._lock:
            if load not in self._sections:
                self._sections[load] = load(self)
            return self._sections[load]  # type: ignore[no-any-return]

    @property
    def slack(self) -> SlackSettings:
        """How to reach Slack (``SLACK_*``)."""
        return self.section(_slack)

    @property
    def log_tail(self) -> LogTailSettings:
        """The log tail of FAILED messages (``LOG_TAIL_*``)."""
        return self.section(_log_tail)

    @property
    def scheduled(self) -> ScheduledSettings:
        """The stuck-job sweep and the daily digest (``STUCK_*``, ``DIGEST*``)."""
        return self.section(_scheduled)

    @property
    def log_level(self) -> int:
        """The ``logging`` level of the app's logger (``LOG_LEVEL``)."""
        return self.section(_log_level)

    @property
    def signing(self) -> SigningSettings:
        """The signing secret of Slack's requests to the actions route (``SLACK_SIGNING_SECRET*``)."""
        return self.section(_signing)

    @property
    def hub(self) -> HubSettings:
        """The hub of member accounts (``MEMBER_ROLE_ARN``, ``ACCOUNT_NAMES``)."""
        return self.section(_hub)


def _slack(s: Settings) -> SlackSettings:
    return load_slack_settings(s.env)


def _log_tail(s: Settings) -> LogTailSettings:
    return load_log_tail_settings(s.env)


def _scheduled(s: Settings) -> ScheduledSettings:
    return load_scheduled_settings(s.env)


def _log_level(s: Settings) -> int:
    return load_log_level(s.env)


def _signing(s: Settings) -> SigningSettings:
    return load_signing_settings(s.env)


def _hub(s: Settings) -> HubSettings:
    return load_hub_settings(s.env)


_current: Settings | None = None
_current_lock = threading.Lock()


def settings() -> Settings:
    """This container's settings tree, over the process environment (:class:`ProcessEnvironment`)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Settings(ProcessEnvironment())
        return _current


def reset() -> None:
    """Forget the settings tree: every section, the AWS clients and the secrets read from SSM.

    The one way tests (and the replay tool) supply settings: change the environment, then
    ``reset()``; the next :func:`settings` reads it again. The loaders (``load_*_settings(env)``)
    take a plain mapping for tests of one section.
    """
    global _current
    with _current_lock:
        _current = None


# -- the accessors every module calls: thin readers of the one tree ---------------------------------

def slack_settings() -> SlackSettings:
    """The Slack settings of this container (``settings().slack``)."""
    return settings().slack


def log_tail_settings() -> LogTailSettings:
    """The log tail settings of this container (``settings().log_tail``)."""
    return settings().log_tail


def scheduled_settings() -> ScheduledSettings:
    """The sweep and digest settings of this container (``settings().scheduled``)."""
    return settings().scheduled


def log_level() -> int:
    """The log level of this container (``settings().log_level``)."""
    return settings().log_level


def signing_settings() -> SigningSettings:
    """The signing secret setting of this container (``settings().signing``)."""
    return settings().signing


def hub_settings() -> HubSettings:
    """The hub settings of this container (``settings().hub``)."""
    return settings().hub
