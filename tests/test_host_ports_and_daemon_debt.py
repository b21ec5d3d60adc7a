"""Host ports (the NodePorts filter) and the DaemonSet pods a node still owes.

Host ports: pkg/scheduler/framework/types.go ``HostPortInfo`` (v1.33.13): an empty hostIP
is 0.0.0.0 and an empty protocol TCP (``sanitize``); ports <= 0 bind nothing; a wanted
port on 0.0.0.0 clashes with the same (protocol, port) on any address, a wanted port on
one address clashes with that address and with 0.0.0.0. ``hostNetwork`` pods get their
``hostPort`` defaulted to the ``containerPort`` (pkg/apis/core/v1/defaults.go
``SetDefaults_Pod``).

DaemonSet debt: the DaemonSet controller creates one pod on every node its template's
nodeSelector, node affinity and tolerations admit (pkg/controller/daemon); a node
without that pod yet will lose the pod's requests, one pod slot and, unless the pod is on
the host network, one IP.
"""

import copy

from tests import synthetic as s
from webhook.engine.constraints import PodConstraints, host_ports, ports_conflict
from webhook.engine.daemonsets import owed_by_node
from webhook.state.snapshot import state_from_objects


def ports(*entries, host_network=False, init=()):
    containers = [s.container(f"c{i}", ports=list(group)) for i, group in enumerate(entries)]
    inits = [s.container(f"i{i}", ports=list(group)) for i, group in enumerate(init)]
    extra = {"initContainers": inits} if inits else {}
    return host_ports(s.pod_spec(containers, host_network=host_network, **extra))


def test_only_host_ports_bind_the_node_and_the_defaults_are_tcp_on_every_address():
    assert ports([{"containerPort": 8080}]) == ()                           # no hostPort: nothing bound
    assert ports([{"containerPort": 8080, "hostPort": 0}]) == ()            # 0 binds nothing
    assert ports([{"containerPort": 53, "hostPort": 1}]) == (("TCP", "0.0.0.0", 1),)
    assert ports([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.5"}]) == \
        (("UDP", "10.0.0.5", 53),)


def test_host_network_defaults_every_host_port_to_the_container_port_in_init_containers_too():
    assert ports([{"containerPort": 9100}], [{"containerPort": 9100, "protocol": "UDP"}], host_network=True,
                 init=[[{"containerPort": 8443}]]) == \
        (("TCP", "0.0.0.0", 8443), ("TCP", "0.0.0.0", 9100), ("UDP", "0.0.0.0", 9100))


def test_host_ports_conflict_like_host_port_info_check_conflict():
    anywhere, one, other = ("TCP", "0.0.0.0", 80), ("TCP", "10.0.0.1", 80), ("TCP", "10.0.0.2", 80)
    assert ports_conflict((one,), [one]) is True
    assert ports_conflict((one,), [other]) is False                 # two addresses, one port each
    assert ports_conflict((anywhere,), [one]) is True               # 0.0.0.0 takes the port on every address
    assert ports_conflict((one,), [anywhere]) is True
    assert ports_conflict((("UDP", "0.0.0.0", 80),), [one]) is False   # another protocol
    assert ports_conflict((("TCP", "0.0.0.0", 81),), [one]) is False   # another port
    assert ports_conflict((), [one]) is False


def test_a_pod_with_only_host_ports_is_constrained_and_one_without_anything_is_not():
    spec = s.pod_spec([s.container(ports=[{"containerPort": 80, "hostPort": 8080}])])
    constraints = PodConstraints.from_pod_spec(spec, "default", {"app": "web"})
    assert constraints is not None and constraints.ports == (("TCP", "0.0.0.0", 8080),)
    assert constraints.label_map == {"app": "web"} and constraints.namespace == "default"
    assert PodConstraints.from_pod_spec(s.pod_spec(), "default", {"app": "web"}) is None


# ---- DaemonSet pods owed ------------------------------------------------------------------------

LOGS = s.pod_spec([s.container("shipper", requests={"cpu": "100m", "memory": "200Mi"})])   # takes an IP


_VERSIONS = iter(range(10_000, 20_000))


def daemon(name="logs", spec=LOGS):
    """A stored DaemonSet: every object the API server returns has its own resourceVersion."""
    obj = s.daemonset(name, spec=spec)
    obj["metadata"]["resourceVersion"] = str(next(_VERSIONS))
    return obj


def nodes(*names, **kw):
    return [s.node(n, instance_type=None, allocatable={"cpu": "4", "memory": "16Gi", "pods": "110"}, **kw)
            for n in names]


def test_a_node_without_the_daemon_set_pod_owes_its_requests_a_pod_and_an_ip():
    state = state_from_objects([*nodes("a", "b"), daemon()])
    owed = owed_by_node(state)
    assert set(owed) == {"a", "b"}
    requests, pods, ips = owed["a"]
    assert (requests.cpu, requests.memory, pods, ips) == (100, 200 * 2**20, 1, 1)


def test_a_host_network_daemon_set_owes_no_ip_and_two_daemon_sets_add_up():
    host = daemon("proxy", s.pod_spec([s.container("proxy", requests={"cpu": "50m"})], host_network=True))
    state = state_from_objects([*nodes("a"), daemon(), host])
    requests, pods, ips = owed_by_node(state)["a"]
    assert (requests.cpu, pods, ips) == (150, 2, 1)


def test_the_daemon_set_being_judged_is_left_out_and_other_kinds_change_nothing():
    host = daemon("proxy", s.pod_spec([s.container("proxy", requests={"cpu": "50m"})], host_network=True))
    state = state_from_objects([*nodes("a"), daemon(), host])
    requests, pods, _ = owed_by_node(state, ignore=("DaemonSet", "kube-system", "logs"))["a"]
    assert (requests.cpu, pods) == (50, 1)
    requests, pods, _ = owed_by_node(state, ignore=("Deployment", "kube-system", "logs"))["a"]
    assert (requests.cpu, pods) == (150, 2)


def test_a_node_the_template_does_not_admit_owes_nothing():
    tainted = nodes("gpu", taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}])
    selective = copy.deepcopy(LOGS) | {"nodeSelector": {"role": "logs"}}
    state = state_from_objects([*nodes("a"), *tainted, daemon("logs", selective)])
    assert owed_by_node(state) == {}                       # "a" lacks the label, "gpu" has an untolerated taint
    state = state_from_objects([*nodes("a"), *tainted, daemon()])
    assert set(owed_by_node(state)) == {"a"}


def test_a_node_running_the_pod_or_with_it_waiting_owes_nothing():
    ds = daemon()
    owner = ("apps/v1", "DaemonSet", "logs")
    bound = s.pod("logs-a", "kube-system", "a", spec=LOGS, owner=owner)
    only_b = {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}
    waiting_spec = copy.deepcopy(LOGS) | {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": only_b}}}
    waiting = s.pod("logs-b", "kube-system", spec=waiting_spec, owner=owner)
    state = state_from_objects([*nodes("a", "b", "c"), ds, bound, waiting])
    assert set(owed_by_node(state)) == {"c"}


def test_the_answer_follows_new_nodes_and_a_repeated_question():
    state = state_from_objects([*nodes("a"), daemon()])
    assert set(owed_by_node(state)) == {"a"}
    assert set(owed_by_node(state)) == {"a"}               # asked again: the same answer, from the cache
    state.apply(nodes("b")[0])
    assert set(owed_by_node(state)) == {"a", "b"}
    ds = daemon()
    first = state_from_objects([*nodes("y"), ds])
    second = state_from_objects([*nodes("z"), ds])          # the same stored DaemonSet read twice
    assert set(owed_by_node(first)) == {"y"} and set(owed_by_node(second)) == {"z"}
    assert owed_by_node(second)["z"][1] == 1


def test_a_node_the_daemon_set_skips_does_not_hide_the_nodes_after_it():
    tainted = nodes("gpu", taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}])
    state = state_from_objects([*tainted, *nodes("z"), daemon()])
    assert set(owed_by_node(state)) == {"z"}


def test_a_cordoned_node_still_gets_daemon_set_pods():
    # the DaemonSet controller adds node.kubernetes.io/unschedulable:NoSchedule to the tolerations
    # of its pods (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations)
    state = state_from_objects([*nodes("a", unschedulable=True), daemon()])
    assert set(owed_by_node(state)) == {"a"}


def test_an_unreadable_daemon_set_is_skipped_and_the_others_still_count():
    broken = daemon("broken")
    broken["spec"]["template"]["spec"]["containers"] = [{"name": "x", "resources": {"requests": {"cpu": "lots"}}}]
    state = state_from_objects([*nodes("a"), broken, daemon("logs")])
    requests, pods, _ = owed_by_node(state)["a"]
    assert (requests.cpu, pods) == (100, 1)


def test_a_pod_of_the_judged_daemon_set_does_not_stand_in_for_another_daemon_sets_missing_pod():
    # Judging an update of "logs": node "a" runs a logs pod but no proxy pod yet, so proxy's pod is
    # still owed there. One DaemonSet pod on the node must not count as "every DaemonSet is here".
    proxy = daemon("proxy", s.pod_spec([s.container("proxy", requests={"cpu": "50m"})], host_network=True))
    logs_a = s.pod("logs-a", "kube-system", "a", spec=LOGS, owner=("apps/v1", "DaemonSet", "logs"))
    state = state_from_objects([*nodes("a"), daemon(), proxy, logs_a])
    requests, pods, _ = owed_by_node(state, ignore=("DaemonSet", "kube-system", "logs"))["a"]
    assert (requests.cpu, pods) == (50, 1)
    assert set(owed_by_node(state)) == {"a"}          # proxy's pod, whoever asks
    assert owed_by_node(state)["a"][0].cpu == 50


def test_a_pod_of_a_daemon_set_that_is_gone_does_not_stand_in_for_a_missing_one():
    # an orphan: its DaemonSet was deleted (the pod is still terminating); "logs" still owes its pod on "a"
    orphan = s.pod("old-a", "kube-system", "a", spec=LOGS, owner=("apps/v1", "DaemonSet", "old"))
    state = state_from_objects([*nodes("a"), daemon(), orphan])
    assert owed_by_node(state)["a"][1] == 1


def test_the_parse_cache_tells_two_unstored_versions_of_a_daemon_set_apart():
    # manifests read by `check` carry no resourceVersion: the object itself must key the cache
    first = s.daemonset("logs", spec=LOGS)
    second = s.daemonset("logs", spec=s.pod_spec([s.container("shipper", requests={"cpu": "300m"})]))
    for obj in (first, second):
        del obj["metadata"]["resourceVersion"]
    state = state_from_objects([*nodes("a"), first])
    assert owed_by_node(state)["a"][0].cpu == 100
    state = state_from_objects([*nodes("a"), second])
    assert owed_by_node(state)["a"][0].cpu == 300
