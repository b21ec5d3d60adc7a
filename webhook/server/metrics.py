"""Prometheus text exposition (format 0.0.4) for the webhook, without a client library.

Counters and the latency histogram are kept per process (keep ``--workers 1``: the
cluster cache is per process too). The per-node gauges are computed at scrape time
from the state the decisions use, so they always agree with what the webhook decides:
free pod IP slots (VPC CNI) and free kubelet pod slots, both after running pods,
reservations of admitted-but-not-yet-created pods, and nothing else.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from typing import Callable

from ..engine.placement import NodeRoom

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PREFIX = "capacity_webhook"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items()) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Metrics:
    """Thread-safe counters and one latency histogram; ``render(holder)`` adds the gauges."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self.clock = clock
        self.requests: dict[tuple[str, str, str], int] = {}
        self.rejected: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.reservations_made = 0
        self.started = time.time()

    def observe(self, kind: str, operation: str, verdict: str, seconds: float, reserved: bool = False) -> None:
        key = (kind or "", operation or "", verdict)
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum += seconds
            self.latency_count += 1
            if reserved:
                self.reservations_made += 1

    def reject(self, code: int) -> None:
        with self._lock:
            self.rejected[code] = self.rejected.get(code, 0) + 1

    def count(self, kind: str, operation: str, verdict: str) -> int:
        with self._lock:
            return self.requests.get((kind, operation, verdict), 0)

    # ---- exposition ------------------------------------------------------------------
    def render(self, holder=None, mode: str | None = None, stale_after: float | None = None) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> str:
            full = f"{PREFIX}_{name}"
            out.append(f"# HELP {full} {help_text}")
            out.append(f"# TYPE {full} {kind}")
            return full

        with self._lock:
            requests = dict(self.requests)
            rejected = dict(self.rejected)
            buckets = list(self.buckets)
            latency_sum, latency_count, made = self.latency_sum, self.latency_count, self.reservations_made

        name = family("admission_requests_total", "counter",
                      "AdmissionReviews answered, by object kind, operation and verdict (allow, warn, deny).")
        for (kind, operation, verdict), value in sorted(requests.items()):
            out.append(f"{name}{_labels({'kind': kind, 'operation': operation, 'verdict': verdict})} {value}")

        name = family("invalid_requests_total", "counter",
                      "Request bodies refused with a 4xx (not JSON, not an AdmissionReview v1, too large), by status.")
        for code, value in sorted(rejected.items()):
            out.append(f"{name}{_labels({'code': code})} {value}")

        name = family("admission_duration_seconds", "histogram",
                      "Time to decide one AdmissionReview, from body read to response built.")
        cumulative = 0
        for bound, count in zip(LATENCY_BUCKETS + (float("inf"),), buckets):
            cumulative += count
            out.append(f"{name}_bucket{_labels({'le': _number(bound)})} {cumulative}")
        out.append(f"{name}_sum {_number(round(latency_sum, 9))}")
        out.append(f"{name}_count {latency_count}")

        name = family("reservations_made_total", "counter",
                      "Admitted workloads whose placement was reserved until their pods appear or the TTL ends.")
        out.append(f"{name} {made}")

        if mode:
            name = family("info", "gauge", "Server settings.")
            from .. import __version__
            out.append(f"{name}{_labels({'mode': mode, 'version': __version__})} 1")

        if holder is not None:
            out.extend(self._state_lines(holder, family, stale_after))
        return "\n".join(out) + "\n"

    def _state_lines(self, holder, family, stale_after) -> list[str]:
        lines: list[str] = []
        ready = family("state_ready", "gauge", "1 once the cluster state is loaded (the /readyz answer).")
        lines.append(f"{ready} {1 if holder.ready else 0}")
        stale = family("state_stale_seconds", "gauge",
                       "Seconds the cluster state may have been out of date (0 while every watch is healthy).")
        lines.append(f"{stale} {_number(round(holder.stale_for(), 3))}")
        nodes_ip, nodes_pods = [], []
        with holder.reading() as state:
            state.expire_reservations(self.clock())
            active = len(state.reservations)
            reserved = state.reserved_by_node()
            for node_name in sorted(state.nodes):
                node = state.nodes[node_name]
                room = NodeRoom.of(state, node, reserved)
                labels = {"node": node_name, "instance_type": node.instance_type or "", "zone": node.zone or ""}
                if room.ips is not None:
                    nodes_ip.append((labels, room.ips))
                nodes_pods.append((labels, room.pods))
        reservations = family("reservations", "gauge", "Reservations currently holding capacity.")
        lines.append(f"{reservations} {active}")
        name = family("node_free_ip_slots", "gauge",
                      "Pod IP slots (AWS VPC CNI) still free per node, after running pods and reservations.")
        lines.extend(f"{name}{_labels(labels)} {value}" for labels, value in nodes_ip)
        name = family("node_free_pod_slots", "gauge",
                      "Kubelet pod slots (maxPods) still free per node, after running pods and reservations.")
        lines.extend(f"{name}{_labels(labels)} {value}" for labels, value in nodes_pods)
        return lines
