"""What a cold start loads: each handler's first event imports only the modules its path needs.

A Lambda function runs one handler, and its cold start imports app.py and whatever that first event
reaches. Modules for other paths (conversations and storms need the bot token and the state table;
dedup claims and snoozes the table; the log tail reader needs LOG_TAIL_LINES; service jobs have
their own handlers; clicks and schedules their own functions) are imported where they are used, so
the local stage's FAILED event, the one bench/cold_start.py measures, never loads them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.slack_standin import SlackStandIn

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "tests" / "events"

# Not on a webhook stage's container-job path: each is imported by the path that needs it.
ELSEWHERE = (
    "chalicelib.interactions", "chalicelib.scheduled",  # the click route, the schedules
    "chalicelib.delivering.conversation", "chalicelib.delivering.storm_posting",  # bot token + table
    "chalicelib.deciding.storms", "chalicelib.deciding.acks", "chalicelib.deciding.job_messages",
    "chalicelib.deciding.dedup", "chalicelib.deciding.snoozes",  # the state table
    "chalicelib.composing.conversation", "chalicelib.composing.storm_message",
    "chalicelib.reading.logtail", "chalicelib.reading.redact",  # the log tail
    "chalicelib.reading.service_event", "chalicelib.composing.service_job_message",  # service jobs
    "chalicelib.deciding.resubmit", "chalicelib.reading.job_description", "chalicelib.reading.batch_api",
    "boto3", "botocore",
)

_CHILD = """
import json, sys
import app
class Context:
    function_name = "batch-notify-local-{handler}"
    memory_limit_in_mb = 256
    aws_request_id = "cold-path"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:batch-notify-local-{handler}"
    def get_remaining_time_in_millis(self):
        return 60000
app.{handler}(json.load(open(sys.argv[1])), Context())
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(handler: str, fixture: str, slack: SlackStandIn) -> set[str]:
    """The modules a fresh interpreter holds after importing app.py and handling one event, on
    the local stage (a webhook, no table, no log tail)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SLACK_", "LOG_TAIL_"))}
    env.update(SLACK_WEBHOOK_URL=slack.webhook_url, LOG_TAIL_LINES="0", AWS_ENDPOINT_URL="http://127.0.0.1:9",
               AWS_DEFAULT_REGION="us-east-1", PYTHONDONTWRITEBYTECODE="1")
    posted = len(slack.messages)
    result = subprocess.run([sys.executable, "-c", _CHILD.format(handler=handler), str(EVENTS / f"{fixture}.json")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert len(slack.wait_for_messages(posted + 1)) == posted + 1  # the event really was handled
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def under(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    """The ``modules`` that are one of ``prefixes`` or inside one of them."""
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in prefixes))


@pytest.fixture(scope="module")
def slack() -> SlackStandIn:
    with SlackStandIn() as standin:
        yield standin  # type: ignore[misc]


def test_a_failed_container_job_on_the_webhook_stage_loads_only_its_path(slack: SlackStandIn) -> None:
    modules = loaded_by("on_job_failed", "ec2_failed", slack)
    assert under(modules, ELSEWHERE) == []
    assert {"chalicelib.composing.failure_message", "chalicelib.deciding.diagnosis"} <= modules


def test_a_service_job_event_loads_its_own_view_and_message(slack: SlackStandIn) -> None:
    # The other side of the first test: the same check sees what a path does load.
    modules = loaded_by("on_service_job_failed", "service_failed", slack)
    assert {"chalicelib.reading.service_event", "chalicelib.composing.service_job_message"} <= modules
    assert under(modules, ("chalicelib.interactions", "chalicelib.scheduled", "chalicelib.deciding.storms",
                           "boto3")) == []
