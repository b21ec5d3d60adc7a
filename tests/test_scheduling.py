"""Node eligibility: cordons, readiness, taints, nodeSelector and required node affinity."""

from tests import synthetic as s
from webhook.engine.model import NodeRecord
from webhook.engine.scheduling import PodPlacementRules, ineligibility, node_affinity_matches, selector_matches


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


# ---- selector and node-affinity semantics (k8s.io/component-helpers/scheduling/corev1/nodeaffinity,
# ---- apimachinery labels) ------------------------------------------------------------------------


def test_label_selector_operators():
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({}, labels) is True
    assert selector_matches({"matchLabels": {"app": "web"}}, labels) is True
    assert selector_matches({"matchLabels": {"app": "api"}}, labels) is False
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]},
                                labels)
    assert selector_matches({"matchExpressions": [{"key": "gone", "operator": "NotIn", "values": ["x"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "gone", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "gone", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "Matches", "values": ["web"]}]},
                                labels)


def affinity_rules(*exprs, fields=()):
    term = {}
    if exprs:
        term["matchExpressions"] = list(exprs)
    if fields:
        term["matchFields"] = list(fields)
    return rules(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}})


def test_gt_and_lt_are_strict_integer_comparisons_and_a_non_integer_never_matches():
    n = node(labels={"cores": "8", "arch-gen": "graviton"})

    def fits(operator, value, key="cores"):
        return ineligibility(n, affinity_rules({"key": key, "operator": operator, "values": [value]})) is None

    assert fits("Gt", "7") and not fits("Gt", "8") and fits("Lt", "9") and not fits("Lt", "8")
    assert not fits("Gt", "many") and not fits("Gt", "1", key="arch-gen") and not fits("Lt", "1", key="absent")
    assert ineligibility(n, affinity_rules({"key": "cores", "operator": "Gt", "values": []})) is not None


def test_an_empty_node_selector_term_matches_no_node():
    assert ineligibility(node(), affinity_rules()) == "required node affinity not matched"


def test_node_affinity_alone_ignores_taints_and_cordons_but_not_selectors():
    cordoned = node(unschedulable=True, labels={"pool": "a"},
                    taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    assert node_affinity_matches(cordoned, rules(nodeSelector={"pool": "a"})) is True
    assert node_affinity_matches(cordoned, rules(nodeSelector={"pool": "b"})) is False
    assert node_affinity_matches(cordoned, affinity_rules({"key": "pool", "operator": "In", "values": ["b"]})) is False


def test_daemon_pods_tolerate_the_node_condition_taints_but_not_others():
    daemon = PodPlacementRules.from_pod_spec(s.pod_spec(), daemon=True)
    pressured = node(taints=[{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"},
                             {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
    assert ineligibility(pressured, daemon) is None
    assert ineligibility(pressured, rules()) == "taint node.kubernetes.io/disk-pressure:NoSchedule not tolerated"
    dedicated = node(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    assert ineligibility(dedicated, daemon) == "taint dedicated=gpu:NoSchedule not tolerated"


def _gt_lt(operator, bound):
    return rules(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "cores", "operator": operator, "values": [bound]}]}]}}})


def test_gt_and_lt_read_label_values_as_go_parse_int_does():
    # k8s.io/apimachinery labels.Requirement.Matches: strconv.ParseInt(value, 10, 64); an error is no match.
    # "+7" and "-3" parse; "1_0" (a valid label value) and a 20-digit number (over int64) do not.
    cases = [("+7", "Gt", "5", True), ("-3", "Lt", "0", True), ("-3", "Gt", "-4", True),
             ("1_0", "Gt", "5", False), ("99999999999999999999", "Gt", "5", False),
             ("9223372036854775807", "Gt", "9223372036854775806", True), ("7", "Gt", "1_0", False),
             ("7", "Lt", "99999999999999999999", False), ("seven", "Gt", "5", False),
             ("9223372036854775808", "Gt", "5", False),                        # 2^63: one past int64
             ("-9223372036854775808", "Lt", "0", True), ("-9223372036854775809", "Lt", "0", False)]
    for label, operator, bound, eligible in cases:
        verdict = ineligibility(node(labels={"cores": label}), _gt_lt(operator, bound))
        assert (verdict is None) is eligible, (label, operator, bound)
    assert ineligibility(node(), _gt_lt("Gt", "0")) == "required node affinity not matched"   # no label: no match


def test_every_taint_and_every_toleration_is_read_not_only_the_first():
    # v1.33.13 TaintToleration Filter: a node fits when each NoSchedule/NoExecute taint is tolerated by
    # ANY toleration (v1.Toleration.ToleratesTaint); PreferNoSchedule taints are skipped, not a stop.
    gpu = node(taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}])
    two = [{"key": "spot", "operator": "Exists", "effect": "NoExecute"},
           {"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert ineligibility(gpu, rules(tolerations=two)) is None
    soft_then_hard = node(taints=[{"key": "spot", "value": "true", "effect": "PreferNoSchedule"},
                                  {"key": "team", "value": "db", "effect": "NoSchedule"}])
    assert ineligibility(soft_then_hard, rules()) == "taint team=db:NoSchedule not tolerated"
    # DaemonSet pods tolerate the node-condition taints only: a custom taint after one still stops them.
    daemon = PodPlacementRules.from_pod_spec(s.pod_spec(), daemon=True)
    condition_then_custom = node(taints=[{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"},
                                         {"key": "team", "value": "db", "effect": "NoExecute"}])
    assert ineligibility(condition_then_custom, daemon) == "taint team=db:NoExecute not tolerated"
    assert ineligibility(condition_then_custom, rules()) == "taint node.kubernetes.io/disk-pressure:NoSchedule " \
                                                            "not tolerated"
