"""Per-node truth: MAX_ENI, Windows nodes, trunk ENIs, nodes still on secondary IPs, DaemonSet pods owed.

Numbers from the VPC CNI's rules: m5.large has 3 ENIs x 10 IPv4 (9 pod IPs each, 27 slots).
"""

from tests.test_subnets import instance
from tests import synthetic as s
from webhook.aws import instance_object
from webhook.engine.evaluate import evaluate
from webhook.engine.node_truth import laggard_fix
from webhook.state.snapshot import state_from_objects

A = "ip-10-0-1-17.ec2.internal"
M5_LARGE = {"cpu": "1930m", "memory": "7Gi", "ephemeral-storage": "76Gi", "pods": "29"}


def aws_node(**env):
    ds = s.aws_node(prefix_delegation=env.pop("prefix", False))
    ds["spec"]["template"]["spec"]["containers"][0]["env"] += [{"name": k, "value": v} for k, v in env.items()]
    return ds


def slots(*items):
    state = state_from_objects(list(items))
    node = next(iter(state.nodes.values()))
    return state.ip_capacity(node).slots, state.ip_capacity(node).mode


def test_max_eni_caps_the_enis_pods_use():
    node = s.node(A, "m5.large", allocatable=M5_LARGE)
    assert slots(node, aws_node()) == (27, "secondary-ip")
    assert slots(node, aws_node(MAX_ENI="2")) == (18, "secondary-ip+max-eni-2")
    assert slots(node, aws_node(MAX_ENI="0")) == (27, "secondary-ip")          # ipamd ignores values below 1


def test_windows_nodes_use_their_advertised_private_ipv4_addresses():
    node = s.node(A, "m5.large", allocatable={**M5_LARGE, "vpc.amazonaws.com/PrivateIPv4Address": "9"},
                  labels={"kubernetes.io/os": "windows"})
    assert slots(node, aws_node()) == (9, "windows")


def test_cninode_security_groups_feature_means_a_trunk_eni():
    node = s.node(A, "m5.large", allocatable=M5_LARGE)
    cninode = {"apiVersion": "vpcresources.k8s.aws/v1alpha1", "kind": "CNINode", "metadata": {"name": A},
               "spec": {"features": [{"name": "SecurityGroupsForPods"}]}}
    assert slots(node, aws_node(ENABLE_POD_ENI="true"), cninode) == (18, "secondary-ip+trunk-eni")
    assert slots(node, aws_node(), cninode) == (27, "secondary-ip")           # ENABLE_POD_ENI off: no trunk


def test_nodes_still_on_secondary_ips_under_prefix_delegation():
    fresh = s.node(A, "m5.large", allocatable={**M5_LARGE, "pods": "110"})
    assert slots(fresh, aws_node(prefix=True)) == (27 * 16, "prefix-delegation")
    old = s.node(A, "m5.large", allocatable=M5_LARGE)                        # maxPods 29: the secondary-IP figure
    assert slots(old, aws_node(prefix=True)) == (27, "secondary-ip (launched before prefix delegation)")
    # EC2 says it outright: secondary IPs on its ENIs and no /28 prefix, whatever maxPods says.
    described = instance(fresh, "subnet-a", [(9, 0)])
    assert slots(fresh, aws_node(prefix=True), described)[0] == 27
    verdict = evaluate(state_from_objects([old, aws_node(prefix=True), s.namespace("default")]),
                       s.small_web("web", 30))
    assert "started before prefix delegation was enabled" in verdict.message and "replace them" in verdict.message


def test_a_node_that_just_joined_owes_its_daemonset_pods():
    log_shipper = s.daemonset("fluent-bit", spec=s.pod_spec([s.container("fluent-bit", requests={"cpu": "100m"})]))
    node = s.node(A, "m5.large", allocatable=M5_LARGE)
    base = [node, aws_node(), s.daemonset("kube-proxy"), log_shipper, s.namespace("default")]
    # 27 IP slots, 29 pods: aws-node and kube-proxy (host network) and fluent-bit (an IP) are still to come.
    verdict = evaluate(state_from_objects(base), s.small_web("web", 27))
    assert (verdict.schedulable, verdict.pending) == (26, 1) and verdict.codes == ["POD_IP_EXHAUSTED"]
    # Once its pods run, they are counted as pods, not twice.
    running = [s.pod(f"{name}-x", "kube-system", A, s.pod_spec([s.container(name, requests={"cpu": "10m"})],
                                                               host_network=host), owner=("apps/v1", "DaemonSet", name))
               for name, host in (("aws-node", True), ("kube-proxy", True), ("fluent-bit", False))]
    assert evaluate(state_from_objects(base + running), s.small_web("web", 26)).verdict == "allow"
    assert evaluate(state_from_objects(base + running), s.small_web("web", 27)).pending == 1
    # A DaemonSet that does not select the node owes it nothing.
    gpu_only = s.daemonset("dcgm", spec=s.pod_spec([s.container("dcgm")], nodeSelector={"gpu": "true"}))
    assert evaluate(state_from_objects(base + running + [gpu_only]), s.small_web("web", 26)).verdict == "allow"


def test_a_windows_node_that_advertises_no_private_ipv4_addresses_keeps_its_types_figure():
    # No vpc.amazonaws.com/PrivateIPv4Address yet (the VPC resource controller has not set it up): nothing
    # node-specific is known, the type's secondary-IP figure stands (m5.large: 3 x 9 = 27).
    node = s.node(A, "m5.large", allocatable=M5_LARGE, labels={"kubernetes.io/os": "windows"})
    assert slots(node, aws_node()) == (27, "secondary-ip")


def test_ec2_decides_by_the_pod_enis_of_card_zero_only():
    # Prefix delegation on, a node whose maxPods (110) is the prefix figure. Its primary ENI (card 0) holds no
    # address yet; an ENI of network card 1 holds 9 secondary IPs, which ipamd's pod pool never uses: the node
    # is not one still running secondary IPs.
    fresh = s.node(A, "m5.large", allocatable={**M5_LARGE, "pods": "110"})
    described = instance_object({
        "InstanceId": fresh["spec"]["providerID"].rsplit("/", 1)[-1], "SubnetId": "subnet-a",
        "InstanceType": "m5.large", "Placement": {"AvailabilityZone": "us-east-1a"}, "State": {"Name": "running"},
        "NetworkInterfaces": [
            {"NetworkInterfaceId": "eni-0", "SubnetId": "subnet-a", "InterfaceType": "interface",
             "Attachment": {"DeviceIndex": 0, "NetworkCardIndex": 0}, "PrivateIpAddresses": [{"Primary": True}]},
            {"NetworkInterfaceId": "eni-1", "SubnetId": "subnet-a", "InterfaceType": "interface",
             "Attachment": {"DeviceIndex": 1, "NetworkCardIndex": 1},
             "PrivateIpAddresses": [{"Primary": True}] + [{"Primary": False}] * 9}]})
    assert slots(fresh, aws_node(prefix=True), described) == (27 * 16, "prefix-delegation")
    # Secondary IPs and /28 prefixes side by side on card 0: prefixes are in use, the node is on prefixes.
    both = instance(fresh, "subnet-a", [(9, 1)])
    assert slots(fresh, aws_node(prefix=True), both) == (27 * 16, "prefix-delegation")


def test_the_laggard_fix_names_three_nodes_and_counts_the_rest():
    assert laggard_fix(["n1"]).startswith("Node n1 started before prefix delegation was enabled and still run")
    assert laggard_fix(["n1", "n2", "n3"]).startswith("Nodes n1, n2, n3 started before")
    assert laggard_fix(["n1", "n2", "n3", "n4"]).startswith("Nodes n1, n2, n3 and 1 more started before")
    assert laggard_fix(["n1", "n2", "n3", "n4", "n5"]).startswith("Nodes n1, n2, n3 and 2 more started before")


def test_an_ipv6_cluster_has_no_ipv4_slot_rule_whatever_the_node_says():
    # IPv6 (which the VPC CNI runs with prefix delegation): pods take IPv6 addresses, no IPv4 slot limit applies,
    # not even on a node whose maxPods (29) is the IPv4 secondary-IP figure or that carries a trunk ENI.
    ipv6 = s.aws_node(prefix_delegation=True, ipv6=True)
    ipv6["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "ENABLE_POD_ENI", "value": "true"})
    old = s.node(A, "m5.large", allocatable=M5_LARGE)
    assert slots(old, ipv6) == (None, "ipv6")
    trunk = s.node(A, "m5.large", allocatable={**M5_LARGE, "pods": "110", "vpc.amazonaws.com/pod-eni": "9"})
    assert slots(trunk, ipv6) == (None, "ipv6")
