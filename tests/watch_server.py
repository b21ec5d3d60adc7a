"""A loopback fake Kubernetes API server speaking the real list/watch protocol.

Plain HTTP on 127.0.0.1 (threaded). What it implements, as kube-apiserver does:

* ``GET <collection>`` lists: a ``<Kind>List`` with ``metadata.resourceVersion``; items
  WITHOUT ``kind``/``apiVersion`` (the real server leaves them out); ``limit`` +
  ``continue`` pagination over a consistent snapshot; ``fieldSelector`` with ``=``,
  ``==`` and ``!=`` on dotted paths (``status.phase!=Succeeded,status.phase!=Failed``).
* ``?watch=true&resourceVersion=N``: a chunked stream of ``{"type": ..., "object": ...}``
  lines for every change after N, then live changes, until ``timeoutSeconds``;
  ``BOOKMARK`` events when ``allowWatchBookmarks`` is set; objects that stop (start)
  matching the field selector arrive as ``DELETED`` (``ADDED``).
* 410 Gone: a watch from a resourceVersion older than the last :meth:`compact` gets an
  ``ERROR`` event whose object is a ``Status`` with code 410 (or an HTTP 410 with
  ``http_410=True``); :meth:`expire_watches` sends that to the open watches, as the
  server does when its watch cache moves on; a ``continue`` token older than the
  compaction is answered with HTTP 410 too.
* Failures on demand: :meth:`break_watches` cuts open watch connections mid-stream;
  ``unavailable = True`` drops every request without an answer until reset.

Tests drive it with :meth:`add`, :meth:`modify`, :meth:`delete` (objects as
``tests.synthetic`` builds them) and read :attr:`requests` to see what the client did.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, urlparse

# path -> (kind, apiVersion, namespaced)
COLLECTIONS: dict[str, tuple[str, str, bool]] = {
    "/api/v1/nodes": ("Node", "v1", False),
    "/api/v1/pods": ("Pod", "v1", True),
    "/api/v1/namespaces": ("Namespace", "v1", False),
    "/api/v1/persistentvolumes": ("PersistentVolume", "v1", False),
    "/api/v1/persistentvolumeclaims": ("PersistentVolumeClaim", "v1", True),
    "/api/v1/limitranges": ("LimitRange", "v1", True),
    "/apis/apps/v1/daemonsets": ("DaemonSet", "apps/v1", True),
    "/apis/apps/v1/replicasets": ("ReplicaSet", "apps/v1", True),
    "/apis/apps/v1/deployments": ("Deployment", "apps/v1", True),
    "/apis/apps/v1/statefulsets": ("StatefulSet", "apps/v1", True),
    "/apis/storage.k8s.io/v1/storageclasses": ("StorageClass", "storage.k8s.io/v1", False),
    "/apis/storage.k8s.io/v1/csinodes": ("CSINode", "storage.k8s.io/v1", False),
    "/apis/storage.k8s.io/v1/volumeattachments": ("VolumeAttachment", "storage.k8s.io/v1", False),
    "/apis/karpenter.sh/v1/nodepools": ("NodePool", "karpenter.sh/v1", False),
    "/apis/karpenter.k8s.aws/v1/ec2nodeclasses": ("EC2NodeClass", "karpenter.k8s.aws/v1", False),
    "/api/v1/serviceaccounts": ("ServiceAccount", "v1", True),
}
# Collections answered 404 unless the FakeApiServer is asked to serve them (CRDs, optional grants).
OPTIONAL = {"/apis/karpenter.sh/v1/nodepools": "serve_nodepools",
            "/apis/karpenter.k8s.aws/v1/ec2nodeclasses": "serve_nodepools",
            "/api/v1/serviceaccounts": "serve_service_accounts"}
KIND_PATH = {kind: path for path, (kind, _, _) in COLLECTIONS.items()}


def _dig(obj: Mapping, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def selector_matches(selector: str | None, obj: Mapping) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            path, value = term.split("!=", 1)
            if _dig(obj, path) == value:
                return False
        else:
            path, value = term.replace("==", "=").split("=", 1)
            if _dig(obj, path) != value:
                return False
    return True


def status_410(message: str = "too old resource version") -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Expired", "code": 410}


class _Watch:
    def __init__(self, handler: "_Handler"):
        self.handler = handler
        self.expire = False
        self.kill = False


class FakeApiServer:
    """See the module docstring. Use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(self, objects: Iterable[Mapping] = (), http_410: bool = False, bookmark_interval: float = 0.5,
                 serve_nodepools: bool = False, serve_service_accounts: bool = False):
        self.cond = threading.Condition()
        self.rv = itertools.count(100)
        self.current_rv = 99
        self.store: dict[str, dict] = {path: {} for path in COLLECTIONS}
        self.events: list[tuple] = []                 # (rv, path, type, obj, old)
        self.compacted_rv = 0
        self.http_410 = http_410
        self.bookmark_interval = bookmark_interval
        self.serve_nodepools = serve_nodepools                  # Karpenter's NodePools and EC2NodeClasses
        self.serve_service_accounts = serve_service_accounts
        self.unavailable = False
        self.fail_paths: set[str] = set()            # collections whose requests are dropped
        self.requests: list[tuple[str, dict]] = []    # (path, query) of every request
        self.watches: set[_Watch] = set()
        self._snapshots: dict[str, list] = {}
        self._closing = False
        self.httpd: ThreadingHTTPServer | None = None
        for obj in objects:
            self.add(obj)

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> "FakeApiServer":
        server = self

        class Handler(_Handler):
            fake = server

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name="fake-apiserver", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def api_client(self) -> Any:
        from kubernetes import client
        configuration = client.Configuration()
        configuration.host = self.url
        configuration.connection_pool_maxsize = 32
        configuration.retries = 1
        return client.ApiClient(configuration)

    def stop(self) -> None:
        with self.cond:
            self._closing = True
            for watch in self.watches:
                watch.kill = True
            self.cond.notify_all()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    def __enter__(self) -> "FakeApiServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- changing the cluster -----------------------------------------------------------
    @staticmethod
    def _key(obj: Mapping) -> tuple:
        meta = obj.get("metadata") or {}
        return meta.get("namespace"), meta["name"]

    def _record(self, path: str, kind: str, obj: dict | None, old: dict | None) -> int:
        rv = next(self.rv)
        self.current_rv = rv
        if obj is not None:
            obj["metadata"]["resourceVersion"] = str(rv)
        self.events.append((rv, path, kind, obj if obj is not None else old, old))
        self.cond.notify_all()
        return rv

    def add(self, obj: Mapping) -> dict:
        obj = copy.deepcopy(dict(obj))
        path = KIND_PATH[obj["kind"]]
        with self.cond:
            old = self.store[path].get(self._key(obj))
            self.store[path][self._key(obj)] = obj
            self._record(path, "MODIFIED" if old else "ADDED", obj, old)
        return obj

    modify = add

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        path = KIND_PATH[kind]
        with self.cond:
            old = self.store[path].pop((namespace, name))
            gone = copy.deepcopy(old)
            rv = next(self.rv)
            self.current_rv = rv
            gone["metadata"]["resourceVersion"] = str(rv)
            self.events.append((rv, path, "DELETED", gone, old))
            self.cond.notify_all()

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict:
        return copy.deepcopy(self.store[KIND_PATH[kind]][(namespace, name)])

    # ---- failures on demand ---------------------------------------------------------------
    def compact(self) -> None:
        """Forget history: watches and continue tokens from before now get 410 Gone."""
        with self.cond:
            self.compacted_rv = self.current_rv

    def expire_watches(self) -> None:
        """Send a 410 ERROR event to every open watch (they end)."""
        with self.cond:
            for watch in self.watches:
                watch.expire = True
            self.cond.notify_all()

    def break_watches(self) -> None:
        """Cut every open watch connection without a proper end of stream."""
        with self.cond:
            for watch in self.watches:
                watch.kill = True
            self.cond.notify_all()

    def open_watches(self) -> int:
        with self.cond:
            return len(self.watches)

    def count(self, path: str, watch: bool | None = None) -> int:
        return sum(1 for p, q in list(self.requests)
                   if p == path and (watch is None or (q.get("watch") in ("true", "1")) == watch))

    def wait_for_watches(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.open_watches() >= count:
                return True
            time.sleep(0.01)
        return False

    # ---- serving ----------------------------------------------------------------------------
    def list_body(self, path: str, query: Mapping) -> tuple[int, dict]:
        kind, api_version, _ = COLLECTIONS[path]
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        with self.cond:
            if token:
                state = json.loads(base64.b64decode(token))
                if state["rv"] < self.compacted_rv or state["id"] not in self._snapshots:
                    return 410, status_410("The provided continue parameter is too old to display a consistent "
                                           "list result.")
                items, rv = self._snapshots[state["id"]], state["rv"]
                offset = state["offset"]
            else:
                rv = self.current_rv
                items = [
                    copy.deepcopy(o)
                    for _, o in sorted(self.store[path].items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
                    if selector_matches(query.get("fieldSelector"), o)
                ]
                offset = 0
            page = items[offset:offset + limit] if limit else items[offset:]
            body = {"kind": f"{kind}List", "apiVersion": api_version, "metadata": {"resourceVersion": str(rv)},
                    "items": []}
            for item in page:
                item = dict(item)
                item.pop("kind", None)
                item.pop("apiVersion", None)
                body["items"].append(item)
            if limit and offset + limit < len(items):
                snapshot_id = token and json.loads(base64.b64decode(token))["id"] or f"s{len(self._snapshots)}"
                self._snapshots[snapshot_id] = items
                body["metadata"]["continue"] = base64.b64encode(json.dumps(
                    {"rv": rv, "offset": offset + limit, "id": snapshot_id}).encode()).decode()
        return 200, body

    def watch_stream(self, handler: "_Handler", path: str, query: Mapping) -> None:
        selector = query.get("fieldSelector")
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 60)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        with self.cond:
            too_old = since and since < self.compacted_rv
        if too_old and self.http_410:
            handler.reply(410, status_410())
            return
        handler.start_chunked()
        if too_old:
            handler.chunk({"type": "ERROR", "object": status_410()})
            handler.end_chunked()
            return
        watch = _Watch(handler)
        deadline = time.monotonic() + timeout
        last_bookmark = time.monotonic()
        with self.cond:
            self.watches.add(watch)
            position = 0
        try:
            while True:
                with self.cond:
                    while True:
                        fresh = [e for e in self.events[position:] if e[0] > since]
                        now = time.monotonic()
                        if fresh or watch.kill or watch.expire or self._closing or now >= deadline or \
                                (bookmarks and now - last_bookmark >= self.bookmark_interval):
                            break
                        self.cond.wait(min(0.05, max(0.0, deadline - now)))
                    position = len(self.events)
                    current = self.current_rv
                    kill, expire = watch.kill or self._closing, watch.expire
                lines = []
                for rv, event_path, kind, obj, old in fresh:
                    if event_path != path:
                        continue
                    since = rv
                    if selector:
                        now_in = kind != "DELETED" and selector_matches(selector, obj)
                        was_in = old is not None and selector_matches(selector, old)
                        if kind == "DELETED":
                            if not was_in:
                                continue
                        elif now_in and not was_in:
                            kind = "ADDED"
                        elif was_in and not now_in:
                            kind = "DELETED"
                        elif not now_in:
                            continue
                    lines.append({"type": kind, "object": obj})
                if kill:
                    handler.abort()
                    return
                for line in lines:
                    handler.chunk(line)
                if expire:
                    handler.chunk({"type": "ERROR", "object": status_410()})
                    handler.end_chunked()
                    return
                if bookmarks and time.monotonic() - last_bookmark >= self.bookmark_interval:
                    last_bookmark = time.monotonic()
                    kind_name, api_version, _ = COLLECTIONS[path]
                    handler.chunk({"type": "BOOKMARK", "object": {
                        "kind": kind_name, "apiVersion": api_version,
                        "metadata": {"resourceVersion": str(max(current, since))}}})
                if time.monotonic() >= deadline:
                    handler.end_chunked()
                    return
        except OSError:
            return
        finally:
            with self.cond:
                self.watches.discard(watch)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:  # cut connections are the point
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeApiServer

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.fake.requests.append((url.path, query))
        if self.fake.unavailable or url.path in self.fake.fail_paths:
            self.abort()
            return
        if url.path not in COLLECTIONS or (url.path in OPTIONAL and not getattr(self.fake, OPTIONAL[url.path])):
            self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                             "code": 404, "message": "the server could not find the requested resource"})
            return
        if query.get("watch") in ("true", "1"):
            self.fake.watch_stream(self, url.path, query)
        else:
            self.reply(*self.fake.list_body(url.path, query))

    def reply(self, code: int, body: Mapping) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, event: Mapping) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def abort(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
