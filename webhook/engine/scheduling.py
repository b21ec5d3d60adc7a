"""Which nodes a pod may land on: the scheduler's filters that do not depend on capacity.

Covers cordoned and NotReady nodes, NoSchedule/NoExecute taints against tolerations,
``nodeSelector`` and required node affinity (``matchExpressions`` and ``matchFields``).
Each refusal is returned as a short cause so a denial can say *why* no node fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


@dataclass(frozen=True)
class PodPlacementRules:
    """The parts of a pod spec that restrict where it may run (kept small for the live cache)."""

    node_selector: tuple = ()
    tolerations: tuple = ()
    required_terms: tuple = ()          # nodeSelectorTerms, ORed
    daemon: bool = False                # DaemonSet pods tolerate cordons and NotReady
    one_per_node: bool = False          # required anti-affinity to itself on the hostname
    node_name: str | None = None        # spec.nodeName: the scheduler is bypassed, only that node counts

    @staticmethod
    def from_pod_spec(spec: Mapping, labels: Mapping | None = None, daemon: bool = False) -> "PodPlacementRules":
        affinity = spec.get("affinity") or {}
        node_affinity = (affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
        terms = tuple(_freeze(t) for t in node_affinity.get("nodeSelectorTerms") or [])
        return PodPlacementRules(
            node_selector=tuple(sorted((spec.get("nodeSelector") or {}).items())),
            tolerations=tuple(_freeze(t) for t in spec.get("tolerations") or []),
            required_terms=terms,
            daemon=daemon,
            one_per_node=_anti_affine_to_self(affinity, labels or {}),
            node_name=spec.get("nodeName") or None,
        )


def _freeze(value):
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(frozen) -> dict:
    return {k: (list(v) if isinstance(v, tuple) and k == "values" else v) for k, v in frozen}


def _anti_affine_to_self(affinity: Mapping, labels: Mapping) -> bool:
    terms = (affinity.get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
    for term in terms:
        if term.get("topologyKey") != "kubernetes.io/hostname":
            continue
        selector = term.get("labelSelector") or {}
        if labels and selector_matches(selector, labels):
            return True
    return False


def selector_matches(selector: Mapping, labels: Mapping) -> bool:
    """A metav1.LabelSelector against a label map."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        if not _expression_matches(expr, labels.get(expr.get("key")), expr.get("key") in labels):
            return False
    return True


def _expression_matches(expr: Mapping, value, present: bool) -> bool:
    operator = expr.get("operator")
    values = list(expr.get("values") or [])
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        try:
            number, bound = int(value), int(values[0])
        except (TypeError, ValueError, IndexError):
            return False
        return number > bound if operator == "Gt" else number < bound
    return False


def tolerates(tolerations: Sequence, taint: Taint) -> bool:
    for frozen in tolerations:
        tol = dict(frozen)
        if tol.get("effect") and tol["effect"] != taint.effect:
            continue
        operator = tol.get("operator", "Equal")
        key = tol.get("key")
        if operator == "Exists":
            if not key or key == taint.key:
                return True
        elif key == taint.key and (tol.get("value") or "") == taint.value:
            return True
    return False


# Tolerations the DaemonSet controller adds to every daemon pod.
_DAEMON_TOLERATED = {"node.kubernetes.io/unschedulable", "node.kubernetes.io/not-ready",
                     "node.kubernetes.io/unreachable", "node.kubernetes.io/disk-pressure",
                     "node.kubernetes.io/memory-pressure", "node.kubernetes.io/pid-pressure",
                     "node.kubernetes.io/network-unavailable"}


def ineligibility(node, rules: PodPlacementRules) -> str | None:
    """Why ``node`` cannot take a pod with these rules, or ``None`` if it can.

    ``node`` is a ``model.NodeRecord``; causes are short and grouped in messages.
    """
    if rules.node_name and node.name != rules.node_name:
        return "not the pod's spec.nodeName"
    if rules.node_name:
        return None   # the kubelet admits it on fit alone: cordons, taints and selectors are not checked
    if not rules.daemon:
        if node.unschedulable:
            return "cordoned"
        if not node.ready:
            return "NotReady"
    for taint in node.taints:
        if taint.effect not in ("NoSchedule", "NoExecute"):
            continue
        if rules.daemon and taint.key in _DAEMON_TOLERATED:
            continue
        if not tolerates(rules.tolerations, taint):
            return f"taint {taint} not tolerated"
    for key, value in rules.node_selector:
        if node.labels.get(key) != value:
            return f"nodeSelector {key}={value} not matched"
    if rules.required_terms and not any(_term_matches(node, term) for term in rules.required_terms):
        return "required node affinity not matched"
    return None


def _term_matches(node, term) -> bool:
    term = dict(term)
    expressions = [_thaw(e) for e in term.get("matchExpressions") or ()]
    fields = [_thaw(e) for e in term.get("matchFields") or ()]
    if not expressions and not fields:
        return False  # an empty term matches nothing, as in the scheduler
    for expr in expressions:
        key = expr.get("key")
        if not _expression_matches(expr, node.labels.get(key), key in node.labels):
            return False
    for expr in fields:
        if expr.get("key") != "metadata.name" or not _expression_matches(expr, node.name, True):
            return False
    return True
