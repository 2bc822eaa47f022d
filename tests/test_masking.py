"""Masking at the log record boundary: every form a secret takes in text, in every part of a
record of any logger (the app's, slack-sdk's, botocore's), without ever breaking logging."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from urllib.parse import quote, quote_plus, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core import masking, secrets
from chalicelib.core.config import Secret
from tests.conftest import FAKE_BOT_TOKEN, FAKE_WEBHOOK

PATH = FAKE_WEBHOOK.split("hooks.slack.com", 1)[1]  # /services/T.../B.../XXX...


def split(text: str, at: int, by: str = "\n") -> str:
    return text[:at] + by + text[at:]


# Every way a secret shows up in text: quoted by urllib, escaped by repr (as http.client's
# InvalidURL does) or JSON, split by a newline or a space, and a webhook's path alone.
FORMS: dict[str, Callable[[str], str]] = {
    "as is": lambda s: s,
    "quote": quote,
    "quote safe=''": lambda s: quote(s, safe=""),
    "quote_plus": quote_plus,
    "repr": repr,
    "repr of bytes": lambda s: repr(s.encode()),
    "json": json.dumps,
    "json with \\/": lambda s: json.dumps(s).replace("/", "\\/"),
    "json in json": lambda s: json.dumps({"body": json.dumps({"url": s}).replace("/", "\\/")}),
    "inner newline": lambda s: split(s, 20),
    "inner space": lambda s: split(s, 12, " "),
    "repr with inner newline": lambda s: repr(split(s, 20)),
    "quoted inner newline": lambda s: quote(split(s, 20), safe=""),
    "json with inner CRLF": lambda s: json.dumps(split(s, 9, "\r\n")),
}
WEBHOOK_ONLY: dict[str, Callable[[str], str]] = {
    "path": lambda s: PATH,
    "path without slash": lambda s: PATH[1:],
    "quoted path": lambda s: quote(PATH, safe=""),
    "InvalidURL": lambda s: f"URL can't contain control characters. {split(PATH, 25)!r} (found at least '\\n')",
    "urllib3 request line": lambda s: f'https://hooks.slack.com:443 "POST {PATH} HTTP/1.1" 404 9',
}


def leaked(text: str, secret: str) -> list[str]:
    """Every 8-character piece of ``secret`` still readable in ``text`` (also once unquoted).
    A webhook's scheme and host are public: only its path is secret."""
    core = "".join(secret.split())
    part = PATH.lstrip("/") if "://" in core else core
    readable = text + "\n" + unquote(text).replace("\\/", "/")
    return sorted({part[i:i + 8] for i in range(len(part) - 7)} & {readable[i:i + 8] for i in range(len(readable) - 7)})


@pytest.fixture
def masked_logging() -> Iterator[list[logging.LogRecord]]:
    """The masking factory installed, and every record of the process captured at DEBUG."""
    factory = logging.getLogRecordFactory()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    masking.install()
    yield records
    root.removeHandler(handler)
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    masking.forget()


def everything(record: logging.LogRecord) -> str:
    """All a handler could print of a record: formatted with its traceback and stack, raw fields."""
    formatted = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return "\n".join([formatted, str(record.msg), repr(record.args), str(record.exc_text), str(record.stack_info)])


@pytest.mark.parametrize("secret", [FAKE_BOT_TOKEN, FAKE_WEBHOOK], ids=["token", "webhook"])
def test_every_form_of_a_secret_is_masked(secret):
    masking.protect(secret)
    try:
        forms = {**FORMS, **(WEBHOOK_ONLY if secret == FAKE_WEBHOOK else {})}
        failures = {}
        for name, form in forms.items():
            text = masking.mask(f"before {form(secret)} after")
            if leaked(text, secret) or masking.MASKED not in text:
                failures[name] = text
        assert failures == {}
    finally:
        masking.forget()


def test_a_configured_value_with_an_inner_newline_is_masked_whole_and_split():
    masking.protect(split(FAKE_BOT_TOKEN, 16, "\n "))
    try:
        for text in (FAKE_BOT_TOKEN, split(FAKE_BOT_TOKEN, 16, "\n "), repr(split(FAKE_BOT_TOKEN, 16, "\n"))):
            assert leaked(masking.mask(text), FAKE_BOT_TOKEN) == []
    finally:
        masking.forget()


tokens = st.builds(
    lambda kind, parts: f"xox{kind}-" + "-".join(parts),
    st.sampled_from("abpr"),
    st.lists(st.text("ABCDEFabcdef0123456789", min_size=8, max_size=24), min_size=2, max_size=4),
)
ENCODINGS = ["quote", "quote safe=''", "quote_plus", "repr", "repr of bytes", "json", "json with \\/", "json in json"]


@settings(max_examples=150, deadline=None, database=None)
@given(token=tokens, at=st.integers(0, 40), gap=st.sampled_from(["", "\n", " ", "\r\n", "\t", "\n  "]),
       configured=st.booleans(), steps=st.lists(st.sampled_from(ENCODINGS), max_size=3))
def test_property_a_token_split_and_encoded_any_way_is_masked(token, at, gap, configured, steps):
    # The whitespace is in the configured value, or a library split the value it was given.
    masking.protect(split(token, at, gap) if configured else token)
    try:
        text = split(token, at, gap)
        for step in steps:
            text = FORMS[step](text)
        masked = masking.mask(f"Authorization: Bearer {text}!")
        assert leaked(masked, token) == [] and masked.startswith("Authorization: Bearer ") and masking.MASKED in masked
    finally:
        masking.forget()


def test_message_args_traceback_and_stack_of_any_logger_are_masked(masked_logging):
    masking.protect(FAKE_WEBHOOK)
    try:
        # What http.client raises for a URL with a control character, with the path in repr.
        raise ValueError(f"URL can't contain control characters. {split(PATH, 25)!r}")
    except ValueError:
        logging.getLogger("urllib3.connectionpool").warning("POST %s failed", quote(FAKE_WEBHOOK), exc_info=True)
    # A stack whose frame names the secret: a file name is the simplest carrier.
    code = compile("logging.getLogger('botocore.hooks').debug('hook', stack_info=True)", f"<{FAKE_WEBHOOK}>", "exec")
    exec(code, {"logging": logging})
    logging.getLogger("batch_notify").info({"url": FAKE_WEBHOOK})  # a non-string message
    assert len(masked_logging) == 3
    assert masked_logging[0].exc_text and "ValueError" in masked_logging[0].exc_text
    assert masked_logging[1].stack_info and "Stack (most recent call last)" in masked_logging[1].stack_info
    assert [leaked(everything(r), FAKE_WEBHOOK) for r in masked_logging] == [[], [], []]


@pytest.mark.parametrize("secret", [FAKE_BOT_TOKEN, FAKE_WEBHOOK], ids=["token", "webhook"])
def test_slack_sdk_error_records_are_masked_once_the_secret_is_resolved(masked_logging, secret):
    variable = "SLACK_BOT_TOKEN" if secret == FAKE_BOT_TOKEN else "SLACK_WEBHOOK_URL"
    assert secrets.resolve(Secret(variable=variable, value=secret)) == secret  # resolve protects it
    sdk = logging.getLogger("slack_sdk.web.base_client")
    forms = {**FORMS, **(WEBHOOK_ONLY if secret == FAKE_WEBHOOK else {})}
    for form in forms.values():
        sdk.error("Failed to send a request to Slack API server: %s", form(secret))
    assert len(masked_logging) == len(forms)
    assert {r.name for r in masked_logging} == {"slack_sdk.web.base_client"}
    assert [r.getMessage() for r in masked_logging if leaked(everything(r), secret)] == []


def test_a_record_that_cannot_be_formatted_never_raises_and_never_shows_the_secret(masked_logging):
    masking.protect(FAKE_BOT_TOKEN)

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError(FAKE_BOT_TOKEN)

    log = logging.getLogger("batch_notify")
    log.error("%d tokens", FAKE_BOT_TOKEN)  # wrong argument type: formatting raises TypeError
    log.error("%s", Hostile())
    assert [r.getMessage() for r in masked_logging] == [
        "(log record withheld: masking it failed with TypeError)",
        "(log record withheld: masking it failed with RuntimeError)",
    ]


def test_install_is_idempotent_and_comes_back_after_the_factory_was_replaced(masked_logging):
    masking.install()
    factory = logging.getLogRecordFactory()
    masking.install()
    assert logging.getLogRecordFactory() is factory  # not wrapped twice
    logging.setLogRecordFactory(logging.LogRecord)  # e.g. a framework resetting logging
    masking.install()
    masking.protect(FAKE_BOT_TOKEN)
    logging.getLogger("botocore.endpoint").debug("token %s", quote(FAKE_BOT_TOKEN, safe=""))
    assert masked_logging[-1].getMessage() == "token ***"


def test_nothing_registered_leaves_records_alone_and_threads_protect_and_log_safely(masked_logging):
    log = logging.getLogger("batch_notify")
    log.info("%s and %d", "plain", 3)
    assert masked_logging[0].args == ("plain", 3)  # nothing registered: the record is untouched
    tokens = [f"xoxb-{n:012d}-{n:013d}-ThreadSafeSecret{n:02d}" for n in range(8)]

    def work(token: str) -> None:
        for _ in range(25):
            masking.protect(token)
            log.warning("retrying with %s", quote(token, safe="") if _ % 2 else token)

    threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(masked_logging) == 1 + 8 * 25
    assert all(r.getMessage() == "retrying with ***" for r in masked_logging[1:])


def test_a_record_whose_traceback_held_the_secret_carries_no_exception_object():
    # Lambda's JSON log format writes str(exc_info[1]): only the masked text may remain.
    masking.protect(FAKE_BOT_TOKEN)
    masking.install()
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("batch_notify.test_exc")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"Invalid header value 'Bearer {FAKE_BOT_TOKEN}'")
        except ValueError:
            logger.exception("posting failed")
    finally:
        logger.removeHandler(handler)
    [record] = records
    assert record.exc_info is None and record.exc_text and FAKE_BOT_TOKEN not in record.exc_text


def test_masking_is_linear_on_a_long_run_of_backslashes():
    # A server can put 60,000 backslashes into an error message: quadratic work would hold the
    # invocation for minutes. A generous bound: the linear version takes milliseconds.
    import time

    masking.protect(FAKE_BOT_TOKEN)
    started = time.perf_counter()
    masking.mask("X" + "\\" * 60_000 + "%5c" * 10_000)
    assert time.perf_counter() - started < 2.0
