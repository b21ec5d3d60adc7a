"""The deny message for each cause of Pending pods: the numbers by hand, the remedy that fits the cause.

One node of 2 CPU, 4Gi memory, 20Gi ephemeral storage and no GPU. Each figure below is
worked out from the scheduler's filters (NodeResourcesFit, InterPodAffinity, NodePorts):
e.g. 1-CPU pods: 2 fit, the 3rd stays Pending.
"""

import pytest

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.state.snapshot import state_from_objects

NODE = {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"}


def cluster(nodes=1):
    return state_from_objects([s.node(f"n{i}", instance_type=None, allocatable=NODE) for i in range(nodes)])


def web(replicas, requests=None, ports=None, **spec):
    container = s.container(requests=requests or {"cpu": "100m"}, **({"ports": ports} if ports else {}))
    return s.deployment("web", replicas, spec=s.pod_spec([container], **spec))


def required(kind, app):
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}]}}


CASES = {
    "cpu": (web(3, {"cpu": "1"}), "INSUFFICIENT_CPU", 1, [
        "Deployment default/web: 1 of 3 pods would stay Pending: not enough CPU",
        "Deployment default/web wants 3 pods; 2 fit (node n0: 2 CPU free); 1 would stay Pending.",
        "Each pod requests 1 CPU: lower the requests, add nodes, or lower replicas."]),
    "memory": (web(5, {"memory": "1Gi"}), "INSUFFICIENT_MEMORY", 1, [
        "Deployment default/web: 1 of 5 pods would stay Pending: not enough memory",
        "Deployment default/web wants 5 pods; 4 fit (node n0: 4Gi memory free); 1 would stay Pending.",
        "Each pod requests 1Gi memory: lower the requests, add nodes, or lower replicas."]),
    "ephemeral": (web(3, {"ephemeral-storage": "8Gi"}), "INSUFFICIENT_EPHEMERAL_STORAGE", 1, [
        "Deployment default/web: 1 of 3 pods would stay Pending: not enough ephemeral storage",
        "Deployment default/web wants 3 pods; 2 fit (node n0: 20Gi ephemeral storage free); 1 would stay Pending.",
        "Each pod requests 8Gi ephemeral storage: lower the requests, add nodes, or lower replicas."]),
    "extended": (web(1, {"nvidia.com/gpu": "1"}), "INSUFFICIENT_EXTENDED_RESOURCE", 1, [
        "Deployment default/web: 1 of 1 pod would stay Pending: not enough of an extended resource",
        "Deployment default/web wants 1 pod; 0 fit (node n0: not enough nvidia.com/gpu); 1 would stay Pending.",
        "Add nodes that offer the extended resource, lower its request, or lower replicas."]),
    "anti-affinity": (web(2, affinity=required("podAntiAffinity", "web")), "POD_ANTI_AFFINITY", 1, [
        "Deployment default/web: 1 of 2 pods would stay Pending: pod anti-affinity allows no more pods there",
        "Deployment default/web wants 2 pods; 1 fit (node n0: a pod its anti-affinity excludes runs in its "
        "domain); 1 would stay Pending.",
        "Required pod anti-affinity allows one matching pod per kubernetes.io/hostname: add nodes or domains, "
        "make it preferredDuringSchedulingIgnoredDuringExecution, or lower replicas."]),
    "affinity": (web(2, affinity=required("podAffinity", "db")), "POD_AFFINITY", 2, [
        "Deployment default/web: 2 of 2 pods would stay Pending: required pod affinity not satisfied",
        "Deployment default/web wants 2 pods; 0 fit (node n0: no pod it must run near is in its domain); "
        "2 would stay Pending.",
        "Required pod affinity needs a matching pod in the node's domain: start those pods first, make it "
        "preferredDuringSchedulingIgnoredDuringExecution, or lower replicas."]),
    "host-port": (web(2, ports=[{"containerPort": 80, "hostPort": 80}]), "HOST_PORT_CONFLICT", 1, [
        "Deployment default/web: 1 of 2 pods would stay Pending: hostPort already taken",
        "Deployment default/web wants 2 pods; 1 fit (node n0: host port in use); 1 would stay Pending.",
        "A hostPort allows one such pod per node: drop hostPort, add nodes, or lower replicas."]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_cause_names_the_node_figure_and_its_own_remedy(case):
    obj, code, pending, lines = CASES[case]
    verdict = evaluate(cluster(), obj)
    assert (verdict.verdict, verdict.codes, verdict.pending) == ("deny", [code], pending)
    assert verdict.message.splitlines() == lines


def test_at_most_four_nodes_are_listed_and_the_rest_counted():
    verdict = evaluate(cluster(6), web(13, {"cpu": "1"}))          # 6 nodes x 2 pods = 12 fit
    assert verdict.pending == 1
    assert ("12 fit (node n0: 2 CPU free; node n1: 2 CPU free; node n2: 2 CPU free; node n3: 2 CPU free; "
            "and 2 more nodes); 1 would stay Pending.") in verdict.message


def full_node(name, used, **node_kw):
    """A node whose running pod already takes ``used`` (so the new pods find 0 left)."""
    node = s.node(name, instance_type=None, allocatable=NODE, **node_kw)
    hog = s.pod(f"hog-{name}", "default", name, spec=s.pod_spec([s.container("hog", requests=used)]))
    return [node, hog]


@pytest.mark.parametrize("used,requests,phrase", [
    ({"cpu": "2"}, {"cpu": "1"}, "node n0: 0 CPU free"),
    ({"memory": "4Gi"}, {"memory": "1Gi"}, "node n0: 0 memory free"),
    ({"ephemeral-storage": "20Gi"}, {"ephemeral-storage": "1Gi"}, "node n0: 0 ephemeral storage free"),
])
def test_a_full_node_shows_zero_left_never_a_negative_or_a_made_up_one(used, requests, phrase):
    verdict = evaluate(state_from_objects(full_node("n0", used)), web(2, requests))
    assert verdict.pending == 2 and f"0 fit ({phrase}); 2 would stay Pending." in verdict.message


def test_a_full_pod_limit_shows_zero_slots():
    node = s.node("n0", instance_type=None, allocatable={**NODE, "pods": "1"})
    hog = s.pod("hog", "default", "n0", spec=s.pod_spec([s.container("hog")]))
    verdict = evaluate(state_from_objects([node, hog]), web(1))
    assert "0 fit (node n0: 0 of 1 pod slot left); 1 would stay Pending." in verdict.message
    assert verdict.message.endswith("Add nodes or lower replicas.")


def test_four_stopped_nodes_are_all_listed():
    verdict = evaluate(cluster(4), web(9, {"cpu": "1"}))
    assert "8 fit (node n0: 2 CPU free; node n1: 2 CPU free; node n2: 2 CPU free; node n3: 2 CPU free); " \
           "1 would stay Pending." in verdict.message


def ineligible_nodes(count):
    return [s.node(f"t{i}", instance_type=None, allocatable=NODE,
                   taints=[{"key": f"team-{i}", "value": "x", "effect": "NoSchedule"}]) for i in range(count)]


def test_the_nodes_not_eligible_are_counted_by_cause_up_to_four_causes():
    four = state_from_objects([s.node("n0", instance_type=None, allocatable=NODE), *ineligible_nodes(4)])
    message = evaluate(four, web(3, {"cpu": "1"})).message
    assert ("Nodes not eligible: 1 taint team-0=x:NoSchedule not tolerated, 1 taint team-1=x:NoSchedule not "
            "tolerated, 1 taint team-2=x:NoSchedule not tolerated, 1 taint team-3=x:NoSchedule not tolerated.") \
        in message
    five = state_from_objects([s.node("n0", instance_type=None, allocatable=NODE), *ineligible_nodes(5)])
    assert "1 taint team-3=x:NoSchedule not tolerated ...." in evaluate(five, web(3, {"cpu": "1"})).message


def test_no_eligible_node_says_how_many_refuse_and_why():
    one = evaluate(state_from_objects(ineligible_nodes(1)), web(1))
    assert one.codes == ["NO_ELIGIBLE_NODE"] and one.message.splitlines()[:2] == [
        "Deployment default/web: its pod cannot be scheduled: no eligible node",
        "The only node refuses its pod. Nodes not eligible: 1 taint team-0=x:NoSchedule not tolerated."]
    many = evaluate(state_from_objects(ineligible_nodes(2)), web(3))
    assert many.message.splitlines()[:2] == [
        "Deployment default/web: none of 3 pods can be scheduled: no eligible node",
        "All 2 nodes refuse its pods. Nodes not eligible: 1 taint team-0=x:NoSchedule not tolerated, "
        "1 taint team-1=x:NoSchedule not tolerated."]
    empty = evaluate(state_from_objects([]), web(2))
    assert empty.message.splitlines()[1:] == ["The cluster has no nodes.", "Add nodes before deploying."]


def test_a_spread_shortfall_points_at_the_skew():
    # zone a: a 4-CPU node; zone b: a node too small for any pod. maxSkew 1 lets zone a hold only 1 pod
    # more than zone b's 0.
    nodes = [s.node("a", instance_type=None, zone="us-east-1a", allocatable={**NODE, "cpu": "4"}),
             s.node("b", instance_type=None, zone="us-east-1b", allocatable={**NODE, "cpu": "500m"})]
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "web"}}}]
    verdict = evaluate(state_from_objects(nodes), web(3, {"cpu": "1"}, topologySpreadConstraints=spread))
    assert verdict.pending == 2 and "TOPOLOGY_SPREAD" in verdict.codes
    assert ("Add capacity in the domains with fewest pods, raise maxSkew, use whenUnsatisfiable: ScheduleAnyway, "
            "or lower replicas.") in verdict.message
