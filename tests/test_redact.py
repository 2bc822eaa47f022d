"""Masking secrets in log lines: realistic lines in, the secret gone, the rest still readable."""

import base64
import json
import re
import time

import pytest

from chalicelib.reading.redact import MASK, RULES, Rule, redact, redact_lines
from tests.conftest import FAKE_AWS_KEY, FAKE_BOT_TOKEN, FAKE_USER_TOKEN, FAKE_WEBHOOK

# More secret-shaped fakes, assembled at run time like tests/conftest.py's (all fake).
FAKE_GITHUB_TOKEN = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"
FAKE_GOOGLE_KEY = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
FAKE_PEM_BEGIN, FAKE_PEM_END = ("-----" + edge + " RSA PRIVATE " + "KEY-----" for edge in ("BEGIN", "END"))
# Base64 lines as a PEM body has them (64 characters each).
FAKE_PEM_BODY = [base64.b64encode(bytes(range(n, n + 48))).decode() for n in (0, 48, 96)]

# (line as a job might print it, the secret that must disappear, what must stay)
LEAKS = [
    (f"2024-05-13 02:13:59,120 INFO botocore.credentials: using key {FAKE_AWS_KEY} from env",
     "IOSFODNN7EXAMPLE", "using key AKIA[masked] from env"),
    ("assumed role: ASIAY34FZKBOKMUTVV7A (expires 2024-05-13T03:13:59Z)", "Y34FZKBOKMUTVV7A", "ASIA[masked]"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI",
     "aws_secret_access_key = [masked]"),
    ('export AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', "wJalrXUtnFEMI",
     'AWS_SECRET_ACCESS_KEY="[masked]"'),
    ('{"Credentials": {"AccessKeyId": "ASIAY34FZKBOKMUTVV7A", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCY", '
     '"SessionToken": "FwoGZXIvYXdzEBYaDHabc/def+ghi=="}}', "wJalrXUtnFEMI", '"SessionToken": "[masked]"'),
    (f"slack post failed: token={FAKE_BOT_TOKEN}", "AbCdEfGhIjKl", "token="),
    (f"using {FAKE_USER_TOKEN} as user",
     "0123456789abcdef", "using xoxp-[masked] as user"),
    (f"POST {FAKE_WEBHOOK} -> 404",
     "XXXXXXXXXXXXXXXX", "https://hooks.slack.com/services/[masked] -> 404"),
    ("requests.get(url, headers={'Authorization': 'Bearer ya29.a0AfH6SMBx-secretvalue'}) took 3.2s",
     "ya29.a0AfH6SMBx", "{'Authorization': '[masked]'}) took 3.2s"),
    ("> Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", "> Authorization: [masked]"),
    ("retrying with bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n",
     "dozjgNryP4J3", "retrying with bearer [masked]"),
    ("id_token eyJhbGciOiJSUzI1NiJ9.eyJlbWFpbCI6ImFAYi5jIn0.c2lnbmF0dXJl rejected", "c2lnbmF0dXJl",
     "id_token [masked] rejected"),
    ("sqlalchemy connect postgresql://etl:hunter2@warehouse.internal:5432/dw", "hunter2",
     "postgresql://etl:[masked]@warehouse.internal:5432/dw"),
    ("env: DB_PASSWORD=hunter2 DB_HOST=warehouse.internal ETL_STAGE=load", "hunter2",
     "DB_PASSWORD=[masked] DB_HOST=warehouse.internal ETL_STAGE=load"),
    ("login user=alice passwd=s3cr3t! next step", "s3cr3t", "user=alice passwd=[masked] next step"),
    ("oauth: client_secret=abc123XYZ&grant_type=client_credentials", "abc123XYZ",
     "client_secret=[masked]&grant_type=client_credentials"),
    ("calling vendor api_key=" + "sk_live_" + "51HxYzAbCdEf api-version=3", "51HxYzAbCdEf",
     "api_key=[masked] api-version=3"),
    ("headers: X-Api-Key: 0f8e7d6c5b4a, Accept: application/json", "0f8e7d6c5b4a", "X-Api-Key: [masked], Accept"),
    ('loaded config {"user": "svc", "password": "p@ss \\"quoted\\" word", "port": 5432}', "p@ss",
     '{"user": "svc", "password": "[masked]", "port": 5432}'),
    ("settings={'secret': 'shh-do-not-tell', 'debug': False}", "shh-do-not-tell", "{'secret': '[masked]', 'debug'"),
    (f"GITHUB_TOKEN: {FAKE_GITHUB_TOKEN}", "16C7e42F", "GITHUB_TOKEN: [masked]"),
    ("+ python -m etl.load --date 2024-05-13 --api-key fake-cmd-secret", "fake-cmd-secret", "--api-key [masked]"),
    ('.env: SMTP_PASSWORD="correct horse battery" SMTP_USER=mailer', "horse battery",
     'SMTP_PASSWORD="[masked]" SMTP_USER=mailer'),
    ("connect(host=db, password=hunter2) failed", "hunter2", "connect(host=db, password=[masked]) failed"),
]


@pytest.mark.parametrize("line, secret, kept", LEAKS, ids=[leak[1][:12] for leak in LEAKS])
def test_secrets_are_masked_and_the_line_stays_readable(line, secret, kept):
    masked = redact(line)
    assert secret not in masked
    assert kept in masked
    assert MASK in masked


@pytest.mark.parametrize("line", [
    "epoch 3/10 loss=0.4121 max_tokens=512 token_count=3 tokens: 5123",
    "refresh-token expired for user 42, requesting a new one",
    "Found credentials in environment variables.",
    "INFO wrote 1832 rows to s3://warehouse/orders/2024-05-13/ in 12.4s",
    "Traceback (most recent call last):",
    '  File "/app/etl/load.py", line 88, in main',
    "KeyError: 'customer_id'",
    "sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    # A file named after a secret is not a secret: the error names it, it does not print it.
    "open /run/secrets/db_password: no such file or directory",
    "cat: /etc/passwd: Permission denied",
    # An OAuth response in logfmt: `bearer` is the token type here, not a scheme and a token.
    "oauth: token_type=bearer expires_in=3600 scope=read",
    "401: retrying with bearer authentication.",
])
def test_ordinary_lines_are_left_alone(line):
    assert redact(line) == line


# The spellings people really log: (line, the secret, the whole line as it must come out).
SPELLINGS = [
    # JSON logged inside a JSON string (escaped quotes), and escaped twice.
    ("ERROR " + json.dumps({"message": json.dumps({"user": "etl", "password": "hunter2"})}), "hunter2",
     "ERROR " + json.dumps({"message": json.dumps({"user": "etl", "password": MASK})})),
    (json.dumps({"log": json.dumps({"message": json.dumps({"password": 'p@ss "q" w', "port": 5432})})}), "p@ss",
     json.dumps({"log": json.dumps({"message": json.dumps({"password": MASK, "port": 5432})})})),
    (json.dumps({"message": json.dumps({"pin": 1, "password": 918273})}), "918273",
     json.dumps({"message": json.dumps({"pin": 1, "password": 0})}).replace("0}", MASK + "}")),
    (json.dumps({"message": json.dumps({"Authorization": "Basic dXNlcjpodW50ZXIy", "Accept": "*/*"})}),
     "dXNlcjpodW50ZXIy", json.dumps({"message": json.dumps({"Authorization": MASK, "Accept": "*/*"})})),
    # URL credentials without a user, and with an `@` in the password.
    ("redis.connect redis://:hunter2@cache.internal:6379/0", "hunter2",
     "redis.connect redis://:[masked]@cache.internal:6379/0"),
    ("dsn=postgres://etl:p@ss@w0rd@db.internal:5432/dw ok", "ss@w0rd",
     "dsn=postgres://etl:[masked]@db.internal:5432/dw ok"),
    ("JDBC_postgresql://etl:hunter2@db/dw", "hunter2", "JDBC_postgresql://etl:[masked]@db/dw"),
    # Slack webhooks without the scheme, in upper case, with JSON's escaped slashes.
    ("posting to " + FAKE_WEBHOOK.removeprefix("https://"), "XXXXXXXX",
     "posting to hooks.slack.com/services/[masked]"),
    ("SLACK_URL=" + FAKE_WEBHOOK.upper(), "XXXXXXXX", "SLACK_URL=HTTPS://HOOKS.SLACK.COM/SERVICES/[masked]"),
    (json.dumps({"url": FAKE_WEBHOOK}).replace("/", "\\/"), "XXXXXXXX",
     '{"url": "https:\\/\\/hooks.slack.com\\/services\\/[masked]"}'),
    # Tokens glued to a name by `_`, or to an escaped newline in JSON.
    ("SLACK_BOT_" + FAKE_BOT_TOKEN, "AbCdEfGhIjKl", "SLACK_BOT_xoxb-[masked]"),
    ("AWS_KEY_" + FAKE_AWS_KEY + "_old", "IOSFODNN7EXAMPLE", "AWS_KEY_AKIA[masked]_old"),
    (json.dumps({"message": "env dump:\n" + FAKE_GITHUB_TOKEN}), "16C7e42F",
     json.dumps({"message": "env dump:\nghp_" + MASK})),
    # `pass`-style keys.
    ("db_pass=hunter2 MYSQL_PASS: hunter3 pass=hunter4 dbPass=hunter5", "hunter",
     "db_pass=[masked] MYSQL_PASS: [masked] pass=[masked] dbPass=[masked]"),
    ("yaml: {pass: 'hunter2', passphrase: \"correct horse\"}", "hunter2",
     "yaml: {pass: '[masked]', passphrase: \"[masked]\"}"),
    # curl's user option.
    ("+ curl -sf -u etl:hunter2 https://api.internal/v1", "hunter2",
     "+ curl -sf -u etl:[masked] https://api.internal/v1"),
    ("+ curl --user etl:hunter2 --user='etl:p w' -o out", "hunter2",
     "+ curl --user etl:[masked] --user='etl:[masked]' -o out"),
    # Token shapes: GitHub, Stripe, Google, GitLab, npm, Hugging Face, OpenAI, PyPI, Docker Hub.
    *((f"git push with {kind}{FAKE_GITHUB_TOKEN[4:]} failed", FAKE_GITHUB_TOKEN[4:],
       f"git push with {kind}[masked] failed") for kind in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    ("token github_pat_" + "11ABCDEFG0" * 2 + "_" + "xY3" * 19, "xY3xY3", "token github_pat_[masked]"),
    *((f"stripe: using {kind}4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqL", f"stripe: using {kind}[masked]")
      for kind in ("sk_live_", "rk_live_", "sk_test_")),
    (f"maps?key={FAKE_GOOGLE_KEY}&q=x", FAKE_GOOGLE_KEY[4:], "maps?key=AIza[masked]&q=x"),
    ("GL " + "glpat-" + "xYz12-AbC34_dEf56GhI", "AbC34_", "GL glpat-[masked]"),
    ("npm " + "npm_" + "a1B2c3D4" * 4 + "e5F6", "a1B2c3D4", "npm npm_[masked]"),
    ("hf " + "hf_" + "aBcDeFgHiJ" * 3 + "kLmN", "aBcDeFgHiJ", "hf hf_[masked]"),
    ("openai " + "sk-proj-" + "T3BlbkFJ" * 5, "T3BlbkFJ", "openai sk-proj-[masked]"),
    ("twine " + "pypi-" + "AgEIcHlwaS5vcmc" * 4, "AgEIcHlwaS5vcmc", "twine pypi-[masked]"),
    ("docker login -p " + "dckr_pat_" + "a1B2c3D4e5F6g7H8i9J0", "a1B2c3D4", "docker login -p dckr_pat_[masked]"),
]


@pytest.mark.parametrize("line, secret, masked", SPELLINGS, ids=[s[2][:40] for s in SPELLINGS])
def test_secrets_are_masked_in_the_spellings_people_really_log(line, secret, masked):
    assert secret in line
    assert redact(line) == masked
    assert secret not in redact(line)


def test_pass_is_a_key_only_as_a_whole_word():
    line = "db_pass=hunter2 passenger=3 bypass=true compass=north surpass: 2 pass: hunter3"
    assert redact(line) == "db_pass=[masked] passenger=3 bypass=true compass=north surpass: 2 pass: [masked]"


def test_a_user_option_masks_the_password_not_the_user_or_a_uid():
    line = "+ curl -u etl:hunter2 https://x && docker run -u 1000:1000 img && sudo -u postgres psql"
    assert redact(line) == "+ curl -u etl:[masked] https://x && docker run -u 1000:1000 img && sudo -u postgres psql"


def test_a_private_key_is_masked_from_its_begin_line_to_its_end_line():
    lines = ["loading key from env", f"key = {FAKE_PEM_BEGIN}", *FAKE_PEM_BODY, "",
             f"{FAKE_PEM_BODY[0][:10]}{FAKE_PEM_END} loaded, password=hunter2", "connecting"]
    assert redact_lines(lines) == (
        "loading key from env", f"key = {FAKE_PEM_BEGIN}", MASK, MASK, MASK, "",
        f"{MASK}{FAKE_PEM_END} loaded, password={MASK}", "connecting")


def test_a_private_key_with_no_end_in_the_tail_is_masked_to_the_last_line():
    lines = [FAKE_PEM_BEGIN, *FAKE_PEM_BODY, "Traceback (most recent call last):"]
    assert redact_lines(lines) == (FAKE_PEM_BEGIN, MASK, MASK, MASK, MASK)
    # Each call is its own tail: a block left open does not leak into the next one.
    assert redact_lines(["next tail"]) == ("next tail",)


def test_a_private_key_inside_one_json_string_is_masked_whole():
    key = "\n".join([FAKE_PEM_BEGIN.replace("RSA ", ""), *FAKE_PEM_BODY, FAKE_PEM_END.replace("RSA ", ""), ""])
    line = json.dumps({"type": "service_account", "private_key": key, "client_email": "etl@p.iam.example"})
    masked = redact(line)
    assert not any(body in masked for body in FAKE_PEM_BODY)
    assert '"client_email": "etl@p.iam.example"' in masked
    assert "-----BEGIN PRIVATE " + "KEY-----" + MASK + "-----END PRIVATE " in masked


def test_a_fork_can_add_a_block_rule():
    pgp = Rule("pgp message", re.compile(r"-----BEGIN PGP MESSAGE-----"), r"\g<0>",
               until=re.compile(r"-----END PGP MESSAGE-----"))
    lines = ["-----BEGIN PGP MESSAGE-----", "hQEMA5", "-----END PGP MESSAGE-----", "done"]
    assert redact_lines(lines, (*RULES, pgp)) == (lines[0], MASK, lines[2], "done")
    assert redact_lines(lines) == tuple(lines)


# Hostile lines of 1,000 characters (the tail's cut): many starts of a rule that never
# completes, each with a real secret at its end that must still be found.
ADVERSARIAL = {
    "password=": "password=" * 110 + " db_pass=hunter2",
    "password=)))": "password=" + ")" * 960 + "x db_pass=hunter2",
    "quoted": '"password": "' * 75 + '" "db_pass": "hunter2',
    "escaped quotes": '\\"password\\": \\"' * 60 + " db_pass=hunter2",
    "backslashes": 'password=\\' + "\\" * 960 + '" db_pass=hunter2',
    "://": "://" * 320 + " redis://:hunter2@h",
    "a://:": "a://:" * 190 + " redis://:hunter2@h",
    "a://:@": "a://:@/" * 140 + " redis://:hunter2@h",
    "BEGIN": "-----BEGIN " * 88 + FAKE_PEM_BEGIN + "hunter2",
    "BEGIN labels": ("-----BEGIN " + "A " * 40) * 11 + FAKE_PEM_BEGIN + "hunter2",
    "key chars": "a." * 480 + " db_pass=hunter2",
    "pass words": "_pass" * 190 + " db_pass=hunter2",
    "-u": "-u a:" * 190 + " -u a:hunter2",
    "authorization": 'Authorization: "' * 60 + " db_pass=hunter2",
    "bearer": "bearer " * 140 + " db_pass: hunter2",
    "hooks": "hooks.slack.com/services/" * 38 + " db_pass=hunter2",
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_a_hostile_line_is_masked_in_linear_time(name):
    line = ADVERSARIAL[name][-1000:]
    assert "hunter2" in line
    start = time.perf_counter()
    masked = redact(line)
    elapsed = time.perf_counter() - start
    assert "hunter2" not in masked
    # Each takes about a millisecond; the bound only catches an exponential (or quadratic) pattern.
    assert elapsed < 1.0, f"{name}: {elapsed:.3f}s"


def test_masking_twice_changes_nothing():
    once = redact_lines([leak[0] for leak in LEAKS] + [spelling[0] for spelling in SPELLINGS])
    assert redact_lines(once) == once


def test_a_fork_can_add_a_rule():
    import re
    internal = Rule("internal ticket token", re.compile(r"TKT-[0-9a-f]{12}"), MASK)
    assert redact("ticket TKT-0123456789ab", (*RULES, internal)) == f"ticket {MASK}"
    assert redact("ticket TKT-0123456789ab") == "ticket TKT-0123456789ab"
