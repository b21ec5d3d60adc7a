"""Run the real webhook server (``python -m webhook.server``: gunicorn + TLS) for tests.

``WebhookProcess`` writes a CA + serving certificate made by ``certs.authority`` (and, for
the snapshot source, a snapshot built with ``tests.synthetic``) into a temporary
directory, starts the server on 127.0.0.1 with ``--port 0`` (gunicorn logs the port it
bound) in its own process group, waits until ``/readyz`` answers, and talks to it over
HTTPS with ``requests``, verifying the certificate against the CA. The e2e tier uses it
too, with ``cluster=None`` and ``--kubeconfig`` (the live source).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Callable, Iterable, Mapping

import requests

from certs.authority import write_bundle
from tests import synthetic as s

REPO = Path(__file__).resolve().parents[1]
DNS, IPS = ["localhost"], ["127.0.0.1"]
NODES = ("ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal")
CORDONED = "ip-10-0-3-9.ec2.internal"
HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
RESOURCES = {
    "Deployment": ("apps", "deployments"),
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "Job": ("batch", "jobs"),
    "CronJob": ("batch", "cronjobs"),
    "Pod": ("", "pods"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "ConfigMap": ("", "configmaps"),
}
_uids = itertools.count(1)


def server_cluster(api_pods: int = 4) -> dict:
    """``two_t3_medium_cluster`` (10 + 11 free IP slots: 21 light pods fit) plus:

    * a cordoned third node running the ``default/api`` Deployment's ``api_pods`` pods (through
      its ReplicaSet), so updates and scales of ``api`` have running pods but the free room
      of the two schedulable nodes stays 21 pods;
    * namespaces labelled ``capacity-webhook/mode``: ``relaxed`` (warn), ``observe`` (audit),
      ``strict`` (enforce) and ``typo`` (an invalid value).
    """
    cluster = s.two_t3_medium_cluster()
    alloc = dict(s.T3_MEDIUM_ALLOCATABLE)
    api = s.small_web("api", api_pods)
    rs_name = "api-7c9d8f6b5"
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": s.metadata(rs_name, "default", {"app": "api"}, owner=("apps/v1", "Deployment", "api")),
          "spec": {"replicas": api_pods, "selector": {"matchLabels": {"app": "api"}},
                   "template": json.loads(json.dumps(api["spec"]["template"]))},
          "status": {"replicas": api_pods}}
    items = [s.node(CORDONED, zone="us-east-1c", allocatable=alloc, unschedulable=True), s.csinode(CORDONED),
             api, rs,
             s.namespace("relaxed", {"capacity-webhook/mode": "warn"}),
             s.namespace("observe", {"capacity-webhook/mode": "audit"}),
             s.namespace("strict", {"capacity-webhook/mode": "enforce"}),
             s.namespace("typo", {"capacity-webhook/mode": "maybe"})]
    items += [s.pod(f"{rs_name}-{i}", "default", CORDONED, api["spec"]["template"]["spec"], labels={"app": "api"},
                    owner=("apps/v1", "ReplicaSet", rs_name)) for i in range(api_pods)]
    cluster["items"].extend(items)
    return cluster


def review(obj: Mapping | None, operation: str = "CREATE", old: Mapping | None = None, *, uid: str | None = None,
           user: str = "alice@example.com", dry_run: bool = False, kind: str | None = None,
           sub_resource: str | None = None, resource: tuple | None = None, namespace: str | None = None,
           name: str | None = None) -> dict:
    """An AdmissionReview as the kube-apiserver posts it."""
    source = obj or old or {}
    kind = kind or source.get("kind")
    meta = source.get("metadata") or {}
    group, plural = resource or RESOURCES.get(kind, ("", kind.lower() + "s"))
    version = (source.get("apiVersion") or "v1").split("/")[-1]
    request = {
        "uid": uid or f"00000000-0000-4000-8000-{next(_uids):012d}",
        "kind": {"group": group if kind != "Scale" else "autoscaling", "version": version, "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": plural},
        "requestKind": {"group": group if kind != "Scale" else "autoscaling", "version": version, "kind": kind},
        "requestResource": {"group": group, "version": "v1", "resource": plural},
        "name": name or meta.get("name", ""),
        "namespace": namespace or meta.get("namespace", "default"),
        "operation": operation,
        "userInfo": {"username": user, "uid": "u-1", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {
            "apiVersion": "meta.k8s.io/v1",
            "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
        },
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def scale(name: str, replicas: int, namespace: str = "default") -> dict:
    """The ``autoscaling/v1`` Scale object of a scale subresource request."""
    return {"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "4711",
                         "creationTimestamp": s.CREATED},
            "spec": {"replicas": replicas}, "status": {"replicas": 4, "selector": f"app={name}"}}


class WebhookProcess:
    def __init__(self, directory: Path, cluster: Mapping | None, *args: str):
        """``cluster``: objects to serve as a snapshot, or ``None`` when ``args`` name the source."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.snapshot = None
        if cluster is not None:
            self.snapshot = self.dir / "cluster.json"
            self.snapshot.write_text(json.dumps(cluster))
        self.tls_dir = self.dir / "tls"
        self.bundle = write_bundle(self.tls_dir, DNS, IPS, days=3)
        self.log_path = self.dir / "server.log"
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.session = self.new_session()

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> "WebhookProcess":
        source = ["--cluster", str(self.snapshot)] if self.snapshot else []
        command = [sys.executable, "-m", "webhook.server", *source,
                   "--tls-cert-file", str(self.bundle.tls_cert), "--tls-private-key-file", str(self.bundle.tls_key),
                   "--bind", "127.0.0.1", "--port", "0", *self.args]
        deadline = time.monotonic() + timeout
        self.proc, self._log, self.port = launch_server(command, self.dir, self.log_path, deadline)
        wait_ready(self.proc, self._readyz_answers, self.log_path, deadline)
        return self

    def _readyz_answers(self) -> bool:
        try:
            return self.session.get(self.url("/readyz"), timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False        # the worker is still booting (slow on a loaded machine): ask again

    def signal_all(self, sig: int) -> None:
        """Signal gunicorn's master and its forked worker (SIGSTOP hangs the whole server)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        self.session.close()
        if self.proc and self.proc.poll() is None:
            self.signal_all(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        return self.proc.returncode if self.proc else None

    # ---- talking to it -----------------------------------------------------------------
    def new_session(self) -> requests.Session:
        """A session that verifies against our CA (``trust_env`` off: REQUESTS_CA_BUNDLE and
        proxy variables of the environment would otherwise take precedence)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.bundle.ca_cert)
        return session

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def post(self, body, **kwargs) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.session.post(self.url("/validate"), data=data, timeout=10,
                                 headers={"Content-Type": "application/json"}, **kwargs)

    def admit(self, obj, **kwargs) -> dict:
        """POST a review of ``obj`` and return its ``response`` (checked to echo the uid)."""
        body = review(obj, **kwargs)
        answer = self.post(body)
        assert answer.status_code == 200, answer.text
        document = answer.json()
        assert document["apiVersion"] == "admission.k8s.io/v1" and document["kind"] == "AdmissionReview"
        assert document["response"]["uid"] == body["request"]["uid"]
        return document["response"]

    def metrics(self) -> dict:
        """``{(name, frozenset(labels)): value}`` from /metrics."""
        text = self.session.get(self.url("/metrics"), timeout=5).text
        return parse_metrics(text)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"raw": line})
        return records

    def review_log(self, uid: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for record in self.log_records():
                if record.get("logger") == "capacity_webhook.review" and record.get("uid") == uid:
                    return record
            if time.monotonic() > deadline:
                raise AssertionError(f"no review log line for {uid}:\n{self.log_text()[-4000:]}")
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        return [int(m) for m in re.findall(r"Booting worker with pid: (\d+)", self.log_text())]

    def wait_reservations_gone(self, timeout: float = 10.0) -> float:
        started = time.monotonic()
        while True:
            # Indexing, not .get(): a renamed or missing gauge must fail here, not read as "none left".
            if self.metrics()[("capacity_webhook_reservations", frozenset())] == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError("reservations did not expire")
            time.sleep(0.05)


def launch_server(command: list[str], cwd: Path, log_path: Path,
                  deadline: float) -> tuple[subprocess.Popen, IO[bytes], int]:
    """Start a gunicorn-based server with ``--port 0`` in its own process group, its output
    in ``log_path``, and return it with the port it bound (read from gunicorn's
    "Listening at" line: the only place a ``--port 0`` server says which port it got).
    Shared by the tests' ``WebhookProcess`` and the benchmarks' ``WebhookServer``."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1")
    log = open(log_path, "wb")
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    while True:
        text = log_path.read_text(errors="replace")
        match = re.search(r"Listening at: https://127\.0\.0\.1:(\d+)", text)
        if match:
            return proc, log, int(match.group(1))
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start (exit {proc.poll()}):\n{text[-4000:]}")
        time.sleep(0.05)


def wait_ready(proc: subprocess.Popen, answers: Callable[[], bool], log_path: Path, deadline: float) -> None:
    """Poll ``answers`` (a /readyz probe) until it holds; fail with the server's log if the
    process exits or the deadline passes first."""
    while not answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server is not answering (exit {proc.poll()}):\n"
                               f"{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.05)


_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict:
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        assert match, f"bad exposition line: {line!r}"
        labels = frozenset(_LABEL.findall(match.group(2) or ""))
        values[(match.group(1), labels)] = float(match.group(3))
    return values


def metric(values: Mapping, name: str, **labels) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)


def families(values: Mapping, name: str) -> Iterable[tuple[dict, float]]:
    return [(dict(labels), value) for (metric_name, labels), value in values.items() if metric_name == name]
