"""Hostile settings: every value is either taken whole, in range, or refused naming the variable.

Random strings go through the real loaders (no patching): a number setting returns a value in
its range written in plain digits, or raises ConfigError naming the variable; nothing else ever
escapes. And LOG_LEVEL, which app.py once applied at import, now works in any case and fails at
the first invocation, never at ``import app``.
"""

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core import config
from chalicelib.core.config import (
    ConfigError,
    load_log_level,
    load_log_tail_settings,
    load_scheduled_settings,
    load_slack_settings,
)
from tests.conftest import EVENTS_DIR, ROOT

WEBHOOK = {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
PLAIN_DIGITS = set("0123456789.")

# Things float() or int() take that nobody writes as a number of seconds, and things they refuse.
HOSTILE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e309", "1e3", "0x10", "+5", "-5", "1_0", "5\n", "\n5",
           "5\r", "5\x00", "\u0665", "\uff15", "5 5", "", " ", "\t", ".", "5..", "0", "0.0", "1" * 5000,
           "9" * 400, "10080", "10081", "600", "600.0000001", "100", "101", "10", "2.5", "007", " 7 "]
# Random text, number-shaped text (signs, exponents, underscores, whitespace of every kind), and the list.
VALUES = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"\A[ \t\n\r\x0b\x0c\u00a0+-]{0,2}[0-9._eExX]{0,7}[ \t\n\r\u2028]{0,2}\Z"),
    st.sampled_from(HOSTILE),
)

# (variable, a loader returning its value, lowest and highest value accepted, whole number?)
NUMBER_SETTINGS: list[tuple[str, Callable[[dict[str, str]], Any], float, float, bool]] = [
    ("SLACK_REQUEST_TIMEOUT_SECONDS", lambda env: load_slack_settings({**WEBHOOK, **env}).request_timeout,
     0, 600, False),
    ("SLACK_DELIVERY_BUDGET_SECONDS", lambda env: load_slack_settings({**WEBHOOK, **env}).delivery_budget,
     0, 600, False),
    ("LOG_TAIL_LINES", lambda env: load_log_tail_settings(env).lines, 0, 100, True),
    ("LOG_TAIL_TIMEOUT_SECONDS", lambda env: load_log_tail_settings(env).timeout, 0, 10, False),
    ("STUCK_AFTER_MINUTES", lambda env: load_scheduled_settings(env).stuck_after_minutes, 0, 10080, True),
]


@pytest.mark.parametrize("name, read, low, high, whole", NUMBER_SETTINGS, ids=[s[0] for s in NUMBER_SETTINGS])
def test_a_number_setting_is_in_range_and_in_plain_digits_or_refused_naming_the_variable(name, read, low, high,
                                                                                          whole):
    @settings(max_examples=150, deadline=None)
    @given(VALUES)
    def check(raw: str) -> None:
        try:
            value = read({name: raw})
        except ConfigError as error:
            assert str(error).startswith(f"{name}="), str(error)
            assert f"{high:g}" in str(error)  # the accepted range is named
            return
        if not raw.strip(" \t"):
            return  # unset or blank: the default
        # Accepted: exactly the plain digits written (bar surrounding spaces), and in range.
        written = raw.strip(" \t")
        assert set(written) <= PLAIN_DIGITS and not (whole and "." in written), raw
        assert value == (int(written) if whole else float(written))
        assert (low <= value if whole else low < value) and value <= high

    check()


# The spellings the old parsers let through (float()/int() take them), and one too long to show.
@pytest.mark.parametrize("raw", ["+5", "1_0", "5\n", "\u0665", "9" * 5000])
@pytest.mark.parametrize("name, read", [(s[0], s[1]) for s in NUMBER_SETTINGS], ids=[s[0] for s in NUMBER_SETTINGS])
def test_what_python_would_parse_is_still_refused(name, read, raw):
    with pytest.raises(ConfigError, match=f"^{name}=") as error:
        read({name: raw})
    assert len(str(error.value)) < 200  # a long value is cut short in the message


@settings(max_examples=150, deadline=None)
@given(st.one_of(VALUES, st.sampled_from(["debug", " Info ", "WARNING", "error\t", "CRITICAL", "warn", "verbose",
                                          "DEBUG\n", "\u0131nfo", "n\u200bone"]),
                 st.from_regex(r"\A[ \t]{0,2}(?i:debug|info|warning|error|critical)[ \t\n]{0,2}\Z")))
def test_log_level_is_one_of_five_names_or_refused_naming_the_variable(raw):
    try:
        level = load_log_level({"LOG_LEVEL": raw})
    except ConfigError as error:
        assert str(error).startswith("LOG_LEVEL=") and "DEBUG, INFO, WARNING, ERROR, CRITICAL" in str(error)
        return
    written = raw.strip(" \t")
    assert level == (logging.getLevelName(written.upper()) if written else logging.INFO)
    assert written.isascii()


# -- LOG_LEVEL through the app, in a fresh interpreter ---------------------------------------------

PROBE = """
import json, logging, os, sys
import app  # LOG_LEVEL=" debug ": must import
from chalice.test import Client
from chalicelib.core import config

event = json.load(open(sys.argv[1]))
report = {}
with Client(app.app, stage_name="local") as client:
    client.lambda_.invoke("on_job_succeeded", event)
    report["level"] = logging.getLogger("batch_notify").level
    os.environ["LOG_LEVEL"] = "verbose"
    config.reset()
    try:
        client.lambda_.invoke("on_job_succeeded", event)
        report["error"] = None
    except Exception as error:
        report["error"] = [type(error).__name__, str(error)]
print(json.dumps(report))
"""


def test_log_level_in_any_case_imports_and_applies_and_an_unknown_one_fails_the_invocation(tmp_path):
    # Before: app.py called setLevel(os.environ["LOG_LEVEL"]) at import, so "debug" broke
    # `import app` (every cold start, and `chalice deploy`). Needs app.py to call config.log_level().
    routes = tmp_path / "routes.json"
    routes.write_text('{"routes": [{"name": "default", "drop": true}]}')  # no delivery: nothing to reach
    env = {"LOG_LEVEL": " debug ", "NOTIFY_ROUTES": str(routes), "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook",
           "HTTPS_PROXY": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([sys.executable, "-c", PROBE, str(EVENTS_DIR / "ec2_succeeded.json")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["level"] == logging.DEBUG
    name, message = report["error"]
    assert name == "ConfigError"
    assert message.startswith("LOG_LEVEL='verbose'") and "DEBUG, INFO, WARNING, ERROR, CRITICAL" in message


def test_log_level_is_read_once_per_container_until_reset(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "error")
    assert config.log_level() == logging.ERROR
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    assert config.log_level() == logging.ERROR  # cached: the environment of a container does not change
    config.reset()
    with pytest.raises(ConfigError, match="LOG_LEVEL='verbose'"):
        config.log_level()
    monkeypatch.delenv("LOG_LEVEL")
    config.reset()
    assert config.log_level() == logging.INFO
