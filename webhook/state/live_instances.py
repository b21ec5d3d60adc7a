"""Runtime lookups of instance types the shipped table does not know.

When a node of an unknown type appears, the live source calls :meth:`InstanceLookup.request`,
which only queues the name: one background thread asks EC2 ``DescribeInstanceTypes``
(region from the node's labels, credentials from boto3's default chain) and adds the
answer to the ClusterState's ``instance_table`` under the holder's lock. The watch loop
never waits for AWS. Each type is looked up once; a failure is remembered (the engine
keeps warning UNKNOWN_INSTANCE_TYPE) and only retried after ``retry_after`` seconds,
never in a loop; a type EC2 says does not exist is never retried.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

log = logging.getLogger("capacity_webhook.instance_lookup")

REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
_REGION_IN_ZONE = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d+)")


def region_of(labels: Mapping | None) -> str | None:
    """The AWS region of a node: its region label, else its zone minus the trailing letter.

    Local and Wavelength zones (``us-west-2-lax-1a``) keep only the region part.
    """
    labels = labels or {}
    if labels.get(REGION_LABEL):
        return labels[REGION_LABEL]
    for key in ZONE_LABELS:
        zone = labels.get(key)
        if zone:
            match = _REGION_IN_ZONE.match(zone)
            return match.group(1) if match else zone[:-1]
    return None


@dataclass
class LookupFailure:
    region: str | None
    error: str
    at: float
    permanent: bool      # EC2 says the type does not exist: never ask again


def boto3_client_factory(region: str | None) -> Any:
    import boto3
    return boto3.client("ec2", region_name=region)


class InstanceLookup:
    """Looks unknown instance types up once, in the background."""

    def __init__(self, client_factory: Callable[[str | None], Any] = boto3_client_factory,
                 retry_after: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self.client_factory = client_factory
        self.retry_after = retry_after
        self.clock = clock
        self.found: dict[str, Any] = {}
        self.failures: dict[str, LookupFailure] = {}
        self.calls = 0                                  # DescribeInstanceTypes lookups made
        self._holder = None
        self._queued: set[str] = set()
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._thread: threading.Thread | None = None
        self._stopped = False

    def attach(self, holder: Any) -> "InstanceLookup":
        """Results go into ``holder.state.instance_table`` (under ``holder.lock``)."""
        self._holder = holder
        return self

    def request(self, instance_type: str, region: str | None) -> bool:
        """Queue a lookup unless one is known, queued, or failed recently. Never blocks."""
        with self._lock:
            if self._stopped or instance_type in self.found or instance_type in self._queued:
                return False
            failure = self.failures.get(instance_type)
            if failure and (failure.permanent or self.clock() - failure.at < self.retry_after):
                return False
            self._queued.add(instance_type)
            self._busy += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="instance-lookup", daemon=True)
                self._thread.start()
        self._queue.put((instance_type, region))
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued lookup finished (for tests and one-shot commands)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            instance_type, region = item
            try:
                self._lookup(instance_type, region)
            finally:
                with self._idle:
                    self._queued.discard(instance_type)
                    self._busy -= 1
                    self._idle.notify_all()

    def _lookup(self, instance_type: str, region: str | None) -> None:
        from ..aws import UnknownInstanceType, fetch_instance_limits

        self.calls += 1
        try:
            client = self.client_factory(region)
            limits = fetch_instance_limits(client, [instance_type])
        except UnknownInstanceType as exc:
            self._fail(instance_type, region, str(exc), permanent=True)
            return
        except Exception as exc:  # noqa: BLE001 - credentials, network, throttling: degrade to a warning
            self._fail(instance_type, region, f"{type(exc).__name__}: {exc}", permanent=False)
            return
        for item in limits:
            self.found[item.name] = item
            holder = self._holder
            if holder is not None:
                with holder.lock:
                    holder.state.instance_table.add(item)
        log.info("instance type %s looked up in %s: %d ENIs x %d IPv4", instance_type, region,
                 limits[0].enis if limits else 0, limits[0].ipv4_per_eni if limits else 0)

    def _fail(self, instance_type: str, region: str | None, error: str, permanent: bool) -> None:
        with self._lock:
            self.failures[instance_type] = LookupFailure(region, error, self.clock(), permanent)
        log.warning("instance type %s could not be looked up%s: %s (pods on such nodes keep an "
                    "UNKNOWN_INSTANCE_TYPE warning)", instance_type, f" in {region}" if region else "", error)
