"""The template for ``chalice package --merge-template``, made from app.py's handlers.

    mkdir -p build && .venv/bin/python -m tools.merge_template > build/merge-template.json
    .venv/bin/chalice package --stage prod --merge-template build/merge-template.json out/

``deploy/merge-template.json`` holds what no handler changes: the dead-letter queue and its
alarm, the state table (``NOTIFY_STATE_TABLE``: dedup claims, job messages, storm groups,
pacing; chalicelib/core/state_table.py), their policies, parameters and outputs. To it, this
adds for every function EventBridge invokes (the ``on_cw_event`` and ``schedule`` handlers) an
on-failure destination and an alarm on its Errors, the state table's variable, and its role to
the queue's send policy and the table's policy: the event handlers claim events and keep job
messages, the scheduled ones keep the sweep's shared reports, and all of them pace their posts.
A handler added to app.py gets all of it with no edit here.

When app.py has routes (``POST /slack/actions``), chalice makes one more function for all of
them, ``APIHandler``, which API Gateway invokes synchronously: Lambda never retries it and
has nothing to send to a dead-letter queue (a failed click is answered, or Slack shows the
clicker an error), so it gets no on-failure destination and its role is not in the queue's
send policy. It does get the state table (action claims, acknowledgements, snoozes) and an
Errors alarm: an error there is a click nobody was told the outcome of.
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

from chalicelib.core import state_table

BASE = Path(__file__).resolve().parent.parent / "deploy" / "merge-template.json"
DESCRIPTION = (
    "batch-notify's delivery safety net, merged into chalice's template (made by `python -m tools.merge_template` "
    "from app.py and deploy/merge-template.json): for every function EventBridge invokes, an on-failure "
    "destination (a dead-letter queue); for every function, an alarm on its Errors and the optional state table "
    "(NOTIFY_STATE_TABLE)."
)
# Lambda's own default, said out loud: two retries, then the dead-letter queue.
MAXIMUM_RETRY_ATTEMPTS = 2
# Six hours, Lambda's maximum: an event waiting out a Slack outage is not dropped early.
MAXIMUM_EVENT_AGE_SECONDS = 21600
DEAD_LETTER_QUEUE_ARN = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
# Empty when the table is left out (CreateStateTable=false): the app then posts one message per event.
STATE_TABLE_VARIABLE = {"Fn::If": ["StateTableEnabled", {"Ref": "StateTable"}, ""]}
# The logical IDs chalice's SAM output gives the function serving every route, and its role.
API_FUNCTION = "APIHandler"
API_ROLE = to_cfn_resource_name("api_handler_role")  # "ApiHandlerRole": not API_FUNCTION + "Role"


def function_id(handler: str) -> str:
    """The logical ID chalice's SAM output gives the handler's function (its role: + ``Role``)."""
    return to_cfn_resource_name(handler)


def invoked_handlers(app: Chalice) -> list[str]:
    """Every handler EventBridge invokes asynchronously (patterns and schedules), in app.py's order."""
    return [s.name for s in app.event_sources if isinstance(s, (CloudWatchEventConfig, ScheduledEventConfig))]


def api_handler_ids(app: Chalice) -> tuple[str, str] | None:
    """``(function, role)`` logical IDs of the one function chalice makes for all of ``app``'s routes,
    or ``None`` when it has no routes (no API Gateway, no such function)."""
    return (API_FUNCTION, API_ROLE) if app.routes else None


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
    return _errors_alarm(function_id(handler),
                         f"batch-notify: {handler} raised; Lambda retries it twice, then sends the event to the "
                         "dead-letter queue. The function's log says why.")


def api_errors_alarm() -> dict[str, Any]:
    """The same alarm on the routes' function, whose failures are not retried."""
    return _errors_alarm(API_FUNCTION,
                         "batch-notify: the Slack actions route (APIHandler) raised: a click got no answer and is "
                         "not retried (API Gateway invokes synchronously). The function's log says why.")


def _errors_alarm(function: str, description: str) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": ALARM_ACTIONS,
        },
    }


def state_table_variable() -> dict[str, Any]:
    """Merged into chalice's own function resource: its stage variables stay, the table's is added."""
    return {"Properties": {"Environment": {"Variables": {state_table.TABLE: STATE_TABLE_VARIABLE}}}}


def build(app: Chalice, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The merge template for ``app``: ``base`` (default: deploy/merge-template.json) plus each function's parts."""
    template = copy.deepcopy(base if base is not None else json.loads(BASE.read_text()))
    template["Description"] = DESCRIPTION
    resources: dict[str, Any] = template["Resources"]
    for handler in invoked_handlers(app):
        f = function_id(handler)
        resources[f] = state_table_variable()
        resources[f"{f}EventInvokeConfig"] = invoke_config(handler)
        resources[f"{f}ErrorsAlarm"] = errors_alarm(handler)
        resources["DeadLetterQueueSendPolicy"]["Properties"]["Roles"].append({"Ref": f"{f}Role"})
        resources["StateTablePolicy"]["Properties"]["Roles"].append({"Ref": f"{f}Role"})
    api = api_handler_ids(app)
    if api is not None:  # synchronous: the table and an alarm, no dead-letter path
        function, role = api
        resources[function] = state_table_variable()
        resources[f"{function}ErrorsAlarm"] = api_errors_alarm()
        resources["StateTablePolicy"]["Properties"]["Roles"].append({"Ref": role})
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
