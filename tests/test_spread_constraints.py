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
