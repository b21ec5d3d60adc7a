#!/usr/bin/env python3
"""Benchmark of the live cache at scale: 5,000 nodes and 150,000 pods (issue 5).

    python bench/cache_bench.py                 # full size (about 2 minutes on 2 cores)
    python bench/cache_bench.py --scale 0.1     # a tenth, for a quick look

It builds a synthetic cluster with ``tests.synthetic`` (realistic pods: two containers
with requests and limits, env, probes, a projected token volume, owner references to
ReplicaSets, full status with container statuses, and managedFields as the API server
sends them; three DaemonSet pods per node; three ReplicaSets per Deployment), encodes it
as the API server's paged list responses and watch lines, and then, in a fresh child
process, runs the real ``LiveSource`` code (``_list`` / ``_watch`` / ``watch_events``)
over those bytes: only the socket is left out. It prints:

1. memory of the cache: RSS growth of the child after the initial list (after gc and
   malloc_trim), plus the retained Python heap (tracemalloc) of a 10% sample, scaled;
2. seconds to build the cache from the initial list (JSON parse + apply, all pages);
3. watch events applied per second (a mix of pod MODIFIED/ADDED/DELETED and node updates);

and ratios against baselines measured in the same run on samples: keeping whole parsed
objects (the naive cache), and deserializing with the kubernetes client's models.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import synthetic as s  # noqa: E402

NODE_ALLOCATABLE = {"cpu": "7910m", "ephemeral-storage": "95551679124", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                    "memory": "31208812Ki", "pods": "58"}
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
PAGE = 500
T = "2026-11-01T08:00:00Z"


# ---- the synthetic cluster -----------------------------------------------------------------
def app_spec(app: str, cpu: str, memory: str) -> dict:
    main = s.container(
        "app", f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{app}:v1.42.7",
        requests={"cpu": cpu, "memory": memory}, limits={"memory": memory},
        env=[{"name": f"SETTING_{k}", "value": f"value-{k}"} for k in range(6)],
        ports=[{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        readinessProbe={"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10,
                        "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 1},
        volumeMounts=[{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access",
                       "readOnly": True}])
    sidecar = s.container("envoy", "envoyproxy/envoy:v1.31.0", requests={"cpu": "50m", "memory": "64Mi"},
                          limits={"memory": "128Mi"})
    return s.pod_spec(
        [main, sidecar], serviceAccountName=app, enableServiceLinks=True, priority=0,
        preemptionPolicy="PreemptLowerPriority",
        tolerations=[{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists",
                      "tolerationSeconds": 300},
                     {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists",
                      "tolerationSeconds": 300}],
        volumes=[{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                        "path": "namespace"}]}}]}}])


def realistic_pod(name: str, namespace: str, node: str, spec: dict, labels: dict, owner: tuple, ip: str) -> dict:
    pod = s.pod(name, namespace, node, spec, labels=labels, owner=owner)
    names = [c["name"] for c in spec["containers"]]
    pod["metadata"]["generateName"] = name.rsplit("-", 1)[0] + "-"
    pod["metadata"]["managedFields"] = [
        {
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "manager": "kube-controller-manager",
            "operation": "Update",
            "time": T,
            "fieldsV1": {
                "f:metadata": {
                    "f:generateName": {},
                    "f:labels": {".": {}, **{f"f:{k}": {} for k in labels}},
                    "f:ownerReferences": {".": {}, f'k:{{"uid":"{pod["metadata"]["ownerReferences"][0]["uid"]}"}}': {}},
                },
                "f:spec": {
                    "f:containers": {
                        f'k:{{"name":"{n}"}}': {".": {}, "f:image": {}, "f:name": {}, "f:resources": {}} for n in names
                    },
                    "f:dnsPolicy": {},
                    "f:restartPolicy": {},
                    "f:volumes": {},
                },
            },
        },
        {
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "manager": "kubelet",
            "operation": "Update",
            "subresource": "status",
            "time": T,
            "fieldsV1": {
                "f:status": {
                    "f:conditions": {},
                    "f:containerStatuses": {},
                    "f:hostIP": {},
                    "f:phase": {},
                    "f:podIP": {},
                    "f:podIPs": {},
                    "f:startTime": {},
                }
            },
        },
    ]
    pod["status"].update(
        {
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIPs": [{"ip": "10.0.0.10"}],
            "conditions": [
                {"lastProbeTime": None, "lastTransitionTime": T, "status": "True", "type": t}
                for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "containerID": f"containerd://{'%064x' % random.getrandbits(256)}",
                    "image": c["image"],
                    "imageID": f"{c['image'].split(':')[0]}@sha256:{'%064x' % random.getrandbits(256)}",
                    "lastState": {},
                    "name": c["name"],
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": T}},
                }
                for c in spec["containers"]
            ],
        }
    )
    return pod


def build_cluster(scale: float, out: Path) -> dict:
    """Write list pages (per collection) and watch batches under ``out``; return counts."""
    random.seed(42)
    nodes_n = int(5000 * scale)
    app_pods_target = int(135000 * scale)
    replicas = 20
    deployments_n = app_pods_target // replicas
    node_names = [f"ip-10-{i // 250}-{i % 250}-{i % 7}.ec2.internal" for i in range(nodes_n)]
    counts: dict[str, int] = {}

    def write(kind: str, items: list) -> None:
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, max(len(items), 1), PAGE):
            page = []
            for item in items[start : start + PAGE]:
                item = dict(item)
                item.pop("kind", None)
                item.pop("apiVersion", None)
                page.append(item)
            body = {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": "1000"}, "items": page}
            (folder / f"{start // PAGE:05d}.json").write_bytes(json.dumps(body, separators=(",", ":")).encode())
        counts[kind] = len(items)

    nodes = [s.node(n, "m5.2xlarge", ZONES[i % 3], allocatable=NODE_ALLOCATABLE) for i, n in enumerate(node_names)]
    write("Node", nodes)
    write("CSINode", [s.csinode(n) for n in node_names])
    namespaces = [f"team-{i:03d}" for i in range(max(3, int(300 * scale)))]
    write("Namespace", [s.namespace(n) for n in namespaces + ["kube-system"]])
    write("LimitRange", [s.limit_range(n, {"cpu": "100m", "memory": "128Mi"}) for n in namespaces])
    write("StorageClass", [s.storage_class("gp3", parameters={"type": "gp3"}, default=True)])
    write("DaemonSet", [s.aws_node(), s.daemonset("kube-proxy"), s.daemonset("ebs-csi-node")])
    for kind in ("StatefulSet", "PersistentVolume", "PersistentVolumeClaim", "VolumeAttachment"):
        write(kind, [])

    deployments, replicasets = [], []
    pods_written = 0
    pod_pages = 0
    folder = out / "Pod"
    folder.mkdir(parents=True, exist_ok=True)
    buffer: list[bytes] = []

    def flush() -> None:
        nonlocal buffer, pod_pages
        if buffer:
            body = (
                b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1000"},"items":['
                + b",".join(buffer)
                + b"]}"
            )
            (folder / f"{pod_pages:05d}.json").write_bytes(body)
            pod_pages += 1
            buffer = []

    def emit(pod: dict) -> None:
        nonlocal pods_written
        pod.pop("kind", None)
        pod.pop("apiVersion", None)
        buffer.append(json.dumps(pod, separators=(",", ":")).encode())
        pods_written += 1
        if len(buffer) == PAGE:
            flush()

    slot = 0
    for i, node in enumerate(node_names):  # DaemonSet pods: aws-node, kube-proxy (host network), ebs-csi-node
        short = node.split(".")[0]
        for ds, host, cpu in (("aws-node", True, "25m"), ("kube-proxy", True, "100m"), ("ebs-csi-node", False, "10m")):
            spec = s.pod_spec([s.container(ds, requests={"cpu": cpu, "memory": "40Mi"})], host_network=host)
            emit(
                realistic_pod(
                    f"{ds}-{short}",
                    "kube-system",
                    node,
                    spec,
                    {"k8s-app": ds},
                    ("apps/v1", "DaemonSet", ds),
                    f"10.1.{i % 250}.{slot % 250}",
                )
            )
            slot += 1
    sample_pods: list[dict] = []
    for d in range(deployments_n):
        namespace = namespaces[d % len(namespaces)]
        app = f"svc-{d:05d}"
        cpu, memory = random.choice([("100m", "128Mi"), ("250m", "256Mi"), ("500m", "512Mi"), ("50m", "64Mi")])
        spec = app_spec(app, cpu, memory)
        deployment = s.deployment(app, replicas, namespace, spec)
        deployments.append(deployment)
        for r, rs_replicas in enumerate((replicas, 0, 0)):  # current ReplicaSet + two old ones
            hash_ = f"{d:05x}{r}abc"[:10]
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": s.metadata(
                    f"{app}-{hash_}",
                    namespace,
                    {"app": app, "pod-template-hash": hash_},
                    {
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "deployment.kubernetes.io/revision": str(3 - r),
                    },
                    owner=("apps/v1", "Deployment", app),
                ),
                "spec": {
                    "replicas": rs_replicas,
                    "selector": {"matchLabels": {"app": app, "pod-template-hash": hash_}},
                    "template": s.template({"app": app, "pod-template-hash": hash_}, spec),
                },
                "status": {"replicas": rs_replicas, "observedGeneration": 1},
            }
            replicasets.append(rs)
        current = replicasets[-3]["metadata"]["name"]
        for k in range(replicas):
            node = node_names[(d * replicas + k) % nodes_n]
            pod = realistic_pod(
                f"{current}-{k:05d}",
                namespace,
                node,
                spec,
                {"app": app, "pod-template-hash": current.rsplit("-", 1)[1]},
                ("apps/v1", "ReplicaSet", current),
                f"10.2.{slot % 250}.{k}",
            )
            slot += 1
            if len(sample_pods) < 5000 and random.random() < 0.05:
                sample_pods.append(json.loads(json.dumps(pod)))
            emit(pod)
    flush()
    counts["Pod"] = pods_written
    write("Deployment", deployments)
    write("ReplicaSet", replicasets)
    (out / "sample_pods.json").write_text(json.dumps(sample_pods))
    (out / "sample_workloads.json").write_text(json.dumps(replicasets[:900] + deployments[:300]))
    counts["watch_events"] = write_watch_events(out, sample_pods, node_names, nodes, scale)
    (out / "counts.json").write_text(json.dumps(counts))
    return counts


def write_watch_events(out: Path, sample_pods: list, node_names: list, nodes: list, scale: float) -> int:
    """Watch lines: 70% pod MODIFIED (status updates), 12% ADDED, 12% DELETED, 6% node MODIFIED."""
    events_n = max(20000, int(100000 * min(1.0, scale * 2)))
    lines: dict[str, list] = {"Pod": [], "Node": []}
    added: list[dict] = []
    rv = 2000
    rng = random.Random(7)
    for i in range(events_n):
        rv += 1
        roll = rng.random()
        if roll < 0.70:
            pod = dict(sample_pods[i % len(sample_pods)])
            pod["metadata"] = dict(pod["metadata"], resourceVersion=str(rv))
            pod["status"] = dict(pod["status"], conditions=pod["status"]["conditions"][:4])
            event = {"type": "MODIFIED", "object": pod}
        elif roll < 0.82 or not added:
            pod = dict(sample_pods[i % len(sample_pods)])
            pod["metadata"] = dict(pod["metadata"], name=f"burst-{i}", resourceVersion=str(rv))
            pod["spec"] = dict(pod["spec"], nodeName=node_names[rng.randrange(len(node_names))])
            added.append(pod)
            event = {"type": "ADDED", "object": pod}
        elif roll < 0.94:
            pod = added.pop(rng.randrange(len(added)))
            event = {"type": "DELETED", "object": dict(pod, metadata=dict(pod["metadata"], resourceVersion=str(rv)))}
        else:
            node = dict(nodes[rng.randrange(len(nodes))])
            node["metadata"] = dict(node["metadata"], resourceVersion=str(rv))
            event = {"type": "MODIFIED", "object": node}
        kind = event["object"].get("kind") or "Pod"
        event["object"] = dict(event["object"], kind=kind, apiVersion="v1")
        lines[kind].append(json.dumps(event, separators=(",", ":")).encode() + b"\n")
    for kind, kind_lines in lines.items():
        (out / f"watch-{kind}.jsonl").write_bytes(b"".join(kind_lines))
    return events_n


# ---- the child: the real LiveSource over the recorded bytes --------------------------------------
def file_lister(folder: Path):
    """The real RawLister (its list_pages and watch, JSON parsing included) over recorded bytes.

    Only ``call``, the HTTP request, is replaced: it answers list requests with the page
    files (a ``continue`` token pointing at the next file) and watch requests with the
    recorded lines.
    """
    from webhook.state.live_lister import RawLister

    class FileLister(RawLister):
        def __init__(self) -> None:
            super().__init__(api_client=None)
            self.folder = folder
            self.watch_lines: dict[str, list] = {}

        def call(self, res, **params):
            if params.get("watch"):
                return _Stream(self.watch_lines.pop(res.kind, []))
            pages = sorted((self.folder / res.kind).glob("*.json")) if (self.folder / res.kind).exists() else []
            if not pages:
                return _Body(b'{"metadata":{"resourceVersion":"1000"},"items":[]}')
            index = int(params.get("_continue") or 0)
            body = pages[index].read_bytes()
            if index + 1 < len(pages):
                body = body.replace(
                    b'"metadata":{"resourceVersion":"1000"}',
                    b'"metadata":{"resourceVersion":"1000","continue":"%d"}' % (index + 1),
                    1,
                )
            return _Body(body)

    return FileLister()


class _Body:
    """A list response: the whole body at once."""

    def __init__(self, body: bytes):
        self.body = body

    def read(self) -> bytes:
        return self.body

    def release_conn(self):
        pass


class _Stream:
    """A watch response: one chunk per event, as the API server flushes them."""

    def __init__(self, lines: list):
        self.lines = lines

    def stream(self, amt=None, decode_content=False):
        return iter(self.lines)

    def release_conn(self):
        pass


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settle() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def child(folder: Path) -> dict:
    from webhook.state.holder import StateHolder
    from webhook.state.live import LiveSource
    from webhook.state.live_lister import LIVE_RESOURCES

    resources = tuple(r for r in LIVE_RESOURCES if r.kind != "NodePool")
    settle()
    rss0 = rss_bytes()
    holder = StateHolder()
    source = LiveSource(holder, api_client=None, resources=resources, instance_lookup=None)
    source.lister = file_lister(folder)
    started, cpu = time.perf_counter(), time.process_time()
    for res in resources:  # Nodes first, as the live source orders them
        source._list(source.status[res.kind])
    list_seconds, list_cpu = time.perf_counter() - started, time.process_time() - cpu
    assert holder.ready, "every collection listed"
    settle()
    rss1 = rss_bytes()
    state = holder.state
    # Watch: the recorded lines through watch_events + apply, pods and nodes on their own streams.
    by_kind = {
        kind: (folder / f"watch-{kind}.jsonl").read_bytes().splitlines(keepends=True) for kind in ("Pod", "Node")
    }
    lines = by_kind["Pod"] + by_kind["Node"]
    source.lister.watch_lines = by_kind
    started, cpu = time.perf_counter(), time.process_time()
    source._watch(source.status["Pod"])
    source._watch(source.status["Node"])
    watch_seconds, watch_cpu = time.perf_counter() - started, time.process_time() - cpu
    settle()
    return {
        "nodes": len(state.nodes),
        "pods": len(state.pods),
        "workloads": len(state.workloads),
        "list_seconds": list_seconds,
        "list_cpu": list_cpu,
        "watch_cpu": watch_cpu,
        "cache_rss": rss1 - rss0,
        "watch_events": len(lines),
        "watch_seconds": watch_seconds,
        "events_applied": source.status["Pod"].events + source.status["Node"].events,
    }


# ---- baselines on samples ------------------------------------------------------------------------
def retained(build) -> tuple[int, object]:
    settle()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    settle()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, kept


def baselines(folder: Path) -> dict:
    from webhook.engine.model import ClusterState
    from webhook.state.holder import StateHolder
    from webhook.state.live import LiveSource
    from webhook.state.live_lister import RESOURCES

    pods_raw = (folder / "sample_pods.json").read_bytes()
    workloads_raw = (folder / "sample_workloads.json").read_bytes()
    pods = json.loads(pods_raw)
    n = len(pods)
    nodes = {p["spec"]["nodeName"] for p in pods}

    holder = StateHolder(ClusterState())
    source = LiveSource(holder, api_client=None, resources=RESOURCES)
    for name in nodes:
        holder.state.apply(s.node(name, "m5.2xlarge", allocatable=NODE_ALLOCATABLE))

    def slim():
        for pod in json.loads(pods_raw):
            pod["kind"] = "Pod"
            source.status["Pod"].keys.add(source._apply(RESOURCES[1], pod))
        return None

    slim_bytes, _ = retained(slim)  # records, indexes, key set: everything a pod adds
    slim_per_pod = slim_bytes / n
    del holder, source
    whole_bytes, kept_whole = retained(
        lambda: {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in json.loads(pods_raw)}
    )
    whole_per_pod = whole_bytes / n
    del kept_whole

    workloads = json.loads(workloads_raw)
    from webhook.state.live_store import CompactObjects

    compact_bytes, kept = retained(
        lambda: CompactObjects(
            {(w["kind"], w["metadata"]["namespace"], w["metadata"]["name"]): w for w in json.loads(workloads_raw)}
        )
    )
    from webhook.engine.model import _trim

    dict_bytes, kept2 = retained(
        lambda: {
            (w["kind"], w["metadata"]["namespace"], w["metadata"]["name"]): _trim(w) for w in json.loads(workloads_raw)
        }
    )
    del kept, kept2

    # Speed: raw JSON + slim apply vs the kubernetes client's model deserialization, same pods.
    body = b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":' + pods_raw + b"}"
    started = time.perf_counter()
    holder = StateHolder(ClusterState())
    source = LiveSource(holder, api_client=None, resources=RESOURCES)
    for name in nodes:
        holder.state.apply(s.node(name, "m5.2xlarge", allocatable=NODE_ALLOCATABLE))
    for pod in json.loads(body)["items"]:
        pod["kind"] = "Pod"
        source._apply(RESOURCES[1], pod)
    raw_per_pod = (time.perf_counter() - started) / n
    from kubernetes.client import ApiClient

    client = ApiClient()
    sample = min(n, 1000)
    small = (
        b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":'
        + json.dumps(pods[:sample]).encode()
        + b"}"
    )
    started = time.perf_counter()
    try:
        client.deserialize(small.decode(), "V1PodList", "application/json")
    except TypeError:  # kubernetes < 35: deserialize(response, type)
        client._ApiClient__deserialize(json.loads(small), "V1PodList")
    model_per_pod = (time.perf_counter() - started) / sample
    return {
        "sample_pods": n,
        "slim_bytes_per_pod": slim_per_pod,
        "whole_bytes_per_pod": whole_per_pod,
        "compact_bytes_per_workload": compact_bytes / len(workloads),
        "dict_bytes_per_workload": dict_bytes / len(workloads),
        "raw_seconds_per_pod": raw_per_pod,
        "model_seconds_per_pod": model_per_pod,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 5,000 nodes / 150,000 pods")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated pages in DIR (reused when already there)")
    parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--baselines", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child))))
        return 0
    if args.baselines:
        print(json.dumps(baselines(Path(args.baselines))))
        return 0

    t0 = time.perf_counter()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cache-bench-"))
    if args.keep and (folder / "counts.json").exists():
        counts = json.loads((folder / "counts.json").read_text())  # pages of an earlier run
    else:
        counts = build_cluster(args.scale, folder)
    size = sum(f.stat().st_size for f in (folder / "Pod").glob("*.json"))
    print(
        f"cluster: {counts['Node']} nodes, {counts['Pod']} pods, {counts['Deployment']} Deployments, "
        f"{counts['ReplicaSet']} ReplicaSets, {counts['Namespace']} namespaces; pod list {size / 2**20:.0f} MiB "
        f"JSON ({size / counts['Pod'] / 1024:.1f} KiB/pod); generated in {time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    print(f"load average before the timed run: {os.getloadavg()[0]:.1f}", flush=True)
    run = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--child", str(folder)], check=True, capture_output=True, text=True
        ).stdout
    )
    base = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--baselines", str(folder)], check=True, capture_output=True, text=True
        ).stdout
    )
    pods, workloads = counts["Pod"], counts["Deployment"] + counts["ReplicaSet"] + counts["DaemonSet"]
    naive_bytes = pods * base["whole_bytes_per_pod"] + workloads * base["dict_bytes_per_workload"]
    rate = run["watch_events"] / run["watch_seconds"]
    model_list = pods * base["model_seconds_per_pod"]
    print(
        f"1. cache memory: {run['cache_rss'] / 2**20:.0f} MiB RSS growth after the initial list "
        f"(target < 300 MB); retained heap on a {base['sample_pods']}-pod sample: "
        f"{base['slim_bytes_per_pod']:.0f} B/pod, workloads {base['compact_bytes_per_workload']:.0f} B each"
    )
    print(
        f"   baseline, whole objects kept: {base['whole_bytes_per_pod']:.0f} B/pod, "
        f"{base['dict_bytes_per_workload']:.0f} B/workload -> {naive_bytes / 2**20:.0f} MiB "
        f"({naive_bytes / max(run['cache_rss'], 1):.1f}x the cache)"
    )
    print(
        f"2. initial list -> cache: {run['list_seconds']:.1f} s for {run['nodes']} nodes, {run['pods']} pods, "
        f"{run['workloads']} workloads (target < 20 s); CPU {run['list_cpu']:.1f} s"
    )
    print(
        f"   baseline, kubernetes client models: {base['model_seconds_per_pod'] * 1e6:.0f} us/pod to deserialize "
        f"alone vs {base['raw_seconds_per_pod'] * 1e6:.0f} us/pod raw parse + apply -> {model_list:.0f} s for the pods "
        f"({model_list / run['list_seconds']:.1f}x the whole list)"
    )
    print(
        f"3. watch: {rate:,.0f} events/s applied ({run['watch_events']:,} events in {run['watch_seconds']:.1f} s; "
        f"target > 20,000/s); {run['watch_events'] / run['watch_cpu']:,.0f} events per CPU second"
    )
    print(
        f"   baseline, client models: {1 / base['model_seconds_per_pod']:,.0f} pods/s deserialized alone "
        f"({rate * base['model_seconds_per_pod']:.1f}x slower than the cache's events/s)"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}; total bench time {time.perf_counter() - t0:.0f} s")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
