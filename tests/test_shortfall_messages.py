"""The deny message for each cause of Pending pods: the numbers by hand, the remedy that fits the cause.

One node of 2 CPU, 4Gi memory, 20Gi ephemeral storage and no GPU. Each figure below is
worked out from the scheduler's filters (NodeResourcesFit, InterPodAffinity, NodePorts):
e.g. 1-CPU pods: 2 fit, the 3rd stays Pending.
"""

import pytest

from webhook import synthetic as s
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
