"""The live AWS lookups subnet room is judged on: DescribeInstances and DescribeSubnets, every minute.

One background thread (``SubnetRefresher``) reads the nodes' instance ids (their
``providerID``) and, under custom networking, the ENIConfigs' subnets from the ClusterState,
asks EC2 (boto3's default credential chain: IRSA or EKS Pod Identity in the cluster;
region from the nodes' labels; short botocore timeouts and two retries) and swaps the
answers into ``state.network`` under the holder's lock. A review never waits for AWS: it
reads whatever figures are there.

Failures degrade, never deny: without credentials at all the lookup turns itself off
(logged once: subnet room is then simply not checked); any other failure (AccessDenied,
timeouts, throttling) keeps the last figures and sets ``network.aws_error``, which
reviews report as a ``SUBNET_DATA_UNAVAILABLE`` warning. ``CAPACITY_WEBHOOK_AWS_SUBNETS=false``
turns the lookup off.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Callable

from .live_instances import region_of

if TYPE_CHECKING:
    from .holder import StateHolder

log = logging.getLogger("capacity_webhook.aws_subnets")
ENV_SWITCH = "CAPACITY_WEBHOOK_AWS_SUBNETS"


def enabled_by_env() -> bool:
    return os.environ.get(ENV_SWITCH, "true").strip().lower() not in ("false", "0", "no", "off")


def boto3_ec2_factory(region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("ec2", region_name=region, config=Config(
        connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _no_credentials(exc: BaseException) -> bool:
    return type(exc).__name__ in ("NoCredentialsError", "NoRegionError", "PartialCredentialsError")


def what_to_describe(state) -> dict[str | None, tuple[set, set]]:
    """region -> (instance ids, ENIConfig subnet ids) from the nodes and ENIConfigs in ``state``."""
    wanted: dict[str | None, tuple[set, set]] = {}
    network = state.network
    for name, node in state.nodes.items():
        net = network.nodes.get(name)
        if net and net.instance_id:
            wanted.setdefault(region_of(node.labels), (set(), set()))[0].add(net.instance_id)
    if state.cni.custom_networking and network.eni_configs:
        regions = list(wanted) or [None]
        for subnet_id in network.eni_configs.values():
            if subnet_id:
                wanted.setdefault(regions[0], (set(), set()))[1].add(subnet_id)
    return wanted


def describe(state_reader: Callable[[], dict], client_factory: Callable[[str | None], Any]) -> tuple[list, list]:
    """EC2Instance and EC2Subnet objects for what ``state_reader()`` says to describe."""
    from ..aws import describe_instances, describe_subnets

    observed = _now()
    instances: list = []
    subnets: list = []
    for region, (instance_ids, extra_subnets) in sorted(state_reader().items(), key=lambda kv: str(kv[0])):
        client = client_factory(region)
        found = describe_instances(client, instance_ids) if instance_ids else []
        instances.extend(found)
        subnet_ids = set(extra_subnets)
        for obj in found:
            subnet_ids.add(obj["spec"].get("subnetId"))
            subnet_ids.update(i.get("subnetId") for i in obj["spec"]["networkInterfaces"])
        subnets.extend(describe_subnets(client, {s for s in subnet_ids if s}, observed))
    return subnets, instances


class SubnetRefresher:
    """Refreshes ``holder.state.network``'s EC2 figures every ``interval`` seconds."""

    def __init__(self, client_factory: Callable[[str | None], Any] = boto3_ec2_factory, interval: float = 60.0):
        self.client_factory = client_factory
        self.interval = interval
        self.holder: StateHolder | None = None
        self.disabled: str | None = None
        self.refreshes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, holder: StateHolder) -> "SubnetRefresher":
        self.holder = holder
        return self

    def _wanted(self) -> dict:
        holder = self.holder
        if holder is None:        # not attached: nothing to describe
            return {}
        with holder.lock:
            return what_to_describe(holder.state)

    def refresh_once(self) -> bool:
        """One lookup; True when the figures were replaced."""
        if self.disabled or self.holder is None:
            return False
        try:
            subnets, instances = describe(self._wanted, self.client_factory)
        except Exception as exc:  # noqa: BLE001 - any AWS or network failure degrades to a warning
            self.failures += 1
            if _no_credentials(exc):
                self.disabled = f"{type(exc).__name__}: {exc}"
                log.warning("no AWS credentials or region (%s): subnet room is not checked", exc)
                return False
            message = f"{type(exc).__name__}: {exc}"
            log.warning("AWS subnet lookup failed: %s", message)
            with self.holder.lock:
                self.holder.state.network.replace_aws([], [], None, message)
            return False
        with self.holder.lock:
            self.holder.state.network.replace_aws(subnets, instances, _now(), None)
        self.refreshes += 1
        return True

    def start(self) -> "SubnetRefresher":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aws-subnets", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            ready = getattr(self.holder, "ready", True)
            if ready:
                self.refresh_once()
                if self.disabled:
                    return
            self._stop.wait(self.interval if ready else 1.0)

    def stop(self) -> None:
        self._stop.set()
