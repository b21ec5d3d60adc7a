"""ClusterState (engine/model.py) fed object by object: what each kind leaves behind, and
that deleting or replacing an object takes back exactly what applying it added.

Oracles: the Kubernetes API defaults (``spec.replicas`` and a Job's ``parallelism`` default
to 1; a Job runs ``min(parallelism, completions - succeeded)`` pods), the scheduler's node
accounting (a Succeeded or Failed pod holds nothing, a node without ``allocatable.pods``
admits 0 pods), AWS's ENI table for t3.medium (3 ENIs x (6 - 1) addresses = 15 pod IPs),
and the contract of each ClusterState field as its docstring states it.
"""

from __future__ import annotations

import copy

import pytest

from tests import synthetic as s
from webhook.engine.model import (
    ClusterState,
    NodeRecord,
    PodRecord,
    Reservation,
    controller_of,
    desired_pods,
    shared_labels,
)
from webhook.engine.requests import ZERO, ObjectError, Resources

WEB = ("ReplicaSet", "web-1")


def _state(*objs) -> ClusterState:
    state = ClusterState()
    for obj in objs:
        state.apply(obj)
    return state


def _pod(name, node=None, owner=None, labels=None, namespace="default", **spec):
    owner_ref = ("apps/v1", *owner) if owner else None
    return s.pod(name, namespace=namespace, node_name=node, labels=labels or {"app": "web"},
                 owner=owner_ref, spec=s.pod_spec(**spec))


def _cpu(millis: str) -> list[dict]:
    return [s.container(requests={"cpu": millis})]


# ---- owner references ------------------------------------------------------------------------
def test_controller_of_reads_only_a_controlling_reference_with_string_kind_and_name():
    def meta(*refs):
        return {"metadata": {"ownerReferences": list(refs)}}

    ref = {"controller": True, "kind": "ReplicaSet", "name": "web-1"}
    assert controller_of(meta(ref)) == ("ReplicaSet", "web-1")
    assert controller_of(meta({**ref, "controller": False}, {**ref, "name": "b"})) == ("ReplicaSet", "b")
    assert controller_of(meta({**ref, "controller": "true"})) is None          # only the JSON true
    assert controller_of(meta({**ref, "name": 5})) is None
    assert controller_of(meta({**ref, "kind": 5})) is None
    assert controller_of(meta("x", ref)) == ("ReplicaSet", "web-1")
    assert controller_of({"metadata": {"ownerReferences": "x"}}) is None
    assert controller_of({}) is None


# ---- nodes ----------------------------------------------------------------------------------------
def test_a_node_record_reads_its_labels_taints_readiness_and_allocatable():
    node = s.node("a", taints=[{"key": "k", "effect": "NoSchedule"}], unschedulable=True,
                  allocatable={"cpu": "2", "memory": "1Gi", "pods": "29", "nvidia.com/gpu": "1"})
    record = _state(node).nodes["a"]
    assert (record.instance_type, record.zone, record.ready, record.unschedulable) == \
        ("t3.medium", "us-east-1a", True, True)
    assert [(t.key, t.value, t.effect) for t in record.taints] == [("k", "", "NoSchedule")]
    assert record.allocatable == Resources(2000, 2**30, 0) and record.allocatable_pods == 29
    assert record.extended == {"nvidia.com/gpu": 1}


def test_a_node_without_allocatable_pods_admits_none_and_the_beta_labels_are_read_too():
    node = s.node("a", instance_type=None, allocatable={"cpu": "2"},
                  labels={"beta.kubernetes.io/instance-type": "m5.large",
                          "failure-domain.beta.kubernetes.io/zone": "eu-west-1b"})
    del node["metadata"]["labels"]["topology.kubernetes.io/zone"]
    node["status"]["conditions"][1]["status"] = "False"
    record = _state(node).nodes["a"]
    assert record.allocatable_pods == 0
    assert (record.instance_type, record.zone, record.ready) == ("m5.large", "eu-west-1b", False)


def test_a_node_with_unreadable_allocatable_pods_names_the_field():
    node = s.node("a", allocatable={"cpu": "2", "pods": "many"})
    with pytest.raises(ObjectError, match=r"^node a status\.allocatable\.pods: "):
        _state(node)


def test_a_pod_seen_before_its_node_is_counted_once_when_the_node_arrives():
    state = _state(_pod("p", "a", containers=_cpu("300m")))
    state.apply(s.node("a"))
    node = state.nodes["a"]
    assert (node.pods, node.ip_pods, node.used.cpu) == (1, 1, 300)
    state.apply(s.node("a", labels={"new": "label"}))           # a node update keeps its sums
    node = state.nodes["a"]
    assert (node.pods, node.ip_pods, node.used.cpu, node.labels["new"]) == (1, 1, 300, "label")


# ---- pods: what a pod adds, and that deleting it takes exactly that back ---------------------------
def test_deleting_a_pod_takes_back_every_sum_it_added():
    gpu = [s.container(requests={"cpu": "250m", "memory": "64Mi", "nvidia.com/gpu": "1"},
                       limits={"nvidia.com/gpu": "1"}, ports=[{"containerPort": 80, "hostPort": 8080}])]
    state = _state(s.node("a", allocatable={**s.T3_MEDIUM_ALLOCATABLE, "nvidia.com/gpu": "4"}),
                   s.pvc("data", volume_name="pv-1"), s.ebs_pv("pv-1", "us-east-1a"))
    pod = _pod("p", "a", containers=gpu, volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    state.apply(pod)
    node = state.nodes["a"]
    assert (node.pods, node.ip_pods, node.used, node.extended_used) == \
        (1, 1, Resources(250, 64 * 2**20), {"nvidia.com/gpu": 1})
    assert node.score_used == Resources(250, 64 * 2**20)
    assert node.ports == {("TCP", "0.0.0.0", 8080): 1}
    assert dict(node.claims) == {"default/data": 1}
    assert state.ebs_volume_count(node) == 1
    state.remove("Pod", "default", "p")
    assert (node.pods, node.ip_pods, node.used, node.score_used) == (0, 0, ZERO, ZERO)
    assert node.extended_used == {"nvidia.com/gpu": 0}
    assert node.ports == {} and dict(node.claims) == {}
    assert state.ebs_volume_count(node) == 0


def test_two_pods_on_one_claim_and_one_port_release_them_one_at_a_time():
    port = [s.container(requests={"cpu": "10m"}, ports=[{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}])]
    volumes = [{"name": "d", "persistentVolumeClaim": {"claimName": "shared"}}]
    state = _state(s.node("a"), _pod("p1", "a", containers=port, volumes=volumes),
                   _pod("p2", "a", containers=port, volumes=volumes))
    node = state.nodes["a"]
    assert node.ports == {("UDP", "0.0.0.0", 53): 2} and dict(node.claims) == {"default/shared": 2}
    state.remove("Pod", "default", "p1")
    assert node.ports == {("UDP", "0.0.0.0", 53): 1} and dict(node.claims) == {"default/shared": 1}
    assert node.pods == 1


def test_the_score_requests_count_the_scheduler_defaults_for_missing_cpu_and_memory():
    state = _state(s.node("a"), _pod("p", "a", containers=[s.container()]))
    node = state.nodes["a"]
    # LeastAllocated scores a container without requests at 100m cpu and 200Mi memory
    assert node.used == ZERO and node.score_used == Resources(100, 200 * 2**20)
    state.remove("Pod", "default", "p")
    assert node.score_used == ZERO


def test_daemonset_pods_are_also_summed_apart_and_other_pods_are_not():
    state = _state(s.node("a"), _pod("ds-1", "a", owner=("DaemonSet", "fluentd"), containers=_cpu("50m")),
                   _pod("web-1", "a", owner=WEB, containers=_cpu("500m")))
    node = state.nodes["a"]
    assert (node.daemon_used.cpu, node.daemon_pods, node.daemon_ip_pods) == (50, 1, 1)
    assert node.used.cpu == 550
    state.remove("Pod", "default", "ds-1")
    assert (node.daemon_used, node.daemon_pods, node.daemon_ip_pods) == (ZERO, 0, 0)


def test_a_host_network_pod_takes_no_pod_ip():
    state = _state(s.node("a"), _pod("h", "a", owner=("DaemonSet", "proxy"), hostNetwork=True))
    node = state.nodes["a"]
    assert (node.pods, node.ip_pods, node.daemon_pods, node.daemon_ip_pods) == (1, 0, 1, 0)


def test_a_finished_pod_holds_nothing():
    for phase in ("Succeeded", "Failed"):
        state = _state(s.node("a"), s.pod("done", node_name="a", phase=phase))
        assert state.pods == {} and state.nodes["a"].pods == 0
        assert PodRecord.from_object(s.pod("done", node_name="a", phase=phase)) is None
    assert PodRecord.from_object(s.pod("run", node_name="a", phase="Running")) is not None


def test_a_pod_record_keeps_priority_owner_gates_and_daemon_rules():
    daemon = PodRecord.from_object(_pod("d", owner=("DaemonSet", "fluentd"), priority=7))
    assert daemon.owner == ("DaemonSet", "fluentd") and daemon.priority == 7
    assert daemon.rules is not None and daemon.rules.daemon is True
    plain = PodRecord.from_object(_pod("p", owner=WEB, priority=True))
    assert plain.rules is not None and plain.rules.daemon is False and plain.priority == 0
    assert PodRecord.from_object(_pod("q")).priority == 0
    gated = PodRecord.from_object(_pod("g", schedulingGates=[{"name": "wait"}]))
    assert gated.gated is True
    bound = PodRecord.from_object(_pod("b", "a", schedulingGates=[{"name": "wait"}]))
    assert bound.gated is False and bound.rules is None
    assert PodRecord.from_object({"kind": "Pod", "metadata": {"name": "n"}, "spec": {}}).namespace == "default"


def test_waiting_pods_are_pending_unless_gated_and_leave_pending_when_bound_or_deleted():
    state = _state(s.node("a"), _pod("w"), _pod("g", schedulingGates=[{"name": "x"}]))
    assert set(state.pending) == {("default", "w")}
    state.apply(_pod("w", "a"))
    assert state.pending == {} and state.nodes["a"].pods == 1
    state.apply(_pod("v"))
    state.remove("Pod", None, "v")              # no namespace on a DELETED event: "default"
    assert state.pending == {} and ("default", "v") not in state.pods


def test_bound_pods_are_indexed_by_labels_and_priority_and_the_index_empties():
    state = _state(s.node("a"), _pod("p1", "a", priority=5), _pod("p2", "a", priority=5),
                   _pod("p3", "a", labels={"app": "db"}))
    web = ("default", (("app", "web"),))
    assert state.label_index[web] == {"a": 2}
    assert state.bound_priorities == {5: 2, 0: 1}
    state.remove("Pod", "default", "p1")
    assert state.label_index[web] == {"a": 1} and state.bound_priorities == {5: 1, 0: 1}
    state.remove("Pod", "default", "p2")
    assert web not in state.label_index and state.bound_priorities == {0: 1}
    state.remove("Pod", "default", "p3")
    assert state.label_index == {} and state.bound_priorities == {}


def test_bound_pods_with_required_anti_affinity_are_kept_apart_until_deleted():
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    state = _state(s.node("a"), _pod("loner", "a", affinity=anti), _pod("plain", "a"))
    assert list(state.anti_pods) == [("default", "loner")]
    state.remove("Pod", "default", "loner")
    assert state.anti_pods == {}


def test_pods_are_indexed_by_owner_and_leave_the_index_when_deleted():
    state = _state(_pod("a1", owner=WEB), _pod("a2", owner=WEB))
    assert state.pods_by_owner[("ReplicaSet", "default", "web-1")] == {("default", "a1"), ("default", "a2")}
    state.remove("Pod", "default", "a1")
    assert state.pods_by_owner[("ReplicaSet", "default", "web-1")] == {("default", "a2")}


def test_a_status_only_update_touches_no_sum_and_no_epoch():
    pod = _pod("ds", "a", owner=("DaemonSet", "fluentd"))
    state = _state(s.node("a"), pod)
    state.rooms_dirty.clear()
    epoch = state.daemon_epoch
    again = copy.deepcopy(pod)
    again["status"]["podIP"] = "10.0.0.99"
    state.apply(again)
    assert state.rooms_dirty == set() and state.daemon_epoch == epoch and state.nodes["a"].pods == 1


def test_only_daemonset_pods_nodes_and_daemonsets_move_the_daemon_epoch():
    state = _state()
    epoch = state.daemon_epoch
    state.apply(_pod("web", owner=WEB))
    state.remove("Pod", "default", "web")
    state.apply(s.deployment("web"))
    assert state.daemon_epoch == epoch
    for change in (lambda: state.apply(_pod("ds", owner=("DaemonSet", "x"))),
                   lambda: state.remove("Pod", "default", "ds"),
                   lambda: state.apply(s.node("a")), lambda: state.remove("Node", None, "a"),
                   lambda: state.apply(s.daemonset("x")), lambda: state.remove("DaemonSet", "kube-system", "x")):
        change()
        assert state.daemon_epoch != epoch
        epoch = state.daemon_epoch


def test_a_known_node_is_marked_dirty_other_room_changes_move_the_epoch():
    state = _state()
    epoch = state.rooms_epoch
    state.apply(s.node("a"))                    # a new node: every room may move
    assert state.rooms_epoch != epoch
    epoch = state.rooms_epoch
    state.rooms_dirty.clear()
    state.apply(s.node("a", labels={"x": "y"}))     # a known node: only its room
    assert state.rooms_epoch == epoch and state.rooms_dirty == {"a"}
    for neutral in (s.deployment("web"), s.namespace("ns"), s.storage_class("gp3"), _pod("p")):
        state.apply(neutral)
    state.remove("Deployment", "default", "web")
    state.remove("StorageClass", None, "gp3")
    assert state.rooms_epoch == epoch
    for moving in (lambda: state.apply(s.daemonset("x")), lambda: state.remove("Node", None, "a"),
                   lambda: state.apply(s.csinode("a")), lambda: state.remove("CSINode", None, "a")):
        moving()
        assert state.rooms_epoch != epoch
        epoch = state.rooms_epoch


# ---- shared requests and labels -----------------------------------------------------------------
def test_pods_of_one_template_share_their_requests_and_labels():
    one = s.pod_spec([s.container(requests={"cpu": "123m", "memory": "7Mi"})])
    other = s.pod_spec([s.container(requests={"cpu": "321m"})])
    state = _state(*(s.pod(f"a{i}", spec=one, labels={"app": "a", "n": "1"}) for i in range(2)),
                   s.pod("b", spec=other, labels={"app": "b"}),
                   s.pod("a3", spec=one, labels={"app": "a", "n": "1"}))
    first, second, third = (state.pods[("default", n)] for n in ("a0", "a1", "a3"))
    assert first.requests is second.requests is third.requests
    assert first.labels is second.labels is third.labels == (("app", "a"), ("n", "1"))
    assert state.pods[("default", "b")].requests == Resources(321, 0)


def test_pods_that_differ_only_in_limits_do_not_share_requests():
    # requests default to limits: 1 cpu and 2 cpus, for app and init containers alike
    def spec(cpus):
        return s.pod_spec([s.container(limits={"cpu": cpus})])

    def init_spec(cpus):
        return s.pod_spec(_cpu("100m"), initContainers=[s.container("init", limits={"cpu": cpus})])

    def init_requests(cpus):
        return s.pod_spec(_cpu("100m"), initContainers=[s.container("init", requests={"cpu": cpus})])

    state = _state(s.pod("one", spec=spec("1")), s.pod("two", spec=spec("2")),
                   s.pod("i3", spec=init_spec("3")), s.pod("i4", spec=init_spec("4")),
                   s.pod("r5", spec=init_requests("5")), s.pod("r6", spec=init_requests("6")))
    assert [state.pods[("default", n)].requests.cpu for n in ("one", "two", "i3", "i4", "r5", "r6")] == \
        [1000, 2000, 3000, 4000, 5000, 6000]


def test_a_sidecar_and_an_init_container_with_equal_resources_are_told_apart():
    # restartPolicy Always makes an init container a sidecar: its requests add to the app's
    sidecar = s.container("side", requests={"cpu": "200m"}, restartPolicy="Always")
    plain = s.container("side", requests={"cpu": "200m"})
    state = _state(s.pod("with-sidecar", spec=s.pod_spec(_cpu("300m"), initContainers=[sidecar])),
                   s.pod("with-init", spec=s.pod_spec(_cpu("300m"), initContainers=[plain])))
    assert state.pods[("default", "with-sidecar")].requests.cpu == 500
    assert state.pods[("default", "with-init")].requests.cpu == 300


def test_overhead_is_part_of_the_shared_requests():
    state = _state(s.pod("o", spec=s.pod_spec(_cpu("100m"), overhead={"cpu": "250m"})),
                   s.pod("n", spec=s.pod_spec(_cpu("100m"))))
    assert state.pods[("default", "o")].requests.cpu == 350
    assert state.pods[("default", "n")].requests.cpu == 100


def test_an_unreadable_quantity_is_an_object_error_naming_the_field():
    pod = s.pod("x", spec=s.pod_spec([s.container(requests={"cpu": ["1"]})]))
    with pytest.raises(ObjectError, match=r"spec\.containers\[0\]\.resources\.requests\.cpu"):
        _state(pod)


def test_shared_labels_are_sorted_string_items_and_nothing_for_anything_else():
    assert shared_labels({"b": "2", "a": "1"}) == (("a", "1"), ("b", "2"))
    assert shared_labels({"n": 1}) == (("n", "1"),)
    assert shared_labels({}) == () and shared_labels(None) == ()
    assert shared_labels(["app"]) == () and shared_labels("app=web") == ()


# ---- shape checks while feeding ------------------------------------------------------------------
def test_apply_or_skip_checks_pods_unless_typed_and_stored_kinds_always():
    bad_labels = _pod("p", labels={"app": "web"})
    bad_labels["metadata"]["labels"]["n"] = 1
    state = _state()
    note = state.apply_or_skip(bad_labels)
    assert note == "Pod default/p: metadata.labels.n: must be a string, got an integer"
    assert state.pods == {}
    assert state.apply_or_skip(bad_labels) is None and state.skipped == [note]      # noted once
    assert state.apply_or_skip(bad_labels, typed=True) is None                       # the API server's: trusted
    assert ("default", "p") in state.pods
    node = s.node("n")
    node["spec"]["unschedulable"] = "yes"
    assert state.apply_or_skip(node, typed=True) == "Node n: spec.unschedulable: must be a boolean, got a string"
    assert "n" not in state.nodes


def test_apply_or_skip_remembers_the_last_200_notes():
    state = _state()
    for i in range(205):
        state.apply_or_skip({"kind": "Node", "metadata": {"name": f"n{i}", "labels": []}})
    assert len(state.skipped) == 200
    assert state.skipped[0].startswith("Node n5: ") and state.skipped[-1].startswith("Node n204: ")


def test_apply_or_skip_notes_an_object_that_is_not_an_object_instead_of_raising():
    state = _state()
    note = state.apply_or_skip(["x"])
    assert note is not None and note.startswith("list ") and state.skipped == [note]


# ---- workloads: desired pods -----------------------------------------------------------------------
def test_desired_pods_follow_the_api_defaults_and_the_job_controller():
    assert desired_pods(s.deployment("d", replicas=3)) == 3
    absent = s.deployment("d")
    del absent["spec"]["replicas"]
    assert desired_pods(absent) == 1                    # replicas defaults to 1
    for value, want in ((0, 0), (-1, 1), (True, 1), ("3", 1), (2.0, 1)):
        absent["spec"]["replicas"] = value
        assert desired_pods(absent) == want, value
    assert desired_pods(s.statefulset("s", replicas=4)) == 4
    bare = {"kind": "ReplicaSet", "metadata": {"name": "r"}, "spec": {"replicas": 2}}
    assert desired_pods(bare) == 2
    owned = {**bare, "metadata": {"name": "r", "ownerReferences": [
        {"controller": True, "kind": "Deployment", "name": "d"}]}}
    assert desired_pods(owned) is None                  # its Deployment counts
    assert desired_pods(s.daemonset("ds")) is None
    assert desired_pods({"kind": "CronJob", "spec": {}}) is None


def test_a_job_wants_its_parallelism_capped_by_the_completions_left():
    assert desired_pods(s.job("j", parallelism=3)) == 3
    assert desired_pods(s.job("j", parallelism=None)) == 1           # parallelism defaults to 1
    assert desired_pods(s.job("j", parallelism=0)) == 0
    assert desired_pods(s.job("j", parallelism=10, completions=4)) == 4
    done_some = s.job("j", parallelism=10, completions=4)
    done_some["status"] = {"succeeded": 3}
    assert desired_pods(done_some) == 1
    done_some["status"] = {"succeeded": 6}
    assert desired_pods(done_some) == 0
    done_some["status"] = {"succeeded": True}
    assert desired_pods(done_some) == 4


def test_a_suspended_complete_or_failed_job_wants_nothing_and_a_malformed_condition_is_ignored():
    suspended = s.job("j", parallelism=2)
    suspended["spec"]["suspend"] = True
    assert desired_pods(suspended) is None
    for kind in ("Complete", "Failed"):
        finished = s.job("j", parallelism=2)
        finished["status"] = {"conditions": [{"type": kind, "status": "True"}]}
        assert desired_pods(finished) is None
        finished["status"] = {"conditions": [{"type": kind, "status": "False"}]}
        assert desired_pods(finished) == 2
    odd = s.job("j", parallelism=2)
    odd["status"] = {"conditions": ["Complete"]}
    assert desired_pods(odd) == 2


def test_a_workload_short_of_pods_is_missing_the_difference_until_its_pods_exist():
    state = _state(s.deployment("web", replicas=3))
    key = ("Deployment", "default", "web")
    assert state.short == {key} and state.missing_pods(key) == 3
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [
        {"controller": True, "kind": "Deployment", "name": "web"}]}, "spec": {"replicas": 3}}
    state.apply(rs)
    assert state.parents[("ReplicaSet", "default", "web-1")] == key
    for i in range(2):
        state.apply(_pod(f"p{i}", owner=WEB))
    assert state.missing_pods(key) == 1 and state.pod_count(key) == 2
    state.apply(_pod("p2", owner=WEB))
    assert state.short == set() and state.missing_pods(key) == 0
    state.remove("Pod", "default", "p2")
    assert state.missing_pods(key) == 1
    assert state.missing_pods(("Deployment", "default", "unknown")) == 0


def test_a_replica_failure_of_the_replicaset_stops_the_deployment_counting_as_short():
    state = _state(s.deployment("web", replicas=3))
    key = ("Deployment", "default", "web")
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [
        {"controller": True, "kind": "Deployment", "name": "web"}]}, "spec": {"replicas": 3},
        "status": {"conditions": [{"type": "ReplicaFailure", "status": "True"}]}}
    state.apply(rs)
    assert state.cannot_create(key) and state.missing_pods(key) == 0 and key not in state.short
    del rs["status"]
    state.apply(rs)
    assert not state.cannot_create(key) and state.missing_pods(key) == 3


def test_removing_a_workload_forgets_its_count_and_rechecks_its_parent():
    state = _state(s.deployment("web", replicas=2))
    key = ("Deployment", "default", "web")
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [
        {"controller": True, "kind": "Deployment", "name": "web"}]}, "spec": {"replicas": 2}}
    state.apply(rs)
    state.apply(_pod("p0", owner=WEB))
    state.apply(_pod("p1", owner=WEB))
    assert key not in state.short
    state.remove("ReplicaSet", "default", "web-1")      # its pods no longer count for the Deployment
    assert state.short == {key} and state.missing_pods(key) == 2
    assert state.children[key] == set()
    state.remove("Deployment", "default", "web")
    assert state.short == set() and key not in state.desired and key not in state.workloads


def test_the_aws_node_daemonset_sets_the_cni_and_its_removal_resets_it():
    state = _state(s.aws_node(prefix_delegation=True))
    assert state.cni.aws_vpc_cni and state.cni.prefix_delegation
    for name, namespace in (("kube-proxy", "kube-system"), ("aws-node", "default")):
        other = s.daemonset(name, namespace=namespace)
        state.apply(other)
        state.remove("DaemonSet", namespace, name)
        assert state.cni.prefix_delegation, (name, namespace)
    state.remove("DaemonSet", "kube-system", "aws-node")
    assert not state.cni.aws_vpc_cni and not state.cni.prefix_delegation


def test_ip_capacity_follows_a_cni_change():
    state = _state(s.node("a"))
    node = state.nodes["a"]
    assert state.ip_capacity(node).slots is None                # no VPC CNI: pod IPs are not the limit
    state.apply(s.aws_node())
    assert state.ip_capacity(node).slots == 15                  # t3.medium: 3 ENIs x (6 - 1)


def test_a_stored_workload_drops_managed_fields_status_and_the_last_applied_annotation():
    deployment = s.deployment("web", annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                                  "team": "a"})
    deployment["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    kept = _state(deployment).workloads[("Deployment", "default", "web")]
    assert "status" not in kept and "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"team": "a"}
    assert kept["spec"]["replicas"] == 1


def test_top_owner_walks_to_what_the_user_applied_and_pods_of_collects_through_children():
    state = _state(s.deployment("web"))
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [
        {"controller": True, "kind": "Deployment", "name": "web"}]}, "spec": {"replicas": 1}}
    state.apply(rs)
    state.apply(_pod("p", owner=WEB))
    assert state.top_owner(("ReplicaSet", "default", "web-1")) == ("Deployment", "default", "web")
    assert state.top_owner(("Deployment", "default", "web")) == ("Deployment", "default", "web")
    assert [p.name for p in state.pods_of(("Deployment", "default", "web"))] == ["p"]
    assert [p.name for p in state.pods_of(("ReplicaSet", "default", "web-1"))] == ["p"]
    # an owner that is not a workload kind (a custom controller) stops the walk
    state.parents[("Deployment", "default", "web")] = ("Rollout", "default", "r")
    assert state.top_owner(("ReplicaSet", "default", "web-1")) == ("Deployment", "default", "web")


# ---- the other kinds ----------------------------------------------------------------------------
def test_namespaces_priority_classes_and_quotas_are_kept_as_read():
    state = _state(s.namespace("team", labels={"tier": "gold"}))
    assert state.namespace_labels("team")["tier"] == "gold"
    assert state.namespace_labels("unknown") == {}
    state.apply({"kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000, "globalDefault": True})
    state.apply({"kind": "PriorityClass", "metadata": {"name": "none"}})
    state.apply({"kind": "PriorityClass", "metadata": {"name": "odd"}, "value": True,
                 "preemptionPolicy": "Never"})
    assert state.priority_classes == {
        "high": {"value": 1000, "globalDefault": True, "preemptionPolicy": "PreemptLowerPriority"},
        "none": {"value": 0, "globalDefault": False, "preemptionPolicy": "PreemptLowerPriority"},
        "odd": {"value": 0, "globalDefault": False, "preemptionPolicy": "Never"}}
    selector = {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}
    state.apply({"kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "team"},
                 "spec": {"hard": {"pods": "5"}, "scopeSelector": selector}})
    assert state.resource_quotas["team"]["q"] == {"hard": {"pods": "5"}, "scopes": [], "scopeSelector": selector,
                                                  "status_hard": None, "used": {}}
    state.remove("ResourceQuota", "team", "q")
    state.remove("PriorityClass", None, "high")
    state.remove("Namespace", None, "team")
    assert state.resource_quotas["team"] == {} and "high" not in state.priority_classes
    assert state.namespace_labels("team") == {}


def test_a_karpenter_node_pool_defaults_its_class_kind_to_ec2nodeclass():
    def pool(ref):
        return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "p"},
                "spec": {"template": {"spec": {"nodeClassRef": ref}}, "limits": {"cpu": "10"}}}

    state = _state(pool({"name": "default"}))
    assert state.node_pools["p"]["nodeClassRef"] == ("EC2NodeClass", "default")
    assert state.node_pools["p"]["spec"] == {"limits": {"cpu": "10"}}
    state.apply(pool({"kind": "OtherClass", "name": "x"}))
    assert state.node_pools["p"]["nodeClassRef"] == ("OtherClass", "x")
    state.apply(pool({"kind": "OtherClass"}))
    assert state.node_pools["p"]["nodeClassRef"] is None
    other = pool({"name": "y"})
    other["apiVersion"] = "example.com/v1"
    state.apply({**other, "metadata": {"name": "q"}})
    assert "q" not in state.node_pools


# ---- EBS volumes on a node -----------------------------------------------------------------------
def test_ebs_volumes_count_attachments_and_mounted_claims_of_ebs_volumes_only():
    claim = {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}
    nfs = {"kind": "PersistentVolume", "metadata": {"name": "nfs-1"}, "spec": {"nfs": {"server": "x"}}}
    intree = {"kind": "PersistentVolume", "metadata": {"name": "old-1"}, "spec": {"awsElasticBlockStore": {
        "volumeID": "vol-1"}}}
    state = _state(s.node("a"), s.pvc("data", volume_name="pv-1"), s.ebs_pv("pv-1", "us-east-1a"),
                   s.pvc("files", volume_name="nfs-1"), nfs, s.pvc("legacy", volume_name="old-1"), intree,
                   s.pvc("unbound"), s.pvc("lost", volume_name="missing"),
                   _pod("p", "a", volumes=[claim, {"name": "f", "persistentVolumeClaim": {"claimName": "files"}},
                                           {"name": "l", "persistentVolumeClaim": {"claimName": "legacy"}},
                                           {"name": "u", "persistentVolumeClaim": {"claimName": "unbound"}},
                                           {"name": "m", "persistentVolumeClaim": {"claimName": "lost"}}]))
    node = state.nodes["a"]
    assert state.ebs_volumes_on(node) == {"pv-1", "old-1"}
    assert state.ebs_volume_count(node) == 2


def test_volume_attachments_count_for_their_node_until_moved_or_removed():
    def attachment(node, attacher="ebs.csi.aws.com", pv="pv-9"):
        return {"kind": "VolumeAttachment", "metadata": {"name": "va"},
                "spec": {"attacher": attacher, "nodeName": node, "source": {"persistentVolumeName": pv}}}

    state = _state(s.node("a"), s.node("b"), attachment("a"))
    a, b = state.nodes["a"], state.nodes["b"]
    assert state.ebs_volume_count(a) == 1 and state.ebs_volumes_on(a) == {"pv-9"}
    state.apply(attachment("b"))
    assert (state.ebs_volume_count(a), state.ebs_volume_count(b)) == (0, 1)
    state.remove("VolumeAttachment", None, "va")
    assert (state.ebs_volume_count(a), state.ebs_volume_count(b)) == (0, 0)
    state.apply(attachment("a", attacher="efs.csi.aws.com"))
    assert state.ebs_volume_count(a) == 0


def test_csinode_gives_the_ebs_attach_limit_of_its_node():
    state = _state(s.csinode("a", ebs_count=25))
    assert state.csinode_ebs_limit == {"a": 25}
    other = s.csinode("a", ebs_count=25)
    other["spec"]["drivers"][0]["name"] = "efs.csi.aws.com"
    state.apply(other)
    assert state.csinode_ebs_limit == {}
    state.apply(s.csinode("a", ebs_count=11))
    state.remove("CSINode", None, "a")
    assert state.csinode_ebs_limit == {}


# ---- reservations ---------------------------------------------------------------------------------
R = Resources(100, 2**20)
DEPLOY = ("Deployment", "default", "web")


def test_reserve_keeps_one_promise_per_workload_without_zero_counts():
    state = _state(s.node("a"), s.node("b"))
    held = state.reserve(DEPLOY, {"a": 2, "b": 0}, R, uses_ip=True)
    assert held is state.reservations[DEPLOY]
    assert (held.per_node, held.base, held.base_total, held.branch_eni, held.uid) == ({"a": 2}, {"a": 0}, 0, False, "")
    assert state.reserved_branch_enis() == {}
    assert state.reserve(DEPLOY, {"a": 0}, R, uses_ip=True) is None
    assert state.reservations == {}


def test_a_promise_shrinks_as_the_pods_appear():
    state = _state(s.deployment("web", replicas=3), s.node("a"), s.node("b"))
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [
        {"controller": True, "kind": "Deployment", "name": "web"}]}, "spec": {"replicas": 3}}
    state.apply(rs)
    state.apply(_pod("old", "a", owner=WEB))
    held = state.reserve(DEPLOY, {"a": 1, "b": 2}, R, uses_ip=True)
    assert (held.base, held.base_total) == ({"a": 1, "b": 0}, 1)
    assert state.held(held) == {"a": 1, "b": 2}
    state.apply(_pod("n1", "b", owner=WEB))
    assert state.held(held) == {"a": 1, "b": 1}
    state.apply(_pod("n2", owner=WEB))                   # waiting: it shrinks the total, from the last node
    assert state.held(held) == {"a": 1}
    state.apply(_pod("n3", "a", owner=WEB))
    assert state.held(held) == {}
    assert state.expire_reservations(now=0.0) == 1 and state.reservations == {}


def test_reserved_sums_per_node_leave_out_the_excluded_workload():
    state = _state(s.node("a"), s.node("b"))
    state.reserve(("Deployment", "default", "first"), {"a": 1}, R, uses_ip=True, branch_eni=True)
    state.reserve(DEPLOY, {"a": 2, "b": 1}, R, uses_ip=False)
    state.reserve(("Deployment", "default", "last"), {"b": 3}, R, uses_ip=True)
    assert state.reserved_by_node() == {"a": (R.scaled(3), 3, 1), "b": (R.scaled(4), 4, 3)}
    first = ("Deployment", "default", "first")
    assert state.reserved_by_node(exclude=first) == {"a": (R.scaled(2), 2, 0), "b": (R.scaled(4), 4, 3)}
    assert state.reserved_owners(exclude=first) == {"a": {DEPLOY: 2}, "b": {DEPLOY: 1, ("Deployment", "default",
                                                                                        "last"): 3}}
    assert state.reserved_branch_enis() == {"a": 1} and state.reserved_branch_enis(exclude=first) == {}


def test_reservations_expire_at_their_time_and_expire_counts_them():
    state = _state(s.node("a"))
    state.reserve(DEPLOY, {"a": 1}, R, uses_ip=True, expires_at=10.0)
    state.reserve(("Deployment", "default", "x"), {"a": 1}, R, uses_ip=True, expires_at=20.0)
    assert state.expire_reservations(9.5) == 0
    assert state.expire_reservations(10.0) == 1 and list(state.reservations) == [("Deployment", "default", "x")]


def test_trimmed_cuts_a_promise_to_the_pods_still_to_come_keeping_the_fullest_nodes():
    state = _state(s.node("a"), s.node("b"), s.node("c"))
    held = state.reserve(DEPLOY, {"a": 3, "b": 2, "c": 1}, R, uses_ip=True)
    assert state.trimmed(held, 6) is held
    assert state.trimmed(held, 4).per_node == {"a": 3, "b": 1}
    assert state.trimmed(held, 1).per_node == {"a": 1}
    assert state.trimmed(held, 0) is None


def test_a_bare_pods_promise_counts_that_pod():
    state = _state(s.node("a"))
    key = ("Pod", "default", "solo")
    held = state.reserve(key, {"a": 1}, R, uses_ip=True)
    assert (held.base, held.base_total) == ({"a": 0}, 0)
    state.apply(_pod("solo", "a"))
    assert state.held(held) == {}
    other = state.reserve(("Pod", "default", "later"), {"a": 1}, R, uses_ip=True)
    assert state.held(other) == {"a": 1}


def test_promise_is_what_reserve_would_store_without_storing_it():
    state = _state(s.node("a"))
    held = state.promise(DEPLOY, {"a": 2}, R, uses_ip=True, expires_at=5.0, uid="u1")
    assert (held.per_node, held.expires_at, held.uid, held.branch_eni) == ({"a": 2}, 5.0, "u1", False)
    assert state.reservations == {}
    assert state.promise(DEPLOY, {}, R, uses_ip=True) is None


def test_ip_capacity_of_a_node_the_state_was_not_fed():
    # a node record built apart (no Node object applied): the instance type's rule alone
    state = _state(s.aws_node())
    assert state.network.nodes == {}
    assert state.ip_capacity(NodeRecord.from_object(s.node("new"))).slots == 15      # 3 x (6 - 1)


def test_a_reservation_read_without_a_base_counts_no_pod_at_promise_time():
    # a ledger entry without "base": nothing was on the node when it was promised
    state = _state(s.deployment("web", replicas=4), s.node("a"))
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [
        {"controller": True, "kind": "Deployment", "name": "web"}]}, "spec": {"replicas": 4}}
    state.apply(rs)
    state.apply(_pod("n1", "a", owner=WEB))
    held = Reservation(DEPLOY, {"a": 2}, R, True, None, {}, 2)
    assert state.held(held) == {"a": 1}          # 0 + 2 - 1 on a; the cap 2 + 2 - 1 = 3 does not bind
