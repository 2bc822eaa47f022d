"""Run the real ``chalice`` CLI on a copy of the project, offline, and an AWS emulator for it.

Shared by tests/test_deploy.py, tests/test_package.py and bench/package_size.py.

Offline: ``chalice deploy`` and ``chalice package`` run ``pip download -r requirements.txt``.
The Makefile's install step downloads those wheels once into ``.venv/wheels`` (override with
``BATCH_NOTIFY_WHEELS``); :func:`chalice_env` makes pip use only that directory, gives the AWS
SDK fake credentials and no instance metadata, and points every proxy variable at a closed
loopback port, so anything that still tried to reach the internet fails at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WHEELS_VARIABLE = "BATCH_NOTIFY_WHEELS"
DEFAULT_WHEELS = ROOT / ".venv" / "wheels"
REGION = "us-east-1"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens there: any use fails at once, offline

# Not part of what chalice packages, or state a copy must not inherit (.hypothesis: another
# pytest worker may be writing it while the copy is made).
_SKIP_AT_ROOT = {".git", ".venv", ".pytest_cache", ".hypothesis", "build", "out"}
_SKIP_EVERYWHERE = {"__pycache__", ".mypy_cache", ".ruff_cache"}
_SKIP_IN_CHALICE_DIR = {"deployed", "deployments"}


class ChaliceCommandFailed(AssertionError):
    """A chalice (or cfn-lint) command exited non-zero; the message holds its output."""


def wheel_dir() -> Path:
    """The local wheel directory pip uses instead of an index."""
    path = Path(os.environ.get(WHEELS_VARIABLE) or DEFAULT_WHEELS)
    if not any(path.glob("*.whl")):
        raise ChaliceCommandFailed(
            f"no wheels in {path}: chalice needs requirements.txt's wheels there to package offline. "
            "Run `make test` (its install step downloads them; a .venv made before it did: `make clean test`), "
            f"or `pip download -r requirements.txt -d {DEFAULT_WHEELS}`, or set {WHEELS_VARIABLE}."
        )
    return path


def copy_project(dest: Path) -> Path:
    """Copy the project to ``dest`` as a clean checkout would have it (no deploy state, no caches)."""

    def ignore(directory: str, names: list[str]) -> Iterable[str]:
        here = Path(directory)
        skipped = {n for n in names if n in _SKIP_EVERYWHERE or n.endswith(".pyc")}
        if here == ROOT:
            skipped |= _SKIP_AT_ROOT & set(names)
        if here == ROOT / ".chalice":
            skipped |= _SKIP_IN_CHALICE_DIR & set(names)
        return skipped

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def aws_env(endpoint_url: str | None = None) -> dict[str, str]:
    """This process's environment with fake AWS credentials, and no proxy, profile or metadata service.

    With ``endpoint_url``, every AWS SDK client goes there (``AWS_ENDPOINT_URL``); without,
    the SDK's default endpoints are behind a closed proxy port.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SLACK_")) and k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",  # else botocore asks 169.254.169.254 for credentials
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        HTTP_PROXY=CLOSED_PORT_URL, HTTPS_PROXY=CLOSED_PORT_URL,
        http_proxy=CLOSED_PORT_URL, https_proxy=CLOSED_PORT_URL,
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
    )
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    return env


def chalice_env(endpoint_url: str | None = None) -> dict[str, str]:
    """:func:`aws_env` plus pip settings that install requirements.txt from :func:`wheel_dir` only."""
    env = {k: v for k, v in aws_env(endpoint_url).items() if not k.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,  # ignore pip.conf indexes and constraints: only the wheel dir
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheel_dir()),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
    )
    return env


def _console_script(name: str, module: str) -> list[str]:
    """The venv's console script, or the same entry point run with this interpreter."""
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``command``; raise :class:`ChaliceCommandFailed` with its output if it fails."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        shown = " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command))
        raise ChaliceCommandFailed(
            f"`{shown}` exited {result.returncode} in {cwd}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def run_chalice(project: Path, *args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``chalice ARGS...`` in ``project`` (the real CLI, in a subprocess)."""
    return run([*_console_script("chalice", "chalice.cli"), *args], cwd=project, env=env, timeout=timeout)


def cfn_lint(template: Path) -> subprocess.CompletedProcess:
    """``cfn-lint TEMPLATE``; raises with its findings if it reports any."""
    return run([*_console_script("cfn-lint", "cfnlint.runner"), str(template)], cwd=template.parent,
               env=aws_env(), timeout=120)


def package(project: Path, out: Path, *, stage: str = "dev", pkg_format: str = "cloudformation") -> Path:
    """``chalice package`` in ``pkg_format`` into ``out``; returns ``out``."""
    run_chalice(project, "package", "--stage", stage, "--pkg-format", pkg_format, str(out), env=chalice_env())
    return out


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def zip_breakdown(path: Path) -> dict[str, tuple[int, int, int]]:
    """Top-level entry -> (files, compressed bytes, uncompressed bytes)."""
    parts: dict[str, tuple[int, int, int]] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            top = info.filename.split("/", 1)[0]
            files, packed, unpacked = parts.get(top, (0, 0, 0))
            parts[top] = (files + 1, packed + info.compress_size, unpacked + info.file_size)
    return parts


def chalice_config(project: Path = ROOT) -> dict[str, Any]:
    return json.loads((project / ".chalice" / "config.json").read_text())


# -- an AWS emulator in its own process ------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """``moto_server`` on 127.0.0.1 at a free port, for as long as the ``with`` block runs.

    ``with MotoServer(log=path) as aws: ... aws.url ...``. The server is stopped (terminated,
    then killed if it lingers) however the block ends. Its request log goes to ``log``.
    """

    def __init__(self, log: Path | None = None, *, start_timeout: float = 60) -> None:
        self.log = log
        self.start_timeout = start_timeout
        self.url = ""
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> MotoServer:
        for attempt in range(3):  # another process may take the free port before the server binds it
            try:
                self._start()
                return self
            except RuntimeError:
                self.stop()
                if attempt == 2:
                    raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _start(self) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        # Closed again once the child has started: it keeps its own descriptor.
        with open(self.log, "ab") if self.log else contextlib.nullcontext(subprocess.DEVNULL) as output:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=aws_env(),
            )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._process.returncode}{self._log_tail()}")
            try:
                with opener.open(f"{self.url}/moto-api/", timeout=2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"moto_server did not answer on {self.url} within {self.start_timeout}s{self._log_tail()}")

    def _log_tail(self) -> str:
        if not self.log or not self.log.exists():
            return ""
        return "\n" + self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this server, with fake credentials."""
        from unittest import mock

        import boto3
        from botocore.config import Config

        # A profile, config file or proxy in the caller's shell must not leak in: the session
        # reads the environment while the client is made, never after.
        with mock.patch.dict(os.environ, aws_env(self.url), clear=True):
            session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                            region_name=REGION)
            return session.client(service, endpoint_url=self.url,
                                  config=Config(retries={"max_attempts": 2}, proxies={}))
