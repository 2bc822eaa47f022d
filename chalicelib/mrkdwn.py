"""Make untrusted text safe for Slack: escape it for mrkdwn, then bound it to Slack's limits.

Job names, status reasons, container reasons and tags are written by whoever submits the
job. Escaping ``&``, ``<`` and ``>`` keeps ``<!channel>`` or ``<https://evil|click>`` as
visible text that pings nobody and links nowhere.
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
CONTEXT_TEXT_LIMIT = 2000
# The notification text is a preview; Slack allows far more, phones show a line or two.
FALLBACK_TEXT_LIMIT = 500

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ESCAPE = re.compile("[&<>]")
# Control characters other than newline and tab only garble a message.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` so Slack shows ``text`` literally in mrkdwn."""
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], _CONTROL.sub("", text))


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
    return truncate(_CONTROL.sub("", text), limit)
