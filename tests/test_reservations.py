"""Reservations: at most one per workload, the latest decision wins, a scale-down releases.

The admission policy (``AdmissionHandler``) decides real AdmissionReview bodies against
the two-t3.medium cluster (10 + 11 = 21 free IP slots, worked out by hand in
``test_engine``); ``metrics``-free, flask-free, with a fake clock.
"""

from __future__ import annotations

import copy
import json
import re

from server_fixture import review, server_cluster
from tests import synthetic as s
from webhook.server.app import AdmissionHandler
from webhook.server.review import parse_review
from webhook.state.holder import StateHolder
from webhook.state.snapshot import state_from_objects

N1, N2 = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"
WEB = ("Deployment", "default", "web")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def handler(items=None, ttl=30.0):
    state = state_from_objects(items if items is not None else server_cluster()["items"])
    holder = StateHolder(state)
    holder.mark_ready("test")
    clock = Clock()
    return AdmissionHandler(holder, "enforce", reservation_ttl=ttl, clock=clock), state, clock


def decide(h, obj, **kw):
    return h.decide(parse_review(json.dumps(review(obj, **kw)).encode()))


def free_ips(state) -> int:
    reserved = state.reserved_by_node()
    return sum(15 - state.nodes[n].ip_pods - reserved.get(n, (None, 0, 0))[2] for n in (N1, N2))


def test_repeated_updates_keep_one_reservation_per_workload():
    h, state, _ = handler()
    old, new = s.small_web("web", 2), s.small_web("web", 6)
    assert decide(h, old).allowed
    for _ in range(20):       # re-applies and HPA-style scale requests of the same Deployment
        out = decide(h, new, operation="UPDATE", old=old)
        assert out.allowed and out.fields["reserved"] == 6
        assert list(state.reservations) == [WEB] and free_ips(state) == 21 - 6
    # The next, unrelated Deployment sees 15 free slots, not a stack of 20 promises.
    assert decide(h, s.small_web("other", 15)).allowed
    denied = decide(h, s.small_web("third", 1))
    assert not denied.allowed and not re.search(r"(?<![\w-])-\d", denied.message)
    assert f"node {N1}: 0 IP slots left of 15" in denied.message


def test_scale_down_releases_and_a_no_op_apply_keeps_the_pods_still_to_come():
    h, state, _ = handler()
    six, four, two = s.small_web("web", 6), s.small_web("web", 4), s.small_web("web", 2)
    assert decide(h, six).fields["reserved"] == 6
    relabelled = copy.deepcopy(six)
    relabelled["metadata"]["labels"]["team"] = "a"
    assert decide(h, relabelled, operation="UPDATE", old=six).allowed
    assert sum(state.held(state.reservations[WEB]).values()) == 6          # a label edit releases nothing
    assert decide(h, four, operation="UPDATE", old=six).allowed
    assert sum(state.held(state.reservations[WEB]).values()) == 4 and free_ips(state) == 17
    assert decide(h, two, operation="UPDATE", old=four).allowed
    assert free_ips(state) == 19
    zero = s.small_web("web", 0)
    assert decide(h, zero, operation="UPDATE", old=two).allowed
    assert state.reservations == {} and free_ips(state) == 21


def test_dry_run_leaves_the_reservation_alone():
    h, state, _ = handler()
    assert decide(h, s.small_web("web", 6)).allowed
    assert decide(h, s.small_web("web", 2), operation="UPDATE", old=s.small_web("web", 6), dry_run=True).allowed
    assert sum(state.held(state.reservations[WEB]).values()) == 6


def test_the_reservation_shrinks_as_its_pods_appear_and_is_gone_when_all_have():
    h, state, clock = handler()
    web = s.small_web("web", 6)
    out = decide(h, web)
    assert out.fields["reserved"] == 6
    promised = dict(state.reservations[WEB].per_node)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": s.metadata("web-1", "default", {"app": "web"}, owner=("apps/v1", "Deployment", "web")),
          "spec": {"replicas": 6, "template": web["spec"]["template"]}}
    state.apply(rs)
    nodes = [n for n, c in sorted(promised.items()) for _ in range(c)]
    for i, node in enumerate(nodes):
        state.apply(s.pod(f"web-1-{i}", node_name=node, spec=web["spec"]["template"]["spec"], labels={"app": "web"},
                          owner=("apps/v1", "ReplicaSet", "web-1")))
        assert sum(state.held(state.reservations[WEB]).values()) == 5 - i
        assert free_ips(state) == 21 - 6      # a pod that appears takes its reservation's place
    state.expire_reservations(clock())
    assert state.reservations == {}


def test_the_reservation_expires_after_the_ttl():
    h, state, clock = handler(ttl=30.0)
    assert decide(h, s.small_web("web", 21)).allowed
    assert not decide(h, s.small_web("late", 1)).allowed
    clock.now += 30.0
    assert decide(h, s.small_web("late", 1)).allowed
    assert list(state.reservations) == [("Deployment", "default", "late")]


def test_counts_in_a_deny_message_are_never_negative():
    h, state, _ = handler()
    # Over-promised room (an older server version, or a node that shrank): more held than free.
    state.reserve(WEB, {N1: 14, N2: 14}, state.pods[next(iter(state.pods))].requests, True)
    message = decide(h, s.small_web("next", 11)).message
    assert "11 of 11 pods would stay Pending" in message
    assert f"node {N1}: 0 IP slots left of 15" in message and f"node {N2}: 0 of 15" in message


# ---- room promised to workloads whose pods do not exist yet ------------------------------------
def with_status(obj, **status):
    obj = copy.deepcopy(obj)
    obj["status"] = status
    return obj


def test_a_deployment_without_its_pods_holds_their_room_after_the_ttl_and_the_deny_says_whose():
    h, state, clock = handler(ttl=30.0)
    web21 = s.small_web("web21", 21)
    assert decide(h, web21).fields["reserved"] == 21
    state.apply(web21)                      # the API server stored it: the watch sees it, no pod yet
    assert free_ips(state) == 0             # promise and missing pods are one demand, not two
    clock.now += 31.0                       # the reservation expires; the 21 pods are still wanted
    denied = decide(h, s.small_web("second", 21))
    assert not denied.allowed and "21 of 21 pods would stay Pending" in denied.message
    assert f"node {N1}: 0 IP slots left of 15 on t3.medium (10 reserved for Deployment default/web21)" \
        in denied.message
    assert f"node {N2}: 0 of 15 (11 reserved for Deployment default/web21)" in denied.message
    state.remove("Deployment", "default", "web21")       # deleted: its room is free again
    assert decide(h, s.small_web("second", 21), dry_run=True).allowed


def test_missing_pods_stop_holding_room_as_they_appear_or_the_workload_shrinks():
    _, state, _ = handler()
    web = s.small_web("web", 6)
    state.apply(web)
    assert evaluate_pending(state, 16) == 1             # 21 - 6 promised = 15 left
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": s.metadata("web-1", "default", {"app": "web"}, owner=("apps/v1", "Deployment", "web")),
          "spec": {"replicas": 6, "template": web["spec"]["template"]}}
    state.apply(rs)
    for i in range(3):                                  # three pods appear (still waiting for a node)
        state.apply(s.pod(f"web-1-{i}", spec=web["spec"]["template"]["spec"], labels={"app": "web"},
                          owner=("apps/v1", "ReplicaSet", "web-1")))
    assert state.missing_pods(("Deployment", "default", "web")) == 3
    assert evaluate_pending(state, 16) == 1             # 3 waiting pods + 3 still to come
    state.apply(s.small_web("web", 3))                  # scaled down to the pods it has
    assert evaluate_pending(state, 18) == 0


def test_a_replica_set_that_reports_replica_failure_holds_nothing():
    _, state, _ = handler()
    web = s.small_web("web", 21)
    state.apply(web)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": s.metadata("web-1", "default", {"app": "web"}, owner=("apps/v1", "Deployment", "web")),
          "spec": {"replicas": 21, "template": web["spec"]["template"]}}
    state.apply(rs)
    assert evaluate_pending(state, 1) == 1
    quota = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
             "message": 'pods "web-1-x" is forbidden: exceeded quota: pods'}
    state.apply(with_status(rs, conditions=[quota]))   # the controller cannot create them: they take no room
    assert evaluate_pending(state, 21) == 0


def test_job_parallelism_and_daemon_set_nodes_are_promised_pods_counted_once():
    _, state, _ = handler()
    spec = s.small_web("x", 1)["spec"]["template"]
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": s.metadata("batch", "default"),
           "spec": {"parallelism": 5, "completions": 8, "template": spec}}
    state.apply(with_status(job, succeeded=4))         # 4 completions to go, 5 in parallel: 4 pods
    assert evaluate_pending(state, 17) == 0 and evaluate_pending(state, 18) == 1
    state.apply(with_status(job, succeeded=8, conditions=[{"type": "Complete", "status": "True"}]))
    assert evaluate_pending(state, 21) == 0
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": s.metadata("agent", "default"),
          "spec": {"template": spec}}
    state.apply(with_status(ds, desiredNumberScheduled=2))   # one pod per node, none there yet
    assert evaluate_pending(state, 19) == 0 and evaluate_pending(state, 20) == 1


def evaluate_pending(state, replicas: int) -> int:
    from webhook.engine.evaluate import evaluate

    return evaluate(state, s.small_web("probe", replicas)).pending


def test_a_deny_names_the_other_workloads_holding_room_not_its_own():
    # N1 has 10 free IP slots, N2 11. "a" (12 pods) fills N2 and takes 1 on N1; "b" (9) takes the other 9 of N1.
    # Scaling "a" to 30 sees its own promise as free again: N1 has 10 - 9 = 1 slot, N2 11: 12 placed, 18 Pending.
    # N1's line names b's 9 reserved pods; a's own 1 is not "reserved for" anybody in a's decision.
    h, state, _ = handler()
    a12, b9 = s.small_web("a", 12), s.small_web("b", 9)
    assert decide(h, a12).allowed and decide(h, b9).allowed
    assert state.reservations[("Deployment", "default", "a")].per_node == {N2: 11, N1: 1}
    assert state.reservations[("Deployment", "default", "b")].per_node == {N1: 9}
    denied = decide(h, s.small_web("a", 30), operation="UPDATE", old=a12)
    assert not denied.allowed and "18 of 30 pods would stay Pending" in denied.message
    assert re.search(rf"node {N1}: [^\n]*\(9 reserved for Deployment default/b\)", denied.message), denied.message
