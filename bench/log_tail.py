"""What the log tail costs: time to build a FAILED message with and without it, per event.

    .venv/bin/python bench/log_tail.py [--repeat N] [--lines N]

For every FAILED fixture in tests/events, against moto's CloudWatch Logs in process (each job
with a CloudWatch stream gets one holding realistic lines, a few with secrets to mask):

- standard: ``build_job_state_message`` alone, the baseline (1.00x);
- no tail: ``build_failure_message(job, None)``: diagnosis and attempt history added;
- with tail: ``fetch_log_tail`` + ``build_failure_message``, the FAILED handler's path.

Medians over ``--repeat`` warm runs, as a ratio to the baseline. The one-off cost of creating
the logs client (once per Lambda container and region) is printed apart. moto answers in
microseconds; a real GetLogEvents adds tens of milliseconds of network on top. No assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# moto intercepts every call; fake credentials make sure nothing could reach a real account.
for _name, _value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                      ("AWS_DEFAULT_REGION", "us-east-1")):
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib.composing.failure_message import build_failure_message  # noqa: E402
from chalicelib.composing.messages import build_job_state_message  # noqa: E402
from chalicelib.core import config  # noqa: E402
from chalicelib.core.config import LogTailSettings  # noqa: E402
from chalicelib.reading import logtail  # noqa: E402
from chalicelib.reading.event import JobStateChange  # noqa: E402
from chalicelib.reading.links import log_location  # noqa: E402
from chalicelib.reading.logtail import fetch_log_tail  # noqa: E402
from tests.conftest import event_names, load_event  # noqa: E402

SAMPLE_LINES = [
    "2024-05-13 02:13:{s:02d},{ms:03d} INFO  etl.load: batch {i} of 40: 25000 rows -> warehouse.orders",
    "2024-05-13 02:13:{s:02d},{ms:03d} DEBUG etl.db: dsn=postgresql://etl:hunter2@warehouse.internal:5432/dw",
    "2024-05-13 02:13:{s:02d},{ms:03d} WARN  etl.http: retrying POST with Authorization: Bearer abcdefgh12345678",
    "2024-05-13 02:13:{s:02d},{ms:03d} ERROR etl.load: row {i}: value <NULL> & 'n/a' not allowed in ``amount``",
]


def failed_jobs() -> list[tuple[str, JobStateChange]]:
    jobs = []
    for name in event_names():
        try:
            job = JobStateChange.from_event(load_event(name))
        except ValueError:
            continue
        if job.status == "FAILED":
            jobs.append((name, job))
    return jobs


def seed_streams(jobs: list[tuple[str, JobStateChange]], lines: int) -> None:
    """One stream per job that has a CloudWatch location, holding ``lines`` + 10 events."""
    now = int(time.time() * 1000) - 10_000
    seeded = set()
    for _, job in jobs:
        location = log_location(job)
        # A multi-node parent shares its main node's stream: seed each stream once.
        if location is None or location in seeded:
            continue
        seeded.add(location)
        client = boto3.client("logs", region_name=location.region)
        if not client.describe_log_groups(logGroupNamePrefix=location.group)["logGroups"]:
            client.create_log_group(logGroupName=location.group)
        client.create_log_stream(logGroupName=location.group, logStreamName=location.stream)
        events = [{"timestamp": now + i, "message": SAMPLE_LINES[i % 4].format(s=i % 60, ms=i * 7 % 1000, i=i)}
                  for i in range(lines + 10)]
        client.put_log_events(logGroupName=location.group, logStreamName=location.stream, logEvents=events)


def median_ms(run: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--lines", type=int, default=20)
    args = parser.parse_args()
    settings = LogTailSettings(lines=args.lines, timeout=2.0)
    jobs = failed_jobs()
    with mock_aws():
        config.reset()
        seed_streams(jobs, args.lines)
        regions = sorted({loc.region for _, job in jobs if (loc := log_location(job)) is not None})
        cold = []
        for region in regions:
            started = time.perf_counter()
            logtail.logs_client(region, settings.timeout)
            cold.append((time.perf_counter() - started) * 1000)

        header = (f"{'event':<32}{'standard':>10}{'no tail':>10}{'ratio':>8}{'with tail':>11}{'ratio':>8}"
                  f"{'lines':>7}  note")
        print(header)
        print("-" * len(header))
        for name, job in jobs:
            base = median_ms(lambda job=job: build_job_state_message(job), args.repeat)
            plain = median_ms(lambda job=job: build_failure_message(job, None), args.repeat)
            full = median_ms(lambda job=job: build_failure_message(job, fetch_log_tail(job, settings)), args.repeat)
            tail = fetch_log_tail(job, settings)
            note = tail.note or ("" if tail.lines else "no CloudWatch stream: nothing fetched")
            print(f"{name:<32}{base:>8.2f}ms{plain:>8.2f}ms{plain / base:>7.2f}x{full:>9.2f}ms{full / base:>7.2f}x"
                  f"{len(tail.lines):>7}  {note}")
        print()
        print(f"medians of {args.repeat} warm runs, {args.lines} lines asked for; moto in process (no network)")
        print(f"one-off logs client creation per container and region ({len(regions)} regions): "
              f"median {statistics.median(cold):.1f} ms, first {cold[0]:.1f} ms")
        config.reset()


if __name__ == "__main__":
    main()
