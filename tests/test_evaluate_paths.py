"""The decision paths of ``evaluate``: what is counted as requested, placed and pending in each.

Each number is what the controllers and the API server would do: a ReplicaSet controller
creates ``replicas`` pods (kube-controller-manager), the API server refuses them all when a
LimitRange rejects the template and some when a ResourceQuota is exhausted (then they are
never Pending), pods with ``schedulingGates`` are created but never scheduled, and a
scale-down or a no-op apply creates nothing.
"""

import copy

from tests import synthetic as s
from webhook.engine.evaluate import evaluate, identity
from webhook.state.snapshot import state_from_objects

BIG = {"cpu": "4", "memory": "8Gi", "pods": "110"}


def cluster(*extra):
    return state_from_objects([s.node("a", instance_type=None, allocatable=BIG), *extra])


def app(replicas, cpu="500m", name="app", **spec_extra):
    return s.deployment(name, replicas, spec=s.pod_spec([s.container(requests={"cpu": cpu})], **spec_extra))


def test_identity_tolerates_malformed_metadata():
    assert identity({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}) == \
        ("Deployment", "shop", "web")
    assert identity({"kind": 5, "metadata": {"name": 7, "namespace": ""}}) == ("", "default", "<invalid name>")
    assert identity({"kind": "Pod", "metadata": "x"}) == ("Pod", "default", "")
    assert identity(["not", "an", "object"]) == ("", "default", "")


def test_a_limit_range_rejection_counts_every_replica_as_requested_and_lists_at_most_four_errors():
    lr = {"apiVersion": "v1", "kind": "LimitRange", "metadata": s.metadata("limits", "default"),
          "spec": {"limits": [{"type": "Container", "max": {"cpu": "100m", "memory": "1Mi"},
                               "min": {"cpu": "50m", "ephemeral-storage": "1Mi"}}]}}
    containers = [s.container(f"c{i}", requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})
                  for i in range(3)]         # 2 errors each: 6 in all
    verdict = evaluate(cluster(lr), s.deployment("app", 3, spec=s.pod_spec(containers)))
    assert (verdict.verdict, verdict.codes, verdict.requested, verdict.schedulable, verdict.pending) == \
        ("deny", ["LIMITRANGE_REJECTS"], 3, 0, 0)
    details = verdict.reasons[0].message.splitlines()[1]
    assert details.endswith(" ....") and details.count(";") == 3          # four shown, the rest elided
    verdict = evaluate(cluster(lr), s.daemonset("agent", namespace="default", spec=s.pod_spec(containers)))
    assert verdict.codes == ["LIMITRANGE_REJECTS"] and verdict.requested == 0      # a DaemonSet has no replicas


def test_gated_pods_are_requested_but_neither_placed_nor_pending():
    verdict = evaluate(cluster(), app(40, cpu="1", schedulingGates=[{"name": "wait-for-quota"}]))
    assert (verdict.verdict, verdict.requested, verdict.schedulable, verdict.pending) == ("allow", 40, 0, 0)


def running(deploy, count):
    name = deploy["metadata"]["name"]
    rs = copy.deepcopy(deploy) | {"kind": "ReplicaSet"}
    rs["metadata"] = s.metadata(f"{name}-1", "default", owner=("apps/v1", "Deployment", name))
    pods = [s.pod(f"{name}-1-{i}", "default", "a", spec=deploy["spec"]["template"]["spec"],
                  labels=deploy["spec"]["template"]["metadata"]["labels"], owner=("apps/v1", "ReplicaSet", f"{name}-1"))
            for i in range(count)]
    return [deploy, rs, *pods]


def test_a_scale_down_places_nothing_and_shrinks_what_an_earlier_promise_holds():
    old = app(6)
    state = cluster(*running(old, 4))              # 4 of 6 running, 2 still to come
    verdict = evaluate(state, app(3), old)
    assert (verdict.verdict, verdict.requested, verdict.schedulable, verdict.pending) == ("allow", 3, 3, 0)
    assert verdict.hold_at_most == 0               # 3 wanted, 4 already there: nothing more to hold
    verdict = evaluate(state, app(6), old)         # a no-op apply keeps the 2 pods still to come
    assert (verdict.requested, verdict.hold_at_most) == (6, 2)


def test_a_scale_up_needs_room_only_for_the_added_pods():
    old = app(4, cpu="1")
    state = cluster(*running(old, 4))              # the node's 4 CPUs are all taken by the 4 pods
    verdict = evaluate(state, app(5, cpu="1"), old)
    assert (verdict.verdict, verdict.requested, verdict.schedulable, verdict.pending) == ("deny", 5, 4, 1)


def quota(hard, used):
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": s.metadata("compute", "default"),
            "spec": {"hard": dict(hard)}, "status": {"hard": dict(hard), "used": dict(used)}}


def test_a_quota_with_room_for_exactly_every_pod_refuses_none():
    state = cluster(quota({"pods": "5"}, {"pods": "2"}))
    verdict = evaluate(state, app(3))
    assert (verdict.verdict, verdict.codes, verdict.requested, verdict.schedulable) == ("allow", [], 3, 3)
    verdict = evaluate(state, app(4))
    assert (verdict.codes, verdict.requested, verdict.schedulable, verdict.pending) == (["QUOTA_EXCEEDED"], 4, 3, 0)
    assert "refuse 1 of its pods: ResourceQuota compute (pods)" in verdict.message


def test_a_rollout_is_not_charged_against_the_quota():
    # the pods of a rollout replace old ones; the quota's pod count is not modelled across the swap
    old = app(2)
    state = cluster(quota({"pods": "2"}, {"pods": "2"}), *running(old, 2))
    new = app(2, cpu="600m")
    verdict = evaluate(state, new, old)
    assert "QUOTA_EXCEEDED" not in verdict.codes and verdict.schedulable == 2


def test_more_than_three_unknown_instance_types_are_elided():
    # the VPC CNI (aws-node) counts pod IPs per instance type; types the table lacks are named
    base = s.two_t3_medium_cluster()["items"]
    nodes = [s.node(f"n{i}", instance_type=f"z{i}.large", allocatable=BIG) for i in range(5)]
    verdict = evaluate(state_from_objects(base + nodes), app(2))
    (reason,) = [r for r in verdict.reasons if r.code == "UNKNOWN_INSTANCE_TYPE"]
    assert reason.summary.startswith("Instance type z0.large, z1.large, z2.large ... is not in the")
    verdict = evaluate(state_from_objects(base + nodes[:1]), app(2))
    (reason,) = [r for r in verdict.reasons if r.code == "UNKNOWN_INSTANCE_TYPE"]
    assert reason.summary.startswith("Instance type z0.large is not in the")


def test_the_limit_range_errors_are_elided_only_past_four():
    lr = {"apiVersion": "v1", "kind": "LimitRange", "metadata": s.metadata("limits", "default"),
          "spec": {"limits": [{"type": "Container", "max": {"cpu": "100m", "memory": "1Mi"}}]}}

    def details(containers):
        verdict = evaluate(cluster(lr), s.deployment("app", 1, spec=s.pod_spec(containers)))
        return verdict.reasons[0].message.splitlines()[1]

    two_errors = [s.container(f"c{i}", requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})
                  for i in range(2)]
    one_error = s.container("c9", requests={"cpu": "1"}, limits={"cpu": "1"})
    assert details(two_errors).count(";") == 3 and not details(two_errors).endswith(" ....")       # 4 errors
    assert details(two_errors + [one_error]).endswith(" ....")                                       # 5 errors


def test_three_unknown_instance_types_are_all_named():
    base = s.two_t3_medium_cluster()["items"]
    nodes = [s.node(f"n{i}", instance_type=f"z{i}.large", allocatable=BIG) for i in range(4)]
    (reason,) = [r for r in evaluate(state_from_objects(base + nodes[:3]), app(2)).reasons
                 if r.code == "UNKNOWN_INSTANCE_TYPE"]
    assert reason.summary.startswith("Instance type z0.large, z1.large, z2.large is not in the")
    (reason,) = [r for r in evaluate(state_from_objects(base + nodes), app(2)).reasons
                 if r.code == "UNKNOWN_INSTANCE_TYPE"]
    assert reason.summary.startswith("Instance type z0.large, z1.large, z2.large ... is not in the")


def test_a_scale_up_from_zero_places_the_new_pods():
    old = app(0, cpu="5")                            # no node has 5 CPUs
    verdict = evaluate(cluster(old), app(1, cpu="5"), old)
    assert (verdict.verdict, verdict.requested, verdict.pending) == ("deny", 1, 1)


def test_a_gated_daemon_set_requests_nothing_yet():
    gated = s.daemonset("agent", namespace="default",
                        spec=s.pod_spec([s.container(requests={"cpu": "9"})], schedulingGates=[{"name": "wait"}]))
    verdict = evaluate(cluster(), gated)
    assert (verdict.verdict, verdict.requested, verdict.pending) == ("allow", 0, 0)


def test_a_daemonset_apply_that_keeps_its_template_places_nothing_and_counts_its_running_pods():
    # kube-proxy runs one pod on each of the two nodes; re-applying it unchanged creates no pod.
    state = state_from_objects(s.two_t3_medium_cluster()["items"])
    proxy = next(i for i in s.two_t3_medium_cluster()["items"]
                 if i["kind"] == "DaemonSet" and i["metadata"]["name"] == "kube-proxy")
    verdict = evaluate(state, proxy, copy.deepcopy(proxy))
    assert (verdict.verdict, verdict.requested, verdict.schedulable, verdict.pending) == ("allow", 2, 2, 0)
    assert verdict.hold_at_most is None and verdict.placement is None


def test_an_update_of_a_bare_pod_places_nothing_and_shrinks_no_promise():
    # A Pod's spec is immutable past a few fields: an update never creates a pod.
    pod = s.pod("p", "default", None, s.pod_spec([s.container("c", requests={"cpu": "10m"})]))
    verdict = evaluate(cluster(pod), pod, copy.deepcopy(pod))
    assert (verdict.verdict, verdict.requested, verdict.schedulable, verdict.pending) == ("allow", 1, 1, 0)
    assert verdict.hold_at_most is None and verdict.placement is None


def _running_app(replicas):
    old = app(replicas)
    pods = [s.pod(f"app-{i}", node_name="a", spec=old["spec"]["template"]["spec"], labels={"app": "app"},
                  owner=("apps/v1", "Deployment", "app")) for i in range(replicas)]
    return old, cluster(old, *pods)


def test_a_rollout_holds_room_only_for_the_pods_beyond_those_it_replaces():
    # 3 pods of 500m run on the 4-CPU node; a new image replaces them one for one: nothing new to hold.
    old, state = _running_app(3)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    same = evaluate(state, new, old)
    assert (same.verdict, same.requested, same.schedulable, same.pending) == ("allow", 3, 3, 0)
    assert same.reserve_limit == 0 and same.reservation() == {}
    new["spec"]["replicas"] = 5                 # and 2 more: those 2 are held
    more = evaluate(state, new, old)
    assert (more.requested, more.schedulable, more.reserve_limit, more.reservation()) == (5, 5, 2, {"a": 2})


def test_an_old_object_nested_past_the_limit_is_named_and_the_check_skipped():
    old, state = _running_app(3)
    deep: dict = {}
    level = deep
    for _ in range(70):                          # 70 levels > MAX_DEPTH 64
        level["n"] = {}
        level = level["n"]
    old_deep = copy.deepcopy(old)
    old_deep["spec"]["x"] = deep
    verdict = evaluate(state, app(5), old_deep)
    assert (verdict.verdict, verdict.codes) == ("warn", ["INVALID_OBJECT"])
    assert verdict.message == ("Deployment default/app: cannot read oldObject: nested more than 64 levels deep\n"
                               "The capacity check was skipped: oldObject nested more than 64 levels deep.")
