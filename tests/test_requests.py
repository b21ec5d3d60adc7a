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
    for bad in ("12x", "", "1..2", "Gi", True, None):
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
