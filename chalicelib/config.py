"""Settings from environment variables, read once per Lambda container at first use.

The variables are set per stage in ``.chalice/config.json``. Nothing is read at import time,
so ``chalice deploy`` / ``chalice package`` can import the app on a laptop with no settings;
a misconfiguration fails at the first invocation with a message naming the variable to set.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Literal, Mapping, Optional

WEBHOOK_URL = "SLACK_WEBHOOK_URL"
WEBHOOK_URL_PARAM = "SLACK_WEBHOOK_URL_PARAM"
BOT_TOKEN = "SLACK_BOT_TOKEN"
BOT_TOKEN_PARAM = "SLACK_BOT_TOKEN_PARAM"
CHANNEL = "SLACK_CHANNEL"
API_URL = "SLACK_API_URL"
REQUEST_TIMEOUT = "SLACK_REQUEST_TIMEOUT_SECONDS"
DELIVERY_BUDGET = "SLACK_DELIVERY_BUDGET_SECONDS"

DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_REQUEST_TIMEOUT = 5.0
# Well inside the default 60 s lambda_timeout: when Slack is still failing after this,
# the handler raises and Lambda's asynchronous retry tries again later.
DEFAULT_DELIVERY_BUDGET = 20.0


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


def reset() -> None:
    """Forget cached settings (tests and the replay tool change the environment)."""
    slack_settings.cache_clear()
