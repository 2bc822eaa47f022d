"""Masking secrets in log lines: realistic lines in, the secret gone, the rest still readable."""

import pytest

from chalicelib.redact import MASK, RULES, Rule, redact, redact_lines
from tests.conftest import FAKE_AWS_KEY, FAKE_BOT_TOKEN, FAKE_USER_TOKEN, FAKE_WEBHOOK

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
    ("calling vendor api_key=sk_live_51HxYzAbCdEf api-version=3", "sk_live_51HxYzAbCdEf",
     "api_key=[masked] api-version=3"),
    ("headers: X-Api-Key: 0f8e7d6c5b4a, Accept: application/json", "0f8e7d6c5b4a", "X-Api-Key: [masked], Accept"),
    ('loaded config {"user": "svc", "password": "p@ss \\"quoted\\" word", "port": 5432}', "p@ss",
     '{"user": "svc", "password": "[masked]", "port": 5432}'),
    ("settings={'secret': 'shh-do-not-tell', 'debug': False}", "shh-do-not-tell", "{'secret': '[masked]', 'debug'"),
    ("GITHUB_TOKEN: ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F", "GITHUB_TOKEN: [masked]"),
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
])
def test_ordinary_lines_are_left_alone(line):
    assert redact(line) == line


def test_masking_twice_changes_nothing():
    once = redact_lines(leak[0] for leak in LEAKS)
    assert redact_lines(once) == once


def test_a_fork_can_add_a_rule():
    import re
    internal = Rule("internal ticket token", re.compile(r"TKT-[0-9a-f]{12}"), MASK)
    assert redact("ticket TKT-0123456789ab", (*RULES, internal)) == f"ticket {MASK}"
    assert redact("ticket TKT-0123456789ab") == "ticket TKT-0123456789ab"
