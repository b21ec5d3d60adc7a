"""Pod requests as the scheduler computes them, and LimitRange defaults as the LimitRanger applies them."""

import pytest

from tests import synthetic as s
from webhook.engine.quantity import QuantityError, milli, parse_quantity, units
from webhook.engine.requests import ContainerDefaults, ObjectError, Resources, pod_requests, uses_pod_ip

MI = 2**20


def test_quantities_round_up_like_the_api():
    assert milli("100m") == 100 and milli("0.5") == 500 and milli(2) == 2000 and milli("1n") == 1
    assert units("1Gi") == 2**30 and units("3388360Ki") == 3388360 * 1024 and units("1e3") == 1000
    assert units("1.5Gi") == 3 * 2**29 and units("128M") == 128_000_000
    for bad in ("12x", "", "1..2", "1gi", True, None):
        with pytest.raises(QuantityError):
            parse_quantity(bad)


def test_containers_add_up_and_limits_default_requests():
    spec = s.pod_spec([s.container("a", requests={"cpu": "100m", "memory": "64Mi"}),
                       s.container("b", limits={"cpu": "250m", "memory": "128Mi"})])
    assert pod_requests(spec) == Resources(350, 192 * MI, 0)


def test_init_containers_peak_alone_and_sidecars_add_up():
    spec = s.pod_spec([s.container("app", requests={"cpu": "100m"})],
                      initContainers=[s.container("migrate", requests={"cpu": "500m"}),
                                      s.container("proxy", requests={"cpu": "50m"}, restartPolicy="Always"),
                                      s.container("warm", requests={"cpu": "300m"})])
    # migrate alone: 500m; warm runs next to the proxy sidecar: 350m; steady state: app + proxy = 150m.
    assert pod_requests(spec).cpu == 500
    spec["initContainers"][0]["resources"] = {}
    assert pod_requests(spec).cpu == 350


def test_overhead_is_added():
    spec = s.pod_spec(
        [s.container(requests={"cpu": "100m", "memory": "64Mi"})], overhead={"cpu": "250m", "memory": "120Mi"}
    )
    assert pod_requests(spec) == Resources(350, 184 * MI, 0)


def test_limit_range_default_request_then_default_limit():
    lr_request = s.limit_range("team", default_request={"cpu": "100m"}, default={"cpu": "500m", "memory": "256Mi"})
    defaults = ContainerDefaults.from_limit_ranges([lr_request])
    spec = s.pod_spec([s.container("a", requests={}), s.container("b", requests={"cpu": "20m"})])
    # a: cpu from defaultRequest (100m), memory from default (256Mi); b keeps its 20m and gets 256Mi.
    assert pod_requests(spec, defaults) == Resources(120, 512 * MI, 0)


def test_bad_quantity_names_the_field():
    spec = s.pod_spec([s.container("a", requests={"cpu": "lots"})])
    with pytest.raises(ObjectError) as err:
        pod_requests(spec, path="spec.template.spec")
    assert err.value.field == "spec.template.spec.containers[0].resources.requests.cpu"


def test_host_network_pods_take_no_ip():
    assert not uses_pod_ip(s.pod_spec(host_network=True))
    assert uses_pod_ip(s.pod_spec())


# ---- more of k8s.io/component-helpers/resource PodRequests (v0.33.13) and the extended-resource rules ---------
from webhook.engine import requests as req  # noqa: E402
from webhook.engine.requests import (  # noqa: E402
    extended_requests, is_extended, pod_amounts, resources_from)


def test_resources_arithmetic_is_per_field():
    a, b = Resources(5, 7, 11), Resources(2, 9, 3)
    assert a + b == Resources(7, 16, 14)
    assert a - b == Resources(3, -2, 8)
    assert a.scaled(3) == Resources(15, 21, 33)
    assert a.maximum(b) == Resources(5, 9, 11) == b.maximum(a)


def test_resources_from_reads_each_field_and_names_a_bad_one():
    assert resources_from(None, "x") == Resources()
    assert resources_from({"cpu": "2", "memory": "1Ki", "ephemeral-storage": "1M", "pods": "9"}, "x") \
        == Resources(2000, 1024, 1_000_000)
    with pytest.raises(ObjectError) as err:
        resources_from({"memory": "1Ki", "ephemeral-storage": "much"}, "status.allocatable")
    assert (err.value.field, str(err.value).split(":")[0]) == ("status.allocatable.ephemeral-storage",
                                                               "status.allocatable.ephemeral-storage")
    assert err.value.problem and err.value.problem in str(err.value)


def test_the_quantity_cache_answers_the_same_and_stays_bounded(monkeypatch):
    monkeypatch.setattr(req, "_CONVERTED", {})
    monkeypatch.setattr(req, "_CONVERTED_MAX", 2)
    assert resources_from({"cpu": "250m"}, "x").cpu == 250
    assert resources_from({"cpu": "250m"}, "x").cpu == 250          # from the cache
    assert req._CONVERTED == {(milli, "250m"): 250}
    resources_from({"cpu": "1", "memory": "1Ki"}, "x")              # the third entry clears the full cache
    assert len(req._CONVERTED) <= 2 and req._CONVERTED[(units, "1Ki")] == 1024
    assert resources_from({"cpu": 2}, "x").cpu == 2000               # numbers are converted, not cached
    assert (milli, 2) not in req._CONVERTED


def test_limit_ranges_give_container_defaults_only_from_container_items_first_one_wins():
    pod_item = {"type": "Pod", "max": {"cpu": "4"}}
    first = {"spec": {"limits": [pod_item, {"type": "Container", "defaultRequest": {"cpu": "100m"},
                                            "default": {"memory": "1Gi"}}]}}
    second = {"spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "900m", "memory": "64Mi"},
                                   "default": {"memory": "2Gi", "cpu": "2"}}]}}
    defaults = ContainerDefaults.from_limit_ranges([first, second])
    # the first item's default memory 1Gi is also its defaultRequest (SetDefaults_LimitRangeItem), so it wins.
    assert dict(defaults.default_request) == {"cpu": "100m", "memory": "1Gi"}
    # the second's default cpu 2 is shadowed by its own defaultRequest 900m, itself by the first's 100m
    spec = s.pod_spec([s.container("a", requests={})])
    assert pod_requests(spec, defaults) == Resources(100, 2**30, 0)
    # A Pod-type max is no container default; an empty LimitRange gives nothing.
    assert ContainerDefaults.from_limit_ranges([{"spec": {"limits": [pod_item]}}, {}]) == req.NO_DEFAULTS


def test_for_scoring_a_missing_cpu_or_memory_request_is_100m_and_200mi_but_zero_stays_zero():
    # pkg/scheduler/util/pod_resources.go: DefaultMilliCPURequest 100, DefaultMemoryRequest 200 MB (200 * 1024 * 1024).
    spec = s.pod_spec([s.container("a", requests={}), s.container("b", requests={"cpu": "0", "memory": "0"})])
    assert pod_requests(spec) == Resources(0, 0, 0)
    assert pod_requests(spec, for_scoring=True) == Resources(100, 200 * MI, 0)
    # a limit is the request (API defaulting) before any scoring default
    limited = s.pod_spec([s.container("a", limits={"cpu": "300m"})])
    assert pod_requests(limited, for_scoring=True) == Resources(300, 200 * MI, 0)


def test_sidecars_stay_for_the_pods_lifetime_and_an_init_container_runs_next_to_earlier_ones():
    # PodRequests: reqs = containers + sidecars; each init container's need = its own + the sidecars before it;
    # result max(reqs, max of those). Memory and ephemeral storage follow the same rule as CPU.
    spec = s.pod_spec([s.container("app", requests={"cpu": "100m", "memory": "100Mi"})],
                      initContainers=[
                          s.container("side1", requests={"cpu": "200m", "memory": "10Mi"}, restartPolicy="Always"),
                          s.container("init", requests={"cpu": "250m", "memory": "500Mi",
                                                        "ephemeral-storage": "1Gi"}),
                          s.container("side2", requests={"cpu": "300m", "memory": "20Mi"}, restartPolicy="Always"),
                      ])
    # steady: 100 + 200 + 300 = 600m, 130Mi; init: 250 + 200 = 450m, 510Mi, 1Gi; sidecars alone 500m / 30Mi.
    assert pod_requests(spec) == Resources(600, 510 * MI, 2**30)
    spec["initContainers"][1]["restartPolicy"] = "OnFailure"         # not "Always": still a classic init container
    assert pod_requests(spec) == Resources(600, 510 * MI, 2**30)


def test_the_init_peak_counts_sidecars_started_before_not_after():
    spec = s.pod_spec([], initContainers=[
        s.container("init", requests={"cpu": "500m"}),
        s.container("side", requests={"cpu": "400m"}, restartPolicy="Always"),
    ])
    assert pod_requests(spec).cpu == 500                  # init alone (500) > side (400)
    spec["initContainers"].reverse()                      # side first: init runs next to it, 900
    assert pod_requests(spec).cpu == 900


def test_bad_quantities_in_init_containers_and_overhead_name_their_field():
    with pytest.raises(ObjectError) as err:
        pod_requests(s.pod_spec([], initContainers=[s.container("i", requests={"memory": "x"})]))
    assert err.value.field == "spec.initContainers[0].resources.requests.memory"
    with pytest.raises(ObjectError) as err:
        pod_requests(s.pod_spec([], overhead={"cpu": "?"}))
    assert err.value.field == "spec.overhead.cpu"
    with pytest.raises(ObjectError) as err:
        extended_requests(s.pod_spec([s.container("a", limits={"nvidia.com/gpu": "x"})]), "spec.template.spec")
    assert err.value.field == "spec.template.spec.containers[0].resources.limits.nvidia.com/gpu"


def test_extended_resource_names_as_is_extended_resource_name_and_hugepages():
    # pkg/apis/core/v1/helper: extended = not native (no "/" or a kubernetes.io/ prefix) and not "requests.";
    # hugepages-* is a scalar resource the scheduler also fits by name.
    assert is_extended("nvidia.com/gpu") and is_extended("hugepages-2Mi") and is_extended("example.com/foo")
    for native in ("cpu", "memory", "pods", "ephemeral-storage", "kubernetes.io/foo", "requests.example.com/foo"):
        assert not is_extended(native), native


def test_extended_requests_default_to_limits_and_sum_like_cpu():
    spec = s.pod_spec(
        [s.container("a", limits={"nvidia.com/gpu": "1", "cpu": "1"}),
         s.container("b", requests={"nvidia.com/gpu": "2"}, limits={"nvidia.com/gpu": "2", "example.com/x": "0"})],
        initContainers=[s.container("side", limits={"example.com/nic": "1"}, restartPolicy="Always"),
                        s.container("init", limits={"nvidia.com/gpu": "4", "example.com/nic": "2"})],
        overhead={"example.com/nic": "1", "cpu": "1"})
    # gpu: containers 1 + 2 = 3, init 4 -> 4. nic: sidecar 1, init 2 + 1 = 3 -> 3, + overhead 1 = 4. x: 0, dropped.
    assert extended_requests(spec) == (("example.com/nic", 4), ("nvidia.com/gpu", 4))
    assert extended_requests(s.pod_spec([s.container("a", requests={"cpu": "1"})])) == ()


def test_pod_amounts_as_pod_requests():
    assert pod_amounts([{"g": 1}, {"g": 2, "h": 1}], []) == {"g": 3, "h": 1}
    assert pod_amounts([{"g": 1}], [(True, {"g": 2}), (False, {"g": 2, "h": 5})]) == {"g": 4, "h": 5}
    assert pod_amounts([{"g": 5}], [(False, {"g": 2}), (True, {"g": 1})]) == {"g": 6}
    assert pod_amounts([], [(True, {"g": 1}), (True, {"g": 1}), (False, {"g": 1})]) == {"g": 3}
    assert pod_amounts([{"g": 1}], [(False, {"g": 7})]) == {"g": 7}


def test_container_extended_request_overrides_the_limit():
    spec = s.pod_spec([s.container("a", requests={"example.com/x": "1"}, limits={"example.com/x": "3"})])
    assert extended_requests(spec) == (("example.com/x", 1),)
    assert req.extended_amounts({1: "2", "example.com/y": "2"}, "p") == {"example.com/y": 2}


def test_pod_amounts_for_keys_only_one_side_has():
    # a sidecar's resource the later init container does not ask for: the init phase needs the sidecar's 1
    assert pod_amounts([], [(True, {"g": 1}), (False, {"h": 1})]) == {"g": 1, "h": 1}
    assert pod_amounts([], [(True, {"g": 1})]) == {"g": 1}         # a sidecar alone, no regular container
    assert pod_amounts([], [(False, {"g": 0})]) == {"g": 0}        # a zero stays zero
    assert pod_amounts([{"h": 2}], [(False, {"g": 0})]) == {"h": 2, "g": 0}


def test_overhead_of_an_extended_resource_no_container_asks_for():
    spec = s.pod_spec([s.container("a", requests={"cpu": "1"})], overhead={"example.com/nic": "1"})
    assert extended_requests(spec) == (("example.com/nic", 1),)


def test_container_requests_are_the_real_ones_unless_scoring_is_asked_for():
    assert req.container_requests({}, req.NO_DEFAULTS, "c") == Resources(0, 0, 0)
    assert req.container_requests({}, req.NO_DEFAULTS, "c", for_scoring=True) == Resources(100, 200 * MI, 0)


def test_container_defaults_are_immutable():
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        ContainerDefaults.from_limit_ranges([]).default_request = {"cpu": "1"}      # type: ignore[misc]


def test_a_quantity_of_a_type_no_quantity_has_names_its_field():
    # a list or a map is not a quantity: the field is named, as for a bad string (and nothing is cached)
    for raw in ([1], {"a": 1}):
        with pytest.raises(ObjectError) as err:
            resources_from({"cpu": raw}, "spec.overhead")
        assert err.value.field == "spec.overhead.cpu"
    assert resources_from({"memory": 1.5, "cpu": 0.25}, "x") == Resources(250, 2, 0)     # YAML numbers


def test_a_limit_range_default_limit_alone_defaults_the_request_too():
    # LimitRange {default: {cpu: 300m}} is stored with defaultRequest {cpu: 300m}: the request is 300m.
    lr = {"spec": {"limits": [{"type": "Container", "default": {"cpu": "300m"}, "min": {"memory": "32Mi"}}]}}
    defaults = ContainerDefaults.from_limit_ranges([lr])
    assert dict(defaults.default_request) == {"cpu": "300m", "memory": "32Mi"}
    assert pod_requests(s.pod_spec([s.container("a", requests={})]), defaults) == Resources(300, 32 * MI, 0)
