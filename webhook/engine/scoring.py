"""How the default scheduler profile ranks the nodes a pod fits on (resource scores).

From ``pkg/scheduler/framework/plugins/noderesources`` (v1.33), both plugins weight 1,
CPU and memory weight 1 each:

* NodeResourcesFit, strategy LeastAllocated: per resource ``(alloc - req) * 100 // alloc``
  (0 when over), averaged with integer division; ``req`` is the node's requests plus the
  pod's, where a container without a CPU / memory request counts 100m / 200Mi;
* NodeResourcesBalancedAllocation: ``int((1 - |f_cpu - f_mem| / 2) * 100)`` with
  ``f = min(1, requested / alloc)`` over the real requests; a pod that requests nothing
  (BestEffort) scores 0.

The other default score plugins are constant across nodes for pods without preferences
(TaintToleration without PreferNoSchedule taints, NodeAffinity without preferred terms,
InterPodAffinity without preferred terms, ImageLocality without images); see README
"Fidelity" for the ones the engine leaves out. Ties are broken by node name (the
scheduler picks one of the tied nodes at random).
"""

from __future__ import annotations

from .requests import Resources

MAX_NODE_SCORE = 100


def least_requested(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def least_allocated(alloc: Resources, score_used: Resources, scored: Resources) -> int:
    total = weights = 0
    for capacity, requested in ((alloc.cpu, score_used.cpu + scored.cpu),
                                (alloc.memory, score_used.memory + scored.memory)):
        if capacity == 0:
            continue
        total += least_requested(requested, capacity)
        weights += 1
    return total // weights if weights else 0


def balanced_allocation(alloc: Resources, used: Resources, requests: Resources) -> int:
    if requests.cpu == 0 and requests.memory == 0:
        return 0        # BestEffort pods are not scored by balance (kubernetes#129138)
    fractions = []
    for capacity, requested in ((alloc.cpu, used.cpu + requests.cpu), (alloc.memory, used.memory + requests.memory)):
        if capacity == 0:
            continue
        fractions.append(min(1.0, float(requested) / float(capacity)))
    std = abs((fractions[0] - fractions[1]) / 2) if len(fractions) == 2 else 0.0
    return int((1 - std) * float(MAX_NODE_SCORE))


def node_score(alloc: Resources, used: Resources, score_used: Resources, requests: Resources,
               scored: Resources) -> int:
    """LeastAllocated + BalancedAllocation for one more pod on a node."""
    return least_allocated(alloc, score_used, scored) + balanced_allocation(alloc, used, requests)


def default_normalize(raw: dict, reverse: bool) -> dict:
    """helper.DefaultNormalizeScore: scale to 0-100 by the largest raw score (reversed: 100 - that).
    All zero: every node gets 100 when reversed, else 0."""
    top = max(raw.values(), default=0)
    if top == 0:
        return {name: MAX_NODE_SCORE if reverse else 0 for name in raw}
    out = {}
    for name, value in raw.items():
        scaled = MAX_NODE_SCORE * value // top
        out[name] = MAX_NODE_SCORE - scaled if reverse else scaled
    return out


TAINT_TOLERATION_WEIGHT = 3      # the default profile's plugin weights (apis/config/v1/default_plugins.go)
NODE_AFFINITY_WEIGHT = 2


class Preferences:
    """TaintToleration (PreferNoSchedule) and NodeAffinity (preferred terms) scores of one kind of pod.

    Both are normalized over the nodes that passed the filters in the scheduling cycle, so
    ``bonus`` takes the feasible node names; ``active`` is False for the pods (most) whose
    preferences are the same on every node, where they cannot change the choice.
    """

    def __init__(self, rules, nodes):
        from .scheduling import intolerable_prefer_no_schedule, preferred_weight
        self.taints = {n.name: intolerable_prefer_no_schedule(n, rules.tolerations) for n in nodes}
        self.affinity = {n.name: preferred_weight(n, rules.preferred_terms) for n in nodes} \
            if rules.preferred_terms else {}
        self.active = any(self.taints.values()) or any(self.affinity.values())

    def bonus(self, names) -> dict:
        taints = default_normalize({n: self.taints.get(n, 0) for n in names}, True)
        affinity = default_normalize({n: self.affinity.get(n, 0) for n in names}, False) if self.affinity else {}
        return {n: TAINT_TOLERATION_WEIGHT * taints[n] + NODE_AFFINITY_WEIGHT * affinity.get(n, 0) for n in names}
