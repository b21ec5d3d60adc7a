"""A threaded TLS test server on 127.0.0.1 and a client that reports what it was shown.

Used by test_certs (do the certificates work in a real handshake?) and test_tls_reload
(which certificate does a reloading context present after a rotation?).
"""

from __future__ import annotations

import socket
import ssl
import threading

from cryptography import x509


class TLSServer:
    """Accepts connections and completes server-side handshakes with ``context``.

    Each connection gets ``b"ok"`` and is closed; handshake errors are collected in
    ``errors`` (a client that rejects the certificate makes the server side fail too).
    """

    def __init__(self, context: ssl.SSLContext):
        self.context = context
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # includes the accept timeout
                continue
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as s:
                    s.sendall(b"ok")
            except (ssl.SSLError, OSError) as e:
                self.errors.append(e)
                conn.close()

    def __enter__(self) -> "TLSServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def client_context(cafile) -> ssl.SSLContext:
    """A client context that verifies the server against ``cafile`` (hostname included)."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile))


def presented_serial(port: int, ctx: ssl.SSLContext, server_hostname: str = "localhost") -> int:
    """Handshake (verified by ``ctx``) and return the serial of the certificate presented."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
            assert s.recv(2) == b"ok"
            return x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number
