"""``chalice package`` in both formats, offline: the templates and the zip users would deploy.

The CloudFormation template must pass cfn-lint; both templates must declare one function and
one rule (with app.py's pattern or schedule) per EventBridge handler, and, for app.py's routes, one
API function (chalice's ``app.app`` handler, all routes, the stage's ``api_handler`` memory and
timeout) behind a REST API; the deployment zip must hold this app and its
requirements.txt and nothing else of ours: no boto3/botocore (the Lambda runtime has them),
no tests, tools or bench code, and stay under 1 MB.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from chalice.app import ScheduledEventConfig

from app import app
from tests.chalice_cli import cfn_lint, chalice_config, copy_project, package, zip_names
from tools.eventbridge import registered_patterns

STAGE = "dev"
PREFIX = f"batch-notify-{STAGE}-"
FORMATS = ("cloudformation", "terraform")
ZIP_BUDGET_BYTES = 1_000_000
PATTERNS = registered_patterns(app)  # on_cw_event handlers
SCHEDULED = sorted(s.name for s in app.event_sources if isinstance(s, ScheduledEventConfig))
HANDLERS = sorted([*PATTERNS, *SCHEDULED])  # a function and a rule each
ROUTE_VIEWS = sorted(set(app.handler_map) - set(HANDLERS))  # all served by the one API function
API_NAME = f"batch-notify-{STAGE}"  # chalice names the API function after the app and stage only
NEVER_IN_THE_ZIP = {"boto3", "botocore", "s3transfer", "tests", "tools", "bench", "examples", "requirements.txt"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean copy of the repo (as CI's checkout): what the tests import, file for file."""
    return copy_project(tmp_path_factory.mktemp("package") / "project")


@pytest.fixture(scope="module")
def packages(project: Path) -> dict[str, Path]:
    return {fmt: package(project, project.parent / fmt, stage=STAGE, pkg_format=fmt) for fmt in FORMATS}


def _chalicelib_files(project: Path) -> set[str]:
    return {p.relative_to(project).as_posix() for p in (project / "chalicelib").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_cloudformation_template_passes_cfn_lint(packages):
    cfn_lint(packages["cloudformation"] / "sam.json")  # raises with cfn-lint's findings


def test_cloudformation_template_has_a_function_with_its_rule_per_handler(packages):
    template = json.loads((packages["cloudformation"] / "sam.json").read_text())
    functions = {r["Properties"]["Handler"]: r["Properties"] for r in template["Resources"].values()
                 if r["Type"] == "AWS::Serverless::Function"}
    assert sorted(functions) == sorted([f"app.{h}" for h in HANDLERS] + ["app.app"])
    for handler, pattern in PATTERNS.items():
        function = functions[f"app.{handler}"]
        assert function["CodeUri"] == "./deployment.zip"
        assert [e["Properties"]["Pattern"] for e in function["Events"].values()
                if e["Type"] == "CloudWatchEvent"] == [pattern]


def test_terraform_config_has_a_function_with_its_rule_per_handler(packages):
    resources = json.loads((packages["terraform"] / "chalice.tf.json").read_text())["resource"]
    functions = resources["aws_lambda_function"]
    assert sorted(f["function_name"] for f in functions.values()) == sorted([PREFIX + h for h in HANDLERS]
                                                                           + [API_NAME])
    key_of = {f["function_name"][len(PREFIX):]: key for key, f in functions.items() if f["handler"] != "app.app"}
    for handler, pattern in PATTERNS.items():
        assert functions[key_of[handler]]["filename"] == "${path.module}/deployment.zip"
        [target] = [t for t in resources["aws_cloudwatch_event_target"].values()
                    if t["arn"] == f"${{aws_lambda_function.{key_of[handler]}.arn}}"]
        rule_key = re.fullmatch(r"\$\{aws_cloudwatch_event_rule\.(.+)\.name\}", target["rule"]).group(1)
        assert json.loads(resources["aws_cloudwatch_event_rule"][rule_key]["event_pattern"]) == pattern


def test_app_py_has_routes_and_no_view_is_a_handler_of_its_own():
    # So the API tests below test something: the view runs inside the API function, never as its own.
    assert ROUTE_VIEWS == ["slack_actions"] and list(app.routes) == ["/slack/actions"]


def _api_settings() -> dict[str, int]:
    stage = chalice_config()["stages"][STAGE]
    return stage["lambda_functions"]["api_handler"]


def test_cloudformation_has_one_api_function_for_the_routes_with_its_own_memory(packages):
    resources = json.loads((packages["cloudformation"] / "sam.json").read_text())["Resources"]
    api = resources["APIHandler"]["Properties"]
    assert (api["Handler"], api["CodeUri"]) == ("app.app", "./deployment.zip")
    assert (api["MemorySize"], api["Timeout"]) == (_api_settings()["lambda_memory_size"],
                                                   _api_settings()["lambda_timeout"])
    assert api["Role"] == {"Fn::GetAtt": ["ApiHandlerRole", "Arn"]}
    signing_parameter = api["Environment"]["Variables"]["SLACK_SIGNING_SECRET_PARAM"]
    assert signing_parameter == f"/batch-notify/{STAGE}/slack-signing-secret"
    # API Gateway calls it; nothing else may, and it has no rule.
    assert "Events" not in api
    permission = resources["APIHandlerInvokePermission"]["Properties"]
    assert (permission["Principal"], permission["FunctionName"]) == ("apigateway.amazonaws.com", {"Ref": "APIHandler"})
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert list(paths) == ["/slack/actions"] and list(paths["/slack/actions"]) == ["post"]
    # Every content type reaches the code (a non-form one is answered 415 there, and logged).
    assert paths["/slack/actions"]["post"]["consumes"] == ["*/*"]
    # The event functions keep the stage's memory: only the route was measured and sized.
    assert {r["Properties"]["MemorySize"] for k, r in resources.items()
            if r["Type"] == "AWS::Serverless::Function" and k != "APIHandler"} == {128}


def test_terraform_has_the_same_api_function(packages):
    resources = json.loads((packages["terraform"] / "chalice.tf.json").read_text())["resource"]
    api = resources["aws_lambda_function"]["api_handler"]
    assert (api["function_name"], api["handler"]) == (API_NAME, "app.app")
    assert (api["memory_size"], api["timeout"]) == (_api_settings()["lambda_memory_size"],
                                                    _api_settings()["lambda_timeout"])
    assert list(resources["aws_api_gateway_rest_api"]) == ["rest_api"]
    assert resources["aws_lambda_permission"]["rest_api_invoke"]["principal"] == "apigateway.amazonaws.com"


@pytest.mark.parametrize("pkg_format", FORMATS)
def test_the_zip_is_the_app_and_its_requirements_only(project, packages, pkg_format):
    path = packages[pkg_format] / "deployment.zip"
    names = zip_names(path)
    top_level = {name.split("/", 1)[0] for name in names}
    assert not top_level & NEVER_IN_THE_ZIP
    assert "app.py" in names and "slack_sdk/__init__.py" in names
    # chalicelib as in the repo, file for file: nothing added (tests, tools), nothing left out.
    assert {n for n in names if n.startswith("chalicelib/")} == _chalicelib_files(project)
    assert not [n for n in names if re.search(r"(^|/)(test_[^/]*|[^/]*_test|conftest)\.py$", n)]
    # The slack-sdk requirements.txt pins, from the offline wheel directory.
    [pin] = re.findall(r"^slack-sdk==(\S+)", (project / "requirements.txt").read_text(), flags=re.M)
    assert f"slack_sdk-{pin}.dist-info/METADATA" in names
    assert path.stat().st_size < ZIP_BUDGET_BYTES, f"{path.stat().st_size:,} bytes"


def test_what_is_packaged_is_the_projects_code_byte_for_byte(project, packages):
    with zipfile.ZipFile(packages["cloudformation"] / "deployment.zip") as archive:
        for name in ["app.py", *sorted(_chalicelib_files(project))]:
            assert archive.read(name) == (project / name).read_bytes(), name


def test_the_slack_app_manifest_sends_clicks_to_the_packaged_route(packages):
    import yaml  # cfn-lint's dependency

    manifest = yaml.safe_load((Path(__file__).resolve().parent.parent / "slack-app-manifest.yml").read_text())
    interactivity = manifest["settings"]["interactivity"]
    stage = json.loads((packages["cloudformation"] / "sam.json").read_text())["Resources"]["RestAPI"]["Properties"][
        "StageName"]
    [route] = app.routes
    assert interactivity == {"is_enabled": True,
                             "request_url": f"https://<api-id>.execute-api.<region>.amazonaws.com/{stage}{route}"}
    # chat.update after a click; user groups in a route's actions.allow.
    assert {"chat:write", "usergroups:read"} <= set(manifest["oauth_config"]["scopes"]["bot"])
