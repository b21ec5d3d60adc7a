#!/usr/bin/env python3
"""How long ``capacity-webhook check`` takes for 1,000 manifests against a 5,000-node snapshot.

    python bench/check_bench.py                      # 5,000 nodes / 150,000 pods, 1,000 manifests
    python bench/check_bench.py --scale 0.1          # a tenth of the cluster, for a quick look
    python bench/check_bench.py --compare /path/to/older/checkout   # the same run on older code too

The snapshot is the synthetic cluster of ``bench/cache_bench.py`` (realistic pods as the API
server lists them, DaemonSet pods, three ReplicaSets per Deployment, LimitRanges), written the
way ``capacity-webhook snapshot`` writes it: one ``kind: List``, one item per line, without
``managedFields``. The manifests are a CI repository's worth of YAML: 100 files of 10 documents,
mostly new Deployments of ordinary size, some updates of Deployments the snapshot already runs
(scale-ups and template changes), StatefulSets, and a few that do not fit (denied).

What is timed is the wall time of the real command line in a fresh process
(``python -m webhook.cli check --cluster SNAPSHOT -f DIR -o json``), snapshot loading included.
The baseline, measured in the same run, is a plain ``json.load`` of the same snapshot file
(the least any tool that reads it must spend). Prints both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import yaml  # noqa: E402

from tests import synthetic as s  # noqa: E402

API_VERSIONS = {"Node": "v1", "Pod": "v1", "Namespace": "v1", "LimitRange": "v1", "PersistentVolume": "v1",
                "PersistentVolumeClaim": "v1", "DaemonSet": "apps/v1", "ReplicaSet": "apps/v1",
                "Deployment": "apps/v1", "StatefulSet": "apps/v1", "StorageClass": "storage.k8s.io/v1",
                "CSINode": "storage.k8s.io/v1", "VolumeAttachment": "storage.k8s.io/v1"}


def write_snapshot(pages: Path, target: Path) -> int:
    """The cache benchmark's list pages as one snapshot file, the format ``snapshot`` records."""
    count = 0
    with target.open("w", encoding="utf-8") as out:
        out.write('{\n  "apiVersion": "v1",\n  "kind": "List",\n  "metadata": {"resourceVersion": ""},\n  "items": [')
        for kind in API_VERSIONS:
            for page in sorted((pages / kind).glob("*.json")) if (pages / kind).exists() else []:
                for item in json.loads(page.read_bytes())["items"]:
                    item = {"apiVersion": API_VERSIONS[kind], "kind": kind, **item}
                    item["metadata"].pop("managedFields", None)
                    out.write(",\n    " if count else "\n    ")
                    out.write(json.dumps(item, separators=(",", ":"), ensure_ascii=False))
                    count += 1
        out.write("\n  ]\n}\n")
    return count


def write_manifests(folder: Path, count: int, namespaces: list[str], existing: list[tuple[str, str]]) -> dict:
    """``count`` objects in files of 10 documents: what a repository of workloads looks like."""
    rng = random.Random(11)
    folder.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, int] = {}
    docs: list[dict] = []
    for i in range(count):
        roll = rng.random()
        cpu, memory = rng.choice([("100m", "128Mi"), ("250m", "256Mi"), ("500m", "512Mi"), ("50m", "64Mi")])
        spec = s.pod_spec([s.container("app", f"registry.example.com/app-{i}:1.0",
                                       requests={"cpu": cpu, "memory": memory}, limits={"memory": memory}),
                           s.container("envoy", "envoyproxy/envoy:v1.31.0",
                                       requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "128Mi"})])
        if roll < 0.10 and existing:                    # scale-up of a running Deployment
            namespace, name = existing[rng.randrange(len(existing))]
            obj = s.deployment(name, 20 + rng.randint(1, 10), namespace, spec)
            label = "Deployment (update)"
        elif roll < 0.15:
            obj = s.statefulset(f"db-{i}", rng.randint(1, 5), namespaces[i % len(namespaces)], spec)
            label = "StatefulSet"
        elif roll < 0.17:                               # does not fit anywhere: denied
            big = s.pod_spec([s.container("app", "registry.example.com/batch:1",
                                          requests={"cpu": "64", "memory": "512Gi"})])
            obj = s.deployment(f"huge-{i}", 2, namespaces[i % len(namespaces)], big)
            label = "Deployment (too big)"
        else:
            obj = s.deployment(f"web-{i}", rng.choice([1, 2, 3, 5, 10, 20]), namespaces[i % len(namespaces)], spec)
            label = "Deployment"
        kinds[label] = kinds.get(label, 0) + 1
        docs.append(s.as_manifest(obj))
    for start in range(0, len(docs), 10):
        text = yaml.safe_dump_all(docs[start:start + 10], sort_keys=False)
        (folder / f"apps-{start // 10:03d}.yaml").write_text(text, encoding="utf-8")
    return kinds


def json_load_seconds(path: Path, gc_off: bool = False) -> float:
    """The baseline: a plain ``json.load`` of the snapshot, in a fresh process like the check.

    ``gc_off``: with the cyclic GC disabled first. A plain ``json.load`` of hundreds of
    megabytes spends much of its time in collections that walk the growing document;
    this stricter baseline shows what parsing alone costs."""
    code = ("import gc,json,sys,time; t=time.perf_counter(); f=open(sys.argv[1], encoding='utf-8'); "
            + ("gc.disable(); " if gc_off else "") + "d=json.load(f); print(time.perf_counter()-t)")
    before = os.times()
    seconds = float(subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True,
                                   text=True).stdout)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    print(f"  json.load{' (GC disabled)' if gc_off else ''} process CPU (user + system): {cpu:.2f} s", flush=True)
    return seconds


def check_seconds(tree: Path, snapshot: Path, manifests: Path) -> tuple[float, dict, int]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    started = time.perf_counter()
    cpu_before = os.times()
    proc = subprocess.run([sys.executable, "-m", "webhook.cli", "check", "--cluster", str(snapshot), "-f",
                           str(manifests), "-o", "json", "--fail-on", "never"], cwd=str(tree), env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    cpu_after = os.times()
    cpu = (cpu_after.children_user - cpu_before.children_user) + (cpu_after.children_system
                                                                    - cpu_before.children_system)
    print(f"  check process CPU (user + system): {cpu:.2f} s of {wall:.2f} s wall", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"check failed ({proc.returncode}): {proc.stderr[-2000:]}")
    results = json.loads(proc.stdout)
    items = results if isinstance(results, list) else results.get("results") or results.get("items") or []
    verdicts: dict[str, int] = {}
    for item in items:
        verdict = item.get("verdict", "?") if isinstance(item, dict) else "?"
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    return wall, verdicts, len(items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 5,000 nodes / 150,000 pods")
    parser.add_argument("--manifests", type=int, default=1000)
    parser.add_argument("--pages", metavar="DIR", help="reuse list pages written by cache_bench.py --keep DIR")
    parser.add_argument("--keep", metavar="DIR", help="keep the snapshot and manifests in DIR")
    parser.add_argument("--compare", metavar="TREE", help="also time the check of another checkout (e.g. older code)")
    parser.add_argument("--runs", type=int, default=1, help="timed runs of each command (the best is reported)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="check-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    snapshot, manifests = work / "snapshot.json", work / "manifests"
    if not snapshot.exists():
        pages = Path(args.pages) if args.pages else work / "pages"
        if not (pages / "Pod").exists():
            import cache_bench
            cache_bench.build_cluster(args.scale, pages)
        items = write_snapshot(pages, snapshot)
        if not args.pages:
            shutil.rmtree(pages, ignore_errors=True)
    else:
        items = None
    snap = json.loads(snapshot.read_bytes())["items"]
    kinds_in = {}
    for item in snap:
        kinds_in[item["kind"]] = kinds_in.get(item["kind"], 0) + 1
    namespaces = [i["metadata"]["name"] for i in snap if i["kind"] == "Namespace"
                  and i["metadata"]["name"].startswith("team-")]
    existing = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in snap if i["kind"] == "Deployment"]
    del snap
    if manifests.exists():
        shutil.rmtree(manifests)
    kinds = write_manifests(manifests, args.manifests, namespaces, existing)
    size = snapshot.stat().st_size
    print(f"snapshot: {kinds_in.get('Node', 0)} nodes, {kinds_in.get('Pod', 0)} pods, "
          f"{sum(kinds_in.values())} objects, {size / 2**20:.0f} MiB; manifests: {args.manifests} "
          f"({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}); prepared in {time.perf_counter() - t0:.0f} s",
          flush=True)

    print(f"load average before the timed runs: {os.getloadavg()[0]:.1f}", flush=True)
    baseline = min(json_load_seconds(snapshot) for _ in range(args.runs))
    print(f"baseline: plain json.load of the snapshot {baseline:.2f} s", flush=True)
    strict = min(json_load_seconds(snapshot, gc_off=True) for _ in range(args.runs))
    print(f"stricter baseline: json.load with the GC disabled {strict:.2f} s", flush=True)
    wall, verdicts, count = min((check_seconds(ROOT, snapshot, manifests) for _ in range(args.runs)),
                                key=lambda r: r[0])
    print(f"check (this tree): {wall:.2f} s wall for {count} verdicts {verdicts}; "
          f"{wall / baseline:.1f}x json.load, {wall / strict:.1f}x json.load without GC "
          f"(targets: < 10 s, < 10x)", flush=True)
    if args.compare:
        other, other_verdicts, other_count = check_seconds(Path(args.compare), snapshot, manifests)
        print(f"check ({args.compare}): {other:.2f} s wall for {other_count} verdicts {other_verdicts}; "
              f"{other / baseline:.1f}x json.load; this tree is {other / wall:.1f}x faster", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}; total bench time {time.perf_counter() - t0:.0f} s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    del items
    return 0


if __name__ == "__main__":
    sys.exit(main())
