"""Secrets under hostile conditions: botocore at DEBUG while it reads the decrypted value, values
that cannot be a token or a webhook URL, and an SSM endpoint that drips its answer."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.core import masking, secrets
from chalicelib.core.config import ConfigError, Secret, load_slack_settings
from chalicelib.core.secrets import SSM_DEADLINE, InvalidSecretError, SecretError
from tests.conftest import FAKE_BOT_TOKEN, FAKE_WEBHOOK

WEBHOOK_PATH = FAKE_WEBHOOK.split("hooks.slack.com/", 1)[1]
# FAKE_BOT_TOKEN holds moto's account id, which every ARN moto answers shows.
SSM_TOKEN = "-".join(["xoxb", "210987654321", "3210987654321", "ZyXwVuTsRqPoNmLkJiHgFeDc"])


def pieces(value: str) -> set[str]:
    """Every 8-character piece of what is secret in ``value``: all of a token, the part of a
    webhook URL after /services/ (its scheme and host are public, and error hints show them)."""
    secret = "".join(value.split())
    secret = secret.split("/services/", 1)[-1]
    return {secret[i:i + 8] for i in range(len(secret) - 7)}


def shows(text: str, value: str) -> bool:
    return any(piece in text for piece in pieces(value))


@pytest.fixture
def debug_records() -> Iterator[list[str]]:
    """botocore and the root logger at DEBUG; each record as a handler would print it, with
    its traceback and stack, and its raw message and arguments."""
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append("\n".join([formatter.format(record), str(record.msg), repr(record.args)]))

    root, botocore = logging.getLogger(), logging.getLogger("botocore")
    levels = root.level, botocore.level
    handler = Capture(logging.DEBUG)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    botocore.setLevel(logging.DEBUG)
    factory = logging.getLogRecordFactory()
    masking.install()
    yield lines
    root.removeHandler(handler)
    root.setLevel(levels[0])
    botocore.setLevel(levels[1])
    logging.setLogRecordFactory(factory)


@mock_aws
@pytest.mark.parametrize("variable, value", [("SLACK_BOT_TOKEN_PARAM", SSM_TOKEN),
                                             ("SLACK_WEBHOOK_URL_PARAM", FAKE_WEBHOOK)], ids=["token", "webhook"])
def test_botocore_at_debug_never_logs_the_decrypted_parameter(debug_records, variable, value):
    boto3.client("ssm").put_parameter(Name="/bn/secret", Value=value, Type="SecureString")
    debug_records.clear()  # the test's own put_parameter logged the value before anything knew it
    assert secrets.resolve(Secret(variable=variable, parameter="/bn/secret")) == value
    assert any("Response body" in line for line in debug_records)  # botocore did dump the body
    assert [line for line in debug_records if shows(line, value)] == []


BAD_TOKENS = {
    "inner newline": FAKE_BOT_TOKEN[:20] + "\n" + FAKE_BOT_TOKEN[20:],
    "inner space": FAKE_BOT_TOKEN[:20] + " " + FAKE_BOT_TOKEN[20:],
    "inner CR and tab": FAKE_BOT_TOKEN[:10] + "\r\t" + FAKE_BOT_TOKEN[10:],
    "control character": FAKE_BOT_TOKEN[:30] + "\x00" + FAKE_BOT_TOKEN[30:],
    "a Bearer prefix": "Bearer " + FAKE_BOT_TOKEN,
    "not xox": "tok-" + FAKE_BOT_TOKEN[5:],
}
BAD_WEBHOOKS = {
    "inner newline": FAKE_WEBHOOK[:45] + "\n" + FAKE_WEBHOOK[45:],
    "inner space": FAKE_WEBHOOK[:40] + " " + FAKE_WEBHOOK[40:],
    "plain http to a remote host": FAKE_WEBHOOK.replace("https://", "http://"),
    "no scheme": FAKE_WEBHOOK.replace("https://", ""),
    "another scheme": FAKE_WEBHOOK.replace("https://", "ftp://"),
    "no host": "https:///" + WEBHOOK_PATH,
    "a bad port": FAKE_WEBHOOK.replace("hooks.slack.com", "hooks.slack.com:https"),
    "a query": FAKE_WEBHOOK + "?channel=C1",
    "a fragment": FAKE_WEBHOOK + "#x",
}


def assert_named_not_shown(error: BaseException, name: str, value: str) -> None:
    assert isinstance(error, ConfigError) and isinstance(error, SecretError)
    assert name in str(error)
    assert not shows(str(error), value) and not shows(repr(error), value)
    # Protected before the check failed: no later log line or error can show it either.
    assert not shows(masking.mask(f"value={value!r}"), value)


@pytest.mark.parametrize("value", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_bad_bot_token_fails_at_first_use_naming_the_variable(value):
    settings = load_slack_settings({"SLACK_BOT_TOKEN": value, "SLACK_CHANNEL": "C1"})
    with pytest.raises(InvalidSecretError) as error:
        secrets.resolve(settings.secret)
    assert_named_not_shown(error.value, "SLACK_BOT_TOKEN", value)


@pytest.mark.parametrize("value", BAD_WEBHOOKS.values(), ids=BAD_WEBHOOKS.keys())
def test_a_bad_webhook_url_fails_at_first_use_naming_the_variable(value):
    settings = load_slack_settings({"SLACK_WEBHOOK_URL": value})
    with pytest.raises(InvalidSecretError) as error:
        secrets.resolve(settings.secret)
    assert_named_not_shown(error.value, "SLACK_WEBHOOK_URL", value)


@pytest.mark.parametrize("variable, value", [
    ("SLACK_BOT_TOKEN", FAKE_BOT_TOKEN),
    ("SLACK_WEBHOOK_URL", FAKE_WEBHOOK),
    ("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/services/T0/B0/" + "x" * 24),  # the loopback stand-in
    ("SLACK_WEBHOOK_URL", "http://[::1]:9/services/T0/B0/" + "x" * 24),
], ids=["token", "webhook", "loopback http", "loopback http ipv6"])
def test_good_values_pass_and_are_protected(variable, value):
    assert secrets.resolve(Secret(variable=variable, value=f"  {value}\n")) == value
    assert masking.mask(f"posting to {value}") == "posting to ***"


@mock_aws
def test_a_bad_parameter_names_the_parameter_and_is_read_again_once_fixed():
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/bn/token", Value=BAD_TOKENS["inner newline"], Type="SecureString")
    secret = Secret(variable="SLACK_BOT_TOKEN_PARAM", parameter="/bn/token")
    with pytest.raises(InvalidSecretError) as error:
        secrets.resolve(secret)
    assert_named_not_shown(error.value, "'/bn/token' (from SLACK_BOT_TOKEN_PARAM)", BAD_TOKENS["inner newline"])
    ssm.put_parameter(Name="/bn/token", Value=FAKE_BOT_TOKEN, Type="SecureString", Overwrite=True)
    assert secrets.resolve(secret) == FAKE_BOT_TOKEN  # the bad value was not cached


token_shaped = st.builds(lambda kind, parts: f"xox{kind}-" + "-".join(parts), st.sampled_from("abpr"),
                         st.lists(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                                          min_size=8, max_size=26), min_size=2, max_size=4))
webhook_shaped = st.builds(lambda parts: "https://hooks.slack.com/services/" + "/".join(parts),
                           st.lists(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=9, max_size=24),
                                    min_size=3, max_size=3))


@settings(max_examples=120, deadline=None, database=None)
@given(kind=st.sampled_from(["SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL"]), data=st.data(),
       spaces=st.lists(st.tuples(st.integers(1, 60), st.sampled_from(["\n", " ", "\t", "\r\n", "\u00a0", "\x0b"])),
                       min_size=1, max_size=3))
def test_property_errors_never_contain_a_value_with_injected_whitespace(kind, data, spaces):
    value = data.draw(token_shaped if kind == "SLACK_BOT_TOKEN" else webhook_shaped)
    for at, space in spaces:
        at = min(at, len(value) - 1)
        value = value[:at] + space + value[at:]
    try:
        with pytest.raises(InvalidSecretError) as error:
            secrets.resolve(Secret(variable=kind, value=value))
        assert_named_not_shown(error.value, kind, value)
    finally:
        masking.forget()


class DrippingServer:
    """An HTTP server on 127.0.0.1 that answers 200 at once, then one byte of body every
    0.3 s: every socket read succeeds well inside botocore's read timeout, for 20 s."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopping = threading.Event()
        self.requests = 0
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        try:
            connection.recv(65536)
            self.requests += 1
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                               b"Content-Length: 100000\r\n\r\n")
            deadline = time.monotonic() + 20
            while not self.stopping.wait(0.3) and time.monotonic() < deadline:
                connection.sendall(b" ")
        except OSError:
            pass
        finally:
            connection.close()

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def test_a_dripping_ssm_endpoint_cannot_hold_the_invocation_past_the_deadline(monkeypatch):
    server = DrippingServer()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", server.url)
    secrets.ssm_client()  # made first (it reads the endpoint variable): only the read is timed
    started = time.monotonic()
    try:
        expected = rf"within {SSM_DEADLINE:g}s reading parameter '/bn/slow' \(from SLACK_BOT_TOKEN_PARAM\)"
        with pytest.raises(SecretError, match=expected):
            secrets.resolve(Secret(variable="SLACK_BOT_TOKEN_PARAM", parameter="/bn/slow"))
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert server.requests == 1  # it was the drip that took the time, not a refused connection
    assert SSM_DEADLINE - 0.5 <= elapsed <= SSM_DEADLINE + 1.5


@pytest.mark.parametrize("code, words", [
    ("ParameterNotFound", "ParameterNotFound: it does not exist in this account and region: create it as a "
                          "SecureString, or fix the name"),
    ("AccessDeniedException", "access denied: the stage's IAM policy needs ssm:GetParameter on it (and kms:Decrypt "
                              "if it uses a customer-managed key)"),
    ("InternalServerError", "SSM answered InternalServerError"),
])
def test_an_ssm_error_names_the_parameter_and_what_to_fix(code, words):
    from botocore.stub import Stubber

    from chalicelib.core import clients

    ssm = boto3.client("ssm", region_name="us-east-1")
    stubber = Stubber(ssm)
    stubber.add_client_error("get_parameter", service_error_code=code, service_message="arn:aws:ssm:x (stub)",
                             http_status_code=400)
    with clients.use_client("ssm", ssm), stubber, pytest.raises(SecretError) as error:
        secrets.resolve(Secret(variable="SLACK_BOT_TOKEN_PARAM", parameter="/bn/token"))
    assert str(error.value) == f"could not read parameter '/bn/token' (from SLACK_BOT_TOKEN_PARAM): {words}"
