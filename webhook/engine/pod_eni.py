"""Security groups for pods: branch ENIs, the room a node has for them, and POD_ENI_EXHAUSTED.

With ``ENABLE_POD_ENI=true`` on aws-node, the VPC resource controller attaches a trunk
ENI to every node whose type can trunk and advertises the node's branch ENIs as the
extended resource ``vpc.amazonaws.com/pod-eni``. Its mutating webhook gives a pod that
a ``SecurityGroupPolicy`` in its namespace selects (``podSelector`` on the pod's labels
and ``serviceAccountSelector`` on its ServiceAccount's labels, both must match where
set: ``pkg/utils/helper.go`` filterPodSecurityGroups) a request for one
``vpc.amazonaws.com/pod-eni``. Such a pod takes a branch ENI, not one of the node's
secondary IPs; a node whose type cannot trunk (0 in the controller's table, e.g.
t3.medium) has none, so the pod stays Pending.

The per-type branch limits are vendored in ``webhook/data/pod_eni_limits.json`` from the
controller's ``pkg/aws/vpc/limits.go`` (see scripts/generate_pod_eni_limits.py); a
node's own allocatable, when it advertises one, wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Mapping

from .network import POD_ENI_RESOURCE

POD_ENI_EXHAUSTED = "POD_ENI_EXHAUSTED"


@lru_cache(maxsize=1)
def branch_limits() -> dict[str, int]:
    """Branch ENIs per instance type (0: cannot trunk) from the vendored controller table."""
    text = resources.files("webhook").joinpath("data/pod_eni_limits.json").read_text(encoding="utf-8")
    return dict(json.loads(text)["types"])


@dataclass(frozen=True)
class BranchDemand:
    """The pods of a workload take branch ENIs: which policies select them, and how sure we are."""

    policies: tuple
    certain: bool                 # False when a serviceAccountSelector could not be checked


def branch_demand(state, namespace: str, pod_spec: Mapping, pod_labels: Mapping | None) -> BranchDemand | None:
    """Whether a SecurityGroupPolicy selects the workload's pods (None: it does not)."""
    network = state.network
    if not network.policies or pod_spec.get("hostNetwork"):
        return None
    account = pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default"
    sa_labels = network.service_accounts.get((namespace, account))
    matched, certain = [], True
    for (ns, name), policy in sorted(network.policies.items()):
        if ns != namespace or (policy.pod_selector is None and policy.sa_selector is None) or not policy.groups:
            continue
        if policy.pod_selector is not None and not policy.pod_selector.matches(pod_labels):
            continue
        if policy.sa_selector is not None and not policy.sa_selector.empty:
            if sa_labels is None:
                if network.service_accounts_known:
                    continue            # the ServiceAccount does not exist: the controller matches nothing
                certain = False         # its labels are unknown here: it may match
            elif not policy.sa_selector.matches(sa_labels):
                continue
        matched.append(name)
    return BranchDemand(tuple(matched), certain) if matched else None


def branch_room(state, node) -> int:
    """Branch ENIs still free on ``node``: its advertised pod-eni minus the pods holding one."""
    net = state.network.nodes.get(node.name)
    total = net.pod_eni if net and net.pod_eni is not None else 0
    return max(0, total - state.network.branch_by_node.get(node.name, 0))


def _takes_branch(pod) -> bool:
    return any(name == POD_ENI_RESOURCE for name, _amount in pod.extended)


def branch_caps(state, rooms=None, exclude: tuple | None = None) -> dict[str, tuple[int, str]]:
    """``place(caps=...)``: per node, how many more branch-ENI pods fit.

    Beyond the pods bound there: branch ENIs promised to other admitted workloads
    (reservations), less those a rollout's or a preemption's given-back pods free, less
    those waiting pods (which carry the controller's ``vpc.amazonaws.com/pod-eni``
    request) take where ``rooms`` placed them first, and those of pods a selected
    workload's controller has still to create (``RoomMap._subtract_promised``).
    """
    reserved = state.reserved_branch_enis(exclude) if state.reservations else {}
    change: dict[str, int] = {}
    if rooms is not None:
        holders = state.network.branch_pods
        for pod in rooms.given_back:
            if pod.key in holders:
                change[holders[pod.key]] = change.get(holders[pod.key], 0) + 1
        for pod, node in rooms.placed:
            if _takes_branch(pod):
                change[node] = change.get(node, 0) - 1
        for node, count in rooms.promised_branch.items():
            change[node] = change.get(node, 0) - count
    return {name: (max(0, branch_room(state, node) - reserved.get(name, 0) + change.get(name, 0)), POD_ENI_EXHAUSTED)
            for name, node in state.nodes.items()}


def node_phrase(state, name: str, outcome, caps: dict | None = None, held_by: dict | None = None) -> str:
    node = outcome.room.node
    net = state.network.nodes.get(name)
    total = net.pod_eni if net else None
    itype = node.instance_type or "unknown type"
    table = branch_limits().get(node.instance_type or "")
    if table == 0:
        return f"node {name}: {itype} cannot trunk (0 branch ENIs)"
    if total is None:
        return f"node {name}: advertises no {POD_ENI_RESOURCE} ({itype} allows {table if table else '?'})"
    if caps is not None and name in caps:
        free = caps[name][0]
    else:
        free = max(0, total - state.network.branch_by_node.get(name, 0))
    held = (held_by or {}).get(name, 0)
    return f"node {name}: {free} of {total} branch ENIs free" + (f" ({held} reserved for admitted workloads)"
                                                                 if held else "")


def fix(state, placement, lower: str) -> str:
    """Say why nodes have no branch ENIs and what helps."""
    stopped = [o.room.node for o in placement.per_node.values() if o.limit == POD_ENI_EXHAUSTED]
    limits = branch_limits()
    cannot = sorted({n.instance_type for n in stopped if n.instance_type and limits.get(n.instance_type) == 0})
    unadvertised = [n for n in stopped if n.instance_type and limits.get(n.instance_type)
                    and (state.network.nodes.get(n.name) is None or state.network.nodes[n.name].pod_eni is None)]
    parts = []
    if cannot:
        parts.append(f"{', '.join(cannot[:3])} cannot trunk (aws/amazon-vpc-resource-controller-k8s limits.go): "
                     "use trunking types such as m5.large (9 branch ENIs) for these pods")
    if unadvertised:
        if not state.cni.pod_eni:
            parts.append("set ENABLE_POD_ENI=true on aws-node so trunking nodes get branch ENIs")
        else:
            parts.append(f"node {unadvertised[0].name} advertises no {POD_ENI_RESOURCE} yet (trunk ENI not attached)")
    parts.append(f"add trunking nodes, remove the SecurityGroupPolicy match, or lower {lower}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def policy_note(demand: BranchDemand) -> str:
    names = ", ".join(demand.policies[:3])
    text = f"SecurityGroupPolicy {names} selects these pods: each takes a branch ENI ({POD_ENI_RESOURCE})."
    if not demand.certain:
        text += " (A serviceAccountSelector was not checked: the ServiceAccount's labels are not known here.)"
    return text
