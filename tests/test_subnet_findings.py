"""subnet_findings on a real snapshot state with a given placement: which subnets, which words, deny or warn.

The placement is given directly (node -> pods placed) so each test states the draw it means.
Oracles as in tests/test_subnets.py: two m5.xlarge (14 secondary IPs per ENI) in a /24, EC2 says
each holds 7 secondary IPs with 5 pods (WARM_IP_TARGET=2); branch ENIs (security groups for pods)
take one subnet address per pod and keep no warm pool (VPC resource controller).
"""

from types import SimpleNamespace

from tests import synthetic as s
from tests import test_subnets as base
from webhook.engine.subnets import subnet_draws, subnet_findings
from webhook.state.snapshot import state_from_objects

A, B = base.A, base.B


def placement(**per_node):
    nodes = {A if key == "a" else B: SimpleNamespace(placed=count) for key, count in per_node.items()}
    return SimpleNamespace(per_node=nodes, placed=sum(n.placed for n in nodes.values()))


def test_branch_eni_pods_take_one_address_each_and_no_warm_pool():
    state = state_from_objects(base._two_m5_xlarge(20))
    reasons, stuck = subnet_findings(state, placement(a=30), "Deployment default/web", branch=True)
    assert [r.code for r in reasons] == ["SUBNET_IP_EXHAUSTED"] and reasons[0].severity == "deny"
    assert reasons[0].summary.endswith("has 20 free IPs, its new pods need 30")
    assert stuck == 10
    # 20 pods fit exactly; branch ENIs have no warm pool to refill: nothing to say.
    assert subnet_findings(state, placement(a=20), "Deployment default/web", branch=True) == ([], 0)


def test_the_message_names_zone_time_nodes_and_what_admitted_pods_took():
    state = state_from_objects(base._two_m5_xlarge(20))
    reasons, stuck = subnet_findings(state, placement(a=20, b=20), "Deployment default/web",
                                     reserved_ips={A: 4})
    reason = reasons[0]
    # A holds 7 with 5 pods: the 4 reserved pods need 2 more (9 IPs, still one ENI): the subnet's 20 become 18.
    # Then A: 5 + 4 + 20 = 29 IPs, 20 more than the reservation's 9, and 29 > 28 needs a third ENI: 2 new.
    # B: 5 + 20 = 25 IPs, holds 7: 18 more, and a second ENI. Together 38 + 3 = 41.
    assert reason.summary == ("Deployment default/web: subnet subnet-a (us-east-1a) has 18 free IPs, "
                              "its new pods need 41")
    assert "40 new pods on " + ", ".join(sorted([A, B])) in reason.message
    assert "38 addresses beyond what the nodes hold and 3 for new ENIs" in reason.message
    assert "(AvailableIpAddressCount 20, read 2026-11-29T15:00:00Z, less 2 for pods admitted before)" in reason.message
    assert "EC2 says what the nodes hold" in reason.message
    assert stuck == 23


def test_nothing_to_check_without_the_vpc_cni_or_with_ipv6():
    items = base._two_m5_xlarge(20)
    ipv6 = [i for i in items if i["metadata"]["name"] != "aws-node"] + [s.aws_node(ipv6=True)]
    assert subnet_draws(state_from_objects(ipv6), placement(a=30)) == {}
    no_cni = [i for i in items if i["metadata"]["name"] != "aws-node"]
    assert subnet_draws(state_from_objects(no_cni), placement(a=30)) == {}


def test_a_node_unknown_to_the_state_or_outside_known_subnets_draws_nothing():
    state = state_from_objects(base._two_m5_xlarge(20))
    ghost = SimpleNamespace(per_node={"ghost": SimpleNamespace(placed=30)}, placed=30)
    assert subnet_draws(state, ghost) == {}
    items = [i for i in base._two_m5_xlarge(20) if i["kind"] != "EC2Instance"]
    # Without DescribeInstances the node's subnet is unknown: no draw, no finding.
    assert subnet_findings(state_from_objects(items), placement(a=30), "Deployment default/web") == ([], 0)


def test_a_failed_lookup_with_nothing_placed_says_nothing():
    items = base._two_m5_xlarge(20) + [{"apiVersion": "aws.capacity-webhook.io/v1", "kind": "EC2Lookup",
                                        "metadata": {"name": "last"}, "spec": {"error": "AccessDenied"}}]
    assert subnet_findings(state_from_objects(items), placement(), "Deployment default/web") == ([], 0)


def test_prefix_shortage_counts_sixteen_stuck_pods_per_missing_block():
    # tests/test_subnets.py: 80 more pods need 4 more /28s, 48 free addresses are at most 3: certain.
    state = state_from_objects(base._prefix_cluster(48))
    reasons, stuck = subnet_findings(state, placement(a=80), "Deployment default/web")
    assert reasons[0].severity == "deny" and stuck == 16
    assert "80 new pods on " + A + " need 4 more /28 prefixes (0 addresses for new ENIs)" in reasons[0].message
    assert "so 3 /28 blocks at most and 0 for certain" in reasons[0].message
    # Fragmentation-only shortages are warnings and count no certain stuck pods.
    reasons, stuck = subnet_findings(state, placement(a=60), "Deployment default/web")
    assert reasons[0].severity == "warn" and stuck == 0


def test_a_draw_lists_only_nodes_that_get_new_pods_and_counts_secondary_addresses():
    state = state_from_objects(base._two_m5_xlarge(20))
    draws = subnet_draws(state, placement(a=1), reserved_ips={B: 2})
    draw = draws["subnet-a"]
    # A: 5 + 1 = 6 IPs fit the 7 it holds: nothing more. B's reservation also fits its 7: no prior draw.
    assert [(n.node, n.pods, n.hard, n.eni_addresses) for n in draw.nodes] == [(A, 1, 0, 0)]
    assert (draw.prior_hard, draw.prior_eni, draw.prefix) == (0, 0, False)
    # Without branch ENIs the warm pool counts: 30 pods on A need 28 more addresses and 2 ENIs, not 30.
    assert [(n.hard, n.eni_addresses) for n in subnet_draws(state, placement(a=30))["subnet-a"].nodes] == [(28, 2)]


def test_a_refill_exactly_to_the_last_free_address_is_no_warning():
    # 30 pods on A: 28 addresses + 2 ENI addresses, then WARM_IP_TARGET=2 refills 2: 32 in all.
    assert subnet_findings(state_from_objects(base._two_m5_xlarge(32)), placement(a=30), "Deployment default/web") \
        == ([], 0)
    reasons, _ = subnet_findings(state_from_objects(base._two_m5_xlarge(31)), placement(a=30), "Deployment default/web")
    assert [r.severity for r in reasons] == ["warn"]


def test_admitted_pods_spend_whole_prefixes_first():
    # Prefix cluster: A runs 10 pods on 2 prefixes. 40 reserved pods: 50 IPs = 4 prefixes, 2 more: 32 of the 48
    # free addresses go first, 16 stay: one /28 at most. 30 new pods: 80 IPs = 5 prefixes, 1 more.
    state = state_from_objects(base._prefix_cluster(48))
    reasons, stuck = subnet_findings(state, placement(a=30), "Deployment default/web", reserved_ips={A: 40})
    assert "may lack /28 blocks: needs 1, 0-1 free by fragmentation" in reasons[0].summary and stuck == 0


def test_every_short_subnet_is_reported():
    items = [i for i in base._custom_networking(5) if i["metadata"]["name"] != "subnet-pods-a"]
    items.append(base.subnet("subnet-pods-a", "us-east-1a", "100.64.0.0/24", 5))
    reasons, _ = subnet_findings(state_from_objects(items), placement(a=30, b=30), "Deployment default/web")
    assert [r.summary.split(" (")[0].rsplit(" ", 1)[-1] for r in reasons] == ["subnet-pods-a", "subnet-pods-b"]


def test_a_node_of_unknown_type_is_skipped_without_hiding_the_others():
    # A node EC2 describes but whose instance type the limits table lacks: no IP model, no draw.
    # It sorts before A, so the nodes after it must still be counted.
    odd = base.m5_node("ip-10-0-0-5.ec2.internal", "us-east-1a", itype="x9.imaginary")
    items = base._two_m5_xlarge(20) + [odd, base.instance(odd, "subnet-a", [(7, 0)])]
    placed = SimpleNamespace(per_node={odd["metadata"]["name"]: SimpleNamespace(placed=3),
                                       A: SimpleNamespace(placed=30)}, placed=33)
    draw = subnet_draws(state_from_objects(items), placed)["subnet-a"]
    assert [n.node for n in draw.nodes] == [A]


def test_pods_that_fit_in_held_addresses_are_not_denied_when_admitted_pods_overdrew_the_subnet():
    # 40 pods reserved on A need 38 more addresses and 3 ENIs of a subnet with 20 free: overdrawn by 21.
    # One new pod on B takes the 6th of the 7 addresses B already holds: it needs nothing from the subnet.
    state = state_from_objects(base._two_m5_xlarge(20))
    reasons, stuck = subnet_findings(state, placement(b=1), "Deployment default/web", reserved_ips={A: 40})
    assert stuck == 0 and "deny" not in [r.severity for r in reasons]
    assert not [r for r in reasons if "its new pods need" in r.summary]
    # 2 reserved on B take its last warm addresses: 2 new pods need 2 the overdrawn subnet does not have.
    reasons, stuck = subnet_findings(state, placement(b=2), "Deployment default/web", reserved_ips={A: 40, B: 2})
    assert reasons[0].summary.endswith("has 0 free IPs, its new pods need 2") and reasons[0].severity == "deny"
    assert stuck == 2


# ---- which nodes and settings draw at all ------------------------------------------------------

def _windows(itype, private_ips="9"):
    """A Windows node: its pod IPs come from the VPC resource controller (PrivateIPv4Address)."""
    node = base.m5_node(A, "us-east-1a", itype=itype, labels={"kubernetes.io/os": "windows"})
    node["status"]["allocatable"]["vpc.amazonaws.com/PrivateIPv4Address"] = private_ips
    return node


def test_a_windows_node_of_a_type_without_limits_draws_nothing_and_does_not_crash():
    # Its advertised PrivateIPv4Address gives it IP slots, but without the type's ENI limits there is
    # no pool to estimate: no draw (and no AttributeError on the missing limits).
    odd = _windows("x9.imaginary")
    state = state_from_objects([odd, s.aws_node(), base.subnet("subnet-a", "us-east-1a", "10.0.1.0/24", 3),
                                base.instance(odd, "subnet-a", [(7, 0)])])
    assert state.ip_capacity(state.nodes[A]).slots == 9
    assert subnet_draws(state, placement(a=5)) == {}
    assert subnet_findings(state, placement(a=5), "Deployment default/web") == ([], 0)


def test_without_the_vpc_cni_or_under_ipv6_even_nodes_with_ip_slots_draw_nothing():
    # A Windows m5.large advertises 9 PrivateIPv4Address slots whatever the CNI: the subnet check still only
    # applies to the AWS VPC CNI handing out IPv4 addresses.
    win = _windows("m5.large")
    objects = [win, base.subnet("subnet-a", "us-east-1a", "10.0.1.0/24", 3), base.instance(win, "subnet-a", [(7, 0)])]
    assert subnet_draws(state_from_objects(objects), placement(a=5)) == {}
    assert subnet_draws(state_from_objects(objects + [s.aws_node(ipv6=True)]), placement(a=5)) == {}
    # The same node under the IPv4 VPC CNI does draw (5 pods from a subnet of 3 free addresses).
    assert list(subnet_draws(state_from_objects(objects + [s.aws_node()]), placement(a=5))) == ["subnet-a"]


def test_a_node_missing_from_the_state_does_not_stop_the_nodes_after_it():
    state = state_from_objects(base._two_m5_xlarge(20))
    # "a-ghost" sorts before both real nodes.
    placed = SimpleNamespace(per_node={"a-ghost": SimpleNamespace(placed=3), A: SimpleNamespace(placed=30),
                                       B: SimpleNamespace(placed=1)}, placed=34)
    assert [n.node for n in subnet_draws(state, placed)["subnet-a"].nodes] == [A, B]


def test_branch_eni_pods_on_every_node_are_counted():
    # 12 + 13 branch-ENI pods: one subnet address each, 25 of a subnet with 20 free: 5 get none.
    state = state_from_objects(base._two_m5_xlarge(20))
    draw = subnet_draws(state, placement(a=12, b=13), branch=True)["subnet-a"]
    assert [(n.node, n.hard) for n in draw.nodes] == [(A, 12), (B, 13)]
    reasons, stuck = subnet_findings(state, placement(a=12, b=13), "Deployment default/web", branch=True)
    assert reasons[0].summary.endswith("has 20 free IPs, its new pods need 25") and stuck == 5


# ---- per-node arithmetic on a real state ---------------------------------------------------------

def _m5_large(ip_pods, enis, available, env=(), pods="29", prefix=False):
    """One m5.large (3 ENIs x 10 IPv4: 9 secondary each) running ``ip_pods`` IP pods; EC2 lists ``enis``."""
    node = base.m5_node(A, "us-east-1a", itype="m5.large", pods=pods)
    aws_node = s.aws_node(prefix_delegation=prefix)
    aws_node["spec"]["template"]["spec"]["containers"][0]["env"] += [{"name": k, "value": v} for k, v in env]
    return state_from_objects([node, aws_node, s.namespace("default"), *base.ip_pods(A, ip_pods),
                               base.subnet("subnet-a", "us-east-1a", "10.0.1.0/24", available),
                               base.instance(node, "subnet-a", enis)])


def test_pods_filling_a_node_that_already_holds_every_address_need_nothing_and_refill_nothing():
    # 20 pods, EC2 says 3 ENIs x 9 secondary IPs = 27 held (the type's maximum). 7 more pods: 27 IPs, all held;
    # the pool cannot grow past 27, so nothing is refilled either: a subnet with 0 free addresses is fine.
    state = _m5_large(20, [(9, 0), (9, 0), (9, 0)], 0)
    draw = subnet_draws(state, placement(a=7))["subnet-a"]
    assert [(n.hard, n.eni_addresses, n.soft) for n in draw.nodes] == [(0, 0, 0)]
    assert subnet_findings(state, placement(a=7), "Deployment default/web") == ([], 0)


def test_a_node_still_on_secondary_ips_under_prefix_delegation_draws_addresses_not_prefixes():
    # ENABLE_PREFIX_DELEGATION=true but EC2 shows 2 ENIs with 9 secondary IPs each and no /28 prefix:
    # the node runs secondary IPs (maxPods 29). 10 pods + 10 new = 20 IPs: 2 beyond the 18 held, and a
    # third ENI (20 > 2 x 9) whose primary address comes from the subnet too: 3 addresses.
    state = _m5_large(10, [(9, 0), (9, 0)], 2, prefix=True)
    draw = subnet_draws(state, placement(a=10))["subnet-a"]
    assert draw.prefix is False
    assert [(n.hard, n.eni_addresses) for n in draw.nodes] == [(2, 1)]
    reasons, stuck = subnet_findings(state, placement(a=10), "Deployment default/web")
    assert reasons[0].summary.endswith("has 2 free IPs, its new pods need 3") and reasons[0].severity == "deny"
    assert stuck == 1


def test_under_custom_networking_the_first_pod_eni_takes_a_subnet_address():
    # Custom networking: the primary ENI (device 0) stays in the node's subnet and carries no pods. EC2 shows
    # only that ENI: 5 new pods need 5 addresses of the ENIConfig's subnet plus the primary address of the
    # first pod ENI created there: 6.
    node = base.m5_node(A, "us-east-1a", itype="m5.large")
    eni_config = {"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
                  "metadata": {"name": "default"}, "spec": {"subnet": "subnet-pods", "securityGroups": ["sg-1"]}}
    state = state_from_objects([node, s.aws_node(custom_networking=True), s.namespace("default"), eni_config,
                                base.subnet("subnet-pods", "us-east-1a", "100.64.0.0/24", 5),
                                base.instance(node, "subnet-node", [(0, 0)])])
    draw = subnet_draws(state, placement(a=5))["subnet-pods"]
    assert [(n.hard, n.eni_addresses) for n in draw.nodes] == [(5, 1)]
    reasons, stuck = subnet_findings(state, placement(a=5), "Deployment default/web")
    assert reasons[0].summary.endswith("has 5 free IPs, its new pods need 6") and reasons[0].severity == "deny"


def test_branch_eni_draws_list_only_nodes_that_get_new_pods():
    state = state_from_objects(base._two_m5_xlarge(20))
    # B only has pods promised to an admitted workload: branch pods of the new workload go to A alone.
    draw = subnet_draws(state, placement(a=3), reserved_ips={B: 2}, branch=True)["subnet-a"]
    assert [(n.node, n.pods) for n in draw.nodes] == [(A, 3)]
    # A single pod is a draw too: one address.
    assert [(n.node, n.hard) for n in subnet_draws(state, placement(a=1), branch=True)["subnet-a"].nodes] == [(A, 1)]


def test_every_short_subnet_is_reported_with_prefix_delegation_too():
    # Two m5.large (PD, WARM_PREFIX_TARGET=1) with 10 pods on 2 prefixes each, each in its own subnet of 48 free
    # addresses (3 /28 blocks at most). 80 more pods on each: 90 IPs = 6 prefixes, 4 more: both subnets short.
    node_a, node_b = base.m5_node(A, "us-east-1a", "m5.large", pods="110"), base.m5_node(B, "us-east-1b", "m5.large",
                                                                                      pods="110")
    aws_node = s.aws_node(prefix_delegation=True)
    aws_node["spec"]["template"]["spec"]["containers"][0]["env"] += [{"name": "WARM_PREFIX_TARGET", "value": "1"}]
    state = state_from_objects([node_a, node_b, aws_node, s.namespace("default"), *base.ip_pods(A, 10),
                                *base.ip_pods(B, 10),
                                base.subnet("subnet-a", "us-east-1a", "10.0.1.0/24", 48),
                                base.subnet("subnet-b", "us-east-1b", "10.0.2.0/24", 48),
                                base.instance(node_a, "subnet-a", [(0, 2)]),
                                base.instance(node_b, "subnet-b", [(0, 2)])])
    reasons, stuck = subnet_findings(state, placement(a=80, b=80), "Deployment default/web")
    assert [r.summary.split(" (")[0].rsplit(" ", 1)[-1] for r in reasons] == ["subnet-a", "subnet-b"]
    assert [r.severity for r in reasons] == ["deny", "deny"] and stuck == 32


def test_a_prefix_refill_counts_sixteen_addresses_per_prefix():
    # Prefix cluster (WARM_PREFIX_TARGET=1): A runs 10 pods on 2 prefixes (32 IPs). 10 more pods fit them (20 IPs),
    # then only 12 IPs are free, less than one prefix: ipamd adds a third /28, 16 addresses of a subnet with 10.
    state = state_from_objects(base._prefix_cluster(10))
    reasons, stuck = subnet_findings(state, placement(a=10), "Deployment default/web")
    assert [r.severity for r in reasons] == ["warn"] and stuck == 0
    assert reasons[0].summary == ("Deployment default/web: subnet subnet-a (us-east-1a) runs dry after these pods: "
                                  "10 free IPs, warm pools refill to 16")
    assert ("The new pods fit (0 addresses), but ipamd then refills the nodes' warm pools (16 more)"
            in reasons[0].message)


def test_reserved_pods_that_attach_an_eni_are_not_counted_again_for_the_new_pods():
    # A holds 7 on one ENI (14 per ENI) with 5 pods. 10 reserved pods: 15 IPs, 8 more and a second ENI (prior).
    # 5 new pods: 20 IPs, 5 more addresses, still two ENIs: no new ENI address of their own.
    state = state_from_objects(base._two_m5_xlarge(20))
    draw = subnet_draws(state, placement(a=5), reserved_ips={A: 10})["subnet-a"]
    assert (draw.prior_hard, draw.prior_eni) == (8, 1)
    assert [(n.node, n.pods, n.hard, n.eni_addresses) for n in draw.nodes] == [(A, 5, 5, 0)]


def test_a_refill_warning_counts_the_new_enis_addresses():
    # _two_m5_xlarge(31): 30 pods on A need 28 addresses and 2 ENI addresses, WARM_IP_TARGET=2 refills 2.
    reasons, _ = subnet_findings(state_from_objects(base._two_m5_xlarge(31)), placement(a=30), "Deployment default/web")
    message = reasons[0].message
    assert "The new pods fit (30 addresses), but ipamd then refills the nodes' warm pools (2 more)" in message


def test_a_single_address_short_of_an_empty_subnet_is_denied():
    # EC2: ENIs with 9 + 8 secondary IPs, 17 pods. One more pod needs one more address on the second ENI (no new
    # ENI): 1 needed, the subnet has 0.
    state = _m5_large(17, [(9, 0), (8, 0)], 0)
    reasons, stuck = subnet_findings(state, placement(a=1), "Deployment default/web")
    assert reasons[0].summary.endswith("has 0 free IPs, its new pods need 1") and reasons[0].severity == "deny"
    assert "the subnet has 0 (AvailableIpAddressCount 0" in reasons[0].message and stuck == 1


def _many_nodes(count, available):
    names = [f"ip-10-0-1-{10 + i}.ec2.internal" for i in range(count)]
    nodes = [base.m5_node(name, "us-east-1a") for name in names]
    items = [*nodes, s.aws_node(), s.namespace("default"), base.subnet("subnet-a", "us-east-1a", "10.0.1.0/24",
                                                                      available)]
    items += [base.instance(n, "subnet-a", [(7, 0)]) for n in nodes]
    return names, state_from_objects(items)


def test_the_message_names_three_nodes_and_counts_the_rest():
    # Branch ENI pods: one address each, one per node, from a subnet with 2 free.
    for count, more in ((3, ""), (4, " and 1 more"), (5, " and 2 more")):
        names, state = _many_nodes(count, 2)
        placed = SimpleNamespace(per_node={n: SimpleNamespace(placed=1) for n in names}, placed=count)
        reasons, _ = subnet_findings(state, placed, "Deployment default/web", branch=True)
        assert f"{count} new pods on {names[0]}, {names[1]}, {names[2]}{more} need " in reasons[0].message


def _t3_small_pd(available, pods_running=10, prefixes=2):
    """A t3.small (Nitro; 3 ENIs x 4 IPv4: 3 /28 prefixes per ENI) with prefix delegation, WARM_PREFIX_TARGET=1."""
    node = base.m5_node(A, "us-east-1a", "t3.small", pods="110")
    aws_node = s.aws_node(prefix_delegation=True)
    aws_node["spec"]["template"]["spec"]["containers"][0]["env"] += [{"name": "WARM_PREFIX_TARGET", "value": "1"}]
    return state_from_objects([node, aws_node, s.namespace("default"), *base.ip_pods(A, pods_running),
                               base.subnet("subnet-a", "us-east-1a", "10.0.1.0/24", available),
                               base.instance(node, "subnet-a", [(0, prefixes)])])


def test_a_new_enis_address_comes_out_of_the_free_prefix_blocks():
    # 10 pods on 2 prefixes of the primary ENI. 50 more: 60 IPs = 4 prefixes, 2 more, and the 4th needs a second
    # ENI (3 per ENI): 1 address for it. 32 free addresses less that 1 leave 31: one /28 at most, 2 needed: certain.
    state = _t3_small_pd(32)
    draw = subnet_draws(state, placement(a=50))["subnet-a"]
    assert [(n.hard, n.eni_addresses) for n in draw.nodes] == [(2, 1)]
    reasons, stuck = subnet_findings(state, placement(a=50), "Deployment default/web")
    assert reasons[0].severity == "deny"
    assert "has room for at most 1 /28 prefixes, its new pods need 2" in reasons[0].summary
    assert stuck == 16                       # one block short: 16 pods


def test_prefixes_needed_exactly_equal_to_the_guaranteed_blocks_fit():
    # A /20: 256 blocks, 254 without AWS's reserved addresses. 3840 free of 4091 usable: 251 used addresses spoil
    # at most 251 blocks, 3 stay whole. 60 more pods on the prefix cluster need 3 more prefixes: they fit.
    state = state_from_objects(base._prefix_cluster(3840, "10.0.16.0/20"))
    assert subnet_findings(state, placement(a=60), "Deployment default/web") == ([], 0)
    # One block less for certain (3839 free): 2-239 whole blocks, 3 needed: a fragmentation warning.
    reasons, _ = subnet_findings(state_from_objects(base._prefix_cluster(3839, "10.0.16.0/20")), placement(a=60),
                                 "Deployment default/web")
    assert "may lack /28 blocks: needs 3, 2-239 free by fragmentation" in reasons[0].summary


def test_a_prefix_refill_warning_counts_sixteen_addresses_per_new_prefix():
    # m5.8xlarge (8 ENIs x 30 IPv4: 29 prefixes per ENI), maxPods 250, 10 pods on 2 prefixes, WARM_PREFIX_TARGET=1,
    # in an empty /25 (123 free, 6 whole blocks). 70 reserved pods: 80 IPs = 5 prefixes, 3 more: 48 addresses,
    # 75 left. 64 new pods: 144 IPs = 9 prefixes, 4 more (64 addresses, 4 of the 4 blocks 75 can hold); then
    # 0 IPs are free and ipamd adds a 10th prefix: 80 > 75, the subnet runs dry.
    node = base.m5_node(A, "us-east-1a", "m5.8xlarge", pods="250")
    aws_node = s.aws_node(prefix_delegation=True)
    aws_node["spec"]["template"]["spec"]["containers"][0]["env"] += [{"name": "WARM_PREFIX_TARGET", "value": "1"}]
    state = state_from_objects([node, aws_node, s.namespace("default"), *base.ip_pods(A, 10),
                                base.subnet("subnet-a", "us-east-1a", "10.0.1.0/25", 123),
                                base.instance(node, "subnet-a", [(0, 2)])])
    reasons, stuck = subnet_findings(state, placement(a=64), "Deployment default/web", reserved_ips={A: 70})
    assert [r.severity for r in reasons] == ["warn"] and stuck == 0
    assert "runs dry after these pods: 75 free IPs, warm pools refill to 80" in reasons[0].summary
    message = reasons[0].message
    assert "The new pods fit (64 addresses), but ipamd then refills the nodes' warm pools (16 more)" in message
