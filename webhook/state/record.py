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


NETWORK_INPUT_KINDS = ("Node", "DaemonSet", "ENIConfig")


def aws_objects(state, client_factory=None) -> list[dict]:
    """EC2Subnet / EC2Instance objects for the nodes in ``state`` (``snapshot --aws``); a failed
    lookup becomes one EC2Lookup object carrying the error, so ``check`` warns as the server would."""
    from .live_aws import boto3_ec2_factory, describe, what_to_describe

    try:
        subnets, instances = describe(lambda: what_to_describe(state), client_factory or boto3_ec2_factory)
    except Exception as exc:  # noqa: BLE001 - recorded as data: check warns SUBNET_DATA_UNAVAILABLE
        return [{"apiVersion": "aws.capacity-webhook.io/v1", "kind": "EC2Lookup", "metadata": {"name": "snapshot"},
                 "spec": {"error": f"{type(exc).__name__}: {exc}"}}]
    return instances + subnets


def record_snapshot(path: str | os.PathLike, *, api_client: Any = None, kubeconfig: str | None = None,
                    context: str | None = None, resources: Iterable[Resource] = LIVE_RESOURCES,
                    page_size: int = 500, aws: bool = False, aws_client_factory=None) -> int:
    """Write the live cluster to ``path`` as a ``kind: List``; returns the number of objects.

    Connects through ``api_client`` (e.g. ``holder.source.api_client``), else with
    ``kubeconfig``/``context`` (else in-cluster). ``aws=True`` also records EC2's answers
    about the nodes' subnets and ENIs (DescribeInstances, DescribeSubnets) as data objects. The file is
    written to a temporary name and renamed, so a failed recording never leaves a truncated snapshot behind.
    """
    if api_client is None:
        from .live_client import make_api_client
        api_client = make_api_client(kubeconfig, context)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write('{\n  "apiVersion": "v1",\n  "kind": "List",\n  "metadata": {"resourceVersion": ""},\n'
                      '  "items": [')
            network_state = None
            if aws:
                from ..engine.model import ClusterState
                network_state = ClusterState()
            objects = iter_cluster_objects(api_client, resources, page_size)
            for obj in objects:
                out.write(",\n    " if count else "\n    ")
                out.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
                count += 1
                if network_state is not None and obj.get("kind") in NETWORK_INPUT_KINDS:
                    network_state.apply_or_skip(obj)
            for obj in aws_objects(network_state, aws_client_factory) if network_state is not None else ():
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
