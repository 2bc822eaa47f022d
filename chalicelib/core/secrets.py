"""Resolve Slack secrets, reading SSM Parameter Store once per Lambda container.

Every value is registered with :func:`chalicelib.core.masking.protect` the moment the process has
it, before anything else (validation, an error, a library's log line) can show it:

- a value read from SSM is protected by a botocore ``before-parse`` hook on the client, since
  botocore's parser logs the raw response body, decrypted value included, at DEBUG;
- then it is checked for what it must be (a ``xox...`` token, an ``https://`` URL): a bad
  value fails at first use with :class:`InvalidSecretError`, naming the variable or the
  parameter and never the value.

The SSM read runs in a worker thread joined with :data:`SSM_DEADLINE`, like the log tail
(``chalicelib/reading/logtail.py``): botocore's timeouts are per read and per attempt, so a server
dripping bytes would otherwise hold the invocation until Lambda kills it.

The SSM client comes from ``chalicelib/core/clients.py`` (the container's one boto3 session),
made only when a secret is given as a parameter name; the values read are kept in the settings
tree, so :func:`chalicelib.core.config.reset` forgets them with the rest.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlsplit

from chalicelib.core import config, masking
from chalicelib.core.aws_errors import Family, describe_aws_error
from chalicelib.core.clients import ClientConfig, client
from chalicelib.core.config import (
    BOT_TOKEN,
    BOT_TOKEN_PARAM,
    WEBHOOK_URL,
    WEBHOOK_URL_PARAM,
    ConfigError,
    Secret,
    Settings,
    settings,
)
from chalicelib.core.errors import BatchNotifyError

# The whole parameter read, retries included: about what botocore's per-attempt timeouts
# (connect 2 s + read 3 s) allow one attempt.
SSM_DEADLINE = 5.0
# Plain http only where it cannot leave the machine: the Slack stand-in of the tests and the demo.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# Short timeouts and few attempts: a slow or failing SSM must not eat the Lambda's time, and
# Lambda's own retry will try the whole invocation again.
SSM_CLIENT = ClientConfig(connect_timeout=2, read_timeout=3, attempts=2)
# What to do when a read fails, per kind of AWS error (chalicelib/core/aws_errors.py).
SSM_FIXES: dict[Family, str] = {
    "not found": "it does not exist in this account and region: create it as a SecureString, or fix the name",
    "access denied": "the stage's IAM policy needs ssm:GetParameter on it (and kms:Decrypt if it uses a "
                     "customer-managed key)",
}

_lock = threading.Lock()


class SecretError(BatchNotifyError):
    """A secret could not be read; the message names the parameter, never its value."""


class InvalidSecretError(SecretError, ConfigError):
    """A secret's value cannot be a bot token or a webhook URL; the message names the
    variable or the parameter it came from, never the value."""


def ssm_client() -> Any:
    """The container's SSM client, with the hook that protects every value it reads."""
    return client("ssm", SSM_CLIENT, prepare=_register_protection)




def _register_protection(made: Any) -> None:
    made.meta.events.register("before-parse.ssm", _protect_response_values)


def _values(_: Settings) -> dict[str, str]:
    """The settings tree's section of parameter values read from SSM: name -> value."""
    return {}


def _protect_response_values(response_dict: Any = None, **_: Any) -> None:
    """botocore hook: protect every parameter value of an SSM response before botocore's
    parser reads (and, at DEBUG, logs) the body. Never raises: the parser reports bad bodies."""
    try:
        pending = [json.loads(response_dict["body"])]
        while pending:
            node = pending.pop()
            if isinstance(node, dict):
                if isinstance(node.get("Value"), str):
                    masking.protect(node["Value"])
                pending.extend(node.values())
            elif isinstance(node, list):
                pending.extend(node)
    except Exception:
        pass


def resolve(secret: Secret) -> str:
    """The secret's value: the direct value, or the decrypted SSM parameter (cached).

    The value is protected (masked in every log record) before it is checked, and a value
    that cannot be a bot token or a webhook URL raises :class:`InvalidSecretError`.
    """
    masking.install()
    if secret.value is not None:
        value = secret.value.strip()
        masking.protect(value)
        _check(value, secret.variable, secret.variable)
        return value
    name = secret.parameter or ""
    cache = settings().section(_values)
    with _lock:
        cached = cache.get(name)
    if cached is not None:
        masking.protect(cached)  # again: a test or a tool may have made masking forget it
        return cached
    value = _fetch_parameter(name, secret.variable)
    masking.protect(value)  # the hook did already, unless a stubbed client skipped parsing
    # Not cached when invalid: the next invocation reads the fixed parameter.
    _check(value, secret.variable, f"SSM parameter {name!r} (from {secret.variable})")
    with _lock:
        cache[name] = value
    return value


def _check(value: str, variable: str, where: str) -> None:
    """Raise :class:`InvalidSecretError` naming ``where`` if ``value`` cannot be what ``variable`` holds."""
    problem = _token_problem(value) if variable in (BOT_TOKEN, BOT_TOKEN_PARAM) else (
        _webhook_problem(value) if variable in (WEBHOOK_URL, WEBHOOK_URL_PARAM) else None)
    if problem is not None:
        raise InvalidSecretError(f"{where} {problem}")


def _has_inner_space(value: str) -> bool:
    # A pasted line break or space, or a control character: no token or URL has one.
    return any(c.isspace() or not c.isprintable() for c in value)


def _token_problem(token: str) -> str | None:
    if _has_inner_space(token):
        return ("is not a Slack bot token: it has a space, a line break or a control character inside; "
                "copy the token again")
    if not token.startswith("xox"):
        return "is not a Slack bot token: it must start with xoxb- (the app's Bot User OAuth Token)"
    return None


def _webhook_problem(url: str) -> str | None:
    if _has_inner_space(url):
        return ("is not a webhook URL: it has a space, a line break or a control character inside; "
                "copy the URL again")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises ValueError for a port that is not a number
    except ValueError:
        return "is not a webhook URL: it cannot be parsed; it looks like https://hooks.slack.com/services/..."
    if not host:
        return "is not a webhook URL: it has no host; it looks like https://hooks.slack.com/services/..."
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return "is not a webhook URL: it must start with https://"
    if "?" in url or "#" in url:
        return "is not a webhook URL: it must not have a query (?...) or a fragment (#...)"
    return None


def _fetch_parameter(name: str, variable: str) -> str:
    ssm = ssm_client()
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=_get_parameter_into, args=(outcome, ssm, name), name="ssm-get-parameter",
                              daemon=True)
    worker.start()
    worker.join(SSM_DEADLINE)
    if worker.is_alive() or not outcome:
        # The thread is left to end on its own; nobody reads what it gets.
        raise SecretError(f"SSM did not answer within {SSM_DEADLINE:g}s reading parameter {name!r} (from {variable}); "
                          "Lambda retries the invocation later")
    error = outcome.get("error")
    if error is not None:
        # "could not read parameter '/x' (from V): access denied (ssm:GetParameter): the stage's ..."
        raise SecretError(describe_aws_error(error, service="SSM", action="ssm:GetParameter",
                                             doing=f"read parameter {name!r} (from {variable})", fixes=SSM_FIXES))
    value = outcome["response"].get("Parameter", {}).get("Value", "")
    if not isinstance(value, str) or not value.strip():
        raise SecretError(f"SSM parameter {name!r} (from {variable}) is empty")
    return value.strip()


def _get_parameter_into(outcome: dict[str, Any], client: Any, name: str) -> None:
    """Worker body: put ``response`` or ``error`` into ``outcome``; never let an exception escape."""
    try:
        outcome["response"] = client.get_parameter(Name=name, WithDecryption=True)
    except BaseException as error:
        outcome["error"] = error


def reset() -> None:
    """Forget the settings tree (the values read, the client) and the masked values.

    Kept for tools/replay.py and the tests; a later change can call ``config.reset()`` and
    ``masking.forget()`` instead."""
    config.reset()
    masking.forget()
