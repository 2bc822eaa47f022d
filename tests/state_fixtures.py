"""The state table in moto, as the README creates it, and a DynamoDB client that serializes calls.

moto does not lock: two threads' conditional writes can interleave inside it, which real DynamoDB
never allows (it applies each conditional write atomically). :class:`Serialized` runs one call at
a time, which is what DynamoDB guarantees, so concurrency tests test our code, not moto's races.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

STATE_TABLE = "batch-notify-test-state"


def create_state_table(dynamodb: Any, name: str = STATE_TABLE) -> str:
    """Create the state table (partition key ``pk`` (S), on demand, TTL on ``expires_at``) in moto."""
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    dynamodb.update_time_to_live(TableName=name,
                                 TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    return name


class Serialized:
    """A DynamoDB client whose calls run one at a time (give it with ``clients.use_client``).
    ``calls`` lists each call's name, in order (failed calls too); ``seen(name, answer)`` runs under
    the lock after each call that answered: a subclass may record more."""

    def __init__(self, client: Any) -> None:
        self._client, self._lock = client, threading.Lock()
        self.calls: list[str] = []
        # A test sets this to make chosen calls fail as DynamoDB does when it throttles.
        self.fail_when: Callable[[str, dict[str, Any]], bool] = lambda name, kwargs: False

    def seen(self, name: str, answer: Any) -> None:
        """Called under the lock with each call's name and answer (nothing by default)."""

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if not callable(found):
            return found

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls.append(name)
                if self.fail_when(name, kwargs):
                    raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                                 "Message": "Rate of requests exceeds the allowed throughput"}}, name)
                answer = found(*args, **kwargs)
                self.seen(name, answer)
                return answer

        return locked
