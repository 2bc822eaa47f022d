"""Peak memory (RSS) of a fresh process handling 1,000 events end to end, against 128 MB.

    .venv/bin/python bench/memory.py [--events N]

A child process imports the app and hands it the routed fixtures in turn (each to every
handler whose rule it reaches) until it has handled N events; each posts to the Slack
stand-in, which runs in this (parent) process so its memory is not counted. The child
reports its peak RSS (VmHWM; what Lambda reports as "Max Memory Used", less the runtime
client's own few MB) after the imports, after 1, 100 and N events.

Settings:
- webhook URL in the environment, handler called as Lambda does (no boto3 loaded);
- the dev stage as deployed: webhook URL read from SSM, log tails fetched from CloudWatch
  Logs, both from a moto_server on 127.0.0.1 (boto3 loaded, as in every deployed stage);
- the same with only the us-east-1 fixtures: a rule sees its own region's events only, and
  the fixtures span nine regions, each of which costs the log tail a CloudWatch Logs client;
- chalice.test.Client, the way the tests drive the handlers (it loads chalice's CLI code
  and botocore too, so it overstates).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import LAMBDA_CONTEXT_SOURCE, ROOT, child_env, load_event, routed_fixtures, table

from tools.slack_standin import SlackStandIn

LAMBDA_MB = 128
WEBHOOK_PARAMETER = "/batch-notify/dev/slack-webhook-url"

CHILD = '''
import json, logging, resource, sys
def peak_mb():
    # VmHWM: this process image's peak RSS. (ru_maxrss survives exec, so it would start at
    # the parent's size.)
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
marks = {"interpreter": peak_mb()}
import app
logging.getLogger("batch_notify").addHandler(logging.NullHandler())
logging.getLogger("batch_notify").propagate = False
''' + LAMBDA_CONTEXT_SOURCE + '''
mode, stage, count, pairs_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
pairs = json.load(open(pairs_file))
if mode == "client":
    from chalice.test import Client
    client = Client(app.app, stage_name=stage).__enter__()
    call = lambda handler, event: client.lambda_.invoke(handler, event)
else:
    context = _Context()
    call = lambda handler, event: app.app.handler_map[handler](event, context)
marks["after import"] = peak_mb()
for i in range(count):
    event, handler = pairs[i % len(pairs)]
    call(handler, event)
    if i + 1 in (1, 100):
        marks[f"after {i + 1} event" + ("s" if i else "")] = peak_mb()
marks[f"after {count} events"] = peak_mb()
print(json.dumps(marks))
'''


def run_child(mode: str, stage: str, count: int, pairs_file: Path, env: dict[str, str]) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", CHILD, mode, stage, str(count), str(pairs_file)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"memory child ({mode}, {stage}) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    from tests.chalice_cli import MotoServer

    pairs = [(load_event(name), handler) for name, handler in routed_fixtures()]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, SlackStandIn() as slack:
        pairs_file = Path(tmp) / "pairs.json"
        pairs_file.write_text(json.dumps(pairs))
        local = child_env("local", SLACK_WEBHOOK_URL=slack.webhook_url)
        results["webhook URL, called as Lambda does"] = run_child("lambda", "local", args.events, pairs_file, local)
        with MotoServer(log=Path(tmp) / "moto_server.log") as aws:
            aws.client("ssm").put_parameter(Name=WEBHOOK_PARAMETER, Value=slack.webhook_url, Type="SecureString")
            dev = child_env("dev", AWS_ENDPOINT_URL=aws.url)
            results["dev stage: SSM secret + log tails (moto)"] = run_child(
                "lambda", "dev", args.events, pairs_file, dev)
            # A rule only sees its own region's events: the same, with the us-east-1 fixtures only.
            one_region = Path(tmp) / "us-east-1.json"
            one_region.write_text(json.dumps([(e, h) for e, h in pairs if e.get("region") == "us-east-1"]))
            results["dev stage, us-east-1 events only"] = run_child("lambda", "dev", args.events, one_region, dev)
        results["chalice.test.Client (as the tests)"] = run_child("client", "local", args.events, pairs_file, local)
        expected = args.events * len(results)
        if len(slack.messages) != expected:
            raise SystemExit(f"expected {expected} Slack posts, the stand-in has {len(slack.messages)}")

    marks = list(next(iter(results.values())))
    rows = [[setting, *(f"{values[m]:.1f}" for m in marks), f"{LAMBDA_MB - values[marks[-1]]:.1f}"]
            for setting, values in results.items()]
    print(f"Peak RSS in MB of a fresh process handling {args.events} events end to end "
          f"(Lambda memory: {LAMBDA_MB} MB)\n")
    print(table(["setting", *marks, "MB to spare"], rows))


if __name__ == "__main__":
    main()
