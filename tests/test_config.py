"""Settings: one mode per stage, a direct value over a parameter, and errors naming the variable."""

import json
import logging
from pathlib import Path

import pytest

from chalicelib.core.config import (
    ConfigError,
    load_log_level,
    load_log_tail_settings,
    load_scheduled_settings,
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
    return config, {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_shipped_stage_is_valid_and_fits_its_lambda(stage):
    config, env = _stage_env(stage)
    settings = load_slack_settings(env)
    timeout = config["stages"][stage].get("lambda_timeout", config["lambda_timeout"])
    # Delivery (plus an SSM read) must end well before Lambda kills the invocation.
    assert settings.delivery_budget + settings.request_timeout + 10 <= timeout
    assert config["stages"][stage].get("lambda_memory_size", config["lambda_memory_size"]) == 128


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stage_policy_allows_exactly_what_the_code_calls(stage):
    config, env = _stage_env(stage)
    assert config.get("autogen_policy") is False
    policy = json.loads((ROOT / ".chalice" / config["stages"][stage]["iam_policy_file"]).read_text())
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert actions == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "ssm:GetParameter",
                       "logs:GetLogEvents", "batch:ListJobs", "batch:DescribeJobQueues"}
    ssm = [st for st in policy["Statement"] if st["Action"] == ["ssm:GetParameter"]]
    parameter = load_slack_settings(env).secret.parameter
    assert ssm[0]["Resource"] == [f"arn:*:ssm:*:*:parameter{parameter}"]
    # The log tail (chalicelib/reading/logtail.py) reads streams of the default Batch log group only.
    tail = [st for st in policy["Statement"] if st["Action"] == ["logs:GetLogEvents"]]
    assert tail[0]["Resource"] == ["arn:*:logs:*:*:log-group:/aws/batch/job:log-stream:*"]
    # The stuck-job sweep and the digest (chalicelib/reading/batch_api.py) list queues and jobs. Neither
    # action supports resource-level permissions: IAM needs "*", and it is the only "*" allowed.
    listing = [st for st in policy["Statement"] if "batch:ListJobs" in st["Action"]]
    assert listing == [{"Sid": "BatchJobListing", "Effect": "Allow",
                        "Action": ["batch:ListJobs", "batch:DescribeJobQueues"], "Resource": ["*"]}]
    assert all("*" != r for st in policy["Statement"] if st is not listing[0] for r in st["Resource"])
