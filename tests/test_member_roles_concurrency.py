"""core/member_roles.py under load: no lock across STS, one call per account, refusals kept a minute.

An STS stand-in (handed in as the container's STS client, core/clients.py's seam) holds account
A's AssumeRole until the test lets it go, so the test sees who waits for it: only other threads
needing A, never account B, nor the noting of the Lambda context every invocation does.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.core import clients, config, member_roles
from chalicelib.core.config import MEMBER_ROLE_ARN

HUB, ACCOUNT_A, ACCOUNT_B = "123456789012", "210987654321", "333333333333"
ROLE_TEMPLATE = "arn:aws:iam::{account}:role/batch-notify-member"
# Generous: only a thread that is blocked, not one that is slow, gets near it.
BLOCKED = 10.0


class GatedSts:
    """AssumeRole answered at once, except account A's, which waits for ``release``."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def get_caller_identity(self) -> dict[str, Any]:
        return {"Account": HUB}

    def assume_role(self, *, RoleArn: str, **_: Any) -> dict[str, Any]:
        account = RoleArn.split(":")[4]
        with self.lock:
            self.calls.append(account)
        if account == ACCOUNT_A:
            self.entered.set()
            assert self.release.wait(BLOCKED), "the test never released account A's AssumeRole"
        expires = datetime.now(UTC) + timedelta(minutes=15)
        return {"Credentials": {"AccessKeyId": f"test-id-{account}", "SecretAccessKey": "test-key",
                                "SessionToken": "test-token", "Expiration": expires}}


class DeniedSts:
    def __init__(self) -> None:
        self.calls = 0

    def get_caller_identity(self) -> dict[str, Any]:
        return {"Account": HUB}

    def assume_role(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "AssumeRole")


class Context:
    invoked_function_arn = f"arn:aws:lambda:us-east-1:{HUB}:function:batch-notify-dev-on_job_failed"


@pytest.fixture(autouse=True)
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(MEMBER_ROLE_ARN, ROLE_TEMPLATE)
    config.reset()
    member_roles.note_context(Context())
    yield
    config.reset()


def in_thread(target: Any) -> tuple[threading.Thread, list[Any]]:
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(target()), daemon=True)
    thread.start()
    return thread, found


def test_a_slow_assume_role_blocks_neither_other_accounts_nor_noting_the_context() -> None:
    sts = GatedSts()
    with clients.use_client("sts", sts):
        slow, slow_found = in_thread(lambda: member_roles.reach(ACCOUNT_A))
        assert sts.entered.wait(BLOCKED)  # A's AssumeRole is under way, and held

        noted, _ = in_thread(lambda: member_roles.note_context(Context()))
        other, other_found = in_thread(lambda: member_roles.reach(ACCOUNT_B))
        noted.join(BLOCKED)
        other.join(BLOCKED)
        assert not noted.is_alive() and not other.is_alive()  # neither waited for A
        assert other_found[0].kind == "member" and other_found[0].account == ACCOUNT_B

        sts.release.set()
        slow.join(BLOCKED)
    assert slow_found[0].kind == "member" and slow_found[0].credentials.access_key_id == f"test-id-{ACCOUNT_A}"


def test_threads_waiting_for_the_same_account_share_its_one_assume_role() -> None:
    sts = GatedSts()
    with clients.use_client("sts", sts):
        first, _ = in_thread(lambda: member_roles.reach(ACCOUNT_A))
        assert sts.entered.wait(BLOCKED)
        waiting = [in_thread(lambda: member_roles.reach(ACCOUNT_A)) for _ in range(4)]
        sts.release.set()
        first.join(BLOCKED)
        for thread, _ in waiting:
            thread.join(BLOCKED)
    assert sts.calls == [ACCOUNT_A]
    assert {found[0].credentials.access_key_id for _, found in waiting} == {f"test-id-{ACCOUNT_A}"}


def test_a_refused_assume_role_is_kept_a_minute_then_asked_again() -> None:
    denied = DeniedSts()
    now = [1_800_000_000.0]
    with clients.use_client("sts", denied), member_roles.use_clock(lambda: now[0]):
        first = member_roles.reach(ACCOUNT_A)
        assert first.kind == "refused" and "access denied" in (first.refusal or "")
        now[0] += member_roles.REFUSAL_KEPT_SECONDS - 1
        again = member_roles.reach(ACCOUNT_A)
        assert again.kind == "refused" and again.refusal == first.refusal
        assert denied.calls == 1  # a storm of one account's events asks STS once a minute
        assert member_roles.reach(ACCOUNT_B).kind == "refused" and denied.calls == 2  # per account
        now[0] += 2
        member_roles.reach(ACCOUNT_A)
        assert denied.calls == 3


def test_a_refused_assume_role_is_logged_once_per_call_not_once_per_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="batch_notify")
    denied = DeniedSts()
    now = [1_800_000_000.0]
    with clients.use_client("sts", denied), member_roles.use_clock(lambda: now[0]):
        for _ in range(5):  # a storm of the misconfigured account's events, within the minute
            assert member_roles.reach(ACCOUNT_A).kind == "refused"
        now[0] += member_roles.REFUSAL_KEPT_SECONDS + 1
        member_roles.reach(ACCOUNT_A)
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "batch_notify"]
    assert [line["assume_role"] for line in logged] == ["refused", "refused"]  # one per STS call
    assert all(line["account"] == ACCOUNT_A and "access denied" in line["reason"] for line in logged)

