"""tests.synthetic claims to build objects as kubectl prints them: the real API server is the judge."""

import json

import pytest

from tests import synthetic as s

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name, resources, expected", [
    ("qos-none", {}, "BestEffort"),
    ("qos-requests", {"requests": {"cpu": "100m"}}, "Burstable"),
    ("qos-equal", {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
     "Guaranteed"),
    ("qos-limits-only", {"limits": {"cpu": "200m", "memory": "64Mi"}}, "Guaranteed"),
])
def test_qos_class_matches_what_the_api_server_computes(control_plane, name, resources, expected):
    cp = control_plane
    cp.ensure_namespace("synthetic")
    spec = s.pod_spec([s.container(requests=resources.get("requests"), limits=resources.get("limits"))])
    pod = s.pod(name, "synthetic", spec=spec)
    created = json.loads(cp.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(s.as_manifest(pod))).stdout)
    try:
        assert created["status"]["qosClass"] == pod["status"]["qosClass"] == expected
    finally:
        cp.kubectl("delete", "pod", name, "-n", "synthetic", "--force", "--grace-period=0", check=False)
