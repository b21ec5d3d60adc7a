"""What the aws-node DaemonSet says about pod IPs, and the IP arithmetic that follows.

Oracles: amazon-vpc-cni-k8s (pkg/ipamd/ipamd.go and its README): settings are env vars of
the ``aws-node`` container; WARM_IP_TARGET / MINIMUM_IP_TARGET of 0 mean "not set"
(noWarmIPTarget / noMinimumIPTarget), MAX_ENI below 1 is ignored, an integer that does not
parse keeps the default. Pod slots per node are ENIs x (IPv4 per ENI - 1), x16 under prefix
delegation on Nitro, one ENI fewer under custom networking or for the trunk ENI of
security groups for pods. max-pods-calculator.sh caps the prefix-delegation figure at 110
(250 above 30 vCPUs).
"""

import pytest

from tests import synthetic as s
from webhook.engine.instance_types import InstanceLimits
from webhook.engine.ipslots import CniConfig, IpCapacity, ip_slots, node_ip_capacity, pod_enis, recommended_max_pods


def aws_node(containers):
    ds = s.daemonset("aws-node")
    ds["spec"]["template"]["spec"]["containers"] = containers
    return ds


def container(name, **env):
    return {"name": name, "image": f"{name}:1", "env": [{"name": k, "value": v} for k, v in env.items()]}


def test_the_settings_come_from_the_aws_node_container_whatever_its_position():
    agent = container("aws-eks-nodeagent", ENABLE_PREFIX_DELEGATION="false", WARM_ENI_TARGET="3")
    node = container("aws-node", ENABLE_PREFIX_DELEGATION="true", WARM_ENI_TARGET="0")
    for order in ([agent, node], [node, agent]):
        cni = CniConfig.from_daemonset(aws_node(order))
        assert (cni.aws_vpc_cni, cni.prefix_delegation, cni.warm_eni_target) == (True, True, 0)


def test_another_containers_settings_never_leak_into_ipamds():
    # The node agent before aws-node sets MAX_ENI and ENABLE_POD_ENI; aws-node sets neither: ipamd has neither.
    agent = container("aws-eks-nodeagent", MAX_ENI="1", ENABLE_POD_ENI="true")
    cni = CniConfig.from_daemonset(aws_node([agent, container("aws-node", ENABLE_PREFIX_DELEGATION="true")]))
    assert (cni.prefix_delegation, cni.max_eni, cni.pod_eni) == (True, None, False)
    # No container named aws-node: the first container's settings, and only its.
    renamed = aws_node([container("vpc-cni", ENABLE_PREFIX_DELEGATION="true"), container("sidecar", MAX_ENI="2")])
    assert (CniConfig.from_daemonset(renamed).prefix_delegation, CniConfig.from_daemonset(renamed).max_eni) == \
        (True, None)
    assert CniConfig.from_daemonset(aws_node([])) == CniConfig(aws_vpc_cni=True)


def test_env_from_a_reference_is_not_a_value():
    ds = aws_node([container("aws-node")])
    ds["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "ENABLE_PREFIX_DELEGATION", "valueFrom": {"configMapKeyRef": {"name": "cni", "key": "pd"}}}]
    assert CniConfig.from_daemonset(ds).prefix_delegation is False


@pytest.mark.parametrize("env,expected", [
    ({}, dict(warm_eni_target=1, warm_ip_target=None, minimum_ip_target=None, warm_prefix_target=None, max_eni=None)),
    ({"WARM_IP_TARGET": "0", "MINIMUM_IP_TARGET": "0"}, dict(warm_ip_target=None, minimum_ip_target=None)),
    ({"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": " 12 "}, dict(warm_ip_target=5, minimum_ip_target=12)),
    ({"WARM_IP_TARGET": "five", "WARM_ENI_TARGET": "-1"}, dict(warm_ip_target=None, warm_eni_target=1)),
    ({"MAX_ENI": "0"}, dict(max_eni=None)),
    ({"MAX_ENI": "1"}, dict(max_eni=1)),                      # ipamd's minimum: one ENI
    ({"MAX_ENI": "2", "WARM_PREFIX_TARGET": "0"}, dict(max_eni=2, warm_prefix_target=0)),
    ({"ENABLE_POD_ENI": "True", "ENABLE_IPv6": "true", "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "TRUE"},
     dict(pod_eni=True, ipv6=True, custom_networking=True)),
    ({"ENI_CONFIG_LABEL_DEF": "topology.kubernetes.io/zone", "ENI_CONFIG_ANNOTATION_DEF": "eni"},
     dict(eni_config_label="topology.kubernetes.io/zone", eni_config_annotation="eni")),
])
def test_ipamd_reads_its_integer_and_switch_settings(env, expected):
    cni = CniConfig.from_daemonset(aws_node([container("aws-node", **env)]))
    assert {k: getattr(cni, k) for k in expected} == expected


def test_no_aws_node_means_no_vpc_cni_and_each_model_has_a_name():
    assert CniConfig.from_daemonset(None) == CniConfig() and CniConfig().describe() == "no AWS VPC CNI"
    assert CniConfig(aws_vpc_cni=True, ipv6=True).describe() == "IPv6"
    assert CniConfig(aws_vpc_cni=True).describe() == "secondary IPs"
    assert CniConfig(aws_vpc_cni=True, prefix_delegation=True, custom_networking=True).describe() == \
        "prefix delegation + custom networking"


M5_LARGE = InstanceLimits("m5.large", 3, 10, "nitro", False, 2, 25, "ec2")
M5_8XLARGE = InstanceLimits("m5.8xlarge", 8, 30, "nitro", False, 32, 27, "ec2")
C5_9XLARGE = InstanceLimits("c5.9xlarge", 8, 30, "nitro", False, 36, 27, "ec2")
T2_MEDIUM = InstanceLimits("t2.medium", 3, 6, "xen", False, 2, None, "ec2")
ONE_IP = InstanceLimits("odd.nano", 2, 1, "nitro", False, 1, None, "ec2")


def test_pod_enis_subtract_the_primary_and_trunk_enis_and_honour_max_eni():
    assert pod_enis(M5_LARGE) == 3 and pod_enis(M5_LARGE, max_eni=2) == 2 and pod_enis(M5_LARGE, max_eni=9) == 3
    assert pod_enis(M5_LARGE, custom_networking=True) == 2 and pod_enis(M5_LARGE, trunk=True) == 2
    assert pod_enis(M5_LARGE, custom_networking=True, trunk=True, max_eni=1) == 0     # never negative


def test_ip_slots_follow_the_eni_formula():
    assert ip_slots(M5_LARGE) == 27 and ip_slots(M5_LARGE, prefix_delegation=True) == 27 * 16
    assert ip_slots(T2_MEDIUM, prefix_delegation=True) == 15             # Xen: no prefixes
    assert ip_slots(ONE_IP) == 0 and ip_slots(M5_LARGE, custom_networking=True, max_eni=2) == 9


@pytest.mark.parametrize("limits,expected", [
    (M5_LARGE, 110),            # 3*9*16+2 = 434, capped at 110 (2 vCPUs)
    (M5_8XLARGE, 250),          # 8*29*16+2 = 3714, 32 vCPUs > 30: cap 250
    (C5_9XLARGE, 250),
    (T2_MEDIUM, 17),            # Xen: 3*5+2 = 17, under the cap
    (InstanceLimits("x.big", 8, 30, "nitro", False, 30, None, "ec2"), 110),   # exactly 30 vCPUs: the low cap
    (InstanceLimits("x.unknown", 8, 30, "nitro", False, None, None, "vpc-cni"), 110),
])
def test_recommended_max_pods_caps_like_max_pods_calculator(limits, expected):
    assert recommended_max_pods(limits) == expected


def test_the_ip_model_of_a_node():
    cni = CniConfig(aws_vpc_cni=True, custom_networking=True, max_eni=2)
    assert node_ip_capacity("m5.large", M5_LARGE, cni) == IpCapacity(9, "secondary-ip+custom-networking+max-eni-2",
                                                                        "m5.large")
    roomy = CniConfig(aws_vpc_cni=True, prefix_delegation=True, max_eni=3)
    assert node_ip_capacity("m5.large", M5_LARGE, roomy) == IpCapacity(432, "prefix-delegation", "m5.large")
    assert node_ip_capacity("t2.medium", T2_MEDIUM, roomy).mode == "secondary-ip"
    assert node_ip_capacity("m5.large", M5_LARGE, CniConfig()) == IpCapacity(None, "no-vpc-cni", "m5.large")
    assert node_ip_capacity("m5.large", M5_LARGE, CniConfig(aws_vpc_cni=True, ipv6=True)).mode == "ipv6"
    assert node_ip_capacity(None, None, CniConfig(aws_vpc_cni=True)) == IpCapacity(None, "not-aws", None)
    assert node_ip_capacity("z.big", None, CniConfig(aws_vpc_cni=True)).mode == "unknown-type"
    assert IpCapacity(27, "secondary-ip").max_pods == 29 and IpCapacity(None, "ipv6").max_pods is None
