"""How a topologySpreadConstraint is read, from podtopologyspread/common.go (v1.33):
only DoNotSchedule constraints filter; ``matchLabelKeys`` add the pod's own values to a present
selector; ``{}`` matches the pod itself but counts no other pod (``countPodsMatchSelector``
returns 0 for an empty selector), an absent selector matches nothing; maxSkew and minDomains
default to 1; nodeAffinityPolicy defaults to Honor and nodeTaintsPolicy to Ignore."""

from webhook.engine.interpod import EVERYTHING
from webhook.engine.topology_spread import SpreadConstraint, hard_constraints

LABELS = {"app": "web", "version": "v2"}


def of(**raw):
    return SpreadConstraint.of({"topologyKey": "topology.kubernetes.io/zone", **raw}, LABELS)


def test_defaults():
    c = of(labelSelector={"matchLabels": {"app": "web"}})
    assert (c.max_skew, c.min_domains, c.honor_node_affinity, c.honor_taints) == (1, 1, True, False)
    assert c.topology_key == "topology.kubernetes.io/zone"
    c = of(maxSkew=3, minDomains=2, nodeAffinityPolicy="Ignore", nodeTaintsPolicy="Honor")
    assert (c.max_skew, c.min_domains, c.honor_node_affinity, c.honor_taints) == (3, 2, False, True)


def test_match_label_keys_pin_the_pods_own_values_only_with_a_selector():
    c = of(labelSelector={"matchLabels": {"app": "web"}}, matchLabelKeys=["version", "absent"])
    assert c.counts({"app": "web", "version": "v2"}) is True
    assert c.counts({"app": "web", "version": "v1"}) is False          # the old ReplicaSet's pods
    assert of(matchLabelKeys=["version"]).selector is None              # no selector: still matches nothing
    c = of(labelSelector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
           matchLabelKeys=["version"])
    assert c.counts({"app": "web", "version": "v2"}) and not c.counts({"app": "web", "version": "v1"})


def test_selector_absent_empty_or_set():
    absent, empty = of(), of(labelSelector={})
    assert absent.selector is None and absent.self_match(LABELS) == 0 and absent.counts(LABELS) is False
    assert empty.selector == EVERYTHING and empty.self_match(LABELS) == 1 and empty.counts(LABELS) is False
    assert of(labelSelector={"matchLabels": {}}).selector == EVERYTHING
    only = of(labelSelector={"matchLabels": {"app": "db"}})
    assert only.self_match(LABELS) == 0 and only.counts({"app": "db"}) is True


def test_only_do_not_schedule_constraints_filter():
    spec = {"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {}},
        {"maxSkew": 2, "topologyKey": "host", "labelSelector": {}},          # DoNotSchedule by default
        {"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}}]}
    assert [c.topology_key for c in hard_constraints(spec, LABELS)] == ["host", "rack"]


def _zone_spread_verdict(terminating: bool):
    """Two zones with room for one 1-CPU pod each; three 10m pods of app=web on zone a's node.

    PodTopologySpread counts matching pods per zone but skips pods with a deletionTimestamp
    (countPodsMatchSelector, "Bypass terminating Pod", kubernetes#87621); they still hold
    their requests on the node (NodeResourcesFit counts every assigned pod).
    """
    from tests import synthetic as s
    from webhook.engine.evaluate import evaluate
    from webhook.state.snapshot import state_from_objects
    a, b = s.node("a", zone="us-east-1a"), s.node("b", zone="us-east-1b")
    old = [s.pod(f"web-old-{i}", node_name="a", labels={"app": "web"},
                 spec=s.pod_spec([s.container(requests={"cpu": "10m"})])) for i in range(3)]
    if terminating:
        for pod in old:
            pod["metadata"]["deletionTimestamp"] = "2026-11-29T12:00:00Z"
            pod["metadata"]["deletionGracePeriodSeconds"] = 30
    spread = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
              "labelSelector": {"matchLabels": {"app": "web"}}}
    web = s.deployment("web", replicas=2, spec=s.pod_spec([s.container(requests={"cpu": "1"})],
                                                           topologySpreadConstraints=[spread]))
    return evaluate(state_from_objects([a, b, *old]), web)


def test_terminating_pods_hold_room_but_do_not_count_for_spread():
    # Zone counts the scheduler sees: a 0, b 0 (the three are terminating). 1930m - 30m leaves a
    # 1-CPU pod room on a, 1930m on b: one pod in each zone, skew 0, both run.
    verdict = _zone_spread_verdict(terminating=True)
    assert (verdict.requested, verdict.pending) == (2, 0)
    # Not terminating, zone a counts 3: the first pod goes to b (0 + 1 - 0 = 1 <= 1), the second
    # fits nowhere (a: 3 + 1 - 1 = 3 > 1; b has no CPU left): one stays Pending.
    verdict = _zone_spread_verdict(terminating=False)
    assert (verdict.requested, verdict.pending) == (2, 1) and "TOPOLOGY_SPREAD" in verdict.codes
