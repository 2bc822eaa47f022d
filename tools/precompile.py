"""Ship bytecode in a ``chalice package`` deployment zip, so a cold start compiles nothing.

    .venv/bin/python -m tools.precompile out/            # after: chalice package --stage prod out/

Lambda unpacks the zip into a read-only /var/task, so Python can never write a ``__pycache__``
there: without bytecode in the zip, every cold start compiles app.py, chalicelib/, chalice and
slack_sdk again. This adds ``__pycache__/<module>.<tag>.pyc`` next to the ``.py`` of every
module the app can import (app.py, every chalicelib module, and what they import of chalice and
slack_sdk: found by importing them from the unpacked zip, in a child process with nothing else
on its path; the rest of slack_sdk, never imported, would only make the zip bigger), compiled by
this interpreter, which must be the runtime's (Chalice gives the functions the
runtime of the Python that packaged them; this refuses any other, naming both).

The bytecode is *unchecked-hash* (PEP 552): Python uses it without reading or hashing the
source, and without looking at file times, which an unzip may not keep. That is right only for
code that never changes in place, as a deployment package: never use it in a working tree.
The zip is rewritten in place, its entries in the same order, each new one with a fixed date,
so the same package gives the same bytes.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

_FIXED_DATE = (2020, 1, 1, 0, 0, 0)


class PrecompileError(Exception):
    """The package cannot be given this interpreter's bytecode (wrong runtime, no zip)."""


def this_runtime() -> str:
    """The Lambda runtime name of this interpreter (``python3.11``)."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def package_runtimes(out: Path) -> set[str]:
    """The ``Runtime`` of every function in the package's SAM template (``sam.json``)."""
    template = out / "sam.json"
    if not template.is_file():
        raise PrecompileError(f"{template} not found: give the directory `chalice package` wrote")
    resources: dict[str, Any] = json.loads(template.read_text()).get("Resources", {})
    return {str(r.get("Properties", {}).get("Runtime")) for r in resources.values()
            if r.get("Type") == "AWS::Serverless::Function"}


def pyc_name(source: str) -> str:
    """Where Python looks for the bytecode of ``source`` (a path inside the zip)."""
    return importlib.util.cache_from_source(source).replace(os.sep, "/")


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` without its docstrings (a third of the bytecode; nothing reads them at run time).
    Unlike ``-OO``, asserts stay, and the line numbers in tracebacks stay true."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.copy_location(ast.Pass(), body[0])]
    return tree


def compiled(source: bytes, path: str) -> bytes:
    """The unchecked-hash .pyc of ``source``, docstrings left out."""
    from importlib import _bootstrap_external  # the one place CPython builds a hash-based pyc

    code = compile(_without_docstrings(ast.parse(source, path)), path, "exec", dont_inherit=True)
    return bytes(_bootstrap_external._code_to_hash_pyc(  # type: ignore[attr-defined]
        code, importlib.util.source_hash(source), checked=False))


# Run from the unpacked zip only (-S: no site-packages; -B: writes nothing): prints the files,
# relative to it, of every module that importing app.py and all of chalicelib loads.
_IMPORTED = """
import os, pkgutil, sys, importlib
root = os.path.abspath(sys.argv[1])
import app, chalicelib
for found in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(found.name)
for module in list(sys.modules.values()):
    path = os.path.abspath(getattr(module, "__file__", None) or "")
    if path.startswith(root + os.sep) and path.endswith(".py"):
        print(os.path.relpath(path, root).replace(os.sep, "/"))
"""


def imported_sources(zip_path: Path) -> set[str]:
    """The zip's ``.py`` files that importing the app and every chalicelib module loads."""
    with tempfile.TemporaryDirectory() as task:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(task)
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": task, "PYTHONDONTWRITEBYTECODE": "1"}
        result = subprocess.run([sys.executable, "-S", "-B", "-c", _IMPORTED, task], cwd=task, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise PrecompileError(f"importing the packaged app failed:\n{result.stderr[-2000:]}")
    return set(result.stdout.split())


def precompile_zip(zip_path: Path) -> tuple[int, int]:
    """Add bytecode for the modules the app imports from ``zip_path`` (rewritten in place); returns
    (modules compiled, new size in bytes)."""
    wanted = imported_sources(zip_path)
    count = 0
    with tempfile.NamedTemporaryFile(dir=zip_path.parent, delete=False, suffix=".zip") as tmp, \
            zipfile.ZipFile(zip_path) as old, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as new:
        names = set(old.namelist())
        for info in old.infolist():
            data = old.read(info)
            new.writestr(info, data)
            if info.filename not in wanted or pyc_name(info.filename) in names:
                continue
            code = compiled(data, info.filename)
            entry = zipfile.ZipInfo(pyc_name(info.filename), _FIXED_DATE)
            entry.external_attr = 0o644 << 16
            new.writestr(entry, code, zipfile.ZIP_DEFLATED, compresslevel=9)
            count += 1
    os.replace(tmp.name, zip_path)
    return count, zip_path.stat().st_size


def precompile_package(out: Path) -> tuple[int, int]:
    """Check the package's runtime is this interpreter's, then precompile its deployment.zip."""
    runtimes = package_runtimes(out)
    if runtimes != {this_runtime()}:
        raise PrecompileError(f"the package's functions run {', '.join(sorted(runtimes)) or 'no runtime'}, "
                              f"but this is {this_runtime()} ({sys.executable}): its bytecode would not load "
                              f"there. Package and precompile with the same Python.")
    zip_path = out / "deployment.zip"
    if not zip_path.is_file():
        raise PrecompileError(f"{zip_path} not found")
    return precompile_zip(zip_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the directory `chalice package` wrote")
    args = parser.parse_args(argv)
    try:
        count, size = precompile_package(args.out)
    except PrecompileError as error:
        print(f"precompile: {error}", file=sys.stderr)
        return 2
    print(f"precompile: {count} modules compiled for {this_runtime()}; deployment.zip is {size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
