"""Which of the app's handlers would EventBridge invoke for an event? Asked of a real
EventBridge implementation (moto, in process), not of a matcher we wrote.

Used by the replay tool, the pattern tests and the benchmarks. Development only: needs
moto (requirements-dev.txt), never deployed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalice.app import Chalice, CloudWatchEventConfig

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


def registered_patterns(app: Chalice) -> dict[str, dict[str, Any]]:
    """Handler name -> EventBridge pattern, for every ``on_cw_event`` handler of ``app``."""
    return {source.name: source.event_pattern for source in app.event_sources
            if isinstance(source, CloudWatchEventConfig)}


class EventBridgeRouter:
    """One rule per pattern on an emulated event bus, each with an SQS queue as its target.

    ``with EventBridgeRouter(patterns) as router: router.matching(event)`` puts the event on
    the bus and returns the names of the rules it reached.
    """

    def __init__(self, patterns: Mapping[str, Mapping[str, Any]]) -> None:
        self._patterns = dict(patterns)
        self._queues: dict[str, str] = {}
        self._mock: Any = None

    def __enter__(self) -> EventBridgeRouter:
        import boto3
        from moto import mock_aws

        self._mock = mock_aws()
        self._mock.start()
        self._events = boto3.client("events", region_name=REGION)
        self._sqs = boto3.client("sqs", region_name=REGION)
        for name, pattern in self._patterns.items():
            self._events.put_rule(Name=name, EventPattern=json.dumps(pattern))
            url = self._sqs.create_queue(QueueName=f"rule-{name}")["QueueUrl"]
            arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self._events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
            self._queues[name] = url
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._mock.stop()

    def deliver_all(self, events: list[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Put many events on the bus (10 per call, as the API allows); return, per rule, the
        events as EventBridge delivered them to its target (ready to hand to the handler)."""
        for start in range(0, len(events), 10):
            result = self._events.put_events(Entries=[_entry(e) for e in events[start:start + 10]])
            if result.get("FailedEntryCount"):
                raise ValueError(f"EventBridge refused events: {result['Entries']}")
        delivered: dict[str, list[dict[str, Any]]] = {name: [] for name in self._queues}
        for name, url in self._queues.items():
            while True:
                messages = self._sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    event = json.loads(message["Body"])
                    # moto leaves out the envelope's "account", which EventBridge always sends.
                    event.setdefault("account", ACCOUNT)
                    delivered[name].append(event)
                    self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return delivered

    def matching(self, event: Mapping[str, Any]) -> list[str]:
        """Names of the rules (handlers) that ``event`` reaches, in registration order."""
        return [name for name, delivered in self.deliver_all([event]).items() if delivered]


def _entry(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Source": str(event.get("source", "")),
        "DetailType": str(event.get("detail-type", "")),
        "Detail": json.dumps(event.get("detail", {})),
        "Resources": [r for r in event.get("resources", []) if isinstance(r, str)],
    }
