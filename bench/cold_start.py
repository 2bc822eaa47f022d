"""Cold start: a fresh interpreter importing ``app`` and handling one event, end to end.

    .venv/bin/python bench/cold_start.py [--repeat N]

Each sample is the wall time of a whole child process (start, imports, one FAILED event through
``app.on_job_failed(event, context)`` as Lambda calls it, a post to the Slack stand-in on
127.0.0.1, exit). The reference is a fresh interpreter importing only ``chalice.app`` and
``slack_sdk``: the ratio is what the app itself adds (target: at most 1.3x). Samples are
interleaved and the median is reported.

Two settings: the venv (bytecode cached, as on a laptop), and "as on Lambda": the deployment
zip's contents, no site-packages, and no bytecode cache (Lambda's /var/task is read-only and
the zip holds no .pyc, so every cold start compiles app, chalicelib, chalice and slack_sdk).
Both post with the webhook URL in the environment (the local stage: no boto3). One more row
shows the dev stage as deployed: the webhook URL from SSM and the failed job's log tail from
CloudWatch Logs (a moto_server on 127.0.0.1), which loads boto3 and makes two clients.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from _common import LAMBDA_CONTEXT_SOURCE, ROOT, child_env, median, table

from tools.slack_standin import SlackStandIn

EVENT = ROOT / "tests" / "events" / "ec2_failed.json"
HANDLER = "on_job_failed"
WEBHOOK_PARAMETER = "/batch-notify/dev/slack-webhook-url"

HANDLE_ONE = ("import json\nimport app\n" + LAMBDA_CONTEXT_SOURCE
              + f"app.{HANDLER}(json.load(open({str(EVENT)!r})), _Context())\n")
REFERENCE = "import chalice.app, slack_sdk"
# name -> (program, posts one Slack message)
PROGRAMS = {
    "interpreter only": ("pass", False),
    REFERENCE: ("import chalice.app, slack_sdk", False),
    "import app": ("import app", False),
    "import app + handle 1 event": (HANDLE_ONE, True),
}
DEV_STAGE = "... same, dev stage: SSM secret + log tail"


def run_once(program: str, *, cwd: Path, env: dict[str, str], flags: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *flags, "-c", program], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"cold start child failed ({program.splitlines()[-1]}):\n{result.stderr}")
    return elapsed


def measure(repeat: int, programs: dict[str, tuple[str, bool, dict[str, str]]], *, cwd: Path, flags: list[str],
            slack: SlackStandIn) -> dict[str, float]:
    """Median wall time of each program (name -> (source, posts?, environment)), interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in programs}
    for program, _, env in programs.values():  # warm the OS file cache once, untimed
        run_once(program, cwd=cwd, env=env, flags=flags)
    posted = len(slack.messages)
    for _ in range(repeat):
        for name, (program, _, env) in programs.items():
            samples[name].append(run_once(program, cwd=cwd, env=env, flags=flags))
    expected = posted + repeat * sum(posts for _, posts, _ in programs.values())
    if len(slack.messages) != expected:
        raise SystemExit(f"expected {expected} Slack posts, the stand-in has {len(slack.messages)}")
    return {name: median(values) for name, values in samples.items()}


def lambda_like_dir(tmp: Path) -> Path:
    """The deployment zip (chalice package, offline) unpacked, as Lambda's /var/task."""
    from tests.chalice_cli import copy_project, package

    out = package(copy_project(tmp / "project"), tmp / "package", stage="local")
    task = tmp / "task"
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        archive.extractall(task)
    return task


FLOOR = ROOT / "bench" / "floor"
FLOOR_TARGET = 0.70  # issue 14: the local stage, as on Lambda, at most 0.7x the floor


def packaged_dir(project: Path, tmp: Path, name: str, *, precompiled: bool = False) -> Path:
    """``project`` as ``chalice package`` zips it (local stage), unpacked as Lambda's /var/task;
    with ``precompiled``, after tools/precompile.py."""
    import shutil

    from tests.chalice_cli import package
    from tools.precompile import precompile_package

    copy = tmp / f"{name}-project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".venv", ".git", ".hypothesis", "__pycache__",
                                                                  ".pytest_cache", "tests", "bench", "tools"))
    out = package(copy, tmp / f"{name}-package", stage="local")
    if precompiled:
        precompile_package(out)
    task = tmp / f"{name}-task"
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        archive.extractall(task)
    return task


def floor_comparison(repeat: int, slack: SlackStandIn, tmp: Path, env: dict[str, str]) -> dict[str, float]:
    """Median wall time, as on Lambda, of the floor (bench/floor: ~20 lines of Chalice + slack-sdk
    doing the same work) and of batch-notify without and with shipped bytecode, each importing
    its app and handling one FAILED event with a post; interleaved."""
    dirs = {"floor (bench/floor), no bytecode": packaged_dir(FLOOR, tmp, "floor"),
            "batch-notify, no bytecode": packaged_dir(ROOT, tmp, "plain"),
            "batch-notify, tools/precompile.py": packaged_dir(ROOT, tmp, "pre", precompiled=True)}
    samples: dict[str, list[float]] = {name: [] for name in dirs}
    posted = len(slack.messages)
    for round_ in range(repeat + 1):  # the first round warms the OS file cache, untimed
        for name, task in dirs.items():
            lambda_env = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(task)}
            elapsed = run_once(HANDLE_ONE, cwd=task, env=lambda_env, flags=["-S", "-B"])
            if round_:
                samples[name].append(elapsed)
    if len(slack.messages) != posted + (repeat + 1) * len(dirs):
        raise SystemExit("a program of the floor comparison did not post its message")
    sizes = {name: (task.parent / task.name.replace("-task", "-package") / "deployment.zip").stat().st_size
             for name, task in dirs.items()}
    medians = {name: median(values) for name, values in samples.items()}
    floor = medians["floor (bench/floor), no bytecode"]
    print(f"As on Lambda (local stage, zip unpacked, -S -B), median of {repeat}: "
          "import + handle 1 FAILED event + post\n")
    print(table(["program", "wall ms", "vs floor", "zip KB"],
                [[name, f"{value * 1000:.0f}", f"{value / floor:.2f}x", f"{sizes[name] / 1024:.0f}"]
                 for name, value in medians.items()]))
    ratio = medians["batch-notify, tools/precompile.py"] / floor
    print(f"\nbatch-notify precompiled = {ratio:.2f}x the floor (target <= {FLOOR_TARGET:.2f}x): "
          f"{'met' if ratio <= FLOOR_TARGET else 'NOT met'}; zip "
          f"{sizes['batch-notify, tools/precompile.py'] / 1024:.0f} KB (target <= 1024 KB)\n")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--skip-lambda-like", action="store_true", help="only the venv setting")
    args = parser.parse_args()

    from tests.chalice_cli import MotoServer

    results: dict[str, dict[str, float]] = {}
    with SlackStandIn() as slack, tempfile.TemporaryDirectory() as tmp, \
            MotoServer(log=Path(tmp) / "moto_server.log") as aws:
        env = child_env("local", SLACK_WEBHOOK_URL=slack.webhook_url)
        # The dev stage as deployed: the webhook URL from SSM and, the job having failed, the
        # tail of its log from CloudWatch Logs, both from a moto_server on 127.0.0.1.
        aws.client("ssm").put_parameter(Name=WEBHOOK_PARAMETER, Value=slack.webhook_url, Type="SecureString")
        dev_env = child_env("dev", AWS_ENDPOINT_URL=aws.url)
        venv_programs = {name: (program, posts, env) for name, (program, posts) in PROGRAMS.items()}
        venv_programs[DEV_STAGE] = (HANDLE_ONE, True, dev_env)
        results["venv"] = measure(args.repeat, venv_programs, cwd=ROOT, flags=[], slack=slack)
        if not args.skip_lambda_like:
            floor_comparison(args.repeat, slack, Path(tmp), env)
            task = lambda_like_dir(Path(tmp))
            # -S: no site-packages (only the zip's contents, like /var/task); -B and the
            # variable: no bytecode cache written, so each run compiles, as on Lambda.
            lambda_env = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(task)}
            lambda_programs = {name: (program, posts, lambda_env) for name, (program, posts) in PROGRAMS.items()}
            results["as on Lambda"] = measure(args.repeat, lambda_programs, cwd=task, flags=["-S", "-B"], slack=slack)

    rows = []
    for setting, medians in results.items():
        base = medians[REFERENCE]
        for name, value in medians.items():
            rows.append([setting, name, f"{value * 1000:.0f}", f"{value / base:.2f}x"])
    print(f"Cold start, median of {args.repeat} fresh interpreters each ({sys.version.split()[0]})\n")
    print(table(["setting", "child process", "wall ms", "vs chalice.app+slack_sdk"], rows))
    for setting, medians in results.items():
        ratio = medians["import app + handle 1 event"] / medians[REFERENCE]
        print(f"\n{setting}: import app + handle 1 event = {ratio:.2f}x the reference (target <= 1.30x)", end="")
    print()


if __name__ == "__main__":
    main()
