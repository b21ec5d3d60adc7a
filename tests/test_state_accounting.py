"""ClusterState's per-node sums stay exact as pods come, move and go.

The invariant is the oracle: a state that saw pods arrive and leave must hold exactly
what a state built from the remaining objects holds (the scheduler's NodeInfo is rebuilt
the same way from the pods bound to the node). Each pod below exercises one sum: requests,
IP-consuming pods, DaemonSet pods, extended resources, host ports, volume claims.
"""

import copy

from tests import synthetic as s
from webhook.state.snapshot import state_from_objects

NODE = {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "4"}
FIELDS = ("used", "pods", "ip_pods", "daemon_used", "daemon_pods", "daemon_ip_pods", "score_used", "ports")


def pods():
    gpu = s.pod("train", "ml", "a", spec=s.pod_spec([s.container(requests={"cpu": "1", "nvidia.com/gpu": "2"},
                                                                 limits={"nvidia.com/gpu": "2"})]))
    web = s.pod("web", "default", "a", spec=s.pod_spec([s.container(
        requests={"cpu": "250m", "memory": "1Gi"}, ports=[{"containerPort": 80, "hostPort": 8080}])]))
    agent_spec = s.pod_spec([s.container("agent", requests={"cpu": "100m", "memory": "100Mi"})])
    agent = s.pod("agent-a", "kube-system", "a", spec=agent_spec, owner=("apps/v1", "DaemonSet", "agent"))
    proxy = s.pod("proxy-a", "kube-system", "a", spec=s.pod_spec([s.container("proxy")], host_network=True),
                  owner=("apps/v1", "DaemonSet", "proxy"))
    db_spec = s.pod_spec([s.container("db", requests={"cpu": "500m"})],
                         volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}])
    db = s.pod("db-0", "default", "b", spec=db_spec)
    best_effort = s.pod("idle", "default", "b", spec=s.pod_spec([s.container("idle")]))
    return [gpu, web, agent, proxy, db, best_effort]


def nodes():
    return [s.node(n, instance_type=None, allocatable=NODE) for n in ("a", "b")]


def sums(state, name):
    node = state.nodes[name]
    extended = {k: v for k, v in node.extended_used.items() if v}      # a zero entry is no use
    return {f: getattr(node, f) for f in FIELDS} | {"claims": dict(node.claims), "extended_used": extended}


def test_every_sum_returns_to_an_empty_node_when_its_pods_go():
    state = state_from_objects(nodes() + pods())
    empty = state_from_objects(nodes())
    a = state.nodes["a"]
    assert (a.pods, a.ip_pods, a.daemon_pods, a.daemon_ip_pods) == (4, 3, 2, 1)
    assert (a.used.cpu, a.daemon_used.cpu, a.extended_used, a.ports) == (1350, 100, {"nvidia.com/gpu": 2},
                                                                        {("TCP", "0.0.0.0", 8080): 1})
    assert dict(state.nodes["b"].claims) == {"default/data-db-0": 1}
    for pod in pods():
        state.remove("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
    for name in ("a", "b"):
        assert sums(state, name) == sums(empty, name)


def test_a_pod_that_moves_is_counted_once_on_its_new_node_only():
    state = state_from_objects(nodes() + pods())
    moved = copy.deepcopy(pods()[1])
    moved["spec"]["nodeName"] = "b"
    state.apply(moved)
    expected = state_from_objects(nodes() + [p for p in pods() if p["metadata"]["name"] != "web"] + [moved])
    for name in ("a", "b"):
        assert sums(state, name) == sums(expected, name)


def test_two_pods_on_one_host_port_free_it_only_when_both_are_gone():
    first = s.pod("p1", "default", "a", spec=s.pod_spec([s.container(ports=[{"containerPort": 53, "hostPort": 53,
                                                                              "protocol": "UDP"}])]))
    second = copy.deepcopy(first)
    second["metadata"] = s.metadata("p2", "default")
    state = state_from_objects(nodes() + [first, second])
    assert state.nodes["a"].ports == {("UDP", "0.0.0.0", 53): 2}
    state.remove("Pod", "default", "p1")
    assert state.nodes["a"].ports == {("UDP", "0.0.0.0", 53): 1}
    state.remove("Pod", "default", "p2")
    assert state.nodes["a"].ports == {}


def test_a_status_only_update_changes_no_sum_and_a_finished_pod_frees_its_room():
    state = state_from_objects(nodes() + pods())
    before = sums(state, "a")
    again = copy.deepcopy(pods()[0])
    again["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    state.apply(again)
    assert sums(state, "a") == before
    done = copy.deepcopy(pods()[0])
    done["status"]["phase"] = "Succeeded"             # the scheduler counts no terminated pod
    state.apply(done)
    expected = state_from_objects(nodes() + pods()[1:])
    assert sums(state, "a") == sums(expected, "a")
