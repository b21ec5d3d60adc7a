"""The AWS lookups behind subnet room, against moto's EC2 (DescribeInstances, DescribeSubnets).

moto answers the same API calls EC2 does; the webhook's code turns the answers into
EC2Subnet / EC2Instance data objects and the engine judges subnet room on them.
"""

import threading

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from moto import mock_aws

from tests import synthetic as s
from webhook.aws import describe_instances, describe_subnets
from webhook.engine.evaluate import evaluate
from webhook.state.holder import StateHolder
from webhook.state.live_aws import SubnetRefresher, what_to_describe
from webhook.state.snapshot import state_from_objects

REGION = "us-east-1"


@pytest.fixture
def ec2():
    with mock_aws():
        client = boto3.client("ec2", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        vpc = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = client.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]
        image = "ami-12c6146b"          # one of moto's built-in AMIs
        ids = []
        for _ in range(2):
            inst = client.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.xlarge",
                                        SubnetId=subnet["SubnetId"])["Instances"][0]
            eni = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
            client.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=7)
            ids.append(inst["InstanceId"])
        yield client, subnet["SubnetId"], ids


def m5_node(name, instance_id):
    node = s.node(name, "m5.xlarge", "us-east-1a",
                  allocatable={"cpu": "3920m", "memory": "15Gi", "ephemeral-storage": "76Gi", "pods": "58"})
    node["spec"]["providerID"] = f"aws:///us-east-1a/{instance_id}"
    return node


def cluster_with(ids):
    aws_node = s.aws_node()
    aws_node["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "WARM_IP_TARGET", "value": "2"})
    items = [m5_node("ip-10-0-1-10.ec2.internal", ids[0]), m5_node("ip-10-0-1-11.ec2.internal", ids[1]),
             aws_node, s.namespace("default")]
    for n, node in enumerate(items[:2]):
        items += [s.pod(f"addon-{n}-{i}", "kube-system", node["metadata"]["name"],
                        s.pod_spec([s.container("a", requests={"cpu": "10m"})])) for i in range(5)]
    return StateHolder(state_from_objects(items))


def test_describe_subnets_and_instances_read_what_ec2_says(ec2):
    client, subnet_id, ids = ec2
    instances = describe_instances(client, ids)
    assert sorted(i["metadata"]["name"] for i in instances) == sorted(ids)
    enis = instances[0]["spec"]["networkInterfaces"]
    assert [(e["deviceIndex"], e["secondaryIPv4"], e["subnetId"]) for e in enis] == [(0, 7, subnet_id)]
    [subnet] = describe_subnets(client, [subnet_id], "2026-11-29T16:00:00Z")
    # 256 - 5 reserved - 2 primary - 14 secondary addresses.
    assert subnet["spec"]["availableIpAddressCount"] == 235
    assert subnet["spec"]["availabilityZone"] == "us-east-1a" and subnet["spec"]["cidrBlock"] == "10.0.1.0/24"
    assert describe_subnets(client, ["subnet-00000000"]) == []


def test_refresher_feeds_the_state_and_the_engine_judges_ec2s_numbers(ec2):
    client, subnet_id, ids = ec2
    holder = cluster_with(ids)
    assert what_to_describe(holder.state) == {REGION: (set(ids), set())}
    refresher = SubnetRefresher(client_factory=lambda region: client).attach(holder)
    assert refresher.refresh_once()
    network = holder.state.network
    assert network.subnets[subnet_id].available == 235 and network.aws_error is None
    # Both nodes hold 7 IPs for 5 pods (EC2 says so). 240 more pods do not fit 235 addresses.
    verdict = evaluate(holder.state, s.small_web("web", 100))
    assert verdict.codes == [] and verdict.verdict == "allow"
    # Use the subnet up: 200 more addresses taken elsewhere in the VPC.
    other = client.create_network_interface(SubnetId=subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    client.assign_private_ip_addresses(NetworkInterfaceId=other, SecondaryPrivateIpAddressCount=200)
    assert refresher.refresh_once()
    assert network.subnets[subnet_id].available == 34
    verdict = evaluate(holder.state, s.small_web("web", 51))
    assert verdict.verdict == "deny" and verdict.codes == ["SUBNET_IP_EXHAUSTED"]
    assert "has 34 free IPs" in verdict.reasons[0].summary


def test_a_failing_lookup_keeps_the_figures_and_warns(ec2):
    client, subnet_id, ids = ec2
    holder = cluster_with(ids)
    calls = {"fail": False}

    def factory(region):
        if calls["fail"]:
            raise ClientError(
                {"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}}, "DescribeInstances"
            )
        return client

    refresher = SubnetRefresher(client_factory=factory).attach(holder)
    assert refresher.refresh_once()
    calls["fail"] = True
    assert not refresher.refresh_once()
    assert holder.state.network.subnets[subnet_id].available == 235        # last figures kept
    verdict = evaluate(holder.state, s.small_web("web", 300))
    assert "SUBNET_DATA_UNAVAILABLE" in verdict.codes
    assert all(r.severity == "warn" for r in verdict.reasons if r.code.startswith("SUBNET"))


def test_no_credentials_turns_the_lookup_off_quietly(ec2):
    _client, _subnet, ids = ec2
    holder = cluster_with(ids)

    def factory(region):
        raise NoCredentialsError()

    refresher = SubnetRefresher(client_factory=factory).attach(holder)
    assert not refresher.refresh_once() and refresher.disabled
    assert holder.state.network.aws_error is None
    assert evaluate(holder.state, s.small_web("web", 2)).verdict == "allow"


def test_a_slow_lookup_never_holds_the_state_lock(ec2):
    client, _subnet, ids = ec2
    holder = cluster_with(ids)
    entered, release = threading.Event(), threading.Event()

    def slow(region):
        entered.set()
        release.wait(10)
        return client

    refresher = SubnetRefresher(client_factory=slow).attach(holder)
    worker = threading.Thread(target=refresher.refresh_once)
    worker.start()
    try:
        assert entered.wait(5)
        # A review can take the lock and decide while EC2 has not answered.
        assert holder.lock.acquire(timeout=1)
        try:
            assert evaluate(holder.state, s.small_web("web", 2)).verdict == "allow"
        finally:
            holder.lock.release()
    finally:
        release.set()
        worker.join(10)
    assert refresher.refreshes == 1


def test_snapshot_aws_records_ec2_figures_that_check_reads(ec2, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from webhook.state.record import aws_objects
    from webhook.state.snapshot import load_snapshot

    client, subnet_id, ids = ec2
    holder = cluster_with(ids)
    recorded = aws_objects(holder.state, lambda region: client)
    assert sorted(o["kind"] for o in recorded) == ["EC2Instance", "EC2Instance", "EC2Subnet"]
    nodes = [m5_node("ip-10-0-1-10.ec2.internal", ids[0]), m5_node("ip-10-0-1-11.ec2.internal", ids[1])]
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(s.as_list(nodes + [s.aws_node(), s.namespace("default")] + recorded)))
    state = load_snapshot(str(path))
    assert state.network.subnets[subnet_id].available == 235
    # Take the subnet down to 34 free addresses and record again: check (a real CLI run) refuses 51 pods,
    # which fit the nodes (2 x 51 IP slots) but need 51 - 2 x 2 held = 47 addresses plus new ENIs.
    other = client.create_network_interface(SubnetId=subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    client.assign_private_ip_addresses(NetworkInterfaceId=other, SecondaryPrivateIpAddressCount=200)
    aws_node = s.aws_node()
    aws_node["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "WARM_IP_TARGET", "value": "2"})
    pods = [
        s.pod(
            f"addon-{n}-{i}",
            "kube-system",
            node["metadata"]["name"],
            s.pod_spec([s.container("a", requests={"cpu": "10m"})]),
        )
        for n, node in enumerate(nodes)
        for i in range(5)
    ]
    path.write_text(json.dumps(s.as_list(nodes + pods + [aws_node, s.namespace("default")]
                                         + aws_objects(holder.state, lambda region: client))))
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(s.as_manifest(s.small_web("web", 51))))
    run = subprocess.run([sys.executable, "-m", "webhook.cli", "check", "--cluster", str(path), "-f", str(manifest),
                          "-o", "json"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                         timeout=120)
    assert run.returncode == 1, run.stderr
    [result] = json.loads(run.stdout)["results"]
    assert [r["code"] for r in result["reasons"]] == ["SUBNET_IP_EXHAUSTED"]
    assert "has 34 free IPs" in result["reasons"][0]["message"]

    def denied(region):
        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "DescribeInstances")

    [lookup] = aws_objects(holder.state, denied)
    assert lookup["kind"] == "EC2Lookup" and "UnauthorizedOperation" in lookup["spec"]["error"]
