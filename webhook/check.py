"""The ``check`` job: evaluate manifests in order against one cluster state.

Each object that is admitted spends the room it takes (as a permanent reservation), so
the next object in the same run sees what is left, as it would after ``kubectl apply``
of the whole folder. Objects that already exist in the state are updates.
"""

from __future__ import annotations

from typing import Iterable

from .engine.evaluate import HANDLED_KINDS, evaluate, identity
from .engine.model import ClusterState
from .engine.verdict import DENY

UPDATE_STORE_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")


def existing(state: ClusterState, obj) -> dict | None:
    kind, namespace, name = identity(obj)
    if kind == "PersistentVolumeClaim":
        return state.claims.get((namespace, name))
    return state.workloads.get((kind, namespace, name))


def check_objects(state: ClusterState, objects: Iterable[tuple[str, dict]], mode: str = "enforce"):
    """Yield ``(source, verdict)`` for every pod controller, Pod and PVC, spending capacity as it goes."""
    for index, (source, obj) in enumerate(objects):
        kind, namespace, name = identity(obj)
        if kind not in HANDLED_KINDS:
            if kind in ("Namespace", "LimitRange", "StorageClass", "PersistentVolume"):
                state.apply(obj)      # later objects in the run see them, as after kubectl apply
            continue
        verdict = evaluate(state, obj, existing(state, obj), mode)
        if verdict.verdict != DENY:
            _spend(state, obj, verdict, index)
        yield source, verdict


def _spend(state: ClusterState, obj, verdict, index: int) -> None:
    if verdict.kind == "PersistentVolumeClaim":
        state.apply(obj)
    elif verdict.reservation():
        state.reserve((verdict.kind, verdict.namespace, verdict.name), verdict.reservation(),
                      verdict.pod_requests, verdict.uses_ip, uid=f"check-{index}")
