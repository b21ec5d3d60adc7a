"""Required pod affinity and anti-affinity, as the scheduler's InterPodAffinity filter reads them.

Semantics from ``pkg/scheduler/framework/plugins/interpodaffinity/filtering.go`` and
``framework/types.go`` (Kubernetes v1.33):

* a term's ``labelSelector`` absent matches no pod; ``{}`` matches every pod;
* the namespaces a term looks in: ``namespaces`` plus those ``namespaceSelector`` selects
  (``{}``: all); both empty/absent means the pod's own namespace;
* ``matchLabelKeys`` / ``mismatchLabelKeys`` are merged into the selector as ``In`` / ``NotIn``
  of the pod's own label value (the API server does this on pod creation), only when the
  selector is present;
* affinity: a node passes when, for every term, it has the topology key and some pod matching
  *all* terms runs in its domain; if no pod in the cluster matches and the pod matches its
  own terms, it may go anywhere that has the keys (the first pod of a group);
* anti-affinity: a node fails when a pod matching a term runs in its domain; symmetrically a
  node fails when a pod there has an anti-affinity term the new pod matches.

Terms are frozen (hashable) so pod rules can be cache keys and shared between pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .scheduling import freeze, selector_matches_frozen

EVERYTHING = ("__everything__",)     # a present but empty selector


def _selector(raw) -> tuple | None:
    """A LabelSelector as a frozen tuple; ``None`` when absent (matches nothing)."""
    if raw is None:
        return None
    if not raw:
        return EVERYTHING
    return freeze(raw)


def _merge_label_keys(selector: Mapping | None, term: Mapping, labels: Mapping) -> Mapping | None:
    match_keys = term.get("matchLabelKeys") or ()
    mismatch_keys = term.get("mismatchLabelKeys") or ()
    if selector is None or not (match_keys or mismatch_keys):
        return selector
    merged = dict(selector)
    expressions = list(merged.get("matchExpressions") or [])
    for keys, operator in ((match_keys, "In"), (mismatch_keys, "NotIn")):
        for key in keys:
            if key in labels:
                expressions.append({"key": key, "operator": operator, "values": [labels[key]]})
    merged["matchExpressions"] = expressions
    return merged


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """One required PodAffinityTerm, resolved against the pod that carries it."""

    topology_key: str
    selector: tuple | None            # frozen LabelSelector, EVERYTHING, or None (matches nothing)
    namespaces: frozenset             # names listed (or the pod's own namespace)
    namespace_selector: tuple | None  # frozen LabelSelector over namespace labels, EVERYTHING, or None

    @staticmethod
    def of(term: Mapping, namespace: str, labels: Mapping) -> "AffinityTerm":
        names = term.get("namespaces") or ()
        ns_selector = term.get("namespaceSelector")
        if not names and ns_selector is None:
            names = (namespace,)
        selector = _merge_label_keys(term.get("labelSelector"), term, labels)
        return AffinityTerm(str(term.get("topologyKey") or ""), _selector(selector), frozenset(names),
                            _selector(ns_selector))

    def matches(self, namespace: str, labels: Mapping, namespace_labels: Mapping | None) -> bool:
        """Whether a pod in ``namespace`` with ``labels`` is one this term looks for."""
        if namespace not in self.namespaces and not (
                self.namespace_selector is not None
                and selector_matches_frozen(self.namespace_selector, namespace_labels or {})):
            return False
        return self.selector is not None and selector_matches_frozen(self.selector, labels)


@dataclass(frozen=True, slots=True)
class PodAffinityRules:
    """A pod's required (anti-)affinity terms; ``None`` on pods without any (nearly all)."""

    affinity: tuple = ()        # AffinityTerm, all must hold
    anti_affinity: tuple = ()   # AffinityTerm, none may be violated

    @staticmethod
    def from_pod_spec(spec: Mapping, namespace: str, labels: Mapping) -> "PodAffinityRules | None":
        affinity = spec.get("affinity") or {}
        required = (affinity.get("podAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or ()
        repel = (affinity.get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or ()
        if not required and not repel:
            return None
        return PodAffinityRules(tuple(AffinityTerm.of(t, namespace, labels) for t in required),
                                tuple(AffinityTerm.of(t, namespace, labels) for t in repel))

    def matches_all_affinity(self, namespace: str, labels: Mapping, namespace_labels: Mapping | None) -> bool:
        return bool(self.affinity) and all(t.matches(namespace, labels, namespace_labels) for t in self.affinity)

    def self_anti_on(self, namespace: str, labels: Mapping, namespace_labels: Mapping | None) -> set:
        """Topology keys on which the pod repels its own kind (at most one such pod per domain)."""
        return {t.topology_key for t in self.anti_affinity if t.matches(namespace, labels, namespace_labels)}
