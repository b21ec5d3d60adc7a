"""``capacity-webhook snapshot``: record the live cluster in the ``check --cluster`` format.

The snapshot holds the raw objects as the API server lists them (fresh lists with the
same raw-JSON lister the live cache uses, not the cache's slim records), written as one
``kind: List`` the way ``kubectl get nodes,pods,... -A -o json`` prints it: items carry
``kind``/``apiVersion``, ``metadata.managedFields`` is left out (kubectl hides it too),
terminal pods are skipped like the live cache skips them. Items are streamed to the
file one at a time, so recording a 150,000-pod cluster needs one page in memory.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .live_lister import LIVE_RESOURCES, RawLister, Resource


def iter_cluster_objects(api_client: Any, resources: Iterable[Resource] = LIVE_RESOURCES,
                         page_size: int = 500) -> Iterable[dict]:
    """Every object of ``resources``, raw, page by page (optional CRDs that are absent are skipped)."""
    from .live_lister import WatchExpired, api_exception_type, object_key, status_of

    lister = RawLister(api_client)
    for res in resources:
        written: set = set()
        for _attempt in range(5):
            try:
                for page, _version, _more in lister.list_pages(res, page_size):
                    for item in page:
                        key = object_key(item)
                        if key in written:       # a restarted list repeats what was written
                            continue
                        written.add(key)
                        (item.get("metadata") or {}).pop("managedFields", None)
                        yield item
                break
            except WatchExpired:
                continue                          # continue token expired: list again, skip the written
            except api_exception_type() as exc:
                if res.optional and status_of(exc) in (403, 404):
                    break
                raise
        else:
            raise WatchExpired(f"{res.kind}: the list kept expiring")


def record_snapshot(path: str | os.PathLike, *, api_client: Any = None, kubeconfig: str | None = None,
                    context: str | None = None, resources: Iterable[Resource] = LIVE_RESOURCES,
                    page_size: int = 500) -> int:
    """Write the live cluster to ``path`` as a ``kind: List``; returns the number of objects.

    Connects through ``api_client`` (e.g. ``holder.source.api_client``), else with
    ``kubeconfig``/``context`` (else in-cluster). The file is written to a temporary name
    and renamed, so a failed recording never leaves a truncated snapshot behind.
    """
    if api_client is None:
        from .live import make_api_client
        api_client = make_api_client(kubeconfig, context)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write('{\n  "apiVersion": "v1",\n  "kind": "List",\n  "metadata": {"resourceVersion": ""},\n'
                      '  "items": [')
            for obj in iter_cluster_objects(api_client, resources, page_size):
                out.write(",\n    " if count else "\n    ")
                out.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
                count += 1
            out.write("\n  ]\n}\n" if count else "]\n}\n")
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return count
