"""Fuzz the real webhook and the real ``check`` (loopback only, bounded, seeded).

Reviews: ``--reviews`` (100,000) mutated AdmissionReviews (``bench/mutations.py``: fields
replaced by wrong types, nulls, lone surrogates, huge quantities; about 1 in 10 damaged
as bytes: truncated, invalid UTF-8, NaN, deep nesting) are POSTed over TLS to a real
``capacity-webhook serve`` (gunicorn, the gevent worker, the example two-node cluster,
``--mode enforce``, reservations on), by ``--concurrency`` kept-alive connections.
Printed: answers by class (2xx, 4xx, 5xx, connection errors, hangs over 10 s), internal
errors (the server's ``capacity_webhook_internal_errors_total`` and its log), worker
restarts (gunicorn "Booting worker" lines after the first) and tracebacks in the log.

check: ``--check-inputs`` (10,000) mutated manifests (and one in five with a mutated
snapshot) are run through ``capacity-webhook check`` in worker processes (click's
runner in-process, one ``--check-batch`` per process, so a crash of the interpreter
is seen and counted too). Printed: exit codes, contract violations (an exit code other
than 0/1/2, an exit 2 whose stderr is not exactly one line, a traceback or an uncaught
exception), hangs (over 20 s, by SIGALRM) and crashed processes.

    python bench/fuzz.py [--reviews 100000] [--check-inputs 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from bench.mutations import dumps, mutate, mutate_bytes  # noqa: E402
from bench.webhook_process import REPO, WebhookServer  # noqa: E402

EXAMPLES = REPO / "webhook" / "examples"
CLUSTER = EXAMPLES / "cluster.json"
RESOURCES = {"Deployment": ("apps", "deployments"), "ReplicaSet": ("apps", "replicasets"),
             "StatefulSet": ("apps", "statefulsets"), "DaemonSet": ("apps", "daemonsets"), "Job": ("batch", "jobs"),
             "CronJob": ("batch", "cronjobs"), "Pod": ("", "pods"),
             "PersistentVolumeClaim": ("", "persistentvolumeclaims")}


def workloads() -> list[dict]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "workloads.yaml").read_text()) if d]
    web = docs[0]
    extra = []
    for kind in ("StatefulSet", "ReplicaSet", "DaemonSet"):
        extra.append(dict(json.loads(json.dumps(web)), kind=kind))
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "batch", "namespace": "default"},
           "spec": {"parallelism": 4, "completions": 8, "template": web["spec"]["template"]}}
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "default"},
            "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": job["spec"]}}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "namespace": "default",
                                                           "labels": {"app": "solo"}},
           "spec": dict(web["spec"]["template"]["spec"], tolerations=[{"operator": "Exists"}],
                        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [
                                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}})}
    return docs + extra + [job, cron, pod]


def review_of(obj: dict, rng: random.Random, n: int) -> dict:
    kind = obj.get("kind", "Deployment")
    group, plural = RESOURCES.get(kind, ("", "things"))
    operation = rng.choice(["CREATE", "CREATE", "UPDATE", "UPDATE", "DELETE", "CONNECT"])
    request = {"uid": f"fuzz-{n}", "kind": {"group": group, "version": "v1", "kind": kind},
               "resource": {"group": group, "version": "v1", "resource": plural},
               "namespace": "default", "name": obj.get("metadata", {}).get("name", ""), "operation": operation,
               "userInfo": {"username": rng.choice(["alice", "system:serviceaccount:kube-system:"
                                                             "horizontal-pod-autoscaler"])},
               "object": obj if operation != "DELETE" else None, "dryRun": rng.random() < 0.5}
    if operation == "UPDATE":
        request["oldObject"] = obj
    if rng.random() < 0.1 and kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        request.update(subResource="scale", kind={"group": "autoscaling", "version": "v1", "kind": "Scale"},
                       object={"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 5}},
                       oldObject={"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 2}})
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def fuzz_body(rng: random.Random, n: int, seeds: list[dict]) -> bytes:
    review = review_of(json.loads(json.dumps(rng.choice(seeds))), rng, n)
    roll = rng.random()
    if roll < 0.45:                       # the object is where most of the fields are
        request = review["request"]
        if request.get("object") is not None:
            request["object"] = mutate(request["object"], rng)
        if request.get("oldObject") is not None and rng.random() < 0.3:
            request["oldObject"] = mutate(request["oldObject"], rng)
        body = dumps(review)
    elif roll < 0.9:
        body = dumps(mutate(review, rng))
    else:
        body = mutate_bytes(dumps(review), rng)
    return body


# ---- reviews against serve -----------------------------------------------------------------
class ReviewFuzzer:
    def __init__(self, server: WebhookServer, total: int, concurrency: int, seed: int):
        self.server, self.total, self.concurrency, self.seed = server, total, concurrency, seed
        self.classes: Counter = Counter()
        self.examples: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.next = 0
        self.seeds = workloads()

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.total:
                return None
            self.next += 1
            return self.next

    def _connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.server.port, timeout=10,
                                           context=self.server.client_context())

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        conn = self._connection()
        while (n := self._take()) is not None:
            body = fuzz_body(rng, n, self.seeds)
            try:
                conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                status = response.status
                cls = f"{status // 100}xx"
                if status == 200:
                    answer = json.loads(data)["response"]
                    if answer.get("uid") != _uid(body):
                        cls = "2xx-wrong-uid"
                    elif any("internal error" in w for w in answer.get("warnings", [])):
                        cls = "2xx-internal-error"
            except TimeoutError:
                cls = "hang (>10 s)"
                conn.close()
                conn = self._connection()
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                cls = f"connection error ({type(exc).__name__})"
                conn.close()
                conn = self._connection()
            with self.lock:
                self.classes[cls] += 1
                if cls not in ("2xx", "4xx") and cls not in self.examples:
                    self.examples[cls] = body[:300]
                if n % 10000 == 0:
                    print(f"  ... {n} reviews sent", flush=True)
        conn.close()

    def run(self) -> float:
        started = time.monotonic()
        threads = [threading.Thread(target=self._run, args=(i,)) for i in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started


def _uid(body: bytes) -> object:
    """The uid the response must echo (the body was answered 200, so it parses)."""
    try:
        return json.loads(body)["request"]["uid"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def server_figures(server: WebhookServer) -> dict:
    import urllib.request

    with urllib.request.urlopen(server.url("/metrics"), context=server.client_context(), timeout=10) as r:
        metrics = r.read().decode()
    internal = re.search(r"^capacity_webhook_internal_errors_total (\S+)$", metrics, re.M)
    budget = re.search(r"^capacity_webhook_decision_budget_exceeded_total (\S+)$", metrics, re.M)
    log = server.log_text()
    return {"internal errors (metric)": float(internal.group(1)) if internal else None,
            "internal errors (log lines)": log.count('"internalError":true'),
            "decisions over budget": float(budget.group(1)) if budget else None,
            "worker restarts": max(0, log.count("Booting worker") - 1),
            "tracebacks in the log": log.count("Traceback"),
            "server log lines": log.count("\n")}


# ---- check ---------------------------------------------------------------------------------
def _yaml(doc) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True)
    except RecursionError:            # a 5,000-deep list: YAML's flow style is JSON
        return dumps(doc).decode("utf-8", "surrogatepass")


def check_inputs(total: int, seed: int, directory: Path) -> list[tuple[str, str | None]]:
    """(manifest text, snapshot path or None) per input; one in five with a mutated snapshot."""
    rng = random.Random(seed)
    seeds = workloads()
    cluster = json.loads(CLUSTER.read_text())
    inputs = []
    for n in range(total):
        docs = [mutate(rng.choice(seeds), rng) for _ in range(rng.randint(1, 3))]
        roll = rng.random()
        if roll < 0.5:
            text = "---\n".join(_yaml(d) for d in docs)
        elif roll < 0.8:
            text = dumps({"apiVersion": "v1", "kind": rng.choice(["List", "List", "DeploymentList"]),
                          "items": docs if rng.random() < 0.9 else {"a": docs[0]}}).decode("utf-8", "surrogatepass")
        else:
            text = mutate_bytes(dumps(docs[0]), rng).decode("utf-8", "replace")
        snapshot = None
        if rng.random() < 0.2:
            broken = dict(cluster, items=[mutate(item, rng, 1) if rng.random() < 0.2 else item
                                          for item in cluster["items"]])
            snapshot = str(directory / f"snapshot-{n}.json")
            Path(snapshot).write_bytes(dumps(broken))
        inputs.append((text, snapshot))
    return inputs


def check_worker(batch_file: str, results_file: str) -> None:
    """Run a batch of check inputs in this process (click's runner), one JSON result line each."""
    import signal

    from click.testing import CliRunner

    from webhook.cli import main

    class Hang(Exception):
        pass

    def alarm(signum, frame):
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)
    runner = CliRunner()
    batch = json.loads(Path(batch_file).read_text())
    with open(results_file, "a") as out:
        for index, manifest, snapshot in batch:
            path = Path(results_file).with_suffix(f".{index}.yaml")
            path.write_text(manifest, encoding="utf-8", errors="surrogatepass")
            args = ["check", "--cluster", snapshot or str(CLUSTER), "-f", str(path),
                    "-o", ["text", "json", "junit", "sarif"][index % 4]]
            signal.alarm(20)
            try:
                result = runner.invoke(main, args, catch_exceptions=True)
                code = result.exit_code
                exception = result.exception if not isinstance(result.exception, SystemExit) else None
                stderr = result.stderr
                stdout = result.stdout
            except Hang:
                code, exception, stderr, stdout = "hang", None, "", ""
            finally:
                signal.alarm(0)
            path.unlink(missing_ok=True)
            if isinstance(exception, Hang):
                code, exception = "hang", None
            problem = None
            if code == "hang":
                problem = "hang"
            elif exception is not None:
                problem = f"uncaught {type(exception).__name__}: {exception}"[:300]
            elif code not in (0, 1, 2):
                problem = f"exit {code}"
            elif "Traceback" in stderr or "Traceback" in stdout:
                problem = "traceback printed"
            elif code == 2 and len(stderr.strip().splitlines()) != 1:
                problem = f"exit 2 with {len(stderr.strip().splitlines())} stderr lines"
            out.write(json.dumps({"index": index, "code": code, "problem": problem,
                                  "stderr": stderr.strip()[:200]}) + "\n")
            out.flush()


def run_check_fuzz(total: int, seed: int, batch_size: int, directory: Path) -> dict:
    inputs = check_inputs(total, seed, directory)
    codes: Counter = Counter()
    problems: Counter = Counter()
    examples: dict[str, str] = {}
    crashes = 0
    position = 0
    started = time.monotonic()
    while position < len(inputs):
        batch = [(i, inputs[i][0], inputs[i][1]) for i in range(position, min(len(inputs), position + batch_size))]
        batch_file, results_file = directory / "batch.json", directory / f"results-{position}.jsonl"
        batch_file.write_text(json.dumps(batch))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.run([sys.executable, __file__, "--check-worker", str(batch_file), str(results_file)],
                              cwd=REPO, env=env, capture_output=True, text=True)
        done = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
        for result in done:
            codes[str(result["code"])] += 1
            if result["problem"]:
                kind = result["problem"].split(":")[0]
                problems[kind] += 1
                examples.setdefault(kind, f"input {result['index']}: {result['problem']} | {result['stderr']}")
        position += len(done)
        if proc.returncode != 0 and position < len(inputs) and len(done) < len(batch):
            crashes += 1                      # the input after the last result killed the interpreter
            problems["interpreter crash"] += 1
            examples.setdefault("interpreter crash", f"input {position}: exit {proc.returncode} "
                                                     f"{proc.stderr.strip()[-200:]}")
            position += 1
        if position and position % 2000 < batch_size:
            print(f"  ... {position} check inputs run", flush=True)
    return {"inputs": len(inputs), "exit codes": dict(codes), "contract violations": dict(problems),
            "examples": examples, "crashed processes": crashes, "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--check-worker":
        check_worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--check-inputs", type=int, default=10_000)
    parser.add_argument("--check-batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.reviews:
            server = WebhookServer(Path(tmp) / "serve", CLUSTER, "--mode", "enforce").start()
            try:
                print(f"reviews: sending {args.reviews} mutated AdmissionReviews over TLS to {server.url('/validate')}",
                      flush=True)
                fuzzer = ReviewFuzzer(server, args.reviews, args.concurrency, args.seed)
                seconds = fuzzer.run()
                figures = server_figures(server)
            finally:
                server.stop()
            print(f"\n== reviews: {sum(fuzzer.classes.values())} in {seconds:.0f} s "
                  f"({sum(fuzzer.classes.values()) / seconds:.0f}/s) ==")
            for cls, count in sorted(fuzzer.classes.items()):
                print(f"  {cls:32s} {count}")
            for name, value in figures.items():
                print(f"  {name:32s} {value}")
            for cls, body in fuzzer.examples.items():
                print(f"  example of {cls}: {body[:200]!r}")
        if args.check_inputs:
            print(f"\ncheck: running {args.check_inputs} mutated inputs", flush=True)
            result = run_check_fuzz(args.check_inputs, args.seed, args.check_batch, Path(tmp))
            print(f"\n== check: {result['inputs']} inputs in {result['seconds']} s ==")
            print(f"  exit codes:          {result['exit codes']}")
            print(f"  contract violations: {result['contract violations'] or 0}")
            print(f"  crashed processes:   {result['crashed processes']}")
            for kind, example in result["examples"].items():
                print(f"  example of {kind}: {example}")


if __name__ == "__main__":
    main()
