"""The real ``chalice deploy --stage dev`` against an AWS emulator (moto_server on loopback).

What deploys must be what the other tests tested: one Lambda function per handler with the
stage's settings, one EventBridge rule per ``on_cw_event`` handler with app.py's pattern (and
one per ``schedule`` handler with its schedule), each function's role holding exactly the
stage's policy. The fixture events are then put on the emulated bus, with an SQS queue as a
target of every deployed rule, to see which rules each one reaches: exactly the handlers that
app.py's own patterns select for it (tests/reach.py; moto evaluates both, so nothing here
says in Python what a pattern means). app.py's routes (``POST /slack/actions``) deploy as one more
function, ``batch-notify-<stage>`` (chalice's API handler, with the stage's ``api_handler`` memory),
behind a REST API that may invoke it. Last, ``chalice delete`` must remove it all.

moto 5.2.5's ImportRestApi takes OpenAPI 3 only, and chalice sends Swagger 2.0: the emulator
process is started with a ``sitecustomize`` (:data:`MOTO_IMPORT_FIX`) that imports a Swagger 2.0
document as its API, resources and methods. It fixes the emulator only; chalice and the app run
unchanged.

The deployment, and everything observed of it, happens once in the module fixture (so the
tests can run in any order); ``chalice delete`` runs in its own test. Offline: see
tests/chalice_cli.py.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chalice.app import ScheduledEventConfig

from app import app
from tests.chalice_cli import MotoServer, chalice_config, chalice_env, copy_project, run_chalice
from tests.conftest import event_names, load_event
from tests.reach import reached
from tools.eventbridge import registered_patterns

STAGE = "dev"
APP_NAME = "batch-notify"
PREFIX = f"{APP_NAME}-{STAGE}-"
PROBE_TARGET_ID = "routing-probe"

PATTERNS = registered_patterns(app)


def _expression(schedule: Any) -> str:
    """A schedule as EventBridge holds it: chalice's Rate/Cron objects render themselves."""
    return schedule.to_string() if hasattr(schedule, "to_string") else str(schedule)


SCHEDULES = {source.name: _expression(source.schedule_expression)
             for source in app.event_sources if isinstance(source, ScheduledEventConfig)}
HANDLERS = sorted([*PATTERNS, *SCHEDULES])  # a function and a rule each
API_FUNCTION = f"{APP_NAME}-{STAGE}"  # every route's one function: chalice's name, no suffix
API_CONFIG_KEY = "api_handler"  # its key under lambda_functions in .chalice/config.json

MOTO_IMPORT_FIX = textwrap.dedent('''
    """Started with moto_server (tests/test_deploy.py): ImportRestApi of chalice's Swagger 2.0 document.

    moto 5.2.5 imports OpenAPI 3 only (and requires info.description): for a Swagger 2.0 document,
    make the API, its resources, their methods and integrations (what CreateDeployment checks).
    """
    from moto.apigateway import models

    _import_rest_api = models.APIGatewayBackend.import_rest_api


    def import_rest_api(self, api_doc, fail_on_warnings):
        if not str(api_doc.get("swagger", "")).startswith("2."):
            return _import_rest_api(self, api_doc, fail_on_warnings)
        api = self.create_rest_api(name=api_doc["info"]["title"], description=api_doc["info"].get("description", ""))
        for path, methods in api_doc.get("paths", {}).items():
            resource = api.default
            for part in path.strip("/").split("/"):
                known = [r for r in api.resources.values() if r.parent_id == resource.id and r.path_part == part]
                resource = known[0] if known else self.create_resource(api.id, resource.id, part)
            for method, operation in methods.items():
                self.put_method(api.id, resource.id, method.upper(), "NONE")
                integration = operation["x-amazon-apigateway-integration"]
                self.put_integration(api.id, resource.id, method.upper(), integration["type"].upper(),
                                     integration["uri"], integration["httpMethod"])
        return api


    models.APIGatewayBackend.import_rest_api = import_rest_api
''')



@dataclass(repr=False)
class Deployment:
    project: Path
    env: dict[str, str]
    aws: MotoServer
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> configuration
    function_policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> resource policy
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> rule
    targets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # rule name -> targets
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> role
    rest_apis: list[dict[str, Any]] = field(default_factory=list)
    api_resources: list[dict[str, Any]] = field(default_factory=list)  # the (one) API's paths
    inline_policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> {policy: document}
    attached_policies: dict[str, list[str]] = field(default_factory=dict)  # role -> managed policy ARNs
    reached: dict[str, set[str]] = field(default_factory=dict)  # fixture -> handlers its rules reached

    def __repr__(self) -> str:  # keeps failure reports short
        return f"<Deployment of {self.project} on {self.aws.url}>"

    def rule_of(self, handler: str) -> list[str]:
        """Names of the rules that target ``handler``'s function."""
        arn = self.functions[PREFIX + handler]["FunctionArn"]
        return [name for name, targets in self.targets.items() if any(t["Arn"] == arn for t in targets)]


def _observe(deployment: Deployment) -> None:
    """Snapshot, through boto3, everything the deploy created."""
    lam, events, iam = (deployment.aws.client(s) for s in ("lambda", "events", "iam"))
    apigateway = deployment.aws.client("apigateway")
    deployment.rest_apis = apigateway.get_rest_apis()["items"]
    for api in deployment.rest_apis:
        deployment.api_resources += apigateway.get_resources(restApiId=api["id"])["items"]
    for page in lam.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            name = function["FunctionName"]
            deployment.functions[name] = function
            deployment.function_policies[name] = json.loads(lam.get_policy(FunctionName=name)["Policy"])
    for page in events.get_paginator("list_rules").paginate():
        for rule in page["Rules"]:
            deployment.rules[rule["Name"]] = rule
            deployment.targets[rule["Name"]] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            name = role["RoleName"]
            deployment.roles[name] = role
            deployment.inline_policies[name] = {
                policy: iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]
            }
            deployment.attached_policies[name] = [
                p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]


def _route_fixtures(deployment: Deployment) -> None:
    """Put every fixture event on the bus; record which deployed rules (as handlers) it reached.

    Each deployed pattern rule gets an SQS queue as a target. moto's EventBridge cannot deliver
    to a Lambda target (put_events fails with NotImplementedError for any matching rule that
    has one), and it hands a rule without a pattern (a schedule) every event put on the bus;
    so while the events are put, the queue stands in for each pattern rule's function target
    and the schedules have none. The targets are put back afterwards, exactly as chalice made
    them. The rules' patterns, which are what is tested here, are never touched.
    """
    events, sqs = deployment.aws.client("events"), deployment.aws.client("sqs")
    handler_of_arn = {f["FunctionArn"]: name[len(PREFIX):] for name, f in deployment.functions.items()}
    queues: dict[str, str] = {}  # handler -> queue URL
    swapped: dict[str, list[dict[str, Any]]] = {}  # rule -> its original targets
    try:
        for rule, targets in deployment.targets.items():
            if not targets:
                continue
            swapped[rule] = targets
            events.remove_targets(Rule=rule, Ids=[t["Id"] for t in targets])
            if "EventPattern" not in deployment.rules[rule]:
                continue  # a schedule: moto hands a rule without a pattern every event, so it stays without target
            handler = next(handler_of_arn[t["Arn"]] for t in targets if t["Arn"] in handler_of_arn)
            url = sqs.create_queue(QueueName=f"probe-{handler}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            events.put_targets(Rule=rule, Targets=[{"Id": PROBE_TARGET_ID, "Arn": arn}])
            queues[handler] = url
        for name in event_names():
            event = load_event(name)
            result = events.put_events(Entries=[{
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
                "Resources": event.get("resources", []),
            }])
            assert result["FailedEntryCount"] == 0, f"{name}: the bus refused it: {result['Entries']}"
            deployment.reached[name] = set()
            for handler, url in queues.items():
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                for message in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    assert json.loads(message["Body"])["detail"] == event["detail"]
                if messages:
                    deployment.reached[name].add(handler)
    finally:
        for rule, targets in swapped.items():
            if "EventPattern" in deployment.rules[rule]:
                events.remove_targets(Rule=rule, Ids=[PROBE_TARGET_ID])
            events.put_targets(Rule=rule, Targets=targets)
            assert events.list_targets_by_rule(Rule=rule)["Targets"] == targets


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("deploy")
    project = copy_project(tmp / "project")  # .chalice/deployed/ is written there, not in the repo
    (tmp / "moto_fix").mkdir()
    (tmp / "moto_fix" / "sitecustomize.py").write_text(MOTO_IMPORT_FIX)
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:  # only the emulator's process gets the fix
            patch.setenv("PYTHONPATH", str(tmp / "moto_fix"))
            aws = stack.enter_context(MotoServer(log=tmp / "moto_server.log"))
        env = chalice_env(endpoint_url=aws.url)
        run_chalice(project, "deploy", "--stage", STAGE, env=env)
        deployed = Deployment(project=project, env=env, aws=aws)
        _observe(deployed)
        _route_fixtures(deployed)
        yield deployed


def _stage_lookup(config: Mapping[str, Any], handler: str, key: str) -> Any:
    """A per-function setting as chalice resolves it: stage's function, stage, function, top level."""
    stage = config["stages"][STAGE]
    for scope in (stage.get("lambda_functions", {}).get(handler, {}), stage,
                  config.get("lambda_functions", {}).get(handler, {}), config):
        if scope.get(key) is not None:
            return scope[key]
    return None


def _stage_environment(config: Mapping[str, Any], handler: str) -> dict[str, str]:
    stage = config["stages"][STAGE]
    return {**config.get("environment_variables", {}), **stage.get("environment_variables", {}),
            **stage.get("lambda_functions", {}).get(handler, {}).get("environment_variables", {})}


def test_one_function_per_handler_and_one_for_the_routes_with_the_stages_settings(deployment):
    config = chalice_config(deployment.project)
    assert sorted(deployment.functions) == sorted([*(PREFIX + h for h in HANDLERS), API_FUNCTION])
    functions = {**{h: deployment.functions[PREFIX + h] for h in HANDLERS},
                 API_CONFIG_KEY: deployment.functions[API_FUNCTION]}
    for key, function in functions.items():
        assert function["Handler"] == ("app.app" if key == API_CONFIG_KEY else f"app.{key}")
        assert function["Environment"]["Variables"] == _stage_environment(config, key)
        assert function["MemorySize"] == _stage_lookup(config, key, "lambda_memory_size")
        assert function["Timeout"] == _stage_lookup(config, key, "lambda_timeout")
    # The dev stage as it ships: a webhook from SSM and the signing secret's parameter, event
    # functions in 128 MB; the route in the memory bench/click_cold_start.py sized it for.
    assert {f["Environment"]["Variables"]["SLACK_WEBHOOK_URL_PARAM"] for f in deployment.functions.values()} == {
        "/batch-notify/dev/slack-webhook-url"}
    assert {f["Environment"]["Variables"]["SLACK_SIGNING_SECRET_PARAM"] for f in deployment.functions.values()} == {
        "/batch-notify/dev/slack-signing-secret"}
    assert {deployment.functions[PREFIX + h]["MemorySize"] for h in HANDLERS} == {128}
    assert deployment.functions[API_FUNCTION]["MemorySize"] == _stage_lookup(config, API_CONFIG_KEY,
                                                                             "lambda_memory_size") > 128


def test_a_rest_api_serves_the_routes_through_the_api_function(deployment):
    [api] = deployment.rest_apis
    assert api["name"] == APP_NAME
    paths = {r["path"]: r for r in deployment.api_resources}
    assert set(paths["/slack/actions"].get("resourceMethods", {})) == {"POST"}
    # API Gateway (that API) may invoke the function; no rule targets it.
    [statement] = deployment.function_policies[API_FUNCTION]["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Action"] == "lambda:InvokeFunction"
    assert f":{api['id']}/" in statement["Condition"]["ArnLike"]["AWS:SourceArn"]
    arn = deployment.functions[API_FUNCTION]["FunctionArn"]
    assert not [rule for rule, targets in deployment.targets.items() if any(t["Arn"] == arn for t in targets)]


def test_one_rule_per_event_handler_with_app_pys_pattern_targeting_its_function(deployment):
    assert len(deployment.rules) == len(PATTERNS) + len(SCHEDULES)
    for handler in [*PATTERNS, *SCHEDULES]:
        [rule_name] = deployment.rule_of(handler)
        rule = deployment.rules[rule_name]
        if handler in PATTERNS:
            assert json.loads(rule["EventPattern"]) == PATTERNS[handler]
            assert "ScheduleExpression" not in rule
        else:
            assert rule["ScheduleExpression"] == SCHEDULES[handler]
            assert "EventPattern" not in rule
        assert rule["State"] == "ENABLED"
        function_arn = deployment.functions[PREFIX + handler]["FunctionArn"]
        assert [t["Arn"] for t in deployment.targets[rule_name]] == [function_arn]
        # ...and EventBridge may invoke the function for that rule only.
        [statement] = deployment.function_policies[PREFIX + handler]["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Action"] == "lambda:InvokeFunction"
        assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == rule["Arn"]


def test_each_functions_role_holds_exactly_the_stages_policy(deployment):
    policy_file = chalice_config(deployment.project)["stages"][STAGE]["iam_policy_file"]
    expected = json.loads((deployment.project / ".chalice" / policy_file).read_text())
    roles_in_use = {f["Role"].rsplit("/", 1)[-1] for f in deployment.functions.values()}
    assert roles_in_use == set(deployment.roles)  # no role left over, none missing
    for role in roles_in_use:
        assert list(deployment.inline_policies[role].values()) == [expected]
        assert deployment.attached_policies[role] == []
        [trust] = deployment.roles[role]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"


def _allows(policy: Mapping[str, Any], action: str, arn: str) -> bool:
    return any(statement["Effect"] == "Allow" and action in statement["Action"]
               and any(fnmatch.fnmatchcase(arn, resource) for resource in statement["Resource"])
               for statement in policy["Statement"])


def test_the_role_may_read_the_parameters_the_function_is_told_to_read(deployment):
    for function in deployment.functions.values():
        [policy] = deployment.inline_policies[function["Role"].rsplit("/", 1)[-1]].values()
        for variable in ("SLACK_WEBHOOK_URL_PARAM", "SLACK_SIGNING_SECRET_PARAM"):
            parameter = function["Environment"]["Variables"][variable]
            arn = f"arn:aws:ssm:us-east-1:123456789012:parameter/{parameter.lstrip('/')}"
            assert _allows(policy, "ssm:GetParameter", arn), f"{function['FunctionName']} reads {parameter}, may not"


def test_each_function_may_write_its_own_log_group(deployment):
    # The route's function is named batch-notify-dev, without a suffix: the policy must name it too.
    for name, function in deployment.functions.items():
        [policy] = deployment.inline_policies[function["Role"].rsplit("/", 1)[-1]].values()
        group = f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{name}"
        assert _allows(policy, "logs:CreateLogGroup", group), name
        assert _allows(policy, "logs:PutLogEvents", f"{group}:log-stream:2026/12/02/[$LATEST]abc"), name


@pytest.mark.parametrize("name", event_names())
def test_the_deployed_rules_route_each_fixture_as_app_pys_patterns_do(deployment, name):
    assert deployment.reached[name] == set(reached()[name])


def test_every_deployed_rule_is_reached_by_some_fixture(deployment):
    # So the comparison above is not between two empty answers.
    assert {h for handlers in deployment.reached.values() for h in handlers} == set(PATTERNS)


def test_chalice_delete_removes_what_deploy_created(deployment):
    run_chalice(deployment.project, "delete", "--stage", STAGE, env=deployment.env)
    lam, events, iam = (deployment.aws.client(s) for s in ("lambda", "events", "iam"))
    assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == []
    assert [r["Name"] for r in events.list_rules()["Rules"]] == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []
    assert deployment.aws.client("apigateway").get_rest_apis()["items"] == []
