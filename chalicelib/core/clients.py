"""The one place that makes AWS clients: one boto3 session per container, shared by all.

SSM (secrets), CloudWatch Logs (the log tail, per region), AWS Batch (the sweep and the digest)
and DynamoDB (the state table) all ask :func:`client` for theirs, each with its own
:class:`ClientConfig` (timeouts, attempts). A client is made at its first use and kept for the
container; the session behind them is made with the first client. A boto3 session costs about
10 MB of a 128 MB function, so there is one, not one per caller.

boto3 is imported here only, and only by the first :func:`client` call: importing the app
must not need it (``chalice deploy`` imports app.py on a laptop; tests/test_import.py).

A client for another AWS account (the hub: core/member_roles.py assumes the member role) is made
from the same session with the role's temporary :class:`Credentials`, not from a second session
(a botocore session loads its service models again: megabytes and tens of milliseconds), and is
kept until those credentials near their end; then the next call makes one with the renewed ones.

The clients live in the settings tree (:func:`chalicelib.core.config.settings`), so
:func:`chalicelib.core.config.reset` forgets them with everything else made from the
environment. Tests hand in their own client (a botocore Stubber's, a fake) with
:func:`use_client` instead of patching a module's attributes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.config import Settings, settings


@dataclass(frozen=True)
class ClientConfig:
    """botocore's ``Config`` as a value (so equal configs share a client): socket timeouts in
    seconds, and ``attempts`` in all, the first try included (botocore's ``total_max_attempts``;
    its ``max_attempts`` counts the retries only, a classic off-by-one)."""

    connect_timeout: float
    read_timeout: float
    attempts: int

    def to_botocore(self) -> Any:
        from botocore.config import Config

        return Config(connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                      retries={"total_max_attempts": self.attempts, "mode": "standard"})


@dataclass(frozen=True)
class Credentials:
    """Temporary credentials of an assumed role (STS AssumeRole's answer) for ``account``, good
    until ``expires_at`` (epoch seconds). Never shown: ``repr`` names the account and the expiry only."""

    account: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float

    def fresh(self, now: float, margin: float) -> bool:
        """Whether they are still good ``margin`` seconds after ``now``."""
        return now + margin < self.expires_at


_Key = tuple[str, str | None, ClientConfig]
# A client of another account: its key, and the access key id it was made with.
_MemberKey = tuple[str, str | None, ClientConfig, str]


class _Pool:
    """The session and the clients of one settings tree. boto3 sessions are not thread-safe:
    every client is made under ``lock`` (the log tail makes its client in a worker thread)."""

    def __init__(self, _: Settings) -> None:
        self.lock = threading.Lock()
        self.session: Any = None
        self.clients: dict[_Key, Any] = {}
        self.member_clients: dict[_MemberKey, tuple[Credentials, Any]] = {}


# Keyed by (service, account): account None is every account's fake (see use_client).
_overrides: dict[tuple[str, str | None], Any] = {}
_overrides_lock = threading.Lock()
# A member account's client is dropped this long before its credentials end, so no call starts
# with credentials that expire while it runs (member_roles renews them earlier still).
CREDENTIALS_MARGIN_SECONDS = 60.0


def client(service: str, config: ClientConfig, *, region: str | None = None,
           prepare: Callable[[Any], None] | None = None, credentials: Credentials | None = None) -> Any:
    """The ``service`` client of this container for ``region`` (``None``: the function's own)
    and ``config``, made at first use from the one session. ``prepare`` runs once on a client
    just made, before anyone uses it (secrets registers a botocore hook there). ``credentials``:
    a client of another account, signing with them (core/member_roles.py gives them), kept while
    they are fresh."""
    with _overrides_lock:
        override = _overrides.get((service, credentials.account if credentials else None))
        if override is None:
            override = _overrides.get((service, None))
    if override is not None:
        return override
    pool = settings().section(_Pool)
    with pool.lock:
        if credentials is not None:
            return _member_client(pool, service, config, region, prepare, credentials)
        key = (service, region, config)
        made = pool.clients.get(key)
        if made is None:
            made = _session(pool).client(service, region_name=region, config=config.to_botocore())
            if prepare is not None:
                prepare(made)
            pool.clients[key] = made
        return made


def _session(pool: _Pool) -> Any:
    if pool.session is None:
        import boto3  # lazy: only what talks to AWS pays for it

        pool.session = boto3.session.Session()
    return pool.session


def _member_client(pool: _Pool, service: str, config: ClientConfig, region: str | None,
                   prepare: Callable[[Any], None] | None, credentials: Credentials) -> Any:
    """Under ``pool.lock``: the client signing with ``credentials``, made from the one session."""
    now = time.time()
    # Clients of credentials that have ended are forgotten: a long-lived container renews them hourly.
    for stale in [k for k, (made_with, _) in pool.member_clients.items()
                  if not made_with.fresh(now, CREDENTIALS_MARGIN_SECONDS)]:
        del pool.member_clients[stale]
    key = (service, region, config, credentials.access_key_id)
    kept = pool.member_clients.get(key)
    if kept is not None:
        return kept[1]
    made = _session(pool).client(service, region_name=region, config=config.to_botocore(),
                                 aws_access_key_id=credentials.access_key_id,
                                 aws_secret_access_key=credentials.secret_access_key,
                                 aws_session_token=credentials.session_token)
    if prepare is not None:
        prepare(made)
    pool.member_clients[key] = (credentials, made)
    return made


def made() -> tuple[tuple[str, str | None], ...]:
    """(service, region) of each client of the function's own account made since the last reset,
    in order (tests, benches)."""
    pool = settings().section(_Pool)
    with pool.lock:
        return tuple((service, region) for service, region, _ in pool.clients)


def made_for_members() -> tuple[tuple[str, str | None, str], ...]:
    """(service, region, account) of each client of another account kept now, in order."""
    pool = settings().section(_Pool)
    with pool.lock:
        return tuple((service, region, made_with.account)
                     for (service, region, _, _), (made_with, _) in pool.member_clients.items())


def session_made() -> bool:
    """Whether this settings tree's one boto3 session exists yet (tests, benches: never two)."""
    pool = settings().section(_Pool)
    with pool.lock:
        return pool.session is not None


class _Fake:
    """What :func:`use_client` returns: ``with`` it to put the previous client back at the end."""

    def __init__(self, key: tuple[str, str | None], fake: Any, previous: Any) -> None:
        self.key, self.fake, self.previous = key, fake, previous

    def __enter__(self) -> Any:
        return self.fake

    def __exit__(self, *_: object) -> None:
        with _overrides_lock:
            if self.previous is None:
                _overrides.pop(self.key, None)
            else:
                _overrides[self.key] = self.previous


def use_client(service: str, fake: Any, *, account: str | None = None) -> _Fake:
    """From now on, :func:`client` returns ``fake`` for ``service``, whatever the region or config:
    the seam tests use (a Stubber's client, an object that raises or hangs). ``account``: only for
    the clients of that other account (made with its credentials), which otherwise get the fake of
    every account too. Until the ``with`` block ends (``with use_client("batch", stubbed):``) or
    :func:`forget_fakes` (tests/conftest.py calls it after every test)."""
    key = (service, account)
    with _overrides_lock:
        previous = _overrides.get(key)
        _overrides[key] = fake
    return _Fake(key, fake, previous)


def forget_fakes() -> None:
    """Drop every client given with :func:`use_client`."""
    with _overrides_lock:
        _overrides.clear()
