"""Karpenter and EKS Auto Mode node classes: where a node's kubelet ``maxPods`` comes from.

A node that Karpenter launched gets its kubelet pod limit from its node class, not from
the AMI's per-type table, so the fix for "nodes are at their maxPods" is a field of that
object, not a kubelet flag, and replacing the node changes nothing unless the field does:

* **Karpenter** (``EC2NodeClass``, ``karpenter.k8s.aws/v1``; the node is labelled
  ``karpenter.k8s.aws/ec2nodeclass``, or ``karpenter.sh/nodepool`` whose NodePool's
  ``spec.template.spec.nodeClassRef`` names it): ``spec.kubelet.maxPods`` when set; else
  the ENI-limited figure ``ENIs x (IPv4 per ENI - 1) + 2`` for the AMI families that support
  it (AL2, AL2023, Bottlerocket, Custom) and 110 for Windows; then, when
  ``spec.kubelet.podsPerCore`` is above 0 (ignored on Bottlerocket), at most podsPerCore x
  vCPUs (aws/karpenter-provider-aws ``pkg/providers/instancetype/types.go`` ``pods()``, with
  the default ``reservedENIs`` of 0). Karpenter does not know about prefix delegation: with
  it on, nodes keep the secondary-IP figure until ``maxPods`` is set.
* **EKS Auto Mode** (``NodeClass``, ``eks.amazonaws.com/v1``; the node is labelled
  ``eks.amazonaws.com/nodeclass``): there is no maxPods field; EKS caps every node at 110
  pods after its own calculation (EKS user guide, "Create a Node Class").

For an existing node the kubelet's own ``status.allocatable.pods`` stays the number the
engine counts with; this module says why it is what it is and what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .instance_types import InstanceLimits
from .ipslots import HOST_NETWORK_PODS, ip_slots

EC2_NODE_CLASS = "EC2NodeClass"
AUTO_NODE_CLASS = "NodeClass"
KINDS = {EC2_NODE_CLASS: "karpenter.k8s.aws/", AUTO_NODE_CLASS: "eks.amazonaws.com/"}
EC2_NODE_CLASS_LABEL = "karpenter.k8s.aws/ec2nodeclass"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
AUTO_NODE_CLASS_LABEL = "eks.amazonaws.com/nodeclass"
AUTO_MODE_MAX_PODS = 110
KUBELET_DEFAULT_PODS = 110
# AMI families whose pods() ignores podsPerCore / uses 110 instead of the ENI-limited figure.
NO_PODS_PER_CORE = frozenset({"bottlerocket"})
NOT_ENI_LIMITED = frozenset({"windows2019", "windows2022", "windows2025"})


def _mapping(value) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True)
class NodeClass:
    """What a node class says about the kubelet's pod limit (``known``: its object was read)."""

    kind: str
    name: str
    max_pods: int | None = None
    pods_per_core: int | None = None
    ami_family: str | None = None          # lower case: al2, al2023, bottlerocket, windows2022, custom
    known: bool = False

    @staticmethod
    def from_object(obj: Mapping) -> NodeClass | None:
        """The node class in a Karpenter ``EC2NodeClass`` or Auto Mode ``NodeClass`` (None: another kind)."""
        kind = obj.get("kind")
        if kind not in KINDS or not str(obj.get("apiVersion", "")).startswith(KINDS[kind]):
            return None               # e.g. another project's NodeClass
        name = str((obj.get("metadata") or {}).get("name", ""))
        spec = _mapping(obj.get("spec"))
        if kind == AUTO_NODE_CLASS:
            return NodeClass(kind, name, known=True)
        kubelet = _mapping(spec.get("kubelet"))
        family = spec.get("amiFamily")
        if not isinstance(family, str):
            terms = spec.get("amiSelectorTerms")
            terms = terms if isinstance(terms, list) else []
            aliases = [t["alias"] for t in terms if isinstance(t, Mapping) and isinstance(t.get("alias"), str)]
            family = aliases[0].split("@", 1)[0] if aliases else None
        return NodeClass(kind, name, _count(kubelet.get("maxPods")), _count(kubelet.get("podsPerCore")),
                         family.lower() if isinstance(family, str) else None, True)

    @property
    def auto_mode(self) -> bool:
        return self.kind == AUTO_NODE_CLASS

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


def node_class_of(state, node) -> NodeClass | None:
    """The node class ``node`` was launched from (None: not a Karpenter or Auto Mode node)."""
    labels = node.labels
    name, kind = labels.get(AUTO_NODE_CLASS_LABEL), AUTO_NODE_CLASS
    if not name:
        name, kind = labels.get(EC2_NODE_CLASS_LABEL), EC2_NODE_CLASS
    if not name:
        pool = state.node_pools.get(labels.get(NODEPOOL_LABEL) or "")
        ref = pool.get("nodeClassRef") if pool else None
        if not ref:
            return None
        kind, name = ref
    found = state.node_classes.get((kind, name))
    return found if found is not None else NodeClass(kind, str(name))


@dataclass(frozen=True)
class PodLimit:
    """The kubelet pod limit a node class gives one instance type, and which setting decides it."""

    pods: int | None            # None: not computable here (unknown type, or the class object not read)
    setting: str                # "maxPods", "podsPerCore", "default" (Karpenter's), "auto-mode"
    phrase: str                 # where the number comes from, for messages


def class_pod_limit(node_class: NodeClass, limits: InstanceLimits | None) -> PodLimit:
    """``pods()`` of Karpenter for ``limits``' type under ``node_class`` (Auto Mode: its 110 cap)."""
    if node_class.auto_mode:
        return PodLimit(AUTO_MODE_MAX_PODS, "auto-mode", f"EKS Auto Mode caps nodes at {AUTO_MODE_MAX_PODS} pods")
    if not node_class.known:
        return PodLimit(None, "default", f"{node_class.label} (not readable here)")
    family = node_class.ami_family or ""
    if node_class.max_pods is not None:
        count, setting = node_class.max_pods, "maxPods"
        phrase = f"spec.kubelet.maxPods {count} on {node_class.label}"
    elif family in NOT_ENI_LIMITED:
        count, setting = KUBELET_DEFAULT_PODS, "default"
        phrase = f"Karpenter's default {count}: {node_class.label} sets no maxPods"
    elif limits is not None:
        count, setting = ip_slots(limits) + HOST_NETWORK_PODS, "default"
        phrase = f"Karpenter's ENI-limited default {count} for {limits.name}: {node_class.label} sets no maxPods"
    else:
        return PodLimit(None, "default", f"Karpenter's ENI-limited default: {node_class.label} sets no maxPods")
    per_core = node_class.pods_per_core
    if per_core and family not in NO_PODS_PER_CORE:
        if limits is None or limits.vcpus is None:
            return PodLimit(None, "podsPerCore", f"spec.kubelet.podsPerCore {per_core} on {node_class.label}")
        by_core = per_core * limits.vcpus
        if by_core < count:
            return PodLimit(by_core, "podsPerCore", f"spec.kubelet.podsPerCore {per_core} x {limits.vcpus} vCPUs "
                                                    f"= {by_core} on {node_class.label}")
    return PodLimit(count, setting, phrase)


def pod_limit_of(state, node) -> tuple[NodeClass, PodLimit] | None:
    """The node's class and the pod limit it gives the node's type (None: no node class)."""
    node_class = node_class_of(state, node)
    if node_class is None:
        return None
    return node_class, class_pod_limit(node_class, state.limits_for(node))


def explains(state, node) -> str | None:
    """`` (maxPods from ...)``-style phrase when the node class explains the node's allocatable pods."""
    found = pod_limit_of(state, node)
    if found is None or found[1].pods is None or found[1].pods != node.allocatable_pods:
        return None
    return found[1].phrase


def raise_advice(state, rooms, allowed_of, lower: str) -> str | None:
    """The fix for POD_LIMIT_REACHED on node-class nodes: the node class field to change.

    ``allowed_of(room)`` is the kubelet maxPods the VPC CNI supports on the room's node.
    None when none of the stopped nodes comes from a node class.
    """
    for room in rooms:
        found = pod_limit_of(state, room.node)
        if found is None:
            continue
        node_class, limit = found
        allowed = allowed_of(room)
        itype = room.capacity.instance_type or room.node.instance_type or "these nodes"
        if node_class.auto_mode:
            return (f"Node {room.node.name} is an EKS Auto Mode node (NodeClass {node_class.name}): EKS caps it at "
                    f"{AUTO_MODE_MAX_PODS} pods and has no maxPods setting. Add nodes or lower {lower}.")
        if limit.setting == "podsPerCore":
            return (f"Raise or remove spec.kubelet.podsPerCore on {node_class.label} ({limit.phrase}); Karpenter "
                    f"replaces the drifted nodes. Or add nodes, or lower {lower}.")
        if allowed and allowed > room.node.allocatable_pods:
            now = f"now {limit.phrase}" if node_class.known else "its setting is not readable here"
            verb = "Set" if node_class.known and node_class.max_pods is None else "Raise"
            return (f"{verb} spec.kubelet.maxPods on {node_class.label} to {allowed} ({now}; the VPC CNI allows "
                    f"{allowed} on {itype}); Karpenter replaces the drifted nodes. Or add nodes, or lower {lower}.")
        return None
    return None
