"""Mask secret-looking text in log lines before they leave the account for Slack.

A job's log is written by the job: it may print a database URL, an ``Authorization`` header
or a token by accident. Whatever matches a rule below is replaced by ``[masked]``; the part
that says *what* it was (``password=``, ``AKIA``, ``Bearer``) is kept so a reader still
understands the line. The rules are a table a fork can extend (:data:`RULES`).

Rules are written for the spellings people really log: JSON logged inside a JSON string
(``{\\"password\\": \\"x\\"}``, at any depth of escaping), tokens glued to a name by ``_``
(``SLACK_BOT_xoxb-...``), URLs in upper case or without their scheme. A private key block
spans lines: it is masked from its ``BEGIN`` line to its ``END`` line (see :class:`Rule`).

Masking is best effort, not a guarantee: it catches the common shapes, not every secret.
It errs on the side of masking: a masked harmless value costs less than a leaked key.
Every pattern is written to run in linear time or close to it on any 1,000-character line
(no nested quantifiers that can backtrack into each other).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MASK = "[masked]"

# Where a name, token or option may start. Not `\b`: it does not fire between `_` and a
# letter, so `SLACK_BOT_xoxb-...` would pass; and after an escaped newline or tab in JSON
# (`"...\nghp_..."`) the letter before belongs to the escape, not to the name. Each check
# comes after the first character it guards, not before: a pattern that starts with a
# character is searched for that character, many times faster than a lookbehind tried at
# every position of every line.
_ESCAPE = r"\\[nrt]"

# Key names whose value is a secret, in `key=value`, `key: value` and JSON `"key": "value"`
# pairs. The key must *end* with one of these (in any case), so `max_tokens=512` or
# `token_count=3` are left alone while `DB_PASSWORD=...`, `github_token=...` and
# `client_secret=...` are masked.
_SECRET_WORDS = (
    "password", "passwd", "passphrase", "pwd", "secret", "token",
    *(f"{word}{sep}key" for word in ("api", "access", "secret", "private", "auth") for sep in ("", "_", "-")),
)
_NAME_CHAR = r"[A-Za-z0-9_.-]"
# A name is read once, then its end is checked against each word (a fixed-width lookbehind
# each): trying every word at every position of every name is several times slower.
_ENDS_LIKE_A_SECRET = (
    "(?:" + "|".join(f"(?<={word})" for word in _SECRET_WORDS)
    # `pass` only as a whole word of the name (`db_pass`, `PASS`, `dbPass`): `bypass`,
    # `compass` and `passenger` are not secrets.
    + rf"|(?<=pass)(?:(?<![A-Za-z0-9]pass)|(?<={_ESCAPE}pass))|(?-i:(?<=[a-z0-9]Pass)))"
)
# A secret's key: a name followed by `:` or `=` (after its closing quote, if any) that ends
# like a secret. Not right after a `/`: `/run/secrets/db_password: no such file` names a
# file, it does not print one.
_SECRET_KEY = (
    rf"{_NAME_CHAR}(?:(?<![A-Za-z0-9_./-]{_NAME_CHAR})|(?<={_ESCAPE}{_NAME_CHAR})){_NAME_CHAR}*"
    + r"""(?=(?:\\*["'])?\s*[:=])""" + _ENDS_LIKE_A_SECRET
)
# The first dash of a command-line option, not one inside a word (`--user`, not `x-user`).
_OPTION_DASH = rf"-(?:(?<![A-Za-z0-9_.-]-)|(?<={_ESCAPE}-))"
# An option naming a secret: `--password`, `-api-key`, `--db-pass`.
_SECRET_OPTION = rf"{_OPTION_DASH}-?{_NAME_CHAR}*(?=\s)" + _ENDS_LIKE_A_SECRET

# A quote, escaped any number of times: `"`, `\"` (JSON logged inside a JSON string), `\\\"`...
_QUOTE = r"""\\*["']"""
# A quoted value: from its quote up to the same quote at the same depth of escaping (a quote
# with one more backslash is inside the value: `\"` within `"..."`, `\\\"` within `\"...\"`),
# or to the end of the line when the log cut it. The closing quote is left in place.
_QUOTED = r"""(?P<q>""" + _QUOTE + r""")(?!(?P=q)).+?(?=(?<!\\)(?P=q)|[\r\n]|$)"""
# An unquoted value: up to a space, a quote (escaped or not), `&`, `,`, `;` or `}`. Closing
# brackets right after it are the line's ("(password=x)"); a mask an earlier rule put inside
# it (`token=xoxb-[masked]`) is part of it, so the whole value becomes one `[masked]`.
_BARE = (
    # Greedy, then back off the closing brackets: linear, where a lazy match would be
    # quadratic in a run of `)`.
    r"""(?:\[masked\]|(?!\[masked\]|\\+["'])[^\s"'&,;}])+(?:(?<=\[masked\])|(?<![)\]]))"""
    r"""(?=[)\]]*(?:[\s"'&,;}]|\\+["']|$))"""
)
# The `/` of a URL, also as JSON encoders that escape it write it (`\/`).
_SLASH = r"\\*/"


@dataclass(frozen=True)
class Rule:
    """One masking rule: ``pattern`` is replaced by ``replacement`` (``re.sub`` syntax).

    With ``until``, the rule masks a *block* that can span lines (a private key printed
    line by line): ``pattern`` is the block's opening marker, replaced by ``replacement``
    (``\\g<0>`` keeps it), then everything up to the next ``until`` match, on this line or a
    later one, becomes ``[masked]``; the ``until`` match itself is kept. A block that is never
    closed is masked to the last line. ``pattern`` must not match the empty string.
    """

    name: str
    pattern: re.Pattern[str]
    replacement: str
    until: re.Pattern[str] | None = None


def _rule(name: str, pattern: str, replacement: str, flags: int = 0) -> Rule:
    return Rule(name, re.compile(pattern, flags), replacement)


def _token_start(kind: str) -> str:
    """``kind`` (a regex starting with a letter) where it starts a token, not inside a word."""
    first = kind[0]
    assert first.isalnum() and kind[1:2] not in ("*", "+", "?", "{"), kind
    return rf"{first}(?:(?<![A-Za-z0-9]{first})|(?<={_ESCAPE}{first})){kind[1:]}"


def _token(name: str, kinds: Sequence[str], body: str) -> Rule:
    """A token known by one of its prefixes ``kinds`` (kept: it says what the token was) and ``body``."""
    alternatives = "|".join(_token_start(kind) for kind in kinds)
    return _rule(name, rf"(?P<kind>{alternatives}){body}", rf"\g<kind>{MASK}")


_PRIVATE_KEY_LABEL = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"

# Order matters: whole-header, whole-URL and token-shape rules run before the generic pair
# rule, so a URL keeps its host and a header its name; the pair rule then masks a value as a
# whole, even one an earlier rule already masked in part (`token=[masked]`).
RULES: tuple[Rule, ...] = (
    # -----BEGIN RSA PRIVATE KEY----- ... -----END RSA PRIVATE KEY-----, line by line or
    # inside one JSON string (`"private_key": "-----BEGIN PRIVATE KEY-----\nMII...`).
    Rule("private key block", re.compile(r"-----BEGIN " + _PRIVATE_KEY_LABEL), r"\g<0>",
         until=re.compile(r"-----END " + _PRIVATE_KEY_LABEL)),
    # `Authorization: Basic dXNlcjpwYXNz`, `"Authorization": "Bearer ..."`, `authorization=...`:
    # the whole value, scheme included, up to its closing quote, or the end of the line, a
    # comma or a brace when it is not quoted.
    _rule("authorization header",
          r"""(?P<key>(?:proxy-)?authorization(?:""" + _QUOTE + r""")?\s*[:=]\s*)"""
          r"""(?:""" + _QUOTED + r"""|(?:(?!\\+["'])[^"'\r\n,}])+)""",
          rf"\g<key>\g<q>{MASK}", re.IGNORECASE),
    # An RFC 6750 token (`=` only as padding at its end), not a lowercase word or name that
    # ends there: `token_type=bearer expires_in=3600` and "bearer authentication failed." are
    # prose. (Possessive, so a token that merely starts like a word is still one.)
    _rule("bearer token",
          r"(?P<scheme>" + _token_start("bearer") + r")\s+"
          r"(?!(?-i:[a-z]++(?:[_.-][a-z]++)*+)\.?(?![A-Za-z0-9._~+-]|" + _SLASH + "))"
          r"(?:[A-Za-z0-9._~+-]|" + _SLASH + r"){8,}=*",
          rf"\g<scheme> {MASK}", re.IGNORECASE),
    # With or without the scheme, in any case, and with JSON's escaped slashes.
    _rule("slack webhook url",
          r"(?P<base>(?:https?:" + _SLASH * 2 + r")?hooks\.slack(?:-gov)?\.com" + _SLASH
          + r"(?:services|workflows|triggers)" + _SLASH + r")(?:[A-Za-z0-9_-]|" + _SLASH + r")+",
          rf"\g<base>{MASK}", re.IGNORECASE),
    _token("slack token", (r"xox[a-z]-", "xapp-"), r"[A-Za-z0-9-]{8,}"),
    _token("aws access key id", ("AKIA", "ASIA"), r"[A-Z0-9]{16}(?![A-Za-z0-9])"),
    _token("github token", (r"gh[pousr]_",), r"[A-Za-z0-9]{20,}"),
    _token("github fine-grained token", ("github_pat_",), r"[A-Za-z0-9_]{20,}"),
    _token("gitlab token", (r"gl(?:pat|dt|rt|ptt|cbt|soat)-",), r"[A-Za-z0-9_-]{20,}"),
    _token("stripe key", (r"sk_(?:live|test)_", r"rk_(?:live|test)_", "whsec_"), r"[A-Za-z0-9]{10,}"),
    _token("google api key", ("AIza",), r"[A-Za-z0-9_-]{35}"),
    _token("npm token", ("npm_",), r"[A-Za-z0-9]{30,}"),
    _token("pypi token", ("pypi-",), r"[A-Za-z0-9_-]{50,}"),
    _token("docker hub token", ("dckr_pat_",), r"[A-Za-z0-9_-]{20,}"),
    _token("hugging face token", ("hf_",), r"[A-Za-z0-9]{30,}"),
    # OpenAI (`sk-`, `sk-proj-`...) and Anthropic (`sk-ant-api03-`) keys.
    _token("llm api key", (r"sk-(?:proj-|svcacct-|admin-|ant-[a-z]+[0-9]*-)?",), r"[A-Za-z0-9_-]{20,}"),
    _token("sendgrid key", (r"SG\.",), r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),
    _token("databricks token", ("dapi",), r"[0-9a-f]{32}"),
    _rule("json web token", _token_start("eyJ") + r"[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", MASK),
    # postgres://user:hunter2@db:5432/x -> postgres://user:[masked]@db:5432/x; also with no
    # user (redis://:pw@host), and with an `@` in the password: it runs to the *last* `@`
    # before the host. Not `\b` before the scheme, for `DSN_postgres://...`.
    _rule("password in url",
          r"""(?P<head>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:""" + _SLASH * 2 + r"""[^/\\\s:@"'<>]*:)"""
          r"""[^/\s"'<>]+(?P<at>@)""",
          rf"\g<head>{MASK}\g<at>", re.IGNORECASE),
    # `curl -u user:pw`, `--user user:pw`, `--proxy-user=user:pw`, quoted or not. The user
    # stays; `docker run -u 1000:1000` (uid:gid, no password) is left alone.
    _rule("user option",
          r"""(?P<opt>""" + _OPTION_DASH + r"""(?:u|-user|-proxy-user)(?:\s+|=))"""
          r"""(?!(?:""" + _QUOTE + r""")?\d+:\d+(?:["'\s\\]|$))"""
          r"""(?P<q>""" + _QUOTE + r""")?(?P<user>[^\s:"'\\]*):"""
          r"""(?(q)(?:(?!(?<!\\)(?P=q)).)+|(?:(?!\\+["'])[^\s"'])+)""",
          rf"\g<opt>\g<q>\g<user>:{MASK}"),
    # key=value, key: value, KEY="value", "key": "value", 'key': 'value', \"key\": \"value\"
    # (env files, logfmt, query strings, JSON and Python reprs, JSON inside JSON). AWS's secret
    # access key and session token have no shape of their own: they are caught here by name,
    # in every spelling boto3, the CLI, env files and STS JSON use (`aws_secret_access_key`,
    # `AWS_SESSION_TOKEN`, `"SecretAccessKey"`, `"SessionToken"`).
    _rule("secret pair",
          r"""(?P<key>""" + _SECRET_KEY + r"""(?:""" + _QUOTE + r""")?\s*[:=]\s*)"""
          r"""(?:""" + _QUOTED + "|" + _BARE + r""")""",
          rf"\g<key>\g<q>{MASK}", re.IGNORECASE),
    # Command lines echoed to the log: `--password hunter2`, `--api-key abc`, `--pass "a b"`.
    _rule("secret option",
          r"""(?P<key>""" + _SECRET_OPTION + r"""\s+)"""
          r"""(?:""" + _QUOTED + r"""|(?!-)(?:(?!\\+["'])\S)+)""",
          rf"\g<key>\g<q>{MASK}", re.IGNORECASE),
)


def redact(line: str, rules: Sequence[Rule] = RULES) -> str:
    """``line`` with every secret-looking part replaced by ``[masked]``."""
    return redact_lines((line,), rules)[0]


def redact_lines(lines: Iterable[str], rules: Sequence[Rule] = RULES) -> tuple[str, ...]:
    """:func:`redact` applied to each line, with blocks (``Rule.until``) spanning lines."""
    line_rules = tuple(rule for rule in rules if rule.until is None)
    block_rules = tuple(rule for rule in rules if rule.until is not None)
    masked: list[str] = []
    open_block: Rule | None = None
    for line in lines:
        text, open_block = _redact_line(line, line_rules, block_rules, open_block)
        masked.append(text)
    return tuple(masked)


def _redact_line(line: str, line_rules: Sequence[Rule], block_rules: Sequence[Rule],
                 open_block: Rule | None) -> tuple[str, Rule | None]:
    """``line`` masked, and the block still open at its end (``None`` if none is)."""
    out: list[str] = []
    pos = 0
    while True:
        if open_block is not None and open_block.until is not None:
            end = open_block.until.search(line, pos)
            stop = len(line) if end is None else end.start()
            if stop > pos:
                out.append(MASK)
            if end is None:
                return "".join(out), open_block
            out.append(end.group())
            pos, open_block = end.end(), None
        begin = _first_block(block_rules, line, pos)
        if begin is None:
            out.append(_apply(line_rules, line[pos:]))
            return "".join(out), None
        rule, match = begin
        # Line rules see only the text outside blocks: a block's content is masked whole.
        out.append(_apply(line_rules, line[pos:match.start()]))
        out.append(match.expand(rule.replacement))
        # A non-empty opening marker moves `pos` on, so the loop ends.
        pos, open_block = match.end(), rule


def _first_block(block_rules: Sequence[Rule], line: str, pos: int) -> tuple[Rule, re.Match[str]] | None:
    """The block rule whose opening marker comes first in ``line[pos:]``, with its match."""
    first: tuple[Rule, re.Match[str]] | None = None
    for rule in block_rules:
        match = next((m for m in rule.pattern.finditer(line, pos) if m.end() > m.start()), None)
        if match is not None and (first is None or match.start() < first[1].start()):
            first = (rule, match)
    return first


def _apply(line_rules: Sequence[Rule], text: str) -> str:
    for rule in line_rules:
        text = rule.pattern.sub(rule.replacement, text)
    return text
