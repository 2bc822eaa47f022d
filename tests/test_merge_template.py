"""The merge template: the dead-letter path, alarms and state table for every handler of app.py.

``python -m tools.merge_template`` makes it from app.py's handlers and the handler-independent
parts in deploy/merge-template.json; ``chalice package --merge-template`` merges it into
chalice's SAM template. Every function EventBridge invokes (``on_cw_event`` and ``schedule``
handlers) gets an on-failure destination, an Errors alarm and the state table (NOTIFY_STATE_TABLE,
and the table's policy with exactly the actions the code calls). The function chalice makes for app.py's
routes (``APIHandler``: the Slack actions) gets the state table and an Errors alarm but no dead-letter
path: API Gateway invokes it synchronously, so Lambda never retries it. A handler added to app.py needs no edit: the
template is made from it (test_a_handler_added_to_an_app_gets_its_parts_with_no_edit). The last
tests run the README's commands (the tool, then the real ``chalice package`` with its output,
offline, tests/chalice_cli.py) and cfn-lint on the result.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.app import Chalice, CloudWatchEvent, ScheduledEventConfig
from moto import mock_aws

from app import app
from chalicelib.core import config, state_table
from chalicelib.deciding import dedup
from chalicelib.reading.patterns import job_state_pattern
from tests.chalice_cli import aws_env, cfn_lint, chalice_env, copy_project, run_chalice
from tools import merge_template
from tools.eventbridge import registered_patterns
from tools.merge_template import API_FUNCTION, API_ROLE, function_id

BASE: dict[str, Any] = json.loads(merge_template.BASE.read_text())
TEMPLATE: dict[str, Any] = merge_template.build(app)
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
EVENT_HANDLERS = sorted(registered_patterns(app))  # on_cw_event: notify()
SCHEDULED = sorted(s.name for s in app.event_sources if isinstance(s, ScheduledEventConfig))
HANDLERS = sorted([*EVENT_HANDLERS, *SCHEDULED])  # invoked asynchronously by EventBridge
# Route view functions all run in chalice's one API function (invoked synchronously by API Gateway).
ROUTE_VIEWS = sorted(h for h in app.handler_map if h not in HANDLERS)
DLQ_ARN = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
STATE_TABLE_VARIABLE = {"Fn::If": ["StateTableEnabled", {"Ref": "StateTable"}, ""]}
FOURTEEN_DAYS = 14 * 86400
# EventBridge retries delivering to Lambda for up to 24 hours.
EVENTBRIDGE_RETRY_SECONDS = 24 * 3600


def alarm_actions() -> Any:
    return {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


@pytest.mark.parametrize("handler", HANDLERS)
def test_every_handler_has_its_dead_letter_path_and_alarm(handler):
    f = function_id(handler)
    assert {f, f"{f}EventInvokeConfig", f"{f}ErrorsAlarm"} <= set(RESOURCES)
    assert {"Ref": f"{f}Role"} in RESOURCES["DeadLetterQueueSendPolicy"]["Properties"]["Roles"]


@pytest.mark.parametrize("handler", HANDLERS)
def test_failed_events_go_to_the_dead_letter_queue_after_two_retries(handler):
    f = function_id(handler)
    config = RESOURCES[f"{f}EventInvokeConfig"]
    assert config["Type"] == "AWS::Lambda::EventInvokeConfig"
    # Lambda checks that the role may send to the destination when the config is created.
    assert config["DependsOn"] == "DeadLetterQueueSendPolicy"
    props = config["Properties"]
    assert props["FunctionName"] == {"Ref": f} and props["Qualifier"] == "$LATEST"
    assert props["MaximumRetryAttempts"] == 2
    assert 60 <= props["MaximumEventAgeInSeconds"] <= 21600
    assert props["DestinationConfig"] == {"OnFailure": {"Destination": DLQ_ARN}}


@pytest.mark.parametrize("handler", HANDLERS)
def test_an_alarm_on_each_functions_errors(handler):
    f = function_id(handler)
    alarm = RESOURCES[f"{f}ErrorsAlarm"]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": f}}]
    # >= 1 error in one 5-minute period; no invocations is not a problem.
    assert (props["Threshold"], props["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert (props["Period"], props["EvaluationPeriods"], props["TreatMissingData"]) == (300, 1, "notBreaching")
    assert props["AlarmActions"] == alarm_actions()
    assert handler in props["AlarmDescription"]


@pytest.mark.parametrize("handler", HANDLERS)
def test_every_handler_is_told_the_state_table_and_its_role_may_use_it(handler):
    # The event handlers claim events and keep job messages; the sweep keeps its shared reports;
    # every handler that posts is paced through the table.
    f = function_id(handler)
    assert RESOURCES.get(f) == {"Properties": {"Environment": {"Variables": {
        "NOTIFY_STATE_TABLE": STATE_TABLE_VARIABLE}}}}
    assert state_table.TABLE == "NOTIFY_STATE_TABLE"
    assert {"Ref": f"{f}Role"} in RESOURCES["StateTablePolicy"]["Properties"]["Roles"]


def test_nothing_for_handlers_that_do_not_exist():
    handler_ids = {function_id(h) for h in HANDLERS}
    function_ids = handler_ids | {API_FUNCTION}
    # Entries without a Type are merged into chalice's resources: they must be functions it makes.
    assert {k for k, v in RESOURCES.items() if "Type" not in v} == function_ids
    for kind, suffix, expected in (("AWS::Lambda::EventInvokeConfig", "EventInvokeConfig", handler_ids),
                                   ("AWS::CloudWatch::Alarm", "ErrorsAlarm", function_ids)):
        named = {k[: -len(suffix)] for k, v in RESOURCES.items() if v.get("Type") == kind and k.endswith(suffix)}
        assert named == expected, f"{kind}: {sorted(named ^ expected)}"
    roles = RESOURCES["DeadLetterQueueSendPolicy"]["Properties"]["Roles"]
    assert sorted(r["Ref"] for r in roles) == sorted(f"{f}Role" for f in handler_ids)
    roles = RESOURCES["StateTablePolicy"]["Properties"]["Roles"]
    assert sorted(r["Ref"] for r in roles) == sorted([*(f"{f}Role" for f in handler_ids), API_ROLE])


def test_app_py_has_routes_and_they_get_one_api_function():
    # So the API tests below are not about an app without routes.
    assert ROUTE_VIEWS == ["slack_actions"] and "/slack/actions" in app.routes
    assert merge_template.api_handler_ids(app) == (API_FUNCTION, API_ROLE) == ("APIHandler", "ApiHandlerRole")


def test_the_api_function_gets_the_state_table_and_an_alarm_but_no_dead_letter_path():
    assert RESOURCES[API_FUNCTION] == {"Properties": {"Environment": {"Variables": {
        "NOTIFY_STATE_TABLE": STATE_TABLE_VARIABLE}}}}
    assert {"Ref": API_ROLE} in RESOURCES["StateTablePolicy"]["Properties"]["Roles"]
    # API Gateway invokes it synchronously: no async retries, nothing for a dead-letter queue.
    assert f"{API_FUNCTION}EventInvokeConfig" not in RESOURCES
    assert {"Ref": API_ROLE} not in RESOURCES["DeadLetterQueueSendPolicy"]["Properties"]["Roles"]
    props = RESOURCES[f"{API_FUNCTION}ErrorsAlarm"]["Properties"]
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": API_FUNCTION}}]
    assert (props["MetricName"], props["Threshold"], props["TreatMissingData"]) == ("Errors", 1, "notBreaching")
    assert props["AlarmActions"] == alarm_actions()
    assert "not retried" in props["AlarmDescription"] and "dead-letter" not in props["AlarmDescription"]


def test_an_app_without_routes_gets_no_api_parts():
    resources = merge_template.build(Chalice(app_name="events-only"))["Resources"]
    assert merge_template.api_handler_ids(Chalice(app_name="events-only")) is None
    assert not {API_FUNCTION, f"{API_FUNCTION}ErrorsAlarm"} & set(resources)
    assert resources["StateTablePolicy"]["Properties"]["Roles"] == []


def test_the_dead_letter_queue_keeps_messages_14_days_and_alarms_when_not_empty():
    queue = RESOURCES["DeadLetterQueue"]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["MessageRetentionPeriod"] == FOURTEEN_DAYS
    alarm = RESOURCES["DeadLetterQueueAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    [statement] = RESOURCES["DeadLetterQueueSendPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", ["sqs:SendMessage"])
    assert statement["Resource"] == [DLQ_ARN]


def test_the_state_table_is_optional_on_demand_with_ttl_and_only_the_actions_the_code_calls():
    assert TEMPLATE["Parameters"]["CreateStateTable"]["AllowedValues"] == ["true", "false"]
    assert TEMPLATE["Parameters"]["CreateStateTable"]["Default"] == "true"
    assert TEMPLATE["Conditions"]["StateTableEnabled"] == {"Fn::Equals": [{"Ref": "CreateStateTable"}, "true"]}
    table = RESOURCES["StateTable"]
    assert (table["Type"], table["Condition"]) == ("AWS::DynamoDB::Table", "StateTableEnabled")
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    # The schema state_table.py reads: partition key pk (S), no sort key, TTL on expires_at.
    assert props["KeySchema"] == [{"AttributeName": state_table.KEY, "KeyType": "HASH"}] == [
        {"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": state_table.TTL_ATTRIBUTE, "Enabled": True}
    assert state_table.TTL_ATTRIBUTE == "expires_at"
    policy = RESOURCES["StateTablePolicy"]
    assert policy["Condition"] == "StateTableEnabled"
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == list(state_table.IAM_ACTIONS)
    assert statement["Resource"] == [{"Fn::GetAtt": ["StateTable", "Arn"]}]
    assert TEMPLATE["Outputs"]["StateTableName"] == {
        "Condition": "StateTableEnabled", "Description": "the state table (NOTIFY_STATE_TABLE)",
        "Value": {"Ref": "StateTable"}}


def test_nothing_is_left_of_the_dedup_table():
    text = json.dumps(TEMPLATE)
    for gone in ("DedupTable", "DedupEnabled", "Deduplicate", "NOTIFY_DEDUP_TABLE", "event_id"):
        assert gone not in text


def test_the_table_the_template_makes_is_one_the_code_can_use(monkeypatch):
    # Created in moto from the template's own properties, then used by the state table and dedup.
    props = RESOURCES["StateTable"]["Properties"]
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(TableName="from-the-template", BillingMode=props["BillingMode"],
                            KeySchema=props["KeySchema"], AttributeDefinitions=props["AttributeDefinitions"])
        client.update_time_to_live(TableName="from-the-template",
                                   TimeToLiveSpecification=props["TimeToLiveSpecification"])
        monkeypatch.setenv("NOTIFY_STATE_TABLE", "from-the-template")
        config.reset()
        table = state_table.state_table()
        assert table is not None
        table.put({"pk": "job#j-1", "ts": "1.2", "expires_at": table.expires(1760000000)})
        assert table.update("job#j-1", "SET #order = :o", names={"#order": "order"}, values={":o": 305})["ts"] == "1.2"
        held = dedup.claim("event-1")
        assert held.should_post
        dedup.mark_posted(held)
        assert not dedup.claim("event-1").should_post
        table.delete("job#j-1")
        assert table.get("job#j-1") is None


def test_the_state_table_remembers_an_event_longer_than_it_can_be_redelivered():
    longest_event_age = max(r["Properties"]["MaximumEventAgeInSeconds"] for r in RESOURCES.values()
                            if r.get("Type") == "AWS::Lambda::EventInvokeConfig")
    assert EVENTBRIDGE_RETRY_SECONDS + longest_event_age < state_table.DEFAULT_TTL_DAYS * 86400


# -- made from app.py: nothing per handler is kept by hand ------------------------------------

def test_the_committed_base_holds_nothing_per_handler():
    resources = BASE["Resources"]
    assert sorted(resources) == ["DeadLetterQueue", "DeadLetterQueueAlarm", "DeadLetterQueueSendPolicy",
                                 "StateTable", "StateTablePolicy"]
    for policy in ("DeadLetterQueueSendPolicy", "StateTablePolicy"):
        assert resources[policy]["Properties"]["Roles"] == [], f"{policy}'s Roles come from app.py"
    assert merge_template.build(app, BASE)["Resources"].keys() >= resources.keys()


def test_a_handler_added_to_an_app_gets_its_parts_with_no_edit():
    fork = Chalice(app_name="fork")

    @fork.on_cw_event(job_state_pattern("SUCCEEDED"))
    def on_etl_job_succeeded(event: CloudWatchEvent) -> None: ...

    @fork.schedule("rate(1 hour)")
    def on_hourly_report(event: CloudWatchEvent) -> None: ...

    resources = merge_template.build(fork)["Resources"]
    assert set(resources) - set(BASE["Resources"]) == {
        "OnEtlJobSucceeded", "OnEtlJobSucceededEventInvokeConfig", "OnEtlJobSucceededErrorsAlarm",
        "OnHourlyReport", "OnHourlyReportEventInvokeConfig", "OnHourlyReportErrorsAlarm"}
    both = [{"Ref": "OnEtlJobSucceededRole"}, {"Ref": "OnHourlyReportRole"}]
    assert resources["DeadLetterQueueSendPolicy"]["Properties"]["Roles"] == both
    assert resources["StateTablePolicy"]["Properties"]["Roles"] == both
    assert resources["OnHourlyReport"]["Properties"]["Environment"]["Variables"] == {
        "NOTIFY_STATE_TABLE": STATE_TABLE_VARIABLE}
    assert "on_etl_job_succeeded" in resources["OnEtlJobSucceededErrorsAlarm"]["Properties"]["AlarmDescription"]


def test_building_leaves_the_base_as_it_was():
    before = json.dumps(BASE)
    merge_template.build(app, BASE)
    assert json.dumps(BASE) == before


# -- the README's commands: the tool, then the real chalice package, merged, and cfn-lint ---------

@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("merged")
    project = copy_project(tmp / "project")
    # As the README runs it: the tool prints the template, chalice package merges it.
    made = subprocess.run([sys.executable, "-m", "tools.merge_template"], cwd=project, env=aws_env(),
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(made.stdout) == TEMPLATE
    (project / "build").mkdir()
    (project / "build" / "merge-template.json").write_text(made.stdout)
    out = tmp / "out"
    run_chalice(project, "package", "--stage", "prod", "--merge-template", "build/merge-template.json", str(out),
                env=chalice_env())
    return out / "sam.json"


def test_the_tool_writes_to_a_file_too(tmp_path):
    assert merge_template.main(["--output", str(tmp_path / "nested" / "merge.json")]) == 0
    assert json.loads((tmp_path / "nested" / "merge.json").read_text()) == TEMPLATE


def test_the_merged_template_passes_cfn_lint(merged):
    cfn_lint(merged)  # raises with cfn-lint's findings


def test_every_packaged_function_got_its_dead_letter_path_alarm_and_table(merged):
    resources = json.loads(merged.read_text())["Resources"]
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    # One function per EventBridge handler, and chalice's one for every route (Handler "app.app").
    assert sorted(functions) == sorted([*(function_id(h) for h in HANDLERS), API_FUNCTION])
    assert functions[API_FUNCTION]["Properties"]["Handler"] == "app.app"
    for f, function in functions.items():
        handler = function["Properties"]["Handler"].removeprefix("app.")
        role = API_ROLE if f == API_FUNCTION else f"{f}Role"
        if f == API_FUNCTION:  # synchronous (API Gateway): no retries, no dead-letter path
            assert f"{f}EventInvokeConfig" not in resources
        else:
            assert resources[f"{f}EventInvokeConfig"]["Properties"]["FunctionName"] == {"Ref": f}, handler
            assert {"Ref": role} in resources["DeadLetterQueueSendPolicy"]["Properties"]["Roles"], handler
        assert resources[f"{f}ErrorsAlarm"]["Properties"]["Dimensions"][0]["Value"] == {"Ref": f}
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}
        assert resources[role]["Type"] == "AWS::IAM::Role"
        variables = function["Properties"]["Environment"]["Variables"]
        # chalice's stage variables are kept, the table is added (to every function).
        assert variables["SLACK_BOT_TOKEN_PARAM"] == "/batch-notify/prod/slack-bot-token"
        assert variables["NOTIFY_STATE_TABLE"] == STATE_TABLE_VARIABLE, handler
        assert {"Ref": role} in resources["StateTablePolicy"]["Properties"]["Roles"], handler
    assert resources["StateTable"]["Type"] == "AWS::DynamoDB::Table"
