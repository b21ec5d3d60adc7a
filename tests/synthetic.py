"""Kubernetes objects shaped exactly as ``kubectl get -o json`` prints them.

Tests, benchmarks and the bundled example cluster build their objects here, so every
one of them carries the metadata (uid, resourceVersion, creationTimestamp, ownerReferences)
and status layout of the real API, not a hand-trimmed shape the engine happens to like.
Only builders live here; no capacity logic. It sits under tests/, not in the webhook
package, because nothing the product runs needs it: the image and the wheel ship without it.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Iterable, Mapping

CREATED = "2026-11-01T08:00:00Z"
_counter = iter(range(1000, 10**9))

# t3.medium allocatable on EKS (AL2023 AMI, maxPods 17): what `kubectl get node -o json` shows.
T3_MEDIUM_ALLOCATABLE = {"cpu": "1930m", "ephemeral-storage": "18242267924", "hugepages-1Gi": "0",
                         "hugepages-2Mi": "0", "memory": "3388360Ki", "pods": "17"}


def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def metadata(name: str, namespace: str | None = None, labels: Mapping | None = None,
             annotations: Mapping | None = None, owner: tuple | None = None) -> dict:
    meta: dict[str, Any] = {"creationTimestamp": CREATED, "name": name, "resourceVersion": str(next(_counter)),
            "uid": _uid(f"{namespace}/{name}")}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        api, kind, owner_name = owner
        meta["ownerReferences"] = [{"apiVersion": api, "blockOwnerDeletion": True, "controller": True,
                                    "kind": kind, "name": owner_name, "uid": _uid(f"{namespace}/{owner_name}")}]
    return meta


def node(name: str, instance_type: str | None = "t3.medium", zone: str = "us-east-1a",
         allocatable: Mapping | None = None, labels: Mapping | None = None, taints: Iterable[Mapping] = (),
         unschedulable: bool = False, ready: bool = True) -> dict:
    alloc = dict(T3_MEDIUM_ALLOCATABLE if allocatable is None else allocatable)
    node_labels = {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                   "topology.kubernetes.io/region": zone[:-1], "topology.kubernetes.io/zone": zone,
                   "topology.ebs.csi.aws.com/zone": zone}
    if instance_type:
        node_labels["node.kubernetes.io/instance-type"] = instance_type
        node_labels["beta.kubernetes.io/instance-type"] = instance_type
        node_labels["eks.amazonaws.com/nodegroup"] = "default"
    node_labels.update(labels or {})
    spec: dict[str, Any] = (
        {"providerID": f"aws:///{zone}/i-{_uid(name)[:17].replace('-', '')}"} if instance_type else {}
    )
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata(name, labels=node_labels, annotations={"node.alpha.kubernetes.io/ttl": "0"}),
        "spec": spec,
        "status": {
            "addresses": [{"address": name, "type": "Hostname"}],
            "allocatable": alloc,
            "capacity": dict(alloc),
            "conditions": [
                {
                    "lastHeartbeatTime": CREATED,
                    "lastTransitionTime": CREATED,
                    "message": "kubelet has sufficient memory available",
                    "reason": "KubeletHasSufficientMemory",
                    "status": "False",
                    "type": "MemoryPressure",
                },
                {
                    "lastHeartbeatTime": CREATED,
                    "lastTransitionTime": CREATED,
                    "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.",
                    "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                    "status": "True" if ready else "Unknown",
                    "type": "Ready",
                },
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.7.27",
                "kubeletVersion": "v1.33.5-eks-113cf36",
                "operatingSystem": "linux",
            },
        },
    }


def container(name: str = "app", image: str = "nginx:1.27", requests: Mapping | None = None,
              limits: Mapping | None = None, **extra) -> dict:
    resources = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    return {"image": image, "imagePullPolicy": "IfNotPresent", "name": name, "resources": resources,
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", **extra}


def pod_spec(containers: Iterable[Mapping] | None = None, host_network: bool = False, **extra) -> dict:
    spec: dict[str, Any] = {
        "containers": [dict(c) for c in (containers or [container(requests={"cpu": "100m", "memory": "128Mi"})])],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    }
    if host_network:
        spec["hostNetwork"] = True
    spec.update(extra)
    return spec


def qos_class(spec: Mapping) -> str:
    """The QoS class the API server computes: Guaranteed, Burstable or BestEffort."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for key in ("cpu", "memory"):
            if key not in limits or requests.get(key, limits[key]) != limits[key]:
                return "Burstable"
    return "Guaranteed"


def pod(name: str, namespace: str = "default", node_name: str | None = None, spec: Mapping | None = None,
        phase: str | None = None, labels: Mapping | None = None, owner: tuple | None = None) -> dict:
    body = copy.deepcopy(dict(spec or pod_spec()))
    if node_name:
        body["nodeName"] = node_name
    phase = phase or ("Running" if node_name else "Pending")
    status: dict[str, Any] = {"phase": phase, "qosClass": qos_class(body)}
    if node_name:
        status.update({"hostIP": "10.0.0.10", "podIP": "10.0.0.11", "startTime": CREATED})
    else:
        status["conditions"] = [{"lastTransitionTime": CREATED, "message": "0/2 nodes are available",
                                 "reason": "Unschedulable", "status": "False", "type": "PodScheduled"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata(name, namespace, labels, owner=owner),
            "spec": body, "status": status}


def template(labels: Mapping, spec: Mapping | None = None) -> dict:
    return {"metadata": {"labels": dict(labels)}, "spec": copy.deepcopy(dict(spec or pod_spec()))}


def deployment(
    name: str,
    replicas: int = 1,
    namespace: str = "default",
    spec: Mapping | None = None,
    labels: Mapping | None = None,
    strategy: Mapping | None = None,
    annotations: Mapping | None = None,
) -> dict:
    labels = dict(labels or {"app": name})
    body = {"progressDeadlineSeconds": 600, "replicas": replicas, "revisionHistoryLimit": 10,
            "selector": {"matchLabels": labels},
            "strategy": dict(strategy or {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                                          "type": "RollingUpdate"}),
            "template": template(labels, spec)}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(name, namespace, labels, annotations), "spec": body,
            "status": {"observedGeneration": 1, "replicas": replicas}}


def statefulset(name: str, replicas: int = 1, namespace: str = "default", spec: Mapping | None = None,
                claim_templates: Iterable[Mapping] = ()) -> dict:
    labels = {"app": name}
    body = {"podManagementPolicy": "OrderedReady", "replicas": replicas, "selector": {"matchLabels": labels},
            "serviceName": name, "template": template(labels, spec),
            "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"}}
    if claim_templates:
        body["volumeClaimTemplates"] = [dict(t) for t in claim_templates]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata(name, namespace, labels),
            "spec": body, "status": {"replicas": replicas}}


def daemonset(name: str, namespace: str = "kube-system", spec: Mapping | None = None,
              env: Mapping | None = None) -> dict:
    labels = {"k8s-app": name}
    spec = copy.deepcopy(dict(spec or pod_spec([container(name, requests={"cpu": "25m"})], host_network=True)))
    if env:
        spec["containers"][0]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": metadata(name, namespace, labels),
            "spec": {"selector": {"matchLabels": labels}, "template": template(labels, spec),
                     "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"},
                                        "type": "RollingUpdate"}},
            "status": {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}}


def aws_node(prefix_delegation: bool = False, custom_networking: bool = False, ipv6: bool = False) -> dict:
    """The VPC CNI's DaemonSet, with the env switches that change the IP model."""
    env = {"ADDITIONAL_ENI_TAGS": "{}", "AWS_VPC_CNI_NODE_PORT_SUPPORT": "true", "AWS_VPC_ENI_MTU": "9001",
           "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": str(custom_networking).lower(),
           "ENABLE_IPv4": str(not ipv6).lower(), "ENABLE_IPv6": str(ipv6).lower(),
           "ENABLE_PREFIX_DELEGATION": str(prefix_delegation).lower(), "WARM_ENI_TARGET": "1"}
    return daemonset("aws-node", env=env)


def job(name: str, parallelism: int | None = 1, completions: int | None = None, namespace: str = "default",
        spec: Mapping | None = None) -> dict:
    body = {
        "backoffLimit": 6,
        "template": template({"job-name": name}, dict(spec or pod_spec(), restartPolicy="Never")),
    }
    if parallelism is not None:
        body["parallelism"] = parallelism
    if completions is not None:
        body["completions"] = completions
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata(name, namespace), "spec": body}


def storage_class(name: str, provisioner: str = "ebs.csi.aws.com", parameters: Mapping | None = None,
                  default: bool = False, binding: str = "WaitForFirstConsumer",
                  allowed_topologies: Iterable[Mapping] = ()) -> dict:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else None
    obj = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": metadata(name, annotations=annotations),
        "provisioner": provisioner,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": binding,
        "allowVolumeExpansion": True,
    }
    if parameters:
        obj["parameters"] = dict(parameters)
    if allowed_topologies:
        obj["allowedTopologies"] = [dict(t) for t in allowed_topologies]
    return obj


def pvc(
    name: str,
    namespace: str = "default",
    size: str = "10Gi",
    modes: Iterable[str] = ("ReadWriteOnce",),
    storage_class_name: str | None = "gp3",
    volume_mode: str = "Filesystem",
    volume_name: str | None = None,
) -> dict:
    spec: dict[str, Any] = {
        "accessModes": list(modes),
        "resources": {"requests": {"storage": size}},
        "volumeMode": volume_mode,
    }
    if storage_class_name is not None:
        spec["storageClassName"] = storage_class_name
    if volume_name:
        spec["volumeName"] = volume_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata(name, namespace),
            "spec": spec, "status": {"phase": "Bound" if volume_name else "Pending"}}


def ebs_pv(
    name: str, zone: str, claim: tuple | None = None, size: str = "10Gi", storage_class_name: str = "gp3"
) -> dict:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": size},
        "csi": {
            "driver": "ebs.csi.aws.com",
            "fsType": "ext4",
            "volumeHandle": f"vol-{_uid(name)[:17].replace('-', '')}",
        },
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}]}
                ]
            }
        },
        "persistentVolumeReclaimPolicy": "Delete",
        "storageClassName": storage_class_name,
        "volumeMode": "Filesystem",
    }
    if claim:
        spec["claimRef"] = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": claim[0],
            "name": claim[1],
        }
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": metadata(name), "spec": spec,
            "status": {"phase": "Bound" if claim else "Available"}}


def csinode(node_name: str, ebs_count: int = 25) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": metadata(node_name),
            "spec": {"drivers": [{"allocatable": {"count": ebs_count}, "name": "ebs.csi.aws.com",
                                  "nodeID": f"i-{_uid(node_name)[:17].replace('-', '')}",
                                  "topologyKeys": ["topology.ebs.csi.aws.com/zone"]}]}}


def limit_range(namespace: str, default_request: Mapping | None = None, default: Mapping | None = None) -> dict:
    item: dict[str, Any] = {"type": "Container"}
    if default_request:
        item["defaultRequest"] = dict(default_request)
    if default:
        item["default"] = dict(default)
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": metadata("limits", namespace),
            "spec": {"limits": [item]}}


def namespace(name: str, labels: Mapping | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": metadata(name, labels={"kubernetes.io/metadata.name": name, **(labels or {})}),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def kube_system_pods(node_name: str, ip_pods: int) -> list[dict]:
    """aws-node and kube-proxy (host network) plus ``ip_pods`` IP-consuming add-on pods."""
    short = node_name.split(".")[0]
    pods = [pod(f"aws-node-{short}", "kube-system", node_name,
                pod_spec([container("aws-node", requests={"cpu": "25m"})], host_network=True),
                owner=("apps/v1", "DaemonSet", "aws-node")),
            pod(f"kube-proxy-{short}", "kube-system", node_name,
                pod_spec([container("kube-proxy", requests={"cpu": "100m"})], host_network=True),
                owner=("apps/v1", "DaemonSet", "kube-proxy"))]
    addons = ["coredns", "coredns", "ebs-csi-controller", "ebs-csi-node", "metrics-server", "aws-load-balancer"]
    for i in range(ip_pods):
        name = addons[i % len(addons)]
        pods.append(pod(f"{name}-{short}-{i}", "kube-system", node_name,
                        pod_spec([container(name, requests={"cpu": "100m", "memory": "70Mi"})])))
    return pods


def small_web(name: str = "web", replicas: int = 30, namespace: str = "default") -> dict:
    """A web Deployment whose pods are light enough that only pod slots can stop it."""
    return deployment(name, replicas, namespace,
                      pod_spec([container("web", requests={"cpu": "10m", "memory": "32Mi"})]))


def as_manifest(obj: Mapping) -> dict:
    """The object as a user would apply it: no status, no uid, resourceVersion or timestamps."""
    meta = obj["metadata"]
    clean = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("status", "metadata")}
    clean["metadata"] = {k: copy.deepcopy(meta[k]) for k in ("name", "namespace", "labels", "annotations",
                                                             "ownerReferences") if k in meta}
    return clean


def as_list(items: Iterable[Mapping]) -> dict:
    """Wrap objects as ``kubectl get a,b,c -A -o json`` does."""
    return {"apiVersion": "v1", "items": list(items), "kind": "List", "metadata": {"resourceVersion": ""}}


def two_t3_medium_cluster(prefix_delegation: bool = False, max_pods: int = 17) -> dict:
    """The motivating cluster: two t3.medium nodes with 5 and 4 IP-consuming kube-system pods."""
    alloc = dict(T3_MEDIUM_ALLOCATABLE, pods=str(max_pods))
    names = ("ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal")
    items = [node(names[0], allocatable=alloc, zone="us-east-1a"), node(names[1], allocatable=alloc, zone="us-east-1b"),
             aws_node(prefix_delegation), daemonset("kube-proxy"),
             namespace("default"), namespace("kube-system"),
             storage_class("gp3", parameters={"type": "gp3", "encrypted": "true"}, default=True),
             csinode(names[0]), csinode(names[1])]
    items += kube_system_pods(names[0], 5) + kube_system_pods(names[1], 4)
    return as_list(items)


# Allocatable as EKS AL2023 nodes report it (maxPods = AWS's eni-max-pods figure).
FLEET_TYPES = {
    "t3.medium": {"cpu": "1930m", "memory": "3388360Ki", "pods": "17"},
    "m5.large": {"cpu": "1930m", "memory": "7134256Ki", "pods": "29"},
    "m5.xlarge": {"cpu": "3920m", "memory": "15040936Ki", "pods": "58"},
    "c5.2xlarge": {"cpu": "7910m", "memory": "14513080Ki", "pods": "58"},
    "r5.4xlarge": {"cpu": "15890m", "memory": "124507692Ki", "pods": "234"},
    "x9.mystery": {"cpu": "3920m", "memory": "15040936Ki", "pods": "110"},     # not in the table: unknown type
}


def fleet_cluster(nodes: int, seed: int = 0) -> dict:
    """A mixed fleet of ``nodes`` nodes in three zones with a random load, for reports and benchmarks.

    Deterministic for a seed. One node in forty (the 12th, 52nd, ...) has a type the instance table lacks;
    each node runs aws-node, kube-proxy and between none and its kubelet limit of light pods.
    """
    import random

    rng = random.Random(seed)
    kinds = [k for k in FLEET_TYPES if k != "x9.mystery"]
    weights = [20, 30, 25, 10, 5]
    items = [aws_node(), daemonset("kube-proxy"), namespace("default"), namespace("kube-system"),
             storage_class("gp3", parameters={"type": "gp3"}, default=True)]
    for i in range(nodes):
        kind = "x9.mystery" if i % 40 == 11 else rng.choices(kinds, weights)[0]
        zone = "us-east-1" + "abc"[i % 3]
        name = f"ip-10-{i // 250}-{i % 250}-{rng.randrange(1, 254)}.ec2.internal"
        alloc = dict(T3_MEDIUM_ALLOCATABLE, **FLEET_TYPES[kind])
        items.append(node(name, kind, zone, allocatable=alloc))
        items += kube_system_pods(name, 0)
        max_pods = int(alloc["pods"])
        cpu_left = int(alloc["cpu"].rstrip("m")) - 125            # aws-node + kube-proxy requests
        memory_left = int(alloc["memory"].rstrip("Ki")) // 1024     # MiB
        fill = rng.choice([0.2, 0.5, 0.7, 0.85, 0.95, 1.0])
        for j in range(int((max_pods - 2) * fill * rng.uniform(0.6, 1.0))):
            cpu, memory = rng.choice([10, 50, 100, 250]), rng.choice([32, 128, 256])
            if cpu > cpu_left or memory > memory_left:
                break                                               # the scheduler would not place it
            cpu_left, memory_left = cpu_left - cpu, memory_left - memory
            items.append(pod(f"app-{i}-{j}", "default", name,
                             pod_spec([container("app", requests={"cpu": f"{cpu}m", "memory": f"{memory}Mi"})])))
    return as_list(items)
