"""ConstraintState: the scheduler's InterPodAffinity, PodTopologySpread and NodePorts filters
for one kind of incoming pod, node by node, as pods land.

The oracle is the v1.33 scheduler source (pkg/scheduler/framework/plugins):
* podtopologyspread/filtering.go: a node passes when
  ``matchNum + selfMatchNum - minMatchNum <= maxSkew``; ``minMatchNum`` is 0 while fewer
  domains than ``minDomains`` are eligible; a node without the topology key is refused;
  only nodes carrying every constraint's key, and (common.go ``matchNodeInclusionPolicies``)
  matching the pod's node affinity (``nodeAffinityPolicy: Honor``, the default) and
  tolerating its NoSchedule/NoExecute taints (``nodeTaintsPolicy: Honor``; default Ignore),
  are domains, and only their pods are counted.
* interpodaffinity/filtering.go: a required affinity term needs a matching pod in the
  node's domain, unless no pod anywhere matches and the pod matches its own terms (the
  first pod of a group); a node without the term's topology key fails. Anti-affinity
  refuses a domain holding a matching pod, and an existing pod's required anti-affinity
  that matches the incoming pod refuses its domain (the symmetric rule).
* nodeports/node_ports.go: a host port already bound on the node refuses it.
"""

from __future__ import annotations

from tests import synthetic as s

from webhook.engine.constraint_state import AFFINITY, ANTI_AFFINITY, HOST_PORT, SPREAD, ConstraintState
from webhook.engine.model import ClusterState, PodRecord

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"
APP = {"app": "web"}


def _nodes(*specs) -> list[dict]:
    """(name, zone or None, extra labels, taints) -> Node objects; a zone of None: no zone label."""
    out = []
    for name, zone, labels, taints in specs:
        obj = s.node(name, instance_type=None, zone=zone or "us-east-1a", labels=labels, taints=taints)
        if zone is None:
            del obj["metadata"]["labels"][ZONE]
        out.append(obj)
    return out


def _state(nodes, pods=()) -> ClusterState:
    state = ClusterState()
    for obj in [*nodes, *pods]:
        state.apply(obj)
    return state


def _bound(name, node, labels=APP, namespace="default", **spec):
    return s.pod(name, namespace=namespace, node_name=node, labels=labels, spec=s.pod_spec(**spec))


def _incoming(labels=APP, namespace="default", **spec) -> PodRecord:
    record = PodRecord.from_object(s.pod("incoming", namespace=namespace, labels=labels, spec=s.pod_spec(**spec)))
    assert record is not None and record.rules is not None and record.rules.constraints is not None
    return record


def _watch(state, pod: PodRecord, extra=(), removed=()) -> ConstraintState:
    return ConstraintState(state, pod.rules.constraints, pod.rules, state.nodes.values(), extra, removed)


def _refusals(watch: ConstraintState, state: ClusterState) -> dict:
    return {name: watch.refusal(node) for name, node in sorted(state.nodes.items())}


def _spread(key=ZONE, max_skew=1, **extra) -> list[dict]:
    return [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": APP}, **extra}]


def _anti(key=HOST, labels=APP) -> dict:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": labels}, "topologyKey": key}]}}


def _affinity(key=ZONE, labels=APP) -> dict:
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": labels}, "topologyKey": key}]}}


def _anti_spec(key=HOST) -> dict:
    return {"affinity": _anti(key)}


# ---- PodTopologySpread -----------------------------------------------------------------------
def test_spread_skew_is_match_plus_self_minus_the_global_minimum():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()), ("c", "z3", {}, ()))
    state = _state(nodes, [_bound("p1", "a"), _bound("p2", "a"), _bound("p3", "b")])
    watch = _watch(state, _incoming(topologySpreadConstraints=_spread()))
    # z1 2, z2 1, z3 0: a 2 + 1 - 0 = 3 > 1; b 1 + 1 - 0 = 2 > 1; c 0 + 1 - 0 = 1
    assert _refusals(watch, state) == {"a": SPREAD, "b": SPREAD, "c": None}
    wide = _watch(state, _incoming(topologySpreadConstraints=_spread(max_skew=2)))
    assert _refusals(wide, state) == {"a": SPREAD, "b": None, "c": None}


def test_a_node_without_the_topology_key_is_no_domain_and_is_refused_and_does_not_stop_the_others():
    # "a" comes first and has no zone label: it is skipped, the domains after it still count
    nodes = _nodes(("a", None, {}, ()), ("b", "z1", {}, ()), ("c", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "b")])
    watch = _watch(state, _incoming(topologySpreadConstraints=_spread()))
    assert watch.spread_counts == [{"z1": 1, "z2": 0}]
    assert _refusals(watch, state) == {"a": SPREAD, "b": SPREAD, "c": None}


def test_min_domains_makes_the_minimum_zero_while_fewer_domains_exist():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "a"), _bound("p2", "b")])
    # two domains with 1 each: the minimum is 1, 1 + 1 - 1 = 1 <= 1 everywhere
    assert _refusals(_watch(state, _incoming(topologySpreadConstraints=_spread(minDomains=2))), state) == \
        {"a": None, "b": None}
    # minDomains 3 > 2 eligible domains: the minimum is 0, 1 + 1 - 0 = 2 > 1 everywhere
    assert _refusals(_watch(state, _incoming(topologySpreadConstraints=_spread(minDomains=3))), state) == \
        {"a": SPREAD, "b": SPREAD}


def test_a_pod_that_does_not_match_its_own_selector_adds_no_self_match():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "a")])
    watch = _watch(state, _incoming(labels={"app": "other"}, topologySpreadConstraints=_spread()))
    # z1 1, z2 0; selfMatchNum 0: a 1 + 0 - 0 = 1 <= 1
    assert _refusals(watch, state) == {"a": None, "b": None}
    assert watch.changes_as_placed is False        # placing it moves no count
    watch.observe_self(state.nodes["b"])
    assert watch.spread_counts == [{"z1": 1, "z2": 0}]


def test_node_affinity_policy_honor_leaves_nodes_the_pod_cannot_use_out_of_the_domains():
    # "c" (no disk=ssd) comes first; the pod's nodeSelector excludes it from the domains
    nodes = _nodes(("c", "z3", {}, ()), ("a", "z1", {"disk": "ssd"}, ()), ("b", "z2", {"disk": "ssd"}, ()))
    pods = [_bound("p1", "a"), _bound("p2", "a"), _bound("p3", "c"), _bound("p4", "c"), _bound("p5", "c")]
    state = _state(nodes, pods)
    honor = _watch(state, _incoming(nodeSelector={"disk": "ssd"}, topologySpreadConstraints=_spread()))
    assert honor.spread_counts == [{"z1": 2, "z2": 0}]        # c's three pods are not counted
    assert honor.refusal(state.nodes["a"]) == SPREAD           # 2 + 1 - 0 = 3 > 1
    assert honor.refusal(state.nodes["b"]) is None
    # a node outside the domains: "matchNum" is 0 when its value is no domain (filtering.go)
    assert honor.refusal(state.nodes["c"]) is None             # 0 + 1 - 0 = 1 <= 1
    ignore = _watch(state, _incoming(nodeSelector={"disk": "ssd"},
                                     topologySpreadConstraints=_spread(nodeAffinityPolicy="Ignore")))
    assert ignore.spread_counts == [{"z3": 3, "z1": 2, "z2": 0}]


def test_node_taints_policy_honor_leaves_out_nodes_with_an_untolerated_no_schedule_taint_only():
    no_schedule = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    prefer = [{"key": "soft", "value": "x", "effect": "PreferNoSchedule"}]
    no_execute = [{"key": "gone", "effect": "NoExecute"}]
    nodes = _nodes(("t", "z3", {}, no_schedule), ("p", "z4", {}, prefer), ("e", "z5", {}, no_execute),
                   ("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "a")])
    honor = _watch(state, _incoming(topologySpreadConstraints=_spread(nodeTaintsPolicy="Honor")))
    # the PreferNoSchedule node stays a domain; the NoSchedule and NoExecute ones do not
    assert honor.spread_counts == [{"z4": 0, "z1": 1, "z2": 0}]
    tolerating = _watch(state, _incoming(topologySpreadConstraints=_spread(nodeTaintsPolicy="Honor"),
                                         tolerations=[{"key": "dedicated", "operator": "Exists"}]))
    assert tolerating.spread_counts == [{"z3": 0, "z4": 0, "z1": 1, "z2": 0}]
    ignore = _watch(state, _incoming(topologySpreadConstraints=_spread()))      # the default: Ignore
    assert ignore.spread_counts == [{"z3": 0, "z4": 0, "z5": 0, "z1": 1, "z2": 0}]


def test_pods_of_another_namespace_are_not_counted_for_spread():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "a", namespace="other"), _bound("p2", "a", namespace="other")])
    watch = _watch(state, _incoming(topologySpreadConstraints=_spread()))
    assert watch.spread_counts == [{"z1": 0, "z2": 0}]
    assert _refusals(watch, state) == {"a": None, "b": None}


def test_a_pod_on_a_node_the_state_does_not_know_counts_nowhere():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("ghost", "gone"), _bound("p1", "a")])
    watch = _watch(state, _incoming(topologySpreadConstraints=_spread()))
    assert watch.spread_counts == [{"z1": 1, "z2": 0}]


def test_a_removed_pod_takes_exactly_one_off_its_domain():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "a"), _bound("p2", "a"), _bound("p3", "b")])
    leaving = state.pods[("default", "p1")]
    watch = _watch(state, _incoming(topologySpreadConstraints=_spread()), removed=[leaving])
    # z1 2 - 1 = 1, z2 1: the minimum is 1, both pass (1 + 1 - 1 = 1)
    assert watch.spread_counts == [{"z1": 1, "z2": 1}]
    assert _refusals(watch, state) == {"a": None, "b": None}


def test_observe_self_and_observe_pod_add_one_to_the_domain():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes)
    incoming = _incoming(topologySpreadConstraints=_spread())
    watch = _watch(state, incoming)
    assert watch.changes_as_placed is True
    watch.observe_self(state.nodes["a"])
    assert watch.spread_counts == [{"z1": 1, "z2": 0}]
    assert _refusals(watch, state) == {"a": SPREAD, "b": None}
    sibling = PodRecord.from_object(_bound("p9", None))
    watch.observe_pod(sibling, "b")
    assert watch.spread_counts == [{"z1": 1, "z2": 1}]
    assert _refusals(watch, state) == {"a": None, "b": None}


def test_forget_pod_takes_a_victim_out_and_observe_pod_puts_it_back():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "a"), _bound("v", "a", labels={**APP, "tier": "low"}, **_anti_spec())])
    watch = _watch(state, _incoming(topologySpreadConstraints=_spread()))
    victim = state.pods[("default", "v")]
    assert watch.spread_counts == [{"z1": 2, "z2": 0}]
    assert watch.existing_anti == {HOST: {"a": 1}}           # v repels app=web from its node
    watch.forget_pod(victim)
    assert watch.spread_counts == [{"z1": 1, "z2": 0}]
    assert watch.existing_anti == {HOST: {"a": 0}}
    watch.observe_pod(victim, victim.node)
    assert watch.spread_counts == [{"z1": 2, "z2": 0}]
    assert watch.existing_anti == {HOST: {"a": 1}}


# ---- InterPodAffinity: anti-affinity -----------------------------------------------------------
def test_anti_affinity_refuses_a_domain_holding_a_matching_pod():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z1", {}, ()), ("c", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "a")])
    by_host = _watch(state, _incoming(affinity=_anti(HOST)))
    assert _refusals(by_host, state) == {"a": ANTI_AFFINITY, "b": None, "c": None}
    by_zone = _watch(state, _incoming(affinity=_anti(ZONE)))
    assert _refusals(by_zone, state) == {"a": ANTI_AFFINITY, "b": ANTI_AFFINITY, "c": None}


def test_an_existing_pods_anti_affinity_repels_the_incoming_pod_symmetrically():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z1", {}, ()), ("c", "z2", {}, ()))
    loner = _bound("loner", "a", labels={"app": "db"}, affinity=_anti(ZONE, APP))
    plain = _bound("plain", "c", labels={"app": "db"})
    state = _state(nodes, [loner, plain])
    watch = _watch(state, _incoming(topologySpreadConstraints=_spread(key=HOST, max_skew=5)))
    assert watch.existing_anti == {ZONE: {"z1": 1}}
    assert _refusals(watch, state) == {"a": ANTI_AFFINITY, "b": ANTI_AFFINITY, "c": None}
    # a pod its terms do not match is not repelled
    other = _watch(state, _incoming(labels={"app": "api"}, topologySpreadConstraints=_spread(key=HOST)))
    assert other.existing_anti == {}


def test_an_anti_affinity_pod_on_an_unknown_node_or_without_the_key_repels_nothing():
    nodes = _nodes(("a", None, {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("l1", "gone", labels={"app": "db"}, affinity=_anti(ZONE)),
                           _bound("l2", "a", labels={"app": "db"}, affinity=_anti(ZONE))])
    watch = _watch(state, _incoming(topologySpreadConstraints=_spread(key=HOST, max_skew=5)))
    assert watch.existing_anti == {}
    assert _refusals(watch, state) == {"a": None, "b": None}


def test_a_pod_with_self_anti_affinity_by_host_is_one_per_node_and_repels_its_next_sibling():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z1", {}, ()))
    state = _state(nodes)
    watch = _watch(state, _incoming(affinity=_anti(HOST)))
    assert watch.one_per_node == ANTI_AFFINITY
    assert watch.changes_as_placed is False        # by hostname: one per node says it all
    watch.observe_self(state.nodes["a"])
    assert watch.anti_counts == [{"a": 1}]
    assert watch.existing_anti == {HOST: {"a": 1}}
    assert _refusals(watch, state) == {"a": ANTI_AFFINITY, "b": None}
    watch.observe_self(state.nodes["a"])
    assert watch.existing_anti == {HOST: {"a": 2}}


def test_self_anti_affinity_by_zone_changes_where_the_next_pod_may_go():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z1", {}, ()), ("c", "z2", {}, ()), ("d", None, {}, ()))
    state = _state(nodes)
    watch = _watch(state, _incoming(affinity=_anti(ZONE)))
    assert watch.one_per_node is None
    assert watch.changes_as_placed is True
    watch.observe_self(state.nodes["d"])             # no zone label: counts nowhere
    assert watch.existing_anti == {} and watch.anti_counts == [{}]
    watch.observe_self(state.nodes["a"])
    assert _refusals(watch, state) == {"a": ANTI_AFFINITY, "b": ANTI_AFFINITY, "c": None, "d": None}


def test_anti_affinity_that_does_not_match_the_pod_itself_is_not_one_per_node():
    nodes = _nodes(("a", "z1", {}, ()),)
    state = _state(nodes)
    watch = _watch(state, _incoming(affinity=_anti(HOST, {"app": "db"})))
    assert watch.one_per_node is None
    assert watch.changes_as_placed is False
    watch.observe_self(state.nodes["a"])
    assert watch.existing_anti == {} and watch.anti_counts == [{}]
    assert watch.refusal(state.nodes["a"]) is None


# ---- InterPodAffinity: affinity ------------------------------------------------------------------
def test_affinity_needs_a_matching_pod_in_the_domain():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z1", {}, ()), ("c", "z2", {}, ()), ("d", None, {}, ()))
    state = _state(nodes, [_bound("db", "a", labels={"app": "db"})])
    watch = _watch(state, _incoming(affinity=_affinity(ZONE, {"app": "db"})))
    assert watch.aff_counts == [{"z1": 1}]
    assert _refusals(watch, state) == {"a": None, "b": None, "c": AFFINITY, "d": AFFINITY}
    assert [watch.affinity_refuses(state.nodes[n]) for n in "abcd"] == [False, False, True, True]
    assert watch.changes_as_placed is False        # it does not match its own term: placing it moves nothing


def test_the_first_pod_of_a_group_that_matches_its_own_affinity_may_go_anywhere_with_the_key():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()), ("d", None, {}, ()))
    state = _state(nodes)
    watch = _watch(state, _incoming(affinity=_affinity(ZONE)))
    assert watch.self_all_aff is True and watch.changes_as_placed is True
    assert _refusals(watch, state) == {"a": None, "b": None, "d": AFFINITY}
    watch.observe_self(state.nodes["a"])           # now the group exists, in z1 only
    assert watch.aff_counts == [{"z1": 1}]
    assert _refusals(watch, state) == {"a": None, "b": AFFINITY, "d": AFFINITY}


def test_without_a_matching_pod_anywhere_a_pod_that_does_not_match_itself_is_refused_everywhere():
    nodes = _nodes(("a", "z1", {}, ()),)
    state = _state(nodes, [_bound("web", "a")])
    watch = _watch(state, _incoming(affinity=_affinity(ZONE, {"app": "db"})))
    assert watch.self_all_aff is False
    assert watch.refusal(state.nodes["a"]) == AFFINITY


def test_affinity_with_two_terms_needs_a_pod_matching_both():
    two = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": ZONE},
        {"labelSelector": {"matchLabels": {"tier": "x"}}, "topologyKey": HOST}]}}
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z1", {}, ()))
    both = _state(nodes, [_bound("db", "a", labels={"app": "db", "tier": "x"})])
    watch = _watch(both, _incoming(affinity=two))
    assert watch.aff_counts == [{"z1": 1}, {"a": 1}]
    assert _refusals(watch, both) == {"a": None, "b": AFFINITY}       # b: z1 has it, host b does not
    one = _state(nodes, [_bound("db", "a", labels={"app": "db"})])
    assert _watch(one, _incoming(affinity=two)).aff_counts == [{}, {}]


def test_affinity_counts_pods_removed_and_placed():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("db", "a", labels={"app": "db"})])
    db = state.pods[("default", "db")]
    watch = _watch(state, _incoming(affinity=_affinity(ZONE, {"app": "db"})), removed=[db])
    assert watch.aff_counts == [{"z1": 0}]
    assert _refusals(watch, state) == {"a": AFFINITY, "b": AFFINITY}
    watch.observe_pod(db, "b")
    assert _refusals(watch, state) == {"a": AFFINITY, "b": None}


# ---- NodePorts -----------------------------------------------------------------------------------
def test_a_host_port_is_one_per_node_and_a_bound_one_refuses_the_node():
    port = [s.container(requests={"cpu": "10m"}, ports=[{"containerPort": 80, "hostPort": 8080,
                                                         "protocol": "TCP"}])]
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z1", {}, ()))
    state = _state(nodes, [_bound("p1", "a", labels={"app": "x"}, containers=port)])
    watch = _watch(state, _incoming(containers=port))
    assert watch.one_per_node == HOST_PORT
    assert _refusals(watch, state) == {"a": HOST_PORT, "b": None}
    # the placement's own count of ports in use replaces the node's
    assert watch.refusal(state.nodes["a"], used_ports={}) is None
    assert watch.refusal(state.nodes["b"], used_ports={("TCP", "0.0.0.0", 8080): 1}) == HOST_PORT


def test_refusal_reasons_come_in_the_scheduler_order_ports_anti_affinity_affinity_spread():
    port = [s.container(requests={"cpu": "10m"}, ports=[{"containerPort": 80, "hostPort": 8080}])]
    nodes = _nodes(("a", "z1", {}, ()),)
    state = _state(nodes, [_bound("p1", "a", containers=port)])
    everything = _watch(state, _incoming(containers=port, affinity={**_anti(HOST), **_affinity(ZONE, {"x": "y"})},
                                         topologySpreadConstraints=_spread(max_skew=1)))
    assert everything.refusal(state.nodes["a"]) == HOST_PORT
    assert everything.refusal(state.nodes["a"], used_ports={}) == ANTI_AFFINITY


def test_an_empty_selector_counts_no_pod_but_the_pod_matches_it_itself():
    # countPodsMatchSelector: "if selector.Empty() { return 0 }"; selfMatchNum: Selector.Matches -> 1
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "a"), _bound("p2", "a")])
    empty = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}}]
    watch = _watch(state, _incoming(topologySpreadConstraints=empty))
    assert watch.spread_counts == [{"z1": 0, "z2": 0}]
    assert watch.changes_as_placed is False
    watch.observe_self(state.nodes["a"])
    watch.observe_self(state.nodes["a"])
    assert watch.spread_counts == [{"z1": 0, "z2": 0}]
    assert _refusals(watch, state) == {"a": None, "b": None}       # 0 + 1 - 0 = 1 <= 1


def test_anti_affinity_by_zone_that_does_not_match_the_pod_itself_changes_nothing_as_placed():
    state = _state(_nodes(("a", "z1", {}, ()),))
    watch = _watch(state, _incoming(affinity=_anti(ZONE, {"app": "db"})))
    assert watch.changes_as_placed is False and watch.one_per_node is None


def test_a_removed_repelling_pod_takes_its_repulsion_with_it_one_pod_at_a_time():
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    repelling = [_bound(f"l{i}", "a", labels={"app": "db"}, affinity=_anti(ZONE)) for i in range(2)]
    state = _state(nodes, repelling)
    incoming = _incoming(topologySpreadConstraints=_spread(key=HOST, max_skew=5))
    one_left = _watch(state, incoming, removed=[state.pods[("default", "l0")]])
    assert one_left.existing_anti == {ZONE: {"z1": 1}}
    assert _refusals(one_left, state) == {"a": ANTI_AFFINITY, "b": None}
    none_left = _watch(state, incoming, removed=[state.pods[("default", "l0")], state.pods[("default", "l1")]])
    assert none_left.existing_anti == {ZONE: {"z1": 0}}
    assert _refusals(none_left, state) == {"a": None, "b": None}


def test_the_first_pod_rule_holds_again_once_the_only_matching_pod_is_gone():
    # no pod anywhere matches (the one there is leaving) and the pod matches its own term: it may go
    nodes = _nodes(("a", "z1", {}, ()), ("b", "z2", {}, ()))
    state = _state(nodes, [_bound("p1", "a")])
    watch = _watch(state, _incoming(affinity=_affinity(ZONE)), removed=[state.pods[("default", "p1")]])
    assert watch.aff_counts == [{"z1": 0}]
    assert _refusals(watch, state) == {"a": None, "b": None}
    stays = _watch(state, _incoming(affinity=_affinity(ZONE)))
    assert _refusals(stays, state) == {"a": None, "b": AFFINITY}


def test_each_constraint_applies_its_own_inclusion_policy_to_a_node():
    # "c" fails the nodeSelector and carries an untolerated NoSchedule taint: the zone constraint
    # (Honor, Honor) leaves it out, the hostname constraint (Ignore, Ignore) still counts it
    taint = [{"key": "dedicated", "effect": "NoSchedule"}]
    nodes = _nodes(("c", "z3", {}, taint), ("a", "z1", {"disk": "ssd"}, ()))
    state = _state(nodes, [_bound("p1", "c")])
    constraints = _spread(nodeAffinityPolicy="Honor", nodeTaintsPolicy="Honor") + \
        _spread(key=HOST, max_skew=3, nodeAffinityPolicy="Ignore", nodeTaintsPolicy="Ignore")
    watch = _watch(state, _incoming(nodeSelector={"disk": "ssd"}, topologySpreadConstraints=constraints))
    assert watch.spread_counts == [{"z1": 0}, {"c": 1, "a": 0}]
    only_taints = _spread(nodeAffinityPolicy="Ignore", nodeTaintsPolicy="Honor") + _spread(key=HOST, max_skew=3)
    watch = _watch(state, _incoming(topologySpreadConstraints=only_taints))
    assert watch.spread_counts == [{"z1": 0}, {"c": 1, "a": 0}]
