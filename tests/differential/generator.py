"""Seeded random clusters and workloads for the differential tier.

``scenario(seed)`` returns plain Kubernetes manifests: the cluster objects (Namespaces of
a fixed pool with per-scenario labels, kwok-style Nodes with ``status``, PriorityClasses,
LimitRanges, ResourceQuotas, Pods bound with ``spec.nodeName`` or left for the
scheduler) and one workload (a Deployment). The same dicts go to the real control plane
and, through a kubectl snapshot, to ``check``; a disagreement is printed as these
manifests, so a reproducer is something ``kubectl apply`` understands.

The VPC CNI IP rule is kept out of the comparison by construction: no ``aws-node``
DaemonSet is generated, so the engine applies no IP rule, and ``allocatable.pods`` is
the EKS max-pods figure (what the kubelet gets on EKS, which the scheduler does see).
The generator never reads the engine: it only knows Kubernetes field names.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

#: Namespaces every scenario uses (labels change per scenario). The workload lives in the first.
NAMESPACES = ("team-a", "team-b", "team-c")
WORKLOAD_NAMESPACE = NAMESPACES[0]
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
#: Label put on every cluster-scoped object a scenario creates (nodes, priority classes), for cleanup.
SCENARIO_LABEL = "differential.capacity-webhook/scenario"
WORKLOAD_APP = "web"
TEMPLATE_HASH = "5d8f7c9b4"   # what the ReplicaSet controller would add as pod-template-hash

# EKS-like allocatable per instance type: (cpu m, memory Mi, pods = eni-max-pods, extended resources)
INSTANCE_TYPES: dict[str, tuple[int, int, int, dict[str, str]]] = {
    "t3.medium": (1930, 3300, 17, {}),
    "m5.large": (1930, 7100, 29, {"vpc.amazonaws.com/pod-eni": "9"}),
    "m5.xlarge": (3920, 14300, 58, {"vpc.amazonaws.com/pod-eni": "18"}),
    "c5.2xlarge": (7910, 14000, 58, {}),
    "g4dn.xlarge": (3920, 15000, 29, {"nvidia.com/gpu": "1"}),
    "g4dn.12xlarge": (47810, 180000, 234, {"nvidia.com/gpu": "4"}),
}
APPS = ("cache", "db", "batch", "web", "agent")
CORDON_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NOT_READY_TAINTS = ({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"})


@dataclass
class Scenario:
    """One cluster and one workload; ``objects`` in creation order."""

    seed: int
    objects: list[dict] = field(default_factory=list)
    workload: dict = field(default_factory=dict)

    def copy(self) -> "Scenario":
        return Scenario(self.seed, copy.deepcopy(self.objects), copy.deepcopy(self.workload))

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    @property
    def replicas(self) -> int:
        return int(self.workload["spec"].get("replicas", 1))


def _meta(name: str, namespace: str | None = None, labels: dict | None = None) -> dict:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _quantity_cpu(milli: int) -> str:
    return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli}m"


class _Gen:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.seed = seed
        self.quota_namespace = False

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # ------------------------------------------------------------------ cluster
    def namespaces(self) -> list[dict]:
        out = []
        for ns in NAMESPACES:
            labels = {}
            if self.chance(0.6):
                labels["env"] = self.rng.choice(("prod", "dev"))
            if self.chance(0.4):
                labels["team"] = self.rng.choice(("x", "y"))
            out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, labels=labels)})
        return out

    def node(self, index: int) -> dict:
        rng = self.rng
        itype = rng.choice(list(INSTANCE_TYPES))
        cpu, mem, pods, extended = INSTANCE_TYPES[itype]
        zone = rng.choice(ZONES)
        name = f"node-{index}"
        allocatable = {"cpu": _quantity_cpu(cpu), "memory": f"{mem}Mi", "pods": str(pods),
                       "ephemeral-storage": "18242267924", "hugepages-1Gi": "0",
                       "hugepages-2Mi": "256Mi" if self.chance(0.15) else "0", **extended}
        if self.chance(0.015):
            allocatable.pop("pods")            # the scheduler treats a missing pods figure as 0
        labels = {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "node.kubernetes.io/instance-type": itype, "topology.kubernetes.io/region": "us-east-1",
                  "topology.kubernetes.io/zone": zone, SCENARIO_LABEL: "true"}
        if self.chance(0.5):
            labels["tier"] = rng.choice(("general", "batch"))
        if self.chance(0.08):
            labels.pop("topology.kubernetes.io/zone")   # a node outside every zone domain
        spec: dict[str, Any] = {}
        taints = []
        if self.chance(0.15):
            taints.append({"key": "dedicated", "value": rng.choice(("gpu", "infra")), "effect": "NoSchedule"})
        if self.chance(0.08):
            taints.append({"key": "spot", "value": "true", "effect": "PreferNoSchedule"})
        if self.chance(0.04):
            taints.append({"key": "drain", "effect": "NoExecute"})
        ready = not self.chance(0.02)
        if self.chance(0.12):
            spec["unschedulable"] = True
            if self.chance(0.85):              # the node lifecycle controller adds it on a real cluster
                taints.append(dict(CORDON_TAINT))
        if not ready:
            taints.extend(dict(t) for t in NOT_READY_TAINTS)
        if taints:
            spec["taints"] = taints
        condition = {"type": "Ready", "status": "True" if ready else "Unknown",
                     "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                     "lastHeartbeatTime": "2026-11-01T08:00:00Z", "lastTransitionTime": "2026-11-01T08:00:00Z",
                     "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status."}
        return {"apiVersion": "v1", "kind": "Node", "metadata": _meta(name, labels=labels), "spec": spec,
                "status": {"allocatable": allocatable, "capacity": dict(allocatable), "conditions": [condition],
                           "addresses": [{"type": "Hostname", "address": name}]}}

    def priority_classes(self) -> list[dict]:
        if not self.chance(0.35):
            return []
        return [
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": _meta(name, labels={SCENARIO_LABEL: "true"}),
                "value": value,
                "preemptionPolicy": policy,
            }
            for name, value, policy in (
                ("low", -10, "PreemptLowerPriority"),
                ("high", 1000, "PreemptLowerPriority"),
                ("high-nopreempt", 1000, "Never"),
            )
        ]

    def limit_range(self) -> list[dict]:
        if not self.chance(0.25):
            return []
        rng = self.rng
        item: dict[str, Any] = {"type": "Container"}
        if self.chance(0.7):
            item["defaultRequest"] = {"cpu": rng.choice(("100m", "250m", "500m")),
                                      "memory": rng.choice(("128Mi", "256Mi"))}
        if self.chance(0.5):
            item["default"] = {"cpu": rng.choice(("500m", "1")), "memory": rng.choice(("512Mi", "1Gi"))}
        if self.chance(0.3):
            item["max"] = {"cpu": rng.choice(("1", "2")), "memory": rng.choice(("1Gi", "2Gi"))}
        if self.chance(0.2):
            item["min"] = {"cpu": rng.choice(("50m", "100m"))}
        if len(item) == 1:
            item["defaultRequest"] = {"cpu": "200m"}
        return [{"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta("limits", WORKLOAD_NAMESPACE),
                 "spec": {"limits": [item]}}]

    def quota(self) -> list[dict]:
        if not self.chance(0.15):
            return []
        rng = self.rng
        hard = {}
        if self.chance(0.6):
            hard["pods"] = str(rng.randint(3, 20))
        if self.chance(0.5):
            hard["requests.cpu"] = rng.choice(("1", "2", "4", "8"))
        if self.chance(0.4):
            hard["requests.memory"] = rng.choice(("2Gi", "4Gi", "16Gi"))
        if self.chance(0.3):
            hard["count/pods"] = str(rng.randint(3, 20))
        if not hard:
            hard["pods"] = "10"
        return [{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("quota", WORKLOAD_NAMESPACE),
                 "spec": {"hard": hard}}]

    # ------------------------------------------------------------------ pods
    def requests(self, scale: int) -> dict:
        cpu = self.rng.choice((50, 100, 200, 250, 500, 750, 1000, 1500)) * scale // 2
        mem = self.rng.choice((64, 128, 256, 512, 1024, 2048)) * scale // 2
        return {"cpu": _quantity_cpu(max(cpu, 10)), "memory": f"{max(mem, 16)}Mi"}

    def container(self, name: str, requests: dict | None, limits: dict | None = None,
                  ports: list | None = None) -> dict:
        c: dict[str, Any] = {"name": name, "image": "registry.k8s.io/pause:3.10"}
        resources = {}
        if requests:
            resources["requests"] = dict(requests)
        if limits:
            resources["limits"] = dict(limits)
        if resources:
            c["resources"] = resources
        if ports:
            c["ports"] = ports
        return c

    def existing_pod(self, name: str, node: dict | None, priority_classes: list[dict]) -> dict:
        rng = self.rng
        namespace = rng.choice(NAMESPACES)
        app = rng.choice(APPS)
        labels = {"app": app}
        if self.chance(0.3):
            labels["role"] = rng.choice(("leader", "follower"))
        spec: dict[str, Any] = {"terminationGracePeriodSeconds": 0,
                                "containers": [self.container("main", self.requests(rng.choice((1, 2, 3))))]}
        if self.chance(0.1):
            spec["hostNetwork"] = True
        if self.chance(0.12):
            port = rng.choice((8080, 9100))
            spec["containers"][0]["ports"] = [{"containerPort": port, "hostPort": port, "protocol": "TCP"}]
        if self.chance(0.12):   # its own anti-affinity may repel the new pods (the symmetric rule)
            spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": rng.choice((WORKLOAD_APP, app))}},
                "topologyKey": rng.choice(("kubernetes.io/hostname", "topology.kubernetes.io/zone"))}]}}
            if self.chance(0.3):
                spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0][
                    "namespaceSelector"] = {}
        if self.chance(0.1) and node is not None and node["status"]["allocatable"].get("nvidia.com/gpu"):
            spec["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": "1"}
        if priority_classes and self.chance(0.5):
            spec["priorityClassName"] = rng.choice(("low", "low", "high"))
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, namespace, labels), "spec": spec}
        if node is not None:
            spec["nodeName"] = node["metadata"]["name"]
            phase = "Running"
            if self.chance(0.1):
                phase = rng.choice(("Succeeded", "Failed"))
                if namespace == WORKLOAD_NAMESPACE and self.quota_namespace:
                    # The referee has no quota controller to release a finished pod's usage
                    # (quota admission counted it at creation): keep the quota's status true.
                    phase = "Running"
            pod["status"] = {"phase": phase}
        else:
            if self.chance(0.3):
                spec["schedulingGates"] = [{"name": "example.com/hold"}]
            if self.chance(0.3):
                spec["nodeSelector"] = {"tier": rng.choice(("general", "batch"))}
        return pod

    # ------------------------------------------------------------------ workload
    def workload(self, nodes: list[dict], priority_classes: list[dict]) -> dict:
        rng = self.rng
        labels = {"app": WORKLOAD_APP}
        spec: dict[str, Any] = {"terminationGracePeriodSeconds": 0}
        size = rng.choice((1, 1, 2, 3, 4))
        containers = []
        shape = rng.random()
        if shape < 0.6:
            containers.append(self.container("app", self.requests(size)))
        elif shape < 0.75:
            containers.append(self.container("app", None))                  # LimitRange defaults (or nothing)
        elif shape < 0.85:
            limits = self.requests(size)
            containers.append(self.container("app", None, limits))         # requests default to limits
        else:
            containers.append(self.container("app", {"cpu": "100m"}, None))
            containers.append(self.container("sidecar", self.requests(1)))
        if self.chance(0.15):
            init = self.container("init", self.requests(size + 1))
            if self.chance(0.4):
                init["restartPolicy"] = "Always"                           # a sidecar: it stays
            spec["initContainers"] = [init]
        c0 = containers[0]
        if self.chance(0.12):
            port = rng.choice((8080, 9100))
            c0["ports"] = [{"containerPort": port, "hostPort": port, "protocol": "TCP"}]
        if self.chance(0.15):
            ext = rng.choice(("nvidia.com/gpu", "vpc.amazonaws.com/pod-eni", "hugepages-2Mi"))
            amount = "128Mi" if ext == "hugepages-2Mi" else "1"
            res = c0.setdefault("resources", {})
            res.setdefault("limits", {})[ext] = amount
            res.setdefault("requests", {})[ext] = amount
            if ext == "hugepages-2Mi":      # needs cpu or memory requests; a request never above its limit
                res["requests"].setdefault("cpu", res["limits"].get("cpu", "100m"))
                res["limits"].setdefault("cpu", res["requests"]["cpu"])
                res["requests"].setdefault("memory", res["limits"].get("memory", "64Mi"))
                res["limits"].setdefault("memory", res["requests"]["memory"])
        spec["containers"] = containers
        if self.chance(0.2):
            spec["nodeSelector"] = rng.choice(({"tier": "general"}, {"topology.kubernetes.io/zone": rng.choice(ZONES)},
                                               {"node.kubernetes.io/instance-type": rng.choice(list(INSTANCE_TYPES))}))
        tolerations = []
        if self.chance(0.15):
            tolerations.append(
                {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
            )
        if self.chance(0.07):
            tolerations.append({"operator": "Exists"})
        if self.chance(0.15):
            tolerations.append({"key": "dedicated", "operator": "Equal", "value": rng.choice(("gpu", "infra")),
                                "effect": "NoSchedule"})
        if self.chance(0.05):
            tolerations.append({"key": "drain", "operator": "Exists"})
        if tolerations:
            spec["tolerations"] = tolerations
        affinity: dict[str, Any] = {}
        if self.chance(0.15):
            affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": rng.choice(("In", "NotIn")),
                                       "values": rng.sample(ZONES, rng.randint(1, 2))}]}]}}
        if self.chance(0.25):
            affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [self.pod_term(True)]}
        if self.chance(0.15):
            affinity["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [self.pod_term(False)]}
        if affinity:
            spec["affinity"] = affinity
        if self.chance(0.25):
            keys = rng.sample(("topology.kubernetes.io/zone", "kubernetes.io/hostname"), rng.choice((1, 1, 2)))
            spec["topologySpreadConstraints"] = [self.spread(key) for key in keys]   # one per key (validation)
        if priority_classes and self.chance(0.6):
            spec["priorityClassName"] = rng.choice(("low", "high", "high", "high-nopreempt"))
        replicas = rng.randint(1, 14)
        template_labels = dict(labels)
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": _meta(WORKLOAD_APP, WORKLOAD_NAMESPACE, labels),
                "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": template_labels}, "spec": spec}}}

    def pod_term(self, anti: bool) -> dict:
        rng = self.rng
        key = rng.choice(("kubernetes.io/hostname", "kubernetes.io/hostname", "topology.kubernetes.io/zone"))
        term: dict[str, Any] = {"topologyKey": key}
        roll = rng.random()
        if roll < 0.5:
            term["labelSelector"] = {"matchLabels": {"app": WORKLOAD_APP if anti or self.chance(0.4)
                                                     else rng.choice(APPS)}}
        elif roll < 0.85:
            term["labelSelector"] = {"matchExpressions": [{"key": "app", "operator": "In",
                                                           "values": rng.sample(APPS, rng.randint(1, 3))}]}
        # else: no labelSelector at all (matches no pods)
        if self.chance(0.2):
            term["namespaces"] = rng.sample(NAMESPACES, rng.randint(1, 2))
        if self.chance(0.15):
            term["namespaceSelector"] = rng.choice(({}, {"matchLabels": {"env": "prod"}}))
        return term

    def spread(self, key: str) -> dict:
        rng = self.rng
        c: dict[str, Any] = {"maxSkew": rng.choice((1, 1, 2)),
                             "topologyKey": key,
                             "whenUnsatisfiable": "DoNotSchedule",
                             "labelSelector": {"matchLabels": {"app": WORKLOAD_APP}}}
        if self.chance(0.2):
            c["minDomains"] = rng.randint(2, 4)
        if self.chance(0.15):
            c["nodeAffinityPolicy"] = rng.choice(("Honor", "Ignore"))
        if self.chance(0.15):
            c["nodeTaintsPolicy"] = rng.choice(("Honor", "Ignore"))
        if self.chance(0.2):
            c["matchLabelKeys"] = ["pod-template-hash"]
        return c


def _cpu_milli(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def _mem_mi(value: str) -> int:
    return int(value[:-2]) if value.endswith("Mi") else int(float(value[:-2]) * 1024)


class _Room:
    """Free cpu/memory/pods of a node while the generator binds pods to it (its own quantities only)."""

    def __init__(self, node: dict):
        alloc = node["status"]["allocatable"]
        self.cpu, self.mem = _cpu_milli(alloc["cpu"]), _mem_mi(alloc["memory"])
        self.pods = int(alloc.get("pods", 0))

    def take(self, pod: dict) -> bool:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return True
        req = pod["spec"]["containers"][0]["resources"]["requests"]
        cpu, mem = _cpu_milli(req["cpu"]), _mem_mi(req["memory"])
        if cpu > self.cpu or mem > self.mem or self.pods < 1:
            return False
        self.cpu, self.mem, self.pods = self.cpu - cpu, self.mem - mem, self.pods - 1
        return True


def scenario(seed: int) -> Scenario:
    """The scenario for ``seed`` (the same seed always gives the same objects)."""
    gen = _Gen(seed)
    rng = gen.rng
    objects: list[dict] = gen.namespaces()
    pcs = gen.priority_classes()
    objects += pcs
    objects += gen.limit_range()
    quota = gen.quota()
    gen.quota_namespace = bool(quota)
    objects += quota
    nodes = [gen.node(i) for i in range(rng.randint(1, 7))]
    objects += nodes
    index = 0
    for node in nodes:
        free = _Room(node)
        for _ in range(rng.choice((0, 0, 1, 2, 3, 5))):
            pod = gen.existing_pod(f"running-{index}", node, pcs)
            if free.take(pod):         # a kubelet would have refused a pod that does not fit
                objects.append(pod)
                index += 1
    for i in range(rng.choice((0, 0, 0, 1, 2, 3))):
        objects.append(gen.existing_pod(f"waiting-{i}", None, pcs))
    return Scenario(seed, objects, gen.workload(nodes, pcs))


def feature_tags(sc: Scenario) -> list[str]:
    """Short names of what a scenario uses, to group disagreements into classes."""
    tags: set[str] = set()
    for node in sc.of_kind("Node"):
        spec = node.get("spec") or {}
        if spec.get("unschedulable"):
            tags.add("cordoned-node")
        if any(t["key"] == "node.kubernetes.io/not-ready" for t in spec.get("taints") or []):
            tags.add("notready-node")
        if "pods" not in node["status"]["allocatable"]:
            tags.add("node-without-pods")
        if "topology.kubernetes.io/zone" not in node["metadata"]["labels"]:
            tags.add("node-without-zone")
    for pod in sc.of_kind("Pod"):
        spec = pod["spec"]
        if not spec.get("nodeName"):
            tags.add("gated-pod" if spec.get("schedulingGates") else "waiting-pod")
        elif (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            tags.add("terminal-pod")
        if spec.get("hostNetwork"):
            tags.add("hostnetwork-pod")
        if any(p.get("hostPort") for c in spec["containers"] for p in c.get("ports") or []):
            tags.add("existing-hostport")
        if (spec.get("affinity") or {}).get("podAntiAffinity"):
            tags.add("existing-anti-affinity")
        if spec.get("priorityClassName"):
            tags.add("existing-priority")
    if sc.of_kind("LimitRange"):
        tags.add("limitrange")
    if sc.of_kind("ResourceQuota"):
        tags.add("quota")
    spec = sc.workload["spec"]["template"]["spec"]
    for tol in spec.get("tolerations") or []:
        if not tol.get("key"):
            tags.add("wildcard-toleration")
        elif tol["key"] == "node.kubernetes.io/unschedulable":
            tags.add("tolerates-cordon")
    affinity = spec.get("affinity") or {}
    for kind, short in (("podAntiAffinity", "anti-affinity"), ("podAffinity", "affinity")):
        for term in (affinity.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            tags.add(f"{short}-{'zone' if 'zone' in term['topologyKey'] else 'hostname'}")
            if "labelSelector" not in term:
                tags.add(f"{short}-no-selector")
            if "namespaces" in term or "namespaceSelector" in term:
                tags.add(f"{short}-namespaces")
    if affinity.get("nodeAffinity"):
        tags.add("node-affinity")
    for c in spec.get("topologySpreadConstraints") or []:
        tags.add(f"spread-{'zone' if 'zone' in c['topologyKey'] else 'hostname'}")
        for opt in ("minDomains", "nodeAffinityPolicy", "nodeTaintsPolicy", "matchLabelKeys"):
            if opt in c:
                tags.add(f"spread-{opt}")
    containers = spec["containers"] + (spec.get("initContainers") or [])
    if any(p.get("hostPort") for c in containers for p in c.get("ports") or []):
        tags.add("hostport")
    for c in containers:
        for key in ((c.get("resources") or {}).get("limits") or {}):
            if "/" in key or key.startswith("hugepages"):
                tags.add(f"extended:{key}")
        if not (c.get("resources") or {}).get("requests"):
            tags.add("no-requests")
    if spec.get("initContainers"):
        tags.add("init-container")
    if spec.get("nodeSelector"):
        tags.add("node-selector")
    if spec.get("priorityClassName"):
        tags.add(f"priority:{spec['priorityClassName']}")
    return sorted(tags)
