"""The template for ``chalice package --merge-template``, made from app.py's handlers.

    mkdir -p build && .venv/bin/python -m tools.merge_template > build/merge-template.json
    .venv/bin/chalice package --stage prod --merge-template build/merge-template.json out/

``deploy/merge-template.json`` holds what no handler changes: the dead-letter queue and its
alarm, the dedup table, their policies, parameters and outputs. To it, this adds for every
function EventBridge invokes (the ``on_cw_event`` and ``schedule`` handlers) an on-failure
destination and an alarm on its Errors, and its role to the queue's send policy; and for the
``on_cw_event`` handlers, which go through ``notify`` and so claim events, the dedup table's
variable and its policy. A handler added to app.py gets all of it with no edit here.
Development only (like the rest of tools/): never deployed.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from chalice.app import Chalice, CloudWatchEventConfig, ScheduledEventConfig
from chalice.utils import to_cfn_resource_name

from chalicelib.deciding import dedup

BASE = Path(__file__).resolve().parent.parent / "deploy" / "merge-template.json"
DESCRIPTION = (
    "batch-notify's delivery safety net, merged into chalice's template (made by `python -m tools.merge_template` "
    "from app.py and deploy/merge-template.json): for every function, an on-failure destination (a dead-letter "
    "queue) and an alarm on its Errors; and the optional dedup table of the event handlers."
)
# Lambda's own default, said out loud: two retries, then the dead-letter queue.
MAXIMUM_RETRY_ATTEMPTS = 2
# Six hours, Lambda's maximum: an event waiting out a Slack outage is not dropped early.
MAXIMUM_EVENT_AGE_SECONDS = 21600
DEAD_LETTER_QUEUE_ARN = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
DEDUP_TABLE_VARIABLE = {"Fn::If": ["DedupEnabled", {"Ref": "DedupTable"}, ""]}


def function_id(handler: str) -> str:
    """The logical ID chalice's SAM output gives the handler's function (its role: + ``Role``)."""
    return to_cfn_resource_name(handler)


def event_handlers(app: Chalice) -> list[str]:
    """The ``on_cw_event`` handlers, in app.py's order: they go through notify, so dedup too."""
    return [s.name for s in app.event_sources if isinstance(s, CloudWatchEventConfig)]


def invoked_handlers(app: Chalice) -> list[str]:
    """Every handler EventBridge invokes asynchronously (patterns and schedules), in app.py's order."""
    return [s.name for s in app.event_sources if isinstance(s, (CloudWatchEventConfig, ScheduledEventConfig))]


def invoke_config(handler: str) -> dict[str, Any]:
    """Retries, then the dead-letter queue, for ``handler``'s function."""
    return {
        "Type": "AWS::Lambda::EventInvokeConfig",
        # Lambda checks that the role may send to the destination when the config is created.
        "DependsOn": "DeadLetterQueueSendPolicy",
        "Properties": {
            "FunctionName": {"Ref": function_id(handler)},
            "Qualifier": "$LATEST",
            "MaximumRetryAttempts": MAXIMUM_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": MAXIMUM_EVENT_AGE_SECONDS,
            "DestinationConfig": {"OnFailure": {"Destination": DEAD_LETTER_QUEUE_ARN}},
        },
    }


def errors_alarm(handler: str) -> dict[str, Any]:
    """An alarm on ``handler``'s Errors: one in five minutes; no invocations is not a problem."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": f"batch-notify: {handler} raised; Lambda retries it twice, then sends the event to "
                                "the dead-letter queue. The function's log says why.",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function_id(handler)}}],
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": ALARM_ACTIONS,
        },
    }


def dedup_variable() -> dict[str, Any]:
    """Merged into chalice's own function resource: its stage variables stay, the table's is added."""
    return {"Properties": {"Environment": {"Variables": {dedup.TABLE: DEDUP_TABLE_VARIABLE}}}}


def build(app: Chalice, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The merge template for ``app``: ``base`` (default: deploy/merge-template.json) plus each function's parts."""
    template = copy.deepcopy(base if base is not None else json.loads(BASE.read_text()))
    template["Description"] = DESCRIPTION
    resources: dict[str, Any] = template["Resources"]
    deduplicated = set(event_handlers(app))
    for handler in invoked_handlers(app):
        f = function_id(handler)
        if handler in deduplicated:
            resources[f] = dedup_variable()
        resources[f"{f}EventInvokeConfig"] = invoke_config(handler)
        resources[f"{f}ErrorsAlarm"] = errors_alarm(handler)
        resources["DeadLetterQueueSendPolicy"]["Properties"]["Roles"].append({"Ref": f"{f}Role"})
        if handler in deduplicated:
            # Least privilege: the scheduled handlers post through deliver(), not notify(): no table.
            resources["DedupTablePolicy"]["Properties"]["Roles"].append({"Ref": f"{f}Role"})
    return template


def main(argv: list[str] | None = None) -> int:
    """Print the merge template for app.py (or write it to ``--output``)."""
    parser = argparse.ArgumentParser(prog="python -m tools.merge_template", description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, help="write it here (folders made as needed) instead of stdout")
    args = parser.parse_args(argv)
    from app import app  # the project's app.py, from the directory this runs in

    text = json.dumps(build(app), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
