"""Karpenter EC2NodeClass and EKS Auto Mode NodeClass: where a node's kubelet maxPods comes from.

Numbers by hand from the sources:
* Karpenter's ``pods()`` (aws/karpenter-provider-aws pkg/providers/instancetype/types.go):
  ``spec.kubelet.maxPods`` if set, else the ENI-limited ``ENIs x (IPv4 per ENI - 1) + 2``
  (AWS's eni-max-pods.txt figure: m5.large 29, t3.medium 17; Windows AMIs 110), then at most
  ``podsPerCore x vCPUs`` (not on Bottlerocket). The Karpenter docs' example EC2NodeClass sets
  ``podsPerCore: 2`` and ``maxPods: 20``: m5.large (2 vCPUs) 4 pods, m5.xlarge (4) 8, c5.4xlarge (16)
  min(32, 20) = 20.
* EKS Auto Mode: "EKS limits the maximum number of pods on a node to 110" (Create a Node Class).
"""

from pathlib import Path

from tests.test_subnets import instance
from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.engine.instance_types import InstanceLimits, load_default_table
from webhook.engine.node_class import NodeClass, PodLimit, class_pod_limit, raise_advice
from webhook.state.snapshot import state_from_objects

A, B = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"
M5_LARGE = {"cpu": "1930m", "memory": "7Gi", "ephemeral-storage": "76Gi", "pods": "29"}
ENI_MAX_PODS = Path(__file__).resolve().parent / "data" / "eni-max-pods.txt"
TABLE = load_default_table()


def official(itype: str) -> int:
    for line in ENI_MAX_PODS.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == itype:
            return int(parts[1])
    raise KeyError(itype)


def ec2_node_class(name="default", kubelet=None, ami_family=None, alias="al2023@latest"):
    spec = {"role": "KarpenterNodeRole", "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "demo"}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "demo"}}]}
    if ami_family:
        spec["amiFamily"] = ami_family
    else:
        spec["amiSelectorTerms"] = [{"alias": alias}]
    if kubelet is not None:
        spec["kubelet"] = kubelet
    return {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": name}, "spec": spec}


def node_pool(name, node_class, kind="EC2NodeClass", group="karpenter.k8s.aws"):
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name},
            "spec": {"template": {"spec": {"nodeClassRef": {"group": group, "kind": kind, "name": node_class},
                                           "requirements": []}}, "limits": {"cpu": "100"}}}


def karpenter_node(name, itype, pods, node_class="default", pool="default", label_class=True, **extra):
    labels = {"karpenter.sh/nodepool": pool}
    if label_class:
        labels["karpenter.k8s.aws/ec2nodeclass"] = node_class
    return s.node(name, itype, allocatable={**M5_LARGE, "pods": str(pods), **extra}, labels=labels)


def limit(obj, itype):
    return class_pod_limit(NodeClass.from_object(obj), TABLE.get(itype))


def test_karpenter_pods_follow_maxpods_podspercore_and_the_eni_limited_default():
    docs_example = ec2_node_class(kubelet={"podsPerCore": 2, "maxPods": 20})
    assert (limit(docs_example, "m5.large").pods, limit(docs_example, "m5.large").setting) == (4, "podsPerCore")
    assert limit(docs_example, "m5.xlarge").pods == 8
    assert (limit(docs_example, "c5.4xlarge").pods, limit(docs_example, "c5.4xlarge").setting) == (20, "maxPods")
    unset = ec2_node_class()
    for itype in ("m5.large", "t3.medium", "m5.xlarge", "c5.18xlarge"):
        assert limit(unset, itype).pods == official(itype)           # AWS's eni-max-pods.txt
    assert official("m5.large") == 29 and official("t3.medium") == 17
    # Bottlerocket ignores podsPerCore; Windows AMIs are not ENI-limited (110).
    bottlerocket = ec2_node_class(kubelet={"podsPerCore": 2}, alias="bottlerocket@latest")
    assert limit(bottlerocket, "m5.large").pods == 29
    assert limit(ec2_node_class(ami_family="Windows2022"), "m5.large").pods == 110
    auto = {"apiVersion": "eks.amazonaws.com/v1", "kind": "NodeClass", "metadata": {"name": "default"}, "spec": {}}
    assert (limit(auto, "m5.large").pods, limit(auto, "m5.large").setting) == (110, "auto-mode")
    # Another project's NodeClass is not EKS Auto Mode's.
    assert NodeClass.from_object({**auto, "apiVersion": "compute.k8s.aws/v1beta1"}) is None


def test_pod_limit_advice_points_to_the_ec2nodeclass_not_a_kubelet_flag():
    # maxPods 20 on m5.large, secondary IPs: the VPC CNI allows 29 (27 IPs + 2 host-network pods).
    # The node still owes the aws-node DaemonSet its pod: 19 slots for the workload.
    items = [karpenter_node(A, "m5.large", 20, "small"), ec2_node_class("small", {"maxPods": 20}),
             s.aws_node(), s.namespace("default")]
    verdict = evaluate(state_from_objects(items), s.small_web("web", 20))
    assert verdict.codes == ["POD_LIMIT_REACHED"] and (verdict.schedulable, verdict.pending) == (19, 1)
    assert f"node {A}: 19 of 20 pod slots left (spec.kubelet.maxPods 20 on EC2NodeClass small)" in verdict.message
    assert ("Raise spec.kubelet.maxPods on EC2NodeClass small to 29 (now spec.kubelet.maxPods 20 on EC2NodeClass "
            "small; the VPC CNI allows 29 on m5.large); Karpenter replaces the drifted nodes.") in verdict.message
    assert "Raise kubelet maxPods" not in verdict.message
    # The same node outside Karpenter gets the kubelet advice.
    plain = [s.node(A, "m5.large", allocatable={**M5_LARGE, "pods": "20"}), s.aws_node(), s.namespace("default")]
    message = evaluate(state_from_objects(plain), s.small_web("web", 20)).message
    assert "Raise kubelet maxPods (the VPC CNI allows 29 on m5.large)" in message


def test_podspercore_is_named_when_it_is_the_binding_limit():
    items = [karpenter_node(A, "m5.large", 4), ec2_node_class(kubelet={"podsPerCore": 2, "maxPods": 20}),
             s.aws_node(), s.namespace("default")]
    # 4 kubelet slots, one owed to the aws-node DaemonSet: 3 for the workload.
    verdict = evaluate(state_from_objects(items), s.small_web("web", 4))
    assert verdict.codes == ["POD_LIMIT_REACHED"] and (verdict.schedulable, verdict.pending) == (3, 1)
    assert "(spec.kubelet.podsPerCore 2 x 2 vCPUs = 4 on EC2NodeClass default)" in verdict.message
    assert "Raise or remove spec.kubelet.podsPerCore on EC2NodeClass default" in verdict.message


def test_karpenter_nodes_under_prefix_delegation_need_maxpods_on_the_node_class_not_a_replacement():
    # Karpenter does not know prefix delegation: without maxPods its m5.large nodes keep 29.
    pd = s.aws_node(prefix_delegation=True)
    items = [karpenter_node(A, "m5.large", 29, label_class=False), ec2_node_class(), node_pool("default", "default"),
             pd, s.namespace("default")]
    state = state_from_objects(items)
    # Its node class explains the 29: it is not taken for a node launched before prefix delegation.
    assert state.ip_capacity(state.nodes[A]).mode == "prefix-delegation"
    verdict = evaluate(state, s.small_web("web", 29))      # 29 slots, one owed to aws-node
    assert verdict.codes == ["POD_LIMIT_REACHED"] and (verdict.schedulable, verdict.pending) == (28, 1)
    assert "replace them" not in verdict.message
    assert (f"node {A}: 28 of 29 pod slots left (Karpenter's ENI-limited default 29 for m5.large: "
            "EC2NodeClass default sets no maxPods)") in verdict.message
    # AWS's recommendation under prefix delegation for m5.large (2 vCPUs): min(27 x 16 + 2, 110) = 110.
    assert "Set spec.kubelet.maxPods on EC2NodeClass default to 110" in verdict.message
    # EC2 still has the last word: secondary IPs and no prefix on its ENIs make it a laggard after all.
    described = instance(s.node(A, "m5.large"), "subnet-a", [(9, 0)])
    state = state_from_objects(items + [described])
    assert state.ip_capacity(state.nodes[A]).mode.startswith("secondary-ip (launched before")


def test_prefix_delegation_advice_names_the_node_class_for_karpenter_nodes():
    items = [karpenter_node(A, "m5.large", 29), ec2_node_class(), s.aws_node(), s.namespace("default")]
    message = evaluate(state_from_objects(items), s.small_web("web", 28)).message
    assert ("Enable prefix delegation on aws-node (110 pods per m5.large) and set spec.kubelet.maxPods to 110 on "
            "EC2NodeClass default") in message


def test_eks_auto_mode_nodes_have_no_maxpods_to_raise():
    node = s.node(A, "m5.large", allocatable={**M5_LARGE, "pods": "110"},
                  labels={"eks.amazonaws.com/nodeclass": "default", "karpenter.sh/nodepool": "general-purpose"})
    auto = {"apiVersion": "eks.amazonaws.com/v1", "kind": "NodeClass", "metadata": {"name": "default"}, "spec": {}}
    verdict = evaluate(state_from_objects([node, auto, s.namespace("default")]), s.small_web("web", 111))
    assert verdict.codes == ["POD_LIMIT_REACHED"] and verdict.pending == 1
    assert "(EKS Auto Mode caps nodes at 110 pods)" in verdict.message
    assert "EKS caps it at 110 pods and has no maxPods setting" in verdict.message


def test_a_node_class_the_webhook_cannot_read_still_names_the_field_to_change():
    # The EC2NodeClass object is not in the state (CRD not readable): the node's label still says which.
    items = [karpenter_node(A, "m5.large", 20, "small"), s.aws_node(), s.namespace("default")]
    verdict = evaluate(state_from_objects(items), s.small_web("web", 20))
    assert ("Raise spec.kubelet.maxPods on EC2NodeClass small to 29 (its setting is not readable here; the VPC CNI "
            "allows 29 on m5.large)") in verdict.message


def test_prefix_delegation_advice_names_at_most_three_node_classes():
    # Four m5.large Karpenter nodes, one EC2NodeClass each: 3 ENIs x (10 - 1) = 27 pod IPs a node, 108 in all.
    names = [f"ip-10-0-{i}-1.ec2.internal" for i in range(4)]
    classes = ["alpha", "bravo", "charlie", "delta"]
    items = [karpenter_node(n, "m5.large", 29, node_class=c) for n, c in zip(names, classes, strict=True)]
    items += [ec2_node_class(c) for c in classes] + [s.aws_node(), s.namespace("default")]
    verdict = evaluate(state_from_objects(items), s.small_web("web", 200))
    assert (verdict.codes, verdict.schedulable, verdict.pending) == (["POD_IP_EXHAUSTED"], 108, 92)
    assert ("set spec.kubelet.maxPods to 110 on EC2NodeClass alpha, EC2NodeClass bravo, EC2NodeClass charlie "
            "(Karpenter keeps the ENI-limited figure otherwise)") in verdict.message
    assert "delta" not in verdict.message


# ---- the kubelet fields as Karpenter's CRD types them, and pods() where the type is unknown -------------
# karpenter-provider-aws KubeletConfiguration: maxPods and podsPerCore are int32 with Minimum 0, so 0 is a
# setting (maxPods 0: no pods) and anything that is not a non-negative integer never reaches pods().

def test_maxpods_zero_is_a_setting_and_non_integers_are_no_setting():
    zero = limit(ec2_node_class(kubelet={"maxPods": 0}), "m5.large")
    assert (zero.pods, zero.setting, zero.phrase) == (0, "maxPods", "spec.kubelet.maxPods 0 on EC2NodeClass default")
    for bad in ("20", True, -1, 2.5):
        # m5.large without a usable maxPods: the ENI-limited 3 x (10 - 1) + 2 = 29.
        assert limit(ec2_node_class(kubelet={"maxPods": bad}), "m5.large").pods == 29, bad
    assert NodeClass.from_object(ec2_node_class(kubelet={"podsPerCore": 0})).pods_per_core == 0


def test_the_ami_family_comes_from_the_first_alias_term():
    obj = ec2_node_class()
    obj["spec"]["amiSelectorTerms"] = ["junk", {"id": "ami-0123456789abcdef0"}, {"alias": "Bottlerocket@v1.20.0"},
                                       {"alias": "al2023@latest"}]
    assert NodeClass.from_object(obj).ami_family == "bottlerocket"
    obj["spec"]["amiSelectorTerms"] = [{"tags": {"karpenter.sh/discovery": "demo"}}]
    assert NodeClass.from_object(obj).ami_family is None


def test_pods_is_unknown_without_the_instance_types_figures():
    default = NodeClass.from_object(ec2_node_class())
    assert class_pod_limit(default, None) == PodLimit(
        None, "default", "Karpenter's ENI-limited default: EC2NodeClass default sets no maxPods")
    # podsPerCore needs the vCPUs: unknown type, or a type whose vCPU count no source gave.
    per_core = NodeClass.from_object(ec2_node_class(kubelet={"podsPerCore": 2, "maxPods": 20}))
    unknown = PodLimit(None, "podsPerCore", "spec.kubelet.podsPerCore 2 on EC2NodeClass default")
    assert class_pod_limit(per_core, None) == unknown
    m5 = TABLE.get("m5.large")
    no_vcpus = InstanceLimits(m5.name, m5.enis, m5.ipv4_per_eni, m5.hypervisor, m5.bare_metal, None,
                              m5.ebs_attachments, m5.source)
    assert class_pod_limit(per_core, no_vcpus) == unknown


def test_podspercore_equal_to_maxpods_leaves_maxpods_the_named_setting():
    # m5.large: 10 x 2 vCPUs = 20 = maxPods 20: Karpenter's min() is 20 either way; maxPods is named.
    tie = limit(ec2_node_class(kubelet={"podsPerCore": 10, "maxPods": 20}), "m5.large")
    assert (tie.pods, tie.setting) == (20, "maxPods")


def _rooms(state, *names):
    from types import SimpleNamespace
    return [SimpleNamespace(node=state.nodes[n], capacity=state.ip_capacity(state.nodes[n])) for n in names]


def test_raise_advice_skips_nodes_without_a_node_class_and_says_nothing_when_maxpods_is_already_enough():
    # A (sorted first) is a plain node; B is a Karpenter node with maxPods 20 of the 29 the VPC CNI allows.
    plain = s.node(A, "m5.large", allocatable={**M5_LARGE, "pods": "20"})
    items = [plain, karpenter_node(B, "m5.large", 20, "small"), ec2_node_class("small", {"maxPods": 20}),
             s.aws_node()]
    state = state_from_objects(items)
    advice = raise_advice(state, _rooms(state, A, B), lambda room: 29, "replicas")
    assert advice == ("Raise spec.kubelet.maxPods on EC2NodeClass small to 29 (now spec.kubelet.maxPods 20 on "
                      "EC2NodeClass small; the VPC CNI allows 29 on m5.large); Karpenter replaces the drifted nodes. "
                      "Or add nodes, or lower replicas.")
    # Allowed no higher than the node's 20 already: nothing to raise.
    assert raise_advice(state, _rooms(state, A, B), lambda room: 20, "replicas") is None
    assert raise_advice(state, _rooms(state, A, B), lambda room: None, "replicas") is None
