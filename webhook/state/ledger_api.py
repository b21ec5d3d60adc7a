"""The shared reservation ledger, kept in the cluster: one ``CapacityLedger`` object.

Every replica and every gunicorn worker of the webhook reads and writes the same object
(``capacity-webhook.io/v1alpha1``, kind ``CapacityLedger``, in the webhook's namespace),
through the API server, so they all see the same promises. Writes are compare-and-swap
on ``metadata.resourceVersion``: a ``PUT`` that names the version the decision was made
against fails with ``409 Conflict`` if anybody wrote since, and the writer re-reads and
decides again.

Why this is linearizable: every promise lives in one object, and the API server applies
an update of one object in etcd as a transaction that compares the object's
``mod_revision`` with the ``resourceVersion`` sent. Successful commits therefore form one
total order (etcd's revision order), and each was decided against the state left by the
commit just before it: no two deciders can both spend the same free slots, whichever
replica or worker they run in.

One object (not one per workload) on purpose: a decision reads every promise on the nodes
it places on, so per-workload objects would let two writers each create their own object
after reading the same free room. The object stays small: a promise is removed once its
pods appear (each reader computes that from its own watch), when it expires, and when the
same workload is decided again; every commit, and a background pass every few seconds,
drop what is stale.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Mapping

from ..engine.model import Reservation
from ..engine.requests import Resources
from .ledger import LedgerConflict, LedgerUnavailable
from .live_lister import api_exception_type, status_of

log = logging.getLogger("capacity_webhook.ledger")

GROUP, VERSION, KIND, PLURAL = "capacity-webhook.io", "v1alpha1", "CapacityLedger", "capacityledgers"
DEFAULT_NAME = "capacity-ledger"
MAX_ENTRIES = 2000          # ~300 bytes each: far below etcd's 1.5 MiB object limit
#: What the ledger's Role must grant on its own object, and nothing more (the chart's Role).
RBAC_VERBS = ("get", "create", "update")


def in_cluster_namespace() -> str | None:
    """The pod's namespace: $POD_NAMESPACE (downward API), else the service account's."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace", encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _from_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _counts(mapping: Any) -> dict[str, int]:
    if not isinstance(mapping, Mapping):
        raise ValueError("not a map of node -> count")
    out = {}
    for node, count in mapping.items():
        if not isinstance(node, str) or isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"bad count {node!r}: {count!r}")
        out[node] = count
    return out


def _wall_expiry(entry: Reservation) -> float:
    """A ledger entry's wall-clock expiry. Entries always carry one (``from_entry``,
    ``ClusterLedger._to_wall``); one without would get ``_to_wall``'s default hour."""
    return entry.expires_at if entry.expires_at is not None else time.time() + 3600.0


def to_entry(held: Reservation, expires_wall: float, by: str) -> dict:
    kind, namespace, name = held.workload
    requests = held.requests
    return {"workload": {"kind": kind, "namespace": namespace, "name": name},
            "nodes": dict(sorted(held.per_node.items())), "base": dict(sorted(held.base.items())),
            "baseTotal": held.base_total,
            "requests": {"cpuMillis": requests.cpu, "memoryBytes": requests.memory,
                         "ephemeralBytes": requests.ephemeral},
            "usesIP": held.uses_ip, "branchENI": held.branch_eni, "expiresAt": _iso(expires_wall), "uid": held.uid,
            "by": by}


def from_entry(entry: Any) -> tuple[tuple, Reservation]:
    """One ledger entry as a Reservation whose ``expires_at`` is wall-clock seconds (ValueError if bad)."""
    if not isinstance(entry, Mapping):
        raise ValueError("entry is not an object")
    workload = entry.get("workload") or {}
    key = (workload.get("kind"), workload.get("namespace"), workload.get("name"))
    if not all(isinstance(part, str) and part for part in key):
        raise ValueError(f"bad workload {workload!r}")
    requests = entry.get("requests") or {}
    values = [requests.get(k, 0) for k in ("cpuMillis", "memoryBytes", "ephemeralBytes")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValueError(f"bad requests {requests!r}")
    base_total = entry.get("baseTotal", 0)
    if not isinstance(base_total, int) or isinstance(base_total, bool):
        raise ValueError(f"bad baseTotal {base_total!r}")
    expires = _from_iso(str(entry.get("expiresAt")))
    held = Reservation(key, _counts(entry.get("nodes")), Resources(*values), bool(entry.get("usesIP", True)),
                       expires, _counts(entry.get("base") or {}), base_total, str(entry.get("uid") or ""),
                       entry.get("branchENI") is True)
    return key, held


class ClusterLedger:
    """The ``Ledger`` kept in a ``CapacityLedger`` object (see the module docstring).

    ``holder.state.reservations`` mirrors the last version read or written, with expiry
    moved to the monotonic clock the handler uses; ``version`` is that resourceVersion.
    A process-local lock serializes this process's commits: its own threads then never
    conflict with each other over the network, only with other processes.
    """

    shared = True

    def __init__(self, holder, api_client: Any, namespace: str, name: str = DEFAULT_NAME,
                 refresh_interval: float = 2.0, identity: str | None = None):
        self.holder = holder
        self.api_client = api_client
        self.namespace = namespace
        self.name = name
        self.refresh_interval = refresh_interval
        self.identity = identity or f"{os.environ.get('POD_NAME') or socket.gethostname()}/{os.getpid()}"
        self._entries: dict[tuple, Reservation] = {}       # wall-clock expiry
        self._version: str | None = None
        self._known = False                                # read at least once
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.commits = self.conflicts = self.failures = 0

    # ---- Ledger ----------------------------------------------------------------------
    @property
    def version(self) -> object:
        return self._version if self._known else ("unread",)

    def refresh(self, deadline: float) -> None:
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise LedgerUnavailable("ledger busy beyond the review's time budget")
        try:
            self._read(deadline)
        finally:
            self._lock.release()

    def commit(self, based_on: object, workload: tuple, held: Reservation | None, deadline: float) -> None:
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise LedgerUnavailable("ledger busy beyond the review's time budget")
        try:
            if not self._known:
                self._read(deadline)
                raise LedgerConflict("ledger read for the first time", reread=False)
            if based_on != self._version:
                raise LedgerConflict(f"ledger moved from {based_on} to {self._version}", reread=False)
            entries = self._live_entries(skip=workload)
            if held is not None:
                if len(entries) >= MAX_ENTRIES:
                    raise LedgerUnavailable(f"ledger holds {len(entries)} promises, the most it keeps")
                entries[workload] = replace(held, expires_at=self._to_wall(held.expires_at))
            self._write(entries, deadline)
        finally:
            self._lock.release()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    # ---- background refresh and garbage collection ------------------------------------
    def start(self) -> "ClusterLedger":
        self._thread = threading.Thread(target=self._run, name="ledger", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_interval * (1.0 if self._known else 0.25)):
            try:
                self.collect(time.monotonic() + max(1.0, self.refresh_interval))
            except (LedgerConflict, LedgerUnavailable) as exc:
                log.debug("ledger refresh: %s", exc)
            except Exception:  # noqa: BLE001 - the refresher must survive anything
                log.exception("ledger refresh failed")

    def collect(self, deadline: float) -> int:
        """Re-read the ledger and drop expired or fulfilled promises; returns how many went."""
        self.refresh(deadline)
        with self._lock:
            live = self._live_entries()
            dropped = len(self._entries) - len(live)
            if dropped:
                self._write(live, deadline)
            return dropped

    # ---- I/O -------------------------------------------------------------------------
    def _api(self):
        from kubernetes import client
        return client.CustomObjectsApi(self.api_client)

    def _timeout(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0.01:
            raise LedgerUnavailable("no time left in the review's budget for the ledger")
        return left

    def _call(self, what: str, deadline: float, method: str, *args: Any, **kw: Any) -> dict:
        timeout = self._timeout(deadline)
        try:
            resp = getattr(self._api(), method)(GROUP, VERSION, self.namespace, PLURAL, *args,
                                                _preload_content=False, _request_timeout=(timeout, timeout), **kw)
            try:
                return json.loads(resp.read())
            finally:
                resp.release_conn()
        except api_exception_type() as exc:
            code = status_of(exc)
            if code == 409:
                self.conflicts += 1
                raise LedgerConflict(f"{what}: 409 Conflict") from None
            if code == 404:
                raise _NotFound(_not_found_names_object(exc)) from None
            self._failed(f"{what}: HTTP {code} {getattr(exc, 'reason', '')}".strip())
        except (OSError, ValueError) as exc:
            self._failed(f"{what}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - urllib3 timeouts and protocol errors
            self._failed(f"{what}: {type(exc).__name__}: {exc}")
        raise AssertionError("unreachable")

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        raise LedgerUnavailable(message)

    def _read(self, deadline: float) -> None:
        try:
            obj = self._call("read", deadline, "get_namespaced_custom_object", self.name)
        except _NotFound as exc:
            if not exc.object_missing:
                self._failed(f"the {KIND} CRD ({PLURAL}.{GROUP}) is not installed")
            self._install({}, None)
            return
        self._install(self._parse(obj), str((obj.get("metadata") or {}).get("resourceVersion") or ""))

    def _write(self, entries: dict[tuple, Reservation], deadline: float) -> None:
        spec = {"reservations": [to_entry(r, _wall_expiry(r), self.identity) for _, r in sorted(entries.items())]}
        body: dict = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                      "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        try:
            if self._version is None:
                obj = self._call("create", deadline, "create_namespaced_custom_object", body)
            else:
                body["metadata"]["resourceVersion"] = self._version
                obj = self._call("write", deadline, "replace_namespaced_custom_object", self.name, body)
        except _NotFound as exc:
            if exc.object_missing:      # deleted under us: the next read starts from empty
                self._known = False
                raise LedgerConflict("ledger object deleted") from None
            self._failed(f"the {KIND} CRD ({PLURAL}.{GROUP}) is not installed")
        self.commits += 1
        self.last_error = None
        self._install(self._parse(obj), str((obj.get("metadata") or {}).get("resourceVersion") or ""))

    def _parse(self, obj: Mapping) -> dict[tuple, Reservation]:
        entries: dict[tuple, Reservation] = {}
        for raw in ((obj.get("spec") or {}).get("reservations") or []):
            try:
                key, held = from_entry(raw)
            except (ValueError, TypeError, AttributeError) as exc:
                log.warning("ledger entry skipped: %s", exc)
                continue
            entries[key] = held
        return entries

    def _install(self, entries: dict[tuple, Reservation], version: str | None) -> None:
        """Make ``entries`` (wall-clock expiry) the copy the engine reads, with its version."""
        offset = time.monotonic() - time.time()
        mirror = {key: replace(r, expires_at=_wall_expiry(r) + offset) for key, r in entries.items()}
        with self.holder.lock:
            self._entries, self._version, self._known = entries, version, True
            self.holder.state.reservations = mirror

    def _live_entries(self, skip: tuple | None = None) -> dict[tuple, Reservation]:
        """The current entries minus expired ones, fulfilled ones (by this process's watch) and ``skip``."""
        now = time.time()
        with self.holder.lock:
            state = self.holder.state
            return {key: r for key, r in self._entries.items()
                    if key != skip and _wall_expiry(r) > now and state.held(r)}

    @staticmethod
    def _to_wall(monotonic_seconds: float | None) -> float:
        if monotonic_seconds is None:
            return time.time() + 3600.0
        return monotonic_seconds - time.monotonic() + time.time()


class _NotFound(Exception):
    def __init__(self, object_missing: bool):
        super().__init__("404")
        self.object_missing = object_missing


def _not_found_names_object(exc: BaseException) -> bool:
    """A 404 for a missing object names it in ``details``; a missing CRD's 404 does not."""
    try:
        status = json.loads(getattr(exc, "body", None) or "{}")
    except (TypeError, ValueError):
        return False
    return bool((status.get("details") or {}).get("name"))
