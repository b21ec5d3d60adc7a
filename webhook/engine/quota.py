"""ResourceQuota admission for pods: how many of a workload's pods the API server creates.

From ``k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go`` and
``pkg/quota/v1/evaluator/core/pods.go`` (v1.33):

* a pod is charged ``pods`` and ``count/pods`` 1, ``cpu`` = ``requests.cpu``, ``limits.cpu``,
  the same for memory and ephemeral-storage, ``requests.<name>`` for extended resources
  and hugepages; pod-level sums as the scheduler computes them;
* only quotas whose scopes match the pod count (Terminating / NotTerminating by
  ``activeDeadlineSeconds``, BestEffort / NotBestEffort by QoS, ``scopeSelector`` on
  PriorityClass);
* the enforced limits are the quota's ``status.hard`` (what the quota controller has
  synced; a quota read from a manifest has no status yet and is taken at ``spec.hard``);
  the usage is ``status.used``, else counted from the namespace's pods (requests and pod
  counts; limits cannot be counted from the engine's slim pod records);
* a quota on cpu or memory (requests or limits) refuses a pod whose containers do not all
  set that request or limit ("must specify"), even with room left;
* the ReplicaSet / Job controller creates pods one at a time: each that would push a
  quota over ``hard`` is refused, so ``k`` pods are created where ``k`` is the largest
  count that keeps every matching quota within ``hard``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping

from .quantity import QuantityError, parse_quantity
from .requests import is_extended, pod_amounts

QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
_VALIDATION = {"cpu": ("cpu", "requests"), "requests.cpu": ("cpu", "requests"), "limits.cpu": ("cpu", "limits"),
               "memory": ("memory", "requests"), "requests.memory": ("memory", "requests"),
               "limits.memory": ("memory", "limits")}


def _sum_pod(spec: Mapping, field: str) -> dict:
    """Pod-level requests or limits: containers and sidecars summed, each classic init container a floor."""
    def amounts(container: Mapping) -> dict:
        return {k: parse_quantity(v) for k, v in ((container.get("resources") or {}).get(field) or {}).items()}
    total = pod_amounts((amounts(c) for c in spec.get("containers") or ()),
                        ((c.get("restartPolicy") == "Always", amounts(c)) for c in spec.get("initContainers") or ()))
    for key, value in (spec.get("overhead") or {}).items():
        if field == "requests" or key in total:
            total[key] = total.get(key, 0) + parse_quantity(value)
    return total


def pod_usage(spec: Mapping) -> dict:
    """What one pod with this (admitted) spec charges to a quota."""
    requests, limits = _sum_pod(spec, "requests"), _sum_pod(spec, "limits")
    usage: dict = {"pods": Fraction(1), "count/pods": Fraction(1)}
    for resource in ("cpu", "memory", "ephemeral-storage"):
        if resource in requests:
            usage[resource] = usage[f"requests.{resource}"] = requests[resource]
        if resource in limits:
            usage[f"limits.{resource}"] = limits[resource]
    for resource, value in requests.items():
        if is_extended(resource):
            usage[f"requests.{resource}"] = value
    return usage


def _best_effort(spec: Mapping) -> bool:
    """QoS BestEffort as ``ComputePodQOS`` decides it: no *non-zero* cpu or memory request or limit."""
    for group in ("containers", "initContainers"):
        for container in spec.get(group) or ():
            resources = container.get("resources") or {}
            for field in ("requests", "limits"):
                if any(k in ("cpu", "memory") and _positive(v) for k, v in (resources.get(field) or {}).items()):
                    return False
    return True


def _positive(value: object) -> bool:
    try:
        return parse_quantity(value) > 0
    except QuantityError:
        return True         # the API server refuses such a pod; never call it BestEffort


def _scope_matches(scope: str, operator: str | None, values, spec: Mapping) -> bool:
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return _best_effort(spec)
    if scope == "NotBestEffort":
        return not _best_effort(spec)
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        if operator == "Exists":
            return bool(name)
        if operator == "DoesNotExist":
            return not name
        if operator == "In":
            return name in (values or ())
        if operator == "NotIn":
            return name not in (values or ())
    return False            # CrossNamespacePodAffinity and unknown scopes: not modelled, not charged


def quota_matches(quota: Mapping, spec: Mapping) -> bool:
    for scope in quota.get("scopes") or ():
        if not _scope_matches(scope, None, None, spec):
            return False
    for expr in ((quota.get("scopeSelector") or {}).get("matchExpressions") or ()):
        if not _scope_matches(expr.get("scopeName"), expr.get("operator"), expr.get("values"), spec):
            return False
    return True


def _counted_usage(state, namespace: str) -> dict:
    usage: dict = {"pods": Fraction(0), "count/pods": Fraction(0), "requests.cpu": Fraction(0),
                   "requests.memory": Fraction(0)}
    for pod in state.pods.values():
        if pod.namespace != namespace:
            continue
        usage["pods"] += 1
        usage["count/pods"] += 1
        usage["requests.cpu"] += Fraction(pod.requests.cpu, 1000)
        usage["requests.memory"] += pod.requests.memory
    usage["cpu"], usage["memory"] = usage["requests.cpu"], usage["requests.memory"]
    return usage


@dataclass(frozen=True)
class QuotaOutcome:
    allowed: int | None          # pods the API server creates (None: no quota limits them)
    quota: str = ""              # the quota that stops the next pod
    resource: str = ""
    message: str = ""


def admitted_pods(state, namespace: str, spec: Mapping, wanted: int) -> QuotaOutcome:
    """How many of ``wanted`` pods the quotas of ``namespace`` let the API server create."""
    quotas = state.resource_quotas.get(namespace) or {}
    if not quotas or wanted <= 0:
        return QuotaOutcome(None)
    usage = pod_usage(spec)
    counted = None
    best = QuotaOutcome(None)
    for name, quota in sorted(quotas.items()):
        if not quota_matches(quota, spec):
            continue
        hard = quota.get("status_hard") if quota.get("status_hard") is not None else (quota.get("hard") or {})
        used = quota.get("used") or {}
        for resource in sorted(hard):
            if resource in _VALIDATION:
                kind, field = _VALIDATION[resource]
                missing = [c.get("name") for g in ("containers", "initContainers") for c in spec.get(g) or ()
                           if kind not in ((c.get("resources") or {}).get(field) or {})]
                if missing:
                    return QuotaOutcome(0, name, resource, f"failed quota: {name}: must specify {resource} for: "
                                                           f"{','.join(str(m) for m in missing)}")
        for resource, raw in sorted(hard.items()):
            charge = usage.get(resource)
            if not charge:
                continue
            try:
                limit = parse_quantity(raw)
                if resource in used:
                    current = parse_quantity(used[resource])
                else:
                    counted = counted if counted is not None else _counted_usage(state, namespace)
                    current = counted.get(resource, Fraction(0))
            except QuantityError:
                continue
            allowed = max(0, int((limit - current) // charge))
            if allowed < wanted and (best.allowed is None or allowed < best.allowed):
                best = QuotaOutcome(allowed, name, resource,
                                    f"exceeded quota: {name}, requested: {resource}, "
                                    f"used: {used.get(resource, current)}, limited: {raw}")
    return best
