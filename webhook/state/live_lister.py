"""Raw list and watch calls through the official ``kubernetes`` client, as plain dicts.

The client's model deserialization turns one pod into dozens of objects and costs far
more than the JSON parse itself, so every call here passes ``_preload_content=False`` and
parses the raw bytes: objects stay the plain dicts ``kubectl get -o json`` prints. List
items get back the ``kind``/``apiVersion`` the API server leaves out of list responses.

Used by the live cache (``webhook.state.live``) and by ``snapshot`` recording
(``webhook.state.record``), so both see exactly what the API server returns.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..fastjson import loads

NON_TERMINAL_PODS = "status.phase!=Succeeded,status.phase!=Failed"


@dataclass(frozen=True)
class Resource:
    """One collection the webhook lists and watches."""

    kind: str
    api_version: str
    api: str                      # kubernetes.client class, e.g. "CoreV1Api"
    method: str                   # its list method, e.g. "list_node"
    namespaced: bool = False
    field_selector: str | None = None
    custom: tuple | None = None   # (group, version, plural) for CustomObjectsApi
    optional: bool = False        # a CRD that may be absent or unreadable (404/403): treated as empty

    @property
    def name(self) -> str:
        return self.kind

    @property
    def rbac(self) -> tuple[str, str]:
        """(apiGroup, plural resource) an RBAC rule must grant list and watch on."""
        if self.custom:
            return self.custom[0], self.custom[2]
        kind = self.kind.lower()
        return self.api_version.rpartition("/")[0], kind + ("es" if kind.endswith("s") else "s")


# Nodes first: a node that appears after its pods costs a scan of every pod.
RESOURCES: tuple[Resource, ...] = (
    Resource("Node", "v1", "CoreV1Api", "list_node"),
    Resource("Pod", "v1", "CoreV1Api", "list_pod_for_all_namespaces", True, NON_TERMINAL_PODS),
    Resource("Namespace", "v1", "CoreV1Api", "list_namespace"),
    Resource("DaemonSet", "apps/v1", "AppsV1Api", "list_daemon_set_for_all_namespaces", True),
    Resource("ReplicaSet", "apps/v1", "AppsV1Api", "list_replica_set_for_all_namespaces", True),
    Resource("Deployment", "apps/v1", "AppsV1Api", "list_deployment_for_all_namespaces", True),
    Resource("StatefulSet", "apps/v1", "AppsV1Api", "list_stateful_set_for_all_namespaces", True),
    Resource("StorageClass", "storage.k8s.io/v1", "StorageV1Api", "list_storage_class"),
    Resource("PersistentVolume", "v1", "CoreV1Api", "list_persistent_volume"),
    Resource("PersistentVolumeClaim", "v1", "CoreV1Api", "list_persistent_volume_claim_for_all_namespaces", True),
    Resource("CSINode", "storage.k8s.io/v1", "StorageV1Api", "list_csi_node"),
    Resource("VolumeAttachment", "storage.k8s.io/v1", "StorageV1Api", "list_volume_attachment"),
    Resource("LimitRange", "v1", "CoreV1Api", "list_limit_range_for_all_namespaces", True),
    # What the API server refuses before the scheduler sees a pod (QUOTA_EXCEEDED), and the
    # priorities preemption works with: without PriorityClasses a high-priority workload in a
    # full cluster reads as priority 0 and is denied although the scheduler would preempt for
    # it. Optional (403/404 read as empty) so that a release whose RBAC predates them still syncs.
    Resource("ResourceQuota", "v1", "CoreV1Api", "list_resource_quota_for_all_namespaces", True, optional=True),
    Resource("PriorityClass", "scheduling.k8s.io/v1", "SchedulingV1Api", "list_priority_class", optional=True),
)
# Karpenter NodePools tell how far the cluster can grow; most clusters have none. Karpenter's
# EC2NodeClasses and EKS Auto Mode's NodeClasses say where a node's kubelet maxPods comes from
# (webhook.engine.node_class).
NODEPOOLS = Resource("NodePool", "karpenter.sh/v1", "CustomObjectsApi", "list_cluster_custom_object",
                     custom=("karpenter.sh", "v1", "nodepools"), optional=True)
NODE_CLASSES: tuple[Resource, ...] = (
    Resource("EC2NodeClass", "karpenter.k8s.aws/v1", "CustomObjectsApi", "list_cluster_custom_object",
             custom=("karpenter.k8s.aws", "v1", "ec2nodeclasses"), optional=True),
    Resource("NodeClass", "eks.amazonaws.com/v1", "CustomObjectsApi", "list_cluster_custom_object",
             custom=("eks.amazonaws.com", "v1", "nodeclasses"), optional=True),
)
KARPENTER: tuple[Resource, ...] = (NODEPOOLS,) + NODE_CLASSES
# Pod networking on AWS (webhook.engine.network): custom networking's ENIConfigs, security
# groups for pods' SecurityGroupPolicies and per-node CNINodes. Optional: absent without the
# VPC CNI / VPC resource controller. ServiceAccounts too: a SecurityGroupPolicy's
# serviceAccountSelector matches the labels of the pod's ServiceAccount (optional: without the
# grant, such a match is only a warning).
AWS_NETWORK: tuple[Resource, ...] = (
    Resource("ENIConfig", "crd.k8s.amazonaws.com/v1alpha1", "CustomObjectsApi", "list_cluster_custom_object",
             custom=("crd.k8s.amazonaws.com", "v1alpha1", "eniconfigs"), optional=True),
    Resource("SecurityGroupPolicy", "vpcresources.k8s.aws/v1beta1", "CustomObjectsApi", "list_cluster_custom_object",
             namespaced=True, custom=("vpcresources.k8s.aws", "v1beta1", "securitygrouppolicies"), optional=True),
    Resource("CNINode", "vpcresources.k8s.aws/v1alpha1", "CustomObjectsApi", "list_cluster_custom_object",
             custom=("vpcresources.k8s.aws", "v1alpha1", "cninodes"), optional=True),
    Resource("ServiceAccount", "v1", "CoreV1Api", "list_service_account_for_all_namespaces", namespaced=True,
             optional=True),
)
LIVE_RESOURCES: tuple[Resource, ...] = RESOURCES + KARPENTER + AWS_NETWORK


class WatchExpired(Exception):
    """The resourceVersion is too old (410 Gone): the collection must be listed again."""


class WatchError(Exception):
    """The watch stream reported an error other than expiry."""


def api_exception_type():
    from kubernetes.client.exceptions import ApiException
    return ApiException


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a kubernetes ``ApiException`` (None for transport errors)."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def object_key(obj: Mapping) -> tuple:
    meta = obj.get("metadata") or {}
    return meta.get("namespace"), meta.get("name", "")


def abort_response(resp: Any) -> None:
    """Unblock a thread reading ``resp`` (urllib3) from another thread."""
    try:
        if hasattr(resp, "shutdown"):
            resp.shutdown()
            return
    except Exception:  # noqa: BLE001 - best effort
        pass
    try:
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _is_too_old(status: Mapping) -> bool:
    return status.get("code") == 410 or status.get("reason") in ("Expired", "Gone") \
        or "too old resource version" in str(status.get("message", ""))


class RawLister:
    """List pages and watch streams of raw JSON for a :class:`Resource`."""

    def __init__(self, api_client: Any, connect_timeout: float = 10.0, list_timeout: float = 120.0):
        self.api_client = api_client
        self.connect_timeout = connect_timeout
        self.list_timeout = list_timeout
        self._apis: dict[str, Any] = {}

    def _api(self, name: str) -> Any:
        api = self._apis.get(name)
        if api is None:
            from kubernetes import client
            api = self._apis[name] = getattr(client, name)(self.api_client)
        return api

    def call(self, res: Resource, **params: Any) -> Any:
        """The raw urllib3 response of one list or watch request."""
        params = {k: v for k, v in params.items() if v is not None}
        params["_preload_content"] = False
        if res.field_selector:
            params["field_selector"] = res.field_selector
        api = self._api(res.api)
        if res.custom:
            return api.list_cluster_custom_object(*res.custom, **params)
        return getattr(api, res.method)(**params)

    def list_pages(self, res: Resource, limit: int = 500) -> Iterator[tuple[list, str, bool]]:
        """``(items, resourceVersion, more)`` per page; items carry kind and apiVersion.

        Raises ``WatchExpired`` when a continue token expired mid-list (start over).
        """
        token = None
        while True:
            try:
                resp = self.call(res, limit=limit, _continue=token,
                                 _request_timeout=(self.connect_timeout, self.list_timeout))
            except api_exception_type() as exc:
                if status_of(exc) == 410:
                    raise WatchExpired(f"{res.kind} list continue token expired") from None
                raise
            try:
                body = resp.read()
            finally:
                resp.release_conn()
            document = loads(body)
            meta = document.get("metadata") or {}
            items = document.get("items") or []
            kind, api_version = res.kind, res.api_version
            for item in items:
                item["kind"] = kind
                item["apiVersion"] = api_version
            token = meta.get("continue") or None
            yield items, str(meta.get("resourceVersion") or ""), bool(token)
            if not token:
                return

    def watch(self, res: Resource, resource_version: str, timeout_seconds: int, read_timeout: float) -> Any:
        """Open a watch from ``resource_version``; returns the raw streaming response."""
        try:
            return self.call(res, watch=True, allow_watch_bookmarks=True, resource_version=resource_version,
                             timeout_seconds=int(timeout_seconds),
                             _request_timeout=(self.connect_timeout, read_timeout))
        except api_exception_type() as exc:
            if status_of(exc) == 410:
                raise WatchExpired(f"{res.kind} watch from resourceVersion {resource_version}: 410 Gone") from None
            raise


def watch_events(resp: Any) -> Iterator[list]:
    """Batches of parsed watch events, one batch per chunk the server flushed.

    Raises ``WatchExpired`` on an ERROR event whose Status is 410 / too old resource
    version, ``WatchError`` on any other ERROR event.
    """
    pending = b""
    for chunk in resp.stream(None, decode_content=False):
        if not chunk:
            continue
        if pending:
            chunk = pending + chunk
        lines = chunk.split(b"\n")
        pending = lines.pop()
        batch: list[dict] = []
        for line in lines:
            if not line or line.isspace():
                continue
            event = loads(line)
            if event.get("type") == "ERROR":
                if batch:
                    yield batch
                status = event.get("object") or {}
                if _is_too_old(status):
                    raise WatchExpired(str(status.get("message") or "410 Gone"))
                raise WatchError(f"watch error {status.get('code')}: {status.get('message')}")
            batch.append(event)
        if batch:
            yield batch
    if pending.strip():
        event = loads(pending)
        if event.get("type") == "ERROR":
            status = event.get("object") or {}
            if _is_too_old(status):
                raise WatchExpired(str(status.get("message") or "410 Gone"))
            raise WatchError(f"watch error {status.get('code')}: {status.get('message')}")
        yield [event]
