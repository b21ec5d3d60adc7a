"""What the shared reservation ledger costs: admission latency and throughput per worker count.

    python bench/ledger_bench.py                 # 1, 2, 4 workers, 8 s each (~3 minutes on 2 cores)
    python bench/ledger_bench.py --seconds 4 --workers 1 2

Against a real kube-apiserver + etcd (the e2e tier's binaries, started on loopback by
``tests/e2e/controlplane.py``), the real ``capacity-webhook serve`` in live mode is posted
non-dry-run AdmissionReviews (CREATE of 1-replica Deployments, 10 names in turn, so the
ledger keeps 10 promises and every review rewrites one) over HTTPS by 16 client threads.

Each worker count runs twice in the same run:

* **ledger**: ``--reservation-ttl 30``: every admission commits its promise to the
  ``CapacityLedger`` object (a PUT with resourceVersion compare-and-swap; a 409 re-reads);
* **baseline**: ``--reservation-ttl 0``: the same decisions with no promise written.

Printed per run: reviews/s, p50 and p99 review latency as the server logs it
(``latency_ms``: decision + ledger I/O, without the client's own overhead), the ledger
retries (conflicts) and unrecorded reservations. The difference of the p50/p99 between the
two runs is what the ledger write adds to a non-dry-run admission.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from server_fixture import WebhookProcess, review  # noqa: E402
from tests import synthetic as s  # noqa: E402

from e2e import controlplane  # noqa: E402

BIG = {"cpu": "96", "memory": "384Gi", "pods": "737", "ephemeral-storage": "500Gi"}
NAMES = [f"bench-{i}" for i in range(10)]
CLIENTS = 16


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def drive(server: WebhookProcess, seconds: float) -> tuple[int, float]:
    """Post reviews from CLIENTS threads for ``seconds``; returns (answered, elapsed)."""
    stop = time.monotonic() + seconds
    counts = [0] * CLIENTS
    errors: list[str] = []

    def client(index: int) -> None:
        session = server.new_session()
        i = index
        while time.monotonic() < stop:
            body = json.dumps(review(s.small_web(NAMES[i % len(NAMES)], 1, "bench")))
            i += CLIENTS
            answer = session.post(server.url("/validate"), data=body, timeout=30,
                                  headers={"Content-Type": "application/json"})
            if answer.status_code != 200 or not answer.json()["response"]["allowed"]:
                errors.append(answer.text[:200])
            counts[index] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} reviews not allowed, e.g. {errors[0]}")
    return sum(counts), time.monotonic() - started


def run(cp, workers: int, ttl: float, seconds: float, workdir: Path) -> dict:
    server = WebhookProcess(workdir / f"w{workers}-ttl{int(ttl)}", None, "--kubeconfig", str(cp.webhook_kubeconfig),
                            "--mode", "enforce", "--workers", str(workers), "--threads", "8",
                            "--reservation-ttl", str(ttl), "--ledger-namespace", controlplane.LEDGER_NAMESPACE,
                            )
    server.start(timeout=120)
    try:
        drive(server, min(2.0, seconds / 4))                 # warm up: connections, first ledger read
        mark = len(server.log_records())
        answered, elapsed = drive(server, seconds)
        time.sleep(0.5)
        lines = [r for r in server.log_records()[mark:] if r.get("logger") == "capacity_webhook.review"]
    finally:
        server.stop()
    latencies = [r["latency_ms"] for r in lines if "latency_ms" in r]
    return {"workers": workers, "ledger": ttl > 0, "rps": answered / elapsed, "reviews": answered,
            "p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
            "mean": statistics.fmean(latencies) if latencies else float("nan"),
            "reserved": sum(1 for r in lines if r.get("reserved")),
            "retries": sum(r.get("ledgerRetries", 0) for r in lines),
            "unrecorded": sum(1 for r in lines if str(r.get("ledger", "")).startswith("unrecorded"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    cp = controlplane.start_local()
    try:
        cp.apply([s.as_manifest(s.aws_node())])
        for name in ("ip-10-0-9-1.ec2.internal", "ip-10-0-9-2.ec2.internal"):
            cp.create_node(name, "m5.24xlarge", "us-east-1a", allocatable=BIG)
        cp.ensure_namespace("bench")
        workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
        rows = []
        for workers in args.workers:
            for ttl in (0.0, 30.0):
                row = run(cp, workers, ttl, args.seconds, workdir)
                rows.append(row)
                print(f"workers={workers} {'ledger  ' if row['ledger'] else 'baseline'} "
                      f"{row['rps']:7.1f} reviews/s  p50 {row['p50']:6.1f} ms  p99 {row['p99']:6.1f} ms  "
                      f"reserved {row['reserved']}/{row['reviews']}  ledger retries {row['retries']}  "
                      f"unrecorded {row['unrecorded']}", flush=True)
        print()
        print("| workers | reviews/s ledger | reviews/s baseline | ratio | p50 ledger | p50 baseline | "
              "p99 ledger | p99 baseline | added p50 / p99 | ledger retries | unrecorded |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for workers in args.workers:
            base = next(r for r in rows if r["workers"] == workers and not r["ledger"])
            led = next(r for r in rows if r["workers"] == workers and r["ledger"])
            print(f"| {workers} | {led['rps']:.0f} | {base['rps']:.0f} | {led['rps'] / base['rps']:.2f} | "
                  f"{led['p50']:.1f} ms | {base['p50']:.1f} ms | {led['p99']:.1f} ms | {base['p99']:.1f} ms | "
                  f"+{led['p50'] - base['p50']:.1f} / +{led['p99'] - base['p99']:.1f} ms | {led['retries']} | "
                  f"{led['unrecorded']} |")
    finally:
        cp.stop()


if __name__ == "__main__":
    main()
