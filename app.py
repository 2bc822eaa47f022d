"""batch-notify: AWS Batch job state changes -> Slack.

One handler per EventBridge pattern. Each function name becomes the Lambda function's name
suffix and its key under ``lambda_functions`` in .chalice/config.json: keep them stable.
To add a handler: a pattern from ``job_state_pattern`` and a message builder.
"""

import logging
import os

from chalice import Chalice

from chalicelib.messages import build_job_state_message
from chalicelib.notify import notify
from chalicelib.patterns import job_state_pattern

app = Chalice(app_name="batch-notify")
logging.getLogger("batch_notify").setLevel(os.environ.get("LOG_LEVEL", "INFO"))


@app.on_cw_event(job_state_pattern("FAILED"))
def on_job_failed(event):
    notify(event, build_job_state_message)


@app.on_cw_event(job_state_pattern("SUCCEEDED"))
def on_job_succeeded(event):
    notify(event, build_job_state_message)
