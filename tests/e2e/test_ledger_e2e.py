"""High availability: two webhook processes, two workers each, one reservation ledger.

The race of issue #12, against the real kube-apiserver: 20 rounds in which 8 concurrent
clients create 12 Deployments of 5 replicas each against 21 free pod IP slots. Half the
namespaces are served by one ``capacity-webhook serve`` process and half by the other
(two ValidatingWebhookConfigurations), each process runs 2 gunicorn workers in live mode,
and all four share the ``CapacityLedger`` object. Each round must admit exactly 4
Deployments (20 pods; a fifth would need 25): never more (two deciders spending the same
slots), never fewer (a promise counted twice). Then the admitted Deployments' pods
appear, as a controller would create them, and the ledger must empty; in the last round
no pod appears and the ledger must empty once the TTL passes.

The two nodes are tainted for this test only, so other tests' objects never compete for
their slots. ``failurePolicy: Fail`` and a 10 s timeout here: on an overloaded CI machine a
timed-out review must show up as a refusal, not as an unchecked admission.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from server_fixture import WebhookProcess, families
from tests import synthetic as s
from webhook.state import ledger_api

from .controlplane import LEDGER_NAMESPACE, TEST_LABEL

pytestmark = pytest.mark.e2e

ROUNDS, DEPLOYMENTS, REPLICAS, CLIENTS = 20, 12, 5, 8
FREE = 21
TTL = 8.0
NODES = ("ip-10-0-8-1.ec2.internal", "ip-10-0-8-2.ec2.internal")
POOL = "capacity-webhook.e2e/pool"
NAMESPACES = ("ledger-a", "ledger-b")
TAINT = {"key": POOL, "value": "ledger", "effect": "NoSchedule"}


def deployment(name: str, namespace: str) -> dict:
    obj = s.as_manifest(s.small_web(name, REPLICAS, namespace))
    spec = obj["spec"]["template"]["spec"]
    spec["nodeSelector"] = {POOL: "ledger"}
    spec["tolerations"] = [{"key": POOL, "operator": "Equal", "value": "ledger", "effect": "NoSchedule"}]
    obj["metadata"].setdefault("labels", {})[TEST_LABEL] = "true"
    return obj


def webhook_config(name: str, namespace: str, server: WebhookProcess) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, "labels": {TEST_LABEL: "true"}},
            "webhooks": [{"name": f"{name}.capacity-webhook.io", "admissionReviewVersions": ["v1"],
                          "sideEffects": "NoneOnDryRun", "failurePolicy": "Fail", "timeoutSeconds": 10,
                          "clientConfig": {"url": server.url("/validate"), "caBundle": server.bundle.ca_bundle},
                          "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                          "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                     "resources": ["deployments", "deployments/scale"]}]}]}


@pytest.fixture(scope="module")
def race(control_plane, tmp_path_factory):
    from kubernetes import config

    cp = control_plane
    cp.apply([s.as_manifest(s.aws_node())])
    for name, ip_pods in zip(NODES, (5, 4), strict=True):           # 15 IP slots each: 10 + 11 = 21 free
        cp.create_node(name, "t3.medium", "us-east-1a", labels={POOL: "ledger"}, taints=[TAINT])
        for i in range(ip_pods):
            cp.create_pod("ledger-system", f"dns-{name.split('.')[0]}-{i}", name, {"cpu": "10m"},
                          tolerations=[{"operator": "Exists"}])
    for namespace in NAMESPACES:
        cp.ensure_namespace(namespace)
    args = ("--kubeconfig", str(cp.webhook_kubeconfig), "--mode", "enforce", "--workers", "2", "--threads", "4",
            "--reservation-ttl", str(TTL), "--ledger-namespace", LEDGER_NAMESPACE, "--ledger-refresh", "0.5",
            "--ledger-timeout", "5")
    first = WebhookProcess(tmp_path_factory.mktemp("ledger-a"), None, *args)
    second = WebhookProcess(tmp_path_factory.mktemp("ledger-b"), None, *args)
    second.bundle, second.session = first.bundle, first.new_session()      # one CA for both
    servers = (first, second)
    api = config.new_client_from_config(config_file=str(cp.admin_kubeconfig))
    try:
        for server in servers:
            server.start(timeout=240)     # a server that cannot start fails the test: the race must run
        cp.apply([webhook_config(f"ledger-{i}", ns, srv)
                  for i, (ns, srv) in enumerate(zip(NAMESPACES, servers, strict=True))])
        wait_free(servers, FREE)
        yield cp, servers, api
    finally:
        cp.kubectl("delete", "validatingwebhookconfigurations", "ledger-0", "ledger-1", "--ignore-not-found",
                   check=False)
        for server in servers:
            server.stop()
        api.close()


def free_slots(server: WebhookProcess) -> int:
    free = {labels["node"]: v for labels, v in families(server.metrics(), "capacity_webhook_node_free_ip_slots")}
    return int(sum(free.get(n, -100) for n in NODES))


def wait_free(servers, expected: int, timeout: float = 30.0) -> None:
    """Until every worker of every process sees ``expected`` free slots (several reads: workers differ)."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 8:
        if all(free_slots(server) == expected for server in servers):
            streak += 1
        else:
            streak = 0
            if time.monotonic() > deadline:
                raise AssertionError(f"free slots {[free_slots(x) for x in servers]}, expected {expected}")
            time.sleep(0.1)


def ledger_entries(api) -> list:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
            ledger_api.GROUP, ledger_api.VERSION, LEDGER_NAMESPACE, ledger_api.PLURAL, ledger_api.DEFAULT_NAME)
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise
    return (obj.get("spec") or {}).get("reservations") or []


def wait_ledger_empty(api, timeout: float) -> float:
    started = time.monotonic()
    while ledger_entries(api):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"ledger still holds {json.dumps(ledger_entries(api))[:2000]}")
        time.sleep(0.1)
    return time.monotonic() - started


def create(api, obj) -> tuple[str, bool, str]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    meta = obj["metadata"]
    try:
        client.AppsV1Api(api).create_namespaced_deployment(meta["namespace"], obj)
        return meta["namespace"], True, ""
    except ApiException as exc:
        return meta["namespace"], False, f"{exc.status}: {exc.body}"


def materialize(cp, api, admitted: list[tuple[str, str]], round_no: int) -> None:
    """What the Deployment controller and the scheduler would do: a ReplicaSet per Deployment, its pods bound."""
    from kubernetes import client

    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    slots = [NODES[0]] * 10 + [NODES[1]] * 11
    for namespace, name in admitted:
        owner = apps.read_namespaced_deployment(name, namespace)
        rs_name = f"{name}-{round_no}"
        template = deployment(name, namespace)["spec"]["template"]
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": rs_name, "namespace": namespace, "labels": {TEST_LABEL: "true"},
                           "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                "uid": owner.metadata.uid, "controller": True}]},
              "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
                       "template": template}}
        made = apps.create_namespaced_replica_set(namespace, rs)
        for i in range(REPLICAS):
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{rs_name}-{i}", "namespace": namespace,
                                "labels": {"app": name, TEST_LABEL: "true"},
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                                     "uid": made.metadata.uid, "controller": True}]},
                   "spec": dict(template["spec"], nodeName=slots.pop(0), terminationGracePeriodSeconds=0)}
            core.create_namespaced_pod(namespace, pod)


def clean(cp, servers) -> None:
    for namespace in NAMESPACES:
        cp.kubectl("delete", "deployments,replicasets", "--all", "-n", namespace, "--wait=false", check=False)
        cp.kubectl("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", "--wait=false",
                   check=False)
    wait_free(servers, FREE)


def test_two_processes_with_two_workers_never_admit_more_than_the_free_slots(race):
    cp, servers, api = race
    admitted_per_round, released_after = [], []
    for round_no in range(ROUNDS):
        objs = [deployment(f"r{round_no}-web{i}", NAMESPACES[i % 2]) for i in range(DEPLOYMENTS)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(lambda o: create(api, o), objs))
        admitted = [
            (o["metadata"]["namespace"], o["metadata"]["name"]) for o, r in zip(objs, results, strict=True) if r[1]
        ]
        refusals = [r[2] for r in results if not r[1]]
        assert all("would stay Pending" in text for text in refusals), refusals[:2]
        admitted_per_round.append(len(admitted))
        assert len(admitted) * REPLICAS <= FREE, f"round {round_no}: {admitted} admitted"
        last = round_no == ROUNDS - 1
        if not last:
            materialize(cp, api, admitted, round_no)        # the pods appear: their promises are fulfilled
            released_after.append(wait_ledger_empty(api, timeout=TTL - 1.0))
        else:                                               # no pod ever appears: the TTL frees the ledger
            assert ledger_entries(api)
            released_after.append(wait_ledger_empty(api, timeout=TTL + 5.0))
        clean(cp, servers)
    print(f"admitted per round: {admitted_per_round}; ledger empty after (s): "
          f"{[round(x, 1) for x in released_after]}")
    assert max(admitted_per_round) * REPLICAS <= FREE
    # Exactly 4 fit (10 + 11 slots, 5 pods each): fewer would be a false deny.
    assert admitted_per_round == [4] * ROUNDS
    for server in servers:
        lines = [r for r in server.log_records() if r.get("logger") == "capacity_webhook.review"]
        assert lines, "every process must have served reviews"
        assert not [r for r in lines if str(r.get("ledger", "")).startswith("unrecorded")], \
            "a reservation went unrecorded"
        assert sum(1 for r in lines if r.get("reserved")) > 0
