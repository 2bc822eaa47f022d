"""batch-notify: AWS Batch job state changes -> Slack.

A table of handlers: an EventBridge pattern in, a message out. Each function name becomes the
Lambda function's name suffix and its key under ``lambda_functions`` in .chalice/config.json:
keep them stable. To add one, see "Add your own handler" in the README.
"""

import gc

# The imports make only objects that live as long as the container: the garbage collector would
# walk them again and again while they run, for nothing (a tenth of a cold start). It is turned
# back on below, with what they made frozen out of every later collection.
gc.disable()

# isort: split
from chalice.app import CloudWatchEvent, Response

from chalicelib.application import BatchNotify
from chalicelib.composing.critical_running import build_critical_running_message
from chalicelib.composing.failure_message import describe_failure
from chalicelib.composing.messages import build_job_state_message, build_queue_blocked_message
from chalicelib.notify import notify
from chalicelib.reading.event import JOB_QUEUE_BLOCKED
from chalicelib.reading.patterns import job_state_pattern, queue_blocked_pattern, sweep_schedule

# isort: split
# Service jobs (SageMaker training through AWS Batch): a group of their own.
from chalicelib.reading.event import SERVICE_JOB_QUEUE_BLOCKED, SERVICE_JOB_STATE_CHANGE
from chalicelib.reading.patterns import service_job_queue_blocked_pattern, service_job_state_pattern

gc.freeze()
gc.enable()

# Chalice, made lenient with malformed envelopes and strict with secrets (chalicelib/application.py).
app = BatchNotify(app_name="batch-notify")


@app.on_cw_event(job_state_pattern("FAILED"))
def on_job_failed(event: CloudWatchEvent) -> None:
    notify(event, describe_failure)


@app.on_cw_event(job_state_pattern("SUCCEEDED"))
def on_job_succeeded(event: CloudWatchEvent) -> None:
    notify(event, build_job_state_message)


@app.on_cw_event(queue_blocked_pattern())
def on_job_queue_blocked(event: CloudWatchEvent) -> None:
    notify(event, build_queue_blocked_message, detail_type=JOB_QUEUE_BLOCKED)


# Service jobs: SageMaker training jobs that AWS Batch queues (their own event kinds and view).
# Their message modules are imported here, so the container jobs' cold starts skip them.
@app.on_cw_event(service_job_state_pattern("FAILED"))
def on_service_job_failed(event: CloudWatchEvent) -> None:
    from chalicelib.composing.service_job_message import build_service_job_message

    notify(event, build_service_job_message, detail_type=SERVICE_JOB_STATE_CHANGE)


@app.on_cw_event(service_job_state_pattern("SUCCEEDED"))
def on_service_job_succeeded(event: CloudWatchEvent) -> None:
    from chalicelib.composing.service_job_message import build_service_job_message

    notify(event, build_service_job_message, detail_type=SERVICE_JOB_STATE_CHANGE)


@app.on_cw_event(service_job_queue_blocked_pattern())
def on_service_job_queue_blocked(event: CloudWatchEvent) -> None:
    from chalicelib.composing.service_job_message import build_service_queue_blocked_message

    notify(event, build_service_queue_blocked_message, detail_type=SERVICE_JOB_QUEUE_BLOCKED)


# Example of a fork's own handler: RUNNING, only for jobs named critical-*.
@app.on_cw_event(job_state_pattern("RUNNING", jobName=[{"prefix": "critical-"}]))
def on_critical_job_running(event: CloudWatchEvent) -> None:
    notify(event, build_critical_running_message)


# Scheduled handlers. Chalice reads a schedule when it imports app.py to deploy, where the
# stage's environment variables are not set: change these two constants, then deploy.
# The sweep also uses its interval as its window (see chalicelib/scheduled/stuck.py), so the schedule
# and the window can never disagree.
STUCK_SWEEP_MINUTES = 15  # 5, 10, 15, 20, 30 or 60: runs on the hour's grid (:00, :15, ...)
DAILY_DIGEST_CRON = "cron(0 9 * * ? *)"  # EventBridge cron, in UTC: 09:00 every day


@app.schedule(sweep_schedule(STUCK_SWEEP_MINUTES))
def on_stuck_job_sweep(event: CloudWatchEvent) -> None:
    from chalicelib.scheduled.stuck import sweep_stuck_jobs  # here, so event handlers' cold starts skip it

    sweep_stuck_jobs(event, every_minutes=STUCK_SWEEP_MINUTES)


@app.schedule(DAILY_DIGEST_CRON)
def on_daily_digest(event: CloudWatchEvent) -> None:
    from chalicelib.scheduled.digest import post_daily_digests  # here, so event handlers' cold starts skip it

    post_daily_digests(event)


# Clicks on the messages' buttons (retry, terminate, acknowledge, snooze), signed by Slack.
# Every content type reaches the code, so a wrong one is answered 415 and logged by us.
# The click code is imported by the first click, so the event handlers' cold starts skip it.
# A fork adds an action with @action("its_action_id") from chalicelib/interactions/endpoint.py.
@app.route("/slack/actions", methods=["POST"], content_types=["*/*"])
def slack_actions() -> Response:
    from chalicelib.interactions.handlers import answer_with_built_ins

    return answer_with_built_ins(app.current_request)
