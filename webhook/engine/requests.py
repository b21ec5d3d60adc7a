"""What one pod asks of a node: CPU, memory, ephemeral storage, and whether it needs a pod IP.

The rules are the scheduler's (``k8s.io/component-helpers/resource``):
regular containers and restartable init containers ("sidecars") add up; each classic
init container runs alone next to the sidecars started before it, so the pod needs the
larger of the two; ``spec.overhead`` is added on top. Containers without requests get
what the LimitRanger admission plugin will give them later: the namespace LimitRange's
``defaultRequest`` (as stored: defaulted from its ``default``, then its ``min``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .limitranger import defaulted_item
from .quantity import QuantityError, milli, units


class ObjectError(ValueError):
    """An object the engine cannot read; ``field`` is the JSON path that is wrong."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Resources:
    """CPU in millicores, memory and ephemeral storage in bytes."""

    cpu: int = 0
    memory: int = 0
    ephemeral: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu + other.cpu, self.memory + other.memory, self.ephemeral + other.ephemeral)

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu - other.cpu, self.memory - other.memory, self.ephemeral - other.ephemeral)

    def scaled(self, factor: int) -> "Resources":
        return Resources(self.cpu * factor, self.memory * factor, self.ephemeral * factor)

    def maximum(self, other: "Resources") -> "Resources":
        return Resources(max(self.cpu, other.cpu), max(self.memory, other.memory), max(self.ephemeral, other.ephemeral))


ZERO = Resources()
_FIELDS = (("cpu", "cpu", milli), ("memory", "memory", units), ("ephemeral-storage", "ephemeral", units))


_CONVERTED: dict = {}              # (converter, quantity string) -> int: a decision re-reads the same few
_CONVERTED_MAX = 4096


def _convert(convert, raw) -> int:
    """``convert(raw)``, remembered for strings (exact fractions are slow; raising is not remembered)."""
    if type(raw) is not str:
        return convert(raw)
    key = (convert, raw)
    found = _CONVERTED.get(key)
    if found is None:
        found = convert(raw)
        if len(_CONVERTED) >= _CONVERTED_MAX:
            _CONVERTED.clear()
        _CONVERTED[key] = found
    return found


def resources_from(mapping: Mapping | None, path: str) -> Resources:
    """Read a ``{cpu, memory, ephemeral-storage}`` quantity map (allocatable, requests...)."""
    values = {}
    for key, attr, convert in _FIELDS:
        raw = (mapping or {}).get(key)
        if raw is None:
            continue
        try:
            values[attr] = _convert(convert, raw)
        except QuantityError as exc:
            raise ObjectError(f"{path}.{key}", str(exc)) from None
    return Resources(**values)


@dataclass(frozen=True)
class ContainerDefaults:
    """A namespace's LimitRange default requests for containers, already merged over all LimitRanges.

    Only ``defaultRequest`` matters for requests: the API server stores every Container item with
    ``defaultRequest`` defaulted from ``default`` (SetDefaults_LimitRangeItem), so a default limit
    always comes with the same default request.
    """

    default_request: Mapping[str, object]

    @staticmethod
    def from_limit_ranges(limit_ranges: Iterable[Mapping]) -> "ContainerDefaults":
        request: dict = {}
        for lr in limit_ranges:
            for item in (lr.get("spec") or {}).get("limits") or []:
                if item.get("type") != "Container":
                    continue
                item = defaulted_item(item)     # as the API server stores it: default <- max, defaultRequest <- default
                for key, value in (item.get("defaultRequest") or {}).items():
                    request.setdefault(key, value)
        return ContainerDefaults(request)


NO_DEFAULTS = ContainerDefaults({})


# What NodeResourcesFit's LeastAllocated scoring assumes for a container that sets no
# request (pkg/scheduler/util/pod_resources.go): it keeps BestEffort pods from piling up.
SCORE_DEFAULT_CPU = 100
SCORE_DEFAULT_MEMORY = 200 * 1024 * 1024
_SCORE_DEFAULTS = {"cpu": "100m", "memory": str(SCORE_DEFAULT_MEMORY)}


def container_requests(container: Mapping, defaults: ContainerDefaults, path: str,
                       for_scoring: bool = False) -> Resources:
    """A container's effective requests after API defaulting and the LimitRanger.

    ``for_scoring``: a missing CPU or memory request counts as 100m / 200Mi, as the
    scheduler's LeastAllocated score reads it (an explicit 0 stays 0).
    """
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    merged = {}
    sources: tuple[Mapping, ...] = (requests, limits, defaults.default_request)
    if for_scoring:
        sources += (_SCORE_DEFAULTS,)
    for key, _, _ in _FIELDS:
        for source in sources:
            if key in source:
                merged[key] = source[key]
                break
    return resources_from(merged, f"{path}.resources.requests")


def pod_requests(pod_spec: Mapping, defaults: ContainerDefaults = NO_DEFAULTS, path: str = "spec",
                 for_scoring: bool = False) -> Resources:
    """The requests the scheduler will see for a pod built from ``pod_spec``."""
    total = ZERO
    for i, container in enumerate(pod_spec.get("containers") or []):
        total += container_requests(container, defaults, f"{path}.containers[{i}]", for_scoring)
    sidecars = ZERO
    init_peak = ZERO
    for i, container in enumerate(pod_spec.get("initContainers") or []):
        needs = container_requests(container, defaults, f"{path}.initContainers[{i}]", for_scoring)
        if container.get("restartPolicy") == "Always":
            sidecars += needs
            init_peak = init_peak.maximum(sidecars)
        else:
            init_peak = init_peak.maximum(sidecars + needs)
    total = (total + sidecars).maximum(init_peak)
    return total + resources_from(pod_spec.get("overhead"), f"{path}.overhead")


STANDARD_RESOURCES = frozenset(("cpu", "memory", "ephemeral-storage", "pods"))


def is_extended(name: str) -> bool:
    """Scalar resources the scheduler checks by name: ``example.com/foo`` and ``hugepages-*``."""
    return name.startswith("hugepages-") or ("/" in name and not name.startswith("kubernetes.io/")
                                                and not name.startswith("requests."))


def extended_amounts(mapping: Mapping | None, path: str) -> dict:
    """The extended resources of a quantity map, as integer units."""
    out = {}
    for key, raw in (mapping or {}).items():
        if isinstance(key, str) and is_extended(key):
            try:
                out[key] = units(raw)
            except QuantityError as exc:
                raise ObjectError(f"{path}.{key}", str(exc)) from None
    return out


def _container_extended(container: Mapping, path: str) -> dict:
    resources = container.get("resources") or {}
    merged = extended_amounts(resources.get("limits"), f"{path}.resources.limits")
    merged.update(extended_amounts(resources.get("requests"), f"{path}.resources.requests"))
    return merged


def pod_amounts(containers: Iterable[Mapping], init_containers: Iterable[tuple[bool, Mapping]]) -> dict:
    """Pod-level amounts from per-container ones, as the scheduler sums them
    (k8s.io/component-helpers/resource ``PodRequests``): regular containers and restartable init
    containers ("sidecars", given as ``(True, amounts)``) add up; each classic init container runs
    next to the sidecars started before it, so the pod needs at least that peak."""
    total: dict = {}
    for amounts in containers:
        for key, value in amounts.items():
            total[key] = total.get(key, 0) + value
    sidecars: dict = {}
    peak: dict = {}
    for sidecar, amounts in init_containers:
        if sidecar:
            for key, value in amounts.items():
                sidecars[key] = sidecars.get(key, 0) + value
            candidate = sidecars
        else:
            candidate = {k: sidecars.get(k, 0) + amounts.get(k, 0) for k in set(sidecars) | set(amounts)}
        for key, value in candidate.items():
            peak[key] = max(peak.get(key, 0), value)
    for key, value in sidecars.items():
        total[key] = total.get(key, 0) + value
    for key, value in peak.items():
        total[key] = max(total.get(key, 0), value)
    return total


def extended_requests(pod_spec: Mapping, path: str = "spec") -> tuple:
    """``(name, amount)`` of the extended resources a pod asks for, summed as ``pod_requests`` sums
    CPU (containers and sidecars add up, a classic init container needs its own peak).
    An extended resource's request defaults to its limit."""
    total = pod_amounts(
        (_container_extended(c, f"{path}.containers[{i}]") for i, c in enumerate(pod_spec.get("containers") or [])),
        ((c.get("restartPolicy") == "Always", _container_extended(c, f"{path}.initContainers[{i}]"))
         for i, c in enumerate(pod_spec.get("initContainers") or [])))
    for key, value in extended_amounts(pod_spec.get("overhead"), f"{path}.overhead").items():
        total[key] = total.get(key, 0) + value
    return tuple(sorted((k, v) for k, v in total.items() if v))


def uses_pod_ip(pod_spec: Mapping) -> bool:
    """Host-network pods share the node's IP; every other pod takes one VPC IP slot."""
    return not pod_spec.get("hostNetwork", False)
