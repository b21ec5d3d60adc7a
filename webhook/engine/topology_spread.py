"""``topologySpreadConstraints`` with ``whenUnsatisfiable: DoNotSchedule``, as PodTopologySpread filters.

From ``pkg/scheduler/framework/plugins/podtopologyspread/{common,filtering}.go`` (v1.33):

* only DoNotSchedule constraints filter (ScheduleAnyway ones only score);
* ``matchLabelKeys``: the pod's own values of those keys are added to the selector;
* the domains of a constraint are the values of its topology key on the nodes that carry
  *every* constraint's key and pass its inclusion policies (``nodeAffinityPolicy`` Honor by
  default: the pod's nodeSelector and required node affinity; ``nodeTaintsPolicy`` Ignore by
  default; Honor: untolerated NoSchedule/NoExecute taints);
* a domain's count is the pods in the pod's namespace matching the selector (an empty
  selector ``{}`` counts nothing; an absent one matches nothing);
* a node passes when ``count(domain) + self_match - global_min <= maxSkew``; the global
  minimum is taken over the domains, and is 0 when there are fewer than ``minDomains``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .interpod import EVERYTHING
from .scheduling import freeze, selector_matches_frozen


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    max_skew: int
    topology_key: str
    selector: tuple | None        # frozen LabelSelector, EVERYTHING, or None
    min_domains: int = 1
    honor_node_affinity: bool = True
    honor_taints: bool = False

    @staticmethod
    def of(raw: Mapping, labels: Mapping) -> "SpreadConstraint":
        selector = raw.get("labelSelector")
        keys = [k for k in raw.get("matchLabelKeys") or () if k in labels]
        if selector is not None and keys:
            selector = dict(selector)
            selector["matchLabels"] = {**(selector.get("matchLabels") or {}), **{k: labels[k] for k in keys}}
        if selector is None:
            frozen = None
        elif not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            frozen = EVERYTHING
        else:
            frozen = freeze(selector)
        return SpreadConstraint(
            max_skew=int(raw.get("maxSkew") or 1),
            topology_key=str(raw.get("topologyKey") or ""),
            selector=frozen,
            min_domains=int(raw.get("minDomains") or 1),
            honor_node_affinity=(raw.get("nodeAffinityPolicy") or "Honor") == "Honor",
            honor_taints=(raw.get("nodeTaintsPolicy") or "Ignore") == "Honor",
        )

    def counts(self, labels: Mapping) -> bool:
        """Whether a pod with ``labels`` (in the same namespace) is counted in a domain."""
        return self.selector is not None and self.selector != EVERYTHING and \
            selector_matches_frozen(self.selector, labels)

    def self_match(self, labels: Mapping) -> int:
        return 1 if self.selector is not None and selector_matches_frozen(self.selector, labels) else 0


def hard_constraints(spec: Mapping, labels: Mapping) -> tuple:
    return tuple(SpreadConstraint.of(c, labels) for c in spec.get("topologySpreadConstraints") or ()
                 if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule")

