"""Unknown instance types: looked up once with DescribeInstanceTypes (moto), in the background."""

from __future__ import annotations

import threading

import boto3
import pytest
from moto import mock_aws

from tests.watch_server import FakeApiServer
from tests import synthetic as s
from webhook.engine.evaluate import UNKNOWN_INSTANCE_TYPE, evaluate
from webhook.engine.instance_types import InstanceTable, load_default_table
from webhook.state.holder import StateHolder
from webhook.engine.model import ClusterState
from tests.polling import wait_until
from webhook.state.live import live_holder
from webhook.state.live_instances import InstanceLookup, region_of

FAST = dict(page_size=50, watch_timeout=(2, 3), read_timeout=5.0, backoff_base=0.05, backoff_max=0.4)


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def table_without(*names: str) -> InstanceTable:
    full = load_default_table()
    return InstanceTable([limits for limits in full if limits.name not in names], full.sources)


class CountingFactory:
    """boto3 clients for the region asked, counting the regions (and optionally blocking)."""

    def __init__(self, gate: threading.Event | None = None):
        self.regions: list = []
        self.gate = gate

    def __call__(self, region):
        self.regions.append(region)
        if self.gate is not None:
            assert self.gate.wait(10)
        return boto3.client("ec2", region_name=region)


def test_region_comes_from_the_node_labels():
    assert region_of({"topology.kubernetes.io/region": "eu-west-3", "topology.kubernetes.io/zone": "x"}) == "eu-west-3"
    assert region_of({"topology.kubernetes.io/zone": "us-east-1b"}) == "us-east-1"
    assert region_of({"failure-domain.beta.kubernetes.io/zone": "ap-southeast-2c"}) == "ap-southeast-2"
    assert region_of({"topology.kubernetes.io/zone": "us-west-2-lax-1a"}) == "us-west-2"
    assert region_of({"topology.kubernetes.io/zone": "us-gov-west-1a"}) == "us-gov-west-1"
    assert region_of({}) is None


def test_unknown_type_is_looked_up_once_and_added_to_the_table(aws):
    holder = StateHolder(ClusterState(table_without("m5.large")))
    factory = CountingFactory()
    lookup = InstanceLookup(client_factory=factory).attach(holder)
    assert lookup.request("m5.large", "eu-west-1")
    assert not lookup.request("m5.large", "eu-west-1")      # already queued or known: no second call
    assert lookup.wait_idle(60)
    assert not lookup.request("m5.large", "eu-west-1")
    limits = holder.state.instance_table.get("m5.large")
    assert limits is not None and limits.enis == 3 and limits.ipv4_per_eni == 10 and limits.source == "ec2"
    assert factory.regions == ["eu-west-1"] and lookup.calls == 1
    lookup.stop()


def test_failures_are_remembered_and_not_retried(aws):
    holder = StateHolder(ClusterState())
    clock = [1000.0]
    factory = CountingFactory()
    lookup = InstanceLookup(client_factory=factory, retry_after=600, clock=lambda: clock[0]).attach(holder)
    # A type EC2 does not know: permanent, never asked again.
    assert lookup.request("zz9.mega", "us-east-1") and lookup.wait_idle(60)
    assert lookup.failures["zz9.mega"].permanent and "zz9.mega" in lookup.failures["zz9.mega"].error
    clock[0] += 10_000
    assert not lookup.request("zz9.mega", "us-east-1")
    # A transient failure (here: no client at all) waits retry_after before one more try.
    broken = InstanceLookup(client_factory=lambda region: (_ for _ in ()).throw(RuntimeError("no credentials")),
                            retry_after=600, clock=lambda: clock[0]).attach(holder)
    assert broken.request("m7i.large", "us-east-1") and broken.wait_idle(60)
    failure = broken.failures["m7i.large"]
    assert not failure.permanent and "no credentials" in failure.error
    for _ in range(100):                                    # a busy watch loop does not hammer AWS
        assert not broken.request("m7i.large", "us-east-1")
    assert broken.calls == 1
    clock[0] += 601
    assert broken.request("m7i.large", "us-east-1") and broken.wait_idle(60)
    assert broken.calls == 2
    assert factory.regions == ["us-east-1"]
    lookup.stop()
    broken.stop()


def test_live_source_looks_up_in_the_background_and_the_warning_goes_away(aws):
    """A node of an unknown type: the watch keeps flowing while AWS answers, then the type is known."""
    cluster = s.two_t3_medium_cluster()["items"]
    with FakeApiServer(cluster) as server:
        gate = threading.Event()
        factory = CountingFactory(gate)
        lookup = InstanceLookup(client_factory=factory)
        holder = live_holder(api_client=server.api_client(), instance_lookup=lookup, **FAST)
        try:
            holder.state.instance_table = table_without("m5.large")
            assert holder.source.wait_ready(10)
            server.add(s.node("ip-10-0-9-9.eu-west-1.compute.internal", "m5.large", zone="eu-west-1a"))
            assert wait_until(lambda: factory.regions == ["eu-west-1"], 5)
            # AWS has not answered yet: the engine warns, and the watch loop is not blocked.
            big = s.small_web(replicas=40)
            with holder.locked() as state:
                assert UNKNOWN_INSTANCE_TYPE in evaluate(state, big).codes
            server.add(s.pod("after", "default", "ip-10-0-9-9.eu-west-1.compute.internal"))
            assert wait_until(lambda: ("default", "after") in holder.state.pods, 5)
            gate.set()
            assert lookup.wait_idle(60)
            assert holder.state.instance_table.get("m5.large") is not None
            with holder.locked() as state:
                assert UNKNOWN_INSTANCE_TYPE not in evaluate(state, big).codes
            # More nodes of that type: no more lookups.
            server.add(s.node("ip-10-0-9-10.eu-west-1.compute.internal", "m5.large", zone="eu-west-1b"))
            assert wait_until(lambda: "ip-10-0-9-10.eu-west-1.compute.internal" in holder.state.nodes, 5)
            assert lookup.wait_idle(60) and lookup.calls == 1
        finally:
            gate.set()
            holder.stop()


def test_failed_lookup_keeps_the_unknown_instance_type_warning(aws):
    cluster = s.two_t3_medium_cluster()["items"] + [s.node("ip-10-0-7-7.ec2.internal", "zz9.mega", zone="us-east-1c")]
    with FakeApiServer(cluster) as server:
        lookup = InstanceLookup(client_factory=CountingFactory())
        holder = live_holder(api_client=server.api_client(), instance_lookup=lookup, wait=True, wait_timeout=10, **FAST)
        try:
            assert lookup.wait_idle(60) and "zz9.mega" in lookup.failures
            with holder.locked() as state:
                assert UNKNOWN_INSTANCE_TYPE in evaluate(state, s.small_web(replicas=30)).codes
            node = server.get("Node", "ip-10-0-7-7.ec2.internal")
            node["metadata"]["labels"]["touched"] = "yes"
            server.modify(node)                              # seen again: not asked again
            assert wait_until(lambda: holder.state.nodes["ip-10-0-7-7.ec2.internal"].labels.get("touched"), 5)
            assert lookup.wait_idle(60) and lookup.calls == 1
        finally:
            holder.stop()


def test_instance_lookup_true_means_the_default_lookup(aws):
    """``live_holder(instance_lookup=True)`` was accepted by its signature, then handed ``True``
    to the source, which crashed calling ``True.attach``: it now means "look up, the default way"."""
    with FakeApiServer(s.two_t3_medium_cluster()["items"]) as server:
        holder = live_holder(api_client=server.api_client(), instance_lookup=True, wait=True, wait_timeout=10, **FAST)
        try:
            assert isinstance(holder.source.instance_lookup, InstanceLookup)
            assert "ip-10-0-1-17.ec2.internal" in holder.state.nodes
        finally:
            holder.stop()
