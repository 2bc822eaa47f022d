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
    count, _ = precompile_package(out)
    assert count == 3  # app, chalicelib, chalicelib.core; not unused.py, which nothing imports
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
    assert precompile_package(out)[0] == 0
    assert (out / "deployment.zip").read_bytes() == once
