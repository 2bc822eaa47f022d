"""deploy/member-account.yaml and deploy/central-event-bus.yaml: cfn-lint clean, and the hub's
trust and permissions exactly as the README states them (nothing more is granted)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from app import app
from chalicelib.core.config import load_hub_settings
from tests.chalice_cli import cfn_lint, copy_project, package

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


CENTRAL_ACCOUNT = "123456789012"


def trusted_patterns(stage: str) -> list[str]:
    """The trust condition's ARN patterns, the template's parameters filled in."""
    role = RESOURCES["MemberRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Effect"] == "Allow" and trust["Action"] == "sts:AssumeRole"
    assert trust["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}
    assert list(trust["Condition"]) == ["ArnLike"] and list(trust["Condition"]["ArnLike"]) == ["aws:PrincipalArn"]
    values = {"AWS::Partition": "aws", "CentralAccountId": CENTRAL_ACCOUNT, "AppName": "batch-notify",
              "CentralStage": stage}
    patterns = []
    for item in trust["Condition"]["ArnLike"]["aws:PrincipalArn"]:
        text = item["Fn::Sub"]
        for name, value in values.items():
            text = text.replace(f"${{{name}}}", value)
        assert "${" not in text
        patterns.append(text)
    return patterns


def arn_like(pattern: str, arn: str) -> bool:
    """IAM's ArnLike: the six parts of the ARN each matched by the pattern's, ``*`` any run of
    characters (``-`` and ``/`` included), ``?`` any one, the rest literally, case-sensitively."""
    def glob(part: str) -> str:
        return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in part)

    parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    return len(parts) == len(arn_parts) == 6 and all(
        re.fullmatch(glob(p), a, re.DOTALL) is not None for p, a in zip(parts, arn_parts, strict=True))


def role(name: str, account: str = CENTRAL_ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def functions_needing_the_member_role() -> list[str]:
    """app.py's functions that read log tails (their handler builds with describe_failure) or act
    on jobs (the actions route, which Chalice deploys as api_handler)."""
    tree = ast.parse((ROOT / "app.py").read_text())
    tails = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
             and any(isinstance(n, ast.Name) and n.id == "describe_failure" for n in ast.walk(node))]
    return [*tails, "api_handler"]


def test_the_member_role_trusts_only_the_central_apps_roles() -> None:
    assert RESOURCES["MemberRole"]["Properties"]["RoleName"] == {"Ref": "MemberRoleName"}
    assert MEMBER_TEMPLATE["Parameters"]["MemberRoleName"]["Default"] == "batch-notify-member"
    assert functions_needing_the_member_role() == ["on_job_failed", "api_handler"]


@pytest.fixture(scope="module")
def packaged_role_ids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Function -> the logical ID of its role, in the SAM template chalice package writes."""
    out = package(copy_project(tmp_path_factory.mktemp("project") / "p"), tmp_path_factory.mktemp("out") / "o",
                  stage="prod")
    resources = json.loads((out / "sam.json").read_text())["Resources"]
    functions = {key: value for key, value in resources.items() if value["Type"] == "AWS::Serverless::Function"}
    return {function: functions[_cfn_name(function)]["Properties"]["Role"]["Fn::GetAtt"][0]
            for function in [*app.handler_map, "api_handler"] if _cfn_name(function) in functions}


def _cfn_name(function: str) -> str:
    # Chalice's resource names: on_job_failed -> OnJobFailed; its route handler is APIHandler.
    return "APIHandler" if function == "api_handler" else "".join(p.capitalize() for p in function.split("_"))


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_trust_admits_the_roles_chalice_deploy_and_package_give_those_functions(
        stage: str, packaged_role_ids: dict[str, str]) -> None:
    patterns = trusted_patterns(stage)
    needed = functions_needing_the_member_role()
    for function in needed:
        deployed = role(f"batch-notify-{stage}-{function}")  # chalice deploy, autogen_policy off
        # chalice package, in a stack named batch-notify-<stage>: CloudFormation's name for the role.
        packaged = role(f"batch-notify-{stage}-{packaged_role_ids[function]}-1A2B3C4D5E6F")
        assert any(arn_like(p, deployed) for p in patterns), deployed
        assert any(arn_like(p, packaged) for p in patterns), packaged
    assert len(patterns) == 2 * len(needed)  # nothing more


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_trust_refuses_every_other_role(stage: str, packaged_role_ids: dict[str, str]) -> None:
    patterns = trusted_patterns(stage)
    other_stage = "prod" if stage == "dev" else "dev"
    needed = functions_needing_the_member_role()
    others = [
        f"batch-notify-{stage}-sandbox-on_job_failed", f"batch-notify-{stage}-sandbox-api_handler",  # stage <stage>-x
        f"batch-notify-{stage}-sandbox-OnJobFailedRole-1A2B3C", f"batch-notify-{stage}-evil",  # hand-made
        f"batch-notify-{stage}-on_job_failed-copy", f"batch-notify-{stage}-OnJobFailedRoleX",
        f"batch-notify-{other_stage}-on_job_failed", f"other-app-{stage}-on_job_failed", f"batch-notify-{stage}",
        # The app's functions that never assume the member role.
        *(f"batch-notify-{stage}-{f}" for f in app.handler_map if f not in needed),
        *(f"batch-notify-{stage}-{logical_id}-1A2B3C"
          for f, logical_id in packaged_role_ids.items() if f not in needed),
    ]
    for name in others:
        assert not any(arn_like(p, role(name)) for p in patterns), name
    # Nor the right name in another account (the principal is the hub's account too).
    assert not any(arn_like(p, role(f"batch-notify-{stage}-on_job_failed", "210987654321")) for p in patterns)


def test_the_arn_like_matcher_is_iams() -> None:
    assert arn_like("arn:aws:iam::1:role/a-*", "arn:aws:iam::1:role/a-b-c/d")  # * crosses - and /
    assert arn_like("arn:aws:iam::1:role/a?c", "arn:aws:iam::1:role/abc")
    assert not arn_like("arn:aws:iam::1:role/a", "arn:aws:iam::1:role/A")  # case counts
    assert not arn_like("arn:aws:iam::1:role/a", "arn:aws:iam::1:role/a-b")  # whole, not a prefix
    assert not arn_like("arn:aws:iam::1:role/a.c", "arn:aws:iam::1:role/abc")  # . is literal


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
