"""Escaping and bounding of untrusted text."""

import pytest

from chalicelib.mrkdwn import ELLIPSIS, escape, safe_mrkdwn, safe_plain, truncate


def test_escape_neutralises_mentions_and_links():
    assert escape("<!channel> & <https://evil|click>") == "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"


def test_escape_drops_control_characters_but_keeps_newlines_and_tabs():
    assert escape("a\x00b\x1bc\nd\te") == "abc\nd\te"


def test_truncate_leaves_short_text_alone():
    assert truncate("short", 10) == "short"


def test_truncate_marks_the_cut_and_respects_the_limit():
    out = truncate("x" * 100, 10)
    assert out == "x" * 9 + ELLIPSIS and len(out) == 10


@pytest.mark.parametrize("limit", range(2, 14))
def test_escape_then_truncate_never_leaves_half_an_entity(limit):
    out = safe_mrkdwn("ab<>&<>&<>", limit)
    assert len(out) <= limit
    body = out.removesuffix(ELLIPSIS)
    # every '&' left must start a whole entity
    for i, ch in enumerate(body):
        if ch == "&":
            assert body[i:i + 4] in ("&lt;", "&gt;") or body[i:i + 5] == "&amp;", out


def test_truncate_keeps_multibyte_characters_whole():
    out = truncate("é" * 10 + "🚀" * 10, 15)
    assert out == "é" * 10 + "🚀" * 4 + ELLIPSIS
    out.encode("utf-8")  # would raise on a lone surrogate


def test_truncate_does_not_end_on_a_zero_width_joiner():
    family = "👩\u200d👩\u200d👧"
    out = truncate("a" * 4 + family, 7)
    assert not out.removesuffix(ELLIPSIS).endswith("\u200d")


def test_safe_plain_bounds_without_escaping():
    assert safe_plain("a < b", 150) == "a < b"
    assert len(safe_plain("y" * 500, 150)) == 150
