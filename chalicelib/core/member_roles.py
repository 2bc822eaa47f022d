"""How this app reaches the AWS account a job ran in: its own, or a member account of the hub.

Organizations forward member accounts' ``aws.batch`` events to this app's event bus; an event
keeps its own ``account``. What the app does in the job's account (the log tail, the actions)
needs that account's credentials, which :func:`reach` decides:

- the app's own account (or an event that names none): the container's session, no STS call;
- another account, with ``MEMBER_ROLE_ARN``: STS AssumeRole of that account's member role
  (``RoleSessionName`` ``batch-notify``, 15 minutes), the credentials kept per account until five
  minutes before they end, shared by every thread of the container;
- another account, without it: nothing can reach it, and :attr:`Reach.refusal` says so plainly.

Which account is the app's own costs nothing on Lambda when an invocation's context was noted
(:func:`note_context`: its ``invoked_function_arn``); otherwise STS GetCallerIdentity is asked
once per container, and only when it matters: with ``MEMBER_ROLE_ARN`` set (to choose the
credentials before a call), or, without it, after a call in the own account found nothing
(:func:`another_account`), to say why. So a same-account event of a stage without the hub makes
no STS call at all.

Credentials are never logged or shown: :class:`~chalicelib.core.clients.Credentials` hides them
in its ``repr``, and a failed STS call is described by its code (core/aws_errors.py), never by
AWS's message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from chalicelib.core.aws_errors import describe_aws_error
from chalicelib.core.clients import ClientConfig, Credentials, client
from chalicelib.core.config import ACCOUNT_ID, MEMBER_ROLE_ARN, HubSettings, Settings, settings
from chalicelib.core.logline import log_line

ROLE_SESSION_NAME = "batch-notify"
# AssumeRole's shortest: the app needs them for one call or two; a stolen set ends soon.
ROLE_DURATION_SECONDS = 900
# Renewed this long before they end, so no call starts with credentials about to expire.
RENEW_BEFORE_SECONDS = 300.0
# STS answers in tens of milliseconds; the log tail's own deadline bounds the whole anyway.
STS_CONFIG = ClientConfig(connect_timeout=1.0, read_timeout=2.0, attempts=2)
# A refused AssumeRole is kept this long: a storm of events of a misconfigured account asks STS
# once a minute, not once an event (each still says why, in its message).
REFUSAL_KEPT_SECONDS = 60.0
# The Lambda function's ARN: arn:<partition>:lambda:<region>:<account>:function:<name>[:<alias>].
_FUNCTION_ARN_PARTS = 7

Kind = Literal["own", "member", "refused"]


@dataclass(frozen=True)
class Reach:
    """How to reach the job's ``account``: ``own`` (the container's session: ``credentials`` is
    ``None``), ``member`` (with the assumed role's ``credentials``) or ``refused`` (``refusal``
    says why, in words for the people reading the message). ``verified``: for ``own``, whether the
    account is known to be the app's own (False: the event's account was not compared, so a
    "not found" may mean another account: ask :func:`another_account`)."""

    kind: Kind
    account: str | None
    credentials: Credentials | None = None
    refusal: str | None = None
    verified: bool = True


@dataclass
class _Flight:
    """One account's AssumeRole under way: ``done`` is set once ``answer`` is (or its caller died)."""

    done: threading.Event = field(default_factory=threading.Event)
    answer: Reach | None = None


@dataclass
class _Roles:
    """The member credentials and the own account of one settings tree (forgotten by ``config.reset()``)."""

    settings: Settings
    # Held only to read or write these fields, never across a call to AWS.
    lock: threading.Lock = field(default_factory=threading.Lock)
    credentials: dict[str, Credentials] = field(default_factory=dict)
    refusals: dict[str, tuple[float, str]] = field(default_factory=dict)  # account -> (until, refusal)
    # The AssumeRole under way for an account: the threads needing that account wait on its event
    # (no lock held) and take its answer; every other account, and note_context, go on.
    flights: dict[str, _Flight] = field(default_factory=dict)
    own_account: str | None = None
    assumed: int = 0  # AssumeRole calls answered, for tests and benches


_clock: Callable[[], float] = time.time
_clock_lock = threading.Lock()


class _Clock:
    def __init__(self, previous: Callable[[], float]) -> None:
        self.previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        global _clock
        with _clock_lock:
            _clock = self.previous


def use_clock(clock: Callable[[], float]) -> _Clock:
    """From now on, credentials age by ``clock`` (epoch seconds) until the ``with`` block ends:
    the seam tests use to reach an expiry without waiting for it."""
    global _clock
    with _clock_lock:
        previous, _clock = _clock, clock
    return _Clock(previous)


def _now() -> float:
    with _clock_lock:
        return _clock()


def _roles() -> _Roles:
    return settings().section(_Roles)


def note_context(context: Any) -> None:
    """Note the app's own account from a Lambda context's ``invoked_function_arn`` (free: no call).
    Anything else (no context, chalice.test's, a malformed ARN) is ignored."""
    arn = getattr(context, "invoked_function_arn", None)
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) >= _FUNCTION_ARN_PARTS and parts[2] == "lambda" and ACCOUNT_ID.fullmatch(parts[4]):
        roles = _roles()
        with roles.lock:
            roles.own_account = parts[4]


def own_account(*, ask: bool = True) -> str | None:
    """The app's own account: as noted from a context, else (``ask``) STS GetCallerIdentity, asked
    once per container and kept; ``None`` when unknown (STS failed, or not asked)."""
    roles = _roles()
    with roles.lock:
        if roles.own_account is not None or not ask:
            return roles.own_account
    try:
        found = str(client("sts", STS_CONFIG).get_caller_identity().get("Account") or "")
    except Exception:
        return None  # unknown: the caller acts as for its own account, and says so if that fails
    if not ACCOUNT_ID.fullmatch(found):
        return None
    with roles.lock:
        roles.own_account = found
    return found


def reach(account: str | None) -> Reach:
    """How to reach ``account`` (the event's or the job ARN's; untrusted): see the module's doc.
    Never raises: an STS failure is a ``refused`` :class:`Reach` that names it."""
    if account is None or not ACCOUNT_ID.fullmatch(account):
        return Reach("own", account)  # the event names no account to compare: only ours can be meant
    hub = settings().hub
    if hub.member_role_arn is None:
        own = own_account(ask=False)
        if own is None:
            return Reach("own", account, verified=False)
        return Reach("own", account) if own == account else Reach("refused", account, refusal=no_role(account, hub))
    own = own_account()
    if own is None or own == account:
        return Reach("own", account, verified=own is not None)
    return _assumed(account, hub)


def another_account(account: str | None) -> str | None:
    """After a call in the app's own account found nothing for a job of ``account`` (a ``Reach``
    not ``verified``): the refusal to show when ``account`` is another one, else ``None``. Asks STS
    GetCallerIdentity once per container (it needs no permission)."""
    if account is None or not ACCOUNT_ID.fullmatch(account):
        return None
    own = own_account()
    return no_role(account, settings().hub) if own is not None and own != account else None


def no_role(account: str, hub: HubSettings) -> str:
    """What is said when a job of ``account`` (12 digits) is in an account the app cannot reach."""
    name = hub.name_of(account)
    return (f"the job is in account {account}{f' ({name})' if name else ''}, not this app's: set "
            f"{MEMBER_ROLE_ARN} to the role this app may assume there (e.g. arn:aws:iam::{{account}}:role/"
            "batch-notify-member, made by deploy/member-account.yaml)")


def _assumed(account: str, hub: HubSettings) -> Reach:
    """The account's kept answer, else the answer of the one AssumeRole made for it now.

    Single-flight per account, with no lock held across the call: the first thread to need the
    account marks a flight and calls STS; the threads needing it meanwhile wait on the flight's
    event and take its answer (STS_CONFIG's timeouts bound the wait). Other accounts, and
    note_context, only ever wait for ``roles.lock``, which no one holds across I/O."""
    roles = _roles()
    while True:
        kept = _kept(roles, account)
        if kept is not None:
            return kept
        with roles.lock:
            flight = roles.flights.get(account)
            leading = flight is None
            if flight is None:
                flight = roles.flights[account] = _Flight()
        if leading:
            return _assume(roles, account, hub, flight)
        flight.done.wait()
        if flight.answer is not None:
            return flight.answer
        # Its caller died before answering (not an STS failure: that is an answer): look again.


def _assume(roles: _Roles, account: str, hub: HubSettings, flight: _Flight) -> Reach:
    """Make the account's AssumeRole for ``flight`` (no lock held), keep its answer, let the waiters go."""
    try:
        answer = _call_sts(account, hub)
        with roles.lock:
            if answer.credentials is not None:
                roles.credentials[account] = answer.credentials
                roles.refusals.pop(account, None)
                roles.assumed += 1
            else:
                roles.credentials.pop(account, None)
                roles.refusals[account] = (_now() + REFUSAL_KEPT_SECONDS, answer.refusal or "")
        flight.answer = answer
        return answer
    finally:
        with roles.lock:
            roles.flights.pop(account, None)
        flight.done.set()  # also when this thread dies mid-call: a waiter then makes the call itself


def _call_sts(account: str, hub: HubSettings) -> Reach:
    """AssumeRole of the account's member role: ``member`` with its credentials, or ``refused``
    saying why (logged once per call: a kept refusal is not logged again, each message still says it)."""
    role_arn = hub.role_arn(account) or ""
    try:
        answer = client("sts", STS_CONFIG).assume_role(RoleArn=role_arn, RoleSessionName=ROLE_SESSION_NAME,
                                                      DurationSeconds=ROLE_DURATION_SECONDS)
        return Reach("member", account, credentials=_credentials(account, answer))
    except Exception as error:
        refusal = _assume_failed(account, hub, role_arn, error)
        # The words are made of the error's code (core/aws_errors.py), never AWS's message.
        log_line(logging.WARNING, account=account, assume_role="refused", reason=refusal,
                 kept_seconds=REFUSAL_KEPT_SECONDS)
        return Reach("refused", account, refusal=refusal)


def _kept(roles: _Roles, account: str) -> Reach | None:
    """The account's kept answer: fresh credentials, or a refusal of the last minute."""
    now = _now()
    with roles.lock:
        credentials = roles.credentials.get(account)
        if credentials is not None and credentials.fresh(now, RENEW_BEFORE_SECONDS):
            return Reach("member", account, credentials=credentials)
        until, refusal = roles.refusals.get(account, (0.0, ""))
        if now < until:
            return Reach("refused", account, refusal=refusal)
    return None


def _credentials(account: str, answer: Any) -> Credentials:
    """The credentials of AssumeRole's answer; raise ``ValueError`` when one part is missing."""
    given = answer.get("Credentials") if isinstance(answer, dict) else None
    if not isinstance(given, dict):
        raise ValueError("AssumeRole answered without credentials")
    expiration = given.get("Expiration")
    expires_at = expiration.timestamp() if isinstance(expiration, datetime) else _now() + ROLE_DURATION_SECONDS
    parts = [given.get(key) for key in ("AccessKeyId", "SecretAccessKey", "SessionToken")]
    if not all(isinstance(part, str) and part for part in parts):
        raise ValueError("AssumeRole answered without credentials")
    return Credentials(account, str(parts[0]), str(parts[1]), str(parts[2]), expires_at)


def _assume_failed(account: str, hub: HubSettings, role_arn: str, error: BaseException) -> str:
    name = hub.name_of(account)
    words = describe_aws_error(error, service="AWS STS", action="sts:AssumeRole",
                               doing=f"assume {role_arn}",
                               fixes={"access denied": "deploy deploy/member-account.yaml in that account (its role "
                                                       "trusts this app's roles) and allow sts:AssumeRole on it in "
                                                       ".chalice/policy-<stage>.json",
                                      "not found": "deploy deploy/member-account.yaml in that account"})
    return f"the job is in account {account}{f' ({name})' if name else ''}, and {words}"


def assumed_count() -> int:
    """How many times this settings tree assumed a member role (tests, benches)."""
    roles = _roles()
    with roles.lock:
        return roles.assumed
