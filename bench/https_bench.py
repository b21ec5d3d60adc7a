#!/usr/bin/env python3
"""HTTPS throughput of ``capacity-webhook serve`` next to a no-op flask app, with wrk.

    python bench/https_bench.py                  # 1 and 8 clients, 3 rounds of 8 s each
    python bench/https_bench.py --seconds 4 --rounds 2

Two servers run side by side on loopback, both under gunicorn with the settings
``webhook.server.gunicorn.server_options`` gives ``serve`` (worker class, threads, TLS with
the certificate reloader, keep-alive), both with a fresh certificate from ``certs.authority``:

* the webhook: the real ``python -m webhook.cli serve --cluster webhook/examples/cluster.json``
  (the review log goes to a file, as a container's stdout goes to a pipe);
* the baseline: a flask app that parses the AdmissionReview with ``json.loads`` and allows it,
  nothing else: the floor any flask webhook on these settings stands on.

``wrk`` (Debian package ``wrk``) posts ``webhook/examples/review.json`` (a dry-run Deployment
of 30 replicas that the two-node cluster denies: a full decision with messages, no
reservation, so every request costs the same) over keep-alive connections, and then the same
review with 2 replicas, which fits and is allowed (the common case; ``--allow-replicas``).
Each round measures the baseline and then the webhook, for 1 client and for 8 clients; the
median over the rounds is printed with the ratio and, at 8 clients, both p99 latencies. The
machine is shared: only the ratios of the same run mean something.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from certs.authority import write_bundle  # noqa: E402

BASELINE_APP = r'''
import json, sys
from flask import Flask, Response, request
from webhook.server.gunicorn import WebhookServer, server_options

def make_app():
    app = Flask("noop")

    @app.post("/validate")
    def validate():
        review = json.loads(request.get_data(cache=False))
        uid = review["request"]["uid"]
        body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": True}}
        return Response(json.dumps(body, separators=(",", ":")), mimetype="application/json")

    @app.get("/healthz")
    def healthz():
        return Response("ok\n", mimetype="text/plain")
    return app

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
WebhookServer(make_app, server_options("127.0.0.1", port, cert, key, log_level="warning")).run()
'''

WRK_SCRIPT = """
local f = io.open(os.getenv("REVIEW_FILE"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server on {port} not healthy after {timeout} s")


def start(cmd: list[str], log: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_healthy(port, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (gunicorn's master and workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    wanted, total = {pid}, 0.0
    grew = True
    while grew:
        grew = False
        for child, (parent, _) in stats.items():
            if parent in wanted and child not in wanted:
                wanted.add(child)
                grew = True
    for member in wanted:
        total += stats.get(member, (0, 0.0))[1]
    return total


def wrk(port: int, clients: int, seconds: int, script: Path, review: Path, server_pid: int | None = None) -> dict:
    threads = 1 if clients == 1 else 2
    cpu_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script),
                          f"https://127.0.0.1:{port}/validate"], capture_output=True, text=True,
                         env=dict(os.environ, REVIEW_FILE=str(review)), check=True).stdout
    cpu = tree_cpu_seconds(server_pid) - cpu_before if server_pid else float("nan")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rate": rate,
        "cpu_ms": cpu * 1000 / requests if requests else float("nan"),   # server CPU per request
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--cluster", default=str(ROOT / "webhook" / "examples" / "cluster.json"))
    parser.add_argument("--review", default=str(ROOT / "webhook" / "examples" / "review.json"))
    parser.add_argument("--allow-replicas", type=int, default=2,
                        help="replicas of the second (allowed) review; 0: only the first review")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    work = Path(tempfile.mkdtemp(prefix="https-bench-"))
    bundle = write_bundle(work / "tls", ["localhost"], ["127.0.0.1"], days=2)
    script = work / "review.lua"
    script.write_text(WRK_SCRIPT)
    review = Path(args.review)
    body = json.loads(review.read_bytes())
    reviews = {"review.json": review}
    if args.allow_replicas:
        body["request"]["object"]["spec"]["replicas"] = args.allow_replicas
        allowed = work / "review-allow.json"
        allowed.write_text(json.dumps(body))
        reviews[f"{args.allow_replicas} replicas"] = allowed
    ours_port, base_port = free_port(), free_port()
    procs = []
    try:
        procs.append(start([sys.executable, "-m", "webhook.cli", "serve", "--cluster", args.cluster,
                            "--tls-cert-file", str(bundle.tls_cert), "--tls-private-key-file", str(bundle.tls_key),
                            "--bind", "127.0.0.1", "--port", str(ours_port)], work / "webhook.log", ours_port))
        procs.append(start([sys.executable, "-c", BASELINE_APP, str(base_port), str(bundle.tls_cert),
                            str(bundle.tls_key)], work / "baseline.log", base_port))
        clients = [int(c) for c in args.clients.split(",")]
        pids = {"webhook": procs[0].pid, "baseline": procs[1].pid}
        cases = [(name, c) for name in reviews for c in clients]
        results: dict = {(case, who): [] for case in cases for who in ("baseline", "webhook")}
        for name, c in cases:   # warm both up (TLS session setup, imports, first decisions)
            wrk(base_port, c, 1, script, reviews[name])
            wrk(ours_port, c, 1, script, reviews[name])
        for round_ in range(args.rounds):
            for case in cases:
                name, c = case
                for who, port in (("baseline", base_port), ("webhook", ours_port)):
                    r = wrk(port, c, args.seconds, script, reviews[name], pids[who])
                    results[(case, who)].append(r)
                    print(f"round {round_ + 1} {name:12s} {c} client(s) {who:8s} {r['rate']:8.0f} req/s  "
                          f"p99 {r['p99_ms']:7.2f} ms  server CPU {r['cpu_ms']:.3f} ms/request"
                          f"{'  non-2xx ' + str(r['non2xx']) if r['non2xx'] else ''}"
                          f"{'  socket errors ' + r['socket_errors'] if r['socket_errors'] else ''}", flush=True)
        print()
        for case in cases:
            name, c = case
            base = statistics.median(r["rate"] for r in results[(case, "baseline")])
            ours = statistics.median(r["rate"] for r in results[(case, "webhook")])
            line = (f"{name}, {c} client(s): webhook {ours:.0f} req/s, baseline {base:.0f} req/s, "
                    f"ratio {ours / base:.2f}x")
            cpu_ours = statistics.median(r["cpu_ms"] for r in results[(case, "webhook")])
            cpu_base = statistics.median(r["cpu_ms"] for r in results[(case, "baseline")])
            line += f"; server CPU {cpu_ours:.3f} vs {cpu_base:.3f} ms/request ({cpu_base / cpu_ours:.2f}x)"
            if c > 1:
                line += (f"; p99 webhook {statistics.median(r['p99_ms'] for r in results[(case, 'webhook')]):.2f} ms, "
                         f"baseline {statistics.median(r['p99_ms'] for r in results[(case, 'baseline')]):.2f} ms")
            print(line + "  (target >= 0.8x)")
        lines = (work / "webhook.log").read_text(errors="replace").splitlines()
        verdicts = [json.loads(line).get("verdict") for line in lines if '"admission review"' in line]
        print(f"webhook review lines logged: {len(verdicts)} ({', '.join(sorted(set(map(str, verdicts))))})")
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
