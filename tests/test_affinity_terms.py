"""Required pod (anti-)affinity terms resolved as the scheduler and API server resolve them.

Oracles: pkg/scheduler/framework/types.go (``AffinityTerm``: an absent labelSelector
matches no pod, ``{}`` every pod; ``namespaces`` plus ``namespaceSelector``, both empty
meaning the pod's own namespace, ``namespaceSelector: {}`` every namespace) and KEP-3633
(``matchLabelKeys`` / ``mismatchLabelKeys`` become ``In`` / ``NotIn`` expressions of the
pod's own label values when the pod is created, only where a labelSelector is set and the
pod has the label).
"""

from webhook.engine.interpod import EVERYTHING, AffinityTerm, PodAffinityRules

LABELS = {"app": "web", "tenant": "blue"}


def term(**raw):
    return AffinityTerm.of({"topologyKey": "kubernetes.io/hostname", **raw}, "shop", LABELS)


def test_match_and_mismatch_label_keys_pin_the_pods_own_values():
    t = term(labelSelector={"matchLabels": {"app": "web"}}, matchLabelKeys=["tenant", "absent"])
    assert t.matches("shop", {"app": "web", "tenant": "blue"}, None) is True
    assert t.matches("shop", {"app": "web", "tenant": "green"}, None) is False
    t = term(labelSelector={"matchLabels": {"app": "web"}}, mismatchLabelKeys=["tenant"])
    assert t.matches("shop", {"app": "web", "tenant": "green"}, None) is True
    assert t.matches("shop", {"app": "web", "tenant": "blue"}, None) is False
    t = term(labelSelector={"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "Exists"}]}, matchLabelKeys=["tenant"])
    assert t.matches("shop", {"app": "web", "tenant": "blue", "tier": "x"}, None) is True
    assert t.matches("shop", {"app": "web", "tenant": "blue"}, None) is False     # the original expression stays
    assert term(matchLabelKeys=["tenant"]).selector is None      # no selector: the keys add nothing, match nothing


def test_selectors_absent_empty_and_set():
    assert term().matches("shop", LABELS, None) is False
    assert term(labelSelector={}).selector == EVERYTHING and term(labelSelector={}).matches("shop", {}, None)
    assert term(labelSelector={"matchLabels": {"app": "db"}}).matches("shop", LABELS, None) is False


def test_the_namespaces_a_term_looks_in():
    own = term(labelSelector={})
    assert own.namespaces == frozenset({"shop"}) and own.matches("shop", {}, None) and not own.matches("other", {}, {})
    listed = term(labelSelector={}, namespaces=["a", "b"])
    assert listed.matches("a", {}, None) and not listed.matches("shop", {}, None)
    everywhere = term(labelSelector={}, namespaceSelector={})
    assert everywhere.matches("any", {}, None) and everywhere.matches("other", {}, {"team": "x"})
    labelled = term(labelSelector={}, namespaceSelector={"matchLabels": {"team": "x"}})
    assert labelled.matches("other", {}, {"team": "x"}) and not labelled.matches("other", {}, {"team": "y"})
    assert labelled.matches("shop", {}, None) is False             # a selector alone: not the own namespace
    both = term(labelSelector={}, namespaces=["a"], namespaceSelector={"matchLabels": {"team": "x"}})
    assert both.matches("a", {}, None) and both.matches("z", {}, {"team": "x"}) and not both.matches("z", {}, {})


def spec(affinity=(), anti=()):
    out = {}
    if affinity:
        out["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": list(affinity)}
    if anti:
        out["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": list(anti)}
    return {"affinity": out}


def test_rules_of_a_pod():
    assert PodAffinityRules.from_pod_spec({}, "shop", LABELS) is None
    assert PodAffinityRules.from_pod_spec(spec(), "shop", LABELS) is None
    zone = {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app": "web"}}}
    host = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "db"}}}
    rules = PodAffinityRules.from_pod_spec(spec(affinity=[host], anti=[zone, host]), "shop", LABELS)
    assert rules.self_anti_on("shop", LABELS, None) == {"topology.kubernetes.io/zone"}
    assert rules.matches_all_affinity("shop", {"app": "db"}, None) is True
    assert rules.matches_all_affinity("shop", LABELS, None) is False
    assert PodAffinityRules.from_pod_spec(spec(anti=[zone]), "shop", LABELS).matches_all_affinity(
        "shop", LABELS, None) is False                                # no affinity terms: nothing to match


def test_equal_terms_hash_alike_so_pods_of_one_kind_share_their_rules():
    # Waiting pods are grouped by their rules (dict keys): two pods of one ReplicaSet resolve equal terms.
    raw = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}
    first, second = AffinityTerm.of(raw, "shop", LABELS), AffinityTerm.of(dict(raw), "shop", dict(LABELS))
    assert first == second and hash(first) == hash(second)
    rules = PodAffinityRules.from_pod_spec(spec(anti=[raw]), "shop", LABELS)
    assert {rules: 1}[PodAffinityRules.from_pod_spec(spec(anti=[raw]), "shop", LABELS)] == 1


def test_a_waiting_pod_with_anti_affinity_binds_away_from_the_pod_it_repels():
    # InterPodAffinity filter: w repels app=web on the hostname and web-0 (10m) runs on a. By resources alone w
    # would bind on a (b runs a 1 CPU pod: a lower LeastAllocated score); the filter leaves only b.
    from tests import synthetic as s
    from webhook.engine.placement import RoomMap
    from webhook.state.snapshot import state_from_objects
    repel = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}
    state = state_from_objects([
        s.node("a", instance_type=None), s.node("b", instance_type=None),
        s.pod("web-0", node_name="a", labels={"app": "web"}, spec=s.pod_spec([s.container(requests={"cpu": "10m"})])),
        s.pod("busy", node_name="b", labels={"app": "busy"}, spec=s.pod_spec([s.container(requests={"cpu": "1"})])),
        s.pod("w", labels={"app": "w"}, spec=s.pod_spec([s.container(requests={"cpu": "10m"})],
                                                        affinity=spec(anti=[repel])["affinity"]))])
    assert [(pod.name, node) for pod, node in RoomMap(state).placed] == [("w", "b")]
