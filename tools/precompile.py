"""Ship bytecode with the functions, so a cold start compiles nothing (or nearly).

    .venv/bin/python -m tools.precompile out/            # after: chalice package --stage prod out/
    .venv/bin/python -m tools.precompile --for-deploy .  # before: chalice deploy --stage prod

Lambda unpacks the zip into a read-only /var/task, so Python can never write a ``__pycache__``
there: without bytecode in the zip, every cold start compiles app.py, chalicelib/, chalice and
slack_sdk again.

After ``chalice package``: this adds ``__pycache__/<module>.<tag>.pyc`` next to the ``.py`` of
every module the app can import (app.py, every chalicelib module, and what they import of chalice
and slack_sdk: found by importing them from the unpacked zip, in a child process with nothing
else on its path). The bytecode is *unchecked-hash* (PEP 552): Python uses it without reading or
hashing the source, and without looking at file times, which an unzip may not keep. That is right
only for code that never changes in place, as a deployment package: never use it in a working
tree. It is compiled without docstrings (classes keep theirs) and without column positions
(``-X no_debug_ranges``): tracebacks keep their lines and lose the ``^^^`` markers. The slack_sdk
modules that cannot be imported on Lambda (they need aiohttp, websockets or sqlalchemy, which the
zip does not hold) are left out. The zip is rewritten in place, its entries in the same order,
each new one with a fixed date, so the same package gives the same bytes.

Before ``chalice deploy`` (``--for-deploy``), which has no step between building its zip and
uploading it: *checked-hash* bytecode where its packager picks it up (see
:func:`bytecode_for_deploy`). Everything but app.py and chalice itself.

Either way the bytecode is this interpreter's, which must be the runtime's: Chalice gives the
functions the runtime of the Python that packages or deploys them; a package for another runtime
is refused, naming both.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

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
    """``tree`` without its modules' and functions' docstrings (a third of the bytecode; nothing
    reads them at run time). Unlike ``-OO``, asserts stay, and the line numbers in tracebacks stay
    true. Classes keep theirs: ``@dataclass`` computes a signature for a class without one, which
    costs more at import than the docstring does."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.copy_location(ast.Pass(), body[0])]
    return tree


def compiled(source: bytes, path: str, *, checked: bool = False) -> bytes:
    """The hash-based .pyc of ``source`` (unchecked unless ``checked``), docstrings left out
    (column positions too when this interpreter runs with ``-X no_debug_ranges``, as
    :func:`compile_sources` runs it)."""
    from importlib import _bootstrap_external  # the one place CPython builds a hash-based pyc

    code = compile(_without_docstrings(ast.parse(source, path)), path, "exec", dont_inherit=True)
    return bytes(_bootstrap_external._code_to_hash_pyc(  # type: ignore[attr-defined]
        code, importlib.util.source_hash(source), checked=checked))


def compile_sources(task: Path, names: Iterable[str], *, checked: bool = False) -> dict[str, bytes]:
    """The .pyc of each of ``names`` (paths under ``task``), compiled in a child interpreter
    started with ``-X no_debug_ranges``: the code keeps its line numbers but not the column
    positions that only draw a traceback's ``^^^`` markers, which are a third of the bytecode."""
    wanted = sorted(names)
    with tempfile.TemporaryDirectory() as into:
        result = subprocess.run([sys.executable, "-X", "no_debug_ranges", "-S", "-B", __file__,
                                 "--compile-into", into, "checked" if checked else "unchecked", str(task), *wanted],
                                env={"PATH": os.environ.get("PATH", "")}, capture_output=True, text=True,
                                timeout=300, check=False)
        if result.returncode != 0:
            raise PrecompileError(f"compiling the package's modules failed:\n{result.stderr[-2000:]}")
        return {name: (Path(into) / pyc_name(name)).read_bytes() for name in wanted}


def _compile_into(into: Path, mode: str, task: Path, names: list[str]) -> None:
    """The child's side of :func:`compile_sources`: write each pyc under ``into``."""
    for name in names:
        target = into / pyc_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(compiled((task / name).read_bytes(), name, checked=mode == "checked"))


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


# The packages Lambda's Python runtime provides beside /var/task: importable there, not in the zip.
RUNTIME_PACKAGES = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})
# Packages whose modules are tried one by one; a module that cannot be imported from the package
# (a dependency of its own is missing: slack_sdk's asyncio clients need aiohttp, its Socket Mode
# adapters websockets) is dropped from the zip. Only these: importing every module of an unknown
# package could run code with side effects.
PRUNED_PACKAGES = ("slack_sdk", "slack")

# Run from the unpacked zip only (-S -B): prints each module of the given packages whose import
# raises ModuleNotFoundError for a top-level package that neither the zip nor the runtime holds;
# any other failure keeps the module (Lambda's runtime may have what it needs).
_UNIMPORTABLE = """
import importlib, os, pkgutil, sys, warnings
warnings.simplefilter("ignore")  # slack's deprecation notices
root, runtime = os.path.abspath(sys.argv[1]), set(sys.argv[2].split(","))
def missing(error):
    top = (error.name or "").partition(".")[0]
    return bool(top) and top not in runtime and not os.path.exists(os.path.join(root, top))
def tried(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if missing(error):
            print(name)
        return False
    except Exception:  # broken some other way, or needing what the runtime has: kept as it is
        return False
    return True
for top in sys.argv[3:]:
    if not os.path.isdir(os.path.join(root, top)) or not tried(top):
        continue
    for found in pkgutil.walk_packages(importlib.import_module(top).__path__, top + ".", onerror=lambda _: None):
        if found.name.rpartition(".")[2] != "__main__":  # never run a package's command line
            tried(found.name)
"""


def unimportable_modules(task: Path, packages: Iterable[str] = PRUNED_PACKAGES) -> set[str]:
    """The modules of ``packages`` under ``task`` (the unpacked zip) that cannot be imported on
    Lambda: each raises ModuleNotFoundError for a package neither the zip nor the runtime has."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-S", "-B", "-c", _UNIMPORTABLE, str(task),
                             ",".join(sorted(RUNTIME_PACKAGES)), *packages],
                            cwd=task, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise PrecompileError(f"trying the package's modules failed:\n{result.stderr[-2000:]}")
    return set(result.stdout.split())


def module_files(name: str, names: Iterable[str]) -> set[str]:
    """The zip entries of module ``name``: its ``.py``, or its whole package directory."""
    path = name.replace(".", "/")
    return {entry for entry in names if entry == f"{path}.py" or entry.startswith(f"{path}/")}


def imported_sources(task: Path) -> set[str]:
    """The ``.py`` files under ``task`` (the unpacked zip) that importing the app and every
    chalicelib module loads."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-S", "-B", "-c", _IMPORTED, str(task)], cwd=task, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise PrecompileError(f"importing the packaged app failed:\n{result.stderr[-2000:]}")
    return set(result.stdout.split())


class Precompiled(NamedTuple):
    """What :func:`precompile_zip` did."""

    compiled: int  # modules given bytecode
    dropped: int  # files of modules that cannot be imported on Lambda, left out
    size: int  # the new zip's size in bytes


def precompile_zip(zip_path: Path) -> Precompiled:
    """Add bytecode for the modules the app imports from ``zip_path``, and leave out the modules
    that cannot be imported there (:func:`unimportable_modules`); the zip is rewritten in place."""
    with tempfile.TemporaryDirectory() as task:
        with zipfile.ZipFile(zip_path) as archive:
            names = set(archive.namelist())
            archive.extractall(task)
        imported = imported_sources(Path(task))
        bytecode = compile_sources(Path(task), {name for name in imported if pyc_name(name) not in names})
        dropped = {entry for module in unimportable_modules(Path(task)) for entry in module_files(module, names)}
    if dropped & imported:  # the app imported it, so it can be imported: never drop such a file
        raise PrecompileError(f"would drop modules the app imports: {', '.join(sorted(dropped & imported))}")
    mode = zip_path.stat().st_mode & 0o777
    with tempfile.NamedTemporaryFile(dir=zip_path.parent, delete=False, suffix=".zip") as tmp, \
            zipfile.ZipFile(zip_path) as old, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename in dropped:
                continue
            new.writestr(info, old.read(info))
            if info.filename not in bytecode:
                continue
            entry = zipfile.ZipInfo(pyc_name(info.filename), _FIXED_DATE)
            entry.external_attr = 0o644 << 16
            new.writestr(entry, bytecode[info.filename], zipfile.ZIP_DEFLATED, compresslevel=9)
    os.chmod(tmp.name, mode)  # the zip keeps its permissions (a temporary file's are 0600)
    os.replace(tmp.name, zip_path)
    return Precompiled(len(bytecode), len(dropped), zip_path.stat().st_size)


def precompile_package(out: Path) -> Precompiled:
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


# Run in the project with the Python that deploys it (-B: writes nothing): prints, as JSON, the
# file of every module that importing app.py and all of chalicelib loads.
_IMPORTED_HERE = """
import importlib, json, pkgutil, sys
import app, chalicelib
for found in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(found.name)
print(json.dumps(sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})))
"""


class ForDeploy(NamedTuple):
    """What :func:`bytecode_for_deploy` wrote."""

    chalicelib: int  # checked .pyc under chalicelib/**/__pycache__/
    vendor: int  # checked .pyc under vendor/<package>/**/__pycache__/


def _distribution(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503's normalized name


def shipped_packages(project: Path) -> set[str]:
    """The top-level packages of the distributions ``requirements.txt`` names: what Chalice
    pip-installs into the zip (for this Python, as installed here)."""
    from importlib.metadata import packages_distributions

    wanted = set()
    for line in (project / "requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement and not requirement.startswith("-"):
            wanted.add(_distribution(re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]))
    return {top for top, dists in packages_distributions().items() if any(_distribution(d) in wanted for d in dists)}


def _clear_vendored_bytecode(vendor: Path, top: str) -> None:
    """Remove what an earlier run wrote for ``top``; refuse a vendor/<top> holding other files."""
    folder = vendor / top
    if not folder.exists():
        return
    own = [p for p in folder.rglob("*") if p.is_file() and p.parent.name != "__pycache__"]
    if own:
        raise PrecompileError(f"{folder} holds files of its own ({own[0].relative_to(vendor)}): Chalice zips vendor/ "
                              f"as it is, and this only writes bytecode there. Move them, or leave {top} out.")
    import shutil

    shutil.rmtree(folder)


def bytecode_for_deploy(project: Path) -> ForDeploy:
    """Write *checked-hash* bytecode (PEP 552) where ``chalice deploy`` zips it: beside
    chalicelib's sources (Chalice zips chalicelib/ as it is on disk, ``__pycache__`` included), and
    for the modules it imports of the packages requirements.txt names, under ``vendor/`` (whose
    contents Chalice adds at the top of the zip, beside the packages it pip-installed).

    Checked: Python hashes the source first and uses the bytecode only if it matches, so a
    changed file, or a package that Chalice installs at another version than this venv's, is
    compiled as before, never run stale. chalicelib's keeps its docstrings and column positions:
    the laptop's Python uses it too. Not covered: app.py and chalice itself, which the packager
    takes from their sources alone."""
    import py_compile
    import sysconfig

    result = subprocess.run([sys.executable, "-B", "-c", _IMPORTED_HERE], cwd=project, capture_output=True,
                            text=True, timeout=120, check=False,
                            env={**os.environ, "PYTHONPATH": str(project), "PYTHONDONTWRITEBYTECODE": "1"})
    if result.returncode != 0:
        raise PrecompileError(f"importing the app failed:\n{result.stderr[-2000:]}")
    files = [Path(f).resolve() for f in json.loads(result.stdout.splitlines()[-1]) if f.endswith(".py")]
    library = (project / "chalicelib").resolve()
    roots = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    shipped = shipped_packages(project) - {"chalice"}  # Chalice replaces chalice/ at every deploy
    count = 0
    vendored: dict[Path, list[str]] = {}
    for path in files:
        if path.is_relative_to(library):
            py_compile.compile(str(path), cfile=importlib.util.cache_from_source(str(path)), doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            count += 1
            continue
        for root in roots:
            if path.is_relative_to(root):
                relative = path.relative_to(root).as_posix()
                if relative.split("/", 1)[0].removesuffix(".py") in shipped:
                    vendored.setdefault(root, []).append(relative)
    vendor = project / "vendor"
    for top in sorted(shipped):
        _clear_vendored_bytecode(vendor, top)
    written = 0
    for root, names in vendored.items():
        for name, code in compile_sources(root, names, checked=True).items():
            target = vendor / pyc_name(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(code)
            written += 1
    return ForDeploy(count, written)


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--compile-into"]:  # the child of compile_sources
        _compile_into(Path(args_in[1]), args_in[2], Path(args_in[3]), args_in[4:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", help="the directory `chalice package` wrote")
    parser.add_argument("--for-deploy", type=Path, metavar="PROJECT",
                        help="instead, before `chalice deploy`: checked bytecode in PROJECT's chalicelib/ and vendor/")
    args = parser.parse_args(args_in)
    if (args.out is None) == (args.for_deploy is None):
        parser.error("give the package directory, or --for-deploy PROJECT")
    try:
        if args.for_deploy is not None:
            wrote = bytecode_for_deploy(args.for_deploy)
            print(f"precompile: checked bytecode for {this_runtime()}: {wrote.chalicelib} chalicelib modules, "
                  f"{wrote.vendor} in vendor/; now run chalice deploy with this Python")
            return 0
        done = precompile_package(args.out)
    except PrecompileError as error:
        print(f"precompile: {error}", file=sys.stderr)
        return 2
    print(f"precompile: {done.compiled} modules compiled for {this_runtime()}, {done.dropped} files of modules "
          f"that cannot be imported there left out; deployment.zip is {done.size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
