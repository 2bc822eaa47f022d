"""Settings: one mode per stage, a direct value over a parameter, errors naming the variable; the one
settings tree, the one place that makes AWS clients, and AWS errors in words."""

import json
import logging
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from chalicelib.core import aws_errors, clients, config, secrets
from chalicelib.core.config import (
    ConfigError,
    load_log_level,
    load_log_tail_settings,
    load_scheduled_settings,
    load_signing_settings,
    load_slack_settings,
)

ROOT = Path(__file__).resolve().parent.parent


def test_webhook_mode_from_a_parameter():
    s = load_slack_settings({"SLACK_WEBHOOK_URL_PARAM": "/bn/webhook"})
    assert (s.mode, s.secret.parameter, s.secret.value, s.channel) == ("webhook", "/bn/webhook", None, None)


def test_bot_mode_needs_a_channel():
    with pytest.raises(ConfigError, match="SLACK_CHANNEL"):
        load_slack_settings({"SLACK_BOT_TOKEN_PARAM": "/bn/token"})
    s = load_slack_settings({"SLACK_BOT_TOKEN_PARAM": "/bn/token", "SLACK_CHANNEL": "C1"})
    assert (s.mode, s.channel, s.api_url) == ("bot", "C1", "https://slack.com/api/")


def test_a_direct_value_wins_over_a_parameter():
    s = load_slack_settings({"SLACK_BOT_TOKEN": "xoxb-direct", "SLACK_BOT_TOKEN_PARAM": "/p", "SLACK_CHANNEL": "C1"})
    assert (s.secret.variable, s.secret.value, s.secret.parameter) == ("SLACK_BOT_TOKEN", "xoxb-direct", None)


def test_nothing_set_names_every_way_to_configure():
    with pytest.raises(ConfigError) as error:
        load_slack_settings({"SLACK_CHANNEL": ""})
    for name in ("SLACK_WEBHOOK_URL_PARAM", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN_PARAM", "SLACK_BOT_TOKEN"):
        assert name in str(error.value)


def test_webhook_and_token_together_are_ambiguous():
    with pytest.raises(ConfigError, match="only one"):
        load_slack_settings({"SLACK_WEBHOOK_URL": "http://x", "SLACK_BOT_TOKEN": "t", "SLACK_CHANNEL": "C1"})


def test_a_webhook_cannot_pick_a_channel():
    with pytest.raises(ConfigError, match="webhook always posts to its own channel"):
        load_slack_settings({"SLACK_WEBHOOK_URL": "http://x", "SLACK_CHANNEL": "C1"})


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "9999"])
def test_bad_durations_name_the_variable(raw):
    with pytest.raises(ConfigError, match="SLACK_DELIVERY_BUDGET_SECONDS"):
        load_slack_settings({"SLACK_WEBHOOK_URL": "http://x", "SLACK_DELIVERY_BUDGET_SECONDS": raw})


@pytest.mark.parametrize("raw", ["1e3", "inf", "nan", "+5", "1_0", "5\n", "0x10"])
def test_durations_are_plain_digits(raw):
    with pytest.raises(ConfigError) as error:
        load_slack_settings({"SLACK_WEBHOOK_URL": "http://x", "SLACK_REQUEST_TIMEOUT_SECONDS": raw})
    assert str(error.value) == (f"SLACK_REQUEST_TIMEOUT_SECONDS={raw!r}: expected a number of seconds more than 0 "
                                "and at most 600, in plain digits (e.g. 2 or 0.5)")


def test_numbers_may_have_surrounding_spaces_and_a_decimal_point():
    s = load_slack_settings({"SLACK_WEBHOOK_URL": "http://x", "SLACK_REQUEST_TIMEOUT_SECONDS": " 2.5\t",
                             "SLACK_DELIVERY_BUDGET_SECONDS": ".5"})
    assert (s.request_timeout, s.delivery_budget) == (2.5, 0.5)
    assert load_log_tail_settings({"LOG_TAIL_LINES": "007"}).lines == 7


LINES = "expected a whole number of lines from 0 (the tail is off) to 100"


@pytest.mark.parametrize("env, message", [
    ({"LOG_TAIL_LINES": "1_0"}, f"LOG_TAIL_LINES='1_0': {LINES}"),
    ({"LOG_TAIL_LINES": "+5"}, f"LOG_TAIL_LINES='+5': {LINES}"),
    ({"LOG_TAIL_LINES": "5\n"}, f"LOG_TAIL_LINES='5\\n': {LINES}"),
    ({"LOG_TAIL_TIMEOUT_SECONDS": "1e1"},
     "LOG_TAIL_TIMEOUT_SECONDS='1e1': expected a number of seconds more than 0 and at most 10, in plain digits"),
    ({"STUCK_AFTER_MINUTES": "30\n"},
     "STUCK_AFTER_MINUTES='30\\n': expected a whole number of minutes from 0 (the sweep is off) to 10080 (a week)"),
    ({"STUCK_AFTER_MINUTES": "3_0"}, "STUCK_AFTER_MINUTES='3_0': expected a whole number of minutes"),
    ({"DIGEST": "on\n"}, "DIGEST='on\\n': expected one of on, off (any case)"),
])
def test_every_number_and_choice_is_taken_whole_or_refused_with_its_range(env, message):
    load = load_log_tail_settings if any(name.startswith("LOG_TAIL") for name in env) else load_scheduled_settings
    with pytest.raises(ConfigError) as error:
        load(env)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("raw, level", [("debug", logging.DEBUG), (" Info ", logging.INFO),
                                        ("WARNING", logging.WARNING), ("error", logging.ERROR),
                                        ("Critical\t", logging.CRITICAL), ("", logging.INFO)])
def test_log_level_is_a_name_in_any_case(raw, level):
    assert load_log_level({"LOG_LEVEL": raw}) == level
    assert load_log_level({}) == logging.INFO


@pytest.mark.parametrize("raw", ["verbose", "5x", "10", "warn", "debug\n", "\u0131nfo"])
def test_an_unknown_log_level_names_the_variable_and_the_accepted_names(raw):
    with pytest.raises(ConfigError) as error:
        load_log_level({"LOG_LEVEL": raw})
    assert str(error.value) == f"LOG_LEVEL={raw!r}: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case)"


def test_api_url_gets_a_trailing_slash():
    s = load_slack_settings({"SLACK_BOT_TOKEN": "t", "SLACK_CHANNEL": "C1", "SLACK_API_URL": "http://127.0.0.1:9/api"})
    assert s.api_url == "http://127.0.0.1:9/api/"


def test_the_secret_value_never_shows_in_repr():
    s = load_slack_settings({"SLACK_WEBHOOK_URL": "https://example.invalid/services/SECRETPART"})
    assert "SECRETPART" not in repr(s)


def _stage_env(stage):
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage_env = config["stages"][stage].get("environment_variables", {})
    return config, {**config.get("environment_variables", {}), **stage_env}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_shipped_stage_is_valid_and_fits_its_lambda(stage):
    config, env = _stage_env(stage)
    settings = load_slack_settings(env)
    timeout = config["stages"][stage].get("lambda_timeout", config["lambda_timeout"])
    # Delivery (plus an SSM read) must end well before Lambda kills the invocation.
    assert settings.delivery_budget + settings.request_timeout + 10 <= timeout
    assert config["stages"][stage].get("lambda_memory_size", config["lambda_memory_size"]) == 128


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_actions_route_has_its_own_memory_and_a_short_timeout(stage):
    from chalicelib.interactions.endpoint import ANSWER_SECONDS

    config, env = _stage_env(stage)
    api = config["stages"][stage]["lambda_functions"]["api_handler"]
    # bench/click_cold_start.py: a cold click takes about 0.9 s of CPU (compiling app, chalice, slack_sdk;
    # boto3 and two clients). Lambda gives CPU in proportion to memory (1 vCPU at 1769 MB), so at 128 MB it
    # would take over 10 s; 1536 MB (0.87 vCPU) projects to 1.0-1.4 s, well inside Slack's 3 s.
    assert api["lambda_memory_size"] == 1536
    # The event functions keep the stage's 128 MB: nobody waits on them.
    assert config["stages"][stage].get("lambda_memory_size", config["lambda_memory_size"]) == 128
    # Past its answer a click has nothing left to do: a stuck call must not run (and bill) the event
    # handlers' 60 s, and API Gateway gives up on its integration after 29 s anyway.
    assert ANSWER_SECONDS < api["lambda_timeout"] < min(29, config["lambda_timeout"])
    assert load_signing_settings(env).secret.parameter == f"/batch-notify/{stage}/slack-signing-secret"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stage_policy_allows_exactly_what_the_code_calls(stage):
    config, env = _stage_env(stage)
    assert config.get("autogen_policy") is False
    policy = json.loads((ROOT / ".chalice" / config["stages"][stage]["iam_policy_file"]).read_text())
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert actions == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "ssm:GetParameter",
                       "logs:GetLogEvents", "batch:ListJobs", "batch:DescribeJobQueues",
                       "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                       "batch:DescribeJobs", "batch:SubmitJob", "batch:TerminateJob", "batch:TagResource",
                       "sts:AssumeRole"}
    ssm = [st for st in policy["Statement"] if st["Action"] == ["ssm:GetParameter"]]
    parameters = [load_slack_settings(env).secret.parameter, load_signing_settings(env).secret.parameter]
    assert ssm[0]["Resource"] == [f"arn:*:ssm:*:*:parameter{parameter}" for parameter in parameters]
    # The actions (Slack buttons): SubmitJob is authorized on the job queue and the job definition (both
    # resource types are required); TerminateJob on the job, and so is TagResource, which SubmitJob
    # needs for its tags (batch-notify:retry-of). This account's and any region's, none named.
    by_sid = {st["Sid"]: st for st in policy["Statement"]}
    assert by_sid["BatchRetryJob"] == {"Sid": "BatchRetryJob", "Effect": "Allow", "Action": ["batch:SubmitJob"],
                                       "Resource": ["arn:*:batch:*:*:job-queue/*", "arn:*:batch:*:*:job-definition/*"]}
    assert by_sid["BatchChangeJob"] == {"Sid": "BatchChangeJob", "Effect": "Allow",
                                        "Action": ["batch:TerminateJob", "batch:TagResource"],
                                        "Resource": ["arn:*:batch:*:*:job/*"]}
    # The hub (core/member_roles.py): the member role of deploy/member-account.yaml, in any account, and
    # nothing else (sts:GetCallerIdentity needs no permission).
    assert by_sid["HubMemberRoles"] == {"Sid": "HubMemberRoles", "Effect": "Allow", "Action": ["sts:AssumeRole"],
                                        "Resource": ["arn:*:iam::*:role/batch-notify-member"]}
    # Its own log groups: the event functions' (batch-notify-<stage>-<handler>) and the route's, which
    # chalice deploy names batch-notify-<stage>, without a suffix.
    assert f"arn:*:logs:*:*:log-group:/aws/lambda/batch-notify-{stage}" in by_sid["OwnLogs"]["Resource"]
    # The log tail (chalicelib/reading/logtail.py) reads streams of the default Batch log group only.
    tail = [st for st in policy["Statement"] if st["Action"] == ["logs:GetLogEvents"]]
    assert tail[0]["Resource"] == ["arn:*:logs:*:*:log-group:/aws/batch/job:log-stream:*"]
    # The stuck-job sweep and the digest (chalicelib/reading/batch_api.py) list queues and jobs, and a click
    # reads the job it is about. None of these supports resource-level permissions: IAM needs "*", and it is
    # the only "*" allowed.
    listing = [st for st in policy["Statement"] if "batch:ListJobs" in st["Action"]]
    assert listing == [{"Sid": "BatchJobListing", "Effect": "Allow",
                        "Action": ["batch:ListJobs", "batch:DescribeJobQueues", "batch:DescribeJobs"],
                        "Resource": ["*"]}]
    assert all(r != "*" for st in policy["Statement"] if st is not listing[0] for r in st["Resource"])


# -- the settings tree (config.settings) -----------------------------------------------------------
def test_sections_are_parsed_at_first_use_kept_and_forgotten_by_reset(monkeypatch):
    monkeypatch.setenv("LOG_TAIL_LINES", "7")
    assert config.settings().log_tail.lines == 7
    monkeypatch.setenv("LOG_TAIL_LINES", "9")
    assert config.log_tail_settings().lines == 7  # kept: a container's environment does not change
    assert config.settings() is config.settings()
    config.reset()
    assert config.log_tail_settings().lines == 9


def test_a_bad_section_fails_alone_and_is_parsed_again_next_time(monkeypatch):
    monkeypatch.setenv("LOG_TAIL_LINES", "lots")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    tree = config.settings()
    assert tree.slack.mode == "webhook" and tree.scheduled.stuck_after_minutes == 30
    with pytest.raises(ConfigError, match="LOG_TAIL_LINES='lots'"):
        _ = tree.log_tail
    calls = []

    def load(s):
        calls.append(1)
        raise ConfigError("not yet")

    for _ in range(2):
        with pytest.raises(ConfigError):
            tree.section(load)
    assert len(calls) == 2  # an error is not kept: the next invocation reads the fixed setting


def test_a_stage_above_core_adds_its_own_section_loaded_once_even_from_many_threads():
    calls = []

    def load(s):
        calls.append(1)
        time.sleep(0.05)
        return {"from": s.env.get("X")}

    tree = config.Settings({"X": "1"})
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(tree.section(load))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1] and all(value is seen[0] for value in seen) and seen[0] == {"from": "1"}


def test_the_tree_never_shows_the_environment():
    tree = config.Settings({"SLACK_BOT_TOKEN": "xoxb-SECRETPART", "SLACK_CHANNEL": "C1"})
    assert tree.slack.mode == "bot"
    assert "SECRETPART" not in repr(tree) and "SECRETPART" not in repr(config.settings())
    with pytest.raises(TypeError):
        tree.env["SLACK_CHANNEL"] = "C2"  # read-only


# -- AWS clients (core/clients.py) -----------------------------------------------------------------
CFG = clients.ClientConfig(connect_timeout=2, read_timeout=3, attempts=2)


def test_one_client_per_service_region_and_config_from_one_session():
    ssm = clients.client("ssm", CFG)
    assert clients.client("ssm", clients.ClientConfig(2, 3, 2)) is ssm  # equal configs share it
    logs = clients.client("logs", CFG, region="eu-west-1")
    assert clients.client("logs", clients.ClientConfig(1, 1, 1), region="eu-west-1") is not logs
    assert clients.made() == (("ssm", None), ("logs", "eu-west-1"), ("logs", "eu-west-1"))
    assert ssm.meta.config.retries["total_max_attempts"] == 2
    assert (ssm.meta.config.connect_timeout, ssm.meta.config.read_timeout) == (2, 3)
    assert ssm.meta.region_name == "us-east-1" and logs.meta.region_name == "eu-west-1"
    config.reset()
    assert clients.made() == () and clients.client("ssm", CFG) is not ssm


def test_prepare_runs_once_on_a_client_just_made():
    prepared = []
    first = clients.client("ssm", CFG, prepare=prepared.append)
    assert clients.client("ssm", CFG, prepare=prepared.append) is first and prepared == [first]


def test_use_client_is_the_seam_for_tests():
    fake, inner = object(), object()
    with clients.use_client("batch", fake):
        assert clients.client("batch", CFG) is fake and clients.client("batch", CFG, region="eu-west-1") is fake
        with clients.use_client("batch", inner):
            assert clients.client("batch", CFG) is inner
        assert clients.client("batch", CFG) is fake
        config.reset()  # a test's reset keeps its fake
        assert clients.client("batch", CFG) is fake
    assert clients.made() == ()
    clients.use_client("logs", fake)  # without a block: until conftest forgets it after the test
    assert clients.client("logs", CFG) is fake
    clients.forget_fakes()
    assert clients.client("logs", CFG) is not fake


def test_the_shipped_callers_configs():
    from chalicelib.reading import batch_api, logtail

    assert secrets.ssm_client().meta.config.retries["total_max_attempts"] == 2
    # botocore's max_attempts=5 (retries) was the batch client's: 6 attempts in all, as before.
    assert batch_api.batch_client().meta.config.retries["total_max_attempts"] == 6
    assert logtail.logs_client("us-west-2", 2.0).meta.config.retries["total_max_attempts"] == 1
    assert clients.made() == (("ssm", None), ("batch", None), ("logs", "us-west-2"))


# -- AWS errors in words (core/aws_errors.py) ------------------------------------------------------
def client_error(code, message="User: arn:aws:sts::123456789012:assumed-role/x is not authorized"):
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"RequestId": "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE"}}, "ListJobs")


@pytest.mark.parametrize("error, family, words", [
    (client_error("AccessDeniedException"), "access denied",
     "access denied: the stage's IAM policy (.chalice/policy-<stage>.json) must allow batch:ListJobs"),
    (client_error("ResourceNotFoundException"), "not found",
     "ResourceNotFoundException: check the name, and that it exists in this account and region"),
    (client_error("ParameterNotFound"), "not found",
     "ParameterNotFound: check the name, and that it exists in this account and region"),
    (client_error("TooManyRequestsException"), "throttled",
     "throttled by AWS Batch: too many requests in this account and region: the next invocation tries again"),
    (EndpointConnectionError(endpoint_url="https://batch.us-east-1.amazonaws.com/"), "unreachable",
     "could not reach AWS Batch (EndpointConnectionError): check the function's network path to AWS "
     "(in a VPC: a NAT gateway or a VPC endpoint)"),
    (NoCredentialsError(), "no credentials", "no AWS credentials"),
    (client_error("ServerException"), "refused", "AWS Batch answered ServerException"),
    (ValueError("boom"), "unexpected", "unexpected error (ValueError)"),
])
def test_aws_errors_are_worded_by_family_without_request_ids_or_messages(error, family, words):
    assert aws_errors.classify_aws_error(error).family == family
    text = aws_errors.describe_aws_error(error, service="AWS Batch", action="batch:ListJobs")
    assert text == words
    assert "EXAMPLE" not in text and "123456789012" not in text and "boom" not in text


def test_aws_error_words_with_what_could_not_be_done_and_no_fixes():
    denied = client_error("AccessDenied")
    assert aws_errors.describe_aws_error(denied, service="CloudWatch Logs", action="logs:GetLogEvents",
                                         fixes={}) == "access denied (logs:GetLogEvents)"
    down = EndpointConnectionError(endpoint_url="https://ssm.us-east-1.amazonaws.com/")
    unreachable = aws_errors.describe_aws_error(down, service="SSM", action="ssm:GetParameter",
                                                doing="read parameter '/x'", fixes={})
    assert unreachable == "could not reach SSM to read parameter '/x': EndpointConnectionError"
    unexpected = aws_errors.describe_aws_error(client_error("Nope"), service="SSM", action="ssm:GetParameter",
                                               doing="read parameter '/x'")
    assert unexpected == "could not read parameter '/x': SSM answered Nope"


def test_an_aws_error_code_is_cut_short():
    assert aws_errors.classify_aws_error(client_error("X" * 5000)).code == "X" * 100


# -- the hub (MEMBER_ROLE_ARN, ACCOUNT_NAMES; tests/test_hub.py has the properties) --------------------
def test_the_hub_is_off_by_default_and_its_section_is_kept(monkeypatch):
    hub = config.settings().hub
    assert hub == config.HubSettings() and not hub.configured and config.settings().hub is hub
    monkeypatch.setenv("ACCOUNT_NAMES", "123456789012=prod")
    config.reset()
    assert config.hub_settings().configured and config.hub_settings().name_of("123456789012") == "prod"


@pytest.mark.parametrize(("env", "message"), [
    ({"MEMBER_ROLE_ARN": "arn:aws:iam::123456789012:role/batch-notify-member"}, "MEMBER_ROLE_ARN="),
    ({"MEMBER_ROLE_ARN": "arn:aws:iam::{account}:role/{account}"}, "MEMBER_ROLE_ARN="),
    ({"MEMBER_ROLE_ARN": "arn:aws:iam::{account}:user/batch-notify-member"}, "MEMBER_ROLE_ARN="),
    ({"ACCOUNT_NAMES": "123456789012"}, "ACCOUNT_NAMES: '123456789012' is not <account ID>=<name>"),
    ({"ACCOUNT_NAMES": "123456789012=prod,123456789012=staging"}, "ACCOUNT_NAMES: 123456789012 is given twice"),
    ({"ACCOUNT_NAMES": "123456789012=prod,210987654321=prod"}, "ACCOUNT_NAMES: 'prod' is given twice"),
    ({"ACCOUNT_NAMES": "123456789012=" + "x" * 65}, "ACCOUNT_NAMES: the name of 123456789012"),
    ({"ACCOUNT_NAMES": "123456789012=210987654321"}, "ACCOUNT_NAMES: the name of 123456789012"),
])
def test_a_bad_hub_setting_is_refused_naming_the_variable(env, message):
    with pytest.raises(ConfigError) as raised:
        config.load_hub_settings(env)
    assert str(raised.value).startswith(message)
