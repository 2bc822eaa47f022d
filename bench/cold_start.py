"""Cold start: a fresh interpreter importing an app and handling one FAILED event, end to end.

    .venv/bin/python bench/cold_start.py [--repeat N] [--skip-lambda-like]

A sample is one child process: start, imports, one FAILED event through ``app.on_job_failed(event,
context)`` as Lambda calls it, a post to the Slack stand-in on 127.0.0.1. Three figures per
sample, up to the handler's return (what a Lambda cold start is: its init and first invocation;
the interpreter's exit is not part of it): the child's *CPU time* (user + system), and the *wall*
time from starting it; and the *whole process*, exit included. Targets (issue 14) are judged on
the CPU time: on a Lambda function nothing else runs, so its cold start is that CPU time plus its
few waits, which both sides of a comparison make (the posts; the dev stage's AWS calls); on this
2-core machine the wall time also counts whatever else runs, and swings with it. Samples are
interleaved; medians are reported, and each ratio is the median of the rounds' ratios.

As on Lambda: ``chalice package``'s zip unpacked as /var/task, no site-packages (``-S``) and no
bytecode written (``-B``: /var/task is read-only), so whatever the zip holds no .pyc for is
compiled at every cold start.

1. The local stage (webhook, no boto3) against the floor, ``bench/floor/app.py``: the same work
   in about 20 lines of Chalice + slack-sdk, packaged by Chalice the same way. batch-notify
   without and with ``tools/precompile.py``, and after ``tools/precompile.py --for-deploy`` (what
   ``chalice deploy`` then zips: its packager is the one ``chalice package`` runs). Target:
   precompiled at most 0.70x the floor; the precompiled zip at most 1 MB.
2. The same, bytecode cached (a first, untimed run writes each tree's ``__pycache__``): what
   the code itself costs, compiling left out, as on a laptop.
3. The dev stage as deployed: the webhook URL from SSM and the failed job's log tail from
   CloudWatch Logs (a moto_server on 127.0.0.1), boto3 from this venv as from Lambda's runtime
   (with its bytecode). Today's (the tree of BASELINE, when issue 14 was filed, no bytecode)
   against this tree without and with ``tools/precompile.py``. Target: at most 0.75x today's.

Then, in this venv (bytecode cached), the import and the handling against a fresh interpreter
importing only ``chalice.app`` and ``slack_sdk`` (issue 6's reference; target: at most 1.3x).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

from _common import LAMBDA_CONTEXT_SOURCE, ROOT, child_env, median, table

from tools.slack_standin import SlackStandIn

EVENT = ROOT / "tests" / "events" / "ec2_failed.json"
HANDLER = "on_job_failed"
WEBHOOK_PARAMETER = "/batch-notify/dev/slack-webhook-url"
FLOOR = ROOT / "bench" / "floor"
# main when issue 14 was filed: "today's" dev stage, the baseline of its 0.75x target.
BASELINE = "719b6d7"
FLOOR_TARGET = 0.70
DEV_TARGET = 0.75
ZIP_TARGET_BYTES = 1024 * 1024

# Every child ends by printing when it got there, on the monotonic clock the parent shares.
_RETURNED = ("\nimport sys as _s, time as _t\n"
             "_s.stderr.write(f'\\n@returned {_t.perf_counter()!r} {_t.process_time()!r}\\n')\n")
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
LAMBDA_FLAGS = ["-S", "-B"]


class Sample(NamedTuple):
    """One child's figures, in seconds."""

    cpu: float  # CPU time (user + system) the child had used when its program ended
    wall: float  # from starting the child to the end of its program
    whole: float  # the whole process, its exit included


def run_once(program: str, *, cwd: Path, env: dict[str, str], flags: list[str]) -> Sample:
    """The figures of one child running ``program``."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *flags, "-c", program + _RETURNED], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "\n@returned " not in result.stderr:
        raise SystemExit(f"cold start child failed ({program.splitlines()[-1]}):\n{result.stderr}")
    returned, cpu = (float(field) for field in result.stderr.rsplit("\n@returned ", 1)[1].split()[:2])
    return Sample(cpu, returned - started, elapsed)


Program = tuple[str, bool, dict[str, str], Path, list[str]]  # source, posts?, environment, cwd, flags


class Measured:
    """Each program's samples, one per round, in the order the rounds ran."""

    def __init__(self, samples: dict[str, list[Sample]]) -> None:
        self.samples = samples

    def median(self, name: str) -> Sample:
        values = self.samples[name]
        return Sample(*(median([sample[i] for sample in values]) for i in range(3)))

    def ratio(self, name: str, base: str) -> float:
        """The median, over the rounds, of ``name``'s CPU time over ``base``'s in the same round:
        paired, so a stretch of slow machine that spans a round slows both sides of it."""
        return median([a.cpu / b.cpu for a, b in zip(self.samples[name], self.samples[base], strict=True)])


def measure(repeat: int, programs: dict[str, Program], slack: SlackStandIn) -> Measured:
    """``repeat`` rounds of every program, one after the other in each; the first round warms the
    OS file cache (and, where writing is allowed, the bytecode cache), untimed."""
    samples: dict[str, list[Sample]] = {name: [] for name in programs}
    posted = len(slack.messages)
    for round_ in range(repeat + 1):
        for name, (program, _, env, cwd, flags) in programs.items():
            sample = run_once(program, cwd=cwd, env=env, flags=flags)
            if round_:
                samples[name].append(sample)
    expected = posted + (repeat + 1) * sum(posts for _, posts, *_ in programs.values())
    if len(slack.messages) != expected:
        raise SystemExit(f"expected {expected} Slack posts, the stand-in has {len(slack.messages)}")
    return Measured(samples)


def packaged_dir(project: Path, tmp: Path, name: str, *, stage: str = "local", precompiled: bool = False,
                 for_deploy: bool = False) -> Path:
    """``project`` as ``chalice package --stage <stage>`` zips it, unpacked as Lambda's /var/task
    (its zip beside it, as ``<name>.zip``); with ``precompiled``, after tools/precompile.py; with
    ``for_deploy``, after ``tools/precompile.py --for-deploy`` (what ``chalice deploy`` then zips:
    its packager is the one ``chalice package`` runs)."""
    from tests.chalice_cli import package
    from tools.precompile import bytecode_for_deploy, precompile_package

    copy = tmp / f"{name}-project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".venv", ".git", ".hypothesis", "__pycache__",
                                                                  ".pytest_cache", "tests", "bench", "tools", "vendor"))
    if for_deploy:
        bytecode_for_deploy(copy)
    out = package(copy, tmp / f"{name}-package", stage=stage)
    if precompiled:
        precompile_package(out)
    task = tmp / name
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        archive.extractall(task)
    shutil.copy(out / "deployment.zip", tmp / f"{name}.zip")
    return task


def baseline_tree(tmp: Path) -> Path | None:
    """The project as it was at BASELINE (git archive), or None when this clone lacks it."""
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{BASELINE}^{{commit}}"],
                           capture_output=True, check=False)
    if found.returncode != 0:
        return None
    tree = tmp / "baseline-tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def rows_against(measured: Measured, base: str, sizes: dict[str, int] | None = None) -> str:
    headers = ["program", "CPU to return ms", f"vs {base.split(',')[0]}", "wall to return ms", "whole process ms"]
    if sizes is not None:
        headers.append("zip KB")
    rows = []
    for name in measured.samples:
        sample = measured.median(name)
        row = [name, f"{sample.cpu * 1000:.0f}", f"{measured.ratio(name, base):.2f}x", f"{sample.wall * 1000:.0f}",
               f"{sample.whole * 1000:.0f}"]
        if sizes is not None:
            row.append(f"{sizes[name] / 1024:.0f}")
        rows.append(row)
    return table(headers, rows)


def writing(env: dict[str, str]) -> dict[str, str]:
    """``env`` letting Python write bytecode (a shell may forbid it with PYTHONDONTWRITEBYTECODE)."""
    return {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f}x (target <= {target:.2f}x): {'met' if ratio <= target else 'NOT met'}"


def lambda_like(repeat: int, slack: SlackStandIn, tmp: Path, local_env: dict[str, str],
                dev_env: dict[str, str]) -> None:
    """Sections 1 to 3 of the docstring."""
    def as_lambda(task: Path, env: dict[str, str], extra_path: str = "") -> dict[str, str]:
        return {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(task) + extra_path}

    floor_name, plain_name, pre_name = ("floor (bench/floor)", "batch-notify, no bytecode",
                                        "batch-notify, tools/precompile.py")
    deploy_name = "batch-notify, --for-deploy (chalice deploy)"
    trees = {floor_name: packaged_dir(FLOOR, tmp, "floor"), plain_name: packaged_dir(ROOT, tmp, "plain"),
             pre_name: packaged_dir(ROOT, tmp, "pre", precompiled=True),
             deploy_name: packaged_dir(ROOT, tmp, "deploy", for_deploy=True)}
    sizes = {name: (task.parent / f"{task.name}.zip").stat().st_size for name, task in trees.items()}
    local = measure(repeat, {name: (HANDLE_ONE, True, as_lambda(task, local_env), task, LAMBDA_FLAGS)
                             for name, task in trees.items()}, slack)
    print(f"1. As on Lambda, local stage (zip unpacked, -S -B), median of {repeat}: "
          "import + handle 1 FAILED event + post\n")
    print(rows_against(local, floor_name, sizes))
    print(f"\nbatch-notify precompiled = {verdict(local.ratio(pre_name, floor_name), FLOOR_TARGET)}; "
          f"zip {sizes[pre_name] / 1024:.0f} KB (target <= {ZIP_TARGET_BYTES // 1024} KB): "
          f"{'met' if sizes[pre_name] <= ZIP_TARGET_BYTES else 'NOT met'}")
    print(f"chalice deploy after --for-deploy = {local.ratio(deploy_name, floor_name):.2f}x the floor "
          f"(app.py and chalice/app.py still compile: its packager takes them from source); "
          f"zip {sizes[deploy_name] / 1024:.0f} KB\n")

    cached = {}
    for name in (floor_name, plain_name):
        task = tmp / f"{trees[name].name}-cached"
        shutil.copytree(trees[name], task)
        env = {**writing(local_env), "PYTHONPATH": str(task)}  # bytecode written by the untimed first round
        cached[f"{name}, bytecode cached"] = (HANDLE_ONE, True, env, task, ["-S"])
    warm = measure(repeat, cached, slack)
    print(f"2. The same trees, bytecode cached (-S), median of {repeat}\n")
    print(rows_against(warm, f"{floor_name}, bytecode cached"))
    print()

    # Lambda's runtime puts its boto3 (with bytecode) after /var/task on the path: this venv's.
    runtime = ":" + sysconfig.get_paths()["purelib"]
    dev_trees = {}
    baseline = baseline_tree(tmp)
    today = f"dev stage at {BASELINE} (today's), no bytecode"
    if baseline is not None:
        dev_trees[today] = packaged_dir(baseline, tmp, "dev-baseline", stage="dev")
    dev_trees["dev stage, no bytecode"] = packaged_dir(ROOT, tmp, "dev-plain", stage="dev")
    dev_trees["dev stage, tools/precompile.py"] = packaged_dir(ROOT, tmp, "dev-pre", stage="dev", precompiled=True)
    dev = measure(repeat, {name: (HANDLE_ONE, True, as_lambda(task, dev_env, runtime), task, LAMBDA_FLAGS)
                           for name, task in dev_trees.items()}, slack)
    print(f"3. As on Lambda, dev stage (SSM + log tail from a moto_server; boto3 as from the runtime), "
          f"median of {repeat}\n")
    if baseline is None:
        print(f"({BASELINE} is not in this clone: no baseline; fetch the full history for the ratio)\n")
        print(rows_against(dev, "dev stage, no bytecode"))
        return
    print(rows_against(dev, today))
    ratio = dev.ratio("dev stage, tools/precompile.py", today)
    print(f"\ndev stage precompiled = {verdict(ratio, DEV_TARGET)} of today's\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--skip-lambda-like", action="store_true", help="only the venv setting")
    args = parser.parse_args()

    from tests.chalice_cli import MotoServer

    with SlackStandIn() as slack, tempfile.TemporaryDirectory() as tmp, \
            MotoServer(log=Path(tmp) / "moto_server.log") as aws:
        env = child_env("local", SLACK_WEBHOOK_URL=slack.webhook_url)
        # The dev stage as deployed: the webhook URL from SSM and, the job having failed, the
        # tail of its log from CloudWatch Logs, both from a moto_server on 127.0.0.1.
        aws.client("ssm").put_parameter(Name=WEBHOOK_PARAMETER, Value=slack.webhook_url, Type="SecureString")
        dev_env = child_env("dev", AWS_ENDPOINT_URL=aws.url)
        if not args.skip_lambda_like:
            lambda_like(args.repeat, slack, Path(tmp), env, dev_env)
        venv_programs: dict[str, Program] = {name: (program, posts, writing(env), ROOT, [])
                                             for name, (program, posts) in PROGRAMS.items()}
        venv_programs[DEV_STAGE] = (HANDLE_ONE, True, writing(dev_env), ROOT, [])
        venv = measure(args.repeat, venv_programs, slack)

    print(f"In this venv (bytecode cached), median of {args.repeat} fresh interpreters ({sys.version.split()[0]})\n")
    print(rows_against(venv, REFERENCE))
    ratio = venv.ratio("import app + handle 1 event", REFERENCE)
    print(f"\nimport app + handle 1 event = {verdict(ratio, 1.30)} the reference")


if __name__ == "__main__":
    main()
