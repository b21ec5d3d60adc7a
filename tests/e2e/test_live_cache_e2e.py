"""The live cache against a real kube-apiserver (the e2e tier's ``control_plane`` fixture).

The same scenarios as ``tests/test_live_cache.py`` (which runs them against the loopback
watch-protocol server): first list -> ready, watch ADDED / MODIFIED / DELETED changing
per-node aggregates and a real verdict, a watch resumed from an expired resourceVersion
(a real 410 "too old resource version" from the API server -> relist and reconcile), and
a broken connection -> stale, then healthy after reconnect. The cache reads with the
webhook's own read-only identity. Skipped when the control plane binaries are not built.
"""

from __future__ import annotations

import pytest

from webhook.engine.evaluate import evaluate
from tests import synthetic as s
from tests.polling import wait_until
from webhook.state.live import live_holder
from webhook.state.live_lister import RawLister, abort_response

pytestmark = pytest.mark.e2e
NS = "live-cache-e2e"
N1, N2 = "lc-ip-10-0-1-17.ec2.internal", "lc-ip-10-0-2-23.ec2.internal"
FAST = dict(watch_timeout=(20, 30), read_timeout=40.0, backoff_base=0.1, backoff_max=1.0)


@pytest.fixture(scope="module")
def cluster(control_plane):
    cp = control_plane
    cp.ensure_namespace(NS)
    for name, zone, ip_pods in ((N1, "us-east-1a", 5), (N2, "us-east-1b", 4)):
        cp.create_node(name, "t3.medium", zone)
        for i in range(ip_pods):
            cp.create_pod(NS, f"addon-{name[3:12]}-{i}", name, requests={"cpu": "100m", "memory": "70Mi"})
    yield cp


@pytest.fixture
def holder(cluster):
    held = live_holder(kubeconfig=str(cluster.webhook_kubeconfig), instance_lookup=False, wait=True,
                       wait_timeout=60, **FAST)
    yield held
    held.stop()


def node_ip_pods(holder, name):
    node = holder.state.nodes.get(name)
    return node.ip_pods if node else None


def fit_on(holder, node_name) -> int:
    """How many light pods pinned to one node the engine would place there, from the live cache."""
    spec = s.pod_spec([s.container(requests={"cpu": "10m"})], nodeSelector={"kubernetes.io/hostname": node_name})
    with holder.locked() as state:
        return evaluate(state, s.deployment("lc-web", 30, NS, spec=spec)).schedulable


def test_list_then_ready(holder):
    assert holder.ready and holder.stale_for() == 0
    assert node_ip_pods(holder, N1) == 5 and node_ip_pods(holder, N2) == 4
    assert NS in holder.state.namespaces


def test_watch_events_change_aggregates_and_the_verdict(cluster, holder):
    # Other e2e modules share the control plane (aws-node may or may not exist yet), so the room on N1
    # is 15 - 5 IP slots or 17 - 5 kubelet slots: the test checks the change, one pod, not the level.
    before = fit_on(holder, N1)
    assert before in (10, 12)
    cluster.create_pod(NS, "lc-late", N1, requests={"cpu": "10m"})
    assert wait_until(lambda: node_ip_pods(holder, N1) == 6, 15)
    assert fit_on(holder, N1) == before - 1
    pod = cluster.kubectl_json("get", "pod", "-n", NS, "lc-late")
    cluster.kubectl("label", "pod", "-n", NS, "lc-late", "touched=yes")
    assert wait_until(lambda: holder.source.status["Pod"].resource_version != pod["metadata"]["resourceVersion"], 15)
    assert node_ip_pods(holder, N1) == 6                     # a label change moves nothing
    cluster.kubectl("delete", "pod", "-n", NS, "lc-late", "--wait=false", "--grace-period=0", "--force")
    assert wait_until(lambda: node_ip_pods(holder, N1) == 5, 15)
    assert fit_on(holder, N1) == before


def test_expired_resource_version_relists_and_reconciles(cluster, holder):
    status = holder.source.status["Pod"]
    # Pretend we were away since the beginning of time, while a pod went away.
    cluster.create_pod(NS, "lc-gone", N2, requests={"cpu": "10m"})
    assert wait_until(lambda: (NS, "lc-gone") in holder.state.pods, 15)
    real_lister = holder.source.lister
    dead = RawLister(make_dead_client())
    holder.source.lister = dead
    abort_response(holder.source._responses.get("Pod"))
    cluster.kubectl("delete", "pod", "-n", NS, "lc-gone", "--wait=false", "--grace-period=0", "--force")
    status.resource_version = "1"
    holder.source.lister = real_lister
    # The API server answers a watch from RV 1 with 410 (or serves it from its history):
    # either way the cache must end up without the deleted pod.
    assert wait_until(lambda: (NS, "lc-gone") not in holder.state.pods, 30)
    assert wait_until(lambda: holder.stale_for() == 0, 30)


def test_broken_connection_goes_stale_and_recovers(cluster, holder):
    real_lister = holder.source.lister
    holder.source.lister = RawLister(make_dead_client())
    for resp in list(holder.source._responses.values()):
        abort_response(resp)
    assert wait_until(lambda: holder.stale_for() > 0, 15)
    first = holder.stale_for()
    assert wait_until(lambda: holder.stale_for() > first + 0.2, 5) and holder.ready
    holder.source.lister = real_lister
    assert wait_until(lambda: holder.stale_for() == 0, 30)
    cluster.create_pod(NS, "lc-after", N2, requests={"cpu": "10m"})
    assert wait_until(lambda: (NS, "lc-after") in holder.state.pods, 15)


def make_dead_client():
    """A client for a port nobody listens on: every request fails like a lost API server."""
    from kubernetes import client

    from tests.e2e.controlplane import free_port

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"
    configuration.retries = 0
    return client.ApiClient(configuration)
