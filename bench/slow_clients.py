"""Slow and idle clients against the real ``serve`` (loopback only, bounded): are reviews still answered?

While these connections are held open (each reopened as soon as the server closes it):

* ``--slow-header`` (64) TLS connections sending one header line per second,
* ``--slow-body`` (16) sending a 64 KiB body 10 bytes per second,
* ``--slow-handshake`` (16) TCP connections sending a real TLS ClientHello one byte per second,
* ``--connect-only`` (64) TCP connections that send nothing,
* ``--idle`` (1,000) kept-alive TLS connections that made one request and then wait,

``--clients`` (4) clients send normal AdmissionReviews (half on one kept-alive connection
each, as the kube-apiserver does, half on a new TLS connection per review) for
``--seconds``; the script prints how many were answered, how many within 1 s, the
latency percentiles and the worker's RSS (before, with the 1,000 idle connections open,
at the end). The same run is made against gunicorn's ``gthread`` worker (8 threads,
the setup before the gevent worker) as the baseline, unless ``--no-baseline``.

    python bench/slow_clients.py [--seconds 20] [--no-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.webhook_process import REPO, WebhookServer

REVIEW = json.loads((REPO / "webhook/examples/review.json").read_text())


def review_bytes(n: int) -> bytes:
    body = json.loads(json.dumps(REVIEW))
    body["request"]["uid"] = f"slow-bench-{n}"
    data = json.dumps(body).encode()
    return (f"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


def client_hello() -> bytes:
    """The first flight of a real TLS client, to dribble byte by byte."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class Run:
    def __init__(self, port: int, ctx: ssl.SSLContext, stop: asyncio.Event):
        self.port, self.ctx, self.stop = port, ctx, stop
        self.open = {"slow-header": 0, "slow-body": 0, "slow-handshake": 0, "connect-only": 0, "idle": 0}
        self.reopened = {k: 0 for k in self.open}
        self.latencies: list[float] = []
        self.failures = 0
        self.statuses: dict[int, int] = {}
        self.hello = client_hello()

    async def _hold(self, name: str, opener, dribble) -> None:
        """Keep one connection of this kind open, reopening it whenever the server closes it."""
        while not self.stop.is_set():
            writer = None
            try:
                reader, writer = await opener()
                self.open[name] += 1
                try:
                    await dribble(reader, writer)
                finally:
                    self.open[name] -= 1
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                if writer is not None:
                    writer.close()
            if not self.stop.is_set():
                self.reopened[name] += 1
                await asyncio.sleep(0.2)

    def tls(self):
        return asyncio.open_connection("127.0.0.1", self.port, ssl=self.ctx, server_hostname="localhost")

    def tcp(self):
        return asyncio.open_connection("127.0.0.1", self.port)

    async def _until_stop_or_closed(self, reader, period: float, send) -> None:
        while not self.stop.is_set():
            send()
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=period)
            except TimeoutError:
                continue
            if not data:          # the server closed it
                return

    async def slow_header(self) -> None:
        async def dribble(reader, writer):
            writer.write(b"POST /validate HTTP/1.1\r\n")
            lines = iter(range(10**6))
            await self._until_stop_or_closed(reader, 1.0, lambda: writer.write(b"X-Slow-%d: y\r\n" % next(lines)))
        await self._hold("slow-header", self.tls, dribble)

    async def slow_body(self) -> None:
        async def dribble(reader, writer):
            writer.write(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 65536\r\n\r\n")
            await self._until_stop_or_closed(reader, 1.0, lambda: writer.write(b'{"aaaaaaa"'))
        await self._hold("slow-body", self.tls, dribble)

    async def slow_handshake(self) -> None:
        async def dribble(reader, writer):
            data = iter(self.hello)
            await self._until_stop_or_closed(reader, 1.0, lambda: writer.write(bytes([next(data, 0)])))
        await self._hold("slow-handshake", self.tcp, dribble)

    async def connect_only(self) -> None:
        async def dribble(reader, writer):
            await self._until_stop_or_closed(reader, 1.0, lambda: None)
        await self._hold("connect-only", self.tcp, dribble)

    async def idle(self) -> None:
        async def dribble(reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await read_response(reader)
            await self._until_stop_or_closed(reader, 5.0, lambda: None)
        await self._hold("idle", self.tls, dribble)

    async def reviews(self, index: int, keep_alive: bool, until: float) -> None:
        n = index * 10**6
        reader = writer = None
        while time.monotonic() < until:
            n += 1
            started = time.monotonic()
            try:
                if writer is None or not keep_alive:
                    reader, writer = await asyncio.wait_for(self.tls(), timeout=3)
                writer.write(review_bytes(n))
                status = await asyncio.wait_for(read_response(reader), timeout=3)
                self.latencies.append(time.monotonic() - started)
                self.statuses[status] = self.statuses.get(status, 0) + 1
            except (TimeoutError, OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
                self.failures += 1
                self.latencies.append(float("inf"))
                if writer is not None:
                    writer.close()
                reader = writer = None
            if not keep_alive and writer is not None:
                writer.close()
                reader = writer = None
            await asyncio.sleep(0.05)
        if writer is not None:
            writer.close()


async def measure(server: WebhookServer, args) -> dict:
    ctx = server.client_context()
    stop = asyncio.Event()
    run = Run(server.port, ctx, stop)
    rss_before = server.rss_mib()
    holders = [asyncio.create_task(run.idle()) for _ in range(args.idle)]
    deadline = time.monotonic() + 60
    while run.open["idle"] < args.idle and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    rss_idle = server.rss_mib()
    holders += [asyncio.create_task(run.slow_header()) for _ in range(args.slow_header)]
    holders += [asyncio.create_task(run.slow_body()) for _ in range(args.slow_body)]
    holders += [asyncio.create_task(run.slow_handshake()) for _ in range(args.slow_handshake)]
    holders += [asyncio.create_task(run.connect_only()) for _ in range(args.connect_only)]
    await asyncio.sleep(2)           # let every slow connection open and start dribbling
    opened = dict(run.open)
    until = time.monotonic() + args.seconds
    samples: list[dict] = []

    async def sample():
        while time.monotonic() < until:
            samples.append(dict(run.open))
            await asyncio.sleep(1)
    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(run.reviews(i, keep_alive=i % 2 == 0, until=until) for i in range(args.clients)))
    await sampler
    rss_end = server.rss_mib()
    stop.set()
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    lat = sorted(run.latencies)
    within = sum(1 for x in lat if x <= 1.0)
    finite = [x for x in lat if x != float("inf")]
    return {
        "reviews": len(lat), "within_1s": within, "pct_within_1s": 100.0 * within / max(1, len(lat)),
        "failures": run.failures, "statuses": run.statuses,
        "p50_ms": 1000 * statistics.median(finite) if finite else None,
        "p99_ms": 1000 * finite[min(len(finite) - 1, int(0.99 * len(finite)))] if finite else None,
        "max_ms": 1000 * max(finite) if finite else None,
        "open_at_start": opened,
        "open_mean_during": {k: round(sum(s[k] for s in samples) / len(samples), 1) for k in opened} if samples else {},
        "reopened": dict(run.reopened),
        "rss_before_mib": rss_before, "rss_with_idle_mib": rss_idle, "rss_end_mib": rss_end,
    }


def report(name: str, figures: dict) -> None:
    print(f"\n== {name} ==")
    print(f"  reviews answered: {figures['reviews'] - figures['failures']} of {figures['reviews']}; "
          f"within 1 s: {figures['within_1s']} ({figures['pct_within_1s']:.2f}%); failures/timeouts: "
          f"{figures['failures']}; statuses {figures['statuses']}")
    if figures["p50_ms"] is not None:
        print(
            f"  latency p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, max {figures['max_ms']:.1f} ms"
        )
    print(f"  open connections when reviews started: {figures['open_at_start']}")
    print(f"  mean open during the run (1 s samples): {figures['open_mean_during']}")
    print(f"  reopened after the server closed them: {figures['reopened']}")
    print(f"  worker RSS: {figures['rss_before_mib']:.1f} MiB before, {figures['rss_with_idle_mib']:.1f} MiB with the "
          f"idle connections open (+{figures['rss_with_idle_mib'] - figures['rss_before_mib']:.1f}), "
          f"{figures['rss_end_mib']:.1f} MiB at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--slow-header", type=int, default=64)
    parser.add_argument("--slow-body", type=int, default=16)
    parser.add_argument("--slow-handshake", type=int, default=16)
    parser.add_argument("--connect-only", type=int, default=64)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--no-baseline", action="store_true", help="skip the gthread baseline run")
    args = parser.parse_args()
    workers = ["webhook"] + ([] if args.no_baseline else ["gthread"])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for worker in workers:
            server = WebhookServer(Path(tmp) / worker, REPO / "webhook/examples/cluster.json", "--mode", "warn",
                                   worker=worker).start()
            try:
                results[worker] = asyncio.run(measure(server, args))
            finally:
                server.stop()
    print(f"slow clients: {args.slow_header} slow-header, {args.slow_body} slow-body, {args.slow_handshake} "
          f"slow-handshake, {args.connect_only} connect-only, {args.idle} idle keep-alive; {args.clients} review "
          f"clients for {args.seconds:.0f} s")
    report("gevent WebhookWorker (serve's worker)", results["webhook"])
    if "gthread" in results:
        report("baseline: gunicorn gthread, 8 threads", results["gthread"])
    ok = results["webhook"]["pct_within_1s"] >= 99.0
    print(f"\ntarget >= 99% of reviews within 1 s: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
