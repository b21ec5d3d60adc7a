"""The snapshot state source: a ``kind: List`` file as ``kubectl get ... -o json`` prints it.

The same ``ClusterState.apply`` that a live watch calls is fed every item, so every
engine test written against snapshots holds for the live cache too.

A snapshot of a 5,000-node cluster is hundreds of megabytes: it is parsed with orjson
(``webhook.fastjson``), the cyclic GC is paused while the parsed document is turned into
the state, and the finished state is frozen out of the GC's reach (as the live source
does), so the decisions that follow do not walk 150,000 pod records at every collection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import yaml

from ..engine.instance_types import InstanceTable
from ..engine.model import ClusterState
from ..fastjson import loads, orjson
from ..manifests import _ESCAPED_SURROGATE, InputError, _check_flow_depth, load_json, read_text, reject_surrogates
from .gc_pause import freeze_survivors, gc_paused

SNAPSHOT_KINDS = ("nodes,pods,namespaces,daemonsets,replicasets,deployments,statefulsets,storageclasses,pv,pvc,"
                  "csinodes,volumeattachments,limitranges")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def state_from_objects(items: Iterable[Mapping], instance_table: InstanceTable | None = None) -> ClusterState:
    state = ClusterState(instance_table)
    for item in items:
        state.apply_or_skip(item)
    return state


def parse_snapshot(text: str, source: str) -> list[Mapping]:
    if text.lstrip().startswith(("{", "[")):
        try:
            document = loads(text)                       # orjson, json.loads for what it refuses
        except (ValueError, RecursionError):             # JSONDecodeError is a ValueError
            document = load_json(text, source)           # raises the one-line InputError
    else:
        _check_flow_depth(text, source)
        try:
            document = yaml.load(text, Loader=_YAML_LOADER)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark else source
            raise InputError(f"{where}: snapshot is neither JSON nor YAML") from None
        except (RecursionError, ValueError, OverflowError) as exc:
            raise InputError(f"{source}: invalid YAML value: {' '.join(str(exc).split())[:160]}") from None
    if _ESCAPED_SURROGATE.search(text):
        reject_surrogates(document, source)
    if not isinstance(document, dict) or not str(document.get("kind", "")).endswith("List") \
            or not isinstance(document.get("items"), list):
        raise InputError(f"{source}: a snapshot must be a kind: List with items, as "
                         f"'kubectl get {SNAPSHOT_KINDS} -A -o json' prints")
    return document["items"]


_ESCAPED_SURROGATE_BYTES = re.compile(_ESCAPED_SURROGATE.pattern.encode())


def _plain_json_items(path: str) -> list | None:
    """The items of a well-formed JSON snapshot, parsed from the file's bytes; else ``None``.

    The common case (a JSON List as ``snapshot`` or kubectl writes it) skips decoding
    hundreds of megabytes to text first; orjson checks the UTF-8 itself. Anything else
    (YAML, stdin, invalid UTF-8 or JSON, escaped surrogates, not a List) returns ``None``
    and takes ``parse_snapshot``, which reads it or says what is wrong exactly as before.
    """
    if path == "-":
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw.lstrip().startswith(b"{") or _ESCAPED_SURROGATE_BYTES.search(raw):
        return None
    if orjson is None:
        return None
    try:
        document = orjson.loads(raw)         # not fastjson.loads: json.loads would take UTF-16 bytes too
    except (ValueError, RecursionError):     # orjson.JSONDecodeError is a ValueError
        return None
    if not isinstance(document, dict) or not str(document.get("kind", "")).endswith("List") \
            or not isinstance(document.get("items"), list):
        return None
    return document["items"]


def load_snapshot(path: str, instance_table: InstanceTable | None = None) -> ClusterState:
    """Read a snapshot file into a ClusterState (raises InputError with one clear line)."""
    with gc_paused():
        items = _plain_json_items(path)
        if items is None:
            items = parse_snapshot(read_text(path), path)
        state = state_from_objects(items, instance_table)
        del items
    freeze_survivors(collect=False)
    return state
