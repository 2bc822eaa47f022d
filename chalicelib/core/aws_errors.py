"""AWS errors in words: the one place that looks inside botocore's ``ClientError`` and
``BotoCoreError`` and says what happened and what to fix.

Every caller of AWS (secrets: SSM; the log tail: CloudWatch Logs; the sweep and the digest:
AWS Batch; the state table: DynamoDB) describes a failed call with :func:`describe_aws_error`, so one
code is worded alike everywhere, by family (access denied, not found, throttled, unreachable).
The words hold the error code or the exception's type, never AWS's message (it can hold ARNs,
account ids and, for a parser error, the response body), a request id or a secret.

botocore is imported only when an error is described: importing the app must not need it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Family = Literal["access denied", "not found", "throttled", "unreachable", "no credentials", "refused",
                 "unexpected"]

# Codes of the families; any other code AWS answers is "refused" (AWS said no, for its own reason).
_ACCESS_DENIED = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
_THROTTLED = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException",
                        "ProvisionedThroughputExceededException", "RequestLimitExceeded"})
# An error code is a short identifier; anything longer is not one and is cut.
_MAX_CODE = 100


@dataclass(frozen=True)
class AwsFailure:
    """What went wrong with one AWS call.

    ``code`` is AWS's error code (``AccessDeniedException``), or the exception's type name for
    an error AWS did not answer. ``message`` is AWS's own message: for a caller to look at
    (which resource is missing), never to show."""

    family: Family
    code: str
    message: str = ""


def classify_aws_error(error: BaseException) -> AwsFailure:
    """The family and code of ``error`` (any exception: what is not botocore's is "unexpected")."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError:  # no botocore: whatever failed, it was not an AWS answer
        return AwsFailure("unexpected", type(error).__name__)
    if isinstance(error, ClientError):
        details = error.response.get("Error", {}) if isinstance(error.response, Mapping) else {}
        code = str(details.get("Code") or "Unknown")[:_MAX_CODE]
        message = str(details.get("Message") or "")
        if code in _ACCESS_DENIED:
            return AwsFailure("access denied", code, message)
        if code.endswith(("NotFound", "NotFoundException")):  # ParameterNotFound, ResourceNotFoundException
            return AwsFailure("not found", code, message)
        if code in _THROTTLED:
            return AwsFailure("throttled", code, message)
        return AwsFailure("refused", code, message)
    if isinstance(error, NoCredentialsError):
        return AwsFailure("no credentials", type(error).__name__)
    if isinstance(error, BotoCoreError):
        # The type only: a parser error's text holds the response body.
        return AwsFailure("unreachable", type(error).__name__)
    return AwsFailure("unexpected", type(error).__name__)


def standard_fixes(action: str) -> dict[Family, str]:
    """What to do, per family, when a call of ``action`` (e.g. ``batch:ListJobs``) fails."""
    return {
        "access denied": f"the stage's IAM policy (.chalice/policy-<stage>.json) must allow {action}",
        "not found": "check the name, and that it exists in this account and region",
        "throttled": "too many requests in this account and region: the next invocation tries again",
        "unreachable": "check the function's network path to AWS (in a VPC: a NAT gateway or a VPC endpoint)",
    }


def describe_aws_error(error: BaseException, *, service: str, action: str, doing: str | None = None,
                       fixes: Mapping[Family, str] | None = None) -> str:
    """One line for a failed AWS call: what happened (the code, by family) and what to fix.

    ``service`` names the service as a person knows it ("CloudWatch Logs"), ``action`` the IAM
    action of the call ("logs:GetLogEvents"). With ``doing`` ("read parameter '/x'"), the line
    says what could not be done: "could not call batch:ListJobs: access denied: the stage's IAM
    policy (.chalice/policy-<stage>.json) must allow batch:ListJobs".
    ``fixes`` maps a family to what to fix, appended after a colon; ``None`` means
    :func:`standard_fixes`, ``{}`` none (a short note, like the log tail's).
    """
    failure = classify_aws_error(error)
    fix = (standard_fixes(action) if fixes is None else fixes).get(failure.family)
    words = {
        # The action once: in the fix when there is one ("... must allow batch:ListJobs").
        "access denied": "access denied" if fix else f"access denied ({action})",
        "not found": failure.code,
        "throttled": f"throttled by {service}",
        "unreachable": f"could not reach {service} ({failure.code})",
        "no credentials": "no AWS credentials",
        "refused": f"{service} answered {failure.code}",
        "unexpected": f"unexpected error ({failure.code})",
    }[failure.family]
    if doing is not None:
        # "could not reach SSM to read parameter '/x': EndpointConnectionError" reads better than
        # "could not read parameter '/x': could not reach SSM (EndpointConnectionError)".
        words = (f"could not reach {service} to {doing}: {failure.code}" if failure.family == "unreachable"
                 else f"could not {doing}: {words}")
    return f"{words}: {fix}" if fix else words
