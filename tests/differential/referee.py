"""Play one scenario on the real control plane and ask both sides.

The referee side: the scenario's objects are created through the API (kwok style:
nodes and bound pods get their ``status`` through the status subresource, waiting pods
are left to the real kube-scheduler), a snapshot is recorded with ``kubectl get ... -o
json``, then the workload's pods are created the way the ReplicaSet controller would
create them (template labels plus ``pod-template-hash``) and the real scheduler places
them. With no kubelet a bound pod stays phase Pending but gets ``spec.nodeName``: that
is the signal. Pods left with ``PodScheduled=False`` once the scheduler has nothing
left to try (its ``scheduler_pending_pods`` active and backoff queues are empty) are the
referee's pending count.

The engine side: ``python -m webhook.cli check --cluster <snapshot> -f <workload> -o
json`` from this worktree, as a user would run it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.differential.generator import (NAMESPACES, SCENARIO_LABEL, TEMPLATE_HASH, WORKLOAD_APP,
                                          Scenario)
from webhook.state.snapshot import SNAPSHOT_KINDS

REPO = Path(__file__).resolve().parents[2]
#: What the snapshot lists: everything `check` reads, plus what the engine may learn to read.
SNAPSHOT_RESOURCES = ",".join(dict.fromkeys([*SNAPSHOT_KINDS.split(","), "resourcequotas", "priorityclasses"]))
#: The apiserver of the differential tier: no ServiceAccount admission (no token controller),
#: no TaintNodesByCondition (the scenario says which taints a node has, as the node
#: lifecycle controller would have left them).
APISERVER_ARGS = ("--disable-admission-plugins=TaintNodesByCondition",)
#: The scheduler of the differential tier: SchedulerQueueingHints off. The tier compares where
#: pods END UP; the hints only decide whether an event retries an unschedulable pod early. In
#: v1.33 InterPodAffinity's hint skips the deletion of a pod whose OWN anti-affinity kept the
#: pending pod out (kubernetes/kubernetes#134393, fixed by #135325 after v1.33), so a preemptor
#: whose victim was such a pod waits for the 5-minute unschedulable-pods flush before it binds;
#: "settled" would read that wait as Pending for good (differential seeds 1036, 1639). With the
#: hints off every event the plugins register retries the pod (the pre-1.32 queue): same
#: filters, same placements, no wait.
SCHEDULER_ARGS = ("--feature-gates=SchedulerQueueingHints=false",)
SETTLE_TIMEOUT_S = 30.0
RUNTIME_LABEL = "differential.capacity-webhook/pod"


def _check_in_process(args: list[str]) -> tuple[int, str, str]:
    """The real ``capacity-webhook check`` command, run in this process through click.

    Same CLI code as ``python -m webhook.cli check``, without a Python start-up and the
    engine's imports per scenario (most of a scenario's cost on a loaded machine).
    ``in_process=False`` runs the subprocess instead.
    """
    from click.testing import CliRunner

    from webhook.cli import main

    result = CliRunner().invoke(main, args, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback
        return 3, result.output, "".join(traceback.format_exception(result.exception))
    return result.exit_code, result.stdout, result.stderr     # click >= 8.2 keeps them apart


class RefereeError(RuntimeError):
    """The control plane did not behave (not a disagreement: the scenario is not counted)."""


@dataclass
class Outcome:
    """What the real scheduler did with the workload's pods."""

    created: int = 0
    rejected: list[str] = field(default_factory=list)       # API errors for pods never created
    scheduled: int = 0
    unscheduled: int = 0
    on_not_ready: int = 0                                    # bound to a node whose Ready is not True
    unscheduled_reasons: list[str] = field(default_factory=list)
    placements: dict[str, int] = field(default_factory=dict)   # node -> workload pods the scheduler bound there
    settle_s: float = 0.0


@dataclass
class EngineAnswer:
    verdict: str
    pending: int
    codes: list[str]
    message: str


@dataclass
class Run:
    scenario: Scenario
    outcome: Outcome
    engine: EngineAnswer
    snapshot: dict | None = None


class Api:
    """A keep-alive HTTPS session to the apiserver with the admin token (kubectl is too slow per object)."""

    def __init__(self, cp):
        self.base = cp.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {cp.admin_token}"
        self.session.trust_env = False          # REQUESTS_CA_BUNDLE would replace our CA
        self.session.verify = str(cp.ca_file)

    def call(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
             ok: tuple = (200, 201, 202), params: dict | None = None) -> requests.Response:
        data = json.dumps(body) if body is not None else None
        resp = self.session.request(method, self.base + path, data=data, params=params, timeout=30,
                                    headers={"Content-Type": content_type} if data else None)
        if ok and resp.status_code not in ok:
            raise ApiError(resp.status_code, f"{method} {path}: HTTP {resp.status_code}: {resp.text[:500]}")
        return resp

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> dict:
        return self.call(method, path, body, **kw).json()


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _collection(obj: dict) -> str:
    kind, ns = obj["kind"], obj["metadata"].get("namespace")
    plural = {"Node": "nodes", "Pod": "pods", "LimitRange": "limitranges", "ResourceQuota": "resourcequotas",
              "Namespace": "namespaces", "PriorityClass": "priorityclasses"}[kind]
    prefix = "/apis/scheduling.k8s.io/v1" if kind == "PriorityClass" else "/api/v1"
    return f"{prefix}/namespaces/{ns}/{plural}" if ns else f"{prefix}/{plural}"


def _path(obj: dict) -> str:
    return f"{_collection(obj)}/{obj['metadata']['name']}"


def _condition(pod: dict, kind: str) -> dict | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


class Referee:
    """One control plane (etcd + kube-apiserver + kube-scheduler) serving many scenarios in turn."""

    def __init__(self, cp, workdir: Path | None = None, in_process: bool = True):
        self.cp = cp
        self.in_process = in_process
        self.api = Api(cp)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="differential-"))
        for ns in NAMESPACES:
            resp = self.api.call("GET", f"/api/v1/namespaces/{ns}", ok=())
            if resp.status_code == 404:
                self.api.call("POST", "/api/v1/namespaces",
                              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self.cleanup()

    # ------------------------------------------------------------------ one scenario
    def run(self, sc: Scenario, keep_snapshot: bool = False) -> Run:
        try:
            self._create_cluster(sc)
            self._settle(time.monotonic())
            snap_path = self.workdir / f"snapshot-{sc.seed}.json"
            workload_path = self.workdir / f"workload-{sc.seed}.yaml"
            snap = self.cp.kubectl("get", SNAPSHOT_RESOURCES, "-A", "-o", "json").stdout
            snap_path.write_text(snap)
            workload_path.write_text(yaml.safe_dump(sc.workload))
            args = ["check", "--cluster", str(snap_path), "-f", str(workload_path), "-o", "json", "--fail-on", "never"]
            if self.in_process:
                outcome = self._play_workload(sc)
                engine = self._engine_answer(*_check_in_process(args))
            else:
                check = subprocess.Popen([sys.executable, "-m", "webhook.cli", *args], cwd=REPO,
                                         env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
                outcome = self._play_workload(sc)
                out, err = check.communicate(timeout=120)
                engine = self._engine_answer(check.returncode, out, err)
            return Run(sc, outcome, engine, json.loads(snap) if keep_snapshot else None)
        finally:
            self.cleanup()

    def _create_cluster(self, sc: Scenario) -> None:
        for obj in sc.objects:
            kind = obj["kind"]
            if kind == "Namespace":
                name = obj["metadata"]["name"]
                labels = {**(obj["metadata"].get("labels") or {}), "kubernetes.io/metadata.name": name}
                self.api.call("PATCH", f"/api/v1/namespaces/{name}",
                              [{"op": "replace", "path": "/metadata/labels", "value": labels}],
                              content_type="application/json-patch+json")
                continue
            body = copy.deepcopy(obj)
            status = body.pop("status", None)
            if kind == "Pod":
                body["metadata"].setdefault("labels", {})[RUNTIME_LABEL] = "existing"
            resp = self.api.call("POST", _collection(body), body, ok=())
            if resp.status_code not in (200, 201):
                if kind == "Pod" and resp.status_code in (403, 422):
                    # Refused by admission (LimitRange, quota) or invalid after LimitRanger's defaults
                    # (a default limit below the request): it never exists, as on a real cluster.
                    continue
                raise RefereeError(f"creating {kind} {obj['metadata']['name']}: HTTP {resp.status_code}: "
                                   f"{resp.text[:300]}")
            if kind == "ResourceQuota":
                # No quota controller here: start its usage at zero, quota admission counts every pod from now on.
                hard = body["spec"]["hard"]
                status = {"hard": hard, "used": {k: "0" for k in hard}}
            if kind == "Pod" and (status or {}).get("phase") in (None, "Pending"):
                continue
            if status:
                self.api.call("PATCH", _path(body) + "/status", {"status": status},
                              content_type="application/merge-patch+json")

    def _workload_pods(self, sc: Scenario) -> list[dict]:
        template = sc.workload["spec"]["template"]
        namespace = sc.workload["metadata"]["namespace"]
        labels = {**(template["metadata"].get("labels") or {}), "pod-template-hash": TEMPLATE_HASH,
                  RUNTIME_LABEL: "workload"}
        return [{"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": f"{WORKLOAD_APP}-{TEMPLATE_HASH}-{i}", "namespace": namespace,
                              "labels": dict(labels)},
                 "spec": copy.deepcopy(template["spec"])} for i in range(sc.replicas)]

    def _play_workload(self, sc: Scenario) -> Outcome:
        outcome = Outcome()
        namespace = sc.workload["metadata"]["namespace"]
        for pod in self._workload_pods(sc):
            resp = self.api.call("POST", _collection(pod), pod, ok=())
            if resp.status_code in (200, 201):
                outcome.created += 1
            elif resp.status_code in (403, 422):   # admission refused it, or LimitRanger's defaults made it invalid
                outcome.rejected.append(resp.json().get("message", resp.text)[:300])
            else:
                raise RefereeError(f"creating workload pod: HTTP {resp.status_code}: {resp.text[:300]}")
        start = time.monotonic()
        self._settle(start)
        outcome.settle_s = time.monotonic() - start
        nodes = {n["metadata"]["name"]: n for n in self.api.json(
            "GET", "/api/v1/nodes", params={"labelSelector": SCENARIO_LABEL})["items"]}
        pods = self.api.json("GET", f"/api/v1/namespaces/{namespace}/pods",
                             params={"labelSelector": f"{RUNTIME_LABEL}=workload"})["items"]
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if node:
                outcome.scheduled += 1
                outcome.placements[node] = outcome.placements.get(node, 0) + 1
                ready = _condition(nodes.get(node, {}), "Ready")
                if not ready or ready.get("status") != "True":
                    outcome.on_not_ready += 1
            else:
                outcome.unscheduled += 1
                cond = _condition(pod, "PodScheduled") or {}
                outcome.unscheduled_reasons.append(f"{cond.get('reason')}: {cond.get('message')}")
        return outcome

    def _settle(self, start: float) -> None:
        """Wait until the scheduler has tried every pod and has nothing left to retry.

        Settled: every pod has a node or a PodScheduled condition, and the scheduler's
        active and backoff queues are empty on consecutive polls. A pod nominated by a
        preemption waits in the unschedulable queue until its victims' deletion moves it
        back, so while one exists the queues must stay empty for a full second; a
        nominated pod that still does not fit (its victims gone, another rule still
        failing) stays nominated for good, and that is settled too.
        """
        calm = 0
        while True:
            pods = self.api.json("GET", "/api/v1/pods", params={"labelSelector": RUNTIME_LABEL})["items"]
            waiting = [p for p in pods if not p["spec"].get("nodeName")]
            untried = [p for p in waiting if _condition(p, "PodScheduled") is None]
            nominated = any((p.get("status") or {}).get("nominatedNodeName") for p in waiting)
            queue = self.cp.scheduler_queue() if not untried else None
            if not untried and queue["active"] == 0 and queue["backoff"] == 0:
                calm += 1
                if calm >= (20 if nominated else 2):
                    return
            else:
                calm = 0
            if time.monotonic() - start > SETTLE_TIMEOUT_S:
                raise RefereeError(f"the scheduler did not settle in {SETTLE_TIMEOUT_S:.0f}s "
                                   f"(untried: {[p['metadata']['name'] for p in untried]}, queue: {queue})")
            time.sleep(0.05)

    @staticmethod
    def _engine_answer(returncode: int, out: str, err: str) -> EngineAnswer:
        if returncode not in (0, 1):
            raise RefereeError(f"check exited {returncode}: {err[-1500:]}")
        try:
            (result,) = json.loads(out)["results"]
        except (ValueError, KeyError) as exc:
            raise RefereeError(f"check printed no single JSON result ({exc}): {out[:500]} {err[-500:]}") from None
        return EngineAnswer(result["verdict"], int(result["pending"]), [r["code"] for r in result["reasons"]],
                            "\n".join(r["message"] for r in result["reasons"]))

    # ------------------------------------------------------------------ between scenarios
    def cleanup(self) -> None:
        """Remove every object a scenario created (pods first, with no grace: there is no kubelet)."""
        opts = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "propagationPolicy": "Background"}
        for ns in NAMESPACES:
            for plural in ("pods", "limitranges", "resourcequotas"):
                self.api.call("DELETE", f"/api/v1/namespaces/{ns}/{plural}", opts)
        self.api.call("DELETE", "/api/v1/nodes", opts, params={"labelSelector": SCENARIO_LABEL})
        self.api.call("DELETE", "/apis/scheduling.k8s.io/v1/priorityclasses", opts,
                      params={"labelSelector": SCENARIO_LABEL})
        deadline = time.monotonic() + 30
        while True:
            left = (self.api.json("GET", "/api/v1/pods", params={"labelSelector": RUNTIME_LABEL})["items"]
                    + self.api.json("GET", "/api/v1/nodes", params={"labelSelector": SCENARIO_LABEL})["items"]
                    + self.api.json("GET", "/apis/scheduling.k8s.io/v1/priorityclasses",
                                    params={"labelSelector": SCENARIO_LABEL})["items"])
            if not left:
                return
            if time.monotonic() > deadline:
                raise RefereeError(f"cleanup left {[o['metadata']['name'] for o in left]}")
            time.sleep(0.05)
