"""The last lines of a failed job's CloudWatch Logs stream, fetched within a hard deadline.

The tail is a nice-to-have in front of the notification, never in its way: every outcome
(timeout, access denied, missing group or stream, any AWS or network error) becomes a
:class:`LogTail` with no lines and a one-line note saying why. :func:`fetch_log_tail` never
raises and never takes much longer than the configured timeout.

The client comes from ``chalicelib/core/clients.py`` (one per region, from the container's one
boto3 session), made inside the worker, so the deadline covers importing boto3 too. The log is
read in the job's account (the event's: a hub gets member accounts' events): the app's own with
its session, a member account's through its member role (core/member_roles.py, also inside the
worker and the deadline); without ``MEMBER_ROLE_ARN`` the note says the job is in another account.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from chalicelib.core.aws_errors import classify_aws_error, describe_aws_error
from chalicelib.core.clients import ClientConfig, Credentials, client
from chalicelib.core.config import LogTailSettings
from chalicelib.core.member_roles import another_account, reach
from chalicelib.reading.event import JobStateChange
from chalicelib.reading.links import LogLocation, cloudwatch_logs_url, log_location

log = logging.getLogger("batch_notify")

UNAVAILABLE = "log tail unavailable"
# Characters of each log event that are masked and handed on; the message shows fewer.
MAX_LINE_SCAN = 1000



@dataclass(frozen=True)
class LogTail:
    """Last lines of a job's log stream, oldest first (newest last), already masked.

    ``note`` is a short human sentence when there is something to say instead of (or about)
    the lines: why the tail is unavailable, or that the stream is empty. ``LogTail()`` (no
    lines, no note) means there was nothing to fetch: the message says nothing about it.
    """

    lines: tuple[str, ...] = ()
    note: str | None = None
    location: LogLocation | None = None


def fetch_log_tail(job: JobStateChange, settings: LogTailSettings) -> LogTail:
    """The last ``settings.lines`` log events of a FAILED job's CloudWatch Logs stream.

    Only FAILED jobs whose log is in CloudWatch Logs are looked up (``links.log_location``:
    group, stream and the *log's* region, which can differ from the event's; for a
    multi-container job, those of its essential container, or of the first that failed: the
    one whose exit failed the job, not a sidecar's). The call runs
    in a daemon thread joined with ``settings.timeout``: a hung connection cannot hold the
    notification back, and botocore's own timeouts (one attempt, no retries) end it soon
    after. Never raises.
    """
    if not settings.enabled or job.status != "FAILED":
        return LogTail()
    location = log_location(job)
    if location is None:
        # No stream, or not in CloudWatch Logs: the standard message already says why.
        return LogTail()
    if cloudwatch_logs_url(location) is None:
        # A region that is not a real one: never send a signed request there.
        return LogTail(note=f"{UNAVAILABLE}: {location.region!r} is not an AWS region", location=location)
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=_fetch_into, args=(outcome, location, settings, job.account), name="log-tail",
                              daemon=True)
    worker.start()
    worker.join(settings.timeout)
    if worker.is_alive() or not outcome:
        # The thread is left to finish on its own (botocore's timeouts end it); nobody reads it.
        note = f"CloudWatch Logs did not answer within {settings.timeout:g}s"
        _log_unavailable(job, location, note)
        return LogTail(note=f"{UNAVAILABLE}: {note}", location=location)
    if "elsewhere" in outcome:
        # The account the event names cannot be reached: said plainly, and logged by its number only.
        _log_unavailable(job, location, "the job is in an account this app cannot reach")
        return LogTail(note=f"{UNAVAILABLE}: {outcome['elsewhere']}", location=location)
    if "error" in outcome:
        note = _describe_error(outcome["error"])
        _log_unavailable(job, location, note)
        return LogTail(note=f"{UNAVAILABLE}: {note}", location=location)
    lines = outcome["lines"]
    if not lines:
        return LogTail(note="log tail: the log stream has no events", location=location)
    return LogTail(lines=lines, location=location)


def _log_unavailable(job: JobStateChange, location: LogLocation, note: str) -> None:
    # A JSON line, like notify's: the message still goes out, this says why it has no tail.
    log.warning(json.dumps({"job_id": job.job_id, "log_tail": "unavailable", "reason": note,
                            "log_group": location.group, "log_stream": location.stream, "region": location.region,
                            "account": (job.account or "")[:20] or None}))


def _fetch_into(outcome: dict[str, Any], location: LogLocation, settings: LogTailSettings,
                account: str | None) -> None:
    """Worker body: put ``lines``, ``error`` or ``elsewhere`` (the job's account cannot be reached:
    why) into ``outcome``; never let an exception escape."""
    try:
        way = reach(account)
        if way.refusal is not None:
            outcome["elsewhere"] = way.refusal
            return
        try:
            _read_into(outcome, location, settings, way.credentials)
        except BaseException as error:
            # Read with the app's own credentials without knowing the account was ours: a log not
            # found (or not allowed) there may be one of another account, which is then said.
            refusal = None if way.verified else another_account(account)
            if refusal is None or classify_aws_error(error).family not in ("not found", "access denied"):
                raise
            outcome["elsewhere"] = refusal
    except BaseException as error:
        outcome["error"] = error


def _read_into(outcome: dict[str, Any], location: LogLocation, settings: LogTailSettings,
               credentials: Credentials | None) -> None:
    response = logs_client(location.region, settings.timeout, credentials=credentials).get_log_events(
        logGroupName=location.group,
        logStreamName=location.stream,
        startFromHead=False,  # the newest events...
        limit=settings.lines,
    )
    # ...which come back in time order, oldest first: the newest ends up at the bottom.
    messages = [e.get("message", "") for e in response.get("events", []) if isinstance(e, dict)]
    # Masked here, so a secret never exists outside this function, even in the message builder.
    # Cut before masking: a log event can be 256 KB, and only the first few hundred
    # characters of a line are ever shown (a secret past the cut is never shown either).
    from chalicelib.reading.redact import redact_lines  # here: its patterns cost a cold start without a tail

    outcome["lines"] = redact_lines(m[:MAX_LINE_SCAN].rstrip("\r\n") for m in messages if isinstance(m, str))


def logs_client(region: str, timeout: float, *, credentials: Credentials | None = None) -> Any:
    """The CloudWatch Logs client for ``region``, made once per container, region and timeout
    (``credentials``: of a member account, see core/member_roles.py).

    One attempt and short timeouts: the join deadline is the real bound, these make sure an
    abandoned thread does not linger.
    """
    return client("logs", ClientConfig(connect_timeout=timeout, read_timeout=timeout, attempts=1), region=region,
                  credentials=credentials)


def _describe_error(error: BaseException) -> str:
    """A short reason a person can act on, without the AWS request id or the stream name."""
    failure = classify_aws_error(error)
    if failure.family == "not found":
        # AWS says which one is missing; trust only the stream case (moto says "group" for both).
        return "log stream not found" if "stream" in failure.message.lower() else "log group or stream not found"
    # No fix appended: the note sits in the message's context line (the README names the policy).
    return describe_aws_error(error, service="CloudWatch Logs", action="logs:GetLogEvents", fixes={})
