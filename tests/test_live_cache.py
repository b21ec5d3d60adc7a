"""The live cache (``webhook.state.live``) against the Kubernetes list/watch protocol.

Tier: these tests run against ``tests/watch_server.py``, a loopback fake API server that
speaks the real protocol (paged lists with resourceVersion, chunked watch streams,
bookmarks, field-selector transitions, 410 Gone as an ERROR Status event or HTTP 410,
connections cut on demand), through the official ``kubernetes`` client. The real
kube-apiserver tier comes from the e2e fixture (``tests/e2e/``, ``control_plane``):
``tests/e2e/test_live_cache_e2e.py`` runs the same list / watch / 410 / stale scenarios
there when the control plane binaries are built, and skips otherwise.
"""

from __future__ import annotations

import json
import random

import pytest

from tests.watch_server import FakeApiServer
from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from tests.polling import wait_until
from webhook.state.live import LiveSource, live_holder
from webhook.state.live_store import CompactObjects
from webhook.state.record import record_snapshot
from webhook.state.snapshot import load_snapshot

NODE_A, NODE_B = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"
FAST = dict(page_size=3, watch_timeout=(2, 3), read_timeout=5.0, backoff_base=0.05, backoff_max=0.4)


def cluster_objects() -> list[dict]:
    items = s.two_t3_medium_cluster()["items"]
    # shop is scaled to 0: a replica it wants but has no pod for would hold a slot (promised room is demand)
    return items + [s.deployment("shop", 0, "default"), s.limit_range("default", {"cpu": "50m"})]


@pytest.fixture
def server():
    with FakeApiServer(cluster_objects()) as fake:
        yield fake


def served(held) -> int:
    """Watches the fake serves: every collection but the optional CRDs it does not have."""
    return sum(1 for r in held.source.resources if not r.optional)


@pytest.fixture
def holder(server):
    held = live_holder(api_client=server.api_client(), instance_lookup=False, wait=True, wait_timeout=10, **FAST)
    assert server.wait_for_watches(served(held))   # absent optional CRDs: no watch
    yield held
    held.stop()


def verdict_21(holder) -> str:
    with holder.locked() as state:
        return evaluate(state, s.small_web(replicas=21)).verdict


def test_initial_list_fills_the_cache_and_marks_ready(server, holder):
    state = holder.state
    assert holder.ready and holder.stale_for() == 0
    assert (state.nodes[NODE_A].pods, state.nodes[NODE_A].ip_pods) == (7, 5)
    assert (state.nodes[NODE_B].pods, state.nodes[NODE_B].ip_pods) == (6, 4)
    assert state.cni.aws_vpc_cni and "gp3" in state.storage_classes and state.csinode_ebs_limit[NODE_A] == 25
    assert state.limit_ranges_in("default") and set(state.namespaces) == {"default", "kube-system"}
    # Workloads are stored compressed; reading one gives a plain, independent dict.
    assert isinstance(state.workloads, CompactObjects)
    stored = state.workloads.get(("Deployment", "default", "shop"))
    assert stored["kind"] == "Deployment" and stored["spec"]["template"]["spec"]["containers"]
    stored["spec"]["replicas"] = 99
    assert state.workloads[("Deployment", "default", "shop")]["spec"]["replicas"] == 0
    # Pods: paged list (limit + continue) with the non-terminal field selector, then a watch from its RV.
    lists = [q for p, q in server.requests if p == "/api/v1/pods" and "watch" not in q]
    # 7 + 6 pods on the two nodes, 3 a page: ceil(13 / 3) = 5 list requests.
    assert len(lists) == 5 and all(q["limit"] == "3" for q in lists) and "continue" in lists[1]
    assert lists[0]["fieldSelector"] == "status.phase!=Succeeded,status.phase!=Failed"
    watch = next(q for p, q in server.requests if p == "/api/v1/pods" and q.get("watch") == "true")
    assert watch["allowWatchBookmarks"] == "true" and 2 <= int(watch["timeoutSeconds"]) <= 3
    assert int(watch["resourceVersion"]) >= 100
    # Karpenter is not installed: its NodePool collection counts as listed and empty.
    assert holder.source.status["NodePool"].absent and state.node_pools == {}


def test_not_ready_until_every_collection_listed(server):
    server.fail_paths.add("/api/v1/limitranges")
    source_holder = live_holder(api_client=server.api_client(), instance_lookup=False, **FAST)
    try:
        assert wait_until(lambda: source_holder.source.status["Pod"].listed, 5)
        assert wait_until(lambda: source_holder.source.status["LimitRange"].failures >= 2, 5)
        assert not source_holder.ready and source_holder.stale_for() > 0
        server.fail_paths.clear()
        assert source_holder.source.wait_ready(5)
        assert source_holder.ready and wait_until(lambda: source_holder.stale_for() == 0, 3)
    finally:
        source_holder.stop()


def test_watch_events_change_aggregates_and_the_verdict(server, holder):
    state = holder.state
    assert verdict_21(holder) == "allow"
    # ADDED: a pending pod (no node) waits for a slot: it will take one, so 21 no longer fit.
    server.add(s.pod("late", "default", None))
    assert wait_until(lambda: ("default", "late") in state.pending)
    assert state.nodes[NODE_A].ip_pods == 5
    assert verdict_21(holder) == "deny"
    # MODIFIED: the scheduler binds it to node A -> node A's aggregates take it over.
    bound = server.get("Pod", "late", "default")
    bound["spec"]["nodeName"] = NODE_A
    bound["status"]["phase"] = "Running"
    server.modify(bound)
    assert wait_until(lambda: state.nodes[NODE_A].ip_pods == 6)
    assert ("default", "late") not in state.pending
    assert verdict_21(holder) == "deny"
    # DELETED: the slot comes back.
    server.delete("Pod", "late", "default")
    assert wait_until(lambda: state.nodes[NODE_A].ip_pods == 5)
    assert verdict_21(holder) == "allow"
    # A pod that completes leaves through the field selector (the server sends DELETED).
    server.add(s.pod("job-1", "default", NODE_B))
    assert wait_until(lambda: state.nodes[NODE_B].ip_pods == 5)
    done = server.get("Pod", "job-1", "default")
    done["status"]["phase"] = "Succeeded"
    server.modify(done)
    assert wait_until(lambda: state.nodes[NODE_B].ip_pods == 4 and ("default", "job-1") not in state.pods)
    # Node MODIFIED (cordon) and a Deployment change arrive too.
    node = server.get("Node", NODE_B)
    node["spec"]["unschedulable"] = True
    server.modify(node)
    assert wait_until(lambda: state.nodes[NODE_B].unschedulable)
    assert state.nodes[NODE_B].ip_pods == 4          # aggregates survive a node update
    assert verdict_21(holder) == "deny"
    shop = server.get("Deployment", "shop", "default")
    shop["spec"]["replicas"] = 3
    server.modify(shop)
    assert wait_until(lambda: state.workloads[("Deployment", "default", "shop")]["spec"]["replicas"] == 3)


@pytest.mark.parametrize("http_410", [False, True], ids=["error-event", "http-410"])
def test_410_gone_relists_and_reconciles(http_410):
    with FakeApiServer(cluster_objects(), http_410=http_410) as server:
        held = live_holder(api_client=server.api_client(), instance_lookup=False, wait=True, wait_timeout=10, **FAST)
        try:
            state, status = held.state, held.source.status["Pod"]
            assert server.wait_for_watches(served(held))   # absent optional CRDs: no watch
            # Disconnected: meanwhile a pod goes away, another comes, and history is compacted.
            server.unavailable = True
            server.break_watches()
            assert wait_until(lambda: held.stale_for() > 0, 3)
            victim = next(k for k, p in state.pods.items() if p.node == NODE_A and p.uses_ip)
            server.delete("Pod", victim[1], victim[0])
            server.add(s.pod("newcomer", "default", NODE_B))
            server.compact()
            server.unavailable = False
            # The watch from the old resourceVersion gets 410 -> relist -> reconcile.
            assert wait_until(lambda: status.relists >= 1 and victim not in state.pods
                              and ("default", "newcomer") in state.pods, 8)
            assert state.nodes[NODE_A].ip_pods == 4 and state.nodes[NODE_B].ip_pods == 5
            assert victim not in status.keys
            assert wait_until(lambda: held.stale_for() == 0, 5)
            # The cache equals a fresh list of the cluster.
            fresh = load_snapshot_from(server)
            assert set(state.pods) == set(fresh.pods)
            assert {n: (r.pods, r.ip_pods, r.used) for n, r in state.nodes.items()} == \
                   {n: (r.pods, r.ip_pods, r.used) for n, r in fresh.nodes.items()}
        finally:
            held.stop()


def test_expired_watch_cache_relists_without_going_stale(server, holder):
    status = holder.source.status["Node"]
    lists = status.lists
    server.expire_watches()                        # every open watch gets ERROR 410
    assert wait_until(lambda: status.lists > lists and status.relists >= 1, 5)
    server.add(s.node("ip-10-0-3-9.ec2.internal", zone="us-east-1c"))
    assert wait_until(lambda: "ip-10-0-3-9.ec2.internal" in holder.state.nodes, 5)
    assert all(st.failures == 0 for st in holder.source.status.values())


def test_broken_watch_goes_stale_backs_off_and_recovers(server, holder):
    state = holder.state
    server.unavailable = True
    server.break_watches()
    assert wait_until(lambda: holder.stale_for() > 0, 3)
    first = holder.stale_for()
    assert wait_until(lambda: holder.stale_for() > first + 0.5, 3)          # staleness grows
    assert holder.ready                                                     # still ready: stale, not empty
    # Backoff: delays grow per collection up to the cap, with jitter, no hot loop.
    # Wait for three retries rather than sampling at a moment: on a loaded machine fewer may have run yet.
    def pod_delays():
        return [d for kind, d in holder.source.backoff_log if kind == "Pod"]
    assert wait_until(lambda: len(pod_delays()) >= 3, 15)
    delays = pod_delays()
    assert all(0 < d <= FAST["backoff_max"] for d in delays)
    assert delays[-1] > delays[0]
    assert server.count("/api/v1/pods", watch=True) < 40
    # A change made while we were away arrives after reconnect (watch resumes from its RV).
    server.add(s.pod("while-away", "default", NODE_A))
    server.unavailable = False
    assert wait_until(lambda: holder.stale_for() == 0, 5)
    assert wait_until(lambda: ("default", "while-away") in state.pods, 5)
    assert holder.source.status["Pod"].relists == 0


def test_backoff_is_exponential_capped_and_jittered():
    source = LiveSource.__new__(LiveSource)
    source.backoff_base, source.backoff_max, source.rng = 0.5, 30.0, random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (7, 30.0), (40, 30.0)]:
        for _ in range(20):
            assert ceiling / 2 <= source._backoff(attempt) <= ceiling


def test_nodepools_are_watched_when_karpenter_is_installed():
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": s.metadata("default"),
            "spec": {"limits": {"cpu": "1000"}, "template": {"spec": {"nodeClassRef": {"name": "default"}}}}}
    with FakeApiServer(cluster_objects() + [pool], serve_nodepools=True) as server:
        held = live_holder(api_client=server.api_client(), instance_lookup=False, wait=True, wait_timeout=10, **FAST)
        try:
            assert held.state.node_pools["default"]["spec"]["limits"] == {"cpu": "1000"}
            server.delete("NodePool", "default")
            assert wait_until(lambda: "default" not in held.state.node_pools, 5)
        finally:
            held.stop()


def test_service_accounts_and_ec2nodeclasses_are_watched_and_recorded(tmp_path):
    """What a SecurityGroupPolicy's serviceAccountSelector and a Karpenter node's maxPods read."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": s.metadata("payments", "default", {"team": "payments"})}
    node_class = {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": s.metadata("small"),
                  "spec": {"amiFamily": "AL2023", "kubelet": {"maxPods": 20, "podsPerCore": 2}}}
    with FakeApiServer(cluster_objects() + [account, node_class], serve_nodepools=True,
                       serve_service_accounts=True) as server:
        held = live_holder(api_client=server.api_client(), instance_lookup=False, wait=True, wait_timeout=10, **FAST)
        try:
            network = held.state.network
            assert network.service_accounts_known and network.service_accounts[("default", "payments")] == \
                {"team": "payments"}
            found = held.state.node_classes[("EC2NodeClass", "small")]
            assert (found.max_pods, found.pods_per_core, found.ami_family) == (20, 2, "al2023")
            server.modify(dict(account, metadata=s.metadata("payments", "default", {"team": "web"})))
            assert wait_until(lambda: network.service_accounts[("default", "payments")] == {"team": "web"}, 5)
            server.delete("EC2NodeClass", "small")
            assert wait_until(lambda: ("EC2NodeClass", "small") not in held.state.node_classes, 5)
        finally:
            held.stop()
        path = tmp_path / "snapshot.json"
        record_snapshot(path, api_client=server.api_client(), page_size=4)
        recorded = load_snapshot(str(path))
        assert recorded.network.service_accounts[("default", "payments")] == {"team": "web"}
        assert recorded.node_classes == {}


def load_snapshot_from(server: FakeApiServer, tmp_name: str = "fresh.json"):
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / tmp_name
        record_snapshot(path, api_client=server.api_client(), page_size=4)
        return load_snapshot(str(path))


def test_record_snapshot_writes_the_check_format(server, holder, tmp_path):
    managed = s.pod("managed", "default", NODE_B)
    managed["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]
    server.add(managed)
    assert wait_until(lambda: ("default", "managed") in holder.state.pods)
    out = tmp_path / "night.json"
    count = record_snapshot(out, api_client=holder.source.api_client, page_size=4)
    document = json.loads(out.read_text())
    assert document["kind"] == "List" and len(document["items"]) == count
    assert all(item.get("kind") and item.get("apiVersion") for item in document["items"])
    assert not any("managedFields" in item["metadata"] for item in document["items"])
    kinds = {item["kind"] for item in document["items"]}
    assert {"Node", "Pod", "Namespace", "DaemonSet", "Deployment", "StorageClass", "CSINode", "LimitRange"} <= kinds
    # The kubeconfig form the CLI uses, and the snapshot reads back to the same aggregates.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server.url}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "nobody"}}],
        "users": [{"name": "nobody", "user": {}}]}))
    again = tmp_path / "again.json"
    assert record_snapshot(str(again), kubeconfig=str(kubeconfig), context="fake") == count
    recorded = load_snapshot(str(again))
    assert {n: (r.pods, r.ip_pods, r.used) for n, r in recorded.nodes.items()} == \
           {n: (r.pods, r.ip_pods, r.used) for n, r in holder.state.nodes.items()}
    with holder.locked() as state:
        assert evaluate(recorded, s.small_web(replicas=21)).as_dict() == \
               evaluate(state, s.small_web(replicas=21)).as_dict()
    assert verdict_21(holder) == "deny"          # "managed" took one of the 21 free IP slots: 20 left


def test_quiet_watches_end_cleanly_before_the_read_timeout():
    """No events and no bookmarks: the server's timeoutSeconds ends each watch first, nothing breaks."""
    with FakeApiServer(cluster_objects(), bookmark_interval=3600) as fake:
        quiet = dict(FAST, watch_timeout=(2, 2), read_timeout=4.0)
        held = live_holder(api_client=fake.api_client(), instance_lookup=False, wait=True, wait_timeout=30, **quiet)
        try:
            assert wait_until(lambda: all(st.watches >= 3 for st in held.source.status.values()
                                          if st.resource.kind == "Node"), timeout=30)
            assert held.stale_for() == 0.0
            assert all(st.failures == 0 for st in held.source.status.values()), \
                {k: st.failures for k, st in held.source.status.items()}
        finally:
            held.stop()
    watches = [query for path, query in fake.requests if query.get("watch") in ("true", "1")]
    assert watches and all(query.get("allowWatchBookmarks") == "true" for query in watches)
    assert all(int(query["timeoutSeconds"]) < 4.0 for query in watches)


def test_a_watch_must_end_before_the_read_timeout(server):
    from webhook.state.holder import StateHolder

    with pytest.raises(ValueError, match="must end before read_timeout"):
        LiveSource(StateHolder(), server.api_client(), watch_timeout=(80, 95), read_timeout=90.0)


def test_one_shot_stop_does_not_wait_out_a_late_watch(server):
    import time

    for _ in range(3):
        held = live_holder(api_client=server.api_client(), instance_lookup=False, wait=True, wait_timeout=10, **FAST)
        started = time.monotonic()
        held.stop()
        assert time.monotonic() - started < 2.0        # stop()'s join timeout is 5 s
