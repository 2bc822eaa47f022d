"""tools/precompile.py: bytecode shipped in the deployment zip is what a cold start runs."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tools.precompile import PrecompileError, precompile_package, pyc_name, this_runtime


def fake_package(out: Path, runtime: str) -> Path:
    """A directory shaped like `chalice package`'s: sam.json and deployment.zip (app + chalicelib)."""
    out.mkdir()
    resources = {"F": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": runtime}}}
    (out / "sam.json").write_text(json.dumps({"Resources": resources}))
    with zipfile.ZipFile(out / "deployment.zip", "w") as archive:
        archive.writestr("app.py", '"""The app."""\nimport chalicelib.core\nWHICH = "compiled"\n')
        archive.writestr("chalicelib/__init__.py", "")
        archive.writestr("chalicelib/core.py", "def f():\n    '''doc'''\n    assert True\n    return 1\n")
        archive.writestr("unused.py", "X = 1\n")
    return out


def test_the_modules_the_app_imports_get_bytecode_python_runs_without_the_source(tmp_path: Path) -> None:
    out = fake_package(tmp_path / "out", this_runtime())
    # app, chalicelib, chalicelib.core; not unused.py, which nothing imports
    assert precompile_package(out).compiled == 3
    task = tmp_path / "task"
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        names = archive.namelist()
        archive.extractall(task)
    assert pyc_name("unused.py") not in names and pyc_name("chalicelib/core.py") in names
    # Change the source after precompiling: unchecked-hash bytecode is used as shipped, unread.
    (task / "app.py").write_text('import chalicelib.core\nWHICH = "source"\n')
    result = subprocess.run([sys.executable, "-S", "-B", "-c",
                             "import app, chalicelib.core as c; print(app.WHICH, c.f(), c.f.__doc__)"],
                            cwd=task, env={"PYTHONPATH": str(task)}, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["compiled", "1", "None"]


def test_a_package_for_another_runtime_is_refused_naming_both(tmp_path: Path) -> None:
    out = fake_package(tmp_path / "out", "python3.9")
    before = (out / "deployment.zip").read_bytes()
    with pytest.raises(PrecompileError, match=rf"python3\.9.*{this_runtime()}"):
        precompile_package(out)
    assert (out / "deployment.zip").read_bytes() == before


def test_precompiling_twice_adds_nothing_and_gives_the_same_bytes(tmp_path: Path) -> None:
    out = fake_package(tmp_path / "out", this_runtime())
    precompile_package(out)
    once = (out / "deployment.zip").read_bytes()
    assert precompile_package(out).compiled == 0
    assert (out / "deployment.zip").read_bytes() == once


def test_modules_that_cannot_be_imported_on_lambda_are_left_out_and_nothing_else(tmp_path: Path) -> None:
    out = fake_package(tmp_path / "out", this_runtime())
    with zipfile.ZipFile(out / "deployment.zip", "a") as archive:
        archive.writestr("slack_sdk/__init__.py", "")
        archive.writestr("slack_sdk/plain.py", "import json\n")
        archive.writestr("slack_sdk/async_client.py", "import aiohttp\n")  # not in the zip, not on Lambda
        archive.writestr("slack_sdk/s3_store.py", "import botocore\n")  # Lambda's runtime has botocore
        archive.writestr("slack_sdk/uses_plain.py", "from slack_sdk import plain\n")
        archive.writestr("slack_sdk/socket_mode/__init__.py", "import websockets\n")
        archive.writestr("slack_sdk/socket_mode/client.py", "X = 1\n")
        archive.writestr("slack_sdk/__main__.py", "raise SystemExit('a command line ran')\n")
        archive.writestr("slack/__init__.py", "import aiohttp\n")
        archive.writestr("slack/web.py", "X = 1\n")
        archive.writestr("other/__init__.py", "")
        archive.writestr("other/async_thing.py", "import aiohttp\n")  # not a pruned package: kept
    done = precompile_package(out)
    names = set(zipfile.ZipFile(out / "deployment.zip").namelist())
    assert done.dropped == 5
    assert not names & {"slack_sdk/async_client.py", "slack_sdk/socket_mode/__init__.py",
                        "slack_sdk/socket_mode/client.py", "slack/__init__.py", "slack/web.py"}
    assert {"slack_sdk/__init__.py", "slack_sdk/plain.py", "slack_sdk/s3_store.py", "slack_sdk/uses_plain.py",
            "slack_sdk/__main__.py", "other/async_thing.py", "app.py", "chalicelib/core.py"} <= names


def test_leaving_a_module_out_changes_nothing_the_app_can_see(tmp_path: Path) -> None:
    out = fake_package(tmp_path / "out", this_runtime())
    with zipfile.ZipFile(out / "deployment.zip", "a") as archive:
        archive.writestr("slack_sdk/__init__.py", "")
        archive.writestr("slack_sdk/maybe.py", "import aiohttp\n")
        # The app's optional import fails the same way with the module left out.
        archive.writestr("chalicelib/optional.py", "try:\n    import slack_sdk.maybe\n    HAS = True\n"
                                                   "except ImportError:\n    HAS = False\n")
    assert precompile_package(out).dropped == 1
    task = tmp_path / "task"
    zipfile.ZipFile(out / "deployment.zip").extractall(task)
    result = subprocess.run([sys.executable, "-S", "-B", "-c", "import chalicelib.optional as o; print(o.HAS)"],
                            cwd=task, env={"PYTHONPATH": str(task)}, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False"]


def test_the_zip_keeps_its_permissions(tmp_path: Path) -> None:
    out = fake_package(tmp_path / "out", this_runtime())
    (out / "deployment.zip").chmod(0o644)
    precompile_package(out)
    assert (out / "deployment.zip").stat().st_mode & 0o777 == 0o644
