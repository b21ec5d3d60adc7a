"""What the API server does to pods before the scheduler: LimitRanger and ResourceQuota admission.

Rules from plugin/pkg/admission/limitranger/admission.go, pkg/apis/core/v1/defaults.go
(SetDefaults_LimitRangeItem) and pkg/quota/v1/evaluator/core/pods.go (Kubernetes v1.33).
"""

from tests import synthetic as s
from webhook.check import check_manifests
from webhook.engine.evaluate import evaluate
from webhook.engine.limitranger import admitted_spec, defaulted_item, rejections
from webhook.engine.quota import pod_usage
from webhook.manifests import Manifest
from webhook.state.snapshot import state_from_objects

BIG = {"cpu": "4", "memory": "8Gi", "pods": "110"}


def node(name):
    return s.node(name, instance_type=None, allocatable=BIG)


def check_objects(state, objects):
    return [(r.source, r.verdict) for r in check_manifests(state, [Manifest(src, 1, obj) for src, obj in objects])]


def limit_range(namespace="default", **item):
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": s.metadata("limits", namespace),
            "spec": {"limits": [{"type": "Container", **item}]}}


def quota(hard, used=None, namespace="default", name="compute", status=True):
    obj = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": s.metadata(name, namespace),
           "spec": {"hard": dict(hard)}}
    if status:
        obj["status"] = {"hard": dict(hard), "used": dict(used or {})}
    return obj


def app(replicas=1, requests=None, limits=None, namespace="default"):
    resources = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    container = s.container() | {"resources": resources}
    return s.deployment("app", replicas, namespace=namespace, spec=s.pod_spec([container]))


# ---- LimitRange defaulting -------------------------------------------------------------------

def test_limit_range_item_defaults_follow_set_defaults_limit_range_item():
    item = defaulted_item({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}})
    assert item["default"] == {"cpu": "2"}                        # default <- max
    assert item["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}   # defaultRequest <- default, then <- min


def test_a_limit_range_with_only_max_gives_containers_the_max_as_request():
    # Stored LimitRange: default cpu 2 (from max), defaultRequest cpu 2 (from default). A container without
    # resources therefore requests 2 CPU: a 4-CPU node holds 2 such pods, not unlimited BestEffort ones.
    state = state_from_objects([node("a"), limit_range(max={"cpu": "2"})])
    verdict = evaluate(state, app(3))
    assert (verdict.schedulable, verdict.pending) == (2, 1)


def test_a_limit_range_in_the_same_check_run_defaults_like_a_stored_one():
    stored = state_from_objects([node("a"), limit_range(max={"cpu": "2"})])
    in_run = state_from_objects([node("a")])
    results = list(check_objects(in_run, [("lr.yaml", limit_range(max={"cpu": "2"})), ("app.yaml", app(3))]))
    assert results[0][1].pending == evaluate(stored, app(3)).pending == 1


def test_a_limit_from_the_container_becomes_its_request_before_the_defaults():
    spec = admitted_spec(s.pod_spec([s.container() | {"resources": {"limits": {"cpu": "500m"}}}]),
                         [limit_range(defaultRequest={"cpu": "100m"}, default={"cpu": "1"})])
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}


# ---- LimitRange validation: pods never created -------------------------------------------------

def test_a_request_above_max_is_refused_and_not_pending():
    state = state_from_objects([node("a"), limit_range(max={"cpu": "1"})])
    verdict = evaluate(state, app(3, requests={"cpu": "1500m"}))
    assert (verdict.verdict, verdict.codes, verdict.pending) == ("deny", ["LIMITRANGE_REJECTS"], 0)
    assert "maximum cpu usage per Container is 1, but request is 1500m" in verdict.message


def test_a_default_limit_below_an_explicit_request_is_refused():
    # default limit 200m is filled in, then pod validation finds request 500m > limit 200m.
    state = state_from_objects([node("a"), limit_range(default={"cpu": "200m"})])
    verdict = evaluate(state, app(1, requests={"cpu": "500m"}))
    assert verdict.codes == ["LIMITRANGE_REJECTS"] and "must be less than or equal to its limit" in verdict.message


def test_min_and_ratio_are_checked():
    errors = rejections(admitted_spec(s.pod_spec([s.container() | {"resources": {
        "requests": {"memory": "32Mi"}, "limits": {"memory": "256Mi"}}}]), []),
        [limit_range(min={"memory": "64Mi"}, maxLimitRequestRatio={"memory": "4"})])
    assert errors == ["minimum memory usage per Container is 64Mi, but request is 32Mi",
                      "memory max limit to request ratio per Container is 4, but provided ratio is 8.000000"]


# ---- ResourceQuota ---------------------------------------------------------------------------

def test_pod_usage_charges_requests_and_limits_as_the_pod_evaluator():
    spec = s.pod_spec([s.container() | {"resources": {"requests": {"cpu": "250m", "memory": "1Gi"},
                                                      "limits": {"cpu": "1", "nvidia.com/gpu": "1"}}}])
    usage = pod_usage(spec)
    assert usage["pods"] == 1 and usage["requests.cpu"] == usage["cpu"] == 0.25 and usage["limits.cpu"] == 1
    assert usage["requests.memory"] == 2**30 and "limits.memory" not in usage


def test_an_exhausted_quota_refuses_the_pods_beyond_it():
    # requests.cpu hard 2, used 1250m: (2000 - 1250) // 250 = 3 pods are created, 2 refused, none Pending.
    state = state_from_objects([node("a"), quota({"requests.cpu": "2"}, {"requests.cpu": "1250m"})])
    verdict = evaluate(state, app(5, requests={"cpu": "250m"}))
    assert (verdict.verdict, verdict.requested, verdict.schedulable, verdict.pending) == ("deny", 5, 3, 0)
    assert verdict.codes == ["QUOTA_EXCEEDED"] and "refuse 2 of its pods" in verdict.reasons[0].summary


def test_a_pods_quota_counts_from_the_namespace_when_status_is_missing():
    bound = [s.pod(f"p{i}", "default", "a", spec=s.pod_spec([s.container(requests={"cpu": "10m"})]))
             for i in range(4)]
    state = state_from_objects([node("a"), *bound])
    results = list(check_objects(state, [("q.yaml", quota({"pods": "5"}, status=False)), ("app.yaml", app(3))]))
    verdict = results[0][1]
    assert (verdict.schedulable, verdict.codes) == (1, ["QUOTA_EXCEEDED"])


def test_a_cpu_quota_refuses_containers_without_a_cpu_request():
    state = state_from_objects([node("a"), quota({"requests.cpu": "10"}, {"requests.cpu": "0"})])
    verdict = evaluate(state, app(2))
    assert verdict.schedulable == 0 and "must specify requests.cpu" in verdict.message


def test_a_quota_whose_scope_does_not_match_is_ignored():
    scoped = quota({"pods": "0"}, {"pods": "0"}) | {}
    scoped["spec"]["scopes"] = ["Terminating"]
    state = state_from_objects([node("a"), scoped])
    scoped_state = state.resource_quotas["default"]["compute"]
    assert scoped_state["scopes"] == ["Terminating"]
    assert evaluate(state, app(2)).pending == 0 and evaluate(state, app(2)).codes == []


def test_a_request_defaulted_from_its_limit_satisfies_a_cpu_quota():
    # differential F5 (seed 799): no LimitRange, limits only; SetDefaults_Pod copies the limit into the
    # request before quota admission: 4 x 50m fits requests.cpu 8 with 3.8 used.
    state = state_from_objects([node("a"), quota({"requests.cpu": "8"}, {"requests.cpu": "3800m"})])
    verdict = evaluate(state, app(4, limits={"cpu": "50m", "memory": "1Gi"}))
    assert (verdict.schedulable, verdict.codes) == (4, [])


# ---- LimitRange validation messages, word for word (limitranger/admission.go) -----------------

def container_spec(requests=None, limits=None, init=()):
    return s.pod_spec([s.container("app", requests=requests, limits=limits)], initContainers=list(init))


def errors_for(spec, item_type="Container", **item):
    lr = {"apiVersion": "v1", "kind": "LimitRange", "metadata": s.metadata("limits", "default"),
          "spec": {"limits": [{"type": item_type, **item}]}}
    return rejections(spec, [lr])


def test_min_wants_a_request_and_checks_the_limit_too():
    assert errors_for(container_spec(), min={"memory": "64Mi"}) == [
        "minimum memory usage per Container is 64Mi.  No request is specified"]
    assert errors_for(container_spec(limits={"cpu": "1"}), item_type="Pod", min={"memory": "64Mi"}) == [
        "minimum memory usage per Pod is 64Mi.  No request is specified"]
    # a limit under min means a request over its limit too: both errors are reported
    assert errors_for(container_spec({"cpu": "500m"}, {"cpu": "200m"}), item_type="Pod", min={"cpu": "300m"}) == [
        "minimum cpu usage per Pod is 300m, but limit is 200m",
        "containers app: cpu request 500m must be less than or equal to its limit 200m"]
    assert errors_for(container_spec({"cpu": "300m"}), item_type="Pod", min={"cpu": "300m"}) == []   # equal is enough
    assert errors_for(container_spec({"cpu": "300m"}, {"cpu": "300m"}), item_type="Pod", min={"cpu": "300m"}) == []


def test_max_wants_a_limit_and_checks_the_request_too():
    assert errors_for(container_spec({"cpu": "1"}), item_type="Pod", max={"cpu": "2"}) == [
        "maximum cpu usage per Pod is 2.  No limit is specified"]
    assert errors_for(container_spec({"cpu": "1"}, {"cpu": "3"}), item_type="Pod", max={"cpu": "2"}) == [
        "maximum cpu usage per Pod is 2, but limit is 3000m"]
    assert errors_for(container_spec({"cpu": "2"}, {"cpu": "2"}), item_type="Pod", max={"cpu": "2"}) == []


def test_the_ratio_needs_a_non_zero_request_and_limit():
    assert errors_for(container_spec(limits={"memory": "1Gi"}), item_type="Pod",
                      maxLimitRequestRatio={"memory": "2"}) == [
        "memory max limit to request ratio per Pod is 2, but no request is specified or request is 0"]
    assert errors_for(container_spec(requests={"memory": "1Gi"}), item_type="Pod",
                      maxLimitRequestRatio={"memory": "2"}) == [
        "memory max limit to request ratio per Pod is 2, but no limit is specified or limit is 0"]
    assert errors_for(container_spec({"memory": "1Gi"}, {"memory": "2Gi"}), item_type="Pod",
                      maxLimitRequestRatio={"memory": "2"}) == []         # exactly the ratio: allowed


def test_a_ratio_beyond_max_milli_value_compares_whole_values():
    # enforced.Value() > MaxMilliValue: observed and allowed ratios compare without the * 1000
    huge = str(2**62)
    spec = container_spec({"memory": "1"}, {"memory": str(2**62 + 2**40)})
    assert errors_for(spec, maxLimitRequestRatio={"memory": huge}) == [
        f"memory max limit to request ratio per Container is {huge}, but provided ratio is "
        f"{float(2**62 + 2**40):f}"]
    assert errors_for(container_spec({"memory": "1"}, {"memory": huge}), maxLimitRequestRatio={"memory": huge}) == []


def test_a_pod_item_sums_containers_and_sidecars_and_floors_at_each_init_container():
    # podRequests: app 300m + sidecar 100m = 400m; the classic init container runs beside the sidecar
    # started before it: 100m + 500m = 600m is the floor, so the pod requests 600m.
    sidecar = s.container("sidecar", requests={"cpu": "100m"}, limits={"cpu": "100m"}, restartPolicy="Always")
    init = s.container("setup", requests={"cpu": "500m"}, limits={"cpu": "500m"})
    spec = container_spec({"cpu": "300m"}, {"cpu": "300m"}, init=[sidecar, init])
    assert errors_for(spec, item_type="Pod", max={"cpu": "550m"}) == [
        "maximum cpu usage per Pod is 550m, but limit is 600m"]
    spec = container_spec({"cpu": "300m"}, {"cpu": "300m"}, init=[init, sidecar])    # sidecar after: 500m floor
    assert errors_for(spec, item_type="Pod", max={"cpu": "450m"}) == [
        "maximum cpu usage per Pod is 450m, but limit is 500m"]
    assert errors_for(spec, item_type="Pod", max={"cpu": "500m"}) == []


def test_a_fractional_pod_total_is_shown_in_canonical_milli_units():
    spec = container_spec({"memory": "1.5"}, {"memory": "1.5"})      # Quantity("1.5").String() == "1500m"
    assert errors_for(spec, item_type="Pod", max={"memory": "1"}) == [
        "maximum memory usage per Pod is 1, but limit is 1500m"]


def test_an_unknown_item_type_checks_nothing_and_a_bad_quantity_is_an_error():
    assert errors_for(container_spec({"cpu": "9"}), item_type="PersistentVolumeClaim", max={"storage": "1Gi"}) == []
    assert errors_for(container_spec({"cpu": "1"}, {"cpu": "1"}), max={"cpu": "lots"}) == [
        "invalid quantity 'lots'"]


def test_memory_bounds_compare_in_milli_bytes_like_request_limit_enforced_values():
    # requestLimitEnforcedValues uses MilliValue() for request, limit and bound whatever the resource
    # when all three Values fit under MaxMilliValue: 1.2 bytes is 1200m, under a min of 1.5 (1500m),
    # although both round up to 2 whole bytes.
    assert errors_for(container_spec({"memory": "1.2"}), min={"memory": "1.5"}) == [
        "minimum memory usage per Container is 1.5, but request is 1.2"]
    assert errors_for(container_spec({"memory": "1.2"}, {"memory": "1.8"}), max={"memory": "1.5"}) == [
        "maximum memory usage per Container is 1.5, but limit is 1.8"]
    assert errors_for(container_spec({"memory": "1.5"}, {"memory": "1.5"}), min={"memory": "1.5"},
                      max={"memory": "1.5"}) == []
    # the limit too: a limit of 1.2 bytes is under a min of 1.5
    assert errors_for(container_spec({"memory": "2"}, {"memory": "1.2"}), min={"memory": "1.5"}) == [
        "minimum memory usage per Container is 1.5, but limit is 1.2",
        "containers app: memory request 2 must be less than or equal to its limit 1.2"]
    # ratio 1.8 / 1.2 = 1.5 in milli units, over a ratio of 1.4 (whole bytes would give 2 / 2 = 1)
    assert errors_for(container_spec({"memory": "1.2"}, {"memory": "1.8"}), maxLimitRequestRatio={"memory": "1.4"}) \
        == ["memory max limit to request ratio per Container is 1.4, but provided ratio is 1.500000"]


def test_the_milli_precision_stops_at_max_milli_value():
    # MaxMilliValue = (2^63 - 1) / 1000 = 9223372036854775. At that bound the values compare in milli
    # units (a request 0.5 under the min is refused); one unit over it, in whole units, where the
    # request rounds up to the min itself.
    edge = "9223372036854775"
    assert errors_for(container_spec({"memory": "9223372036854774.5"}), min={"memory": edge}) == [
        f"minimum memory usage per Container is {edge}, but request is 9223372036854774.5"]
    assert errors_for(container_spec({"memory": "9223372036854775.5"}), min={"memory": "9223372036854776"}) == []
    # a request beyond it switches all three to whole units too
    assert errors_for(container_spec({"memory": "9223372036854775.5"}), min={"memory": "9223372036854775.7"}) == []
    # the ratio: 3 / 2 = 1.5 in either unit; Value 9223372036854776 > MaxMilliValue is compared whole
    assert errors_for(container_spec({"memory": "2"}, {"memory": "3"}), maxLimitRequestRatio={"memory": "1.5"}) == []
    assert errors_for(container_spec({"memory": "2"}, {"memory": "3"}), maxLimitRequestRatio={"memory": "1.4"}) == [
        "memory max limit to request ratio per Container is 1.4, but provided ratio is 1.500000"]


def test_the_ratio_is_float64_arithmetic_as_in_limit_request_ratio_constraint():
    # enforced 9223372036854775 = MaxMilliValue: compared in milli units. A limit equal to it over a
    # request of 1: float64(9223372036854775000) / float64(1000) = 9223372036854774.0 (two roundings,
    # as Go does them), times 1000 is not above float64(9223372036854775000): allowed. An exact
    # division would round to 9223372036854776.0 and refuse it.
    edge = "9223372036854775"
    assert errors_for(container_spec({"memory": "1"}, {"memory": edge}), maxLimitRequestRatio={"memory": edge}) == []
    # one byte more: the observed values are whole bytes (the limit's Value is over MaxMilliValue), but the
    # bound still compares in milli units (its own Value is not over): 9223372036854776.0 x 1000 is above.
    assert errors_for(container_spec({"memory": "1"}, {"memory": "9223372036854776"}),
                      maxLimitRequestRatio={"memory": edge}) == [
        f"memory max limit to request ratio per Container is {edge}, but provided ratio is 9223372036854776.000000"]


def test_of_two_limit_ranges_with_different_defaults_the_first_by_name_applies():
    # The LimitRanger applies every LimitRange in turn and each fills only what is still missing, so
    # the first one applied wins; Kubernetes takes them in its informer's (unspecified) order, the
    # engine by name so that the answer is stable: "a-team" before "b-default".
    first = {"apiVersion": "v1", "kind": "LimitRange", "metadata": s.metadata("a-team", "default"),
             "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "300m"}}]}}
    second = {"apiVersion": "v1", "kind": "LimitRange", "metadata": s.metadata("b-default", "default"),
              "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "64Mi"}}]}}
    spec = admitted_spec(container_spec(), [second, first])
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "300m", "memory": "64Mi"}


def test_a_missing_request_is_zero_also_when_the_values_compare_in_whole_units():
    # the limit's Value is over MaxMilliValue: Values, and a missing request is still 0
    assert errors_for(container_spec(limits={"memory": "9223372036854776"}), maxLimitRequestRatio={"memory": "2"}) == [
        "memory max limit to request ratio per Container is 2, but no request is specified or request is 0"]
