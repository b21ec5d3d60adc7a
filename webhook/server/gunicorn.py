"""Run the flask app in gunicorn, in-process (``BaseApplication``), configured for a webhook.

* ``webhook.server.worker.WebhookWorker`` (gevent): one greenlet per connection, with
  deadlines on the TLS handshake, the headers and the body, so slow or idle clients never
  hold a review's place (see that module for why ``gthread`` could not).
* keep-alive longer than the kube-apiserver's idle-connection timeout (90 s), so the client
  closes idle connections first and never reuses one the server is closing.
* SIGTERM: the arbiter stops accepting, workers finish in-flight reviews (up to
  ``graceful_timeout``), then exit; a pod's terminationGracePeriodSeconds (30 s) covers it.
* TLS: ``certfile``/``keyfile`` plus the ``ssl_context`` hook of ``certs.reloader``: a new
  ``tls.crt``/``tls.key`` on disk (a rotated, mounted Secret) is used for new handshakes
  without a restart; TLS 1.2 minimum.
* ``worker_tmp_dir`` on ``/dev/shm`` when present (the heartbeat file must not sit on a slow
  or read-only disk), no control socket (read-only root filesystems), no access log (the
  review log line is the access log).

The state holder is built by ``holder_factory`` inside each worker (``preload_app`` is off):
a live source's watch threads must run in the process that serves, threads do not survive
gunicorn's fork. A snapshot holder is loaded once in the master and inherited.
"""

from __future__ import annotations

import os
from typing import Callable

from gunicorn.app.base import BaseApplication

from certs.reloader import ssl_context_hook

from . import logs
from .worker import WORKER_CONNECTIONS

KEEPALIVE = 120
GRACEFUL_TIMEOUT = 25
TIMEOUT = 30


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def server_options(bind: str, port: int, cert_file: str, key_file: str, workers: int = 1, threads: int | None = None,
                   log_level: str = "info", keepalive: int = KEEPALIVE, graceful_timeout: int = GRACEFUL_TIMEOUT,
                   timeout: int = TIMEOUT) -> dict:
    """The gunicorn settings for the webhook (names as in gunicorn's settings).

    ``threads`` is accepted and ignored: the gevent worker serves every connection in its own
    greenlet (``serve --threads`` stays so existing deployments keep starting).
    """
    options = {
        "bind": [bind_address(bind, port)],
        "workers": workers,
        "worker_class": "webhook.server.worker.WebhookWorker",
        "worker_connections": WORKER_CONNECTIONS,
        "keepalive": keepalive,
        "graceful_timeout": graceful_timeout,
        "timeout": timeout,
        "certfile": cert_file,
        "keyfile": key_file,
        "ssl_context": ssl_context_hook,
        "preload_app": False,
        "proc_name": "capacity-webhook",
        "loglevel": log_level,
        "logconfig_dict": logs.logging_config(log_level),
        "accesslog": None,
        "control_socket_disable": True,
    }
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        options["worker_tmp_dir"] = "/dev/shm"
    return options


class WebhookServer(BaseApplication):
    """gunicorn's arbiter and workers around ``app_factory()`` (called in each worker)."""

    def __init__(self, app_factory: Callable[[], object], options: dict):
        self.app_factory = app_factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:          # settings newer gunicorns added are skipped on older ones
                self.cfg.set(key, value)

    def load(self):
        return self.app_factory()
