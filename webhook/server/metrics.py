"""Prometheus metrics for the webhook, exposed with ``prometheus_client``.

Counters and the latency histogram are kept per process (keep ``--workers 1``: the
cluster cache is per process too). The per-node gauges are computed at scrape time
from the state the decisions use, so they always agree with what the webhook decides:
free pod IP slots (VPC CNI) and free kubelet pod slots, both after running pods,
reservations of admitted-but-not-yet-created pods, and nothing else.

Every label value a client can influence comes from a fixed set: the review's kind is one
of ``KINDS`` or ``"other"``, the operation one of the AdmissionReview operations, the
verdict ``allow``/``warn``/``deny``, a refused body's status one of ``REJECT_CODES`` or
``"other"``. A client that sends 5,000 different kinds (or a lone surrogate as its kind)
therefore adds no series and cannot make a scrape fail. Node labels come from the
cluster's own Node objects, which only the cluster's administrators write.

Each app has its own ``CollectorRegistry`` with one collector that reads these counters
under a lock at scrape time (tests build several apps in one process).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from ..engine.placement import NodeRoom
from .review import OPERATIONS

__all__ = ["CONTENT_TYPE", "KINDS", "Metrics"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PREFIX = "capacity_webhook"
KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "PersistentVolumeClaim",
         "Scale")
VERDICTS = ("allow", "warn", "deny")
REJECT_CODES = (400, 408, 413, 415)
OTHER = "other"


def _one_of(value: object, allowed) -> str:
    return str(value) if value in allowed else OTHER


class Metrics:
    """Thread-safe counters and one latency histogram; ``render(holder)`` adds the gauges."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self.clock = clock
        self.requests: dict[tuple[str, str, str], int] = {}
        self.rejected: dict[str, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.reservations_made = 0
        self.internal_errors = 0
        self.budget_exceeded_count = 0
        self.started = time.time()

    # ---- recording -----------------------------------------------------------------------
    def observe(self, kind: str, operation: str, verdict: str, seconds: float, reserved: bool = False) -> None:
        key = (_one_of(kind, KINDS), _one_of(operation, OPERATIONS), _one_of(verdict, VERDICTS))
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum += seconds
            self.latency_count += 1
            if reserved:
                self.reservations_made += 1

    def reject(self, code: int) -> None:
        label = _one_of(code, REJECT_CODES)
        with self._lock:
            self.rejected[label] = self.rejected.get(label, 0) + 1

    def internal_error(self) -> None:
        with self._lock:
            self.internal_errors += 1

    def budget_exceeded(self) -> None:
        with self._lock:
            self.budget_exceeded_count += 1

    def count(self, kind: str, operation: str, verdict: str) -> int:
        with self._lock:
            return self.requests.get((kind, operation, verdict), 0)

    # ---- exposition ------------------------------------------------------------------
    def render(self, holder=None, mode: str | None = None, stale_after: float | None = None) -> str:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, holder, mode))
        return generate_latest(registry).decode("utf-8")

    def families(self, holder=None, mode: str | None = None):
        with self._lock:
            requests = dict(self.requests)
            rejected = dict(self.rejected)
            buckets = list(self.buckets)
            latency_sum, made = self.latency_sum, self.reservations_made
            internal, over_budget = self.internal_errors, self.budget_exceeded_count

        family = CounterMetricFamily(f"{PREFIX}_admission_requests",
                                     "AdmissionReviews answered, by object kind, operation and verdict "
                                     "(allow, warn, deny).", labels=["kind", "operation", "verdict"])
        for (kind, operation, verdict), value in sorted(requests.items()):
            family.add_metric([kind, operation, verdict], value)
        yield family

        family = CounterMetricFamily(f"{PREFIX}_invalid_requests",
                                     "Request bodies refused with a 4xx (not JSON, not an AdmissionReview v1, "
                                     "too large, too slow), by status.", labels=["code"])
        for code, value in sorted(rejected.items()):
            family.add_metric([code], value)
        yield family

        cumulative, histogram_buckets = 0, []
        for bound, count in zip(LATENCY_BUCKETS + (float("inf"),), buckets, strict=True):
            cumulative += count
            histogram_buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(f"{PREFIX}_admission_duration_seconds",
                                    "Time to decide one AdmissionReview, from body read to response built.",
                                    buckets=histogram_buckets, sum_value=latency_sum)

        yield CounterMetricFamily(f"{PREFIX}_reservations_made",
                                  "Admitted workloads whose placement was reserved until their pods appear or the "
                                  "TTL ends.", value=made)
        yield CounterMetricFamily(f"{PREFIX}_internal_errors",
                                  "Reviews allowed because of a bug in the webhook (logged with a traceback).",
                                  value=internal)
        yield CounterMetricFamily(f"{PREFIX}_decision_budget_exceeded",
                                  "Reviews allowed unchecked because the decision ran out of its time budget.",
                                  value=over_budget)
        if mode:
            from .. import __version__
            info = GaugeMetricFamily(f"{PREFIX}_info", "Server settings.", labels=["mode", "version"])
            info.add_metric([mode, __version__], 1)
            yield info
        if holder is not None:
            yield from _state_families(self.clock, holder)


def _state_families(clock, holder):
    yield GaugeMetricFamily(f"{PREFIX}_state_ready", "1 once the cluster state is loaded (the /readyz answer).",
                            value=1 if holder.ready else 0)
    yield GaugeMetricFamily(f"{PREFIX}_state_stale_seconds",
                            "Seconds the cluster state may have been out of date (0 while every watch is healthy).",
                            value=round(holder.stale_for(), 3))
    labels = ["node", "instance_type", "zone"]
    ips = GaugeMetricFamily(f"{PREFIX}_node_free_ip_slots",
                            "Pod IP slots (AWS VPC CNI) still free per node, after running pods and reservations.",
                            labels=labels)
    pods = GaugeMetricFamily(f"{PREFIX}_node_free_pod_slots",
                             "Kubelet pod slots (maxPods) still free per node, after running pods and reservations.",
                             labels=labels)
    with holder.locked() as state:
        state.expire_reservations(clock())
        active = len(state.reservations)
        reserved = state.reserved_by_node()
        for node_name in sorted(state.nodes):
            node = state.nodes[node_name]
            room = NodeRoom.of(state, node, reserved)
            values = [node_name, node.instance_type or "", node.zone or ""]
            if room.ips is not None:
                ips.add_metric(values, room.ips)
            pods.add_metric(values, room.pods)
    yield GaugeMetricFamily(f"{PREFIX}_reservations", "Reservations currently holding capacity.", value=active)
    yield ips
    yield pods


class _Collector:
    def __init__(self, metrics: Metrics, holder, mode):
        self.metrics, self.holder, self.mode = metrics, holder, mode

    def collect(self):
        return self.metrics.families(self.holder, self.mode)
