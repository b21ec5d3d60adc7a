"""Node eligibility: cordons, readiness, taints, nodeSelector and required node affinity."""

from webhook import synthetic as s
from webhook.engine.model import NodeRecord
from webhook.engine.scheduling import PodPlacementRules, ineligibility


def rules(**spec):
    return PodPlacementRules.from_pod_spec(s.pod_spec(**spec))


def node(**kw):
    return NodeRecord.from_object(s.node("n1", **kw))


def test_cordoned_and_not_ready_nodes_take_no_new_pods_but_daemons():
    assert ineligibility(node(unschedulable=True), rules()) == "cordoned"
    assert ineligibility(node(ready=False), rules()) == "NotReady"
    daemon = PodPlacementRules.from_pod_spec(s.pod_spec(), daemon=True)
    assert ineligibility(node(unschedulable=True), daemon) is None


def test_taints_need_matching_tolerations():
    gpu = node(taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}])
    assert "not tolerated" in ineligibility(gpu, rules())
    assert ineligibility(gpu, rules(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}])) is None
    assert (
        ineligibility(gpu, rules(tolerations=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]))
        is None
    )
    assert ineligibility(gpu, rules(tolerations=[{"key": "nvidia.com/gpu", "value": "false"}])) is not None
    assert ineligibility(gpu, rules(tolerations=[{"operator": "Exists"}])) is None
    # A toleration with an effect tolerates only taints of that effect (NoExecute does not cover NoSchedule).
    assert ineligibility(gpu, rules(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists",
                                                  "effect": "NoExecute"}])) is not None
    assert ineligibility(gpu, rules(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists",
                                                  "effect": "NoSchedule"}])) is None
    soft = node(taints=[{"key": "spot", "value": "true", "effect": "PreferNoSchedule"}])
    assert ineligibility(soft, rules()) is None


def test_node_selector_and_required_affinity():
    n = node(labels={"workload": "batch", "cores": "8"})
    assert ineligibility(n, rules(nodeSelector={"workload": "batch"})) is None
    assert ineligibility(n, rules(nodeSelector={"workload": "web"})).startswith("nodeSelector")

    def affinity(*exprs, fields=()):
        term = {"matchExpressions": list(exprs)}
        if fields:
            term["matchFields"] = list(fields)
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}

    assert ineligibility(n, rules(affinity=affinity({"key": "topology.kubernetes.io/zone", "operator": "In",
                                                      "values": ["us-east-1a", "us-east-1b"]}))) is None
    assert ineligibility(n, rules(affinity=affinity({"key": "workload", "operator": "NotIn", "values": ["batch"]})))
    # NotIn matches a node that lacks the label altogether (Kubernetes' NodeSelectorRequirement semantics).
    assert ineligibility(n, rules(affinity=affinity({"key": "gpu", "operator": "NotIn", "values": ["a100"]}))) is None
    assert ineligibility(n, rules(affinity=affinity({"key": "cores", "operator": "Gt", "values": ["4"]}))) is None
    assert ineligibility(n, rules(affinity=affinity({"key": "cores", "operator": "Lt", "values": ["4"]})))
    assert ineligibility(n, rules(affinity=affinity({"key": "gpu", "operator": "DoesNotExist"}))) is None
    assert ineligibility(
        n, rules(affinity=affinity(fields=[{"key": "metadata.name", "operator": "In", "values": ["n2"]}]))
    )


def test_node_name_bypasses_the_scheduler_only_that_node_counts():
    pinned = rules(nodeName="n1")
    assert ineligibility(node(unschedulable=True), pinned) is None   # the kubelet does not look at cordons
    assert ineligibility(NodeRecord.from_object(s.node("n2")), pinned) == "not the pod's spec.nodeName"
