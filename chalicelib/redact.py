"""Mask secret-looking text in log lines before they leave the account for Slack.

A job's log is written by the job: it may print a database URL, an ``Authorization`` header
or a token by accident. Whatever matches a rule below is replaced by ``[masked]``; the part
that says *what* it was (``password=``, ``AKIA``, ``Bearer``) is kept so a reader still
understands the line. The rules are a table a fork can extend (:data:`RULES`).

Masking is best effort, not a guarantee: it catches the common shapes, not every secret.
It errs on the side of masking: a masked harmless value costs less than a leaked key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

MASK = "[masked]"

# Key names whose value is a secret, in `key=value`, `key: value` and JSON `"key": "value"`
# pairs. The key must *end* with one of these, so `max_tokens=512` or `token_count=3` are
# left alone while `DB_PASSWORD=...`, `github_token=...` and `client_secret=...` are masked.
_SECRET_KEY = (
    r"[A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|secret[_-]?key|private[_-]?key|auth[_-]?key)"
)


@dataclass(frozen=True)
class Rule:
    """One masking rule: ``pattern`` is replaced by ``replacement`` (``re.sub`` syntax)."""

    name: str
    pattern: re.Pattern[str]
    replacement: str


def _rule(name: str, pattern: str, replacement: str, flags: int = 0) -> Rule:
    return Rule(name, re.compile(pattern, flags), replacement)


# Order matters: whole-header and whole-URL rules run before the generic pair rule, so a
# value is masked once and the kept prefix stays readable.
RULES: tuple[Rule, ...] = (
    # `Authorization: Basic dXNlcjpwYXNz`, `"Authorization": "Bearer ..."`, `authorization=...`:
    # the whole value, scheme included, up to the end of the line, a quote or a comma.
    _rule("authorization header",
          r"""(?P<key>["']?(?:proxy-)?authorization["']?\s*[:=]\s*)(?P<q>["']?)(?:\\.|[^"'\r\n,}])+""",
          rf"\g<key>\g<q>{MASK}", re.IGNORECASE),
    _rule("bearer token", r"\b(?P<scheme>bearer)\s+[A-Za-z0-9._~+/=-]{8,}", rf"\g<scheme> {MASK}", re.IGNORECASE),
    _rule("slack webhook url",
          r"(?P<base>https://hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+",
          rf"\g<base>{MASK}"),
    _rule("slack token", r"\b(?P<kind>xox[abeoprs]|xapp)-[A-Za-z0-9-]{8,}", rf"\g<kind>-{MASK}"),
    _rule("aws access key id", r"\b(?P<kind>AKIA|ASIA)[A-Z0-9]{16}\b", rf"\g<kind>{MASK}"),
    # The secret key itself has no recognisable shape; catch it by its name, in every
    # spelling boto3, the CLI, env files and STS JSON use (and the session token with it).
    _rule("aws secret access key",
          r"""(?P<key>["']?(?:aws_?)?(?:secret_?access_?key|session_?token)["']?\s*[:=]\s*)(?P<q>["']?)"""
          r"""[A-Za-z0-9/+=]{16,}""",
          rf"\g<key>\g<q>{MASK}", re.IGNORECASE),
    _rule("json web token", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", MASK),
    # postgres://user:hunter2@db:5432/x -> postgres://user:[masked]@db:5432/x
    _rule("password in url", r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+(?P<at>@)",
          rf"\g<head>{MASK}\g<at>", re.IGNORECASE),
    # JSON / Python-repr style: "password": "hunter2", 'api_key': 'abc' (escaped quotes too).
    _rule("quoted secret pair",
          rf"""(?P<key>(?P<kq>["']){_SECRET_KEY}(?P=kq)\s*[:=]\s*)(?P<q>["'])(?:\\.|(?!(?P=q)).)*(?P=q)""",
          rf"\g<key>\g<q>{MASK}\g<q>", re.IGNORECASE),
    # key=value, key: value, KEY="value" (env files, logfmt, query strings).
    _rule("secret pair",
          rf"""(?P<key>(?<![A-Za-z0-9_.-]){_SECRET_KEY}\s*[:=]\s*)(?!\[masked\])"""
          r"""(?:(?P<q>["'])(?:\\.|(?!(?P=q)).)+(?P=q)"""  # a quoted value, spaces and all
          # a bare value; closing brackets right after it are the line's ("(password=x)")
          r"""|[^\s"'&,;}]+?(?=[)\]]*(?:[\s"'&,;}]|$)))""",
          rf"\g<key>\g<q>{MASK}\g<q>", re.IGNORECASE),
    # Command lines echoed to the log: `--password hunter2`, `--api-key abc`.
    _rule("secret option", rf"(?P<opt>(?<![A-Za-z0-9_.-])--?{_SECRET_KEY}\s+)(?!-)\S+", rf"\g<opt>{MASK}",
          re.IGNORECASE),
)


def redact(line: str, rules: Sequence[Rule] = RULES) -> str:
    """``line`` with every secret-looking part replaced by ``[masked]``."""
    for rule in rules:
        line = rule.pattern.sub(rule.replacement, line)
    return line


def redact_lines(lines: Iterable[str], rules: Sequence[Rule] = RULES) -> tuple[str, ...]:
    """:func:`redact` applied to each line."""
    return tuple(redact(line, rules) for line in lines)
