"""Hot-reload the webhook's TLS certificate without restarting gunicorn.

:class:`ReloadingTLSContext` watches ``tls.crt``/``tls.key`` (stat: inode,
device, size, mtime_ns - so atomic ``os.replace`` writes, in-place writes
and kubelet's ``..data`` symlink swaps of a mounted Secret are all seen) and
switches new TLS handshakes to the new pair.  Connections already
established keep the certificate they were set up with.

How gunicorn uses the ``ssl_context`` hook (read in gunicorn 27.0.1's
source, and checked to be the same in 22.0.0 and 23.0.0; the project
requires >= 22):

* ``gunicorn.sock.ssl_context(conf)`` builds a ``default_ssl_context_factory``
  and returns ``conf.ssl_context(conf, default_ssl_context_factory)``.
  The factory creates a new context and calls
  ``load_cert_chain(conf.certfile, conf.keyfile)`` every time it is called.
* The **sync** worker (``workers/sync.py``, ``handle``), the **gthread**
  worker (``workers/gthread.py``, ``TConn.init``, run on the worker's thread
  pool) and, in 22/23, the eventlet worker call
  ``sock.ssl_wrap_socket(client, cfg)`` -> ``ssl_context(cfg)`` -> the hook
  **for every accepted connection**, inside the worker process (after the
  fork), then ``context.wrap_socket(..., server_side=True)``.  In gthread
  this happens concurrently on several threads.
* The **gevent**, **tornado** and (27.x) **ASGI** workers call
  ``ssl_context(cfg)`` **once per worker process** when the worker starts
  serving and keep that one context for the worker's lifetime.
* Consequence for the default (no hook): sync/gthread re-read and re-parse
  the key for every handshake, so they do pick up new files, but without
  any validation - a connection that arrives while the pair is
  half-replaced or mismatched fails its handshake - and gevent/tornado/ASGI
  never pick up new files.
* ``conf.is_ssl`` is just ``certfile or keyfile``, and at bind time gunicorn
  checks that both files exist: the gunicorn config must still set
  ``certfile``/``keyfile`` even though the hook builds the context.
* The hook's return value replaces the default context entirely; settings
  like ``ciphers``, ``ca_certs``, ``cert_reqs`` and (27.x) the HTTP/2 ALPN
  list only take effect through the factory, which this module does not
  call (the webhook needs no client certificates, custom ciphers or h2;
  it serves HTTP/1.1).

So the hook must return **one long-lived context per worker process**
whose certificate can change underneath it (recreating a context per
connection would re-read and re-parse the key for every handshake, and
would never update the gevent/ASGI workers).  :func:`gunicorn_ssl_context`
does that: one :class:`ReloadingTLSContext` per (process, cert, key),
created lazily inside the worker - threads do not survive gunicorn's fork,
so the poll thread is started in the process that serves - and guarded by
a lock because gthread calls the hook from several threads.

Why the live context is not mutated with ``load_cert_chain``: calling
``load_cert_chain`` on a context while other threads are inside
``wrap_socket``/handshakes on it is a data race in OpenSSL
(``SSL_CTX_use_certificate`` frees the old cert and, for a moment, drops the
private key because it no longer matches, while ``SSL_new`` is copying the
context's certificate; CPython releases the GIL around both).  A stress
test (one thread calling ``load_cert_chain`` in a loop, one serving
handshakes, Python 3.11 / OpenSSL 3.0) produced handshake failures within
seconds and then crashed the process (segfault / ``double free or
corruption``) in every run.  Instead every validated pair goes into its *own* new
``SSLContext`` that is never modified after it is published, and the live
context (the object gunicorn holds) has an ``sni_callback`` that switches
each new connection to the current one (``SSLSocket.context = ...``, i.e.
``SSL_set_SSL_CTX``, the mechanism OpenSSL provides for picking a
certificate per handshake).  OpenSSL runs that callback for every
ClientHello, also when the client sends no SNI (e.g. connects to an IP), so
every new handshake presents the newest pair; publishing is one reference
assignment, so there is no window in which a handshake can see a half
loaded certificate.  The same stress test with this design: 0 failures.

A new pair is always loaded into a scratch context first; if it fails
(mismatched key and cert, half-written or missing file) the previous pair
keeps serving.  Because a rotation writes two files, the first failure of
a file state is retried on the next poll silently (debug log); if the same
state still fails, one warning is logged and nothing is retried until the
files change again.

gunicorn config (``gunicorn.conf.py``)::

    certfile = "/etc/capacity-webhook/tls/tls.crt"
    keyfile = "/etc/capacity-webhook/tls/tls.key"
    from certs.reloader import ssl_context_hook as ssl_context

or, explicitly::

    def ssl_context(conf, default_ssl_context_factory):
        from certs.reloader import gunicorn_ssl_context
        return gunicorn_ssl_context(conf.certfile, conf.keyfile)
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from typing import NamedTuple

__all__ = [
    "ReloadingTLSContext",
    "gunicorn_ssl_context",
    "ssl_context_hook",
]

log = logging.getLogger(__name__)


class _FileSig(NamedTuple):
    dev: int
    ino: int
    size: int
    mtime_ns: int


def _sig(path: str) -> _FileSig:
    st = os.stat(path)  # follows symlinks: kubelet's ..data swap changes the inode
    return _FileSig(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _cert_summary(cert_file: str) -> str:
    """Best-effort "serial=..., not_after=..." for log lines."""
    try:
        from cryptography import x509

        with open(cert_file, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        return f"serial={cert.serial_number:x} not_after={cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    except Exception:  # pragma: no cover - logging only
        return "serial=?"


class ReloadingTLSContext:
    """A server ``ssl.SSLContext`` whose certificate follows files on disk.

    ``context`` is the live context to hand to the server; it never changes
    identity.  :meth:`maybe_reload` checks the files and switches new
    handshakes to a changed pair once it has loaded successfully.
    :meth:`start` polls on a daemon thread; :meth:`stop` ends it.
    """

    def __init__(self, cert_file: os.PathLike | str, key_file: os.PathLike | str):
        self.cert_file = os.fspath(cert_file)
        self.key_file = os.fspath(key_file)
        self._lock = threading.Lock()  # serialises maybe_reload
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.reload_count = 0  #: successful reloads after the initial load
        self.failure_count = 0  #: rejected pairs
        self.last_error: str | None = None
        # The initial pair must load: failing loudly at startup is right.
        sig = self._signature()
        self._current = self._build()
        self._loaded_sig = sig
        self._rejected_sig: tuple[_FileSig, _FileSig] | None = None
        self._pending_failure: object = None
        self._warned_failure: object = None
        # The live context: same pair, plus the callback that moves every new
        # connection onto the newest published context.
        self.context = self._build()
        self.context.sni_callback = self._select_context

    # -- context construction ------------------------------------------------

    @staticmethod
    def _new_context() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _build(self) -> ssl.SSLContext:
        ctx = self._new_context()
        # Checks that the key matches the certificate (SSL_CTX_check_private_key).
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def _signature(self) -> tuple[_FileSig, _FileSig]:
        return _sig(self.cert_file), _sig(self.key_file)

    def _select_context(self, sslobj, server_name, _ctx) -> None:
        # Runs inside OpenSSL's ClientHello processing for every handshake on
        # the live context.  Keep it trivial: an exception here aborts the
        # handshake.  Attribute read is atomic; published contexts are never
        # mutated afterwards.
        sslobj.context = self._current
        return None

    @property
    def current_context(self) -> ssl.SSLContext:
        """The context new handshakes are switched to (read-only use)."""
        return self._current

    # -- reloading -----------------------------------------------------------

    def maybe_reload(self) -> bool:
        """Reload if either file changed; return True if a new pair is live.

        A pair that fails to load (mismatched, half-written, missing) is not
        used and the previous pair keeps serving.  The first failure of a
        given file state is only logged at debug level and retried on the
        next poll (it may be the middle of a rotation: new key written, new
        cert not yet); if the same state still fails, a warning is logged
        once and that state is not retried until the files change again.
        """
        with self._lock:
            try:
                sig = self._signature()
            except OSError as e:
                # e.g. a file is briefly absent while being replaced.
                self._fail(None, f"cannot stat TLS certificate/key: {e}")
                return False
            if sig == self._loaded_sig or sig == self._rejected_sig:
                return False
            try:
                scratch = self._build()
            except (ssl.SSLError, OSError, ValueError) as e:
                self._fail(
                    sig, f"rejected new TLS pair {self.cert_file} / {self.key_file}: {e}"
                )
                return False
            # Publish: one reference assignment, picked up by the next handshake.
            # The signature is the one taken *before* loading, so a write that
            # landed during the load is seen as a change on the next poll.
            self._current = scratch
            self._loaded_sig = sig
            self._rejected_sig = None
            self._pending_failure = None
            self._warned_failure = None
            self.reload_count += 1
            self.last_error = None
            log.info(
                "reloaded TLS certificate %s (%s)", self.cert_file, _cert_summary(self.cert_file)
            )
            return True

    def _fail(self, sig, message: str) -> None:
        self.failure_count += 1
        self.last_error = message
        key = sig if sig is not None else message
        if key != self._pending_failure:
            self._pending_failure = key
            log.debug("%s; will retry on the next poll", message)
            return
        # The same failure on two consecutive polls: not a rotation in flight.
        if key != self._warned_failure:
            log.warning("%s; keeping the previous certificate", message)
            self._warned_failure = key
        if sig is not None:
            self._rejected_sig = sig  # do not re-parse until the files change

    # -- background polling --------------------------------------------------

    def start(self, interval: float = 1.0) -> "ReloadingTLSContext":
        """Poll every ``interval`` seconds on a daemon thread (idempotent)."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="tls-cert-reloader", daemon=True
        )
        self._thread.start()
        return self

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.maybe_reload()
            except Exception:  # never let the poller die silently
                log.exception("unexpected error while reloading TLS certificate")

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._thread = None

    def __enter__(self) -> "ReloadingTLSContext":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# gunicorn integration

_registry: dict[tuple[int, str, str], ReloadingTLSContext] = {}
_registry_lock = threading.Lock()


def gunicorn_ssl_context(
    cert_file: os.PathLike | str, key_file: os.PathLike | str, interval: float = 1.0
) -> ssl.SSLContext:
    """Return this process's live reloading context for the pair.

    The first call in a process creates the :class:`ReloadingTLSContext` and
    starts its poll thread; later calls (gunicorn calls the hook per
    connection in sync/gthread workers) return the same context object.
    Keyed by PID, so a context inherited over fork (thread not running in
    the child) is not reused.
    """
    key = (os.getpid(), os.path.abspath(os.fspath(cert_file)), os.path.abspath(os.fspath(key_file)))
    rc = _registry.get(key)
    if rc is None:
        with _registry_lock:
            rc = _registry.get(key)
            if rc is None:
                pid = key[0]
                for k in [k for k in _registry if k[0] != pid]:
                    del _registry[k]  # inherited from the parent; its thread is gone
                rc = ReloadingTLSContext(key[1], key[2]).start(interval)
                _registry[key] = rc
    return rc.context


def ssl_context_hook(conf, default_ssl_context_factory) -> ssl.SSLContext:
    """gunicorn ``ssl_context`` setting: ``ssl_context = ssl_context_hook``.

    Uses ``conf.certfile``/``conf.keyfile``; the default factory is not
    called (see the module docstring).
    """
    return gunicorn_ssl_context(conf.certfile, conf.keyfile)
