"""batch-notify: AWS Batch job state changes -> Slack.

A table of handlers: an EventBridge pattern in, a message out. Each function name becomes the
Lambda function's name suffix and its key under ``lambda_functions`` in .chalice/config.json:
keep them stable. To add one, see "Add your own handler" in the README.
"""

import logging
import os

from chalice import Chalice

from chalicelib.critical_running import build_critical_running_message
from chalicelib.event import JOB_QUEUE_BLOCKED
from chalicelib.messages import build_job_state_message, build_queue_blocked_message
from chalicelib.notify import notify
from chalicelib.patterns import job_state_pattern, queue_blocked_pattern

app = Chalice(app_name="batch-notify")
logging.getLogger("batch_notify").setLevel(os.environ.get("LOG_LEVEL", "INFO"))


@app.on_cw_event(job_state_pattern("FAILED"))
def on_job_failed(event):
    notify(event, build_job_state_message)


@app.on_cw_event(job_state_pattern("SUCCEEDED"))
def on_job_succeeded(event):
    notify(event, build_job_state_message)


@app.on_cw_event(queue_blocked_pattern())
def on_job_queue_blocked(event):
    notify(event, build_queue_blocked_message, detail_type=JOB_QUEUE_BLOCKED)


# Example of a fork's own handler: RUNNING, only for jobs named critical-*.
@app.on_cw_event(job_state_pattern("RUNNING", jobName=[{"prefix": "critical-"}]))
def on_critical_job_running(event):
    notify(event, build_critical_running_message)
