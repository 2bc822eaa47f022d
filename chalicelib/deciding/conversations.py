"""Whether this stage holds conversations (one living message per job, threads, grouped storms).

They need a bot token (a webhook returns no reference to what it posted, and can neither update
nor thread a message) and the state table (``NOTIFY_STATE_TABLE``), which remembers each job's
message. Without either, every event posts one message of its own, as it always did; the first
invocation of a container says so once, and why, in its log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chalicelib.core.config import BOT_TOKEN, BOT_TOKEN_PARAM, Settings, settings
from chalicelib.core.logline import log_line
from chalicelib.core.state_table import TABLE, state_settings


@dataclass(frozen=True)
class ConversationMode:
    """On, or off and why (the reason is logged once per container)."""

    on: bool
    reason: str


def conversation_mode() -> ConversationMode:
    """This container's mode, worked out (and, when off, logged) at its first use."""
    return settings().section(_mode)


def _mode(tree: Settings) -> ConversationMode:
    if tree.slack.mode != "bot":
        mode = ConversationMode(False, f"a webhook cannot update or thread messages: set {BOT_TOKEN_PARAM} (or "
                                       f"{BOT_TOKEN}) for conversations; each event posts its own message")
    elif state_settings() is None:
        mode = ConversationMode(False, f"{TABLE} is not set: no table to remember each job's message in; "
                                       "each event posts its own message")
    else:
        return ConversationMode(True, "bot token and state table")
    log_line(logging.INFO, conversations="off", reason=mode.reason)
    return mode
