"""Run a job again exactly as it ran: ``DescribeJobs``'s description in, ``SubmitJob``'s kwargs out.

Pure: no AWS call. The caller describes the job (``batch:DescribeJobs``), calls
:func:`resubmit_request` and passes :attr:`Resubmit.kwargs` to ``batch.submit_job``::

    retry = resubmit_request(described["jobs"][0], original_job_id=job_id, more_memory=oom)
    new = batch.submit_job(**retry.kwargs)
    say(retry.notes)                  # what changed, what could not be carried

What is carried: the job name, queue, job definition revision (the ARN it ran with),
parameters, retry strategy, timeout, tags (plus ``batch-notify:retry-of=<original job id>``),
propagateTags, share identifier, scheduling priority (as ``schedulingPriorityOverride``),
consumable resources, array size (array parents) and, as overrides, what each container ran
with: command, environment and resource requirements (``containerOverrides``; per node range
in ``nodeOverrides``; per container in ``ecsPropertiesOverride`` and, with ``args``, in
``eksPropertiesOverride``). Not carried: dependencies (the retry starts at once), images (the
job definition revision names them), and what Batch sets itself (``AWS_BATCH*`` variables,
``aws:`` tags).

Environment values may be secrets: they are in :attr:`Resubmit.kwargs` (the job must run as it
ran), and nowhere else. No note and no repr holds one; log :meth:`Resubmit.loggable`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from chalicelib.core.errors import BatchNotifyError
from chalicelib.reading.job_description import (
    ContainerSpec,
    DescriptionError,
    EksContainerSpec,
    EksPodSpec,
    EnvVar,
    JobDescription,
    NodeRangeSpec,
    Resource,
)

RETRY_OF_TAG = "batch-notify:retry-of"
# SubmitJob's tag limits (botocore's TagrisTagsMap, TagKey, TagValue).
MAX_TAGS = 50
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
# Batch refuses overrides of the variables it sets, and tags in AWS's own namespace.
RESERVED_ENV_PREFIX = "AWS_BATCH"
RESERVED_TAG_PREFIX = "aws:"
# Fargate's largest task (16 vCPU, 120 GiB): a doubling that passes it cannot run on Fargate, and
# on EC2 it is already a large instance's worth. Callers with bigger instances pass their own cap.
DEFAULT_MEMORY_CAP_MIB = 122_880
MASKED = "[masked]"
# Names quoted in notes (containers, tags, node ranges) are cut to this, and lists to a few names.
NOTE_NAME_LIMIT = 60
NOTE_NAMES = 5

_MIB = 1 << 20
# A Kubernetes quantity: a decimal number and a binary, decimal or exponent suffix.
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]{1,18}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})(?P<suffix>[KMGTPE]i|[kMGTPEm]|[eE][-+]?[0-9]{1,2})?$")
_QUANTITY_PRECISION = 80
_MAX_DIGITS = 18
_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL = {"k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_REVISION = re.compile(r":[0-9]+$")


class CannotResubmit(BatchNotifyError, ValueError):
    """The job cannot be submitted again from its description; the message says why (no secret)."""


class RetryTheParent(CannotResubmit):
    """An array child or a node of a multi-node job: only its parent can be submitted again."""

    def __init__(self, message: str, parent_job_id: str) -> None:
        super().__init__(message)
        self.parent_job_id = parent_job_id


class JobElsewhere(CannotResubmit):
    """The job belongs to another account or region than the one this app acts in."""


class IncompleteDescription(CannotResubmit):
    """The description lacks a field the request needs, or has one of the wrong type (``field``)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.field = path


@dataclass(frozen=True)
class Resubmit:
    """A ``SubmitJob`` request that runs a job again, and what a person should know about it.

    ``kwargs`` is for ``batch.submit_job(**kwargs)`` only: it holds the job's environment
    values. ``notes`` say what was changed or could not be carried, one sentence each; they
    quote container, node range and tag names (job-controlled: escape them for Slack), never an
    environment value. ``region`` and ``account`` are the job's own (from its ARN), for the client.
    """

    kwargs: dict[str, Any] = field(repr=False)
    notes: tuple[str, ...]
    original_job_id: str
    region: str | None = None
    account: str | None = None

    def __repr__(self) -> str:
        return (f"Resubmit(jobName={self.kwargs.get('jobName')!r}, jobQueue={self.kwargs.get('jobQueue')!r}, "
                f"jobDefinition={self.kwargs.get('jobDefinition')!r}, original_job_id={self.original_job_id!r}, "
                f"notes={self.notes!r})")

    def loggable(self) -> dict[str, Any]:
        """A copy of the request fit for a log line: environment values, commands and arguments
        (which can carry a ``--password``) replaced by ``[masked]``."""
        masked: dict[str, Any] = _masked(copy.deepcopy(self.kwargs))
        return masked


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("environment", "env") and isinstance(item, list):
                value[key] = [{**entry, "value": MASKED} if "value" in entry else entry for entry in item]
            elif key in ("command", "args") and isinstance(item, list):
                value[key] = [MASKED] * len(item)
            else:
                _masked(item)
    elif isinstance(value, list):
        for item in value:
            _masked(item)
    return value


def resubmit_request(description: Mapping[str, Any] | JobDescription, *, original_job_id: str,
                     more_memory: bool = False, memory_cap_mib: int = DEFAULT_MEMORY_CAP_MIB,
                     account: str | None = None, region: str | None = None) -> Resubmit:
    """The ``SubmitJob`` request that runs the described job again exactly as it ran.

    ``description`` is one ``jobs[]`` entry of ``DescribeJobs`` (or its view);
    ``original_job_id`` its job ID (an ARN is accepted), written to the new job's
    ``batch-notify:retry-of`` tag. With ``more_memory``, every container's memory is doubled,
    up to ``memory_cap_mib`` (never lowered). ``account`` and ``region``, when given, are where
    this app acts: a job of another one is refused.

    Raises :class:`CannotResubmit`: :class:`RetryTheParent` for an array child or a node job,
    :class:`JobElsewhere`, :class:`IncompleteDescription` naming the missing or malformed field.
    """
    if memory_cap_mib < 1:
        raise ValueError("memory_cap_mib must be at least 1 MiB")
    view = description if isinstance(description, JobDescription) else _view(description)
    try:
        return _build(view, _job_id(original_job_id), more_memory, memory_cap_mib, account, region)
    except DescriptionError as error:
        raise IncompleteDescription(str(error), error.field) from error


def _view(description: Any) -> JobDescription:
    try:
        return JobDescription.from_api(description)
    except DescriptionError as error:
        raise IncompleteDescription(str(error), error.field) from error


def _job_id(original: str) -> str:
    """The job ID of an ID or a job ARN (``arn:...:job/<id>``)."""
    job_id = original.rsplit("/", 1)[-1].strip() if isinstance(original, str) else ""
    if not job_id or len(job_id) > MAX_TAG_VALUE_CHARS:
        raise CannotResubmit("original_job_id must be a job ID (1 to 256 characters)")
    return job_id


def _build(view: JobDescription, job_id: str, more_memory: bool, cap_mib: int,
           account: str | None, region: str | None) -> Resubmit:
    _refuse_children(view, job_id)
    _refuse_elsewhere(view, account, region)
    notes: list[str] = []
    memory = _Memory(more_memory, cap_mib)
    kwargs = {**_job_fields(view, job_id, notes), **_overrides(view, memory, notes)}
    notes += memory.notes
    if more_memory:
        notes += _memory_summary(view, memory)
    return Resubmit(kwargs=kwargs, notes=tuple(notes), original_job_id=job_id,
                    region=view.region, account=view.account)


def _refuse_children(view: JobDescription, job_id: str) -> None:
    described = view.job_id
    if described is not None and described != job_id:
        raise CannotResubmit(f"the description is of job {_quoted(described)}, not of {_quoted(job_id)}")
    own = described or job_id
    if view.is_array_child or re.search(r":[0-9]+$", own):
        parent = own.split(":", 1)[0]
        raise RetryTheParent(f"{_quoted(own)} is one child of array job {_quoted(parent)}: "
                             "retry the array job, which runs every child again", parent)
    if view.is_node_job or "#" in own:
        parent = own.split("#", 1)[0]
        raise RetryTheParent(f"{_quoted(own)} is one node of multi-node job {_quoted(parent)}: "
                             "retry the multi-node job, which runs every node again", parent)


def _refuse_elsewhere(view: JobDescription, account: str | None, region: str | None) -> None:
    for what, own, theirs in (("account", account, view.account), ("region", region, view.region)):
        if own and theirs and own != theirs:
            raise JobElsewhere(f"the job is in {what} {_quoted(theirs)}; this app acts in {what} {_quoted(own)}")


def _job_fields(view: JobDescription, job_id: str, notes: list[str]) -> dict[str, Any]:
    """Everything but the containers' overrides."""
    kwargs: dict[str, Any] = {"jobName": view.job_name, "jobQueue": view.job_queue,
                              "jobDefinition": view.job_definition}
    if not _REVISION.search(view.job_definition):
        notes.append("the description names no job definition revision: the latest active revision runs")
    optional = {
        "parameters": view.parameters or None, "retryStrategy": view.retry_strategy,
        "propagateTags": view.propagate_tags, "shareIdentifier": view.share_identifier,
        "schedulingPriorityOverride": view.scheduling_priority,
        "timeout": _wrap("attemptDurationSeconds", view.attempt_duration_seconds),
        "arrayProperties": _wrap("size", view.array_size),
        "consumableResourcePropertiesOverride": _consumables(view.consumable_resources),
    }
    kwargs.update({key: value for key, value in optional.items() if value is not None})
    kwargs["tags"] = _tags(view.tags or {}, job_id, notes)
    if view.runs_children_in_sequence:
        kwargs["dependsOn"] = [{"type": "SEQUENTIAL"}]  # its children run in order, as they did
    if view.dependency_count:
        notes.append(f"dependencies are not carried: the retry does not wait for the {view.dependency_count} "
                     "job(s) the original depended on")
    return kwargs


def _wrap(key: str, value: Any) -> dict[str, Any] | None:
    return None if value is None else {key: value}


def _consumables(entries: Sequence[Mapping[str, Any]] | None) -> dict[str, Any] | None:
    return {"consumableResourceList": [dict(entry) for entry in entries]} if entries else None


def _tags(original: Mapping[str, str], job_id: str, notes: list[str]) -> dict[str, str]:
    """The original's tags that SubmitJob takes, then ``batch-notify:retry-of``, within 50 tags."""
    kept: dict[str, str] = {}
    reserved, oversize = [], []
    for key, value in original.items():
        if key == RETRY_OF_TAG:
            continue  # a retry of a retry points at the job it retried
        if key.startswith(RESERVED_TAG_PREFIX):
            reserved.append(key)
        elif not key or len(key) > MAX_TAG_KEY_CHARS or len(value) > MAX_TAG_VALUE_CHARS:
            oversize.append(key)
        else:
            kept[key] = value
    if reserved:
        notes.append(f"tags in AWS's reserved aws: namespace are not carried: {_names(reserved)}")
    if oversize:
        notes.append(f"tags longer than Batch allows (key {MAX_TAG_KEY_CHARS}, value {MAX_TAG_VALUE_CHARS} "
                     f"characters) are not carried: {_names(oversize)}")
    room = MAX_TAGS - 1
    if len(kept) > room:
        dropped = list(kept)[room:]
        kept = dict(list(kept.items())[:room])
        notes.append(f"{len(dropped)} tag(s) not carried, to fit {RETRY_OF_TAG} within Batch's {MAX_TAGS} tags: "
                     f"{_names(dropped)}")
    kept[RETRY_OF_TAG] = job_id
    return kept


def _overrides(view: JobDescription, memory: _Memory, notes: list[str]) -> dict[str, Any]:
    """The containers' overrides, in the one shape the job has."""
    ranges = view.node_ranges
    if ranges is not None:
        return {"nodeOverrides": _node_overrides(view.num_nodes, ranges, memory, notes)}
    tasks, pod, container = view.ecs_tasks, view.eks_pod, view.container
    if tasks is not None:
        return _present("ecsPropertiesOverride", _ecs_override(tasks, memory))
    if pod is not None:
        return _present("eksPropertiesOverride", _eks_override(pod, memory, notes))
    if container is not None:
        return _present("containerOverrides", _container_override(container, memory, "the container"))
    raise DescriptionError("container", "is missing (and so are nodeProperties, ecsProperties and eksProperties)")


def _present(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {key: value} if value else {}


def _environment(environment: Iterable[EnvVar] | None) -> list[dict[str, str]]:
    return [{"name": v.name} if v.value is None else {"name": v.name, "value": v.value}
            for v in environment or () if not v.name.startswith(RESERVED_ENV_PREFIX)]


def _container_override(spec: ContainerSpec, memory: _Memory, label: str, *,
                        instance_type: bool = False) -> dict[str, Any]:
    """``ContainerOverrides`` (or, named, ``TaskContainerOverrides``) of one ECS container."""
    override: dict[str, Any] = {
        "command": list(spec.command or ()), "environment": _environment(spec.environment),
        "resourceRequirements": memory.requirements(spec.resources, label),
    }
    if instance_type and spec.instance_type:
        override["instanceType"] = spec.instance_type
    return {key: value for key, value in override.items() if value}


def _ecs_override(tasks: Sequence[Sequence[ContainerSpec]], memory: _Memory, place: str = "") -> dict[str, Any]:
    # Every task is kept, even one with nothing to override: Batch pairs overrides with tasks by position.
    task_overrides = []
    for task in tasks:
        containers = []
        for index, spec in enumerate(task):
            label = place + (f"container {_quoted(spec.name)}" if spec.name else f"container {index + 1}")
            override = _container_override(spec, memory, label)
            containers.append({"name": spec.name, **override} if spec.name else override)
        task_overrides.append({"containers": containers})
    return {"taskProperties": task_overrides} if any(t["containers"] for t in task_overrides) else {}


def _eks_override(pod: EksPodSpec, memory: _Memory, notes: list[str], place: str = "") -> dict[str, Any]:
    if pod.has_annotations:
        notes.append("pod annotations are not carried: the job definition's apply")
    override: dict[str, Any] = {
        "containers": [_eks_container(c, memory, place) for c in pod.containers],
        "initContainers": [_eks_container(c, memory, place) for c in pod.init_containers],
        "metadata": {"labels": dict(pod.labels)} if pod.labels else None,
    }
    override = {key: value for key, value in override.items() if value}
    return {"podProperties": override} if override else {}


def _eks_container(spec: EksContainerSpec, memory: _Memory, place: str = "") -> dict[str, Any]:
    label = place + (f"container {_quoted(spec.name)}" if spec.name else "the container")
    resources = {
        "limits": memory.quantities(spec.limits, f"{label} (limit)"),
        "requests": memory.quantities(spec.requests, f"{label} (request)"),
    }
    override: dict[str, Any] = {
        "name": spec.name, "command": list(spec.command or ()), "args": list(spec.args or ()),
        "env": _environment(spec.env), "resources": {k: v for k, v in resources.items() if v is not None},
    }
    return {key: value for key, value in override.items() if value}


def _node_overrides(num_nodes: int | None, ranges: Sequence[NodeRangeSpec], memory: _Memory,
                    notes: list[str]) -> dict[str, Any]:
    overrides = [_node_range_override(node_range, memory, notes) for node_range in ranges]
    result: dict[str, Any] = {"nodePropertyOverrides": overrides}
    # Batch takes numNodes only when some range is open-ended ("0:", ":"); it ran with this many.
    if num_nodes is not None and any(r.target_nodes.endswith(":") for r in ranges):
        result["numNodes"] = num_nodes
    return result


def _node_range_override(node_range: NodeRangeSpec, memory: _Memory, notes: list[str]) -> dict[str, Any]:
    label = f"nodes {_quoted(node_range.target_nodes)}"
    override: dict[str, Any] = {"targetNodes": node_range.target_nodes}
    if node_range.container is not None:
        override.update(_present("containerOverrides",
                                 _container_override(node_range.container, memory, label, instance_type=True)))
    if node_range.ecs_tasks is not None:
        override.update(_present("ecsPropertiesOverride", _ecs_override(node_range.ecs_tasks, memory, f"{label}, ")))
    if node_range.eks_pod is not None:
        override.update(_present("eksPropertiesOverride",
                                 _eks_override(node_range.eks_pod, memory, notes, f"{label}, ")))
    if node_range.instance_types:
        override["instanceTypes"] = list(node_range.instance_types)
    consumables = _consumables(node_range.consumable_resources)
    if consumables:
        override["consumableResourcePropertiesOverride"] = consumables
    return override


class _Memory:
    """Carries resource requirements, doubling memory when asked, up to a cap; notes what it did."""

    def __init__(self, more: bool, cap_mib: int) -> None:
        self.more = more
        self.cap_mib = cap_mib
        self.notes: list[str] = []
        self.found = 0  # memory settings seen (doubled or not)

    def requirements(self, resources: Sequence[Resource], label: str) -> list[dict[str, str]]:
        """``resourceRequirements`` entries, ``MEMORY`` (MiB) doubled when asked."""
        carried = []
        for resource in resources:
            value = resource.value
            if resource.type.upper() == "MEMORY" and self.more:
                value = self._double_mib(value, label)
            carried.append({"type": resource.type, "value": value})
        return carried

    def quantities(self, quantities: Mapping[str, str] | None, label: str) -> dict[str, str] | None:
        """EKS ``limits`` / ``requests``, ``memory`` doubled when asked."""
        if quantities is None:
            return None
        carried = dict(quantities)
        if self.more and "memory" in carried:
            carried["memory"] = self._double_quantity(carried["memory"], label)
        return carried

    def _double_mib(self, value: str, label: str) -> str:
        self.found += 1
        # Eighteen digits are an exabyte of MiB: longer is not a size (and int() refuses very long text).
        if not value.isascii() or not value.isdigit() or len(value) > _MAX_DIGITS:
            self.notes.append(f"the memory of {label} is not a whole number of MiB: not doubled")
            return value
        old = int(value)
        new = min(2 * old, max(old, self.cap_mib))
        self._note(label, old=f"{old} MiB", new=f"{new} MiB", doubled=new == 2 * old, changed=new != old)
        return str(new) if new != old else value

    def _double_quantity(self, quantity: str, label: str) -> str:
        self.found += 1
        parsed = _parse_quantity(quantity)
        if parsed is None:
            self.notes.append(f"the memory of {label} is not a quantity this app reads: not doubled")
            return quantity
        number, suffix, size = parsed
        # Exact arithmetic: the pattern bounds the digits, and the default 28 would round them.
        with localcontext(prec=_QUANTITY_PRECISION):
            cap = Decimal(self.cap_mib * _MIB)
            new_size = min(2 * size, max(size, cap))
            new = f"{_plain(number * 2)}{suffix}" if new_size == 2 * size else f"{self.cap_mib}Mi"
            changed = new_size != size
            self._note(label, old=quantity, new=new, doubled=new_size == 2 * size, changed=changed)
        return new if changed else quantity

    def _note(self, label: str, *, old: str, new: str, doubled: bool, changed: bool) -> None:
        """Say what became of one memory setting: doubled, capped, or left at or above the cap."""
        if doubled and changed:
            self.notes.append(f"the memory of {label} was doubled from {old} to {new}")
        elif changed:
            self.notes.append(f"the memory of {label} was capped at {self.cap_mib} MiB ({old} doubled would pass "
                              "the cap)")
        elif not doubled:
            self.notes.append(f"the memory of {label} ({old}) is already at or above the cap of {self.cap_mib} MiB: "
                              "not increased")


def _parse_quantity(quantity: str) -> tuple[Decimal, str, Decimal] | None:
    """A Kubernetes memory quantity as (number, suffix, bytes); ``None`` when it is not one."""
    match = _QUANTITY.match(quantity)
    if match is None:
        return None
    try:
        number = Decimal(match.group("number"))
    except InvalidOperation:  # pragma: no cover: the pattern admits only decimal numbers
        return None
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        size = number * _BINARY[suffix]
    elif suffix in _DECIMAL:
        size = number.scaleb(_DECIMAL[suffix])
    elif suffix == "m":
        size = number.scaleb(-3)
    else:
        size = number.scaleb(int(suffix[1:])) if suffix else number
    return number, suffix, size


def _plain(number: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 3, 1.5."""
    return format(number.normalize(), "f")


def _memory_summary(view: JobDescription, memory: _Memory) -> list[str]:
    if not memory.found:
        return ["no container of the job states its memory: it runs with the same memory as before"]
    if "FARGATE" in view.platform_capabilities:
        return ["on Fargate, memory must be a size Fargate offers for the job's vCPUs: "
                "Batch refuses the job if the new size does not fit"]
    return []


def _quoted(name: str | None) -> str:
    """A name for a note, cut to :data:`NOTE_NAME_LIMIT` characters."""
    text = name or ""
    return repr(text if len(text) <= NOTE_NAME_LIMIT else text[: NOTE_NAME_LIMIT - 1] + "…")


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(_quoted(name) for name in names[:NOTE_NAMES])
    return shown + (f" and {len(names) - NOTE_NAMES} more" if len(names) > NOTE_NAMES else "")
