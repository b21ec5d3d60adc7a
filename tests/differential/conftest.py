"""Fixtures for the differential tier: one control plane (etcd + kube-apiserver +
kube-scheduler) and one Referee for the whole session. Missing binaries skip the tier,
unless CAPACITY_WEBHOOK_E2E_REQUIRED=1, where they fail it."""

from __future__ import annotations

import pytest

from tests.e2e import controlplane as _cp


def pytest_collection_modifyitems(config, items):
    # Everything here needs the control plane: it is part of the e2e tier too, so that
    # `-m "not e2e"` (the quick suite) leaves it out and `-m differential` selects it alone.
    for item in items:
        if "/tests/differential/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.differential)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def referee(tmp_path_factory):
    from tests.differential.campaign import start_control_plane
    from tests.differential.referee import Referee

    try:
        cp = start_control_plane()
    except _cp.ControlPlaneUnavailable as exc:
        if _cp.env_flag(_cp.REQUIRED_ENV):
            pytest.fail(f"{exc} ({_cp.REQUIRED_ENV}=1)", pytrace=False)
        pytest.skip(f"{exc}")
    except _cp.ControlPlaneError as exc:
        pytest.fail(f"control plane did not start: {exc}", pytrace=False)
    try:
        yield Referee(cp, tmp_path_factory.mktemp("differential"))
    finally:
        cp.stop()
