"""What the API server does to a pod's resources before the scheduler sees it.

In order, as kube-apiserver v1.33 does on pod creation:

1. API defaulting (``pkg/apis/core/v1/defaults.go`` SetDefaults_Pod): a container's missing
   request for a resource it has a limit for becomes that limit.
2. The LimitRange objects themselves were defaulted when stored (SetDefaults_LimitRangeItem,
   Container items only): ``default`` falls back to ``max``, ``defaultRequest`` to
   ``default``, then to ``min``. A LimitRange read from a manifest (not yet stored) gets the
   same here, so it defaults pods exactly as the stored one will.
3. LimitRanger mutation (``plugin/pkg/admission/limitranger/admission.go``): for each
   LimitRange of the namespace, each container and init container gets the missing
   limits from ``default`` and the missing requests from ``defaultRequest``.
4. LimitRanger validation: Container items check ``min`` (a request must exist and be >=,
   a limit if present >=), ``max`` (a limit must exist and be <=, a request if present
   <=), ``maxLimitRequestRatio`` on every container; Pod items check the pod's summed
   requests and limits. Every resource (memory too) is compared in milli units unless a
   value is too large for them (requestLimitEnforcedValues).
5. Pod validation: a request above its limit is invalid.

Any error in 4 or 5 means the API server refuses every pod of the workload: they are
never created (``LIMITRANGE_REJECTS``), so they are not Pending either.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .quantity import QuantityError, milli, parse_quantity, units

MAX_MILLI_VALUE = 9_223_372_036_854_775          # resource.MaxMilliValue = int64(((1 << 63) - 1) / 1000)


def defaulted_item(item: Mapping) -> dict:
    """SetDefaults_LimitRangeItem: what the API server stores for one ``spec.limits`` item."""
    out = dict(item)
    if out.get("type") != "Container":
        return out
    default = dict(out.get("default") or {})
    default_request = dict(out.get("defaultRequest") or {})
    for key, value in (out.get("max") or {}).items():
        default.setdefault(key, value)
    for key, value in default.items():
        default_request.setdefault(key, value)
    for key, value in (out.get("min") or {}).items():
        default_request.setdefault(key, value)
    out["default"], out["defaultRequest"] = default, default_request
    return out


def _items(limit_range: Mapping) -> list[dict]:
    return [defaulted_item(i) for i in ((limit_range.get("spec") or {}).get("limits") or []) if isinstance(i, Mapping)]


def _sorted(limit_ranges: Iterable[Mapping]) -> list[Mapping]:
    return sorted(limit_ranges, key=lambda lr: str((lr.get("metadata") or {}).get("name") or ""))


def _observed(resource: str, requests: Mapping, limits: Mapping, enforced) -> tuple[int, int, int]:
    """requestLimitEnforcedValues: the request, limit and enforced bound at one precision, for any
    resource: each ``Value()`` (rounded up; a missing one is 0), or each ``MilliValue()`` when all
    three Values are at most MaxMilliValue (so memory is compared in milli-bytes too)."""
    quantities = (requests.get(resource), limits.get(resource), enforced)
    values = [0 if q is None else units(q) for q in quantities]
    if all(v <= MAX_MILLI_VALUE for v in values):
        values = [0 if q is None else milli(q) for q in quantities]
    return values[0], values[1], values[2]


def _api_defaulted(container: Mapping) -> dict:
    """A copy of the container whose requests default from its limits (SetDefaults_Pod)."""
    out = dict(container)
    resources = dict(out.get("resources") or {})
    requests = dict(resources.get("requests") or {})
    for key, value in (resources.get("limits") or {}).items():
        requests.setdefault(key, value)
    resources["requests"] = requests
    resources["limits"] = dict(resources.get("limits") or {})
    out["resources"] = resources
    return out


def admitted_spec(pod_spec: Mapping, limit_ranges: Iterable[Mapping]) -> dict:
    """The pod spec as the API server stores it: steps 1-3 above."""
    spec = dict(pod_spec)
    ranges = _sorted(limit_ranges)
    for group in ("containers", "initContainers"):
        if not spec.get(group):
            continue
        containers = [_api_defaulted(c) for c in spec[group] if isinstance(c, Mapping)]
        for lr in ranges:
            default_limits: dict = {}
            default_requests: dict = {}
            for item in _items(lr):
                if item.get("type") == "Container":
                    default_requests.update(item.get("defaultRequest") or {})
                    default_limits.update(item.get("default") or {})
            for container in containers:
                resources = container["resources"]
                for key, value in default_limits.items():
                    resources["limits"].setdefault(key, value)
                for key, value in default_requests.items():
                    resources["requests"].setdefault(key, value)
        spec[group] = containers
    return spec


def _min_error(kind: str, resource: str, enforced, requests: Mapping, limits: Mapping) -> str | None:
    request, limit, bound = _observed(resource, requests, limits, enforced)
    if resource not in requests:
        return f"minimum {resource} usage per {kind} is {enforced}.  No request is specified"
    if request < bound:
        return f"minimum {resource} usage per {kind} is {enforced}, but request is {requests[resource]}"
    if resource in limits and limit < bound:
        return f"minimum {resource} usage per {kind} is {enforced}, but limit is {limits[resource]}"
    return None


def _max_error(kind: str, resource: str, enforced, requests: Mapping, limits: Mapping) -> str | None:
    request, limit, bound = _observed(resource, requests, limits, enforced)
    if resource not in limits:
        return f"maximum {resource} usage per {kind} is {enforced}.  No limit is specified"
    if limit > bound:
        return f"maximum {resource} usage per {kind} is {enforced}, but limit is {limits[resource]}"
    if resource in requests and request > bound:
        return f"maximum {resource} usage per {kind} is {enforced}, but request is {requests[resource]}"
    return None


def _ratio_error(kind: str, resource: str, enforced, requests: Mapping, limits: Mapping) -> str | None:
    request, limit, _ = _observed(resource, requests, limits, enforced)
    if request == 0:
        return (f"{resource} max limit to request ratio per {kind} is {enforced}, but no request is specified or "
                "request is 0")
    if limit == 0:
        return (f"{resource} max limit to request ratio per {kind} is {enforced}, but no limit is specified or "
                "limit is 0")
    ratio = float(limit) / float(request)           # float64(lim) / float64(req), as Go rounds it
    # the bound in milli units when its Value fits, the observed ratio scaled to match
    if units(enforced) <= MAX_MILLI_VALUE:
        if ratio * 1000 > float(milli(enforced)):
            return f"{resource} max limit to request ratio per {kind} is {enforced}, but provided ratio is {ratio:f}"
    elif ratio > float(units(enforced)):
        return f"{resource} max limit to request ratio per {kind} is {enforced}, but provided ratio is {ratio:f}"
    return None


_CHECKS = (("min", _min_error), ("max", _max_error), ("maxLimitRequestRatio", _ratio_error))


def _pod_totals(spec: Mapping, field: str) -> dict:
    """Pod-level requests or limits for a Pod LimitRange item (the LimitRanger's podRequests / podLimits):
    containers and sidecars (restartable init containers) summed, each classic init container, next
    to the sidecars started before it, a floor."""
    from .requests import pod_amounts      # requests imports this module for defaulted_item

    def amounts(container: Mapping) -> dict:
        return {k: parse_quantity(v) for k, v in ((container.get("resources") or {}).get(field) or {}).items()}
    totals = pod_amounts((amounts(c) for c in spec.get("containers") or ()),
                         ((c.get("restartPolicy") == "Always", amounts(c)) for c in spec.get("initContainers") or ()))
    return {k: _as_quantity(v) for k, v in totals.items()}


def _as_quantity(value) -> str:
    """An exact Fraction back as a quantity string in milli units (exact for cpu and for bytes)."""
    return f"{int(value * 1000)}m" if (value * 1000).denominator == 1 else str(float(value))


def rejections(spec: Mapping, limit_ranges: Iterable[Mapping]) -> list[str]:
    """Why the API server refuses a pod with this (admitted) spec: steps 4 and 5 above."""
    errors: list[str] = []
    try:
        for lr in _sorted(limit_ranges):
            for item in _items(lr):
                kind = item.get("type")
                if kind == "Container":
                    for container in list(spec.get("containers") or ()) + list(spec.get("initContainers") or ()):
                        resources = container.get("resources") or {}
                        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
                        for field, check in _CHECKS:
                            for resource, enforced in (item.get(field) or {}).items():
                                error = check("Container", resource, enforced, requests, limits)
                                if error:
                                    errors.append(error)
                elif kind == "Pod":
                    requests, limits = _pod_totals(spec, "requests"), _pod_totals(spec, "limits")
                    for field, check in _CHECKS:
                        for resource, enforced in (item.get(field) or {}).items():
                            error = check("Pod", resource, enforced, requests, limits)
                            if error:
                                errors.append(error)
        for group in ("containers", "initContainers"):
            for container in spec.get(group) or ():
                resources = container.get("resources") or {}
                limits = resources.get("limits") or {}
                for resource, request in (resources.get("requests") or {}).items():
                    if resource in limits and parse_quantity(request) > parse_quantity(limits[resource]):
                        errors.append(f"{group} {container.get('name')}: {resource} request {request} "
                                      f"must be less than or equal to its limit {limits[resource]}")
    except QuantityError as exc:
        errors.append(str(exc))
    return errors
