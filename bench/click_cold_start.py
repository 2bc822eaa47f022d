"""A cold click: a fresh interpreter importing ``app`` and answering one signed Slack click, as on Lambda.

    .venv/bin/python bench/click_cold_start.py [--repeat N] [--core-slowdown X]

What one sample is. The deployment zip (``chalice package``, offline) unpacked as Lambda's
/var/task, run with no site-packages and no bytecode cache (``-S -B``: the zip holds no .pyc
and /var/task is read-only, so every cold start compiles app, chalicelib, chalice, slack_sdk and
the app's other requirements). The AWS SDK is the Lambda runtime's, not the zip's: boto3 and
what it needs, linked from this venv into a directory after /var/task on the path, bytecode
cached as in the runtime. One child process: start, ``import app``, then ``app.app(event, context)``
with an API Gateway proxy event of a click signed as Slack signs it. The click reads the signing
secret from SSM (``SLACK_SIGNING_SECRET_PARAM``, as the dev and prod stages do), verifies the
signature, runs an action that makes one Batch ``DescribeJobs`` call (AWS is a moto_server on
127.0.0.1) and posts its answer to the click's ``response_url`` (the Slack stand-in on
127.0.0.1), then the route answers 200. The action is the bench's own (registered in the child
after ``import app``), so the figure does not depend on which actions are built; the app's own
action modules are imported by ``import app`` and so counted.

The projection to Lambda memory sizes. Lambda gives a function CPU in proportion to its memory:
one full vCPU at 1769 MB, a share of one below it (128 MB: 128/1769 of a core). Each child's CPU
time (user + system, from ``getrusage``) is the work that share slows down; the rest of its wall
time is waiting (moto, the stand-in, the disk) and is not scaled. So, per size,

    projected = cpu * max(1, 1769 / memory) * core_slowdown + (wall - cpu)

taking the least CPU time and the least wait over the samples (a shared machine only ever adds
to both), with ``core_slowdown`` (default 1.0) for a Lambda core slower than this machine's. Not counted:
Lambda's own init (fetching the code, starting the runtime, ~100-300 ms), and TLS handshakes to
SSM, Batch and Slack (the emulators are plain HTTP on loopback), plus the network to and from
API Gateway: keep the projection well inside Slack's 3 s, e.g. <= 1.5 s. A benchmark: it prints
figures, it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import LAMBDA_CONTEXT_SOURCE, child_env, median, table
from cold_start import lambda_like_dir

from tests.chalice_cli import MotoServer
from tools.sign_click import build_click, form_body, sign
from tools.slack_standin import SlackStandIn

FULL_VCPU_MB = 1769  # Lambda: one vCPU's worth of CPU at this memory size
SIZES_MB = (128, 256, 512, 1024, 1536, 1769)
STEP_MB = 128  # the size is picked in these steps (Lambda takes any whole MB from 128 to 10240)
TARGET_SECONDS = 1.5  # well inside Slack's 3 s
SECRET = "bench-signing-secret"
SECRET_PARAMETER = "/batch-notify/bench/slack-signing-secret"
CHANNEL = "C0BENCHCHAN"
USER = "U0BENCHUSER"
JOB_ARN = "arn:aws:batch:us-east-1:123456789012:job/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
ACTION = "bench_describe_job"
# What the Lambda Python runtime has besides the standard library (boto3 and its imports).
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")

CHILD = f'''
ACTION = {ACTION!r}
''' + '''
import json, sys, time
started = time.perf_counter()
import app
imported = time.perf_counter()
from chalicelib.core.clients import ClientConfig, client
from chalicelib.interactions.endpoint import ActionAnswer, actions

@actions.action(ACTION)
def describe(click):
    batch = client("batch", ClientConfig(connect_timeout=1, read_timeout=1, attempts=1))
    jobs = batch.describe_jobs(jobs=[click.action.value.rsplit("/", 1)[-1]])["jobs"]
    return ActionAnswer(ephemeral=f"{len(jobs)} job(s) found")
''' + LAMBDA_CONTEXT_SOURCE + '''
answer = app.app(json.load(open(sys.argv[1])), _Context())
answered = time.perf_counter()
assert answer["statusCode"] == 200, answer
print(json.dumps({"import": imported - started, "click": answered - imported}))
'''


def runtime_sdk_dir(tmp: Path) -> Path:
    """boto3 and its dependencies alone, as the Lambda Python runtime provides them (outside the zip)."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    runtime = tmp / "runtime"
    runtime.mkdir()
    for name in RUNTIME_SDK:
        source = site / name
        if source.exists():
            (runtime / name).symlink_to(source)
    return runtime


def api_gateway_event(response_url: str) -> dict[str, object]:
    """What API Gateway hands the function for Slack's POST of a click (a REST API proxy event)."""
    body = form_body(build_click(ACTION, JOB_ARN, user=USER, channel=CHANNEL, response_url=response_url))
    headers = {**sign(body, SECRET), "Host": "abc123.execute-api.us-east-1.amazonaws.com",
               "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
    return {
        "resource": "/slack/actions", "path": "/slack/actions", "httpMethod": "POST",
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None, "body": body.decode(), "isBase64Encoded": False,
        "requestContext": {"resourcePath": "/slack/actions", "httpMethod": "POST", "path": "/api/slack/actions",
                           "stage": "api", "requestId": "bench", "identity": {"sourceIp": "127.0.0.1"}},
    }


def run_once(task: Path, env: dict[str, str], event_file: Path) -> dict[str, float]:
    """One cold click in a fresh interpreter: wall and CPU seconds of the whole child, and its split."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-S", "-B", "-c", CHILD, str(event_file)], cwd=task, env=env,
                            capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"the cold click failed:\n{result.stderr[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    split: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return {"wall": wall, "cpu": min(cpu, wall), **split}


def projected(wall: float, cpu: float, memory_mb: int, core_slowdown: float) -> float:
    """The cold click's time at ``memory_mb``: its CPU time at Lambda's share of a vCPU, waits as they were."""
    return cpu * max(1.0, FULL_VCPU_MB / memory_mb) * core_slowdown + (wall - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--core-slowdown", type=float, default=1.0,
                        help="how much slower a Lambda core is than this machine's (default 1.0)")
    args = parser.parse_args()

    samples: list[dict[str, float]] = []
    with SlackStandIn(channels=(CHANNEL,), members=(USER,)) as slack, tempfile.TemporaryDirectory() as tmp, \
            MotoServer(log=Path(tmp) / "moto_server.log") as aws:
        aws.client("ssm").put_parameter(Name=SECRET_PARAMETER, Value=SECRET, Type="SecureString")
        task = lambda_like_dir(Path(tmp))
        # The local stage's variables (no Slack ones), a bot token for the stand-in, the secret from SSM.
        env = {**child_env("local", AWS_ENDPOINT_URL=aws.url, SLACK_SIGNING_SECRET_PARAM=SECRET_PARAMETER,
                           SLACK_BOT_TOKEN=slack.bot_token, SLACK_CHANNEL=CHANNEL, SLACK_API_URL=slack.api_url),
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": f"{task}:{runtime_sdk_dir(Path(tmp))}"}
        event_file = Path(tmp) / "click.json"
        for attempt in range(args.repeat + 1):  # the first warms the OS file cache, untimed
            ts = slack.post_as("U0STANDIN", CHANNEL, "the clicked batch-notify message")
            # Signed just before each run: the route refuses a signature older than 5 minutes.
            event_file.write_text(json.dumps(api_gateway_event(slack.response_url(CHANNEL, ts, user=USER))))
            sample = run_once(task, env, event_file)
            if attempt:
                samples.append(sample)
        # Each click's answer says what DescribeJobs returned: the click did its whole work, in time.
        answers = [shown["text"] for shown in slack.ephemerals]
        if answers != ["0 job(s) found"] * (args.repeat + 1):
            raise SystemExit(f"expected {args.repeat + 1} answers '0 job(s) found' to the clicker, got {answers}")

    # The machine may be shared: a busy one inflates wall (waiting to run) and CPU time (caches), never
    # shrinks them, so the projection takes the fastest sample's CPU and the shortest wait.
    cpu = min(s["cpu"] for s in samples)
    wait = min(s["wall"] - s["cpu"] for s in samples)
    wall = cpu + wait
    print(f"Cold click as on Lambda, {args.repeat} fresh interpreters ({sys.version.split()[0]})\n")
    print(table(["part", "median ms", "min ms"], [
        [name, f"{median([s[key] for s in samples]) * 1000:.0f}", f"{min(s[key] for s in samples) * 1000:.0f}"]
        for name, key in (("child process, wall", "wall"), ("  CPU (user + system)", "cpu"),
                          ("  import app", "import"),
                          ("  click: SSM secret, signature, DescribeJobs, answer", "click"))
    ]))
    rows = []
    for size in SIZES_MB:
        seconds = projected(wall, cpu, size, args.core_slowdown)
        rows.append([f"{size}", f"{min(1.0, size / FULL_VCPU_MB):.2f}", f"{seconds * 1000:.0f}",
                     "yes" if seconds <= TARGET_SECONDS else "no"])
    print(f"\nProjected at Lambda's CPU share (core slowdown {args.core_slowdown:g}x):\n")
    print(table(["memory MB", "vCPU", "cold click ms", f"<= {TARGET_SECONDS:g} s"], rows))
    fitting = [size for size in range(STEP_MB, 10241, STEP_MB)
               if projected(wall, cpu, size, args.core_slowdown) <= TARGET_SECONDS]
    print(f"\nsmallest size in {STEP_MB} MB steps within {TARGET_SECONDS:g} s: "
          f"{f'{fitting[0]} MB' if fitting else 'none (the waits alone exceed it)'} "
          "(.chalice/config.json: lambda_functions.api_handler.lambda_memory_size)")


if __name__ == "__main__":
    main()
