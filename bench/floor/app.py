"""The floor of bench/cold_start.py: about the least a Chalice + slack-sdk notifier for failed
Batch jobs does (the same work as batch-notify's on_job_failed: a Block Kit message with a log
link, posted to a webhook), packaged by Chalice like batch-notify. Not deployed, not a model."""

import os
from urllib.parse import quote

from chalice import Chalice
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.webhook import WebhookClient

app = Chalice(app_name="floor")


@app.on_cw_event({"source": ["aws.batch"], "detail-type": ["Batch Job State Change"], "detail": {"status": ["FAILED"]}})
def on_job_failed(event):
    detail, region = event.detail, event.region
    stream = (detail.get("container") or {}).get("logStreamName", "")
    stream = quote(quote(stream, safe=""), safe="").replace("%", "$")
    logs = (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#logsV2:log-groups/log-group/$252Faws$252Fbatch$252Fjob/log-events/{stream}")
    blocks = [HeaderBlock(text=f"Job failed: {detail.get('jobName')}"[:150]),
              SectionBlock(fields=[f"*Job queue*\n{detail.get('jobQueue')}",
                                   f"*Reason*\n{detail.get('statusReason')}"]),
              ActionsBlock(elements=[ButtonElement(text="View logs", url=logs)]),
              ContextBlock(elements=[MarkdownTextObject(text=f"Job ID `{detail.get('jobId')}`")])]
    text = f"Job failed: {detail.get('jobName')}"
    response = WebhookClient(os.environ["SLACK_WEBHOOK_URL"]).send(text=text, blocks=blocks)
    if response.status_code != 200:
        raise RuntimeError(f"Slack answered {response.status_code}")
