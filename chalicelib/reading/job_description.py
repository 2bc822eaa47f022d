"""A typed, read-only view over one ``jobs[]`` entry of AWS Batch's ``DescribeJobs`` answer.

Unlike the event view (``chalicelib.reading.event``), which shows whatever an event carries,
this view feeds a new ``SubmitJob``: a field read wrongly would run a different job. So an
absent field (missing or JSON ``null``) reads as ``None``, but a field that is there with the
wrong type raises :class:`DescriptionError` naming its path (``container.environment[2].name``)
instead of being skipped. Error messages name fields and JSON kinds, never values: the
environment of a job may hold secrets.

Only the fields a resubmission needs are read; the shapes follow botocore's Batch service
model (``JobDetail``, ``ContainerDetail``, ``NodeRangeProperty``, ``EcsTaskDetails``,
``EksPodPropertiesDetail``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.errors import BatchNotifyError

# Batch's job and node-job IDs: "<uuid>:<index>" is an array child, "<uuid>#<node>" a node job.
_ARRAY_CHILD_ID = re.compile(r":[0-9]+$")
_ARN = re.compile(r"^arn:[^:]+:batch:(?P<region>[^:]*):(?P<account>[^:]*):")


class DescriptionError(BatchNotifyError, ValueError):
    """A ``DescribeJobs`` entry lacks a field the caller needs, or has one of the wrong type.

    ``field`` is the path of the field (``jobQueue``, ``container.command[0]``).
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"the job description's {path} {problem}")
        self.field = path


def _kind(value: Any) -> str:
    """A value's JSON kind for an error message; never the value itself (it may be a secret)."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return kinds.get(type(value), f"a {type(value).__name__}")


class Fields:
    """Strict reads of one JSON object found at ``path``: absent is ``None``, a wrong type raises."""

    __slots__ = ("_path", "_raw")

    def __init__(self, raw: Mapping[str, Any], path: str = "") -> None:
        self._raw = raw
        self._path = path

    def path(self, key: str) -> str:
        """The dotted path of ``key`` in this object, for error messages."""
        return f"{self._path}.{key}" if self._path else key

    def _get(self, key: str, kinds: type | tuple[type, ...], expected: str) -> Any:
        value = self._raw.get(key)
        if value is None:
            return None
        # bool is an int in Python: a JSON true is never a number here.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
            raise DescriptionError(self.path(key), f"is {_kind(value)}, expected {expected}")
        return value

    def text(self, key: str) -> str | None:
        """A string; an empty one reads as absent."""
        value: str | None = self._get(key, str, "a string")
        return value or None

    def required_text(self, key: str) -> str:
        """A non-empty string, or :class:`DescriptionError` saying it is missing."""
        value = self.text(key)
        if value is None:
            raise DescriptionError(self.path(key), "is missing")
        return value

    def integer(self, key: str) -> int | None:
        """A whole number (``1.0`` counts: some emulators write integers as floats)."""
        value = self._get(key, (int, float), "a whole number")
        if isinstance(value, float):
            if not value.is_integer():
                raise DescriptionError(self.path(key), "is a fraction, expected a whole number")
            return int(value)
        return value  # type: ignore[no-any-return]

    def exact_text(self, key: str) -> str | None:
        """A string kept as is, empty included (an environment value may be empty on purpose)."""
        value: str | None = self._get(key, str, "a string")
        return value

    def boolean(self, key: str) -> bool | None:
        value: bool | None = self._get(key, bool, "a boolean")
        return value

    def obj(self, key: str) -> Fields | None:
        """A nested object."""
        value = self._get(key, Mapping, "an object")
        return None if value is None else Fields(value, self.path(key))

    def objs(self, key: str) -> tuple[Fields, ...] | None:
        """A list of objects."""
        items = self._get(key, (list, tuple), "a list")
        if items is None:
            return None
        found = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise DescriptionError(f"{self.path(key)}[{index}]", f"is {_kind(item)}, expected an object")
            found.append(Fields(item, f"{self.path(key)}[{index}]"))
        return tuple(found)

    def texts(self, key: str) -> tuple[str, ...] | None:
        """A list of strings (empty strings kept: a command's argument can be one)."""
        items = self._get(key, (list, tuple), "a list")
        if items is None:
            return None
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise DescriptionError(f"{self.path(key)}[{index}]", f"is {_kind(item)}, expected a string")
        return tuple(items)

    def text_map(self, key: str) -> dict[str, str] | None:
        """An object of strings (parameters, tags, labels, Kubernetes quantities)."""
        value = self._get(key, Mapping, "an object")
        if value is None:
            return None
        for name, item in value.items():
            if not isinstance(name, str) or not isinstance(item, str):
                raise DescriptionError(f"{self.path(key)}.<key>", "holds a value that is not a string")
        return dict(value)


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


@dataclass(frozen=True)
class EnvVar:
    """One environment variable. Its value may be a secret: it is left out of every repr."""

    name: str
    value: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Resource:
    """One ``resourceRequirements`` entry: ``type`` is ``GPU``, ``MEMORY`` (MiB) or ``VCPU``."""

    type: str
    value: str


@dataclass(frozen=True)
class ContainerSpec:
    """What a container ran with: an ECS container (``container``, a node range's container, or
    one of ``taskProperties[].containers[]``).

    ``resources`` holds ``resourceRequirements`` plus the legacy ``vcpus`` and ``memory`` fields
    as ``VCPU`` and ``MEMORY`` entries when no requirement of that type is listed.
    """

    name: str | None
    command: tuple[str, ...] | None
    environment: tuple[EnvVar, ...] | None
    resources: tuple[Resource, ...]
    instance_type: str | None = None


@dataclass(frozen=True)
class EksContainerSpec:
    """What one container of an EKS pod ran with; ``limits`` and ``requests`` hold Kubernetes
    quantities (``"4Gi"``, ``"500m"``) by resource name (``memory``, ``cpu``, ``nvidia.com/gpu``)."""

    name: str | None
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    env: tuple[EnvVar, ...] | None
    limits: Mapping[str, str] | None
    requests: Mapping[str, str] | None


@dataclass(frozen=True)
class EksPodSpec:
    """An EKS job's pod: its containers, init containers and the metadata an override may set."""

    containers: tuple[EksContainerSpec, ...]
    init_containers: tuple[EksContainerSpec, ...]
    labels: Mapping[str, str] | None
    has_annotations: bool


@dataclass(frozen=True)
class NodeRangeSpec:
    """One ``nodeProperties.nodeRangeProperties`` entry of a multi-node parallel job."""

    target_nodes: str
    container: ContainerSpec | None
    ecs_tasks: tuple[tuple[ContainerSpec, ...], ...] | None
    eks_pod: EksPodSpec | None
    instance_types: tuple[str, ...] | None
    consumable_resources: tuple[Mapping[str, Any], ...] | None


def _environment(fields: Fields, key: str) -> tuple[EnvVar, ...] | None:
    entries = fields.objs(key)
    if entries is None:
        return None
    return tuple(EnvVar(entry.required_text("name"), entry.exact_text("value")) for entry in entries)


def _number_text(fields: Fields, key: str) -> str | None:
    """The legacy ``vcpus`` / ``memory`` number as a requirement's text; 0 or less means unset."""
    value = fields.integer(key)
    return str(value) if value is not None and value > 0 else None


def container_spec(fields: Fields) -> ContainerSpec:
    """Read one ECS container (``ContainerDetail``, ``ContainerProperties``, ``TaskContainerDetails``)."""
    listed = tuple(
        Resource(entry.required_text("type"), entry.required_text("value"))
        for entry in fields.objs("resourceRequirements") or ()
    )
    types = {resource.type.upper() for resource in listed}
    legacy = [
        Resource(kind, text)
        for kind, text in (("VCPU", _number_text(fields, "vcpus")), ("MEMORY", _number_text(fields, "memory")))
        if text is not None and kind not in types
    ]
    return ContainerSpec(
        name=fields.text("name"), command=fields.texts("command"), environment=_environment(fields, "environment"),
        resources=(*listed, *legacy), instance_type=fields.text("instanceType"),
    )


def _quantities(fields: Fields | None, key: str) -> dict[str, str] | None:
    if fields is None:
        return None
    found = fields.text_map(key)
    if found is not None and any(not quantity for quantity in found.values()):
        raise DescriptionError(fields.path(key), "holds an empty quantity")
    return found


def eks_container_spec(fields: Fields) -> EksContainerSpec:
    """Read one EKS container (``EksContainerDetail``)."""
    resources = fields.obj("resources")
    return EksContainerSpec(
        name=fields.text("name"), command=fields.texts("command"), args=fields.texts("args"),
        env=_environment(fields, "env"), limits=_quantities(resources, "limits"),
        requests=_quantities(resources, "requests"),
    )


def eks_pod_spec(fields: Fields) -> EksPodSpec | None:
    """Read ``eksProperties`` (its ``podProperties``); ``None`` when it has none."""
    pod = fields.obj("podProperties")
    if pod is None:
        return None
    metadata = pod.obj("metadata")
    return EksPodSpec(
        containers=tuple(eks_container_spec(c) for c in pod.objs("containers") or ()),
        init_containers=tuple(eks_container_spec(c) for c in pod.objs("initContainers") or ()),
        labels=metadata.text_map("labels") if metadata else None,
        has_annotations=bool(metadata and metadata.text_map("annotations")),
    )


def ecs_task_specs(fields: Fields) -> tuple[tuple[ContainerSpec, ...], ...] | None:
    """Read ``ecsProperties``: the containers of each of its ``taskProperties``."""
    tasks = fields.objs("taskProperties")
    if tasks is None:
        return None
    return tuple(tuple(container_spec(c) for c in task.objs("containers") or ()) for task in tasks)


def consumable_resources(fields: Fields | None) -> tuple[Mapping[str, Any], ...] | None:
    """Read ``consumableResourceProperties.consumableResourceList`` as request entries."""
    entries = fields.objs("consumableResourceList") if fields is not None else None
    if entries is None:
        return None
    found: list[Mapping[str, Any]] = []
    for entry in entries:
        name, quantity = entry.text("consumableResource"), entry.integer("quantity")
        found.append({k: v for k, v in (("consumableResource", name), ("quantity", quantity)) if v is not None})
    return tuple(found)


def _node_range(fields: Fields) -> NodeRangeSpec:
    container, ecs, eks = fields.obj("container"), fields.obj("ecsProperties"), fields.obj("eksProperties")
    return NodeRangeSpec(
        target_nodes=fields.required_text("targetNodes"),
        container=container_spec(container) if container else None,
        ecs_tasks=ecs_task_specs(ecs) if ecs else None,
        eks_pod=eks_pod_spec(eks) if eks else None,
        instance_types=fields.texts("instanceTypes"),
        consumable_resources=consumable_resources(fields.obj("consumableResourceProperties")),
    )


class JobDescription:
    """Read-only view of one ``DescribeJobs`` ``jobs[]`` entry (a ``JobDetail``).

    Build it with :meth:`from_api`. Required fields (:attr:`job_name`, :attr:`job_queue`,
    :attr:`job_definition`) raise :class:`DescriptionError` when missing; the others are
    ``None`` when absent. Every accessor raises :class:`DescriptionError` on a wrong type.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Fields) -> None:
        self._fields = fields

    @classmethod
    def from_api(cls, raw: Any) -> JobDescription:
        """Wrap one ``jobs[]`` entry, or raise :class:`DescriptionError` if it is not an object."""
        if not isinstance(raw, Mapping):
            raise DescriptionError("entry", f"is {_kind(raw)}, expected an object")
        return cls(Fields(raw))

    @property
    def job_id(self) -> str | None:
        return self._fields.text("jobId")

    @property
    def job_arn(self) -> str | None:
        return self._fields.text("jobArn")

    @property
    def job_name(self) -> str:
        return self._fields.required_text("jobName")

    @property
    def job_queue(self) -> str:
        """The queue's ARN (as DescribeJobs writes it) or name."""
        return self._fields.required_text("jobQueue")

    @property
    def job_definition(self) -> str:
        """The job definition the job ran with: its ARN, revision included (``...:14``)."""
        return self._fields.required_text("jobDefinition")

    @property
    def region(self) -> str | None:
        """The region in the job's ARN (else its queue's ARN)."""
        return self._arn_part("region")

    @property
    def account(self) -> str | None:
        """The account ID in the job's ARN (else its queue's ARN)."""
        return self._arn_part("account")

    def _arn_part(self, part: str) -> str | None:
        for arn in (self.job_arn, self._fields.text("jobQueue")):
            match = _ARN.match(arn or "")
            if match and match.group(part):
                return match.group(part)
        return None

    @property
    def array_size(self) -> int | None:
        """``arrayProperties.size``: the number of children of an array parent."""
        array = self._fields.obj("arrayProperties")
        return array.integer("size") if array else None

    @property
    def is_array_child(self) -> bool:
        """One child of an array job (``jobId`` ends ``:<index>``, or ``arrayProperties.index`` is set)."""
        array = self._fields.obj("arrayProperties")
        return bool(_ARRAY_CHILD_ID.search(self.job_id or "")) or bool(array and array.integer("index") is not None)

    @property
    def is_node_job(self) -> bool:
        """One node of a multi-node parallel job (``jobId`` holds ``#``, or it has ``nodeDetails.nodeIndex``
        and no ``nodeProperties`` of its own)."""
        if "#" in (self.job_id or ""):
            return True
        details = self._fields.obj("nodeDetails")
        return bool(details and details.integer("nodeIndex") is not None and self._fields.obj("nodeProperties") is None)

    @property
    def parameters(self) -> dict[str, str] | None:
        return self._fields.text_map("parameters")

    @property
    def tags(self) -> dict[str, str] | None:
        return self._fields.text_map("tags")

    @property
    def propagate_tags(self) -> bool | None:
        return self._fields.boolean("propagateTags")

    @property
    def share_identifier(self) -> str | None:
        return self._fields.text("shareIdentifier")

    @property
    def scheduling_priority(self) -> int | None:
        return self._fields.integer("schedulingPriority")

    @property
    def platform_capabilities(self) -> tuple[str, ...]:
        """``EC2`` and/or ``FARGATE``."""
        return self._fields.texts("platformCapabilities") or ()

    @property
    def dependency_count(self) -> int:
        """How many other jobs it depended on (``dependsOn`` entries naming a ``jobId``)."""
        return sum(1 for entry in self._fields.objs("dependsOn") or () if entry.text("jobId"))

    @property
    def runs_children_in_sequence(self) -> bool:
        """An array job whose children run one after another (``dependsOn: [{"type": "SEQUENTIAL"}]``
        without a ``jobId``: the array's own rule, not a dependency on another job)."""
        return any(not entry.text("jobId") and entry.text("type") == "SEQUENTIAL"
                   for entry in self._fields.objs("dependsOn") or ())

    @property
    def retry_strategy(self) -> dict[str, Any] | None:
        """``retryStrategy`` as SubmitJob takes it: ``attempts`` and ``evaluateOnExit`` rules."""
        strategy = self._fields.obj("retryStrategy")
        if strategy is None:
            return None
        found: dict[str, Any] = {}
        attempts = strategy.integer("attempts")
        if attempts is not None:
            found["attempts"] = attempts
        rules = strategy.objs("evaluateOnExit")
        if rules is not None:
            found["evaluateOnExit"] = [_exit_rule(rule) for rule in rules]
        return found or None

    @property
    def attempt_duration_seconds(self) -> int | None:
        """``timeout.attemptDurationSeconds``."""
        timeout = self._fields.obj("timeout")
        return timeout.integer("attemptDurationSeconds") if timeout else None

    @property
    def container(self) -> ContainerSpec | None:
        """The job's single container (EC2 or Fargate job)."""
        container = self._fields.obj("container")
        return container_spec(container) if container else None

    @property
    def ecs_tasks(self) -> tuple[tuple[ContainerSpec, ...], ...] | None:
        """The containers of each task of an ``ecsProperties`` (multi-container) job."""
        ecs = self._fields.obj("ecsProperties")
        return ecs_task_specs(ecs) if ecs else None

    @property
    def eks_pod(self) -> EksPodSpec | None:
        """The pod of an EKS job."""
        eks = self._fields.obj("eksProperties")
        return eks_pod_spec(eks) if eks else None

    @property
    def num_nodes(self) -> int | None:
        """``nodeProperties.numNodes`` of a multi-node parallel job."""
        nodes = self._fields.obj("nodeProperties")
        return nodes.integer("numNodes") if nodes else None

    @property
    def node_ranges(self) -> tuple[NodeRangeSpec, ...] | None:
        """``nodeProperties.nodeRangeProperties`` of a multi-node parallel job (``None``: not one)."""
        nodes = self._fields.obj("nodeProperties")
        if nodes is None:
            return None
        ranges = nodes.objs("nodeRangeProperties")
        if not ranges:
            raise DescriptionError(nodes.path("nodeRangeProperties"), "is missing")
        return tuple(_node_range(r) for r in ranges)

    @property
    def consumable_resources(self) -> tuple[Mapping[str, Any], ...] | None:
        """``consumableResourceProperties.consumableResourceList``."""
        return consumable_resources(self._fields.obj("consumableResourceProperties"))


def _exit_rule(rule: Fields) -> dict[str, str]:
    found = {"action": rule.required_text("action")}
    for key in ("onStatusReason", "onReason", "onExitCode"):
        text = rule.text(key)
        if text is not None:
            found[key] = text
    return found

