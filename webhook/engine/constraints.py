"""The pod-level placement constraints: pod (anti-)affinity, hard topology spread, host ports.

Unlike node selectors and taints, these depend on which pods run where, so a node's
eligibility changes as pods are placed. ``PodConstraints`` is ``None`` for the large
majority of pods, which keeps them on the fast path of the placement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .interpod import PodAffinityRules
from .topology_spread import hard_constraints

HOSTNAME_KEY = "kubernetes.io/hostname"


def host_ports(spec: Mapping) -> tuple:
    """``(protocol, hostIP, port)`` the pod binds on its node (NodePorts filter).

    With ``hostNetwork`` the API server defaults each container port's ``hostPort`` to its
    ``containerPort``; an empty hostIP means every address (0.0.0.0).
    """
    found = set()
    network = bool(spec.get("hostNetwork"))
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or ():
            for port in container.get("ports") or ():
                number = port.get("hostPort") or (port.get("containerPort") if network else 0)
                if isinstance(number, int) and number > 0:
                    found.add((port.get("protocol") or "TCP", port.get("hostIP") or "0.0.0.0", number))
    return tuple(sorted(found))


def repelled(anti_pods: Iterable, namespace: str, labels: Mapping, namespace_labels: Mapping | None) -> bool:
    """Whether some bound pod's required anti-affinity matches a pod (the symmetric rule applies)."""
    return any(term.matches(namespace, labels, namespace_labels) for pod in anti_pods for term in pod.anti)


def ports_conflict(wanted: tuple, used) -> bool:
    """A wanted (protocol, ip, port) clashes with a used one on the same protocol and port
    when either address is 0.0.0.0 or both are equal (HostPortInfo.CheckConflict)."""
    for protocol, ip, port in wanted:
        for used_protocol, used_ip, used_port in used:
            if used_port == port and used_protocol == protocol and (
                    ip == used_ip or ip == "0.0.0.0" or used_ip == "0.0.0.0"):
                return True
    return False


@dataclass(frozen=True, slots=True)
class PodConstraints:
    namespace: str
    labels: tuple                      # sorted label items
    affinity: PodAffinityRules | None
    spread: tuple                      # SpreadConstraint, DoNotSchedule only
    ports: tuple                       # host ports

    @staticmethod
    def from_pod_spec(spec: Mapping, namespace: str, labels: Mapping | None,
                      anti_pods: Iterable = (), namespace_labels: Mapping | None = None) -> "PodConstraints | None":
        """``None`` when nothing pod-level restricts the pod: no rules of its own, and no pod in
        ``anti_pods`` (bound pods with required anti-affinity) whose terms match it."""
        labels = dict(labels or {})
        affinity = PodAffinityRules.from_pod_spec(spec, namespace, labels)
        spread = hard_constraints(spec, labels)
        ports = host_ports(spec)
        if affinity is None and not spread and not ports and not repelled(anti_pods, namespace, labels,
                                                                          namespace_labels):
            return None
        return PodConstraints(namespace, tuple(sorted(labels.items())), affinity, spread, ports)

    @property
    def label_map(self) -> dict:
        return dict(self.labels)
