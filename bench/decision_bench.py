"""How long one admission decision takes, how it grows with the cluster, and a baseline.

    python bench/decision_bench.py [--nodes 5000] [--pods-per-node 30] [--decisions 200] [--small 100]

Builds a synthetic cluster (kubectl-shaped objects from tests.synthetic) into a
ClusterState, then times ``evaluate`` for an ordinary Deployment that fits (200 replicas
of 10m / 32Mi: the target is p99 under 1 ms at 5,000 nodes / 150,000 pods) and one that
does not. The same decision on a ``--small``-node cluster of the same shape gives the
growth from 100 to 5,000 nodes as a ratio (50x would be linear in the nodes). The
baseline recomputes every node's usage from the full pod list per decision, which is
what the per-node aggregates in ClusterState avoid. Prints figures and the ratios.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import synthetic as s  # noqa: E402
from webhook.engine.evaluate import evaluate  # noqa: E402
from webhook.state.gc_pause import freeze_survivors  # noqa: E402
from webhook.engine.model import ClusterState  # noqa: E402
from webhook.engine.requests import ZERO  # noqa: E402

TYPES = ("m5.large", "m5.xlarge", "c5.2xlarge", "m5.4xlarge")
ALLOCATABLE = {"m5.large": ("1930m", "7220184Ki", "29"), "m5.xlarge": ("3920m", "15147204Ki", "58"),
               "c5.2xlarge": ("7910m", "14636096Ki", "58"), "m5.4xlarge": ("15890m", "62121476Ki", "234")}


def build(nodes: int, pods_per_node: int) -> ClusterState:
    state = ClusterState()
    state.apply(s.aws_node())
    spec = s.pod_spec([s.container(requests={"cpu": "20m", "memory": "32Mi"})])
    daemon = s.pod_spec([s.container("aws-node", requests={"cpu": "25m"})], host_network=True)
    for i in range(nodes):
        itype = TYPES[i % len(TYPES)]
        cpu, mem, pods = ALLOCATABLE[itype]
        name = f"ip-10-{i // 250}-{i % 250}-1.ec2.internal"
        state.apply(s.node(name, itype, allocatable={"cpu": cpu, "memory": mem, "pods": pods,
                                                     "ephemeral-storage": "18242267924"}))
        state.apply(
            s.pod(f"aws-node-{i}", "kube-system", name, spec=daemon, owner=("apps/v1", "DaemonSet", "aws-node"))
        )
        for j in range(pods_per_node - 1):
            state.apply(s.pod(f"p-{i}-{j}", "default", name, spec=spec))
    freeze_survivors()      # as the snapshot and live sources do with a finished state
    return state


def naive_usage_scan(state: ClusterState) -> dict:
    """The baseline: rebuild per-node usage from every pod, as a cache without aggregates must."""
    usage: dict = {}
    for pod in state.pods.values():
        if pod.node:
            used, count, ips = usage.get(pod.node, (ZERO, 0, 0))
            usage[pod.node] = (used + pod.requests, count + 1, ips + (1 if pod.uses_ip else 0))
    return usage


def percentiles(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


CPU_MS: list[float] = []           # thread CPU time of each timed call (ms), next to its wall time
GC_PAUSES: list[float] = []        # collections during the timed calls (ms each)


def _on_gc(phase: str, info: dict, started: list = [0.0]) -> None:  # noqa: B006 - the start of the running one
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        GC_PAUSES.append((time.perf_counter() - started[0]) * 1000)


def timed(fn, repeat: int) -> list[float]:
    """Wall ms per call; also the CPU ms per call (``CPU_MS``) and the collections that ran
    meanwhile (``GC_PAUSES``), so that a slow p99 can be told apart: the decision's own work
    (CPU), the collector (GC), or a machine that did not give the process a core (wall >> CPU)."""
    out = []
    CPU_MS.clear()
    GC_PAUSES.clear()
    gc.callbacks.append(_on_gc)
    try:
        for _ in range(repeat):
            start, cpu = time.perf_counter(), time.thread_time()
            fn()
            CPU_MS.append((time.thread_time() - cpu) * 1000)
            out.append((time.perf_counter() - start) * 1000)
    finally:
        gc.callbacks.remove(_on_gc)
    return out


def why_slow() -> str:
    _cpu50, cpu99 = percentiles(CPU_MS)
    worst_gc = max(GC_PAUSES, default=0.0)
    return f"(CPU p99 {cpu99:.3f} ms; {len(GC_PAUSES)} GC runs, longest {worst_gc:.2f} ms)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--small", type=int, default=100, help="nodes of the small cluster for the growth ratio")
    parser.add_argument("--pending", type=int, default=2000, help="pods already Pending (stuck) before deciding")
    args = parser.parse_args()
    start = time.perf_counter()
    state = build(args.nodes, args.pods_per_node)
    print(f"cluster: {args.nodes} nodes, {len(state.pods)} pods, built in {time.perf_counter() - start:.1f} s")
    fits = s.small_web("fits", 200)
    too_big = s.small_web("too-big", 10**6)
    evaluate(state, fits)
    assert evaluate(state, fits).verdict == "allow" and evaluate(state, too_big).verdict == "deny"
    big_p50 = big_p99 = 0.0
    for label, obj in (("fits (allow)", fits), ("does not fit (deny)", too_big)):
        p50, p99 = percentiles(timed(functools.partial(evaluate, state, obj), args.decisions))
        big_p50, big_p99 = (p50, p99) if obj is fits else (big_p50, big_p99)
        print(f"evaluate {label:22s} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   {why_slow()}", flush=True)
    small = build(args.small, args.pods_per_node)
    evaluate(small, fits)
    small_p50, small_p99 = percentiles(timed(functools.partial(evaluate, small, fits), args.decisions))
    print(f"evaluate fits (allow) on {args.small} nodes  p50 {small_p50:7.3f} ms   p99 {small_p99:7.3f} ms   "
          f"{why_slow()}")
    print(f"growth {args.small} -> {args.nodes} nodes: p50 {big_p50 / small_p50:.1f}x, p99 {big_p99 / small_p99:.1f}x "
          f"(nodes grew {args.nodes / args.small:.0f}x)")
    del small
    spec = s.pod_spec([s.container(requests={"cpu": "20m", "memory": "32Mi"})])
    for k in range(args.pending):
        state.apply(s.pod(f"stuck-{k}", "default", None, spec=spec, owner=("apps/v1", "ReplicaSet", "stuck-rs")))
    ms = sorted(timed(lambda: evaluate(state, fits), max(5, args.decisions // 5)))
    print(f"evaluate with {args.pending} pods already Pending  p50 {statistics.median(ms):7.2f} ms")
    for key in [k for k in state.pods if k[1].startswith("stuck-")]:
        state.remove("Pod", *key)
    ours = statistics.median(timed(lambda: evaluate(state, fits), args.decisions))
    scan = statistics.median(timed(lambda: naive_usage_scan(state), max(3, args.decisions // 10)))
    print(f"baseline: scanning every pod per decision costs {scan:.2f} ms before placing anything")
    print(f"ratio: baseline scan / full decision = {scan / ours:.1f}x")


if __name__ == "__main__":
    main()
