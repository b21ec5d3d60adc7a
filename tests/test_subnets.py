"""Subnet room (SUBNET_IP_EXHAUSTED) on hand-worked examples in the shape of AWS's docs.

Numbers per node come from the VPC CNI's own rules (pkg/ipamd/ipamd.go): a new pod needs an
address the node does not hold yet only beyond its warm pool, one more address per ENI
attached for it, and with prefix delegation whole /28 prefixes. EC2 figures enter as the
data objects ``webhook.aws`` builds from DescribeSubnets / DescribeInstances answers.
"""

from tests import synthetic as s
from webhook.aws import instance_object, subnet_object
from webhook.engine.evaluate import evaluate
from webhook.engine.ipslots import CniConfig
from webhook.engine.subnets import held_addresses
from webhook.state.snapshot import state_from_objects

A, B = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"


def subnet(subnet_id, zone, cidr, available):
    return subnet_object({"SubnetId": subnet_id, "AvailabilityZone": zone, "CidrBlock": cidr,
                          "AvailableIpAddressCount": available, "VpcId": "vpc-1"}, "2026-11-29T15:00:00Z")


def instance(node_obj, subnet_id, enis):
    """EC2's view of a node: ``enis`` is a list of (secondary IPs, /28 prefixes) per ENI."""
    instance_id = node_obj["spec"]["providerID"].rsplit("/", 1)[-1]
    return instance_object({
        "InstanceId": instance_id, "SubnetId": subnet_id, "InstanceType": "m5.xlarge",
        "Placement": {"AvailabilityZone": "us-east-1a"}, "State": {"Name": "running"},
        "NetworkInterfaces": [{
            "NetworkInterfaceId": f"eni-{instance_id[2:8]}{i}", "SubnetId": subnet_id, "InterfaceType": "interface",
            "Attachment": {"DeviceIndex": i, "NetworkCardIndex": 0},
            "PrivateIpAddresses": [{"Primary": True}] + [{"Primary": False}] * ips,
            "Ipv4Prefixes": [{"Ipv4Prefix": f"10.0.{i}.{16 * p}/28"} for p in range(prefixes)]}
            for i, (ips, prefixes) in enumerate(enis)]})


def ip_pods(node_name, count, prefix="addon"):
    return [s.pod(f"{prefix}-{node_name[:9]}-{i}", "kube-system", node_name,
                  s.pod_spec([s.container("addon", requests={"cpu": "10m"})])) for i in range(count)]


def m5_node(name, zone, itype="m5.xlarge", pods="58", labels=None):
    alloc = {"cpu": "3920m", "memory": "15Gi", "ephemeral-storage": "76Gi", "pods": pods}
    return s.node(name, itype, zone, allocatable=alloc, labels=labels)


# ---- the warm pool, as ipamd sizes it -----------------------------------------------------------

def test_warm_eni_target_keeps_a_whole_free_eni():
    # m5.xlarge: 14 secondary IPs per ENI. 5 pods on the primary ENI leave 9 free < 14: a second ENI.
    held = held_addresses(5, CniConfig(True), per_eni=14, max_enis=4, max_pods=58, prefix=False)
    assert (held.units, held.enis) == (28, 2)
    # 15 pods: two ENIs leave 13 free < 14, so a third: 42.
    assert held_addresses(15, CniConfig(True), 14, 4, 58, False).units == 42


def test_warm_ip_and_minimum_ip_targets_override_the_eni_target():
    cni = CniConfig(True, warm_ip_target=2, minimum_ip_target=10)
    assert held_addresses(5, cni, 14, 4, 58, False).units == 10          # MINIMUM_IP_TARGET wins
    assert held_addresses(20, cni, 14, 4, 58, False).units == 22         # 20 used + 2 warm


def test_warm_prefix_target_keeps_whole_free_prefixes():
    cni = CniConfig(True, prefix_delegation=True, warm_prefix_target=1)
    assert held_addresses(10, cni, 9, 3, 110, True).units == 2           # 1 prefix in use + 1 free
    assert held_addresses(16, cni, 9, 3, 110, True).units == 2           # 16 exactly fill one: one free
    # WARM_PREFIX_TARGET unset (0): one more prefix only when none is free.
    assert held_addresses(16, CniConfig(True, prefix_delegation=True), 9, 3, 110, True).units == 2
    assert held_addresses(10, CniConfig(True, prefix_delegation=True), 9, 3, 110, True).units == 1


# ---- a /24 subnet with 20 free addresses and a 30-replica Deployment ---------------------------

def _two_m5_xlarge(available, warm_ip="2"):
    """Two m5.xlarge in subnet-a (10.0.1.0/24), WARM_IP_TARGET=2: each runs 5 IP pods and holds 7 IPs."""
    node_a, node_b = m5_node(A, "us-east-1a"), m5_node(B, "us-east-1a")
    aws_node = s.aws_node()
    aws_node["spec"]["template"]["spec"]["containers"][0]["env"] += [{"name": "WARM_IP_TARGET", "value": warm_ip}]
    return [node_a, node_b, aws_node, s.namespace("default"), *ip_pods(A, 5), *ip_pods(B, 5),
            subnet("subnet-a", "us-east-1a", "10.0.1.0/24", available),
            instance(node_a, "subnet-a", [(7, 0)]), instance(node_b, "subnet-a", [(7, 0)])]


def test_subnet_with_20_free_addresses_refuses_a_30_replica_deployment():
    state = state_from_objects(_two_m5_xlarge(20))
    verdict = evaluate(state, s.small_web("web", 30))
    # The nodes have 51 IP slots each: all 30 pods fit the nodes. Placed on node A (roomiest first):
    # 5 + 30 = 35 IPs, A holds 7: 28 more addresses, and 35 IPs need 3 ENIs of 14: 2 new ENIs, 2 more.
    assert verdict.codes == ["SUBNET_IP_EXHAUSTED"] and verdict.verdict == "deny"
    reason = verdict.reasons[0]
    assert reason.summary == ("Deployment default/web: subnet subnet-a (us-east-1a) has 20 free IPs, "
                              "its new pods need 30")
    assert "28 addresses beyond what the nodes hold and 2 for new ENIs" in reason.message
    assert "About 10 pods would stay in ContainerCreating" in reason.message
    assert verdict.pending == 10 and verdict.schedulable == 30


def test_the_same_deployment_fits_a_subnet_with_room_and_warns_about_the_refill():
    fits = evaluate(state_from_objects(_two_m5_xlarge(200)), s.small_web("web", 30))
    assert fits.verdict == "allow" and fits.codes == []
    # 30 addresses for the pods, then ipamd refills WARM_IP_TARGET=2: 32 > 31 free.
    tight = evaluate(state_from_objects(_two_m5_xlarge(31)), s.small_web("web", 30))
    assert tight.verdict == "warn" and tight.codes == ["SUBNET_IP_EXHAUSTED"]
    assert "runs dry after these pods: 31 free IPs, warm pools refill to 32" in tight.reasons[0].summary


def test_admitted_workloads_spend_the_subnet():
    state = state_from_objects(_two_m5_xlarge(45))
    first = evaluate(state, s.small_web("web", 30))
    assert first.verdict == "allow"          # 30 addresses + a refill of 2, of 45
    state.reserve(("Deployment", "default", "web"), first.reservation(), first.pod_requests, True)
    second = evaluate(state, s.small_web("api", 30))
    # The first Deployment's 30 addresses are spoken for: 15 left; node B needs 30 for the second.
    assert second.verdict == "deny"
    assert second.reasons[0].summary.endswith("has 15 free IPs, its new pods need 30")


def test_no_subnet_figures_means_no_subnet_finding():
    items = [i for i in _two_m5_xlarge(20) if i["kind"] != "EC2Subnet"]
    assert evaluate(state_from_objects(items), s.small_web("web", 30)).codes == []


def test_a_failed_aws_lookup_is_a_warning_never_a_deny():
    items = _two_m5_xlarge(20) + [
        {
            "apiVersion": "aws.capacity-webhook.io/v1",
            "kind": "EC2Lookup",
            "metadata": {"name": "last"},
            "spec": {"error": "AccessDenied: ec2:DescribeSubnets"},
        }
    ]
    verdict = evaluate(state_from_objects(items), s.small_web("web", 2))
    assert verdict.verdict == "warn" and verdict.codes == ["SUBNET_DATA_UNAVAILABLE"]
    assert "AccessDenied" in verdict.message


# ---- prefix delegation: 3 free /28 blocks -----------------------------------------------------

def _prefix_cluster(available, cidr="10.0.1.0/24"):
    """One m5.large (Nitro, 3 ENIs x 9 prefixes) with prefix delegation, WARM_PREFIX_TARGET=1:
    10 IP pods and 2 prefixes (32 IPs) on its primary ENI."""
    node_a = m5_node(A, "us-east-1a", "m5.large", pods="110")
    aws_node = s.aws_node(prefix_delegation=True)
    aws_node["spec"]["template"]["spec"]["containers"][0]["env"] += [{"name": "WARM_PREFIX_TARGET", "value": "1"}]
    return [node_a, aws_node, s.namespace("default"), *ip_pods(A, 10),
            subnet("subnet-a", "us-east-1a", cidr, available), instance(node_a, "subnet-a", [(0, 2)])]


def test_prefix_delegation_with_three_free_blocks_denies_four():
    # 48 free addresses are at most 3 /28 blocks. 80 more pods: 90 IPs = 6 prefixes, the node holds 2: 4 more.
    verdict = evaluate(state_from_objects(_prefix_cluster(48)), s.small_web("web", 80))
    assert verdict.verdict == "deny" and verdict.codes == ["SUBNET_IP_EXHAUSTED"]
    assert verdict.reasons[0].summary == ("Deployment default/web: subnet subnet-a (us-east-1a) has room for at most "
                                          "3 /28 prefixes, its new pods need 4")


def test_prefix_delegation_three_blocks_needed_is_uncertain_by_fragmentation():
    # 60 more pods: 70 IPs = 5 prefixes, 3 more. 48 free addresses may be 3 aligned blocks or none
    # (203 of the /24's 251 usable addresses are taken, enough to touch all 14 inner blocks).
    verdict = evaluate(state_from_objects(_prefix_cluster(48)), s.small_web("web", 60))
    assert verdict.verdict == "warn" and verdict.codes == ["SUBNET_IP_EXHAUSTED"]
    assert "may lack /28 blocks: needs 3, 0-3 free by fragmentation" in verdict.reasons[0].summary


def test_prefix_delegation_in_a_nearly_empty_subnet_is_certain_to_fit():
    # A /20 (254 inner blocks) with 4,000 free: 91 used addresses spoil at most 91 blocks, 163 stay whole.
    verdict = evaluate(state_from_objects(_prefix_cluster(4000, "10.0.16.0/20")), s.small_web("web", 60))
    assert verdict.verdict == "allow" and verdict.codes == []


# ---- custom networking across two zones ----------------------------------------------------------

def _custom_networking(available_b):
    """Two m5.xlarge in us-east-1a and us-east-1b; pods use the zone-named ENIConfigs' subnets."""
    node_a, node_b = m5_node(A, "us-east-1a"), m5_node(B, "us-east-1b")
    aws_node = s.aws_node(custom_networking=True)
    aws_node["spec"]["template"]["spec"]["containers"][0]["env"] += [
        {"name": "ENI_CONFIG_LABEL_DEF", "value": "topology.kubernetes.io/zone"}]
    eni_configs = [{"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig", "metadata": {"name": zone},
                    "spec": {"subnet": subnet_id, "securityGroups": ["sg-1"]}}
                   for zone, subnet_id in (("us-east-1a", "subnet-pods-a"), ("us-east-1b", "subnet-pods-b"))]
    return [node_a, node_b, aws_node, s.namespace("default"), *ip_pods(A, 5), *ip_pods(B, 4), *eni_configs,
            subnet("subnet-pods-a", "us-east-1a", "100.64.0.0/24", 100),
            subnet("subnet-pods-b", "us-east-1b", "100.64.1.0/24", available_b)]


def test_custom_networking_uses_each_zones_eniconfig_subnet():
    # Custom networking: 3 pod ENIs of 14 on m5.xlarge. Node B runs 4 pods: WARM_ENI_TARGET=1 holds
    # 2 ENIs (28 IPs). All 30 pods go to B (38 free slots, the roomiest): 34 IPs, 6 more, plus a third ENI.
    verdict = evaluate(state_from_objects(_custom_networking(5)), s.small_web("web", 30))
    assert verdict.codes == ["SUBNET_IP_EXHAUSTED"] and verdict.verdict == "warn"   # holdings estimated
    reason = verdict.reasons[0]
    assert reason.summary == ("Deployment default/web: subnet subnet-pods-b (us-east-1b) has 5 free IPs, "
                              "its new pods need 7")
    assert "estimated from the aws-node settings" in reason.message and "subnet-pods-a" not in reason.message
    assert evaluate(state_from_objects(_custom_networking(100)), s.small_web("web", 30)).codes == []


def test_eniconfig_named_by_node_label_and_cninode_feature():
    items = _custom_networking(5)
    env = items[2]["spec"]["template"]["spec"]["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "ENI_CONFIG_LABEL_DEF"]  # default: the k8s.amazonaws.com/eniConfig label
    items[1]["metadata"]["labels"]["k8s.amazonaws.com/eniConfig"] = "us-east-1a"    # B uses zone a's subnet
    verdict = evaluate(state_from_objects(items), s.small_web("web", 30))
    assert verdict.codes == []
    cninode = {"apiVersion": "vpcresources.k8s.aws/v1alpha1", "kind": "CNINode", "metadata": {"name": B},
               "spec": {"features": [{"name": "CustomNetworking", "value": "us-east-1b"}]}}
    assert "subnet-pods-b" in evaluate(state_from_objects(items + [cninode]), s.small_web("web", 30)).message
