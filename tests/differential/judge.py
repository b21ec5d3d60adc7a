"""Compare the engine's answer with the real scheduler's, shrink disagreements, print reproducers.

The comparison, in order:

1. Pods the API server refused (LimitRanger, ResourceQuota admission) never exist: the
   engine must name that with its own code (``LIMITRANGE_REJECTS`` / ``QUOTA_EXCEEDED``)
   and count as pending only the created pods the scheduler left unscheduled.
2. A pod the scheduler bound to a NotReady node never runs: the engine excludes NotReady
   nodes on purpose (DELIBERATE_DIFFERENCES), so those pods may count as pending.
3. Otherwise the engine's ``pending`` must equal the number of pods left ``PodScheduled=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import yaml

from tests.differential.generator import Scenario, feature_tags
from tests.differential.referee import Run

LIMITRANGE_CODE = "LIMITRANGE_REJECTS"
QUOTA_CODE = "QUOTA_EXCEEDED"

#: The differences the engine keeps on purpose. One place; README.md and the report point here.
DELIBERATE_DIFFERENCES = {
    "notready-node": "A NotReady node is excluded by the engine; the scheduler binds pods that tolerate its "
                     "not-ready taints there (a wildcard toleration does), and they never start. Counted as "
                     "pending by the engine on purpose.",
    "vpc-cni-ip-slots": "Pod IP slots of the AWS VPC CNI are invisible to the scheduler (the pod is bound and "
                        "then fails sandbox creation). Kept out of the comparison: scenarios have no aws-node "
                        "DaemonSet, so the engine applies no IP rule; allocatable.pods is EKS's max-pods figure.",
}


@dataclass
class Judgement:
    status: str            # agree | deliberate | disagree
    direction: str = ""    # false-deny (engine pends more) | false-allow (engine pends fewer) | codes
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("agree", "deliberate")


def _rejection_code(message: str) -> str:
    """The engine code that names why the API server refused a pod (from the admission plugin's message)."""
    if "quota" in message.lower():
        return QUOTA_CODE          # plugin/pkg/admission/resourcequota: "exceeded quota", "failed quota"
    if "per Container" in message or "per Pod" in message or "LimitRange" in message:
        return LIMITRANGE_CODE     # plugin/pkg/admission/limitranger: "maximum cpu usage per Container is ..."
    if "must be less than or equal to" in message and "limit" in message:
        return LIMITRANGE_CODE     # validation after LimitRanger put a default limit below an explicit request
    return "API_REJECTS"           # anything else is a generator bug: it shows up as its own class


def judge(run: Run) -> Judgement:
    out, eng = run.outcome, run.engine
    detail = (f"engine: {eng.verdict} pending={eng.pending} codes={eng.codes}; scheduler: created={out.created} "
              f"scheduled={out.scheduled} unscheduled={out.unscheduled} on_not_ready={out.on_not_ready} "
              f"rejected={len(out.rejected)}")
    if out.rejected:
        wanted = sorted({_rejection_code(m) for m in out.rejected})
        missing = [c for c in wanted if c not in eng.codes]
        if missing:
            return Judgement("disagree", f"missing:{','.join(missing)}", detail + f" first refusal: {out.rejected[0]}")
    if eng.pending == out.unscheduled:
        return Judgement("agree", detail=detail)
    if out.on_not_ready and out.unscheduled <= eng.pending <= out.unscheduled + out.on_not_ready:
        return Judgement("deliberate", "notready-node", detail)
    return Judgement("disagree", "false-deny" if eng.pending > out.unscheduled else "false-allow", detail)


def disagreement_class(j: Judgement, sc: Scenario) -> str:
    return f"{j.direction} [{' '.join(feature_tags(sc))}]"


# ---------------------------------------------------------------------------- shrinking


def _candidates(sc: Scenario):
    """Smaller variants of ``sc``, coarsest first."""
    n = sc.replicas
    for smaller in sorted({1, n // 2, n - 1} - {n}):
        if smaller >= 1:
            v = sc.copy()
            v.workload["spec"]["replicas"] = smaller
            yield v
    node_names = [o["metadata"]["name"] for o in sc.of_kind("Node")]
    for name in node_names:                       # a node and everything bound to it
        v = sc.copy()
        v.objects = [o for o in v.objects if not (o["kind"] == "Node" and o["metadata"]["name"] == name)
                     and not (o["kind"] == "Pod" and o["spec"].get("nodeName") == name)]
        yield v
    for i, obj in enumerate(sc.objects):
        if obj["kind"] in ("Pod", "LimitRange", "ResourceQuota"):
            v = sc.copy()
            del v.objects[i]
            yield v
    used_classes = {o["spec"].get("priorityClassName") for o in sc.of_kind("Pod")} | {
        sc.workload["spec"]["template"]["spec"].get("priorityClassName")}
    for i, obj in enumerate(sc.objects):
        if obj["kind"] == "PriorityClass" and obj["metadata"]["name"] not in used_classes:
            v = sc.copy()
            del v.objects[i]
            yield v
    yield from _field_candidates(sc)


def _drop(sc: Scenario, locate: Callable[[Scenario], tuple[dict, object] | None]):
    v = sc.copy()
    found = locate(v)
    if found is None:
        return None
    parent, key = found
    if isinstance(parent, list):
        del parent[key]
    else:
        parent.pop(key)
    return v


def _field_candidates(sc: Scenario):
    spec = sc.workload["spec"]["template"]["spec"]
    paths: list[tuple] = []
    for key in ("priorityClassName", "nodeSelector", "initContainers", "topologySpreadConstraints", "tolerations",
                "affinity"):
        if key in spec:
            paths.append(("spec", key))
    for key, value in (spec.get("affinity") or {}).items():
        paths.append(("affinity", key))
        if isinstance(value, dict):
            terms = value.get("requiredDuringSchedulingIgnoredDuringExecution") or []
            for t, term in enumerate(terms if isinstance(terms, list) else []):
                for opt in ("namespaces", "namespaceSelector", "labelSelector"):
                    if opt in term:
                        paths.append(("term", key, t, opt))
    for i, _ in enumerate(spec.get("tolerations") or []):
        paths.append(("list", "tolerations", i))
    for i, c in enumerate(spec.get("topologySpreadConstraints") or []):
        paths.append(("list", "topologySpreadConstraints", i))
        for opt in ("minDomains", "nodeAffinityPolicy", "nodeTaintsPolicy", "matchLabelKeys"):
            if opt in c:
                paths.append(("spread", i, opt))
    for i, c in enumerate(spec["containers"]):
        if i:
            paths.append(("list", "containers", i))
        if "ports" in c:
            paths.append(("container", i, "ports"))
    for path in paths:
        def locate(v: Scenario, path=path):
            s = v.workload["spec"]["template"]["spec"]
            if path[0] == "spec":
                return s, path[1]
            if path[0] == "affinity":
                return s["affinity"], path[1]
            if path[0] == "term":
                return s["affinity"][path[1]]["requiredDuringSchedulingIgnoredDuringExecution"][path[2]], path[3]
            if path[0] == "list":
                return s[path[1]], path[2]
            if path[0] == "spread":
                return s["topologySpreadConstraints"][path[1]], path[2]
            if path[0] == "container":
                return s["containers"][path[1]], path[2]
            return None
        v = _drop(sc, locate)
        if v is not None:
            if not (v.workload["spec"]["template"]["spec"].get("affinity") or {"x": 1}):
                v.workload["spec"]["template"]["spec"].pop("affinity")
            yield v
    for i, obj in enumerate(sc.objects):           # existing pods' and nodes' optional fields
        if obj["kind"] == "Pod":
            for key in ("affinity", "priorityClassName", "hostNetwork", "nodeSelector", "schedulingGates"):
                if key in obj["spec"]:
                    v = sc.copy()
                    v.objects[i]["spec"].pop(key)
                    yield v
        if obj["kind"] == "Node" and (obj.get("spec") or {}).get("taints"):
            for t in range(len(obj["spec"]["taints"])):
                v = sc.copy()
                del v.objects[i]["spec"]["taints"][t]
                yield v


def shrink(sc: Scenario, still_fails: Callable[[Scenario], bool], budget: int = 60) -> tuple[Scenario, int]:
    """Greedy delta debugging: keep any smaller variant that still disagrees the same way.

    Returns the smallest scenario found and the number of referee runs spent.
    """
    runs = 0
    progress = True
    while progress and runs < budget:
        progress = False
        for candidate in _candidates(sc):
            if runs >= budget:
                break
            runs += 1
            if still_fails(candidate):
                sc, progress = candidate, True
                break
    return sc, runs


def reproducer(sc: Scenario, j: Judgement, header: str = "") -> str:
    """The scenario as YAML documents: cluster objects, then the workload (``check -f`` input)."""
    lines = [f"# differential seed {sc.seed}: {j.status} {j.direction}", f"# {j.detail}"]
    if header:
        lines += [f"# {line}" for line in header.splitlines()]
    lines.append("# cluster objects (create in this order; nodes and bound pods need their status written),"
                 " then the workload")
    docs = yaml.safe_dump_all([*sc.objects, sc.workload], sort_keys=False, default_flow_style=None, width=120)
    return "\n".join(lines) + "\n" + docs
