"""Masking, as properties: every kind of secret the README lists is masked wherever it sits in
a line and however the line is quoted, and ordinary log lines come out exactly as they went in.

The secrets are generated (hypothesis), so none is a literal in this file.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chalicelib.reading.redact import MASK, redact, redact_lines

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
B64 = ALNUM + "+/"

# A (snippet as a job would print it, the part of it that must never come out) pair.
Secret = tuple[str, str]


def _chars(alphabet: str, size: int, max_size: int | None = None) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size if max_size is None else max_size)


# --- ordinary log text: the surroundings of property 1, the whole line of property 2 ---------

WORDS = ["loading", "rows", "into", "warehouse", "retrying", "done", "failed", "job", "step", "batch",
         "queue", "upload", "s3", "region", "attempt", "exit", "code", "worker", "shard", "ok"]
# `key=value` pairs whose key only looks like a secret's.
PLAIN_PAIRS = ["max_tokens=512", "token_count=3", "tokens: 5123", "passenger=2", "bypass=true", "compass=north",
               "pass_rate=0.98", "bypass_cache=1", "retries=3", "exit_code=137", "user=etl", "host=db.internal",
               "port=5432", "token_type=bearer expires_in=3600", "secret_name=prod/etl/db", "key=orders/2024.csv"]
STACK_LINES = ["Traceback (most recent call last):", "KeyError: 'customer_id'", 'raise ValueError("bad row")',
               "ValueError: bad row 42", "During handling of the above exception, another exception occurred:"]
# Sentences with a secret's word in them, that are not a secret.
PROSE = ["retrying with bearer authentication.", "the token expired, refreshing", "Found credentials in env",
         "password reset email sent", "bypass the cache"]
# An error that names a file holding a secret names the file, it does not print the secret.
SECRET_FILES = ["/run/secrets/db_password", "/etc/passwd", "/var/run/secrets/api_token", "/mnt/keys/private_key"]
FILE_ERRORS = ["no such file or directory", "permission denied", "Permission denied"]

segment = st.text(string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=10)
path = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
timestamp = st.builds(lambda moment, sep, zone: moment.isoformat(sep=sep, timespec="milliseconds") + zone,
                      st.datetimes(), st.sampled_from(["T", " "]), st.sampled_from(["Z", "", "+00:00"]))
number = st.one_of(st.integers(-10**9, 10**9).map(str), st.floats(0, 1e6, allow_nan=False).map(lambda x: f"{x:.3f}"))
url = st.builds(
    lambda scheme, host, port, where, query: f"{scheme}://{host}{port}{where}{query}",
    st.sampled_from(["https", "http", "s3", "redis", "postgres"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    st.sampled_from(["", ":8080", ":5432", ":443"]),
    st.one_of(st.just(""), path),
    st.sampled_from(["", "?region=us-east-1", "?page=2&size=50", "#logs"]),
)
stack_frame = st.builds(lambda file, line, function: f'File "{file}.py", line {line}, in {function}',
                        path, st.integers(1, 5000), st.sampled_from(["main", "<module>", "load", "_run"]))
ordinary = st.one_of(
    st.sampled_from(WORDS), st.sampled_from(PLAIN_PAIRS), st.sampled_from(PROSE),
    st.sampled_from(STACK_LINES), stack_frame,
    st.sampled_from(["INFO", "WARN", "ERROR", "DEBUG", "[INFO]", "CRITICAL:"]),
    path, timestamp, number, url, st.uuids().map(str),
    st.uuids().map(lambda job: f"arn:aws:batch:us-east-1:123456789012:job/{job}"),
    st.builds(lambda file, error: f"open {file}: {error}", st.sampled_from(SECRET_FILES), st.sampled_from(FILE_ERRORS)),
    st.sampled_from(["docker run -u 1000:1000 img", "sudo -u postgres psql", "ssh -p 22 host"]),
)
ordinary_text = st.lists(ordinary, max_size=6).map(" ".join)

# --- the secrets: one strategy per kind the README lists --------------------------------------

password = _chars(ALNUM + "!@#$%^*-_.+~", 8, 24).filter(lambda p: p[0] in ALNUM)
SECRET_KEYS = ["password", "PASSWORD", "db_password", "SMTP_PASSWORD", "DB_PASS", "db_pass", "pass", "passwd",
               "dbPass", "pwd", "passphrase", "secret", "client_secret", "api_key", "API-KEY", "x-api-key", "apikey",
               "token", "access_token", "github_token", "SLACK_BOT_TOKEN", "private_key", "secret_key",
               "aws_secret_access_key", "AWS_SESSION_TOKEN", "SecretAccessKey", "SessionToken", "auth_key"]
PAIR_FORMS = ["{k}={v}", "{k}: {v}", "{k} = {v}", "{k}:{v}", '{k}="{v}"', "{k}='{v}'", '"{k}": "{v}"', '"{k}":"{v}"',
              "'{k}': '{v}'", '"{k}": {v}', "run --{k} {v}", "run --{k}={v}", "GET /x?{k}={v}&page=2",
              '{k}="{v} and more"', "run --{k} '{v} x'"]
pair = st.builds(lambda key, form, value: (form.format(k=key, v=value), value),
                 st.sampled_from(SECRET_KEYS), st.sampled_from(PAIR_FORMS), password)

aws_key_id = st.builds(lambda kind, body: (kind + body, body), st.sampled_from(["AKIA", "ASIA"]),
                       _chars(UPPER_ALNUM, 16))
slack_token = st.builds(
    lambda kind, team, bot, body: (f"{kind}-{team}-{bot}-{body}", f"{team}-{bot}-{body}"),
    st.sampled_from(["xoxb", "xoxp", "xoxa", "xoxe", "xapp"]), _chars(string.digits, 10, 13),
    _chars(string.digits, 10, 13), _chars(ALNUM, 24))
webhook = st.builds(
    lambda base, team, bot, body, case: (case(base + f"{team}/{bot}/{body}"), case(f"{team}/{bot}/{body}")),
    st.sampled_from(["https://hooks.slack.com/services/", "hooks.slack.com/services/",
                     "https://hooks.slack.com/workflows/", "http://hooks.slack-gov.com/services/"]),
    _chars(UPPER_ALNUM, 9, 11).map(lambda s: "T" + s), _chars(UPPER_ALNUM, 9, 11).map(lambda s: "B" + s),
    _chars(ALNUM, 24), st.sampled_from([str, str.upper]))
bearer = st.builds(lambda scheme, token: (f"{scheme} {token}", token),
                   # not a lowercase word or name: the rule leaves those ("bearer authentication failed")
                   st.sampled_from(["Bearer", "bearer", "BEARER"]),
                   _chars(ALNUM + "._~+/-", 16, 40).filter(lambda t: not re.fullmatch(r"[a-z]+([_.-][a-z]+)*\.?", t)))
authorization = st.builds(
    lambda form, scheme, credential: (form.format(f"{scheme} {credential}"), credential),
    st.sampled_from(["Authorization: {}", "authorization={}", '"Authorization": "{}"', "'authorization': '{}'",
                     "Proxy-Authorization: {}", "> Authorization: {}"]),
    st.sampled_from(["Basic", "Bearer", "Token", "Digest"]), _chars(B64, 12, 40))
jwt = st.builds(lambda head, claims, signature: ("eyJ" + head + ".eyJ" + claims + "." + signature,) * 2,
                _chars(ALNUM + "_-", 10, 30), _chars(ALNUM + "_-", 10, 60), _chars(ALNUM + "_-", 10, 43))
url_password = st.builds(
    lambda scheme, user, secret, host, rest: (f"{scheme}://{user}:{secret}@{host}{rest}", secret),
    st.sampled_from(["postgres", "postgresql", "mysql", "redis", "rediss", "amqp", "mongodb+srv", "https"]),
    st.one_of(st.just(""), _chars(ALNUM + "_.-", 1, 12)),
    # `@` and `:` too: the password runs to the last `@` before the host.
    _chars(ALNUM + "@:!$%*-_.~+;=,", 8, 24).filter(lambda p: p[0] != "@"),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,8}){0,2}", fullmatch=True),
    st.sampled_from(["", ":5432", ":6379/0", "/dw", ":5432/dw?sslmode=require"]))
user_option = st.builds(
    lambda form, user, secret: (form.format(u=user, p=secret), secret),
    st.sampled_from(["curl -u {u}:{p} https://x", "curl --user {u}:{p} https://x", "curl --user={u}:{p}",
                     "curl -u '{u}:{p} x'", 'curl --proxy-user "{u}:{p}"', "curl -s -u :{p} https://x"]),
    _chars(string.ascii_letters, 1, 10), password)
token_shape = st.one_of(
    st.builds(lambda kind, body: (kind + body, body), st.sampled_from(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
              _chars(ALNUM, 36)),
    st.builds(lambda a, b: (f"github_pat_{a}_{b}", f"{a}_{b}"), _chars(ALNUM, 22), _chars(ALNUM, 59)),
    st.builds(lambda kind, body: (kind + body, body), st.sampled_from(["sk_live_", "rk_live_", "sk_test_", "whsec_"]),
              _chars(ALNUM, 24, 99)),
    st.builds(lambda body: ("AIza" + body, body), _chars(ALNUM + "_-", 35)),
    st.builds(lambda body: ("glpat-" + body, body), _chars(ALNUM + "_-", 20)),
    st.builds(lambda body: ("npm_" + body, body), _chars(ALNUM, 36)),
    st.builds(lambda body: ("hf_" + body, body), _chars(ALNUM, 34)),
    st.builds(lambda kind, body: (kind + body, body), st.sampled_from(["sk-", "sk-proj-", "sk-ant-api03-"]),
              _chars(ALNUM + "_-", 40, 90)),
    st.builds(lambda body: ("pypi-" + body, body), _chars(ALNUM + "_-", 60, 120)),
    st.builds(lambda body: ("dckr_pat_" + body, body), _chars(ALNUM + "_-", 27)),
    st.builds(lambda a, b: (f"SG.{a}.{b}", f"{a}.{b}"), _chars(ALNUM + "_-", 22), _chars(ALNUM + "_-", 43)),
    st.builds(lambda body: ("dapi" + body, body), _chars("0123456789abcdef", 32)),
)
# A whole private key inside one string, as a service-account JSON file holds it.
inline_private_key = st.builds(
    lambda label, body: ('"private_key": "' + "\\n".join(["-----BEGIN " + label + "PRIVATE KEY-----", body,
                                                          "-----END " + label + "PRIVATE KEY-----", ""]) + '"', body),
    st.sampled_from(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "]), _chars(B64, 40, 64))

secret = st.one_of(pair, aws_key_id, slack_token, webhook, bearer, authorization, jwt, url_password, user_option,
                   token_shape, inline_private_key)

# --- how the line around a secret is written --------------------------------------------------

LEFT = [" ", "\t", "_", "(", "[", "{", ",", ";", "|", ">", " - ", ": ", "=", '"', "'", "`"]
RIGHT = [" ", "\t", ",", ";", ")", "]", "}", "|", '"', "'", ".", "!", " - ", "\n"]


def _json(text: str) -> str:
    return json.dumps(text)[1:-1]


# Each wrapper is an escape: the line is logged inside a JSON string (once or twice), with
# JSON's escaped slashes, or in a Python repr; the secret comes out escaped the same way.
ESCAPES: list[Callable[[str], str]] = [
    lambda text: text,
    _json,
    lambda text: _json(_json(text)),
    lambda text: _json(text).replace("/", "\\/"),
    lambda text: repr(text)[1:-1],
]


@settings(max_examples=300, deadline=None)
@given(secret, ordinary_text, st.from_regex(r"[A-Za-z0-9]{0,8}", fullmatch=True), st.sampled_from(LEFT),
       st.sampled_from(RIGHT), ordinary_text,
       st.sampled_from(range(len(ESCAPES))), st.sampled_from(["{}", '{{"level": "ERROR", "message": "{}"}}']))
def test_every_kind_of_secret_is_masked_wherever_it_is_and_however_it_is_quoted(
        snippet_and_secret: Secret, before: str, word: str, left: str, right: str, after: str, escape: int,
        envelope: str) -> None:
    snippet, value = snippet_and_secret
    escaped = ESCAPES[escape]
    line = escaped(f"{before} {word}{left}{snippet}{right}{after}")
    if escape:
        line = envelope.format(line)
    hidden = escaped(value)
    assume(line.count(hidden) == 1)  # the secret is not also part of the ordinary text by chance
    masked = redact(line)
    assert hidden not in masked, (line, masked)
    assert MASK in masked


@settings(max_examples=200, deadline=None)
@given(st.lists(ordinary, min_size=1, max_size=8), st.sampled_from([" ", "  ", " | ", ", ", "\t"]),
       st.sampled_from(range(len(ESCAPES))))
def test_ordinary_log_lines_come_out_unchanged(parts: list[str], separator: str, escape: int) -> None:
    line = ESCAPES[escape](separator.join(parts))
    assert redact(line) == line


pem_line = _chars(B64, 64)


@settings(max_examples=100, deadline=None)
@given(st.lists(ordinary_text, max_size=3), st.sampled_from(["", "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED "]),
       st.lists(pem_line, min_size=1, max_size=6), st.booleans(), st.lists(ordinary_text, max_size=3))
def test_a_private_key_block_is_masked_across_lines(before: list[str], label: str, body: list[str], closed: bool,
                                                    after: list[str]) -> None:
    begin, end = ("-----" + edge + " " + label + "PRIVATE KEY-----" for edge in ("BEGIN", "END"))
    lines = [*before, begin, *body, *([end] if closed else []), *after]
    masked = redact_lines(lines)
    assert len(masked) == len(lines)
    assert not any(line in text for line in body for text in masked)
    # What comes before the block is untouched; after it too, once the block is closed.
    assert masked[:len(before) + 1] == tuple(lines[:len(before) + 1])
    if closed:
        assert masked[len(lines) - len(after) - 1:] == tuple(lines[len(lines) - len(after) - 1:])
    else:
        assert all(text in ("", MASK) for text in masked[len(before) + 1:])
