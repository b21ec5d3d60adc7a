"""Which nodes a pod may land on: the scheduler's filters that do not depend on capacity.

Covers cordoned and NotReady nodes, NoSchedule/NoExecute taints against tolerations,
``nodeSelector`` and required node affinity (``matchExpressions`` and ``matchFields``).
Each refusal is returned as a short cause so a denial can say *why* no node fits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:   # for annotations only
    from .constraints import PodConstraints

UNSCHEDULABLE_TAINT_KEY = "node.kubernetes.io/unschedulable"


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
    node_name: str | None = None        # spec.nodeName: the scheduler is bypassed, only that node counts
    constraints: PodConstraints | None = None   # pod (anti-)affinity, spread, host ports
    preferred_terms: tuple = ()         # (weight, frozen preferred nodeSelectorTerm): scoring only

    @staticmethod
    def from_pod_spec(spec: Mapping, labels: Mapping | None = None, daemon: bool = False,
                      constraints: PodConstraints | None = None) -> "PodPlacementRules":
        affinity = spec.get("affinity") or {}
        node_affinity = (affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
        terms = tuple(_freeze(t) for t in node_affinity.get("nodeSelectorTerms") or [])
        preferred = tuple((int(p.get("weight") or 0), _freeze(p.get("preference") or {}))
                          for p in (affinity.get("nodeAffinity") or {}).get(
                              "preferredDuringSchedulingIgnoredDuringExecution") or () if isinstance(p, Mapping))
        return PodPlacementRules(
            node_selector=tuple(sorted((spec.get("nodeSelector") or {}).items())),
            tolerations=tuple(_freeze(t) for t in spec.get("tolerations") or []),
            required_terms=terms,
            daemon=daemon,
            node_name=spec.get("nodeName") or None,
            constraints=constraints,
            preferred_terms=preferred,
        )

    @property
    def node_only(self) -> "PodPlacementRules":
        """These rules without the pod-level constraints: what node eligibility depends on."""
        return self if self.constraints is None else PodPlacementRules(
            self.node_selector, self.tolerations, self.required_terms, self.daemon, self.node_name,
            preferred_terms=self.preferred_terms)


def freeze(value):
    """A JSON value as nested sorted tuples: hashable, so rules can be cache keys and shared."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


_freeze = freeze


def _thaw(frozen) -> dict:
    return {k: (list(v) if isinstance(v, tuple) and k == "values" else v) for k, v in frozen}


def selector_matches(selector: Mapping, labels: Mapping) -> bool:
    """A metav1.LabelSelector against a label map."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        if not _expression_matches(expr, labels.get(expr.get("key")), expr.get("key") in labels):
            return False
    return True


@lru_cache(maxsize=4096)
def _compiled(frozen: tuple) -> tuple:
    """A frozen LabelSelector as (matchLabels items, [(key, operator, values)])."""
    parts = dict(frozen)
    labels = tuple(parts.get("matchLabels") or ())
    expressions = []
    for expr in parts.get("matchExpressions") or ():
        e = dict(expr)
        expressions.append((e.get("key"), e.get("operator"), tuple(e.get("values") or ())))
    return labels, tuple(expressions)


def selector_matches_frozen(frozen: tuple, labels: Mapping) -> bool:
    """``selector_matches`` for a selector frozen with ``freeze`` (``("__everything__",)``: ``{}``)."""
    if frozen == ("__everything__",):
        return True
    match_labels, expressions = _compiled(frozen)
    for key, value in match_labels:
        if labels.get(key) != value:
            return False
    for key, operator, values in expressions:
        if not _expression_matches({"operator": operator, "values": values}, labels.get(key), key in labels):
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
        number, bound = _int64(value), _int64(values[0] if values else None)
        if number is None or bound is None:
            return False
        return number > bound if operator == "Gt" else number < bound
    return False


_DECIMAL = re.compile(r"[+-]?[0-9]+")


def _int64(text) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``, which labels.Requirement uses for Gt/Lt: ASCII digits with
    an optional sign, in int64 range; anything else (``1_0``, `` 5``, 20 digits) is no number, so no match."""
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        return None
    number = int(text)
    return number if -(2 ** 63) <= number < 2 ** 63 else None


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
        elif operator in ("Equal", "") and key == taint.key and (tol.get("value") or "") == taint.value:
            return True
    return False


# Tolerations the DaemonSet controller adds to every daemon pod.
_DAEMON_TOLERATED = {"node.kubernetes.io/unschedulable", "node.kubernetes.io/not-ready",
                     "node.kubernetes.io/unreachable", "node.kubernetes.io/disk-pressure",
                     "node.kubernetes.io/memory-pressure", "node.kubernetes.io/pid-pressure",
                     "node.kubernetes.io/network-unavailable"}


_CORDON = Taint(UNSCHEDULABLE_TAINT_KEY, "", "NoSchedule")


def ineligibility(node, rules: PodPlacementRules) -> str | None:
    """Why ``node`` cannot take a pod with these rules, or ``None`` if it can.

    ``node`` is a ``model.NodeRecord``; causes are short and grouped in messages.
    """
    if rules.node_name and node.name != rules.node_name:
        return "not the pod's spec.nodeName"
    if rules.node_name:
        return None   # the kubelet admits it on fit alone: cordons, taints and selectors are not checked
    if not rules.daemon:
        # NodeUnschedulable: a cordon stops only pods that do not tolerate its taint.
        if node.unschedulable and not tolerates(rules.tolerations, _CORDON):
            return "cordoned"
        if not node.ready:
            return "NotReady"    # deliberate: the scheduler binds there, but the pods never start
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


def node_affinity_matches(node, rules: PodPlacementRules) -> bool:
    """nodeSelector and required node affinity alone (what ``nodeAffinityPolicy: Honor`` reads)."""
    for key, value in rules.node_selector:
        if node.labels.get(key) != value:
            return False
    return not rules.required_terms or any(_term_matches(node, term) for term in rules.required_terms)


def preferred_weight(node, preferred_terms: tuple) -> int:
    """NodeAffinity's raw score: the weights of the preferred terms the node matches."""
    return sum(weight for weight, term in preferred_terms if _term_matches(node, term))


def intolerable_prefer_no_schedule(node, tolerations: tuple) -> int:
    """TaintToleration's raw score: PreferNoSchedule taints the pod does not tolerate (tolerations
    with an empty or PreferNoSchedule effect count)."""
    relevant = tuple(t for t in tolerations if dict(t).get("effect") in (None, "", "PreferNoSchedule"))
    return sum(1 for taint in node.taints if taint.effect == "PreferNoSchedule" and not tolerates(relevant, taint))


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
