"""Make untrusted text safe for Slack: escape it for mrkdwn, then bound it to Slack's limits.

Job names, status reasons, container reasons and tags are written by whoever submits the
job. Escaping ``&``, ``<`` and ``>`` keeps ``<!channel>`` or ``<https://evil|click>`` as
visible text that pings nobody and links nowhere. Characters that would make Slack show
something other than what the text says (bidi overrides, invisible characters) are removed.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"

# Slack's documented limits for the places this app writes to.
MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
HEADER_TEXT_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
BUTTON_URL_LIMIT = 3000
CONTEXT_TEXT_LIMIT = 2000
MAX_ACTIONS_ELEMENTS = 25
MAX_SECTION_FIELDS = 10
# The notification text is a preview; Slack allows far more, phones show a line or two.
FALLBACK_TEXT_LIMIT = 500

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ESCAPE = re.compile("[&<>]")
# Removed from untrusted text before it is shown:
# - control characters other than newline and tab (C0, DEL, C1) and lone surrogates (JSON's
#   "\ud800" is valid, UTF-8 is not): they only garble a message;
# - bidi embeddings, overrides and isolates (U+202A-202E, U+2066-2069) and the LRM/RLM/ALM
#   marks: they make Slack draw text in another order than it is written ("Trojan Source").
#   Removed, not shown as markers, so a person reads what the job wrote, in its real order;
#   Arabic or Hebrew text still reads right to left from its own letters;
# - characters that are invisible yet change what text is: zero-width space, word joiner,
#   invisible operators, BOM, soft hyphen, the deprecated format controls, interlinear
#   annotation, and tag characters (U+E0000-E007F, which can carry a whole hidden ASCII text).
# Zero-width joiner and non-joiner stay: emoji sequences and Persian or Indic words need them,
# and they hide nothing.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff"
    "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
    "\u00ad\u180e\u200b\u2060-\u2065\u206a-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")


def strip_hidden(text: str) -> str:
    """``text`` without control, bidi and invisible characters (see ``_HIDDEN``)."""
    return _HIDDEN.sub("", text)


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` so Slack shows ``text`` literally in mrkdwn."""
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], strip_hidden(text))


def truncate(text: str, limit: int) -> str:
    """Bound ``text`` to ``limit`` characters, ending with an ellipsis when cut.

    Never leaves half of an ``&amp;``-style entity at the end. Python strings are code
    points, so no character is cut in half either.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    cut = _ENTITY_TAIL.sub("", cut)
    # Don't split a surrogate-free but combined character such as a ZWJ emoji sequence.
    while cut and cut[-1] in "\u200d\ufe0f":
        cut = cut[:-1]
    return cut + ELLIPSIS


def safe_mrkdwn(text: str, limit: int) -> str:
    """Escape untrusted ``text`` for mrkdwn, then bound it to ``limit`` characters."""
    return truncate(escape(text), limit)


def safe_plain(text: str, limit: int) -> str:
    """Bound untrusted text for a ``plain_text`` object (Slack renders it literally)."""
    return truncate(strip_hidden(text), limit)
