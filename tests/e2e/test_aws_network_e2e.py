"""Subnet room and security groups for pods through a real kube-apiserver and kubectl.

Installs the VPC CNI's ENIConfig CRD and the VPC resource controller's SecurityGroupPolicy
and CNINode CRDs (vendored in tests/e2e/crds with their provenance), runs the webhook live
with its own read-only identity and an EC2 API served by moto on loopback (the webhook's
boto3 reaches it through AWS_ENDPOINT_URL), and shows ``kubectl apply`` refused with
SUBNET_IP_EXHAUSTED and with POD_ENI_EXHAUSTED (a policy selecting pods, and one selecting
ServiceAccounts by label, read through the watch). With a Karpenter EC2NodeClass and an EKS
Auto Mode NodeClass CRD (tests/e2e/crds, the fields the webhook reads), POD_LIMIT_REACHED on
their nodes names the node class setting to change. Its nodes carry their own labels and the
workloads select them, so nodes other modules left behind do not change the numbers;
everything is removed afterwards.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from tests import synthetic as s
from tests.synthetic import as_manifest

from server_fixture import WebhookProcess

from .controlplane import TEST_LABEL, free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "capacity-webhook"
CRDS = Path(__file__).resolve().parent / "crds"
NS = "aws-net"
SUBNET_NODE, SG_NODE = "ip-10-0-7-10.ec2.internal", "ip-10-0-7-11.ec2.internal"
KARPENTER_NODE, AUTO_NODE = "ip-10-0-7-12.ec2.internal", "ip-10-0-7-13.ec2.internal"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _ec2(url):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=url, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _create_node(cp, name, instance_type, zone, allocatable, labels, provider_id=None):
    """As ControlPlane.create_node, with the providerID of a moto instance."""
    node = s.node(name, instance_type, zone, allocatable=allocatable, labels={**labels, TEST_LABEL: "true"})
    if provider_id:
        node["spec"]["providerID"] = provider_id
    cp.kubectl("create", "-f", "-", input=json.dumps(as_manifest(node)))
    cp.kubectl("patch", "node", name, "--type=merge", "-p", json.dumps({"spec": {"taints": None}}))
    cp.kubectl(
        "patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": node["status"]})
    )


def _aws_node(**env):
    ds = as_manifest(s.aws_node())
    ds["spec"]["template"]["spec"]["containers"][0]["env"] += [{"name": k, "value": v} for k, v in env.items()]
    return ds


@pytest.fixture(scope="module")
def network(control_plane, tmp_path_factory):
    cp = control_plane
    for crd in sorted(CRDS.glob("*.yaml")):
        cp.kubectl("apply", "-f", str(crd))
    for crd in ("eniconfigs.crd.k8s.amazonaws.com", "securitygrouppolicies.vpcresources.k8s.aws",
                "cninodes.vpcresources.k8s.aws", "ec2nodeclasses.karpenter.k8s.aws", "nodeclasses.eks.amazonaws.com"):
        cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    moto.start()
    url = f"http://127.0.0.1:{moto._port}"
    ec2 = _ec2(url)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.7.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="m5.xlarge",
                                 SubnetId=subnet)["Instances"][0]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=instance["NetworkInterfaces"][0]["NetworkInterfaceId"],
                                    SecondaryPrivateIpAddressCount=7)
    # Other users of the subnet: 223 more addresses, leaving 251 - 8 - 223 = 20.
    other = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=other, SecondaryPrivateIpAddressCount=222)
    assert ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailableIpAddressCount"] == 20

    cp.apply([_aws_node(WARM_IP_TARGET="2", ENABLE_POD_ENI="true")])
    cp.ensure_namespace(NS)
    big = {"cpu": "3920m", "memory": "15Gi", "ephemeral-storage": "76Gi", "pods": "58"}
    _create_node(cp, SUBNET_NODE, "m5.xlarge", "us-east-1a", big, {"pool": "aws-net-subnet"},
                 f"aws:///us-east-1a/{instance['InstanceId']}")
    for i in range(5):
        cp.create_pod(NS, f"addon-{i}", SUBNET_NODE, {"cpu": "10m"})
    _create_node(cp, SG_NODE, "m5.large", "us-east-1a",
                 {"cpu": "1930m", "memory": "7Gi", "ephemeral-storage": "76Gi", "pods": "29",
                  "vpc.amazonaws.com/pod-eni": "1"}, {"pool": "aws-net-sg"})
    cp.apply([{"apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
               "metadata": {"name": "db-sg", "namespace": NS},
               "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                        "securityGroups": {"groupIds": ["sg-0123456789abcdef0"]}}},
              {"apiVersion": "vpcresources.k8s.aws/v1alpha1", "kind": "CNINode", "metadata": {"name": SG_NODE},
               "spec": {"features": [{"name": "SecurityGroupsForPods"}]}},
              {"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig", "metadata": {"name": "us-east-1a"},
               "spec": {"subnet": subnet, "securityGroups": ["sg-0123456789abcdef0"]}}])
    # A node Karpenter launched from an EC2NodeClass that sets maxPods 20, and an EKS Auto Mode node.
    cp.apply([{"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "small"},
               "spec": {"amiFamily": "AL2023", "role": "KarpenterNodeRole", "kubelet": {"maxPods": 20}}},
              {"apiVersion": "eks.amazonaws.com/v1", "kind": "NodeClass", "metadata": {"name": "default"},
               "spec": {"role": "AutoModeNodeRole"}}])
    _create_node(cp, KARPENTER_NODE, "m5.large", "us-east-1a",
                 {"cpu": "1930m", "memory": "7Gi", "ephemeral-storage": "76Gi", "pods": "20"},
                 {"pool": "aws-net-karpenter", "karpenter.sh/nodepool": "small",
                  "karpenter.k8s.aws/ec2nodeclass": "small"})
    _create_node(cp, AUTO_NODE, "c5.18xlarge", "us-east-1a",
                 {"cpu": "71750m", "memory": "130Gi", "ephemeral-storage": "76Gi", "pods": "110"},
                 {"pool": "aws-net-auto", "karpenter.sh/nodepool": "general-purpose",
                  "eks.amazonaws.com/nodeclass": "default"})

    saved = {k: os.environ.get(k) for k in (*AWS_ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=url)
    server = WebhookProcess(tmp_path_factory.mktemp("webhook-net"), None, "--kubeconfig", str(cp.webhook_kubeconfig),
                            "--mode", "enforce", "--reservation-ttl", "2", "--stale-after", "60")
    try:
        server.start(timeout=60)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        cp.install_chart_for("cw-net", "capacity-webhook-net", server, CHART)
        yield cp, server
    finally:
        server.stop()
        cp.helm("uninstall", "cw-net", "-n", "capacity-webhook-net", check=False)
        cp.kubectl("delete", "namespace", NS, "--wait=false", check=False)
        cp.kubectl("delete", "node", SUBNET_NODE, SG_NODE, KARPENTER_NODE, AUTO_NODE, "--wait=false", check=False)
        for crd in sorted(CRDS.glob("*.yaml")):
            cp.kubectl("delete", "-f", str(crd), "--wait=false", check=False)
        cp.apply([as_manifest(s.aws_node())])
        moto.stop()


def _deployment(name, replicas, labels, pool):
    spec = s.pod_spec([s.container(name, requests={"cpu": "10m", "memory": "32Mi"})], nodeSelector={"pool": pool})
    obj = as_manifest(s.deployment(name, replicas, NS, spec))
    obj["spec"]["selector"] = {"matchLabels": labels}
    obj["spec"]["template"]["metadata"]["labels"] = labels
    return obj


def _apply_until(cp, obj, predicate, timeout=30.0):
    """Dry-run applies until the webhook's caches (watch, AWS lookup) show what ``predicate`` wants."""
    deadline = time.monotonic() + timeout
    while True:
        result = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(obj), check=False)
        if predicate(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def _refused_once_seen(cp, obj, marker: str) -> str:
    """Wait until a dry run shows ``marker`` (the webhook's caches caught up), then apply for
    real: the API server must refuse it. Returns kubectl's stderr."""
    seen = _apply_until(cp, obj, lambda r: marker in r.stderr)
    refused = cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=False)
    assert refused.returncode != 0 and "denied the request" in refused.stderr, seen.stderr
    return refused.stderr


def test_a_deployment_the_subnet_cannot_address_is_refused(network):
    cp, _ = network
    web = _deployment("web", 30, {"app": "web"}, "aws-net-subnet")
    # The node holds 7 IPs for 5 pods (EC2 says); 30 more need 28 addresses plus 2 ENIs: 30 > 20 free.
    seen = _apply_until(cp, web, lambda r: "SUBNET" in r.stderr or "subnet" in r.stderr)
    assert "has 20 free IPs, its new pods need 30" in seen.stderr, seen.stderr
    refused = cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(web), check=False)
    assert refused.returncode != 0 and "denied the request" in refused.stderr
    assert "Deployment aws-net/web: subnet" in refused.stderr and "(us-east-1a) has 20 free IPs" in refused.stderr
    assert cp.kubectl("get", "deployment", "web", "-n", NS, check=False).returncode != 0
    fits = cp.kubectl("apply", "--dry-run=server", "-f", "-", check=False,
                      input=yaml.safe_dump(_deployment("web", 10, {"app": "web"}, "aws-net-subnet")))
    assert fits.returncode == 0, fits.stderr


def test_a_security_group_policy_workload_beyond_branch_enis_is_refused(network):
    cp, _ = network
    db = _deployment("db", 2, {"app": "db"}, "aws-net-sg")
    refused_stderr = _refused_once_seen(cp, db, "branch ENI")
    assert ("Deployment aws-net/db: 1 of 2 pods would stay Pending: no branch ENIs (security groups for pods) left"
            in refused_stderr)
    assert "SecurityGroupPolicy db-sg selects these pods" in refused_stderr
    # The same pods without the policy's label take secondary IPs and fit.
    plain = cp.kubectl("apply", "--dry-run=server", "-f", "-", check=False,
                       input=yaml.safe_dump(_deployment("api", 2, {"app": "api"}, "aws-net-sg")))
    assert plain.returncode == 0, plain.stderr


def test_a_policy_selecting_a_service_account_is_matched_through_the_watched_service_accounts(network):
    cp, _ = network
    cp.apply([{"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "payments", "namespace": NS, "labels": {"team": "payments"}}},
              {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reports", "namespace": NS}},
              {"apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
               "metadata": {"name": "payments-sg", "namespace": NS},
               "spec": {"serviceAccountSelector": {"matchLabels": {"team": "payments"}},
                        "securityGroups": {"groupIds": ["sg-0123456789abcdef0"]}}}])
    pay = _deployment("pay", 2, {"app": "pay"}, "aws-net-sg")
    pay["spec"]["template"]["spec"]["serviceAccountName"] = "payments"
    # The node has one branch ENI: the policy matches the ServiceAccount's labels, so one pod stays Pending.
    refused_stderr = _refused_once_seen(cp, pay, "payments-sg")
    assert "Deployment aws-net/pay: 1 of 2 pods would stay Pending: no branch ENIs" in refused_stderr
    assert "SecurityGroupPolicy payments-sg selects these pods" in refused_stderr
    assert "was not checked" not in refused_stderr           # the labels were known: a certain deny
    # Pods of a ServiceAccount without the label take secondary IPs and fit.
    reports = _deployment("reports", 2, {"app": "reports"}, "aws-net-sg")
    reports["spec"]["template"]["spec"]["serviceAccountName"] = "reports"
    fits = cp.kubectl("apply", "--dry-run=server", "-f", "-", check=False, input=yaml.safe_dump(reports))
    assert fits.returncode == 0 and "branch ENI" not in fits.stderr, fits.stderr


def test_pod_limit_on_node_class_nodes_names_the_node_class_setting(network):
    cp, _ = network
    # maxPods 20 from EC2NodeClass small; the node still owes the aws-node DaemonSet a pod: 19 fit.
    web = _deployment("kc", 20, {"app": "kc"}, "aws-net-karpenter")
    refused_stderr = _refused_once_seen(cp, web, "EC2NodeClass small")
    assert ("Deployment aws-net/kc: 1 of 20 pods would stay Pending: kubelet pod limit (maxPods) reached"
            in refused_stderr)
    assert f"node {KARPENTER_NODE}: 19 of 20 pod slots left (spec.kubelet.maxPods 20 on EC2NodeClass small)" \
        in refused_stderr
    # m5.large, secondary IPs: the VPC CNI allows 3 x 9 + 2 = 29.
    assert "Raise spec.kubelet.maxPods on EC2NodeClass small to 29" in refused_stderr
    assert "Raise kubelet maxPods" not in refused_stderr
    # EKS Auto Mode: 110 pods and no setting to raise.
    auto = _deployment("auto", 110, {"app": "auto"}, "aws-net-auto")
    refused_stderr = _refused_once_seen(cp, auto, "EKS Auto Mode")
    assert f"node {AUTO_NODE}: 109 of 110 pod slots left (EKS Auto Mode caps nodes at 110 pods)" in refused_stderr
    assert "EKS caps it at 110 pods and has no maxPods setting" in refused_stderr
