"""How many nodes the cluster may still add: --headroom-nodes and Karpenter NodePool limits.

Karpenter (sigs.k8s.io/karpenter, NodePool ``spec.limits`` / ``status.resources``): a
NodePool launches nodes until the sum of its nodes' capacity would pass a limit; a pool
without limits is unbounded. The number of template-sized nodes left under a limit is
``(limit - used) // node size``, the tightest limit decides, never below zero.
"""

import pytest

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.engine.growth import Growth, growth_sources
from webhook.state.snapshot import state_from_objects

NODE = {"cpu": "2", "memory": "4Gi", "pods": "20"}


def pool(name, limits=None, used=None, api="karpenter.sh/v1"):
    return {"apiVersion": api, "kind": "NodePool", "metadata": {"name": name},
            "spec": {"limits": dict(limits or {}), "template": {"spec": {"requirements": []}}},
            "status": {"resources": dict(used or {})}}


def sources(*pools, headroom=0):
    state = state_from_objects([s.node("a", instance_type=None, allocatable=NODE), *pools])
    state.headroom_nodes = headroom
    return growth_sources(state, state.nodes["a"])


def test_headroom_nodes_are_a_source_only_when_set():
    assert sources() == []
    assert sources(headroom=3) == [Growth(3, "--headroom-nodes allows 3 more nodes")]


def test_a_pool_without_limits_is_unbounded():
    assert sources(pool("free")) == [Growth(None, "Karpenter NodePool free has no limits")]


@pytest.mark.parametrize("limits,used,nodes", [
    ({"cpu": "10"}, {"cpu": "4"}, 3),                          # 6 CPUs left / 2 per node
    ({"cpu": "10"}, {}, 5),                                     # nothing used yet
    ({"memory": "20Gi"}, {"memory": "9Gi"}, 2),                 # 11Gi left / 4Gi
    ({"cpu": "100", "memory": "8Gi"}, {"cpu": "0", "memory": "0"}, 2),    # the tighter limit decides
    ({"cpu": "4"}, {"cpu": "6"}, 0),                            # over its limit already: none, not negative
    ({"nodes": "5"}, {"nodes": "1"}, None),                     # no cpu or memory limit: not counted here
])
def test_a_pool_adds_whole_template_nodes_under_its_tightest_limit(limits, used, nodes):
    (growth,) = sources(pool("p", limits, used))
    more = "more" if nodes is None else nodes
    assert growth == Growth(nodes, f"Karpenter NodePool p can add {more} nodes")


def test_a_pool_with_a_limit_that_is_not_a_quantity_is_left_out_and_pools_are_in_name_order():
    found = sources(pool("zeta", {"cpu": "8"}), pool("bad", {"cpu": "eight"}), pool("alpha", {"cpu": "2"}),
                    headroom=1)
    assert [g.source for g in found] == ["--headroom-nodes allows 1 more node",
                                        "Karpenter NodePool alpha can add 1 node",
                                        "Karpenter NodePool zeta can add 4 nodes"]


def test_a_node_pool_of_another_api_group_is_not_karpenters():
    assert sources(pool("other", api="example.com/v1")) == []


def cluster_with(*extra, headroom=0):
    state = state_from_objects([s.node("a", instance_type=None, allocatable=NODE), *extra])
    state.headroom_nodes = headroom
    return state


def web(replicas):
    return s.deployment("web", replicas, spec=s.pod_spec([s.container(requests={"cpu": "500m"})]))


def test_pending_pods_that_new_nodes_take_are_a_warning_that_counts_the_nodes():
    # one 2-CPU node takes 4 pods of 500m; 10 replicas leave 6 pending: 2 new nodes of 4 pods
    state = cluster_with(pool("p", {"cpu": "6"}, {"cpu": "2"}))      # room for 2 more nodes
    verdict = evaluate(state, web(10))
    assert (verdict.verdict, verdict.pending) == ("warn", 6)
    assert "about 2 new nodes of 4 pods each would take the 6 pending pods" in verdict.message
    assert evaluate(state, web(13)).verdict == "deny"                 # 9 pending > 2 nodes x 4 pods


def test_no_growth_source_or_nothing_pending_means_no_growth_sentence():
    assert evaluate(cluster_with(), web(10)).verdict == "deny"
    verdict = evaluate(cluster_with(headroom=5), web(4))
    assert verdict.pending == 0 and "can grow" not in verdict.message
    verdict = evaluate(cluster_with(headroom=1), web(8))             # 4 pending fit one new node exactly
    assert verdict.verdict == "warn" and "about 1 new node of 4 pods each" in verdict.message


def test_every_pool_is_a_source_after_an_unlimited_one():
    found = sources(pool("a-free"), pool("b-capped", {"memory": "8Gi"}))
    # memory 8Gi with nothing used yet: 8Gi // 4Gi = 2 nodes
    assert found == [Growth(None, "Karpenter NodePool a-free has no limits"),
                     Growth(2, "Karpenter NodePool b-capped can add 2 nodes")]


def test_a_new_node_comes_with_its_daemon_set_pods():
    # the template node runs a DaemonSet pod of 500m: a fresh node keeps (2000 - 500) // 500 = 3 pods, not 4
    ds = s.daemonset("agent", spec=s.pod_spec([s.container("agent", requests={"cpu": "500m"})]))
    agent = s.pod("agent-a", "kube-system", "a", spec=ds["spec"]["template"]["spec"],
                  owner=("apps/v1", "DaemonSet", "agent"))
    state = cluster_with(ds, agent, headroom=3)
    verdict = evaluate(state, web(5))                       # 3 fit on "a", 2 pending
    assert (verdict.verdict, verdict.pending) == ("warn", 2)
    assert "about 1 new node of 3 pods each would take the 2 pending pods" in verdict.message


def test_a_pod_no_fresh_node_can_hold_is_no_growth_and_one_per_node_is():
    too_big = s.deployment("big", 1, spec=s.pod_spec([s.container(requests={"cpu": "3"})]))
    assert evaluate(cluster_with(headroom=5), too_big).verdict == "deny"
    one_each = s.deployment("one", 3, spec=s.pod_spec([s.container(requests={"cpu": "1500m"})]))
    verdict = evaluate(cluster_with(headroom=2), one_each)      # 1 fits, 2 pending, 1 per new node
    assert verdict.verdict == "warn" and "about 2 new nodes of 1 pod each" in verdict.message
    assert evaluate(cluster_with(headroom=1), one_each).verdict == "deny"


def test_a_fresh_node_keeps_the_pod_slots_its_daemon_set_pods_leave():
    ds = s.daemonset("agent", spec=s.pod_spec([s.container("agent", requests={"cpu": "10m"})]))
    small = {"cpu": "8", "memory": "16Gi", "pods": "4"}
    agent = s.pod("agent-a", "kube-system", "a", spec=ds["spec"]["template"]["spec"],
                  owner=("apps/v1", "DaemonSet", "agent"))
    state = state_from_objects([s.node("a", instance_type=None, allocatable=small), ds, agent])
    state.headroom_nodes = 1
    verdict = evaluate(state, web(6))            # 3 slots left on "a"; a new node also has 4 - 1 = 3
    assert (verdict.verdict, verdict.pending) == ("warn", 3)
    assert "about 1 new node of 3 pods each" in verdict.message
    assert evaluate(state, web(7)).verdict == "deny"


def test_an_unlimited_pool_does_not_help_a_pod_no_node_can_hold():
    too_big = s.deployment("big", 1, spec=s.pod_spec([s.container(requests={"cpu": "3"})]))
    verdict = evaluate(cluster_with(pool("free")), too_big)
    assert verdict.verdict == "deny" and "can grow" not in verdict.message


def test_a_fresh_node_keeps_the_pod_ips_its_daemon_set_pods_leave():
    # t3.medium: 3 ENIs x (6 - 1) secondary IPs = 15 pod IPs (max pods 3 x 5 + 2 = 17). The agent
    # DaemonSet pod takes one IP, so a fresh node has 15 - 1 = 14 IPs for the web pods, not 16.
    ds = s.daemonset("agent", spec=s.pod_spec([s.container("agent", requests={"cpu": "10m"})]))
    agent = s.pod("agent-a", "kube-system", "a", spec=ds["spec"]["template"]["spec"],
                  owner=("apps/v1", "DaemonSet", "agent"))
    state = state_from_objects([s.node("a"), s.aws_node(), ds, agent])      # aws-node: the VPC CNI's IP slots
    state.headroom_nodes = 1
    tiny = s.deployment("web", 28, spec=s.pod_spec([s.container(requests={"cpu": "10m"})]))
    verdict = evaluate(state, tiny)                    # 14 fit on "a", 14 pending
    assert (verdict.verdict, verdict.pending) == ("warn", 14)
    assert "about 1 new t3.medium node of 14 pods each would take the 14 pending pods" in verdict.message
