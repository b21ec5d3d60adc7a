"""The gunicorn worker: one greenlet per connection (gevent), with read deadlines.

Why not gunicorn's ``gthread``: a gthread worker hands a connection to one of its few
threads as soon as it is readable and that thread then reads the TLS handshake, the
headers and the body with blocking calls. Eight clients that send a header line per
second hold all eight threads and every real review times out; with the chart's
``failurePolicy: Ignore`` the cluster is then unchecked. Here every connection is a
greenlet that costs a few KB while it waits, so slow or idle clients never take a
review's place, and each phase of a connection has a deadline:

* TLS handshake: ``HANDSHAKE_SECONDS`` from accept (a connect-only or slow-handshake
  client is closed, nothing is answered);
* the first request's headers: ``FIRST_REQUEST_SECONDS`` from accept; later requests on
  a kept-alive connection may wait ``keepalive`` seconds (longer than the kube-apiserver's
  90 s idle timeout, so the client always closes first);
* the body and the answer: ``REQUEST_SECONDS`` per request; a client that stops sending
  its body gets ``408 Request Timeout`` and the connection is closed.

A decision itself is CPU work that a greenlet does not give up: the engine's own time
budget (``webhook.engine.budget``) bounds it, so one review cannot stall the others for
long. ``worker_connections`` bounds open connections per worker (beyond it, new ones wait
in the listen backlog).

gevent monkey-patches the worker process before the app is loaded, so the live source's
watch threads become greenlets and the state lock a gevent lock; the TLS context comes
from ``certs.reloader`` (one per process, switching certificates per handshake).
"""

from __future__ import annotations

import ssl
import time
from functools import partial

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn.sock import ssl_context
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

HANDSHAKE_SECONDS = 5.0
FIRST_REQUEST_SECONDS = 10.0
REQUEST_SECONDS = 10.0
WORKER_CONNECTIONS = 4096

_TIMEOUT_BODY = (b'{"kind":"Status","apiVersion":"v1","status":"Failure","code":408,'
                 b'"message":"request body not received in time"}')
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))


class _Deadline(BaseException):
    """Raised in a connection's greenlet when one of its read deadlines passes.

    A BaseException, like ``gevent.Timeout``, so that flask's catch-all error handler
    does not turn a slow client into a 500 answer.
    """


class _HeaderWait:
    """A silent ``gevent.Timeout`` around one header read, registered so shutdown can end it."""

    def __init__(self, worker: WebhookWorker, seconds: float):
        self.worker = worker
        self.timeout = gevent.Timeout(seconds, False)

    def __enter__(self):
        self.worker.__dict__.setdefault("_header_waits", {})[self] = gevent.getcurrent()
        self.timeout.start()
        return self

    def __exit__(self, *exc):
        self.worker._header_waits.pop(self, None)
        return self.timeout.__exit__(*exc)


class WebhookWorker(GeventWorker):
    """gunicorn's gevent worker with a TLS handshake, header and body deadline per connection."""

    def run(self) -> None:
        # As GeventWorker.run, except that TLS is not handed to StreamServer: it would run the
        # handshake without any deadline. ``handle`` wraps the socket itself.
        self._tls = ssl_context(self.cfg) if self.cfg.is_ssl else None
        servers = []
        for s in self.sockets:
            s.setblocking(1)
            server = StreamServer(s, handle=partial(self.handle, s), spawn=Pool(self.worker_connections))
            if self.cfg.workers > 1:
                server.max_accept = 1
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            gevent.sleep(1.0)
        for server in servers:                          # stop accepting, finish in-flight reviews
            server.close()
        self._end_idle_waits()
        started = time.time()
        while time.time() - started <= self.cfg.graceful_timeout:
            if all(server.pool.free_count() == server.pool.size for server in servers):
                return
            self.notify()
            gevent.sleep(0.2)
        self.log.warning("worker graceful timeout (pid:%s)", self.pid)
        for server in servers:
            server.stop(timeout=1)

    def handle(self, listener, client, addr) -> None:
        client.setblocking(1)
        accepted = time.monotonic()
        if self._tls is not None:
            try:
                with gevent.Timeout(HANDSHAKE_SECONDS, _Deadline):
                    client = self._tls.wrap_socket(client, server_side=True)
            except (_Deadline, ssl.SSLError, OSError) as exc:
                self.log.debug("TLS handshake with %s failed: %r", addr, exc)
                client.close()
                return
        gevent.getcurrent().first_request_by = accepted + FIRST_REQUEST_SECONDS
        AsyncWorker.handle(self, listener, client, addr)

    def timeout_ctx(self):
        """The deadline for reading one request's headers (the first one: counted from accept)."""
        current = gevent.getcurrent()
        first_by = getattr(current, "first_request_by", None)
        if first_by is not None:
            current.first_request_by = None
            return _HeaderWait(self, max(0.001, first_by - time.monotonic()))
        return _HeaderWait(self, self.cfg.keepalive)

    def _end_idle_waits(self) -> None:
        """On shutdown, connections waiting for a (next) request are closed at once.

        Only requests already being handled are finished; an idle kept-alive connection
        would otherwise hold the worker for the whole ``keepalive``. The waiting greenlet
        gets its own silent timeout, so it ends as if the client had been too slow.
        """
        waits = getattr(self, "_header_waits", {})
        for wait, greenlet in list(waits.items()):
            gevent.get_hub().loop.run_callback(greenlet.throw, wait.timeout)
        waits.clear()

    def handle_request(self, listener_name, req, sock, addr):
        timer = gevent.Timeout(REQUEST_SECONDS, _Deadline)
        timer.start()
        try:
            return super().handle_request(listener_name, req, sock, addr)
        except _Deadline:
            self.log.warning("request from %s not completed within %.0f s: answered 408 and closed", addr,
                             REQUEST_SECONDS)
            try:
                sock.sendall(_TIMEOUT_RESPONSE)
            except OSError:
                pass
            raise StopIteration() from None
        finally:
            timer.close()
