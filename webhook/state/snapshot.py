"""The snapshot state source: a ``kind: List`` file as ``kubectl get ... -o json`` prints it.

The same ``ClusterState.apply`` that a live watch calls is fed every item, so every
engine test written against snapshots holds for the live cache too.

A snapshot of a 5,000-node cluster is hundreds of megabytes: it is parsed with orjson
(``webhook.fastjson``), the cyclic GC is paused while the parsed document is turned into
the state, and the finished state is frozen out of the GC's reach (as the live source
does), so the decisions that follow do not walk 150,000 pod records at every collection.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

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


# What ``record_snapshot`` writes around its items, which it writes one per line as compact JSON.
RECORDED_HEAD = b'{\n  "apiVersion": "v1",\n  "kind": "List",\n  "metadata": {"resourceVersion": ""},\n  "items": [\n'
RECORDED_TAIL = b"\n  ]\n}\n"


class _NotRecordedLayout(Exception):
    """A line is not ``    <one compact JSON object>,``: the file is read as a whole instead."""


def _json_bytes(path: str) -> bytes | None:
    """The file's bytes when it may be a JSON snapshot orjson reads exactly; else ``None``.

    Skips decoding hundreds of megabytes to text (orjson checks the UTF-8 itself). YAML,
    stdin and unreadable files return ``None`` and take ``parse_snapshot``, which reads
    them or says what is wrong exactly as before. No scan for surrogate escapes is needed
    here: orjson refuses a lone one (that document then takes ``parse_snapshot``, which
    names the problem) and decodes a valid pair as ``json`` does.
    """
    if path == "-" or orjson is None:
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw.lstrip().startswith(b"{"):
        return None
    return raw


def _recorded_items(raw: bytes) -> Iterator[dict]:
    """The items of a snapshot in ``record_snapshot``'s layout, parsed one line at a time.

    Each item is parsed right before it is applied and dropped right after, instead of
    first parsing the whole document (gigabytes of objects for a 5,000-node cluster) and
    then walking it again: the same values, a fraction of the memory, and the item is
    still in the CPU's cache when it is applied. A JSON string never holds a raw newline,
    so a line is exactly one item; anything else raises ``_NotRecordedLayout``.
    """
    assert orjson is not None
    view = memoryview(raw)
    pos, end = len(RECORDED_HEAD), len(raw) - len(RECORDED_TAIL)
    while pos < end:
        newline = raw.find(b"\n", pos, end)
        last = newline == -1
        stop = end if last else newline - 1                  # the comma between items left out
        if raw[pos:pos + 4] != b"    " or (not last and raw[newline - 1] != 0x2C):
            raise _NotRecordedLayout
        try:
            item = orjson.loads(view[pos + 4:stop])
        except (ValueError, RecursionError):
            raise _NotRecordedLayout from None
        if not isinstance(item, dict):
            raise _NotRecordedLayout
        yield item
        pos = end if last else newline + 1


def _document_items(raw: bytes) -> list | None:
    """The items of a JSON List read as one document (None: let ``parse_snapshot`` say why not)."""
    assert orjson is not None
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
        state = None
        raw = _json_bytes(path)
        if raw is not None and raw.startswith(RECORDED_HEAD) and raw.endswith(RECORDED_TAIL) \
                and len(raw) >= len(RECORDED_HEAD) + len(RECORDED_TAIL):
            try:
                state = state_from_objects(_recorded_items(raw), instance_table)
            except _NotRecordedLayout:
                state = None                 # the partial state is dropped: read the whole document
        if state is None:
            items = _document_items(raw) if raw is not None else None
            del raw
            if items is None:
                items = parse_snapshot(read_text(path), path)
            state = state_from_objects(items, instance_table)
            del items
        # Frozen before the collector is enabled again: the first collection after a pause
        # would otherwise walk every object the state was built of (seconds for 150,000 pods).
        freeze_survivors(collect=False)
    return state
