"""Escaping and bounding of untrusted text."""

import pytest

from chalicelib.composing.mrkdwn import ELLIPSIS, escape, safe_mrkdwn, safe_plain, truncate


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


BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_bidi_controls_are_removed_so_text_shows_in_the_order_it_is_written():
    # "invoice<RLO>fdp.exe" would show as "invoiceexe.pdf"; without the override, as written.
    assert escape("invoice\u202efdp.exe") == "invoicefdp.exe"
    assert escape(f"a{BIDI_CONTROLS}b") == "ab"
    assert safe_plain(f"a{BIDI_CONTROLS}b", 150) == "ab"


def test_invisible_characters_that_hide_text_are_removed_but_not_the_joiners_words_need():
    hidden = "\u200b\u2060\ufeff\u00ad\u180e\u2061\u206a\ufff9"
    tags = "".join(chr(0xE0000 + ord(c)) for c in "ignore me")  # tag characters: an invisible ASCII text
    assert escape(f"ok{hidden}{tags}!") == "ok!"
    assert safe_plain(f"ok{hidden}{tags}!", 150) == "ok!"
    # Emoji sequences and Persian or Indic words need the zero-width joiner and non-joiner.
    family, persian = "👩\u200d👩\u200d👧", "می\u200cخواهم"
    assert escape(f"{family}\u200b{persian}") == family + persian


def test_c1_controls_and_lone_surrogates_are_removed():
    # json.loads('"\\ud800"') is a lone surrogate: valid JSON, not encodable as UTF-8.
    out = escape("a\x85b\x9bc\ud800d")
    assert out == "abcd"
    out.encode("utf-8")


def test_the_text_slack_escapes_survives_removal():
    assert escape("\u202e<!channel>\u202c") == "&lt;!channel&gt;"
