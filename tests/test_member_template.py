"""deploy/member-account.yaml and deploy/central-event-bus.yaml: cfn-lint clean, and the hub's
trust and permissions exactly as the README states them (nothing more is granted)."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from app import app
from chalicelib.core.config import load_hub_settings
from tests.chalice_cli import cfn_lint

ROOT = Path(__file__).resolve().parent.parent
MEMBER = ROOT / "deploy" / "member-account.yaml"
CENTRAL = ROOT / "deploy" / "central-event-bus.yaml"


def template(path: Path) -> dict[str, Any]:
    loaded, problems = decode(str(path))
    assert not problems and loaded is not None
    return dict(loaded)


MEMBER_TEMPLATE = template(MEMBER)
RESOURCES = MEMBER_TEMPLATE["Resources"]


def statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    properties = resource["Properties"]
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    documents += [properties["PolicyDocument"]] if "PolicyDocument" in properties else []
    return [statement for document in documents for statement in document["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("path", [MEMBER, CENTRAL], ids=lambda p: p.name)
def test_the_templates_pass_cfn_lint(path: Path) -> None:
    cfn_lint(path)  # raises with cfn-lint's findings


def test_the_member_role_trusts_only_the_central_apps_roles() -> None:
    role = RESOURCES["MemberRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Effect"] == "Allow" and trust["Action"] == "sts:AssumeRole"
    assert trust["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}
    assert trust["Condition"] == {"ArnLike": {"aws:PrincipalArn": {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:role/${AppName}-${CentralStage}-*"}}}
    assert role["RoleName"] == {"Ref": "MemberRoleName"}
    assert MEMBER_TEMPLATE["Parameters"]["MemberRoleName"]["Default"] == "batch-notify-member"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_trusted_pattern_covers_every_role_chalice_gives_the_app_and_no_other(stage: str) -> None:
    # chalice deploy (autogen_policy false) names each function's role <app_name>-<stage>-<function>
    # (chalice/deploy/appgraph.py); chalice package stacks named <app>-<stage> get names that start alike.
    pattern = f"batch-notify-{stage}-*"
    functions = [*app.handler_map, "api_handler"]
    assert all(fnmatch.fnmatchcase(f"batch-notify-{stage}-{function}", pattern) for function in functions)
    other_stage = "prod" if stage == "dev" else "dev"
    for other in (f"batch-notify-{stage}", f"other-app-{stage}-on_job_failed",
                  f"batch-notify-{other_stage}-api_handler"):
        assert not fnmatch.fnmatchcase(other, pattern)


def test_the_member_role_may_read_job_logs_and_act_on_jobs_and_nothing_else() -> None:
    granted = statements(RESOURCES["MemberRole"])
    [log_tail] = [RESOURCES[key] for key in RESOURCES if key.startswith("Fn::ForEach")]
    _, groups, body = log_tail
    assert groups == {"Ref": "JobLogGroups"}
    [policy] = body.values()
    granted += statements(policy)
    actions = sorted(a for statement in granted for a in as_list(statement["Action"]))
    assert actions == ["batch:DescribeJobs", "batch:SubmitJob", "batch:TagResource", "batch:TerminateJob",
                       "logs:GetLogEvents"]
    assert all(statement["Effect"] == "Allow" for statement in granted)
    by_action = {a: statement for statement in granted for a in as_list(statement["Action"])}
    # Only DescribeJobs (no resource-level permissions in IAM) has "*"; the rest are this account's.
    assert by_action["batch:DescribeJobs"]["Resource"] == "*"
    assert by_action["batch:SubmitJob"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:batch:*:${AWS::AccountId}:job-queue/*"},
        {"Fn::Sub": "arn:${AWS::Partition}:batch:*:${AWS::AccountId}:job-definition/*"}]
    assert by_action["batch:TerminateJob"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:batch:*:${AWS::AccountId}:job/*"}
    assert by_action["logs:GetLogEvents"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:logs:*:${AWS::AccountId}:log-group:${Group}:log-stream:*"}
    assert MEMBER_TEMPLATE["Parameters"]["JobLogGroups"]["Default"] == "/aws/batch/job"
    assert policy["Properties"]["Roles"] == [{"Ref": "MemberRole"}]


def test_the_rule_forwards_every_batch_event_to_the_central_bus_with_its_own_role() -> None:
    rule = RESOURCES["ForwardBatchEvents"]["Properties"]
    assert rule["EventPattern"] == {"source": ["aws.batch"]}
    [target] = rule["Targets"]
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwardingRole", "Arn"]}
    bus = "arn:${AWS::Partition}:events:${Region}:${CentralAccountId}:event-bus/default"
    assert target["Arn"]["Fn::Sub"][0] == bus
    forwarding = RESOURCES["ForwardingRole"]["Properties"]
    [trust] = forwarding["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    [put] = statements(RESOURCES["ForwardingRole"])
    assert put["Action"] == "events:PutEvents" and put["Resource"]["Fn::Sub"][0] == bus


def test_the_default_role_arn_of_the_template_is_a_valid_member_role_arn() -> None:
    name = MEMBER_TEMPLATE["Parameters"]["MemberRoleName"]["Default"]
    hub = load_hub_settings({"MEMBER_ROLE_ARN": f"arn:aws:iam::{{account}}:role/{name}"})
    assert hub.role_arn("210987654321") == f"arn:aws:iam::210987654321:role/{name}"
    # The stages' policies allow assuming exactly that role name (.chalice/policy-<stage>.json).
    for stage in ("dev", "prod"):
        assert f"arn:*:iam::*:role/{name}" in (ROOT / ".chalice" / f"policy-{stage}.json").read_text()


def test_the_central_bus_lets_the_organization_or_the_listed_members_put_events() -> None:
    resources = template(CENTRAL)["Resources"]
    organization = resources["OrganizationMayPutEvents"]["Properties"]
    assert organization["EventBusName"] == "default"
    assert organization["Statement"]["Action"] == "events:PutEvents"
    assert organization["Statement"]["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}
    members = resources["MembersMayPutEvents"]["Properties"]["Statement"]
    assert members["Principal"] == {"AWS": {"Ref": "MemberAccountIds"}} and members["Action"] == "events:PutEvents"
