"""The one place that makes AWS clients: one boto3 session per container, shared by all.

SSM (secrets), CloudWatch Logs (the log tail, per region), AWS Batch (the sweep and the digest)
and DynamoDB (the state table) all ask :func:`client` for theirs, each with its own
:class:`ClientConfig` (timeouts, attempts). A client is made at its first use and kept for the
container; the session behind them is made with the first client. A boto3 session costs about
10 MB of a 128 MB function, so there is one, not one per caller.

boto3 is imported here only, and only by the first :func:`client` call: importing the app
must not need it (``chalice deploy`` imports app.py on a laptop; tests/test_import.py).

The clients live in the settings tree (:func:`chalicelib.core.config.settings`), so
:func:`chalicelib.core.config.reset` forgets them with everything else made from the
environment. Tests hand in their own client (a botocore Stubber's, a fake) with
:func:`use_client` instead of patching a module's attributes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
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


_Key = tuple[str, str | None, ClientConfig]


class _Pool:
    """The session and the clients of one settings tree. boto3 sessions are not thread-safe:
    every client is made under ``lock`` (the log tail makes its client in a worker thread)."""

    def __init__(self, _: Settings) -> None:
        self.lock = threading.Lock()
        self.session: Any = None
        self.clients: dict[_Key, Any] = {}


_overrides: dict[str, Any] = {}
_overrides_lock = threading.Lock()


def client(service: str, config: ClientConfig, *, region: str | None = None,
           prepare: Callable[[Any], None] | None = None) -> Any:
    """The ``service`` client of this container for ``region`` (``None``: the function's own)
    and ``config``, made at first use from the one session. ``prepare`` runs once on a client
    just made, before anyone uses it (secrets registers a botocore hook there)."""
    with _overrides_lock:
        override = _overrides.get(service)
    if override is not None:
        return override
    pool = settings().section(_Pool)
    key = (service, region, config)
    with pool.lock:
        made = pool.clients.get(key)
        if made is None:
            if pool.session is None:
                import boto3  # lazy: only what talks to AWS pays for it

                pool.session = boto3.session.Session()
            made = pool.session.client(service, region_name=region, config=config.to_botocore())
            if prepare is not None:
                prepare(made)
            pool.clients[key] = made
        return made


def made() -> tuple[tuple[str, str | None], ...]:
    """(service, region) of each client made since the last reset, in order (tests, benches)."""
    pool = settings().section(_Pool)
    with pool.lock:
        return tuple((service, region) for service, region, _ in pool.clients)


class _Fake:
    """What :func:`use_client` returns: ``with`` it to put the previous client back at the end."""

    def __init__(self, service: str, fake: Any, previous: Any) -> None:
        self.service, self.fake, self.previous = service, fake, previous

    def __enter__(self) -> Any:
        return self.fake

    def __exit__(self, *_: object) -> None:
        with _overrides_lock:
            if self.previous is None:
                _overrides.pop(self.service, None)
            else:
                _overrides[self.service] = self.previous


def use_client(service: str, fake: Any) -> _Fake:
    """From now on, :func:`client` returns ``fake`` for ``service``, whatever the region or config:
    the seam tests use (a Stubber's client, an object that raises or hangs). Until the ``with``
    block ends (``with use_client("batch", stubbed):``) or :func:`forget_fakes` (tests/conftest.py
    calls it after every test)."""
    with _overrides_lock:
        previous = _overrides.get(service)
        _overrides[service] = fake
    return _Fake(service, fake, previous)


def forget_fakes() -> None:
    """Drop every client given with :func:`use_client`."""
    with _overrides_lock:
        _overrides.clear()
