"""The live state source: list, then watch, every collection the engine reads.

``live_holder()`` connects with the in-cluster service account, else ``--kubeconfig`` /
``--context``, through the official ``kubernetes`` client, and returns a
:class:`~webhook.state.holder.StateHolder` fed by a :class:`LiveSource`:

* one thread per collection (Nodes first, then Pods, Namespaces, DaemonSets,
  ReplicaSets, Deployments, StatefulSets, StorageClasses, PVs, PVCs, CSINodes,
  VolumeAttachments, LimitRanges, and Karpenter NodePools when the CRD exists) lists in
  pages of ``page_size``, then watches from the list's ``resourceVersion`` with
  ``allowWatchBookmarks`` and a server-side ``timeoutSeconds`` (50-75 s, jittered) below
  the client's read timeout (90 s): a quiet collection sends no bytes, so the server
  must end the watch cleanly before the client would call the silence a failure and
  mark the cache broken;
* events go into the holder's ClusterState under ``holder.lock`` (ADDED/MODIFIED ->
  ``apply``, DELETED -> ``remove``), which keeps per-node aggregates incrementally;
* 410 Gone (an ERROR event or an HTTP 410) relists that collection and reconciles:
  objects that vanished while we were away are removed (each collection keeps its key set);
* a failed list or watch marks the holder broken (``stale_for()`` grows) and is retried
  with exponential backoff and full jitter; once every watch is back, it is healthy again;
* ``holder.ready`` turns true only after every collection's first full list.

Raw JSON all the way (``_preload_content=False``, see ``live_lister``): the client's
model classes would cost more than the rest of the cache together. Workload objects are
stored compressed (``live_store``) and unknown instance types are looked up in the
background (``live_instances``). This module is the list-and-watch loop only: the client
setup is ``live_client``, the collector pauses during big lists are ``gc_pause``.
"""

from __future__ import annotations

import gc
import logging
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..engine.model import INSTANCE_TYPE_LABELS, ClusterState
from .gc_pause import freeze_survivors, gc_paused as _gc_paused
from .holder import StateHolder
from .live_client import LiveSourceError, host_of as _host_of, make_api_client
from .live_instances import InstanceLookup, region_of
from .live_lister import (LIVE_RESOURCES, RawLister, Resource, WatchError, WatchExpired, abort_response,
                          status_of, watch_events)
from .live_store import CompactObjects

if TYPE_CHECKING:
    from .live_aws import SubnetRefresher

log = logging.getLogger("capacity_webhook.live")

FATAL_STATUSES = (401, 403, 404)   # a required collection we may not read: retrying will not help soon


@dataclass
class CollectionStatus:
    """What one collection's thread knows and has been through (for metrics and tests)."""

    resource: Resource
    keys: set = field(default_factory=set)
    resource_version: str = ""
    listed: bool = False
    healthy: bool = True
    absent: bool = False            # optional CRD not served (or not readable)
    lists: int = 0
    relists: int = 0
    watches: int = 0
    failures: int = 0
    events: int = 0
    last_error: str | None = None
    fatal_error: str | None = None


class LiveSource:
    """Keeps a StateHolder's ClusterState in step with the cluster (see module docstring)."""

    def __init__(self, holder: StateHolder, api_client: Any, resources: Iterable[Resource] = LIVE_RESOURCES,
                 instance_lookup: InstanceLookup | None = None, page_size: int = 500,
                 watch_timeout: tuple[int, int] = (50, 75), read_timeout: float = 90.0,
                 backoff_base: float = 0.5, backoff_max: float = 30.0, optional_recheck: float = 300.0,
                 compact_workloads: bool = True, tune_gc: bool = True, rng: random.Random | None = None):
        self.holder = holder
        self.api_client = api_client
        self.lister = RawLister(api_client)
        self.resources = tuple(resources)
        self.instance_lookup = instance_lookup
        self.aws_refresher: SubnetRefresher | None = None     # set by live_holder when AWS lookups are on
        self.page_size = page_size
        if max(watch_timeout) >= read_timeout:
            raise ValueError(f"watch_timeout {watch_timeout} must end before read_timeout {read_timeout}: a quiet "
                             "watch would otherwise read-time-out and be counted as broken")
        self.watch_timeout = watch_timeout
        self.read_timeout = read_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.optional_recheck = optional_recheck
        self.rng = rng or random.Random()
        self.tune_gc = tune_gc
        self.status: dict[str, CollectionStatus] = {r.kind: CollectionStatus(r) for r in self.resources}
        self.backoff_log: list[tuple[str, float]] = []      # (kind, delay) of recent retries
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._nodes_listed = threading.Event()
        self._health_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._responses: dict[str, Any] = {}
        if compact_workloads and not isinstance(holder.state.workloads, CompactObjects):
            holder.state.workloads = CompactObjects(holder.state.workloads)
        if instance_lookup is not None:
            instance_lookup.attach(holder)

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> "LiveSource":
        if not any(r.kind == "Node" for r in self.resources):
            self._nodes_listed.set()
        for res in self.resources:
            thread = threading.Thread(target=self._run, args=(res,), name=f"watch-{res.kind}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for resp in list(self._responses.values()):
            abort_response(resp)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.instance_lookup is not None:
            self.instance_lookup.stop()
        if self.aws_refresher is not None:
            self.aws_refresher.stop()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None, fail_fast: bool = False) -> bool:
        """Wait for every collection's first list; with ``fail_fast``, raise on a fatal error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if fail_fast:
                fatal = [f"{s.resource.kind}: {s.fatal_error}" for s in self.status.values() if s.fatal_error]
                if fatal:
                    raise LiveSourceError(f"cannot list {_host_of(self.api_client)}: {'; '.join(fatal)}")
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def errors(self) -> list[str]:
        return [f"{s.resource.kind}: {s.last_error}" for s in self.status.values() if s.last_error and not s.healthy]

    # ---- one collection ----------------------------------------------------------------
    def _run(self, res: Resource) -> None:
        status = self.status[res.kind]
        if res.kind != "Node":
            while not self._nodes_listed.wait(0.2):
                if self._stop.is_set():
                    return
        attempt = 0
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list(status)
                    need_list = False
                    self._set_healthy(status, True)
                if status.absent:
                    if self._stop.wait(self.optional_recheck):
                        return
                    need_list = True
                    continue
                self._watch(status)          # returns when the server ends the watch (timeoutSeconds)
                attempt = 0
            except WatchExpired as exc:
                log.info("%s: %s; relisting", res.kind, exc)
                status.relists += 1
                need_list = True
                attempt = 0
            except Exception as exc:  # noqa: BLE001 - any failure: mark stale, back off, retry
                if self._stop.is_set():
                    return
                code = status_of(exc)
                if res.optional and code in (403, 404):
                    self._mark_absent(status)
                    need_list = False            # wait optional_recheck, then look again
                    continue
                status.failures += 1
                status.last_error = f"{type(exc).__name__}: {_short(exc)}"
                if code in FATAL_STATUSES and not status.listed:
                    status.fatal_error = f"HTTP {code} {getattr(exc, 'reason', '')}".strip()
                self._set_healthy(status, False)
                attempt += 1
                delay = self._backoff(attempt)
                self.backoff_log.append((res.kind, delay))
                del self.backoff_log[:-200]
                log.warning("%s %s failed (%s); retrying in %.1fs", res.kind, "watch" if status.listed else "list",
                            status.last_error, delay)
                if self._stop.wait(delay):
                    return

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: base * 2^(attempt-1), capped, times U(0.5, 1)."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** min(attempt - 1, 30)))
        return ceiling * (0.5 + 0.5 * self.rng.random())

    def _list(self, status: CollectionStatus) -> None:
        res = status.resource
        state = self.holder.state
        for _restart in range(5):
            seen: set = set()
            try:
                version = ""
                with _gc_paused(self.tune_gc):
                    for items, page_version, _more in self.lister.list_pages(res, self.page_size):
                        version = page_version      # the list's resourceVersion is its last page's
                        if self._stop.is_set():
                            return
                        with self.holder.lock:
                            for obj in items:
                                seen.add(self._apply(res, obj))
                    if self.tune_gc and not status.listed:
                        # The first list, at start-up: its records are frozen before the collector
                        # runs again, else its first collection would walk all of them (every
                        # allocation of the pause is still in the youngest generation).
                        gc.freeze()
                break
            except WatchExpired:
                continue                     # continue token expired mid-list: start over
        else:
            raise WatchExpired(f"{res.kind} list kept expiring")
        vanished = status.keys - seen
        if vanished:
            with self.holder.lock:
                for namespace, name in vanished:
                    state.remove(res.kind, namespace, name)
        status.keys = seen
        status.resource_version = version
        status.lists += 1
        status.absent = False
        status.fatal_error = None
        self._listed(status)

    def _mark_absent(self, status: CollectionStatus) -> None:
        res = status.resource
        if status.keys:
            with self.holder.lock:
                for namespace, name in status.keys:
                    self.holder.state.remove(res.kind, namespace, name)
            status.keys = set()
        status.absent = True
        self._set_healthy(status, True)
        self._listed(status)

    def _listed(self, status: CollectionStatus) -> None:
        if status.listed:
            return
        status.listed = True
        if status.resource.kind == "Node":
            self._nodes_listed.set()
        if all(s.listed for s in self.status.values()) and not self._ready.is_set():
            if self.tune_gc:
                # The cache is built and long-lived: move it out of the GC's reach, so later
                # collections (triggered by watch traffic) do not walk 150,000 pod records.
                freeze_survivors()
            state = self.holder.state
            self.holder.mark_ready(f"live {_host_of(self.api_client)}: {len(state.nodes)} nodes, "
                                   f"{len(state.pods)} pods")
            self._ready.set()

    def _watch(self, status: CollectionStatus) -> None:
        res = status.resource
        lo, hi = self.watch_timeout
        timeout = self.rng.randint(int(lo), int(max(lo, hi)))
        resp = self.lister.watch(res, status.resource_version, timeout, max(self.read_timeout, 1.0))
        self._responses[res.kind] = resp
        if self._stop.is_set():
            # stop() may have aborted the registered responses just before this one was
            # registered: it would never be told, and stop()'s join would wait it out.
            abort_response(resp)
        status.watches += 1
        self._set_healthy(status, True)
        holder, keys = self.holder, status.keys
        started, events_before = time.monotonic(), status.events
        try:
            for batch in watch_events(resp):
                if self._stop.is_set():
                    return
                version = None
                with holder.lock:
                    for event in batch:
                        kind = event.get("type")
                        obj = event.get("object") or {}
                        meta = obj.get("metadata") or {}
                        version = meta.get("resourceVersion") or version
                        if kind == "ADDED" or kind == "MODIFIED":
                            obj.setdefault("kind", res.kind)
                            keys.add(self._apply(res, obj))
                        elif kind == "DELETED":
                            key = (meta.get("namespace"), meta.get("name", ""))
                            keys.discard(key)
                            holder.state.remove(res.kind, key[0], key[1])
                        elif kind != "BOOKMARK":
                            continue
                status.events += len(batch)
                if version:
                    status.resource_version = version
        finally:
            self._responses.pop(res.kind, None)
            resp.release_conn()
        if self._stop.is_set():
            return
        # A clean end is normally the server's timeoutSeconds; one that ends at once with
        # nothing in it is a server that will not watch: back off instead of spinning.
        if status.events == events_before and time.monotonic() - started < 1.0:
            raise WatchError(f"{res.kind} watch closed at once")

    # ---- applying ------------------------------------------------------------------------
    def _apply(self, res: Resource, obj: dict) -> tuple:
        """Apply one object (caller holds ``holder.lock``); returns its key."""
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        namespace = meta.get("namespace")
        if namespace.__class__ is str:
            namespace = meta["namespace"] = sys.intern(namespace)   # one copy per namespace, not per pod
        key = (namespace, meta.get("name", ""))
        state = self.holder.state
        if res.kind != "Pod":
            meta.pop("managedFields", None)      # never read, often the biggest part
        note = state.apply_or_skip(obj, typed=True)     # one unreadable object must not stop the watch
        if note:
            log.warning("object skipped: %s", note)
        if res.kind == "Node" and self.instance_lookup is not None and not note:
            raw_labels = meta.get("labels")
            labels = raw_labels if isinstance(raw_labels, dict) else {}
            for label in INSTANCE_TYPE_LABELS:
                instance_type = labels.get(label)
                if instance_type:
                    if instance_type not in state.instance_table:
                        self.instance_lookup.request(instance_type, region_of(labels))
                    break
        return key

    def _set_healthy(self, status: CollectionStatus, healthy: bool) -> None:
        with self._health_lock:
            status.healthy = healthy
            if not healthy:
                self.holder.mark_broken()
            elif all(s.healthy for s in self.status.values()):
                self.holder.mark_healthy()


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "..."


def live_holder(kubeconfig: str | None = None, context: str | None = None, api_client: Any = None,
                instance_lookup: InstanceLookup | bool | None = None, wait: bool = False,
                wait_timeout: float = 300.0, **source_options: Any) -> StateHolder:
    """A StateHolder kept current by a started :class:`LiveSource`.

    ``instance_lookup``: ``None`` or ``True`` looks unknown instance types up with boto3
    (default credential chain), ``False`` disables lookups, an ``InstanceLookup`` is used as
    given. ``wait=True`` (one-shot commands) blocks until the first full list and raises
    :class:`LiveSourceError` when the cluster cannot be read. The source is
    ``holder.source``; ``holder.stop()`` ends it.
    """
    if api_client is None:
        api_client = make_api_client(kubeconfig, context)
    lookup: InstanceLookup | None
    if instance_lookup is None or instance_lookup is True:
        lookup = InstanceLookup()
    elif instance_lookup is False:
        lookup = None
    else:
        lookup = instance_lookup
    holder = StateHolder(ClusterState())
    holder.description = f"live {_host_of(api_client)} (listing)"
    source = LiveSource(holder, api_client, instance_lookup=lookup, **source_options)
    holder.source = source
    source.start()
    # Subnet room for the server: DescribeInstances/DescribeSubnets every minute, in the background.
    # One-shot commands (wait=True) do not call AWS: 'snapshot --aws' records the figures for them.
    from .live_aws import SubnetRefresher, enabled_by_env
    refresher = SubnetRefresher().attach(holder) if enabled_by_env() and not wait else None
    source.aws_refresher = refresher
    if refresher is not None:
        refresher.start()
    if wait:
        try:
            if not source.wait_ready(wait_timeout, fail_fast=True):
                raise LiveSourceError(f"{_host_of(api_client)} not listed within {wait_timeout:.0f}s: "
                                      f"{'; '.join(source.errors()) or 'no answer'}")
        except LiveSourceError:
            source.stop(timeout=1.0)
            raise
        if lookup is not None:
            lookup.wait_idle(timeout=30.0)
    return holder


__all__ = ["CollectionStatus", "LiveSource", "LiveSourceError", "live_holder", "make_api_client"]
