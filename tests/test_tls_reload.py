"""certs.reloader: certificate rotation without restarting the server.

Real TLS on 127.0.0.1 only: an in-process ``ssl`` server for the unit-level
behaviour, and a real gunicorn process (sync and gthread workers) using the
``ssl_context`` hook for the end-to-end rotation under load.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from certs.authority import renew_serving_cert, write_bundle
from certs.reloader import ReloadingTLSContext, gunicorn_ssl_context
from tests.tls_server import TLSServer, client_context, presented_serial

REPO = Path(__file__).resolve().parents[1]
DNS = ["localhost"]
IPS = ["127.0.0.1"]


def write_mismatched_key(directory: Path) -> None:
    """Atomically replace tls.key with a key that does not match tls.crt (another bundle's)."""
    other = write_bundle(tempfile.mkdtemp(dir=directory.parent), DNS, IPS)
    os.replace(other.tls_key, directory / "tls.key")


@pytest.fixture
def bundle(tmp_path):
    return write_bundle(tmp_path / "tls", DNS, IPS, days=3)


# --------------------------------------------------------------------------
# in-process server


def test_context_settings(bundle):
    rc = ReloadingTLSContext(bundle.tls_cert, bundle.tls_key)
    for ctx in (rc.context, rc.current_context):
        assert ctx.protocol == ssl.PROTOCOL_TLS_SERVER
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_missing_or_bad_pair_at_startup_fails_loudly(bundle, tmp_path):
    with pytest.raises(FileNotFoundError):
        ReloadingTLSContext(tmp_path / "nope.crt", bundle.tls_key)
    with pytest.raises(ssl.SSLError):
        ReloadingTLSContext(bundle.ca_cert, bundle.tls_key)  # key is not ca.crt's


def test_rotation_in_process(bundle):
    rc = ReloadingTLSContext(bundle.tls_cert, bundle.tls_key)
    cctx = client_context(bundle.ca_cert)
    with TLSServer(rc.context) as srv:
        assert presented_serial(srv.port, cctx) == bundle.serial
        assert rc.maybe_reload() is False  # nothing changed
        live = rc.context
        for _ in range(3):
            new = renew_serving_cert(bundle.out_dir, DNS, IPS, days=3)
            assert rc.maybe_reload() is True
            assert rc.context is live  # the object the server holds never changes
            # with SNI (DNS name) and without SNI (IP address: no SNI sent)
            assert presented_serial(srv.port, cctx, "localhost") == new.serial
            assert presented_serial(srv.port, cctx, "127.0.0.1") == new.serial
        assert rc.reload_count == 3 and rc.failure_count == 0


def test_mismatched_pair_is_rejected_and_old_cert_keeps_serving(bundle, caplog):
    rc = ReloadingTLSContext(bundle.tls_cert, bundle.tls_key)
    cctx = client_context(bundle.ca_cert)
    with TLSServer(rc.context) as srv, caplog.at_level(logging.DEBUG, "certs.reloader"):
        write_mismatched_key(bundle.out_dir)
        assert rc.maybe_reload() is False  # first sighting: retried silently
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert rc.maybe_reload() is False  # still mismatched: warn once
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "keeping the previous certificate" in warnings[0].getMessage()
        assert rc.maybe_reload() is False  # not re-parsed, not re-warned
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        assert presented_serial(srv.port, cctx) == bundle.serial
        # the matching pair arrives: picked up
        new = renew_serving_cert(bundle.out_dir, DNS, IPS)
        assert rc.maybe_reload() is True
        assert presented_serial(srv.port, cctx) == new.serial
        assert rc.last_error is None


def test_half_written_cert_is_rejected(bundle):
    rc = ReloadingTLSContext(bundle.tls_cert, bundle.tls_key)
    cctx = client_context(bundle.ca_cert)
    with TLSServer(rc.context) as srv:
        data = bundle.tls_cert.read_bytes()
        with open(bundle.tls_cert, "r+b") as f:  # in place, like a non-atomic writer
            f.truncate(len(data) // 2)
        assert rc.maybe_reload() is False
        assert rc.maybe_reload() is False
        assert "rejected new TLS pair" in rc.last_error
        assert presented_serial(srv.port, cctx) == bundle.serial
        with open(bundle.tls_cert, "r+b") as f:  # writer finishes
            f.write(data)
        assert rc.maybe_reload() is True
        assert presented_serial(srv.port, cctx) == bundle.serial


def test_missing_file_keeps_serving(bundle):
    rc = ReloadingTLSContext(bundle.tls_cert, bundle.tls_key)
    cctx = client_context(bundle.ca_cert)
    with TLSServer(rc.context) as srv:
        saved = bundle.tls_key.read_bytes()
        bundle.tls_key.unlink()
        assert rc.maybe_reload() is False
        assert "cannot stat" in rc.last_error
        assert presented_serial(srv.port, cctx) == bundle.serial
        bundle.tls_key.write_bytes(saved)


def test_kubelet_style_symlink_swap_is_seen(tmp_path):
    """A mounted Secret: tls.crt -> ..data/tls.crt, ..data -> ..v1, swapped atomically."""
    v1 = write_bundle(tmp_path / "..v1", DNS, IPS)
    (tmp_path / "..v2").mkdir()
    for name in ("ca.crt", "ca.key"):
        (tmp_path / "..v2" / name).write_bytes((tmp_path / "..v1" / name).read_bytes())
    v2 = renew_serving_cert(tmp_path / "..v2", DNS, IPS)
    os.symlink("..v1", tmp_path / "..data")
    for name in ("tls.crt", "tls.key"):
        os.symlink(f"..data/{name}", tmp_path / name)
    rc = ReloadingTLSContext(tmp_path / "tls.crt", tmp_path / "tls.key")
    cctx = client_context(tmp_path / "..v1" / "ca.crt")
    with TLSServer(rc.context) as srv:
        assert presented_serial(srv.port, cctx) == v1.serial
        os.symlink("..v2", tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        assert rc.maybe_reload() is True
        assert presented_serial(srv.port, cctx) == v2.serial


def test_background_thread_picks_up_rotation(bundle):
    rc = ReloadingTLSContext(bundle.tls_cert, bundle.tls_key).start(interval=0.05)
    try:
        cctx = client_context(bundle.ca_cert)
        with TLSServer(rc.context) as srv:
            new = renew_serving_cert(bundle.out_dir, DNS, IPS)
            deadline = time.monotonic() + 2
            while presented_serial(srv.port, cctx) != new.serial:
                assert time.monotonic() < deadline, "rotation not picked up within 2 s"
                time.sleep(0.02)
    finally:
        rc.stop()
    assert rc._thread is None


def test_gunicorn_ssl_context_is_one_live_context_per_process(bundle):
    from certs import reloader

    try:
        a = gunicorn_ssl_context(bundle.tls_cert, bundle.tls_key)
        b = gunicorn_ssl_context(str(bundle.tls_cert), str(bundle.tls_key))
        assert a is b
        assert a.minimum_version == ssl.TLSVersion.TLSv1_2
        assert any(t.name == "tls-cert-reloader" and t.daemon for t in threading.enumerate())
        # concurrent first calls (gthread calls the hook from its thread pool)
        other = write_bundle(bundle.out_dir.parent / "other", DNS, IPS)
        got = []
        threads = [
            threading.Thread(target=lambda: got.append(gunicorn_ssl_context(other.tls_cert, other.tls_key)))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 8 and all(c is got[0] for c in got) and got[0] is not a
    finally:
        for rc in reloader._registry.values():
            rc.stop()
        reloader._registry.clear()


def _tls11_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def _tls11_handshake(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with _tls11_client().wrap_socket(raw) as s:
            return s.version()


def local_openssl_speaks_tls11(bundle) -> bool:
    """Control: does a permissive local server accept a TLS 1.1 client?"""
    try:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.set_ciphers("DEFAULT:@SECLEVEL=0")
        server.minimum_version = ssl.TLSVersion.TLSv1_1
        server.load_cert_chain(bundle.tls_cert, bundle.tls_key)
        with TLSServer(server) as srv:
            return _tls11_handshake(srv.port) == "TLSv1.1"
    except (ssl.SSLError, OSError, ValueError):
        return False


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls11_client_is_refused(bundle):
    rc = ReloadingTLSContext(bundle.tls_cert, bundle.tls_key)
    assert rc.context.minimum_version == ssl.TLSVersion.TLSv1_2
    if not local_openssl_speaks_tls11(bundle):
        pytest.skip("local OpenSSL cannot negotiate TLS 1.1 at all; minimum_version asserted")
    with TLSServer(rc.context) as srv:
        with pytest.raises(ssl.SSLError):
            _tls11_handshake(srv.port)
        # while TLS 1.2+ works
        assert presented_serial(srv.port, client_context(bundle.ca_cert)) == bundle.serial


# --------------------------------------------------------------------------
# real gunicorn process

APP = """
import os

def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""

GUNICORN_CONF = """
bind = ["fd://{fd}"]
certfile = {cert!r}
keyfile = {key!r}
workers = 1
worker_class = {worker_class!r}
threads = 4
graceful_timeout = 2
loglevel = "info"
# the production wiring: gunicorn's ssl_context hook -> certs.reloader
from certs.reloader import ssl_context_hook as ssl_context
"""


@dataclass
class Result:
    t: float
    ok: bool
    serial: int | None = None
    pid: str | None = None
    error: str | None = None


@dataclass
class LoadClient:
    """Makes HTTPS requests, each on a new connection, in a loop (bounded)."""

    port: int
    cafile: Path
    max_seconds: float = 30.0
    max_requests: int = 20000
    results: list[Result] = field(default_factory=list)

    def __post_init__(self):
        self.ctx = client_context(self.cafile)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def request(self) -> Result:
        t = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
                with self.ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    der = s.getpeercert(binary_form=True)
                    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
        except (OSError, ssl.SSLError) as e:
            return Result(t, False, error=repr(e))
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            return Result(t, False, error=head[:80].decode(errors="replace"))
        serial = x509.load_der_x509_certificate(der).serial_number
        return Result(t, True, serial=serial, pid=body.decode())

    def _run(self):
        end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < end:
            if len(self.results) >= self.max_requests:
                break
            self.results.append(self.request())

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def wait_for_serial(self, serial: int, since: float, timeout: float) -> float:
        """Seconds from ``since`` until a response presented ``serial``."""
        deadline = max(since, time.monotonic()) + timeout
        while time.monotonic() < deadline:
            for r in reversed(self.results):
                if r.t < since:
                    break
                if r.serial == serial:
                    return r.t - since
            time.sleep(0.02)
        bad = [r for r in self.results if not r.ok][:3]
        raise AssertionError(f"serial {serial:x} not presented within {timeout} s; errors: {bad}")


@pytest.fixture
def gunicorn_server(tmp_path, bundle, request):
    worker_class = request.param
    (tmp_path / "app.py").write_text(APP)
    lsock = socket.create_server(("127.0.0.1", 0), backlog=128)
    port = lsock.getsockname()[1]
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(
        GUNICORN_CONF.format(
            fd=lsock.fileno(),
            cert=str(bundle.tls_cert),
            key=str(bundle.tls_key),
            worker_class=worker_class,
        )
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(tmp_path), env.get("PYTHONPATH", "")])
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(conf), "app:app"],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=[lsock.fileno()],
        )
    lsock.close()  # gunicorn holds its own copy of the listening socket
    try:
        probe = LoadClient(port, bundle.ca_cert)
        deadline = time.monotonic() + 15
        while not probe.request().ok:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "gunicorn did not come up:\n" + log_path.read_text()
            time.sleep(0.05)
        yield proc, port, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("gunicorn_server", ["sync", "gthread", "webhook.server.worker.WebhookWorker"], indirect=True)
def test_gunicorn_rotation_under_load(gunicorn_server, bundle):
    proc, port, log_path = gunicorn_server
    client = LoadClient(port, bundle.ca_cert)
    client.start()
    try:
        client.wait_for_serial(bundle.serial, time.monotonic() - 60, 5)
        delays = []
        serials = [bundle.serial]
        for _ in range(3):
            time.sleep(0.1)  # some requests on the current cert
            since = time.monotonic()
            new = renew_serving_cert(bundle.out_dir, DNS, IPS, days=3)
            delays.append(client.wait_for_serial(new.serial, since, 2.5))
            serials.append(new.serial)

        # a mismatched key must not be picked up: the last good pair keeps serving
        since = time.monotonic()
        write_mismatched_key(bundle.out_dir)
        time.sleep(2.5)  # > 2 poll intervals: rejected once, retried, warned
        during = [r for r in client.results if r.t >= since]
        assert during and all(r.ok and r.serial == serials[-1] for r in during)

        # and a good pair afterwards is
        since = time.monotonic()
        new = renew_serving_cert(bundle.out_dir, DNS, IPS, days=3)
        delays.append(client.wait_for_serial(new.serial, since, 2.5))
        serials.append(new.serial)
        time.sleep(0.1)
    finally:
        client.stop()

    results = client.results
    failed = [r for r in results if not r.ok]
    assert not failed, f"{len(failed)} of {len(results)} requests failed: {failed[:3]}"
    assert len(results) > 50
    # every rotation visible, in order, nothing else presented
    seen = []
    for r in results:
        if not seen or seen[-1] != r.serial:
            seen.append(r.serial)
    assert seen == serials
    assert max(delays) < 2.5, delays
    print(f"{len(results)} requests, rotation pickup delays {[round(d, 2) for d in delays]} s")
    # no restart: same gunicorn master, same worker process throughout
    assert proc.poll() is None
    assert len({r.pid for r in results}) == 1
    log = log_path.read_text()
    assert "keeping the previous certificate" in log
    assert log.count("keeping the previous certificate") == 1
    assert "Booting worker" in log and log.count("Booting worker") == 1
