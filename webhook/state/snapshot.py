"""The snapshot state source: a ``kind: List`` file as ``kubectl get ... -o json`` prints it.

The same ``ClusterState.apply`` that a live watch calls is fed every item, so every
engine test written against snapshots holds for the live cache too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import yaml

from ..engine.instance_types import InstanceTable
from ..engine.model import ClusterState
from ..manifests import (
    InputError,
    _check_flow_depth,
    load_json,
    read_text,
    reject_surrogates,
)

SNAPSHOT_KINDS = "nodes,pods,namespaces,daemonsets,replicasets,deployments,statefulsets,storageclasses,pv,pvc,csinodes,volumeattachments,limitranges"


def state_from_objects(items: Iterable[Mapping], instance_table: InstanceTable | None = None) -> ClusterState:
    state = ClusterState(instance_table)
    for item in items:
        state.apply_or_skip(item)
    return state


def parse_snapshot(text: str, source: str) -> list[Mapping]:
    try:
        document = load_json(text, source)
    except InputError as json_error:
        if text.lstrip().startswith(("{", "[")):
            raise
        _check_flow_depth(text, source)
        try:
            document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(f"{source}{f':{mark.line + 1}' if mark else ''}: snapshot is neither JSON nor YAML") from None
        except (RecursionError, ValueError, OverflowError):
            raise json_error from None
        reject_surrogates(document, source)
    if not isinstance(document, dict) or not str(document.get("kind", "")).endswith("List") \
            or not isinstance(document.get("items"), list):
        raise InputError(f"{source}: a snapshot must be a kind: List with items, as "
                         f"'kubectl get {SNAPSHOT_KINDS} -A -o json' prints")
    return document["items"]


def load_snapshot(path: str, instance_table: InstanceTable | None = None) -> ClusterState:
    """Read a snapshot file into a ClusterState (raises InputError with one clear line)."""
    return state_from_objects(parse_snapshot(read_text(path), path), instance_table)
