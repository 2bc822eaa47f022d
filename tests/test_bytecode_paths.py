"""The two ways to ship bytecode, on the real app: what a cold start from the zip still compiles.

A child process imports the app from the unpacked zip as Lambda would (``-S -B``: nothing but the
zip on its path, nothing written) and handles one FAILED event; an audit hook records every
``compile`` Python runs. After ``tools/precompile.py`` on a ``chalice package`` output: nothing
at all. After ``tools/precompile.py --for-deploy`` and the same packager ``chalice deploy`` runs:
only app.py and chalice itself, which the packager takes from their sources.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chalice_cli import copy_project, package
from tools.precompile import PrecompileError, bytecode_for_deploy, precompile_package
from tools.slack_standin import SlackStandIn

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "tests" / "events" / "ec2_failed.json"

_CHILD = """
import json, sys
compiled = []
sys.addaudithook(lambda event, args: compiled.append(args[1]) if event == "compile" and isinstance(args[1], str)
                 else None)
import app
class Context:
    function_name = "batch-notify-local-on_job_failed"
    memory_limit_in_mb = 256
    aws_request_id = "bytecode"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:batch-notify-local-on_job_failed"
    def get_remaining_time_in_millis(self):
        return 60000
app.on_job_failed(json.load(open(sys.argv[1])), Context())
print(json.dumps(sorted(set(compiled))))
"""


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


def compiled_at_cold_start(zip_path: Path, task: Path, slack: SlackStandIn) -> list[str]:
    """The files (relative to the unpacked zip) Python compiled importing the app and handling one event."""
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(task)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1",
           "SLACK_WEBHOOK_URL": slack.webhook_url, "LOG_TAIL_LINES": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    posted = len(slack.messages)
    result = subprocess.run([sys.executable, "-S", "-B", "-c", _CHILD, str(EVENT)], cwd=task, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert len(slack.wait_for_messages(posted + 1)) == posted + 1
    prefix = f"{task}{os.sep}"
    return sorted(f.removeprefix(prefix) for f in json.loads(result.stdout.splitlines()[-1]) if f.startswith(prefix))


def test_without_bytecode_a_cold_start_compiles_the_app_chalice_and_slack_sdk(
        tmp_path: Path, slack: SlackStandIn) -> None:
    # The measure the two other tests rely on: it sees compiling when there is some.
    out = package(copy_project(tmp_path / "project"), tmp_path / "out", stage="local")
    compiled = compiled_at_cold_start(out / "deployment.zip", tmp_path / "task", slack)
    assert {"app.py", "chalice/app.py", "chalicelib/notify.py", "slack_sdk/web/client.py"} <= set(compiled)


def test_a_precompiled_package_compiles_nothing(tmp_path: Path, slack: SlackStandIn) -> None:
    out = package(copy_project(tmp_path / "project"), tmp_path / "out", stage="local")
    precompile_package(out)
    assert compiled_at_cold_start(out / "deployment.zip", tmp_path / "task", slack) == []


def test_after_for_deploy_the_deploy_packager_ships_bytecode_for_all_but_app_and_chalice(
        tmp_path: Path, slack: SlackStandIn) -> None:
    project = copy_project(tmp_path / "project")
    wrote = bytecode_for_deploy(project)
    assert wrote.chalicelib == len(list((project / "chalicelib").rglob("*.py")))
    assert wrote.vendor > 0 and not list((project / "vendor").rglob("*.py"))  # bytecode only
    out = package(project, tmp_path / "out", stage="local")
    assert compiled_at_cold_start(out / "deployment.zip", tmp_path / "task", slack) == [
        "app.py", "chalice/__init__.py", "chalice/app.py"]


def test_for_deploy_bytecode_is_checked_so_a_changed_source_is_compiled_not_run_stale(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    bytecode_for_deploy(project)
    errors = project / "chalicelib" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nCHANGED_AFTER_PRECOMPILING = True\n")
    result = subprocess.run([sys.executable, "-B", "-c",
                             "import chalicelib.core.errors as e; print(e.CHANGED_AFTER_PRECOMPILING)"],
                            cwd=project, env={**os.environ, "PYTHONPATH": str(project)},
                            capture_output=True, text=True, check=False)
    assert result.stdout.split() == ["True"], result.stderr


def test_for_deploy_refuses_a_vendored_package_of_the_users_own(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    own = project / "vendor" / "slack_sdk" / "patched.py"
    own.parent.mkdir(parents=True)
    own.write_text("X = 1\n")
    with pytest.raises(PrecompileError, match=r"vendor/slack_sdk holds files of its own"):
        bytecode_for_deploy(project)
    assert own.read_text() == "X = 1\n"


def test_for_deploy_run_twice_leaves_no_stale_bytecode(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    bytecode_for_deploy(project)
    stale = project / "vendor" / "slack_sdk" / "__pycache__" / "gone.cpython-311.pyc"
    stale.write_bytes(b"")
    bytecode_for_deploy(project)
    assert not stale.exists()
