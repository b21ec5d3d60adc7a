"""The differential tier's own machinery, without a control plane: generator, judge, shrinker.

The tier is a referee; a referee that cannot fail, or that mislabels a refusal, would
make every figure it prints worthless. These tests pin its rules.
"""

from __future__ import annotations

import yaml

from tests.differential.generator import NAMESPACES, SCENARIO_LABEL, feature_tags, scenario
from tests.differential.judge import judge, reproducer, shrink
from tests.differential.referee import EngineAnswer, Outcome, Run


def run_of(pending: int, unscheduled: int, codes=(), rejected=(), on_not_ready=0, created=5) -> Run:
    sc = scenario(1)
    out = Outcome(created=created, rejected=list(rejected), scheduled=created - unscheduled,
                  unscheduled=unscheduled, on_not_ready=on_not_ready)
    return Run(sc, out, EngineAnswer("deny" if pending else "allow", pending, list(codes), ""))


def test_same_seed_same_scenario_and_seeds_differ():
    assert scenario(42).objects == scenario(42).objects and scenario(42).workload == scenario(42).workload
    assert len({yaml.safe_dump([scenario(s).objects, scenario(s).workload]) for s in range(1, 30)}) == 29


def test_generated_objects_are_what_the_referee_can_create_and_clean_up():
    for seed in range(1, 200):
        sc = scenario(seed)
        nodes = {n["metadata"]["name"] for n in sc.of_kind("Node")}
        assert nodes, seed
        for obj in sc.objects:
            if obj["kind"] in ("Node", "PriorityClass"):
                assert obj["metadata"]["labels"][SCENARIO_LABEL] == "true"     # cleanup finds them
            if obj["kind"] in ("Pod", "LimitRange", "ResourceQuota"):
                assert obj["metadata"]["namespace"] in NAMESPACES
            if obj["kind"] == "Pod" and obj["spec"].get("nodeName"):
                assert obj["spec"]["nodeName"] in nodes
        assert not any(o["kind"] == "DaemonSet" for o in sc.objects)   # no aws-node: no IP rule in the comparison
        assert sc.workload["metadata"]["namespace"] == NAMESPACES[0]


def test_the_generator_covers_every_feature_of_the_issue_within_a_few_hundred_seeds():
    seen = set()
    for seed in range(1, 400):
        seen.update(feature_tags(scenario(seed)))
    for tag in ("cordoned-node", "notready-node", "node-without-pods", "waiting-pod", "gated-pod", "terminal-pod",
                "hostnetwork-pod", "existing-hostport", "existing-anti-affinity", "limitrange", "quota",
                "tolerates-cordon", "wildcard-toleration", "anti-affinity-hostname", "anti-affinity-zone",
                "anti-affinity-no-selector", "anti-affinity-namespaces", "affinity-hostname", "affinity-zone",
                "spread-zone", "spread-hostname", "spread-minDomains", "spread-nodeAffinityPolicy",
                "spread-nodeTaintsPolicy", "spread-matchLabelKeys", "hostport", "extended:nvidia.com/gpu",
                "extended:vpc.amazonaws.com/pod-eni", "extended:hugepages-2Mi", "priority:high",
                "priority:high-nopreempt", "priority:low", "no-requests", "init-container"):
        assert tag in seen, tag


def test_equal_counts_agree_and_each_direction_is_named():
    assert judge(run_of(2, 2)).status == "agree"
    deny = judge(run_of(3, 1))
    assert (deny.status, deny.direction) == ("disagree", "false-deny")
    allow = judge(run_of(0, 2))
    assert (allow.status, allow.direction) == ("disagree", "false-allow")


def test_pods_the_api_server_refuses_need_the_engines_code():
    quota = 'pods "web-1" is forbidden: exceeded quota: quota, requested: pods=1, used: pods=3, limited: pods=3'
    limit = 'pods "web-0" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    assert judge(run_of(0, 0, rejected=[quota], created=3)).direction == "missing:QUOTA_EXCEEDED"
    assert judge(run_of(0, 0, codes=["QUOTA_EXCEEDED"], rejected=[quota], created=3)).status == "agree"
    assert judge(run_of(0, 0, rejected=[limit], created=0)).direction == "missing:LIMITRANGE_REJECTS"
    # The code alone is not enough: refused pods are not pending pods.
    assert judge(run_of(5, 0, codes=["LIMITRANGE_REJECTS"], rejected=[limit] * 5, created=0)).status == "disagree"


def test_pods_bound_to_a_not_ready_node_are_the_documented_difference_and_nothing_more():
    assert judge(run_of(3, 1, on_not_ready=2)).status == "deliberate"
    assert judge(run_of(4, 1, on_not_ready=2)).status == "disagree"


def test_shrink_keeps_only_what_the_failure_needs():
    sc = scenario(11)
    target = sc.of_kind("Node")[0]["metadata"]["name"]

    def still_fails(candidate):   # "fails" while the first node survives and replicas >= 2
        names = {n["metadata"]["name"] for n in candidate.of_kind("Node")}
        return target in names and candidate.replicas >= 2

    small, runs = shrink(sc, still_fails, budget=500)
    assert [n["metadata"]["name"] for n in small.of_kind("Node")] == [target]
    assert small.replicas == 2
    assert not small.of_kind("Pod") and runs > 0
    text = reproducer(small, judge(run_of(1, 0)))
    docs = list(yaml.safe_load_all(text))
    assert docs[-1]["kind"] == "Deployment" and any(d["kind"] == "Node" for d in docs)
