"""Per-node truth over cluster-wide guesses: what one node really offers pods in IPs.

The instance type and the aws-node settings give every node of a type the same IP
slots. Three kinds of node differ, and each says so itself:

* **Windows nodes** get pod IPs from the VPC resource controller, advertised as the
  extended resource ``vpc.amazonaws.com/PrivateIPv4Address`` (the primary ENI's
  secondary IPs only); that allocatable is the node's IP slot count.
* **Nodes with a trunk ENI** (``ENABLE_POD_ENI=true``; the node advertises
  ``vpc.amazonaws.com/pod-eni`` or its CNINode lists ``SecurityGroupsForPods``): the
  trunk takes one ENI slot, so the node's secondary-IP pods have one ENI fewer.
* **Nodes launched before prefix delegation was enabled**: their kubelet ``maxPods`` is
  still the secondary-IP figure (or EC2 shows their ENIs holding secondary IPs and no
  /28 prefixes). They are counted as the secondary-IP nodes they are, and ``prefix_laggards``
  names them so the fix (replace them) can be said. A node a Karpenter or EKS Auto Mode
  node class launched is not judged by its ``maxPods``: that comes from the node class
  (Karpenter keeps the ENI-limited figure under prefix delegation until
  ``spec.kubelet.maxPods`` is set, see ``node_class``), so only EC2's answer can say.
"""

from __future__ import annotations

from dataclasses import replace

from .ipslots import HOST_NETWORK_PODS, IpCapacity, ip_slots
from .node_class import node_class_of

PRE_PREFIX_MODE = "secondary-ip (launched before prefix delegation)"


def _on_secondary_ips(state, node, limits) -> bool:
    """A node that still runs secondary IPs although prefix delegation is on."""
    instance = state.network.instance_of(node.name)
    if instance is not None:
        cards = [i for i in instance.interfaces if i.card == 0 and i.kind == "interface"]
        if cards:
            return not any(i.prefixes for i in cards) and any(i.secondary_ips for i in cards)
    if node_class_of(state, node) is not None:
        return False
    secondary_max = ip_slots(limits, False, state.cni.custom_networking, state.cni.max_eni) + HOST_NETWORK_PODS
    return node.allocatable_pods <= secondary_max


def adjust_ip_capacity(state, node, capacity: IpCapacity) -> IpCapacity:
    """``capacity`` (the type's figure under the cluster's CNI settings) corrected for this node."""
    cni = state.cni
    net = state.network.nodes.get(node.name)
    if net is None or capacity.slots is None and not net.windows:
        return capacity
    if net.windows:
        if net.windows_ips is not None:
            return IpCapacity(net.windows_ips, "windows", capacity.instance_type)
        return capacity
    limits = state.limits_for(node)
    if limits is None:
        return capacity
    prefix = cni.prefix_delegation and limits.supports_prefix_delegation
    mode = capacity.mode
    if prefix and _on_secondary_ips(state, node, limits):
        prefix, mode = False, PRE_PREFIX_MODE
    trunk = bool(cni.pod_eni and state.network.has_trunk(node.name))
    if mode == capacity.mode and not trunk:
        return capacity
    if trunk:
        mode += "+trunk-eni"
    return replace(capacity, slots=ip_slots(limits, prefix, cni.custom_networking, cni.max_eni, trunk), mode=mode)


def prefix_laggards(state) -> list[str]:
    """Nodes still on secondary IPs while prefix delegation is on (sorted names)."""
    if not state.cni.prefix_delegation:
        return []
    return sorted(name for name, node in state.nodes.items()
                  if state.ip_capacity(node).mode.startswith(PRE_PREFIX_MODE))


def laggard_fix(names: list[str]) -> str:
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (f"Node{'s' if len(names) > 1 else ''} {shown} started before prefix delegation was enabled and still "
            "run secondary IPs with the old kubelet maxPods: replace them (roll the node group, or drain and "
            "terminate) so they boot with prefixes and a higher maxPods.")
