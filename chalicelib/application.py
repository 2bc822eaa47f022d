"""The Chalice app class: what every event handler gets before and after its own code runs.

Chalice turns the raw EventBridge payload into a ``CloudWatchEvent`` before any of our code runs,
indexing ``id``, ``time``, ``region``, ``account``, ``resources`` and ``version``: an event that
lacks one raises ``KeyError`` inside Chalice, Lambda retries it, and nothing says why. Here the
event object is built leniently instead, so the handler's own path (``notify``) can log one error
line naming what is wrong and skip the event, as for any other bad input.

It is also the boundary every invocation passes, so it is where, once per container, the log
level is applied and the masking of secrets in log records is installed, and where an error on
its way to Lambda (which prints it) has any configured secret masked.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from chalice.app import Chalice, CloudWatchEvent, EventSourceHandler

from chalicelib.core import masking, member_roles
from chalicelib.core.config import settings
from chalicelib.core.errors import BatchNotifyError

# CloudWatchEvent's attributes and the envelope keys they come from.
_ENVELOPE = {"version": "version", "account": "account", "region": "region", "detail": "detail",
             "detail_type": "detail-type", "source": "source", "time": "time", "event_id": "id",
             "resources": "resources"}


class LenientCloudWatchEvent(CloudWatchEvent):
    """A ``CloudWatchEvent`` that never raises while it is built: absent fields are ``None``,
    and ``to_dict()`` returns the payload as it came (even when it is not an object)."""

    def _extract_attributes(self, event_dict: Any) -> None:
        fields: Mapping[str, Any] = event_dict if isinstance(event_dict, Mapping) else {}
        for attribute, key in _ENVELOPE.items():
            setattr(self, attribute, fields.get(key))


class MaskedError(BatchNotifyError):
    """An error whose message held a configured secret, re-raised with the secret masked."""


class BatchNotify(Chalice):
    """``Chalice`` whose EventBridge and scheduled handlers tolerate malformed envelopes,
    apply ``LOG_LEVEL``, and never let a configured secret out in a log record or an error."""

    def _wrap_handler(self, handler_type: str, handler_name: str, user_handler: Any) -> Any:
        # Chalice has no public hook before it builds the event object: this is the one place.
        wrapped = super()._wrap_handler(handler_type, handler_name, _guarded(user_handler))
        if isinstance(wrapped, EventSourceHandler) and wrapped.event_class is CloudWatchEvent:
            wrapped.event_class = LenientCloudWatchEvent
        return wrapped


def _guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        masking.install()
        if args:  # the event; its Lambda context names the app's own account, free of an STS call
            member_roles.note_context(getattr(args[0], "context", None))
        try:
            logging.getLogger("batch_notify").setLevel(settings().log_level)
            return handler(*args, **kwargs)
        except Exception as error:
            text = str(error)
            masked = masking.mask(text)
            if masked != text:
                # The original (with its traceback) would carry the secret into Lambda's log.
                raise MaskedError(f"{type(error).__name__}: {masked}") from None
            raise

    return guarded

