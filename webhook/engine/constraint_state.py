"""Where one pod's affinity, anti-affinity, spread and host-port rules allow it, as pods land.

``ConstraintState`` is built for one kind of incoming pod from the pods already bound
(``ClusterState.label_index``: one selector match per distinct label set, not per pod),
plus the waiting pods the placement put on nodes before it. ``allows(node)`` is the
scheduler's InterPodAffinity + PodTopologySpread + NodePorts filters for that pod;
``observe(...)`` adds a pod that has just been placed, so the next pod of a workload sees
its siblings as the scheduler (which re-runs PreFilter for every pod) would.
"""

from __future__ import annotations

from typing import Iterable

from .constraints import HOSTNAME_KEY, PodConstraints, ports_conflict
from .scheduling import node_affinity_matches, tolerates

ANTI_AFFINITY = "POD_ANTI_AFFINITY"
AFFINITY = "POD_AFFINITY"
SPREAD = "TOPOLOGY_SPREAD"
HOST_PORT = "HOST_PORT_CONFLICT"


class ConstraintState:
    def __init__(self, state, constraints: PodConstraints, rules, nodes: Iterable,
                 extra_pods: Iterable[tuple] = (), removed_pods: Iterable = ()):
        """``nodes``: every NodeRecord; ``extra_pods``: (PodRecord, node name) placed by the
        simulation; ``removed_pods``: bound PodRecords about to go (a rollout's old pods)."""
        self.constraints = constraints
        self.namespace = constraints.namespace
        self.labels = constraints.label_map
        self.ns_labels = state.namespace_labels(self.namespace)
        self.state = state
        affinity = constraints.affinity
        self.aff_terms = affinity.affinity if affinity else ()
        self.anti_terms = affinity.anti_affinity if affinity else ()
        self.self_all_aff = affinity is not None and affinity.matches_all_affinity(
            self.namespace, self.labels, self.ns_labels)
        self.self_anti = [t.matches(self.namespace, self.labels, self.ns_labels) for t in self.anti_terms]
        self.spread = constraints.spread
        self.self_spread = [c.self_match(self.labels) for c in self.spread]
        self.aff_counts: list[dict] = [{} for _ in self.aff_terms]
        self.anti_counts: list[dict] = [{} for _ in self.anti_terms]
        self.existing_anti: dict[str, dict] = {}           # topology key -> value -> existing pods repelling us
        self.spread_counts: list[dict] = [{} for _ in self.spread]
        self.nodes = {n.name: n for n in nodes}
        self._spread_domains(rules)
        for (namespace, labels), per_node in state.label_index.items():
            self._count(namespace, labels, per_node.items(), +1)
        # Pods being deleted still hold their room and count for pod affinity, but the
        # scheduler's spread counts skip them (podtopologyspread countPodsMatchSelector).
        for (namespace, labels), per_node in state.terminating_index.items():
            self._count(namespace, labels, per_node.items(), -1, with_affinity=False)
        for pod in state.anti_pods.values():
            self._count_repelling(pod, pod.node, +1)
        for pod, node in extra_pods:
            self.observe_pod(pod, node)
        for pod in removed_pods:
            if pod.node:
                self._count(pod.namespace, pod.labels, ((pod.node, 1),), -1, with_spread=not pod.terminating)
                self._count_repelling(pod, pod.node, -1)

    # ---- building ----------------------------------------------------------------------
    def _spread_domains(self, rules) -> None:
        """The eligible domains of each spread constraint, each starting at 0 pods."""
        self.spread_nodes: list[set] = [set() for _ in self.spread]
        if not self.spread:
            return
        keys = [c.topology_key for c in self.spread]
        node_rules = rules.node_only
        for node in self.nodes.values():
            if any(k not in node.labels for k in keys):
                continue
            for i, c in enumerate(self.spread):
                if c.honor_node_affinity and not node_affinity_matches(node, node_rules):
                    continue
                if c.honor_taints and any(t.effect in ("NoSchedule", "NoExecute")
                                          and not tolerates(node_rules.tolerations, t) for t in node.taints):
                    continue
                self.spread_nodes[i].add(node.name)
                self.spread_counts[i].setdefault(node.labels[c.topology_key], 0)

    def _count(self, namespace: str, labels: tuple, per_node, sign: int,
               with_affinity: bool = True, with_spread: bool = True) -> None:
        """Add ``sign`` x the pods of one label set to the affinity and/or spread counts."""
        if not (self.aff_terms or self.anti_terms or self.spread):
            return
        label_map = dict(labels)
        all_aff = with_affinity and bool(self.aff_terms) and all(
            t.matches(namespace, label_map, self.state.namespace_labels(namespace)) for t in self.aff_terms)
        anti = [with_affinity and t.matches(namespace, label_map, self.state.namespace_labels(namespace))
                for t in self.anti_terms]
        spread = [with_spread and namespace == self.namespace and c.counts(label_map) for c in self.spread]
        if not (all_aff or any(anti) or any(spread)):
            return
        for node_name, count in per_node:
            node = self.nodes.get(node_name)
            if node is None:
                continue
            self._add(node, all_aff, anti, spread, sign * count)

    def _add(self, node, all_aff: bool, anti, spread, count: int) -> None:
        if all_aff:
            for i, term in enumerate(self.aff_terms):
                value = node.labels.get(term.topology_key)
                if value is not None:
                    self.aff_counts[i][value] = self.aff_counts[i].get(value, 0) + count
        for i, hit in enumerate(anti):
            if hit:
                value = node.labels.get(self.anti_terms[i].topology_key)
                if value is not None:
                    self.anti_counts[i][value] = self.anti_counts[i].get(value, 0) + count
        for i, hit in enumerate(spread):
            if hit and node.name in self.spread_nodes[i]:      # a domain: _spread_domains put it in at 0
                self.spread_counts[i][node.labels[self.spread[i].topology_key]] += count

    def _count_repelling(self, pod, node_name: str | None, sign: int) -> None:
        """A placed pod whose own anti-affinity matches us keeps us out of its domain."""
        node = self.nodes.get(node_name or "")
        if node is None or not pod.anti:
            return
        ns_labels = self.ns_labels
        for term in pod.anti:
            if term.matches(self.namespace, self.labels, ns_labels):
                value = node.labels.get(term.topology_key)
                if value is not None:
                    per_value = self.existing_anti.setdefault(term.topology_key, {})
                    per_value[value] = per_value.get(value, 0) + sign

    # ---- placing -----------------------------------------------------------------------
    def observe_pod(self, pod, node_name: str) -> None:
        """A pod (a waiting one the placement put somewhere) now runs on ``node_name``."""
        self._count(pod.namespace, pod.labels, ((node_name, 1),), +1)
        self._count_repelling(pod, node_name, +1)

    def forget_pod(self, pod) -> None:
        """A bound pod leaves its node (a preemption victim); ``observe_pod(pod, pod.node)`` undoes it."""
        self._count(pod.namespace, pod.labels, ((pod.node, 1),), -1)
        self._count_repelling(pod, pod.node, -1)

    def observe_self(self, node) -> None:
        """One pod of the kind this state is for was placed on ``node``."""
        spread_hits = [bool(s) and c.counts(self.labels) for s, c in zip(self.self_spread, self.spread, strict=True)]
        self._add(node, self.self_all_aff, self.self_anti, spread_hits, 1)
        for i, term in enumerate(self.anti_terms):
            if self.self_anti[i]:      # its own anti-affinity now repels the next one (the symmetric rule)
                value = node.labels.get(term.topology_key)
                if value is not None:
                    per_value = self.existing_anti.setdefault(term.topology_key, {})
                    per_value[value] = per_value.get(value, 0) + 1

    @property
    def changes_as_placed(self) -> bool:
        """Whether placing this pod changes where the next one may go (else one pass suffices)."""
        if self.self_all_aff:
            return True
        if any(hit and t.topology_key != HOSTNAME_KEY for hit, t in zip(self.self_anti, self.anti_terms, strict=True)):
            return True
        return any(s and c.counts(self.labels) for s, c in zip(self.self_spread, self.spread, strict=True))

    @property
    def one_per_node(self) -> str | None:
        """The cause capping this pod at one per node (host port or self anti-affinity), if any."""
        if self.constraints.ports:
            return HOST_PORT
        if any(hit and t.topology_key == HOSTNAME_KEY for hit, t in zip(self.self_anti, self.anti_terms, strict=True)):
            return ANTI_AFFINITY
        return None

    def affinity_refuses(self, node) -> bool:
        """Whether the required pod affinity alone rejects ``node`` (UnschedulableAndUnresolvable:
        the scheduler does not try preemption on such a node)."""
        return bool(self.aff_terms) and self._affinity_refusal(node.labels) is not None

    def _affinity_refusal(self, labels) -> str | None:
        pods_exist = True
        for i, term in enumerate(self.aff_terms):
            value = labels.get(term.topology_key)
            if value is None:
                return AFFINITY
            if self.aff_counts[i].get(value, 0) <= 0:
                pods_exist = False
        if not pods_exist:
            nobody = not any(v > 0 for counts in self.aff_counts for v in counts.values())
            if not (nobody and self.self_all_aff):
                return AFFINITY
        return None

    def refusal(self, node, used_ports=None) -> str | None:
        """Why the pod cannot go to ``node`` now (a code), or ``None``."""
        labels = node.labels
        if self.constraints.ports and ports_conflict(self.constraints.ports,
                                                     node.ports if used_ports is None else used_ports):
            return HOST_PORT
        for key, per_value in self.existing_anti.items():
            value = labels.get(key)
            if value is not None and per_value.get(value, 0) > 0:
                return ANTI_AFFINITY
        for i, term in enumerate(self.anti_terms):
            value = labels.get(term.topology_key)
            if value is not None and self.anti_counts[i].get(value, 0) > 0:
                return ANTI_AFFINITY
        if self.aff_terms and self._affinity_refusal(labels) is not None:
            return AFFINITY
        for i, constraint in enumerate(self.spread):
            value = labels.get(constraint.topology_key)
            if value is None:
                return SPREAD
            counts = self.spread_counts[i]
            minimum = 0 if len(counts) < constraint.min_domains or not counts else min(counts.values())
            if counts.get(value, 0) + self.self_spread[i] - minimum > constraint.max_skew:
                return SPREAD
        return None
