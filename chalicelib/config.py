"""Settings from environment variables, read once per Lambda container at first use.

The variables are set per stage in ``.chalice/config.json``. Nothing is read at import time,
so ``chalice deploy`` / ``chalice package`` can import the app on a laptop with no settings;
a misconfiguration fails at the first invocation with a message naming the variable to set.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Optional, TypeVar

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


T = TypeVar("T")


class ConfigError(RuntimeError):
    """The stage's environment variables are missing or contradictory."""


@dataclass(frozen=True)
class Secret:
    """A secret given either directly or as the name of an SSM SecureString parameter."""

    variable: str  # the environment variable it came from, for error messages
    value: Optional[str] = None
    parameter: Optional[str] = None

    def __repr__(self) -> str:  # never show the value, even in a traceback's locals
        return f"Secret(variable={self.variable!r}, parameter={self.parameter!r})"


@dataclass(frozen=True)
class SlackSettings:
    """How to reach Slack: an incoming webhook, or a bot token and a channel."""

    mode: Literal["webhook", "bot"]
    secret: Secret
    channel: Optional[str]
    api_url: str
    request_timeout: float
    delivery_budget: float


def _get(env: Mapping[str, str], name: str) -> Optional[str]:
    value = env.get(name, "").strip()
    return value or None


def _secret(env: Mapping[str, str], direct: str, param: str) -> Optional[Secret]:
    # A direct value wins over a parameter, so a developer can override a stage locally.
    if _get(env, direct):
        return Secret(variable=direct, value=_get(env, direct))
    if _get(env, param):
        return Secret(variable=param, parameter=_get(env, param))
    return None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise ConfigError(f"{name}={raw!r} must be between 0 and 600 seconds")
    return value


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
        raise ConfigError(f"{token.variable} is set but {CHANNEL} is not: set {CHANNEL} to a channel ID such as C0123456789")
    if webhook and channel:
        # Webhooks made by a Slack app are bound to one channel; silently ignoring the
        # setting would post somewhere the user did not ask for.
        raise ConfigError(f"{CHANNEL} is set but a webhook always posts to its own channel: unset {CHANNEL} or use a bot token")
    api_url = _get(env, API_URL) or DEFAULT_API_URL
    if not api_url.endswith("/"):
        api_url += "/"
    return SlackSettings(
        mode="bot" if token else "webhook",
        secret=token or webhook,  # type: ignore[arg-type]  # one of them is set, checked above
        channel=channel,
        api_url=api_url,
        request_timeout=_seconds(env, REQUEST_TIMEOUT, DEFAULT_REQUEST_TIMEOUT),
        delivery_budget=_seconds(env, DELIVERY_BUDGET, DEFAULT_DELIVERY_BUDGET),
    )


@functools.lru_cache(maxsize=1)
def slack_settings() -> SlackSettings:
    """The Slack settings of this container, read from ``os.environ`` once."""
    return load_slack_settings(os.environ)


_RESETS: list[Callable[[], None]] = []


def setting(read: Callable[[], T]) -> Callable[[], T]:
    """Decorator for a zero-argument settings reader in another module: cache it once per
    container, and have :func:`reset` forget it."""
    cached = functools.lru_cache(maxsize=1)(read)
    _RESETS.append(cached.cache_clear)
    return cached


def reset() -> None:
    """Forget cached settings (tests and the replay tool change the environment)."""
    slack_settings.cache_clear()
    log_tail_settings.cache_clear()
    for clear in _RESETS:
        clear()


# -- Log tail of failed jobs (chalicelib/logtail.py) ---------------------------------------
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
    raw_lines, raw_timeout = _get(env, LOG_TAIL_LINES), _get(env, LOG_TAIL_TIMEOUT)
    lines, timeout = DEFAULT_LOG_TAIL_LINES, DEFAULT_LOG_TAIL_TIMEOUT
    if raw_lines is not None:
        try:
            lines = int(raw_lines)
        except ValueError:
            raise ConfigError(f"{LOG_TAIL_LINES}={raw_lines!r} is not a whole number of lines (0 turns the tail off)") from None
        if not 0 <= lines <= MAX_LOG_TAIL_LINES:
            raise ConfigError(f"{LOG_TAIL_LINES}={raw_lines!r} must be between 0 (off) and {MAX_LOG_TAIL_LINES}")
    if raw_timeout is not None:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise ConfigError(f"{LOG_TAIL_TIMEOUT}={raw_timeout!r} is not a number of seconds") from None
        if not 0 < timeout <= MAX_LOG_TAIL_TIMEOUT:  # also rejects nan
            raise ConfigError(f"{LOG_TAIL_TIMEOUT}={raw_timeout!r} must be more than 0 and at most "
                              f"{MAX_LOG_TAIL_TIMEOUT:g} seconds")
    return LogTailSettings(lines=lines, timeout=timeout)


@functools.lru_cache(maxsize=1)
def log_tail_settings() -> LogTailSettings:
    """The log tail settings of this container, read from ``os.environ`` once."""
    return load_log_tail_settings(os.environ)


# -- Stuck-job sweep and daily digest (chalicelib/stuck.py, chalicelib/digest.py) ----------
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
    raw_minutes = _get(env, STUCK_AFTER_MINUTES)
    minutes = DEFAULT_STUCK_AFTER_MINUTES
    if raw_minutes is not None:
        try:
            minutes = int(raw_minutes)
        except ValueError:
            raise ConfigError(f"{STUCK_AFTER_MINUTES}={raw_minutes!r} is not a whole number of minutes "
                              "(0 turns the stuck-job sweep off)") from None
        if not 0 <= minutes <= MAX_STUCK_AFTER_MINUTES:
            raise ConfigError(f"{STUCK_AFTER_MINUTES}={raw_minutes!r} must be between 0 (off) and "
                              f"{MAX_STUCK_AFTER_MINUTES} (a week)")
    raw_digest = (_get(env, DIGEST) or "off").lower()
    if raw_digest not in ("on", "off"):
        raise ConfigError(f"{DIGEST}={env.get(DIGEST)!r} must be 'on' or 'off'")
    return ScheduledSettings(stuck_after_minutes=minutes, stuck_queues=_queues(env, STUCK_QUEUES),
                             digest=raw_digest == "on", digest_queues=_queues(env, DIGEST_QUEUES))


@setting
def scheduled_settings() -> ScheduledSettings:
    """The sweep and digest settings of this container, read from ``os.environ`` once."""
    return load_scheduled_settings(os.environ)
