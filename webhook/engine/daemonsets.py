"""DaemonSet pods a node still owes: a node that just joined is not as empty as it looks.

A fresh node shows all its IP slots, pod slots, CPU and memory free, but the DaemonSets
whose pods belong there (aws-node and kube-proxy are host-network, others such as log
shippers or CSI node plugins take IPs and requests) will create their pods within
seconds and take part of that room. Crediting the whole node to a workload admitted in
that window lets it promise room the DaemonSets then take.

For every DaemonSet, ``owed_by_node`` finds the nodes its pods would land on (the
DaemonSet's nodeSelector, node affinity and tolerations; DaemonSet pods tolerate
cordons and NotReady like the controller's) that have none of its pods, running or
waiting for that node, and returns what those pods will take, per node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .requests import ZERO, ObjectError, Resources, pod_requests, uses_pod_ip
from .scheduling import PodPlacementRules, ineligibility

_PARSED: dict = {}                 # (ds key, resourceVersion) -> DaemonPod (or None when unreadable)
_PARSED_MAX = 512


@dataclass(frozen=True)
class DaemonPod:
    requests: Resources
    uses_ip: bool
    rules: PodPlacementRules


def _daemon_pod(key: tuple, obj: Mapping) -> DaemonPod | None:
    """The DaemonSet's pod, parsed once per stored version (an object without a resourceVersion,
    read from a manifest, is parsed every time: nothing else tells two of its versions apart)."""
    version = (obj.get("metadata") or {}).get("resourceVersion")
    if version is None:
        return _parse(key, obj)
    cache_key = (key, version)
    if cache_key in _PARSED:
        return _PARSED[cache_key]
    parsed = _parse(key, obj)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[cache_key] = parsed
    return parsed


def _parse(key: tuple, obj: Mapping) -> DaemonPod | None:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    try:
        return DaemonPod(pod_requests(spec, path=f"DaemonSet {key[1]}/{key[2]} spec.template.spec"),
                         uses_pod_ip(spec), PodPlacementRules.from_pod_spec(spec, daemon=True))
    except (ObjectError, AttributeError, TypeError, ValueError):
        return None


def owed_by_node(state, ignore: tuple | None = None) -> dict[str, tuple[Resources, int, int]]:
    """node name -> (requests, pods, IP pods) of DaemonSet pods due there but not there yet.

    ``ignore`` leaves out the DaemonSet being judged itself. The answer is kept until a node,
    a DaemonSet or a DaemonSet's pod changes (``ClusterState.daemon_epoch``): it walks every
    node per DaemonSet, and decisions come far more often than those changes.
    """
    ignore = ignore if ignore and ignore[0] == "DaemonSet" else None    # other kinds change nothing here
    key = (state.daemon_epoch, len(state.nodes), ignore)
    cached = getattr(state, "owed_cache", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    owed = _owed_by_node(state, ignore)
    state.owed_cache = (key, owed)
    return owed


def _owed_by_node(state, ignore: tuple | None) -> dict[str, tuple[Resources, int, int]]:
    daemonsets = [key for key in state.workloads if key[0] == "DaemonSet" and key != ignore]
    if not daemonsets or not state.nodes:
        return {}
    # Fast path: a node that runs a pod of every one of these DaemonSets owes nothing; only the
    # others are looked at closely. (Counted per DaemonSet: a pod of the one being judged, or of
    # a DaemonSet that is gone, must not stand in for another's missing pod.)
    pods_of = {key: [state.pods[k] for k in state.pods_by_owner.get(key, ()) if k in state.pods]
               for key in daemonsets}
    covered_by = {key: {p.node for p in pods if p.node} for key, pods in pods_of.items()}
    everywhere = set.intersection(*covered_by.values())
    candidates = [(name, node) for name, node in state.nodes.items() if name not in everywhere]
    if not candidates:
        return {}
    owed: dict[str, tuple[Resources, int, int]] = {}
    for key in daemonsets:
        obj = state.workloads.get(key)
        daemon = _daemon_pod(key, obj) if isinstance(obj, Mapping) else None
        if daemon is None:
            continue
        covered = covered_by[key]
        waiting = [p for p in pods_of[key] if p.rules is not None]     # only a pod waiting for a node keeps them
        for name, node in candidates:
            if name in covered or ineligibility(node, daemon.rules) is not None:
                continue
            if any(ineligibility(node, p.rules) is None for p in waiting):
                continue                  # its pod exists and waits for this node: counted as Pending demand
            used, count, ips = owed.get(name, (ZERO, 0, 0))
            owed[name] = (used + daemon.requests, count + 1, ips + (1 if daemon.uses_ip else 0))
    return owed
