"""The app's one DynamoDB table (``NOTIFY_STATE_TABLE``): dedup claims, job messages, storms, pacing.

Schema, so anyone can create it: partition key ``pk`` (string), no sort key, TTL on
``expires_at`` (epoch seconds), on-demand billing. Every item's ``pk`` starts with the kind of
state it holds (``event#``, ``job#``, ``group#``, ``pace#``, ``snooze#``), so the kinds never
collide and a reader of the table sees what each item is.

:class:`StateTable` is a thin typed layer over the low-level DynamoDB client: items go in and
come out as plain Python values (``str``, ``int``, ``float``, ``bool``, lists, dicts, sets), a
lost condition raises :class:`ConditionFailed` carrying the item that won (one call, no read),
and every other AWS error raises :class:`StateError` naming the table, the call and the fix.

No table (``NOTIFY_STATE_TABLE`` unset or empty): :func:`state_table` is ``None``, and every
caller keeps today's behaviour (one message per event, no dedup). ``NOTIFY_DEDUP_TABLE``, the
variable this one replaced, is refused with a message saying how to move (its table's key was
``event_id``, which this schema cannot read).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chalicelib.core.aws_errors import Family, describe_aws_error
from chalicelib.core.clients import ClientConfig, client
from chalicelib.core.config import ConfigError, Settings, number_setting, settings
from chalicelib.core.errors import BatchNotifyError

TABLE = "NOTIFY_STATE_TABLE"
REPLACED = "NOTIFY_DEDUP_TABLE"
TTL_DAYS = "NOTIFY_STATE_TTL_DAYS"
# The dedup table's own TTL setting, replaced by NOTIFY_STATE_TTL_DAYS.
REPLACED_TTL_DAYS = "NOTIFY_DEDUP_TTL_DAYS"
KEY = "pk"
TTL_ATTRIBUTE = "expires_at"
DEFAULT_TTL_DAYS = 7.0

# DynamoDB table names: 3 to 255 of letters, digits, '_', '-' and '.'.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")

# Everything the app calls on the table: the IAM policies and the merge template grant these
# and no more (tests/test_merge_template.py; the tests record the calls made).
IAM_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")

# Short timeouts and few attempts, as for SSM: a slow DynamoDB must not eat the Lambda's time;
# Lambda's own retry tries the whole invocation again.
STATE_CLIENT = ClientConfig(connect_timeout=2, read_timeout=3, attempts=3)

Item = dict[str, Any]


class StateError(BatchNotifyError):
    """DynamoDB could not read or write the state table; the message names the table and the fix."""


class ConditionFailed(Exception):
    """A conditional write lost; ``item`` is the item that won (``{}`` when there was none)."""

    def __init__(self, item: Item) -> None:
        super().__init__("conditional check failed")
        self.item = item


@dataclass(frozen=True)
class StateSettings:
    """Which table holds the app's state, and how long an item is kept by default."""

    table: str
    ttl_seconds: int


def load_state_settings(env: Mapping[str, str]) -> StateSettings | None:
    """Validate the state table settings in ``env``: None when ``NOTIFY_STATE_TABLE`` is unset or
    empty (no state: one message per event); raise :class:`ConfigError` naming the variable."""
    if env.get(REPLACED, "").strip():
        raise ConfigError(f"{REPLACED} was replaced by {TABLE}: one table (partition key pk (S), TTL on "
                          f"expires_at) for all of the app's state. Create it, set {TABLE} and remove "
                          f"{REPLACED} (README: Moving from {REPLACED})")
    # Refused even without a table: whoever set it expects a TTL this app no longer reads.
    if env.get(REPLACED_TTL_DAYS, "").strip():
        raise ConfigError(f"{REPLACED_TTL_DAYS} was replaced by {TTL_DAYS} (how long the state table {TABLE} "
                          f"keeps every item, dedup claims included; default 7): set {TTL_DAYS} instead and "
                          f"remove {REPLACED_TTL_DAYS} (README: Moving from {REPLACED})")
    table = env.get(TABLE, "").strip()
    if not table:
        return None
    if not _TABLE_NAME.fullmatch(table):
        raise ConfigError(f"{TABLE}={table!r} is not a DynamoDB table name (3 to 255 letters, digits, "
                          "'_', '-' or '.'; the table must be in the function's region)")
    ttl_days = number_setting(env, TTL_DAYS, default=DEFAULT_TTL_DAYS, maximum=365, unit="days")
    return StateSettings(table=table, ttl_seconds=max(3600, round(ttl_days * 86400)))


def state_settings() -> StateSettings | None:
    """This container's state table settings (a section of the settings tree; None: no table)."""
    return settings().section(_state_section)


def _state_section(tree: Settings) -> StateSettings | None:
    return load_state_settings(tree.env)


# DynamoDB's partition keys are at most 2048 bytes; an id or ARN from an event can be any length.
MAX_PLAIN_KEY_BYTES = 512


def item_key(kind: str, key: str) -> str:
    """The ``pk`` of ``kind``'s item for ``key``: ``kind#key``, or ``kind#sha256:<hex>`` when ``key``
    is too long to be a DynamoDB key as it is (a forged event's 3,000-character job ARN)."""
    if len(key.encode("utf-8", "surrogatepass")) <= MAX_PLAIN_KEY_BYTES:
        return f"{kind}#{key}"
    return f"{kind}#sha256:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def dynamodb_client() -> Any:
    """This container's DynamoDB client (``core/clients.py``; tests hook its calls through
    ``meta.events``, or hand in their own with ``clients.use_client``)."""
    return client("dynamodb", STATE_CLIENT)


def state_table() -> StateTable | None:
    """The state table of this container, or None when ``NOTIFY_STATE_TABLE`` is not set."""
    found = state_settings()
    return None if found is None else StateTable(found)


def now() -> float:
    """Wall time in epoch seconds, what items hold (a function, so a reader sees where time comes from)."""
    return time.time()


class StateTable:
    """Typed calls on the state table: plain values in and out, errors that name the fix."""

    def __init__(self, settings: StateSettings) -> None:
        self.settings = settings
        self.name = settings.table

    def expires(self, at: float, seconds: int | None = None) -> int:
        """The ``expires_at`` for an item written at ``at`` and kept ``seconds`` (default: the TTL)."""
        return int(at) + (self.settings.ttl_seconds if seconds is None else seconds)

    def get(self, pk: str) -> Item | None:
        """The item ``pk`` (read strongly consistent), or None."""
        answer = self._call("GetItem", f"read {pk}", lambda c: c.get_item(
            TableName=self.name, Key=_key(pk), ConsistentRead=True))
        found = answer.get("Item")
        return None if not found else _from_dynamo(found)

    def put(self, item: Mapping[str, Any], *, condition: str | None = None,
            names: Mapping[str, str] | None = None, values: Mapping[str, Any] | None = None) -> None:
        """Write ``item`` (which holds ``pk``) whole; raise :class:`ConditionFailed` when ``condition`` fails."""
        request: dict[str, Any] = {"TableName": self.name, "Item": _to_dynamo(dict(item))}
        _add_expression(request, condition, names, values)
        self._call("PutItem", f"write {item[KEY]}", lambda c: c.put_item(**request))

    def update(self, pk: str, expression: str, *, condition: str | None = None,
               names: Mapping[str, str] | None = None, values: Mapping[str, Any] | None = None) -> Item:
        """Apply the update ``expression`` to item ``pk`` (made if absent); return the item as it is after.
        Raise :class:`ConditionFailed` (with the item as it was) when ``condition`` fails."""
        request: dict[str, Any] = {"TableName": self.name, "Key": _key(pk), "UpdateExpression": expression,
                                   "ReturnValues": "ALL_NEW"}
        _add_expression(request, condition, names, values)
        answer = self._call("UpdateItem", f"update {pk}", lambda c: c.update_item(**request))
        return _from_dynamo(answer.get("Attributes") or {})

    def delete(self, pk: str, *, condition: str | None = None, names: Mapping[str, str] | None = None,
               values: Mapping[str, Any] | None = None) -> None:
        """Delete item ``pk``; raise :class:`ConditionFailed` when ``condition`` fails."""
        request: dict[str, Any] = {"TableName": self.name, "Key": _key(pk)}
        _add_expression(request, condition, names, values)
        self._call("DeleteItem", f"delete {pk}", lambda c: c.delete_item(**request))

    def _call(self, action: str, doing: str, request: Callable[[Any], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        dynamodb = dynamodb_client()
        table = f"DynamoDB table {self.name!r} ({TABLE})"
        try:
            return request(dynamodb)
        except ClientError as error:
            details = error.response.get("Error", {})
            code = details.get("Code", "Unknown")
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed(_from_dynamo(error.response.get("Item") or {})) from None
            if code == "ValidationException":
                said = str(details.get("Message", ""))
                fix = f": its partition key must be {KEY}, of type S (string)" if "key" in said.lower() else ""
                raise StateError(f"could not {_bounded(doing)}: {table} rejected the request ({_bounded(said)}){fix}"
                                 ) from None
            raise StateError(_in_words(error, action, f"{_bounded(doing)} in {table}", dynamodb.meta.region_name)
                             ) from None
        except BotoCoreError as error:
            raise StateError(_in_words(error, action, f"{_bounded(doing)} in {table}", dynamodb.meta.region_name)
                             ) from None


_SHOWN_LIMIT = 300


def _bounded(text: str) -> str:
    """Text for an error message, cut: a key or AWS's message can be long."""
    return text if len(text) <= _SHOWN_LIMIT else text[:_SHOWN_LIMIT] + f"… ({len(text)} characters)"


def _key(pk: str) -> dict[str, Any]:
    return {KEY: {"S": pk}}


def _add_expression(request: dict[str, Any], condition: str | None, names: Mapping[str, str] | None,
                    values: Mapping[str, Any] | None) -> None:
    if condition is not None:
        request["ConditionExpression"] = condition
        # The item that won, in the same call: no read (and no race between reading and deciding).
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    if names:
        request["ExpressionAttributeNames"] = dict(names)
    if values:
        request["ExpressionAttributeValues"] = _to_dynamo(dict(values))


def _to_dynamo(values: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {name: serializer.serialize(_decimals(value)) for name, value in values.items()}


def _decimals(value: Any) -> Any:
    # boto3's serializer refuses float (it would lose precision silently): send it as Decimal.
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (list, tuple)):
        return [_decimals(item) for item in value]
    if isinstance(value, (set, frozenset)):  # a number set of floats
        return {_decimals(item) for item in value}
    if isinstance(value, dict):
        return {key: _decimals(item) for key, item in value.items()}
    return value


def _from_dynamo(item: Mapping[str, Any]) -> Item:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {name: _plain(deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    """DynamoDB's Decimal as int when whole, else float; containers recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, set):
        return {_plain(item) for item in value}
    return value


def _in_words(error: BaseException, action: str, doing: str, region: str) -> str:
    fixes: dict[Family, str] = {
        "not found": f"it does not exist in {region}: create it (partition key {KEY} (S), TTL on {TTL_ATTRIBUTE}; "
                     f"README: Conversations) or fix {TABLE}",
        "access denied": f"not allowed to call dynamodb:{action}: the stage's IAM policy needs "
                         f"{', '.join(IAM_ACTIONS)} on the table",
    }
    words = describe_aws_error(error, service="DynamoDB", action=f"dynamodb:{action}", doing=doing, fixes=fixes)
    return f"{words}; raising so Lambda retries the event"
