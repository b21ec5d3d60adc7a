"""``serve --metrics-port``: ``GET /metrics`` over plain HTTP on a listener of its own.

Why a second listener: Prometheus scrapes (ServiceMonitor/PodMonitor) then need no TLS
configuration or CA for the webhook's private certificate, and a NetworkPolicy can open the
metrics port to the monitoring namespace while only the API server may reach ``/validate``.
Only ``/metrics`` is answered there (everything else is a 404), so the plain-HTTP port never
exposes the admission endpoint.

The listener runs in a daemon thread of the gunicorn worker that serves the app, next to the
state the gauges are computed from; the response is whatever the app's own ``/metrics`` view
returns, so both ports always show the same figures.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

log = logging.getLogger("capacity_webhook.server")

PATH = "/metrics"


class _QuietHandler(WSGIRequestHandler):
    """No access-log line per scrape (one every 15-30 s per Prometheus replica); errors are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class MetricsServer(ThreadingMixIn, WSGIServer):
    """The stdlib WSGI server, one thread per connection, IPv4 or IPv6 by the bind address."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host.strip("[]"), port), _QuietHandler)


def metrics_only(app: Callable) -> Callable:
    """A WSGI app passing ``GET|HEAD /metrics`` to ``app`` and answering 404/405 otherwise."""

    def wsgi(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            body = b"not found: this port serves only GET /metrics\n"
            status = "404 Not Found"
        elif environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            body = b"method not allowed: GET /metrics\n"
            status = "405 Method Not Allowed"
        else:
            return app(environ, start_response)
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        if status.startswith("405"):
            headers.append(("Allow", "GET, HEAD"))
        start_response(status, headers)
        return [body]

    return wsgi


def start_metrics_listener(app: Callable, host: str, port: int) -> MetricsServer:
    """Bind ``host:port`` (0: any free port) now and serve ``/metrics`` of ``app`` in a daemon thread.

    Binding happens before this returns (``OSError`` if the port is taken), so a port conflict
    fails the worker's start-up instead of leaving a webhook that silently has no metrics.
    """
    server = MetricsServer(host, port)
    server.set_app(metrics_only(app))
    bound = server.socket.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    # Tests and operators read the bound port from this line (as gunicorn's "Listening at:").
    log.info("Metrics listening at: http://%s:%d%s", shown, bound, PATH)
    if _gevent_patched():
        # In serve's gevent worker: socketserver captured the real select.poll when it was
        # imported (before gunicorn monkey-patched the worker), so serve_forever would block
        # the whole process. gevent's own WSGI server serves the bound socket in greenlets.
        from gevent.pywsgi import WSGIServer as GeventWSGIServer

        GeventWSGIServer(server.socket, server.get_app(), log=None, error_log=log).start()
        return server
    thread = threading.Thread(target=server.serve_forever, name="metrics-listener", daemon=True)
    thread.start()
    return server


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")
