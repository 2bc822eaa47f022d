"""A fork adds a handler the README way, and nothing else needs an edit.

On a copy of the project this does what "Add your own handler" says: a handler in app.py
(SUCCEEDED, only in the ``etl-*`` queues), one module of its own (the message builder), a
fixture and a test; then runs, in a subprocess and as a developer's first ``make test`` would
(which writes the new fixture's snapshots, to review and commit), the test files a new handler
could break, all of which must pass:

- tests/test_patterns.py: the facts about every handler and fixture (a new fixture reaches the
  handler it is for, the built-in handlers still reach what they did);
- tests/test_merge_template.py: the template made from app.py, through the real ``chalice
  package`` and cfn-lint (the new function gets its dead-letter path and alarm);
- the snapshots of the new fixture (one per handler it reaches: on_job_succeeded posts too);
- the fork's own test, which also says no shipped fixture reaches the new handler, so no
  shipped fixture's snapshot can change (the built-in handlers' reach of them is
  tests/test_patterns.py's table).

tests/test_deploy.py and tests/test_package.py are left out for time (each deploys or packages
the app once more); everything they compare per handler is derived from app.py the same way.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from chalicelib.reading.patterns import job_state_pattern
from tests.chalice_cli import WHEELS_VARIABLE, aws_env, copy_project, wheel_dir
from tests.conftest import load_event
from tools.eventbridge import EventBridgeRouter

# jobQueue is the queue's ARN in the event: a name prefix must be written as an ARN wildcard.
ETL_QUEUES = [{"wildcard": "arn:*:batch:*:*:job-queue/etl-*"}]

HANDLER = '''

# A fork's own handler: SUCCEEDED, only in the etl-* queues (jobQueue is an ARN in the event).
@app.on_cw_event(job_state_pattern("SUCCEEDED", jobQueue=[{"wildcard": "arn:*:batch:*:*:job-queue/etl-*"}]))
def on_etl_job_succeeded(event: CloudWatchEvent) -> None:
    notify(event, build_etl_succeeded_message)
'''
IMPORT = "from chalicelib.composing.etl_succeeded import build_etl_succeeded_message\n"

MODULE = '''"""A fork's message for ETL loads that succeeded: the standard message, with its own header."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.composing.messages import SlackMessage, job_state_parts
from chalicelib.reading.event import JobStateChange


def build_etl_succeeded_message(job: JobStateChange) -> SlackMessage:
    """The standard job message, headed as an ETL load."""
    return replace(job_state_parts(job), header=f":package: ETL load done: {job.job_name or job.job_id}").render()
'''

FORK_TEST = '''"""The fork's handler: what its pattern selects, its message, and the handler end to end."""

from chalice.test import Client

from app import app
from chalicelib.composing.etl_succeeded import build_etl_succeeded_message
from chalicelib.reading.event import JobStateChange
from tests.conftest import load_event
from tests.reach import check_reach, fixtures_reaching, reached
from tools.slack_standin import block_kit_errors


def test_pattern_selects_successes_in_etl_queues_only():
    check_reach("on_etl_job_succeeded", reaches=["etl_succeeded"],
                skips=["ec2_succeeded", "ec2_failed", "running", "array_child_index0_succeeded"])


def test_no_shipped_fixture_reaches_it():
    # So no shipped fixture's snapshot changes: it gets no second message.
    assert fixtures_reaching("on_etl_job_succeeded") == ["etl_succeeded"]


def test_on_job_succeeded_posts_its_own_message_too():
    assert set(reached()["etl_succeeded"]) == {"on_job_succeeded", "on_etl_job_succeeded"}


def test_message():
    payload = build_etl_succeeded_message(JobStateChange.from_event(load_event("etl_succeeded"))).to_dict()
    assert payload["blocks"][0]["text"]["text"] == ":package: ETL load done: etl-nightly-load"
    assert block_kit_errors(payload["blocks"]) == []


def test_handler_posts_it(webhook):
    with Client(app, stage_name="local") as client:
        client.lambda_.invoke("on_etl_job_succeeded", load_event("etl_succeeded"))
    [message] = webhook.messages
    assert "ETL load done" in str(message)
'''

JOB_ID = "6a1f0c52-3c7e-4d0b-9b1e-0c9d2f5e7a13"


def fork_fixture() -> dict[str, object]:
    """ec2_succeeded.json, as a job of the etl-nightly-queue with its own ids."""
    text = json.dumps(load_event("ec2_succeeded"))
    text = text.replace("445d5949-74c0-488f-891f-e7295b2f18a1", JOB_ID)
    text = text.replace("job-queue/mybatchjob", "job-queue/etl-nightly-queue")
    text = text.replace('"streamtest', '"etl-nightly-load')
    event: dict[str, object] = json.loads(text)
    event["id"] = "9d3c1e0a-7b2f-4c55-8e61-2f4a9b0c6d17"
    return event


def add_handler(project: Path) -> None:
    """The README's steps: fixture, handler and import in app.py, the module, the test."""
    (project / "tests" / "events" / "etl_succeeded.json").write_text(json.dumps(fork_fixture(), indent=2) + "\n")
    app_py = project / "app.py"
    lines = app_py.read_text().splitlines(keepends=True)
    last_import = max(i for i, line in enumerate(lines) if re.match(r"(from \S+ )?import ", line))
    lines.insert(last_import + 1, IMPORT)
    app_py.write_text("".join(lines) + HANDLER)
    (project / "chalicelib" / "composing" / "etl_succeeded.py").write_text(MODULE)
    (project / "tests" / "test_etl_succeeded.py").write_text(FORK_TEST)


def pytest_in(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest ARGS in ``project``, offline, as a developer runs it."""
    # As on a developer's laptop: no UPDATE_SNAPSHOTS, no CI (CI makes a missing snapshot fail).
    without_update = {k: v for k, v in aws_env().items() if k not in ("UPDATE_SNAPSHOTS", "CI")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=project,
                          env={**without_update, WHEELS_VARIABLE: str(wheel_dir()), **env}, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def snapshots(project: Path) -> dict[str, str]:
    folder = project / "tests" / "snapshots"
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*.json")}


def test_a_queue_name_prefix_is_written_as_an_arn_wildcard():
    etl = {**load_event("ec2_succeeded")}
    etl["detail"] = {**etl["detail"], "jobQueue": "arn:aws:batch:us-west-2:123456789012:job-queue/etl-nightly-queue"}
    with EventBridgeRouter({"arn": job_state_pattern("SUCCEEDED", jobQueue=ETL_QUEUES),
                            "name": job_state_pattern("SUCCEEDED", jobQueue=[{"prefix": "etl-"}])}) as bus:
        assert bus.matching(etl) == ["arn"]  # the name's prefix never matches: the event holds the ARN
        assert bus.matching(load_event("ec2_succeeded")) == []


def test_a_fork_adds_a_handler_and_edits_nothing_else(tmp_path):
    project = copy_project(tmp_path / "fork")
    add_handler(project)
    before = snapshots(project)
    # A developer's first run after the recipe (no CI variable): the new fixture's snapshots are
    # written, with a warning to review and commit them, and everything passes.
    new_snapshots = "tests/test_snapshots.py::test_each_handler_a_fixture_reaches_posts_its_snapshot[etl_succeeded]"
    result = pytest_in(project, "tests/test_patterns.py", "tests/test_merge_template.py", new_snapshots,
                       "tests/test_etl_succeeded.py")
    assert result.returncode == 0, result.stdout[-6000:]
    assert re.search(r"\b[1-9]\d* passed", result.stdout) and "failed" not in result.stdout, result.stdout[-2000:]
    assert "review it and commit it" in result.stdout
    after = snapshots(project)
    assert {k: v for k, v in after.items() if before.get(k) != v}.keys() == {
        "on_job_succeeded/etl_succeeded.json", "on_etl_job_succeeded/etl_succeeded.json"}
