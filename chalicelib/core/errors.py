"""The one base class of the app's own errors, so a caller (or a fork) can tell them apart.

Every error the app raises on purpose (a setting to fix, a secret that cannot be read, Slack
refusing a message, DynamoDB failing a claim, an event that is not what a handler expects)
derives from :class:`BatchNotifyError`; anything else is a bug or a library's own error.
"""

from __future__ import annotations


class BatchNotifyError(RuntimeError):
    """Base class of batch-notify's errors. The message says what is wrong and what to do,
    and never holds a secret."""
