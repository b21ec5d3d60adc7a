"""Start the real ``capacity-webhook serve`` (gunicorn + TLS, loopback only) for the bench scripts.

``WebhookServer(directory, snapshot, *args, worker="webhook")`` writes a CA and serving
certificate (``certs.authority``), starts the server on 127.0.0.1 with ``--port 0`` in its
own process group, reads the bound port from gunicorn's log and waits for ``/readyz``.
``worker="gthread"`` runs the same command with gunicorn's gthread worker (8 threads),
the pre-gevent setup, as the baseline of a comparison: the bench-only launcher below
patches ``server_options`` before ``serve`` runs; production code has no such switch.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from certs.authority import write_bundle  # noqa: E402 (after the sys.path insert that makes it importable)
from tests.server_fixture import launch_server, wait_ready  # noqa: E402

_GTHREAD_LAUNCHER = """
import sys
import webhook.server.gunicorn as g
original = g.server_options
def gthread_options(*args, **kwargs):
    options = original(*args, **kwargs)
    options.update(worker_class="gthread", threads=8)
    options.pop("worker_connections", None)
    return options
g.server_options = gthread_options
from webhook.cli import main
sys.argv = ["capacity-webhook", "serve"] + sys.argv[1:]
main()
"""


class WebhookServer:
    def __init__(self, directory: Path, snapshot: Path | str, *args: str, worker: str = "webhook"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bundle = write_bundle(self.dir / "tls", ["localhost"], ["127.0.0.1"], days=3)
        self.snapshot = str(snapshot)
        self.args = args
        self.worker = worker
        self.log_path = self.dir / f"server-{worker}.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self, timeout: float = 60.0) -> WebhookServer:
        if self.worker == "gthread":
            head = [sys.executable, "-c", _GTHREAD_LAUNCHER]
        else:
            head = [sys.executable, "-m", "webhook.cli", "serve"]
        command = [*head, "--cluster", self.snapshot, "--tls-cert-file", str(self.bundle.tls_cert),
                   "--tls-private-key-file", str(self.bundle.tls_key), "--bind", "127.0.0.1", "--port", "0",
                   *self.args]
        deadline = time.monotonic() + timeout
        self.proc, self._log, self.port = launch_server(command, REPO, self.log_path, deadline)
        wait_ready(self.proc, self._readyz_answers, self.log_path, deadline)
        return self

    def _readyz_answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/readyz"), context=self.client_context(), timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.bundle.ca_cert))

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        if not self.proc:
            return []
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in children]

    def rss_mib(self) -> float:
        """Resident memory of the worker processes, in MiB."""
        total = 0
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        return self.proc.returncode if self.proc else None
