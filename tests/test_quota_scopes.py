"""Which ResourceQuotas charge a pod, and what they charge: the quota evaluator's scope rules.

Oracle: pkg/quota/v1/evaluator/core/pods.go (Kubernetes v1.33.13): ``podMatchesScopeFunc``
(Terminating when ``activeDeadlineSeconds`` is set and >= 0; BestEffort by the QoS class of
pkg/apis/core/v1/helper/qos, which counts only *non-zero* cpu/memory requests and limits of
containers and init containers; PriorityClass ``Exists`` on a non-empty name, the other
operators as a label selector over ``{"priorityClass": name}``, no label when the name is
empty), ``PodUsageFunc`` (overhead added to every request, to a limit only where the pod
has that limit) and the "must specify" constraint of the cpu/memory quotas.
"""

from fractions import Fraction

import pytest

from tests import synthetic as s
from webhook.engine.quota import admitted_pods, pod_usage, quota_matches
from webhook.state.snapshot import state_from_objects

BIG = {"cpu": "64", "memory": "256Gi", "pods": "110"}


def quota(hard, used=None, name="compute", namespace="default", scopes=None, selector=None, status=True):
    spec: dict = {"hard": dict(hard)}
    if scopes:
        spec["scopes"] = list(scopes)
    if selector:
        spec["scopeSelector"] = {"matchExpressions": list(selector)}
    obj = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": s.metadata(name, namespace), "spec": spec}
    if status:
        obj["status"] = {"hard": dict(hard), "used": dict(used or {})}
    return obj


def spec_with(requests=None, limits=None, **extra):
    return s.pod_spec([s.container(requests=requests, limits=limits)], **extra)


def matches(obj, spec):
    state = state_from_objects([obj])
    return quota_matches(state.resource_quotas["default"]["compute"], spec)


BURSTABLE = spec_with(requests={"cpu": "100m"})
BEST_EFFORT = spec_with()


@pytest.mark.parametrize("scope,spec,expected", [
    ("Terminating", spec_with(activeDeadlineSeconds=30), True),
    ("Terminating", BEST_EFFORT, False),
    ("NotTerminating", spec_with(activeDeadlineSeconds=30), False),
    ("NotTerminating", BEST_EFFORT, True),
    ("BestEffort", BEST_EFFORT, True),
    ("BestEffort", BURSTABLE, False),
    ("BestEffort", spec_with(limits={"memory": "1Gi"}), False),
    ("NotBestEffort", BURSTABLE, True),
    ("NotBestEffort", BEST_EFFORT, False),
    # QoS counts only cpu and memory: an extended resource alone leaves the pod BestEffort
    ("BestEffort", spec_with(requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "1"}), True),
    # QoS reads init containers too
    ("BestEffort", s.pod_spec([s.container()], initContainers=[s.container("init", requests={"cpu": "1"})]),
     False),
    # ComputePodQOS skips zero quantities: requests of 0 leave a pod BestEffort
    ("BestEffort", spec_with(requests={"cpu": "0", "memory": "0"}), True),
    ("NotBestEffort", spec_with(requests={"cpu": "0"}), False),
    ("CrossNamespacePodAffinity", BURSTABLE, False),     # not modelled: the pod is not charged
])
def test_a_quota_scope_charges_the_pods_the_evaluator_matches(scope, spec, expected):
    assert matches(quota({"pods": "1"}, scopes=[scope]), spec) is expected


def test_every_scope_of_a_quota_must_match():
    both = quota({"pods": "1"}, scopes=["NotTerminating", "BestEffort"])
    assert matches(both, BEST_EFFORT) is True
    assert matches(both, BURSTABLE) is False
    assert matches(both, spec_with(activeDeadlineSeconds=5)) is False


@pytest.mark.parametrize("operator,values,priority_class,expected", [
    ("Exists", None, "high", True),
    ("Exists", None, "", False),
    ("DoesNotExist", None, "", True),
    ("DoesNotExist", None, "high", False),
    ("In", ["high", "medium"], "high", True),
    ("In", ["high", "medium"], "low", False),
    ("In", ["high"], "", False),
    ("NotIn", ["high"], "low", True),
    ("NotIn", ["high"], "high", False),
    ("NotIn", ["high"], "", True),      # no priorityClass label: a NotIn selector matches
])
def test_a_priority_class_scope_selector_is_a_label_selector_on_the_class_name(operator, values, priority_class,
                                                                                 expected):
    expression = {"scopeName": "PriorityClass", "operator": operator}
    if values is not None:
        expression["values"] = values
    spec = spec_with(priorityClassName=priority_class) if priority_class else BEST_EFFORT
    assert matches(quota({"pods": "1"}, selector=[expression]), spec) is expected


def test_every_scope_selector_expression_must_match():
    selector = [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]},
                {"scopeName": "Terminating", "operator": "Exists"}]
    assert matches(quota({"pods": "1"}, selector=selector),
                   spec_with(priorityClassName="high", activeDeadlineSeconds=10)) is True
    assert matches(quota({"pods": "1"}, selector=selector), spec_with(priorityClassName="high")) is False


def test_overhead_is_charged_to_every_request_and_only_to_the_limits_the_pod_has():
    spec = spec_with(requests={"cpu": "100m"}, limits={"cpu": "200m"}, overhead={"cpu": "50m", "memory": "10Mi"})
    usage = pod_usage(spec)
    assert usage["requests.cpu"] == usage["cpu"] == Fraction(150, 1000)
    assert usage["requests.memory"] == 10 * 2**20          # overhead alone makes a memory request
    assert usage["limits.cpu"] == Fraction(250, 1000)
    assert "limits.memory" not in usage                       # no memory limit: overhead adds none


def test_an_init_container_is_a_floor_and_a_sidecar_adds_to_the_charge():
    # PodRequests: max(sum of app containers + sidecars, each classic init container + sidecars before it)
    spec = s.pod_spec([s.container(requests={"cpu": "300m"})],
                      initContainers=[s.container("init", requests={"cpu": "1"}),
                                      s.container("sidecar", requests={"cpu": "100m"}, restartPolicy="Always")])
    assert pod_usage(spec)["requests.cpu"] == Fraction(1)
    spec["initContainers"][0]["resources"]["requests"]["cpu"] = "200m"
    assert pod_usage(spec)["requests.cpu"] == Fraction(400, 1000)


def test_extended_resources_are_charged_as_requests_and_the_pod_counts():
    usage = pod_usage(spec_with(requests={"nvidia.com/gpu": "2", "ephemeral-storage": "1Gi"},
                                limits={"nvidia.com/gpu": "2", "ephemeral-storage": "2Gi"}))
    assert usage["requests.nvidia.com/gpu"] == 2 and usage["pods"] == usage["count/pods"] == 1
    assert usage["requests.ephemeral-storage"] == usage["ephemeral-storage"] == 2**30
    assert usage["limits.ephemeral-storage"] == 2 * 2**30


def state_with(*quotas, pods=()):
    return state_from_objects([s.node("a", instance_type=None, allocatable=BIG), *quotas, *pods])


def test_the_tightest_matching_quota_decides_and_is_named():
    state = state_with(quota({"pods": "10"}, {"pods": "4"}, name="loose"),
                       quota({"requests.cpu": "1"}, {"requests.cpu": "700m"}, name="tight"))
    outcome = admitted_pods(state, "default", spec_with(requests={"cpu": "100m"}), 8)
    # loose: (10 - 4) // 1 = 6 pods; tight: (1000m - 700m) // 100m = 3 pods
    assert (outcome.allowed, outcome.quota, outcome.resource) == (3, "tight", "requests.cpu")
    assert outcome.message == "exceeded quota: tight, requested: requests.cpu, used: 700m, limited: 1"


def test_a_quota_with_room_for_every_pod_limits_nothing():
    state = state_with(quota({"pods": "10"}, {"pods": "4"}))
    assert admitted_pods(state, "default", BURSTABLE, 6).allowed is None
    assert admitted_pods(state, "default", BURSTABLE, 7).allowed == 6
    assert admitted_pods(state, "default", BURSTABLE, 0).allowed is None      # nothing wanted: nothing refused


def test_a_quota_of_another_namespace_or_scope_charges_nothing():
    state = state_with(quota({"pods": "0"}, {"pods": "0"}, namespace="other"),
                       quota({"pods": "0"}, {"pods": "0"}, name="batch", scopes=["Terminating"]))
    assert admitted_pods(state, "default", BURSTABLE, 3).allowed is None
    assert admitted_pods(state, "default", spec_with(activeDeadlineSeconds=60), 3).allowed == 0


def test_a_resource_the_pod_does_not_use_is_not_a_limit():
    state = state_with(quota({"requests.nvidia.com/gpu": "0"}, {"requests.nvidia.com/gpu": "0"}))
    assert admitted_pods(state, "default", BURSTABLE, 3).allowed is None


def test_usage_is_counted_from_the_namespace_when_the_quota_has_no_status():
    bound = [s.pod(f"p{i}", namespace, "a", spec=spec_with(requests={"cpu": "250m", "memory": "1Gi"}))
             for i, namespace in enumerate(["default", "default", "other"])]
    state = state_with(quota({"requests.cpu": "1", "requests.memory": "4Gi", "count/pods": "5"}, status=False),
                       pods=bound)
    # two default pods use 500m and 2Gi (the pod in "other" does not count)
    spec = spec_with(requests={"cpu": "100m", "memory": "512Mi"}, limits={"cpu": "100m", "memory": "512Mi"})
    outcome = admitted_pods(state, "default", spec, 10)
    assert (outcome.allowed, outcome.resource) == (3, "count/pods")      # 5 - 2 pods
    spec = spec_with(requests={"cpu": "200m", "memory": "512Mi"}, limits={"cpu": "200m", "memory": "512Mi"})
    assert admitted_pods(state, "default", spec, 10).allowed == 2          # (1000m - 500m) // 200m


def test_a_memory_limit_quota_names_every_container_that_does_not_set_it():
    state = state_with(quota({"limits.memory": "8Gi"}, {"limits.memory": "0"}))
    spec = s.pod_spec([s.container("app", limits={"memory": "1Gi"}), s.container("log")],
                      initContainers=[s.container("setup")])
    outcome = admitted_pods(state, "default", spec, 2)
    assert outcome.allowed == 0
    assert outcome.message == "failed quota: compute: must specify limits.memory for: log,setup"


def test_a_used_figure_that_is_not_a_quantity_leaves_that_limit_out():
    state = state_with(quota({"pods": "3", "requests.cpu": "1"}, {"pods": "junk", "requests.cpu": "900m"}))
    outcome = admitted_pods(state, "default", spec_with(requests={"cpu": "100m"}, limits={"cpu": "100m"}), 5)
    assert (outcome.allowed, outcome.resource) == (1, "requests.cpu")


# ---- admitted_pods at its edges (ReplicaSet/Job controller: one pod at a time, each checked by every quota) ----

def test_nothing_wanted_is_never_refused_even_by_a_must_specify_quota():
    state = state_with(quota({"limits.cpu": "4"}, {"limits.cpu": "0"}))
    assert admitted_pods(state, "default", BEST_EFFORT, 0).allowed is None
    assert admitted_pods(state, "default", BEST_EFFORT, 1).allowed == 0       # one pod: "must specify limits.cpu"


def test_one_pod_wanted_against_a_full_quota_is_refused():
    state = state_with(quota({"pods": "2"}, {"pods": "2"}))
    outcome = admitted_pods(state, "default", BURSTABLE, 1)
    assert (outcome.allowed, outcome.quota, outcome.resource) == (0, "compute", "pods")


def test_a_quota_that_does_not_match_is_skipped_and_the_next_one_still_counts():
    state = state_with(quota({"pods": "0"}, {"pods": "0"}, name="a-batch", scopes=["Terminating"]),
                       quota({"pods": "3"}, {"pods": "2"}, name="b-all"))
    outcome = admitted_pods(state, "default", BURSTABLE, 3)                  # no activeDeadlineSeconds
    assert (outcome.allowed, outcome.quota) == (1, "b-all")


def test_a_hard_resource_the_pod_does_not_charge_is_skipped_and_the_next_one_still_counts():
    state = state_with(quota({"configmaps": "10", "pods": "2"}, {"configmaps": "1", "pods": "2"}))
    outcome = admitted_pods(state, "default", BURSTABLE, 2)
    assert (outcome.allowed, outcome.resource) == (0, "pods")


def test_of_two_quotas_that_stop_at_the_same_pod_the_first_by_name_is_named():
    state = state_with(quota({"pods": "5"}, {"pods": "4"}, name="alpha"),
                       quota({"count/pods": "5"}, {"count/pods": "4"}, name="beta"))
    outcome = admitted_pods(state, "default", BURSTABLE, 3)
    assert (outcome.allowed, outcome.quota, outcome.resource) == (1, "alpha", "pods")


def test_counted_usage_skips_other_namespaces_wherever_their_pods_are_listed():
    bound = [s.pod("x", "other", "a", spec=spec_with(requests={"cpu": "1"})),
             s.pod("y", "default", "a", spec=spec_with(requests={"cpu": "2"}))]
    state = state_with(quota({"requests.cpu": "3"}, status=False), pods=bound)
    spec = spec_with(requests={"cpu": "1m"}, limits={"cpu": "1m"})
    # default uses 2 cores: (3000m - 2000m) // 1m = 1000 pods; counted in exact millicores (1000m = 1 core)
    assert admitted_pods(state, "default", spec, 5000).allowed == 1000


def test_counted_memory_usage_is_exact_bytes():
    bound = [s.pod(f"p{i}", "default", "a", spec=spec_with(requests={"memory": "1Gi"})) for i in range(2)]
    state = state_with(quota({"requests.memory": "4Gi"}, status=False), pods=bound)
    spec = spec_with(requests={"memory": "1Gi"}, limits={"memory": "1Gi"})
    assert admitted_pods(state, "default", spec, 5).allowed == 2          # (4Gi - 2Gi) // 1Gi
    state = state_with(quota({"pods": "3"}, status=False), pods=bound)
    assert admitted_pods(state, "default", spec, 5).allowed == 1          # 3 - 2 pods


def test_a_resource_neither_counted_nor_in_status_used_starts_at_zero():
    # a quota without status on limits.cpu: the slim pod records cannot count limits, so none are used
    state = state_with(quota({"limits.cpu": "2"}, status=False))
    spec = spec_with(requests={"cpu": "1"}, limits={"cpu": "1"})
    assert admitted_pods(state, "default", spec, 5).allowed == 2


def test_a_pod_with_an_unreadable_cpu_is_never_best_effort():
    # the API server refuses it anyway; a BestEffort quota must not count it as free
    bad = spec_with(requests={"cpu": "lots"})
    assert matches(quota({"pods": "1"}, scopes=["BestEffort"]), bad) is False
    assert matches(quota({"pods": "1"}, scopes=["NotBestEffort"]), bad) is True
