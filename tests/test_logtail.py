"""Log tail: moto CloudWatch Logs for the happy and the missing cases, stubs for the rest.

Every failure mode must give a LogTail with a note, never an exception, and never take much
longer than the deadline.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber
from moto import mock_aws

from chalicelib.core import clients
from chalicelib.core.config import ConfigError, LogTailSettings, load_log_tail_settings, load_slack_settings
from chalicelib.reading import logtail
from chalicelib.reading.event import JobStateChange
from chalicelib.reading.logtail import MAX_LINE_SCAN, LogTail, fetch_log_tail
from tests.conftest import FAKE_AWS_KEY, FAKE_BOT_TOKEN, load_event
from tests.hostile_http import HostileServer, drip

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = LogTailSettings(lines=20, timeout=2.0)
# ec2_failed: default group, event region, its own stream.
GROUP, REGION, STREAM = "/aws/batch/job", "us-east-1", "nightly-etl/default/abeb2b9a53a1dc5d73f28f5ae029cd0c"


@pytest.fixture
def use_logs():
    """Hand the log tail a CloudWatch Logs client of the test's own (conftest resets the rest)."""
    with ExitStack() as stack:
        yield lambda fake: stack.enter_context(clients.use_client("logs", fake))


def job(name="ec2_failed"):
    return JobStateChange.from_event(load_event(name))


def make_stream(messages, group=GROUP, stream=STREAM, region=REGION):
    client = boto3.client("logs", region_name=region)
    with suppress(client.exceptions.ResourceAlreadyExistsException):
        client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000) - len(messages)
    if messages:
        client.put_log_events(logGroupName=group, logStreamName=stream,
                              logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


class _Raising:
    """A logs client whose every call raises ``error``."""

    def __init__(self, error):
        self.error = error
        self.calls = []

    def get_log_events(self, **kwargs):
        self.calls.append(kwargs)
        raise self.error


class _Slow:
    """A logs client that answers after ``seconds``: a hung connection, as the caller sees it."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.released = threading.Event()

    def get_log_events(self, **kwargs):
        self.released.wait(self.seconds)
        return {"events": [{"timestamp": 1, "message": "too late"}]}


@mock_aws
def test_the_newest_lines_newest_last():
    make_stream([f"2024-05-13 02:{i:02d}:00 INFO step {i}" for i in range(30)])
    tail = fetch_log_tail(job(), SETTINGS)
    assert len(tail.lines) == 20 and tail.note is None
    assert tail.lines[0].endswith("step 10") and tail.lines[-1].endswith("step 29")
    assert (tail.location.region, tail.location.group, tail.location.stream) == (REGION, GROUP, STREAM)


@mock_aws
def test_the_configured_count_is_the_limit():
    make_stream([f"line {i}" for i in range(10)])
    assert fetch_log_tail(job(), LogTailSettings(lines=3)).lines == ("line 7", "line 8", "line 9")


@mock_aws
def test_an_empty_stream_says_so():
    make_stream([])
    tail = fetch_log_tail(job(), SETTINGS)
    assert tail.lines == () and tail.note == "log tail: the log stream has no events"


@mock_aws
def test_a_missing_stream_says_not_found():
    make_stream(["other job"], stream="nightly-etl/default/someoneelse")
    tail = fetch_log_tail(job(), SETTINGS)
    assert tail.lines == ()
    # moto words a missing stream like a missing group; AWS says "log stream".
    assert tail.note in ("log tail unavailable: log stream not found",
                         "log tail unavailable: log group or stream not found")


@mock_aws
def test_a_missing_group_says_not_found():
    tail = fetch_log_tail(job(), SETTINGS)
    assert tail.lines == () and tail.note == "log tail unavailable: log group or stream not found"


def test_aws_wording_of_a_missing_stream_is_used(use_logs):
    error = ClientError({"Error": {"Code": "ResourceNotFoundException",
                                   "Message": "The specified log stream does not exist."}},
                        "GetLogEvents")
    use_logs(_Raising(error))
    assert fetch_log_tail(job(), SETTINGS).note == "log tail unavailable: log stream not found"


def _stubbed(use_logs, **error):
    client = boto3.client("logs", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("get_log_events", **error)
    stubber.activate()
    use_logs(client)


def test_access_denied(use_logs):
    _stubbed(use_logs, service_error_code="AccessDeniedException", http_status_code=400,
             service_message="User: arn:aws:sts::123456789012:assumed-role/batch-notify-prod/x is not authorized")
    tail = fetch_log_tail(job(), SETTINGS)
    assert tail == LogTail(note="log tail unavailable: access denied (logs:GetLogEvents)", location=tail.location)


@pytest.mark.parametrize("code, note", [
    ("ThrottlingException", "throttled by CloudWatch Logs"),
    ("ServiceUnavailableException", "CloudWatch Logs answered ServiceUnavailableException"),
])
def test_other_aws_errors(use_logs, code, note):
    _stubbed(use_logs, service_error_code=code, http_status_code=400)
    assert fetch_log_tail(job(), SETTINGS).note == f"log tail unavailable: {note}"


@pytest.mark.parametrize("error, note", [
    (EndpointConnectionError(endpoint_url="https://logs.us-east-1.amazonaws.com/"),
     "could not reach CloudWatch Logs (EndpointConnectionError)"),
    (RuntimeError("surprise"), "unexpected error (RuntimeError)"),
])
def test_any_error_becomes_a_note(use_logs, error, note):
    use_logs(_Raising(error))
    assert fetch_log_tail(job(), SETTINGS).note == f"log tail unavailable: {note}"


def test_no_credentials_says_so(use_logs):
    use_logs(_Raising(NoCredentialsError()))
    assert fetch_log_tail(job(), SETTINGS).note == "log tail unavailable: no AWS credentials"


def test_a_slow_call_is_abandoned_at_the_deadline(use_logs):
    slow = use_logs(_Slow(10))
    started = time.monotonic()
    tail = fetch_log_tail(job(), LogTailSettings(lines=20, timeout=0.5))
    elapsed = time.monotonic() - started
    slow.released.set()
    assert 0.5 <= elapsed < 0.5 + 1.0  # slack for a loaded machine; unbounded would be 10 s
    assert tail.lines == () and tail.note == "log tail unavailable: CloudWatch Logs did not answer within 0.5s"


def test_a_server_that_never_answers_is_bounded_over_real_http(monkeypatch):
    """botocore against a socket that accepts and stays silent: the deadline still holds."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", f"http://127.0.0.1:{server.getsockname()[1]}")
    try:
        started = time.monotonic()
        tail = fetch_log_tail(job(), LogTailSettings(lines=20, timeout=1.0))
        assert time.monotonic() - started < 1.0 + 1.0  # slack for a loaded machine
        assert tail.note == "log tail unavailable: CloudWatch Logs did not answer within 1s"
    finally:
        server.close()


def test_a_dripping_server_cannot_hold_the_tail_past_its_deadline(monkeypatch):
    """One byte every half second passes every per-read timeout; the deadline is over the whole read."""
    with HostileServer(drip("body", every=0.5, count=40)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", server.url)
        started = time.monotonic()
        tail = fetch_log_tail(job(), LogTailSettings(lines=20, timeout=1.0))
        assert time.monotonic() - started < 1.0 + 1.0  # slack for a loaded machine; the drip takes 20 s
        assert len(server.requests) == 1
    assert tail.lines == () and tail.note == "log tail unavailable: CloudWatch Logs did not answer within 1s"


def test_the_client_makes_one_attempt_with_short_timeouts():
    client = logtail.logs_client("eu-west-1", 2.0)
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2.0, 2.0)
    assert config.retries["total_max_attempts"] == 1
    assert client.meta.region_name == "eu-west-1"
    assert logtail.logs_client("eu-west-1", 2.0) is client  # once per container and region


@mock_aws
def test_secrets_are_masked_before_leaving_the_fetch():
    make_stream([
        f"2024-05-13 02:14:10 INFO connecting as {FAKE_AWS_KEY}",
        "2024-05-13 02:14:11 DEBUG dsn=postgresql://etl:hunter2@warehouse.internal:5432/dw",
        f"2024-05-13 02:14:12 ERROR slack post failed with {FAKE_BOT_TOKEN[:-8]}",
        '2024-05-13 02:14:13 ERROR {"password": "hunter2", "user": "etl"}',
    ])
    lines = fetch_log_tail(job(), SETTINGS).lines
    joined = "\n".join(lines)
    assert "IOSFODNN7EXAMPLE" not in joined and "hunter2" not in joined and "AbCdEfGhIjKlMnOp" not in joined
    assert lines[0].endswith("connecting as AKIA[masked]")


@mock_aws
def test_a_very_long_line_is_cut_before_masking():
    make_stream(["ERROR payload=" + "x" * 200_000, "last"])
    tail = fetch_log_tail(job(), SETTINGS)
    assert len(tail.lines[0]) == MAX_LINE_SCAN and tail.lines[-1] == "last"


@mock_aws
def test_custom_log_group_is_read_in_the_logs_region_not_the_event_region():
    # custom_log_group_failed: event in eu-central-1, awslogs-group /batch/etl#nightly in eu-west-1.
    location = job("custom_log_group_failed")
    stream = location.log_stream_name
    make_stream(["from eu-west-1"], group="/batch/etl#nightly", stream=stream, region="eu-west-1")
    make_stream(["from eu-central-1"], group="/batch/etl#nightly", stream=stream, region="eu-central-1")
    tail = fetch_log_tail(location, SETTINGS)
    assert tail.lines == ("from eu-west-1",)
    assert (tail.location.region, tail.location.group) == ("eu-west-1", "/batch/etl#nightly")
    assert clients.made() == (("logs", "eu-west-1"),)


@pytest.mark.parametrize("name", ["ec2_succeeded", "never_started_failed", "eks_failed", "array_parent_failed",
                                  "splunk_log_driver_failed", "detail_missing_fields"])
def test_nothing_to_fetch_means_no_call_and_no_note(name, use_logs):
    refusing = use_logs(_Raising(AssertionError("no call expected")))
    assert fetch_log_tail(job(name), SETTINGS) == LogTail()
    assert refusing.calls == []


def test_turned_off_means_no_call(use_logs):
    refusing = use_logs(_Raising(AssertionError("no call expected")))
    assert fetch_log_tail(job(), LogTailSettings(lines=0)) == LogTail()
    assert refusing.calls == []


def test_a_region_that_is_not_one_is_never_called(use_logs):
    event = load_event("custom_log_group_failed")
    event["detail"]["container"]["logConfiguration"]["options"]["awslogs-region"] = "evil.example.com/x"
    refusing = use_logs(_Raising(AssertionError("no call expected")))
    tail = fetch_log_tail(JobStateChange.from_event(event), SETTINGS)
    assert tail.note.startswith("log tail unavailable: 'evil.example.com/x' is not an AWS region")
    assert refusing.calls == []


# -- settings --------------------------------------------------------------------------------------
def test_settings_defaults_and_values():
    assert load_log_tail_settings({}) == LogTailSettings(lines=20, timeout=2.0)
    assert load_log_tail_settings({"LOG_TAIL_LINES": "0"}).enabled is False
    env = {"LOG_TAIL_LINES": " 5 ", "LOG_TAIL_TIMEOUT_SECONDS": "0.5"}
    assert load_log_tail_settings(env) == LogTailSettings(5, 0.5)


@pytest.mark.parametrize("env, variable", [
    ({"LOG_TAIL_LINES": "twenty"}, "LOG_TAIL_LINES"),
    ({"LOG_TAIL_LINES": "-1"}, "LOG_TAIL_LINES"),
    ({"LOG_TAIL_LINES": "1000"}, "LOG_TAIL_LINES"),
    ({"LOG_TAIL_TIMEOUT_SECONDS": "soon"}, "LOG_TAIL_TIMEOUT_SECONDS"),
    ({"LOG_TAIL_TIMEOUT_SECONDS": "0"}, "LOG_TAIL_TIMEOUT_SECONDS"),
    ({"LOG_TAIL_TIMEOUT_SECONDS": "30"}, "LOG_TAIL_TIMEOUT_SECONDS"),
    ({"LOG_TAIL_TIMEOUT_SECONDS": "nan"}, "LOG_TAIL_TIMEOUT_SECONDS"),
])
def test_bad_settings_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        load_log_tail_settings(env)


@pytest.mark.parametrize("stage, lines", [("local", 0), ("dev", 20), ("prod", 20)])
def test_shipped_stages(stage, lines):
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env = {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}
    settings = load_log_tail_settings(env)
    # local is off: `make demo` and the tests never call AWS.
    assert settings.lines == lines
    if stage != "local":
        slack = load_slack_settings(env)
        timeout = config["stages"][stage].get("lambda_timeout", config["lambda_timeout"])
        assert settings.timeout + slack.delivery_budget + slack.request_timeout + 10 <= timeout


# -- multi-container (ecsProperties) jobs ------------------------------------------------------
@mock_aws
def test_a_multi_container_job_tails_its_essential_containers_stream():
    # ecs_sidecar_failed: the OOM-killed, non-essential telemetry-agent is listed first and has
    # its own group; the tail is render's, the essential container whose exit failed the job.
    task = "6c8e0a2b4d6f4e1a9b3c5d7e9f1a3b52"
    make_stream(["agent: heap exhausted"], group="/batch/telemetry", stream=f"telemetry/telemetry-agent/{task}",
                region="eu-west-1")
    make_stream(["frame 0412 rendered", "ERROR missing texture tex/ep07/sc112/hull.exr"], group="/batch/render",
                stream=f"render/render/{task}", region="eu-west-1")
    tail = fetch_log_tail(job("ecs_sidecar_failed"), SETTINGS)
    assert tail.lines == ("frame 0412 rendered", "ERROR missing texture tex/ep07/sc112/hull.exr")
    assert (tail.location.group, tail.location.stream) == ("/batch/render", f"render/render/{task}")


@mock_aws
def test_a_retried_multi_container_job_tails_the_last_attempts_app_not_the_sidecar():
    make_stream(["sidecar: replaying sensors"], stream="drive-sim/sidecar/9b1e4d7c0a2f4e3b8c6d5a4f1e2b3c9d")
    make_stream(["attempt 1 output"], stream="drive-sim/app/3f8a61c2d94e4b07a5e1c6d2b8f90a17")
    make_stream(["step 118/400", "AssertionError: ego vehicle left the lane"],
                stream="drive-sim/app/9b1e4d7c0a2f4e3b8c6d5a4f1e2b3c9d")
    tail = fetch_log_tail(job("ecs_multicontainer_failed"), SETTINGS)
    assert tail.lines == ("step 118/400", "AssertionError: ego vehicle left the lane")


@mock_aws
def test_a_log_region_with_a_trailing_newline_is_never_called():
    # "us-east-1\n" passed re.match("^...$"); the log tail must not sign a request for it.
    event = load_event("custom_log_group_failed")
    event["detail"]["container"]["logConfiguration"]["options"]["awslogs-region"] = "us-east-1\n"
    tail = fetch_log_tail(JobStateChange.from_event(event), SETTINGS)
    assert tail == LogTail(note="log tail unavailable: 'us-east-1\\n' is not an AWS region", location=tail.location)
    assert clients.made() == ()
