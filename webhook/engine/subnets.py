"""Subnet room: will the subnets the new pods draw from have the addresses they need?

A node with free IP slots still cannot start a pod when its subnet is out of addresses
(pods stuck in ``ContainerCreating``: "failed to assign an IP address to container").
This module counts, per subnet, the addresses the placed pods need beyond what their
nodes already hold, and compares it with EC2's ``AvailableIpAddressCount``.

Which subnet: a node's pod ENIs live in its primary ENI's subnet (DescribeInstances),
or under custom networking in the subnet of the node's ENIConfig.

What a node holds: ipamd (aws/amazon-vpc-cni-k8s ``pkg/ipamd/ipamd.go``) keeps
addresses in hand beyond its pods. Read from EC2 (the secondary IPs or /28 prefixes on
the node's ENIs) when the AWS lookup described the instance; otherwise estimated from
the aws-node settings the way ipamd sizes its pool (``held_addresses``):

* ``WARM_IP_TARGET`` / ``MINIMUM_IP_TARGET`` (either set, non-zero): total =
  max(used + WARM_IP_TARGET, MINIMUM_IP_TARGET) IPs (``datastoreTargetState``);
  with prefix delegation rounded up to whole /28 prefixes.
* otherwise, secondary IPs: whole ENIs are filled (``tryAssignIPs`` asks for every free
  slot) until at least ``WARM_ENI_TARGET`` ENIs' worth of IPs are free
  (``isDatastorePoolTooLow``: available < WARM_ENI_TARGET x IPs per ENI, or with 0 one more
  ENI whenever no IP is free, so an idle node still fills its first pod ENI);
* otherwise, prefix delegation: prefixes until ``WARM_PREFIX_TARGET`` prefixes' worth of
  IPs are free (with 0, one more prefix when none is free);
* growth stops at the node's max ENIs and once the pool reaches kubelet maxPods.

What new pods need, per node going from ``U`` to ``U + k`` IP pods: the hard need is the
addresses (or /28 prefixes) beyond what the node holds, plus one primary address per new
ENI; without them pods cannot start. After that ipamd refills its warm pool: that soft
need only slows later pods, so running short of it is a warning.

Certainty: a shortage is certain (deny in enforce mode) when every node drawing from the
subnet was described by EC2 and, with prefix delegation, even a perfectly unfragmented
subnet lacks the /28 blocks. It is an estimate (warn) when a node's holding was estimated
from the settings, or when fragmentation decides: EC2 reports free addresses, not free
aligned /28 blocks, so ``AvailableIpAddressCount // 16`` blocks is only an upper bound;
the lower bound is the subnet's blocks minus one per used address.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ipslots import PREFIX_IPS, pod_enis
from .network import Subnet
from .verdict import WARN, Reason, clip, counted

SUBNET_IP_EXHAUSTED = "SUBNET_IP_EXHAUSTED"
SUBNET_DATA_UNAVAILABLE = "SUBNET_DATA_UNAVAILABLE"
AWS_RESERVED = 5                  # the first four and the last address of every subnet


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b) if b > 0 else 0


@dataclass(frozen=True)
class Holding:
    """What a node's pod ENIs hold: addresses (or /28 prefixes) and ENIs, and whether EC2 said so."""

    units: int                    # secondary IPs, or prefixes with prefix delegation
    enis: int
    measured: bool


def held_addresses(used: int, cni, per_eni: int, max_enis: int, max_pods: int, prefix: bool,
                   first_eni: int = 1) -> Holding:
    """The pool ipamd settles on with ``used`` IP pods (estimate; see module docstring).

    ``per_eni`` is IPs (secondary mode) or prefixes (prefix delegation) per ENI;
    ``first_eni`` is 1 when the primary ENI carries pods (0 under custom networking).
    """
    capacity = per_eni * max_enis
    size = PREFIX_IPS if prefix else 1
    if cni.warm_ip_target or cni.minimum_ip_target:
        ips = max(used + (cni.warm_ip_target or 0), cni.minimum_ip_target or 0)
        units = min(_ceil_div(ips, size), capacity)
    elif prefix:
        warm = cni.warm_prefix_target or 0
        units = _ceil_div(used, PREFIX_IPS)
        while units < capacity and units * PREFIX_IPS < max_pods and (
                units * PREFIX_IPS - used < warm * PREFIX_IPS or (warm == 0 and units * PREFIX_IPS - used <= 0)):
            units += 1
    else:
        warm = cni.warm_eni_target
        units = _ceil_div(used, per_eni) * per_eni
        while units < capacity and units < max_pods and (
                units - used < warm * per_eni or (warm == 0 and units - used <= 0)):
            units = min(units + per_eni, capacity)
    enis = max(_ceil_div(units, per_eni), first_eni) if per_eni else 0
    return Holding(min(units, capacity), min(enis, max_enis), False)


def _measured(instance, custom_networking: bool, prefix: bool) -> Holding | None:
    pod_enis_ = [i for i in instance.interfaces if i.card == 0 and i.kind == "interface"
                 and not (custom_networking and i.device_index == 0)]
    if not instance.interfaces:
        return None
    units = sum(i.prefixes if prefix else i.secondary_ips for i in pod_enis_)
    return Holding(units, len(pod_enis_), True)


@dataclass
class NodeDraw:
    node: str
    pods: int                     # new IP pods placed here
    hard: int                     # addresses (secondary) or prefixes (PD) the pods cannot start without
    eni_addresses: int            # primary addresses of ENIs that must be attached for them
    soft: int                     # warm-pool refill after them (same units)
    measured: bool


@dataclass
class SubnetDraw:
    subnet: Subnet
    prefix: bool
    nodes: list = field(default_factory=list)
    prior_hard: int = 0           # what already admitted (reserved) pods need from it
    prior_eni: int = 0

    @property
    def hard(self) -> int:
        return sum(n.hard for n in self.nodes)

    @property
    def eni_addresses(self) -> int:
        return sum(n.eni_addresses for n in self.nodes)

    @property
    def soft(self) -> int:
        return sum(n.soft for n in self.nodes)

    @property
    def measured(self) -> bool:
        return all(n.measured for n in self.nodes)

    @property
    def pods(self) -> int:
        return sum(n.pods for n in self.nodes)

    def block_bounds(self, addresses_left: int) -> tuple[int, int]:
        """(guaranteed, possible) free /28 blocks given ``addresses_left`` free addresses."""
        possible = max(0, addresses_left) // PREFIX_IPS
        size = self.subnet.size
        if not size or size < 4 * PREFIX_IPS:
            return 0, possible
        blocks = size // PREFIX_IPS - 2          # the first and last blocks hold AWS's reserved addresses
        used = max(0, size - AWS_RESERVED - self.subnet.available)
        return max(0, min(blocks - used, possible)), min(possible, blocks)


def pod_subnet(state, node) -> tuple[str | None, str]:
    """(subnet id, where that came from) for the subnet a node's new pod ENIs use."""
    network = state.network
    if state.cni.custom_networking:
        name = network.eni_config_name(node.name, node.labels, state.cni)
        return network.eni_configs.get(name), f"ENIConfig {name}"
    instance = network.instance_of(node.name)
    if instance is None:
        return None, "no EC2 description"
    primary = next((i for i in instance.interfaces if i.device_index == 0 and i.card == 0), None)
    return (primary.subnet if primary and primary.subnet else instance.subnet), "node subnet"


def _node_draw(state, node, used: int, new: int, capacity_slots: int | None) -> NodeDraw | None:
    """Addresses a node takes from its subnet going from ``used`` to ``used + new`` IP pods."""
    limits = state.limits_for(node)
    cni = state.cni
    if limits is None or capacity_slots is None:
        return None
    per_eni = limits.ipv4_per_eni - 1        # secondary IPs (or /28 prefixes) per ENI; InstanceLimits keeps it >= 0
    # Prefix units only when the node's slots exceed the secondary-IP figure (not a node launched before PD).
    prefix = cni.prefix_delegation and limits.supports_prefix_delegation and capacity_slots > \
        pod_enis(limits, cni.custom_networking, cni.max_eni) * per_eni
    max_enis = pod_enis(limits, cni.custom_networking, cni.max_eni,
                        trunk="trunk" in state.ip_capacity(node).mode)
    first = 0 if cni.custom_networking else 1
    max_pods = node.allocatable_pods
    instance = state.network.instance_of(node.name)
    measured = _measured(instance, cni.custom_networking, prefix) if instance else None
    now = measured or held_addresses(used, cni, per_eni, max_enis, max_pods, prefix, first)
    size = PREFIX_IPS if prefix else 1
    need = _ceil_div(used + new, size)
    hard = max(0, need - now.units)
    enis_needed = _ceil_div(max(need, now.units), per_eni) if per_eni else 0
    eni_addresses = max(0, min(enis_needed, max_enis) - max(now.enis, first))
    after = held_addresses(used + new, cni, per_eni, max_enis, max_pods, prefix, first)
    soft = max(0, after.units - max(now.units, need))
    return NodeDraw(node.name, new, hard, eni_addresses, soft, now.measured)


def subnet_draws(state, placement, reserved_ips: dict | None = None, branch: bool = False) -> dict[str, SubnetDraw]:
    """Per subnet with known room: what the placement's new IP pods need from it.

    ``reserved_ips`` (node -> IP pods promised to workloads admitted before) is demand
    that comes first: its draw is counted as ``prior_*`` and the new pods' draw is what
    they add on top. ``branch``: the pods take branch ENIs (security groups for pods), one
    new address each and no warm pool.
    """
    draws: dict[str, SubnetDraw] = {}
    if not state.network.subnets or not state.cni.aws_vpc_cni or state.cni.ipv6:
        return draws
    reserved_ips = reserved_ips or {}
    placed = {name: outcome.placed for name, outcome in placement.per_node.items()}
    for name in sorted(set(placed) | set(reserved_ips)):
        node = state.nodes.get(name)
        if node is None:
            continue
        subnet_id, _how = pod_subnet(state, node)
        subnet = state.network.subnets.get(subnet_id) if subnet_id else None
        if subnet is None:
            continue
        capacity = state.ip_capacity(node)
        reserved, new = reserved_ips.get(name, 0), placed.get(name, 0)
        if branch:
            draw = draws.setdefault(subnet.id, SubnetDraw(subnet, False))
            if new > 0:
                draw.nodes.append(NodeDraw(name, new, new, 0, 0, True))
            continue
        prior = _node_draw(state, node, node.ip_pods, reserved, capacity.slots)
        whole = _node_draw(state, node, node.ip_pods, reserved + new, capacity.slots)
        if prior is None or whole is None:
            continue
        if subnet.id not in draws:
            limits = state.limits_for(node)
            prefix = bool(limits and state.cni.prefix_delegation and limits.supports_prefix_delegation
                          and "before prefix" not in capacity.mode)
            draws[subnet.id] = SubnetDraw(subnet, prefix)
        draw = draws[subnet.id]
        draw.prior_hard += prior.hard
        draw.prior_eni += prior.eni_addresses
        if new > 0:
            draw.nodes.append(NodeDraw(name, new, whole.hard - prior.hard, whole.eni_addresses - prior.eni_addresses,
                                       whole.soft, whole.measured))
    return draws


def _stuck_pods(draw: SubnetDraw, left: int) -> int:
    """Roughly how many of the new pods get no address (for the message)."""
    if draw.prefix:
        short_blocks = draw.hard - max(0, left - draw.eni_addresses) // PREFIX_IPS
        return min(draw.pods, max(0, short_blocks) * PREFIX_IPS)
    return min(draw.pods, max(0, draw.hard + draw.eni_addresses - max(left, 0)))


def subnet_findings(state, placement, label: str, lower: str = "replicas",
                    reserved_ips: dict | None = None, branch: bool = False) -> tuple[list[Reason], int]:
    """SUBNET_IP_EXHAUSTED reasons for the placement, and the pods that would get no address
    when the shortage is certain. A failed AWS lookup is one SUBNET_DATA_UNAVAILABLE warning."""
    reasons: list[Reason] = []
    stuck_certain = 0
    error = state.network.aws_error
    if error and placement.placed:
        reasons.append(Reason(SUBNET_DATA_UNAVAILABLE, clip(
            f"{label}: subnet room not checked: the AWS lookup failed") + f"\n{error}\nThe last known "
            "subnet figures (if any) were used. Check the webhook's IAM role (ec2:DescribeSubnets, "
            "ec2:DescribeInstances).", WARN))
    draws = subnet_draws(state, placement, reserved_ips, branch)
    for subnet_id in sorted(draws):
        draw = draws[subnet_id]
        if not draw.nodes:
            continue
        subnet = draw.subnet
        left = subnet.available - draw.prior_eni - (draw.prior_hard * (PREFIX_IPS if draw.prefix else 1))
        where = f"subnet {subnet.id} ({subnet.zone or 'zone unknown'})"
        nodes = sorted(n.node for n in draw.nodes)
        node_text = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
        pods_need = f"{counted(draw.pods, 'new pod')} on {node_text} {'needs' if draw.pods == 1 else 'need'}"
        basis = ("EC2 says what the nodes hold" if draw.measured else
                 "the nodes' warm pools are estimated from the aws-node settings")
        seen = f", read {subnet.observed_at}" if subnet.observed_at else ""
        fix = (f"Add subnets or a secondary CIDR (custom networking with ENIConfig), shrink warm pools "
               f"(WARM_IP_TARGET/MINIMUM_IP_TARGET instead of WARM_ENI_TARGET), move nodes to subnets with room, "
               f"or lower {lower}.")
        if draw.prefix:
            guaranteed, possible = draw.block_bounds(left - draw.eni_addresses)
            need = draw.hard
            if need > possible:
                certain = draw.measured
                summary = (f"{label}: {where} has room for at most {possible} /28 prefixes, "
                           f"its new pods need {need}")
            elif need > guaranteed:
                certain = False
                summary = (f"{label}: {where} may lack /28 blocks: needs {need}, "
                           f"{guaranteed}-{possible} free by fragmentation")
            else:
                certain = None
            if certain is not None:
                stuck = _stuck_pods(draw, left)
                detail = (f"{pods_need} {counted(need, 'more /28 prefix', 'more /28 prefixes')} "
                          f"({draw.eni_addresses} addresses for new ENIs); the subnet has {left} free addresses "
                          f"(AvailableIpAddressCount {subnet.available}{seen}), so {possible} /28 blocks at most and "
                          f"{guaranteed} for certain: free addresses may be scattered (fragmentation), EC2 does not "
                          f"report free aligned blocks; {basis}.")
                if certain:
                    stuck_certain += stuck
                reasons.append(Reason(SUBNET_IP_EXHAUSTED, clip(summary) + "\n" + detail +
                                      "\nUse a subnet CIDR reservation for prefixes, or: " + fix,
                                      "deny" if certain else WARN))
                continue
        else:
            need = draw.hard + draw.eni_addresses
            # Admitted pods may already overdraw the subnet (left < 0): new pods that fit in addresses
            # their nodes hold (need 0) still start, so only a need beyond the free addresses is short.
            if need > max(left, 0):
                certain = draw.measured
                stuck = _stuck_pods(draw, left)
                if certain:
                    stuck_certain += stuck
                summary = f"{label}: {where} has {max(left, 0)} free IPs, its new pods need {need}"
                admitted_before = (f", less {subnet.available - left} for pods admitted before"
                                   if left != subnet.available else "")
                detail = (f"{pods_need} {counted(draw.hard, 'address', 'addresses')} "
                          "beyond what the nodes hold"
                          f"{f' and {draw.eni_addresses} for new ENIs' if draw.eni_addresses else ''}; the subnet has "
                          f"{max(left, 0)} (AvailableIpAddressCount {subnet.available}{seen}"
                          f"{admitted_before}"
                          f"). About {counted(stuck, 'pod')} would stay in ContainerCreating (failed to assign an IP "
                          f"address); "
                          f"{basis}.")
                reasons.append(Reason(SUBNET_IP_EXHAUSTED, clip(summary) + "\n" + detail + "\n" + fix,
                                      "deny" if certain else WARN))
                continue
        unit = PREFIX_IPS if draw.prefix else 1
        total = (draw.hard + draw.soft) * unit + draw.eni_addresses
        if total > left:
            reasons.append(Reason(SUBNET_IP_EXHAUSTED, clip(
                f"{label}: {where} runs dry after these pods: {left} free IPs, warm pools refill to {total}")
                + f"\nThe new pods fit ({draw.hard * unit + draw.eni_addresses} addresses), but ipamd then refills "
                  f"the nodes' warm pools ({draw.soft * unit} more): the next pods on {node_text} will wait for "
                  f"addresses; {basis}.\n" + fix, WARN))
    return reasons, stuck_certain
