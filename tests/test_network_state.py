"""NetworkState, fed object by object the way ClusterState feeds it, and asked what ipamd would ask.

Oracles: the VPC CNI's documented custom-networking lookup order (ENIConfig name from the
CNINode ``CustomNetworking`` feature, then the ``vpc.amazonaws.com/externalEniConfig`` label,
then the ``ENI_CONFIG_ANNOTATION_DEF`` annotation, then the ``ENI_CONFIG_LABEL_DEF`` label,
else ``default``; eniconfig.GetNodeSpecificENIConfigName), DescribeInstances' field names and
their documented defaults (DeviceIndex / NetworkCardIndex 0 for the primary ENI, InterfaceType
``interface``), the VPC resource controller's ``vpc.amazonaws.com/pod-eni`` extended resource
(a node with a trunk ENI advertises it > 0), and Kubernetes pod phases (a Succeeded or Failed
pod has released its branch ENI).
"""

import dataclasses

import pytest

from webhook.engine.ipslots import CniConfig
from webhook.engine.network import (Interface, LabelSelector, NetworkState, Subnet, instance_id_of)

POD_ENI = "vpc.amazonaws.com/pod-eni"


def node(name, instance="i-0abc", labels=None, annotations=None, pod_eni=None):
    alloc = {"pods": "58"}
    if pod_eni is not None:
        alloc[POD_ENI] = str(pod_eni)
    return {"kind": "Node", "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"providerID": f"aws:///us-east-1a/{instance}"}, "status": {"allocatable": alloc}}


def ec2_instance(instance_id, enis):
    return {"kind": "EC2Instance", "metadata": {"name": instance_id},
            "spec": {"subnetId": "subnet-a", "availabilityZone": "us-east-1a", "networkInterfaces": enis}}


def ec2_subnet(name, available):
    return {"kind": "EC2Subnet", "metadata": {"name": name},
            "spec": {"availabilityZone": "us-east-1a", "cidrBlock": "10.0.1.0/24",
                     "availableIpAddressCount": available}}


def branch_pod(name, node_name, phase="Running", by="limits"):
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node_name, "containers": [{"name": "app", "resources": {by: {POD_ENI: "1"}}}]},
            "status": {"phase": phase}}


def test_a_non_aws_provider_id_never_yields_an_instance_id_even_if_it_looks_like_one():
    assert instance_id_of("kwok://i-0123") is None
    assert instance_id_of("gce://project/zone/i-0123") is None


def test_a_malformed_cidr_has_no_size():
    assert Subnet("subnet-1", None, "10.0.1.0/24/7", 0).size is None


def _fed(*objects):
    net = NetworkState()
    for obj in objects:
        if obj["kind"] == "Node":
            net.note_node(obj)
        else:
            net.apply(obj)
    return net


SGP = {"kind": "SecurityGroupPolicy", "metadata": {"name": "sgp", "namespace": "default"},
       "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "securityGroups": {"groupIds": ["sg-1"]}}}
EC2_INSTANCE = {"kind": "EC2Instance", "metadata": {"name": "i-1"},
                "spec": {"subnetId": "subnet-1", "networkInterfaces": [{"id": "eni-1", "secondaryIPv4": 3}]}}


# The records as the state hands them out (built by its own parsing, so the module's code runs).
@pytest.mark.parametrize("make", [
    lambda: _fed(ec2_subnet("subnet-1", 200)).subnets["subnet-1"],
    lambda: _fed(EC2_INSTANCE).instances["i-1"].interfaces[0],
    lambda: _fed(EC2_INSTANCE).instances["i-1"],
    lambda: _fed(node("n1")).nodes["n1"],
    lambda: LabelSelector.parse({"matchLabels": {"app": "web"}}),
    lambda: _fed(SGP).policies[("default", "sgp")],
], ids=["Subnet", "Interface", "Instance", "NodeNet", "LabelSelector", "SecurityGroupPolicy"])
def test_network_records_are_immutable_values(make):
    # The live state is read by concurrent reviews: a record handed out must not be mutable.
    # Built inside the test, so a re-imported module's classes are the ones checked.
    record = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.id = "changed"
    assert hash(record) == hash(dataclasses.replace(record))


def test_described_interfaces_keep_device_card_type_and_counts():
    net = NetworkState()
    net.apply(ec2_instance("i-1", [
        {"id": "eni-0", "subnetId": "subnet-a"},                                   # fields EC2 leaves out: defaults
        {"id": "eni-1", "subnetId": "subnet-a", "deviceIndex": 1, "networkCardIndex": 1,
         "interfaceType": "trunk", "secondaryIPv4": 5, "ipv4Prefixes": 2},
    ]))
    first, second = net.instances["i-1"].interfaces
    assert first == Interface("eni-0", "subnet-a", 0, 0, "interface", 0, 0)
    assert second == Interface("eni-1", "subnet-a", 1, 1, "trunk", 5, 2)
    assert net.instances["i-1"].has_trunk is True
    net.apply(ec2_instance("i-2", [{"id": "eni-9", "interfaceType": "efa"}]))
    assert net.instances["i-2"].has_trunk is False


def test_every_kind_is_removed_by_its_own_key_and_only_that():
    net = NetworkState()
    net.apply({"kind": "ENIConfig", "metadata": {"name": "us-east-1a"}, "spec": {"subnet": "subnet-a"}})
    net.apply({"kind": "SecurityGroupPolicy", "metadata": {"name": "sgp", "namespace": "shop"},
               "spec": {"securityGroups": {"groupIds": ["sg-1"]}}})
    net.apply({"kind": "CNINode", "metadata": {"name": "n1"},
               "spec": {"features": [{"name": "SecurityGroupsForPods"}]}})
    net.apply({"kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "shop", "labels": {"a": "b"}}})
    net.apply(ec2_subnet("subnet-a", 100))
    net.apply(ec2_instance("i-1", []))
    assert net.service_accounts_known is True
    removals = [("ENIConfig", "", "us-east-1a", "eni_configs"), ("SecurityGroupPolicy", "shop", "sgp", "policies"),
                ("CNINode", "", "n1", "cni_nodes"), ("ServiceAccount", "shop", "sa", "service_accounts"),
                ("EC2Subnet", "", "subnet-a", "subnets"), ("EC2Instance", "", "i-1", "instances")]
    for index, (kind, namespace, name, attribute) in enumerate(removals):
        net.remove(kind, namespace, name)
        assert getattr(net, attribute) == {}, kind
        for _k, _ns, _n, other in removals[index + 1:]:
            assert len(getattr(net, other)) == 1, (kind, other)


def test_replace_aws_swaps_everything_and_a_failed_lookup_keeps_the_last_figures():
    net = NetworkState()
    net.apply(ec2_subnet("subnet-old", 10))
    net.replace_aws([ec2_subnet("subnet-a", 100)], [ec2_instance("i-1", [])], "2026-11-29T15:00:00Z", None)
    assert set(net.subnets) == {"subnet-a"} and set(net.instances) == {"i-1"}
    assert (net.aws_observed_at, net.aws_error) == ("2026-11-29T15:00:00Z", None)
    net.replace_aws([], [], "2026-11-29T16:00:00Z", "AccessDenied")
    assert set(net.subnets) == {"subnet-a"} and set(net.instances) == {"i-1"}
    assert (net.aws_observed_at, net.aws_error) == ("2026-11-29T15:00:00Z", "AccessDenied")


def test_a_node_keeps_only_its_eniconfig_annotations_and_its_os():
    net = NetworkState()
    net.note_node(node("n1", annotations={"k8s.amazonaws.com/eniConfig": "zone-a", "other": "x"},
                       labels={"kubernetes.io/os": "windows"}))
    assert net.nodes["n1"].eni_annotations == (("k8s.amazonaws.com/eniConfig", "zone-a"),)
    assert net.nodes["n1"].windows is True
    assert net.nodes["n1"].instance_id == "i-0abc"


def test_branch_eni_pods_are_counted_per_node_and_released_when_they_end():
    net = NetworkState()
    net.note_pod(("default", "p1"), branch_pod("p1", "n1"))
    net.note_pod(("default", "p2"), branch_pod("p2", "n1", by="requests"))
    assert net.branch_by_node == {"n1": 2}
    net.note_pod(("default", "p1"), branch_pod("p1", "n1"))          # an update: still one ENI, not two
    assert net.branch_by_node == {"n1": 2}
    net.note_pod(("default", "p1"), branch_pod("p1", "n1", phase="Succeeded"))
    assert net.branch_by_node == {"n1": 1} and ("default", "p1") not in net.branch_pods
    net.note_pod(("default", "p2"), None)                              # deleted
    assert dict(net.branch_by_node) == {} and net.branch_pods == {}
    # A pod not yet scheduled holds nothing; a pod without the resource holds no branch ENI.
    net.note_pod(("default", "p3"), {**branch_pod("p3", "n1"), "spec": {"containers": [{"name": "a"}]}})
    net.note_pod(("default", "p4"), {**branch_pod("p4", ""), "spec": {
        "containers": [{"name": "a", "resources": {"limits": {POD_ENI: "1"}}}]}})
    assert dict(net.branch_by_node) == {} and net.branch_pods == {}


def test_instance_of_needs_a_known_node_with_an_aws_instance():
    net = NetworkState()
    net.apply(ec2_instance("i-0abc", []))
    assert net.instance_of("unknown") is None
    net.note_node({**node("kwok-1"), "spec": {"providerID": "kwok://kwok-1"}})
    assert net.instance_of("kwok-1") is None
    net.note_node(node("n1"))
    assert net.instance_of("n1") == net.instances["i-0abc"]


def test_eniconfig_name_follows_ipamd_lookup_order():
    cni = CniConfig(True, custom_networking=True)
    net = NetworkState()
    net.note_node(node("n1", annotations={"k8s.amazonaws.com/eniConfig": "from-annotation"}))
    labels = {"k8s.amazonaws.com/eniConfig": "from-label", "vpc.amazonaws.com/externalEniConfig": "external"}
    net.cni_nodes["n1"] = {"CustomNetworking": "from-cninode"}
    assert net.eni_config_name("n1", labels, cni) == "from-cninode"
    net.cni_nodes["n1"] = {}
    assert net.eni_config_name("n1", labels, cni) == "external"
    del labels["vpc.amazonaws.com/externalEniConfig"]
    assert net.eni_config_name("n1", labels, cni) == "from-annotation"
    # ENI_CONFIG_ANNOTATION_DEF names another annotation: this one no longer counts.
    other = CniConfig(True, custom_networking=True, eni_config_annotation="example.com/eni")
    assert net.eni_config_name("n1", labels, other) == "from-label"
    assert net.eni_config_name("n1", {}, other) == "default"
    assert net.eni_config_name("unknown", {}, cni) == "default"


def test_trunk_eni_from_the_extended_resource_then_cninode_then_ec2():
    net = NetworkState()
    net.apply(ec2_instance("i-0abc", [{"id": "eni-t", "interfaceType": "trunk", "deviceIndex": 1}]))
    net.apply(ec2_instance("i-0def", [{"id": "eni-0"}]))
    net.note_node(node("one", pod_eni=1))
    net.note_node(node("zero", instance="i-0abc", pod_eni=0))           # the node object wins over EC2
    net.note_node(node("ec2", instance="i-0abc"))
    net.note_node(node("plain", instance="i-0def"))
    net.note_node(node("unknown", instance="i-0zzz"))
    net.cni_nodes["sgp"] = {"SecurityGroupsForPods": ""}
    assert net.has_trunk("one") is True
    assert net.has_trunk("zero") is False
    assert net.has_trunk("ec2") is True
    assert net.has_trunk("plain") is False
    assert net.has_trunk("sgp") is True
    assert net.has_trunk("unknown") is None
