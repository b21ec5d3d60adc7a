"""The arithmetic behind SUBNET_IP_EXHAUSTED, one function at a time, on hand-worked numbers.

Oracles: the VPC CNI's documented pool sizing (docs/eni-and-ip-target.md, pkg/ipamd/ipamd.go):
WARM_ENI_TARGET keeps that many whole ENIs' worth of free IPs, WARM_IP_TARGET / MINIMUM_IP_TARGET
replace it with a count of IPs, WARM_PREFIX_TARGET counts free /28 prefixes (16 IPs each), and the
pool never grows past the node's ENIs or past kubelet maxPods; under custom networking the primary
ENI carries no pods. AWS reserves the first four and the last address of every subnet, so an empty
/24 has 251 usable addresses and 14 whole /28 blocks (the first and last blocks are touched).
DescribeInstances: only interfaces of network card 0 with InterfaceType ``interface`` carry pod IPs.
"""

from types import SimpleNamespace

from webhook.engine.ipslots import CniConfig
from webhook.engine.network import Instance, Interface, NetworkState, Subnet
from webhook.engine.subnets import (Holding, NodeDraw, SubnetDraw, _measured, _stuck_pods, held_addresses,
                                    pod_subnet)

ENI_DEFAULT = CniConfig(True)                                        # WARM_ENI_TARGET=1
PD = CniConfig(True, prefix_delegation=True)                          # WARM_PREFIX_TARGET unset


# ---- held_addresses: secondary-IP mode ---------------------------------------------------------

def test_an_idle_node_holds_its_primary_enis_addresses():
    # m5.large: 3 ENIs x 10 IPs, 9 secondary each. No pods: the primary ENI's 9 are the warm ENI.
    assert held_addresses(0, ENI_DEFAULT, 9, 3, 29, False) == Holding(9, 1, False)


def test_warm_eni_growth_stops_at_the_nodes_enis():
    # 20 pods on m5.large fill 3 ENIs (27 IPs); a fourth ENI does not exist.
    assert held_addresses(20, ENI_DEFAULT, 9, 3, 29, False) == Holding(27, 3, False)


def test_warm_eni_growth_stops_once_the_pool_reaches_max_pods():
    # m5.xlarge (4 x 14) capped at maxPods 20: 5 pods take ENI 1 (9 free < 14) so ENI 2 (28 >= 20): stop.
    assert held_addresses(5, ENI_DEFAULT, 14, 4, 20, False) == Holding(28, 2, False)


def test_under_custom_networking_the_pool_starts_on_the_first_secondary_eni():
    cni = CniConfig(True, custom_networking=True)
    assert held_addresses(0, cni, 14, 3, 58, False, first_eni=0) == Holding(14, 1, False)
    assert held_addresses(15, cni, 14, 3, 58, False, first_eni=0) == Holding(42, 3, False)
    # WARM_ENI_TARGET=0 with nothing running: ipamd's isDatastorePoolTooLow is also true when the target is 0
    # and no IP is free ("warmTarget == 0 && available == 0"), and an idle node has none: one pod ENI (14 IPs).
    idle = CniConfig(True, custom_networking=True, warm_eni_target=0)
    assert held_addresses(0, idle, 14, 3, 58, False, first_eni=0) == Holding(14, 1, False)


def test_warm_eni_target_zero_adds_an_eni_only_once_no_ip_is_free():
    # pkg/ipamd/ipamd.go isDatastorePoolTooLow: available < 0 x IPs per ENI is never true, so with
    # WARM_ENI_TARGET=0 the pool grows only when "warmTarget == 0 && available == 0". m5.large: 9 per ENI.
    zero = CniConfig(True, warm_eni_target=0)
    assert held_addresses(0, zero, 9, 3, 29, False) == Holding(9, 1, False)      # nothing free: fill ENI 1
    assert held_addresses(5, zero, 9, 3, 29, False) == Holding(9, 1, False)      # 4 free: enough
    assert held_addresses(8, zero, 9, 3, 29, False) == Holding(9, 1, False)      # 1 free: still enough
    assert held_addresses(9, zero, 9, 3, 29, False) == Holding(18, 2, False)     # 0 free: a second ENI
    assert held_addresses(27, zero, 9, 3, 29, False) == Holding(27, 3, False)    # no fourth ENI exists
    # WARM_ENI_TARGET=2 on an idle node: two whole ENIs of free IPs (18).
    assert held_addresses(0, CniConfig(True, warm_eni_target=2), 9, 3, 29, False) == Holding(18, 2, False)


def test_warm_ip_target_counts_addresses_and_is_capped_by_the_enis():
    assert held_addresses(3, CniConfig(True, warm_ip_target=5), 9, 3, 29, False) == Holding(8, 1, False)
    # 25 pods + 5 warm = 30 > 27 the ENIs can hold.
    assert held_addresses(25, CniConfig(True, warm_ip_target=5), 9, 3, 29, False) == Holding(27, 3, False)
    # MINIMUM_IP_TARGET alone (WARM_IP_TARGET unset).
    assert held_addresses(0, CniConfig(True, minimum_ip_target=12), 9, 3, 29, False) == Holding(12, 2, False)


def test_a_node_type_without_secondary_addresses_holds_no_eni():
    assert held_addresses(0, ENI_DEFAULT, 0, 1, 4, False).enis == 0


# ---- held_addresses: prefix delegation -----------------------------------------------------------

def test_warm_ip_target_with_prefix_delegation_rounds_up_to_whole_prefixes():
    cni = CniConfig(True, prefix_delegation=True, warm_ip_target=5)
    assert held_addresses(20, cni, 9, 3, 110, True) == Holding(2, 1, False)            # 25 IPs: 2 /28s
    minimum = CniConfig(True, prefix_delegation=True, minimum_ip_target=40)
    assert held_addresses(0, minimum, 9, 3, 110, True) == Holding(3, 1, False)          # 40 IPs: 3 /28s
    huge = CniConfig(True, prefix_delegation=True, minimum_ip_target=1000)
    assert held_addresses(0, huge, 9, 1, 110, True).units == 9                          # one ENI: 9 prefixes


def test_warm_prefix_growth_stops_at_max_pods_and_at_the_enis():
    warm1 = CniConfig(True, prefix_delegation=True, warm_prefix_target=1)
    # 30 pods: 2 prefixes (32 IPs) already reach maxPods 32, no warm prefix.
    assert held_addresses(30, warm1, 9, 3, 32, True).units == 2
    # Only 2 prefix slots (1 per ENI x 2 ENIs): no third.
    assert held_addresses(30, warm1, 1, 2, 110, True) == Holding(2, 2, False)
    # WARM_PREFIX_TARGET=2 keeps two whole free prefixes: 10 pods -> 1 used + 2 free.
    assert held_addresses(10, CniConfig(True, prefix_delegation=True, warm_prefix_target=2), 9, 3, 110, True).units == 3


def test_prefixes_beyond_one_eni_need_a_second_eni():
    cni = CniConfig(True, prefix_delegation=True, warm_prefix_target=1)
    # 150 pods: 10 prefixes used + 1 warm = 11 > 9 per ENI: 2 ENIs.
    assert held_addresses(150, cni, 9, 3, 250, True) == Holding(11, 2, False)


# ---- what EC2 says a node holds -------------------------------------------------------------------

def _iface(index, card=0, kind="interface", ips=0, prefixes=0):
    return Interface(f"eni-{index}{card}", "subnet-a", index, card, kind, ips, prefixes)


def test_measured_holding_counts_only_pod_enis_on_card_zero():
    instance = Instance("i-1", "subnet-a", "us-east-1a", (
        _iface(0, ips=9, prefixes=1), _iface(1, ips=4, prefixes=2), _iface(2, kind="trunk", ips=7, prefixes=5),
        _iface(0, card=1, ips=11, prefixes=3), _iface(3, kind="efa", ips=13, prefixes=4)))
    assert _measured(instance, False, False) == Holding(13, 2, True)
    assert _measured(instance, False, True) == Holding(3, 2, True)
    # Custom networking: the primary ENI (device 0) holds no pod addresses.
    assert _measured(instance, True, False) == Holding(4, 1, True)
    assert _measured(Instance("i-2", "subnet-a", "us-east-1a"), False, False) is None


# ---- free /28 blocks in a subnet ---------------------------------------------------------------

def _draw(cidr, available):
    return SubnetDraw(Subnet("subnet-a", "us-east-1a", cidr, available), True)


def test_an_empty_24_has_fourteen_whole_blocks():
    assert _draw("10.0.1.0/24", 251).block_bounds(251) == (14, 14)


def test_each_used_address_may_spoil_one_block():
    # 10 of the 251 usable addresses used: at most 10 blocks touched, 4 whole for certain, 14 at most.
    assert _draw("10.0.1.0/24", 241).block_bounds(241) == (4, 14)
    # Fewer free addresses than blocks: the free count bounds both.
    assert _draw("10.0.1.0/24", 40).block_bounds(40) == (0, 2)
    assert _draw("10.0.1.0/24", 40).block_bounds(-3) == (0, 0)


def test_a_subnet_too_small_or_of_unknown_size_guarantees_no_block():
    # A /27 (32 addresses): its two /28s both hold reserved addresses.
    assert _draw("10.0.1.0/27", 27).block_bounds(27) == (0, 1)
    assert _draw(None, 100).block_bounds(100) == (0, 6)
    # A /26 (64): 4 blocks, the first and last reserved: 2 whole when empty.
    assert _draw("10.0.1.0/26", 59).block_bounds(59) == (2, 2)


# ---- which subnet a node's pods draw from ------------------------------------------------------

def _state(custom=False, interfaces=(), instance_subnet="subnet-node"):
    net = NetworkState()
    net.note_node({"metadata": {"name": "n1", "labels": {}}, "spec": {"providerID": "aws:///us-east-1a/i-1"}})
    net.instances["i-1"] = Instance("i-1", instance_subnet, "us-east-1a", tuple(interfaces))
    net.eni_configs["default"] = "subnet-pods"
    return SimpleNamespace(network=net, cni=CniConfig(True, custom_networking=custom))


NODE = SimpleNamespace(name="n1", labels={})


def test_pods_use_the_primary_enis_subnet_or_the_eniconfigs():
    primary = Interface("eni-0", "subnet-eni", 0, 0, "interface", 0, 0)
    other = Interface("eni-1", "subnet-other", 1, 0, "interface", 0, 0)
    assert pod_subnet(_state(interfaces=(other, primary)), NODE) == ("subnet-eni", "node subnet")
    assert pod_subnet(_state(interfaces=(other,)), NODE) == ("subnet-node", "node subnet")
    assert pod_subnet(_state(custom=True, interfaces=(primary,)), NODE) == ("subnet-pods", "ENIConfig default")
    assert pod_subnet(_state(), SimpleNamespace(name="n2", labels={})) == (None, "no EC2 description")


# ---- how many pods get no address (the message's estimate) ---------------------------------------

def _short(prefix, pods, hard, eni_addresses):
    draw = SubnetDraw(Subnet("subnet-a", None, "10.0.1.0/24", 0), prefix)
    draw.nodes.append(NodeDraw("n1", pods, hard, eni_addresses, 0, True))
    return draw


def test_stuck_pods_in_secondary_ip_mode_are_the_missing_addresses():
    assert _stuck_pods(_short(False, 30, 28, 2), 20) == 10
    assert _stuck_pods(_short(False, 5, 28, 2), 20) == 5           # never more than the new pods
    assert _stuck_pods(_short(False, 30, 28, 2), 40) == 0


def test_stuck_pods_with_prefixes_are_sixteen_per_missing_block():
    # 4 prefixes needed, 50 free less 1 ENI address = 49: 3 blocks, 1 short: 16 pods.
    assert _stuck_pods(_short(True, 80, 4, 1), 50) == 16
    assert _stuck_pods(_short(True, 10, 4, 1), 50) == 10
    assert _stuck_pods(_short(True, 80, 4, 0), 64) == 0


def test_no_new_eni_once_the_pool_already_equals_max_pods():
    # 20 pods on m5.xlarge capped at maxPods 28: two ENIs (28 IPs) equal maxPods, only 8 free, still no third.
    assert held_addresses(20, ENI_DEFAULT, 14, 4, 28, False) == Holding(28, 2, False)


def test_minimum_ip_target_alone_keeps_no_warm_ip_beyond_the_pods():
    # ipamd datastoreTargetState: short = max(WARM_IP_TARGET (unset: 0) - available, MINIMUM_IP_TARGET - total).
    # 20 pods with MINIMUM_IP_TARGET=12 on m5.large (9 per ENI): exactly the 20 in use, on 3 ENIs.
    assert held_addresses(20, CniConfig(True, minimum_ip_target=12), 9, 3, 29, False) == Holding(20, 3, False)


def test_warm_prefix_target_unset_adds_a_prefix_only_when_none_is_free():
    pd = CniConfig(True, prefix_delegation=True)
    # 15 pods on one /28: one IP still free, no second prefix; 16 pods: none free, a second one.
    assert held_addresses(15, pd, 9, 3, 110, True).units == 1
    assert held_addresses(16, pd, 9, 3, 110, True).units == 2
