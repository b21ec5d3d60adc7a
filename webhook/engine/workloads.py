"""How many pods a workload object asks for, and from which pod template.

One function per controller's semantics: replicas for Deployments, ReplicaSets and
StatefulSets; parallelism (capped by completions) for a Job and for one run of a
CronJob; one pod per eligible node for a DaemonSet; a bare Pod is its own template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping

from .requests import ObjectError

POD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")


@dataclass(frozen=True)
class Demand:
    """The pods a workload wants: ``replicas is None`` means one per eligible node."""

    kind: str
    namespace: str
    name: str
    pod_spec: Mapping
    pod_labels: Mapping
    replicas: int | None
    max_surge: int = 0
    max_unavailable: int = 0
    rolling: bool = False          # Deployment RollingUpdate: new pods start before old ones stop
    claim_templates: tuple[Mapping, ...] = ()    # StatefulSet volumeClaimTemplates: one new volume per pod

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.namespace, self.name

    @property
    def created_pod_labels(self) -> Mapping:
        """The labels its pods will carry: a Deployment's ReplicaSet adds a ``pod-template-hash``
        no other pod has yet (what ``matchLabelKeys: [pod-template-hash]`` selects on)."""
        if self.kind == "Deployment" and "pod-template-hash" not in self.pod_labels:
            return {**self.pod_labels, "pod-template-hash": f"new-{self.name}"}
        return self.pod_labels

    @property
    def replica_word(self) -> str:
        return {"Job": "parallelism", "CronJob": "parallelism", "DaemonSet": "nodes"}.get(self.kind, "replicas")


def _int_field(value, path: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ObjectError(path, f"must be a non-negative integer, got {value!r}")
    return value


def scaled_value(value, total: int, round_up: bool, path: str) -> int:
    """An IntOrString like ``25%`` resolved against ``total`` (Kubernetes' GetScaledValueFromIntOrPercent)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            raise ObjectError(path, f"invalid percentage {value!r}") from None
        exact = percent * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    raise ObjectError(path, f"must be an integer or a percentage, got {value!r}")


def _job_pods(job_spec: Mapping, path: str) -> int:
    if job_spec.get("suspend"):
        return 0
    parallelism = _int_field(job_spec.get("parallelism"), f"{path}.parallelism", 1)
    completions = job_spec.get("completions")
    if completions is not None:
        parallelism = min(parallelism, _int_field(completions, f"{path}.completions", 1))
    return parallelism


def demand_of(obj: Mapping) -> Demand:
    """Read the pod demand of any supported workload kind (raises ObjectError on bad fields)."""
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name", "")
    if kind == "Pod":
        return Demand(kind, namespace, name, spec, meta.get("labels") or {}, 1)
    replicas: int | None
    if kind == "CronJob":
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        template = job_spec.get("template") or {}
        replicas = 0 if spec.get("suspend") else _job_pods(job_spec, "spec.jobTemplate.spec")
    elif kind == "Job":
        template = spec.get("template") or {}
        replicas = _job_pods(spec, "spec")
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        template = spec.get("template") or {}
        replicas = None if kind == "DaemonSet" else _int_field(spec.get("replicas"), "spec.replicas", 1)
    else:
        raise ObjectError("kind", f"{kind!r} is not a pod controller")
    pod_spec = template.get("spec") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    demand = Demand(kind, namespace, name, pod_spec, labels, replicas,
                    claim_templates=tuple(spec.get("volumeClaimTemplates") or ()) if kind == "StatefulSet" else ())
    if kind == "Deployment":
        strategy = spec.get("strategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            rolling = strategy.get("rollingUpdate") or {}
            total = replicas or 0
            surge = scaled_value(rolling.get("maxSurge", "25%"), total, True, "spec.strategy.rollingUpdate.maxSurge")
            unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), total, False,
                                       "spec.strategy.rollingUpdate.maxUnavailable")
            if surge == 0 and unavailable == 0:
                unavailable = 1  # what the Deployment controller does
            demand = replace(demand, max_surge=surge, max_unavailable=unavailable, rolling=True)
    return demand


def same_template(new: Demand, old: Demand) -> bool:
    """Whether an update keeps the pod template, so no rollout starts."""
    return new.pod_spec == old.pod_spec and new.pod_labels == old.pod_labels
