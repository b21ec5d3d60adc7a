"""Compact storage for the whole objects ClusterState keeps (workloads).

``ClusterState.workloads`` holds trimmed Deployments, ReplicaSets, StatefulSets and
DaemonSets because ``scale`` reviews and updates need their pod templates. As Python
dicts they take ~18 KB each; a cluster with 150,000 pods easily has 25,000 of them
(old ReplicaSets included), which alone would be ~450 MB. Here each object is kept as
zlib-compressed JSON (~1 KB) and decoded on access: reads are rare (one per scale
review or ownership walk) and every reader gets its own fresh dict, so nothing a
reader does can corrupt the cache.
"""

from __future__ import annotations

import zlib
from collections.abc import MutableMapping
from typing import Any, Iterator

from ..fastjson import dumps_compact, loads



class CompactObjects(MutableMapping):
    """A dict-like mapping whose values are stored as compressed JSON."""

    __slots__ = ("_blobs",)

    def __init__(self, items: Any = ()):
        self._blobs: dict = {}
        self.update(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._blobs[key] = zlib.compress(dumps_compact(value), 1)

    def __getitem__(self, key: Any) -> Any:
        return loads(zlib.decompress(self._blobs[key]))

    def get(self, key: Any, default: Any = None) -> Any:
        blob = self._blobs.get(key)
        return default if blob is None else loads(zlib.decompress(blob))

    def __delitem__(self, key: Any) -> None:
        del self._blobs[key]

    def __contains__(self, key: object) -> bool:
        return key in self._blobs

    def __iter__(self) -> Iterator:
        return iter(self._blobs)

    def __len__(self) -> int:
        return len(self._blobs)

    def stored_bytes(self) -> int:
        return sum(len(blob) for blob in self._blobs.values())

    def __repr__(self) -> str:
        return f"CompactObjects({len(self)} objects, {self.stored_bytes()} bytes compressed)"
