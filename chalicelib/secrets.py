"""Resolve Slack secrets, reading SSM Parameter Store once per Lambda container.

boto3 is imported here, lazily, and only when a secret is given as a parameter name: the
Lambda runtime ships boto3, and importing the app must not need it.
"""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.config import Secret

_cache: dict[str, str] = {}
_lock = threading.Lock()
_ssm_client: Any = None


class SecretError(RuntimeError):
    """A secret could not be read; the message names the parameter, never its value."""


def _client() -> Any:
    global _ssm_client
    if _ssm_client is None:
        import boto3  # lazy: only stages that keep the secret in SSM pay for it
        from botocore.config import Config

        # Short timeouts and few retries: a slow or failing SSM must not eat the Lambda's
        # time, and Lambda's own retry will try the whole invocation again.
        _ssm_client = boto3.client(
            "ssm",
            config=Config(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"}),
        )
    return _ssm_client


def resolve(secret: Secret) -> str:
    """The secret's value: the direct value, or the decrypted SSM parameter (cached)."""
    if secret.value is not None:
        return secret.value
    name = secret.parameter or ""
    with _lock:
        if name in _cache:
            return _cache[name]
    value = _fetch_parameter(name, secret.variable)
    with _lock:
        _cache[name] = value
    return value


def _fetch_parameter(name: str, variable: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = _client().get_parameter(Name=name, WithDecryption=True)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        if code == "ParameterNotFound":
            raise SecretError(
                f"SSM parameter {name!r} (from {variable}) does not exist in this account and region: "
                "create it as a SecureString, or fix the name"
            ) from None
        if code in ("AccessDeniedException", "AccessDenied"):
            raise SecretError(
                f"not allowed to read SSM parameter {name!r} (from {variable}): the stage's IAM policy "
                "needs ssm:GetParameter on it (and kms:Decrypt if it uses a customer-managed key)"
            ) from None
        raise SecretError(f"could not read SSM parameter {name!r} (from {variable}): {code}") from None
    except BotoCoreError as error:
        raise SecretError(f"could not reach SSM to read parameter {name!r} (from {variable}): {type(error).__name__}") from None
    value = response.get("Parameter", {}).get("Value", "")
    if not value.strip():
        raise SecretError(f"SSM parameter {name!r} (from {variable}) is empty")
    return value.strip()


def reset() -> None:
    """Forget cached secrets and the client (tests switch moto accounts and regions)."""
    global _ssm_client
    with _lock:
        _cache.clear()
        _ssm_client = None
