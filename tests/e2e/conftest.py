"""Fixtures for the e2e tier.

`control_plane` (session scope) starts etcd + kube-apiserver from the binaries
built by `.ci/build-control-plane`, or attaches to the cluster named by
CAPACITY_WEBHOOK_E2E_KUBECONFIG. Missing binaries skip the tier, unless
CAPACITY_WEBHOOK_E2E_REQUIRED=1, where they fail it.
"""

from __future__ import annotations

import pytest

from . import controlplane as _cp


def pytest_collection_modifyitems(config, items):
    # Everything under tests/e2e belongs to the e2e tier, marked or not.
    for item in items:
        if "/tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


def _started(**options):
    try:
        return _cp.start_from_env(**options)
    except _cp.ControlPlaneUnavailable as exc:
        if _cp.env_flag(_cp.REQUIRED_ENV):
            pytest.fail(f"{exc} ({_cp.REQUIRED_ENV}=1)", pytrace=False)
        pytest.skip("control plane binaries not built: run .ci/build-control-plane")
    except _cp.ControlPlaneError as exc:
        pytest.fail(f"control plane did not start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def control_plane():
    cp = _started()
    try:
        yield cp
    finally:
        try:
            if cp.external:  # a borrowed cluster outlives the session: tidy it
                cp.delete_all_test_objects()
        finally:
            cp.stop()


@pytest.fixture(scope="module")
def control_plane_with_controllers():
    """A separate control plane with the real kube-scheduler and kube-controller-manager
    (Deployment and ReplicaSet controllers only), for tests that need pods created and
    placed by Kubernetes itself. Separate, so the plain fixture's pods stay where its
    tests put them."""
    cp = _started(scheduler=True, controller_manager=True)
    try:
        yield cp
    finally:
        try:
            if cp.external:
                cp.delete_all_test_objects()
        finally:
            cp.stop()
