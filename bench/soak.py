"""Soak the real ``serve`` with mixed traffic (loopback only, bounded by ``--minutes``).

``--clients`` (4) kept-alive TLS clients send, for ``--minutes`` (10), a mix a busy
cluster sends: CREATEs of new Deployments/StatefulSets/Jobs/Pods/PVCs (non-dry-run, so
reservations are made), repeated UPDATEs of the same ``--workloads`` (20) Deployments
with changing replicas (re-applies and HPA scale-ups and -downs), ``scale`` requests,
dry runs, and one in twenty a mutated (invalid) body. The server runs the example
two-node snapshot in enforce mode with ``--reservation-ttl 30``; ``--reservation-ttl``
passes another.

Printed per minute: reviews, errors (5xx, connection errors, timeouts, 200s that say
"internal error"), p50/p99 latency, the worker's RSS, active reservations (the
``capacity_webhook_reservations`` gauge, sampled every second) against the workloads
touched so far; at the end the maximum reservations per workload (at most 1 means no
stacking) and the server log's tracebacks and worker restarts.

Live mode (watch churn) needs a kube-apiserver: the e2e tier covers the watch; this
script soaks the admission path on a snapshot.

    python bench/soak.py [--minutes 10] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mutations import dumps, mutate  # noqa: E402
from bench.webhook_process import REPO, WebhookServer  # noqa: E402

CLUSTER = REPO / "webhook" / "examples" / "cluster.json"


def deployment(name: str, replicas: int, kind: str = "Deployment", cpu: str = "10m") -> dict:
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx",
                                                           "resources": {"requests": {"cpu": cpu,
                                                                                      "memory": "32Mi"}}}]}}}}


def review(obj: dict, operation: str, uid: str, old: dict | None = None, dry_run: bool = False,
           sub_resource: str | None = None, user: str = "alice") -> dict:
    kind = obj["kind"]
    plural = {"Deployment": "deployments", "StatefulSet": "statefulsets", "Job": "jobs", "Pod": "pods",
              "PersistentVolumeClaim": "persistentvolumeclaims", "Scale": "deployments"}[kind]
    request = {"uid": uid, "kind": {"group": "apps", "version": "v1", "kind": kind},
               "resource": {"group": "apps", "version": "v1", "resource": plural}, "namespace": "default",
               "name": obj["metadata"]["name"], "operation": operation, "userInfo": {"username": user},
               "object": obj, "oldObject": old, "dryRun": dry_run}
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


class Soak:
    def __init__(self, server: WebhookServer, args):
        self.server, self.args = server, args
        self.stop_at = time.monotonic() + args.minutes * 60
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.minutes: dict[int, dict] = defaultdict(lambda: {"n": 0, "errors": 0, "lat": [], "rss": 0.0,
                                                              "reservations": 0, "workloads": 0})
        self.touched: set = set()
        self.errors_seen: dict[str, bytes] = {}
        self.replicas = {f"app-{i}": 2 for i in range(args.workloads)}
        self.samples: list[tuple[float, int]] = []        # (wall time, active reservations)

    def minute(self) -> int:
        return int((time.monotonic() - self.started) // 60)

    def body(self, rng: random.Random, n: int) -> tuple[bytes, tuple | None]:
        uid = f"soak-{n}"
        roll = rng.random()
        if roll < 0.45:                        # re-apply / HPA-like update of a known Deployment
            name = f"app-{rng.randrange(self.args.workloads)}"
            old = self.replicas[name]
            new = max(0, old + rng.choice([-2, -1, 1, 2, 3]))
            self.replicas[name] = new
            user = "system:serviceaccount:kube-system:horizontal-pod-autoscaler" if rng.random() < 0.3 else "ci"
            return dumps(review(deployment(name, new), "UPDATE", uid, deployment(name, old), user=user)), \
                ("Deployment", name)
        if roll < 0.65:                        # a new workload, sometimes one that cannot fit
            kind = rng.choice(["Deployment", "StatefulSet"])
            name = f"new-{n}"
            return dumps(review(deployment(name, rng.randint(1, 12), kind), "CREATE", uid)), (kind, name)
        if roll < 0.8:
            name = f"app-{rng.randrange(self.args.workloads)}"
            return dumps(review(deployment(name, rng.randint(0, 8)), "CREATE", uid, dry_run=True)), None
        if roll < 0.9:
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": f"data-{n}", "namespace": "default"},
                   "spec": {"accessModes": [rng.choice(["ReadWriteOnce", "ReadWriteMany"])],
                            "storageClassName": "gp3", "resources": {"requests": {"storage": "10Gi"}}}}
            return dumps(review(pvc, "CREATE", uid)), None
        if roll < 0.95:
            return dumps(mutate(review(deployment(f"bad-{n}", 3), "CREATE", uid), rng)), None
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{n}", "namespace": "default"},
               "spec": deployment("x", 1)["spec"]["template"]["spec"]}
        return dumps(review(pod, "CREATE", uid)), ("Pod", f"pod-{n}")

    def client(self, index: int) -> None:
        rng = random.Random(index)
        conn = None
        n = index * 10**7
        while time.monotonic() < self.stop_at:
            n += 1
            data, workload = self.body(rng, n)
            started = time.monotonic()
            error = None
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, timeout=10,
                                                       context=self.server.client_context())
                conn.request("POST", "/validate", body=data, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                if response.status >= 500:
                    error = f"HTTP {response.status}"
                elif response.status == 200 and b"internal error" in payload:
                    error = "internal error"
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
                if conn is not None:
                    conn.close()
                conn = None
            latency = time.monotonic() - started
            with self.lock:
                bucket = self.minutes[self.minute()]
                bucket["n"] += 1
                bucket["lat"].append(latency)
                if error:
                    bucket["errors"] += 1
                    self.errors_seen.setdefault(error, data[:200])
                if workload and not error:
                    self.touched.add(workload)
        if conn is not None:
            conn.close()

    def sampler(self) -> None:
        while time.monotonic() < self.stop_at:
            try:
                with urllib.request.urlopen(self.server.url("/metrics"), context=self.server.client_context(),
                                            timeout=5) as r:
                    text = r.read().decode()
                match = re.search(r"^capacity_webhook_reservations (\S+)$", text, re.M)
                active = int(float(match.group(1))) if match else 0
            except OSError:
                active = -1
            rss = self.server.rss_mib()
            self.samples.append((time.time(), active))
            with self.lock:
                bucket = self.minutes[self.minute()]
                bucket["reservations"] = max(bucket["reservations"], active)
                bucket["rss"] = max(bucket["rss"], rss)
                bucket["workloads"] = len(self.touched)
            time.sleep(1)

    def run(self) -> None:
        threads = [threading.Thread(target=self.client, args=(i,)) for i in range(self.args.clients)]
        threads.append(threading.Thread(target=self.sampler))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def stacking(samples: list[tuple[float, int]], log: str, ttl: float) -> tuple[int, int]:
    """(most active reservations seen, most distinct workloads holding one at that time).

    A workload holds a reservation only if one of its reviews reserved room in the last
    ``ttl`` seconds; if the gauge ever exceeds the number of such workloads, some workload
    held more than one.
    """
    import datetime as dt

    made = []
    for line in log.splitlines():
        if '"reserved"' not in line or not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("reserved"):
            when = dt.datetime.fromisoformat(entry["ts"]).timestamp()
            made.append((when, (entry.get("kind"), entry.get("namespace"), entry.get("name"))))
    worst_excess, at = -10**9, (0, 0)
    for wall, active in samples:
        holders = {w for when, w in made if wall - ttl - 1 <= when <= wall}
        if active - len(holders) > worst_excess:
            worst_excess, at = active - len(holders), (active, len(holders))
    return at


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workloads", type=int, default=20)
    parser.add_argument("--reservation-ttl", default="30")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = WebhookServer(Path(tmp), CLUSTER, "--mode", "enforce", "--reservation-ttl",
                               args.reservation_ttl).start()
        try:
            soak = Soak(server, args)
            soak.run()
            log = server.log_text()
        finally:
            server.stop()
    print(f"soak: {args.minutes:g} min, {args.clients} clients, {args.workloads} re-applied Deployments, "
          f"reservation TTL {args.reservation_ttl} s")
    print(f"{'min':>4} {'reviews':>8} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8} "
          f"{'reservations':>13} {'workloads':>10}")
    for minute in sorted(soak.minutes):
        b = soak.minutes[minute]
        if not b["n"]:
            continue
        print(f"{minute:>4} {b['n']:>8} {b['errors']:>7} {1000 * percentile(b['lat'], 0.5):>8.1f} "
              f"{1000 * percentile(b['lat'], 0.99):>8.1f} {b['rss']:>8.1f} {b['reservations']:>13} "
              f"{b['workloads']:>10}")
    total_errors = sum(b["errors"] for b in soak.minutes.values())
    print(f"errors: {total_errors}; tracebacks in the log: {log.count('Traceback')}; worker restarts: "
          f"{max(0, log.count('Booting worker') - 1)}")
    active, holders = stacking(soak.samples, log, float(args.reservation_ttl))
    print(f"reservations vs workloads holding one (worst second): {active} active for {holders} workloads "
          f"({'at most one per workload' if active <= holders else 'STACKED'})")
    for error, body in soak.errors_seen.items():
        print(f"  example of {error}: {body!r}")


if __name__ == "__main__":
    main()
