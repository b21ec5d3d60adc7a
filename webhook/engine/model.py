"""The cluster as the engine sees it: slim records plus per-node aggregates.

``ClusterState`` is fed one Kubernetes object at a time (``apply`` / ``remove``), from a
snapshot file or from a live watch alike, and keeps per-node sums (requests, pods,
IP-consuming pods, EBS volumes) up to date incrementally. A decision therefore reads
per-node totals and never scans every pod. Only the fields the engine needs are kept,
so a 150,000-pod cluster stays small in memory.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING

from .instance_types import InstanceLimits, InstanceTable, load_default_table
from .ipslots import CniConfig, IpCapacity, node_ip_capacity
from . import shape
from .network import NETWORK_KINDS, NetworkState
from .node_class import EC2_NODE_CLASS, KINDS as NODE_CLASS_KINDS, NodeClass
from .node_truth import adjust_ip_capacity
from .quantity import QuantityError, units
from .constraints import PodConstraints, host_ports
from .interpod import AffinityTerm
from .requests import (
    ZERO,
    ObjectError,
    Resources,
    extended_amounts,
    extended_requests,
    pod_requests,
    resources_from,
    uses_pod_ip,
)
from .scheduling import PodPlacementRules, Taint

if TYPE_CHECKING:
    from .reserved_sums import ReservedSums

INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")
TERMINAL_PHASES = ("Succeeded", "Failed")
# Kinds whose objects never change a node's free room as NodeRoom.of computes it (pods change
# it through _account, node by node); any other kind bumps ClusterState.rooms_epoch.
# (NodePools and node classes may say which kubelet maxPods a node got: see node_class.py.)
ROOM_NEUTRAL_KINDS = ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "Job", "CronJob", "Namespace", "LimitRange",
                      "StorageClass", "PriorityClass", "ResourceQuota", "ServiceAccount")
MAX_SKIPPED = 200                  # unreadable objects remembered for warnings and logs


def _first_label(labels: Mapping, keys: Iterable[str]) -> str | None:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return None


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


def controller_of(obj: Mapping) -> tuple[str, str] | None:
    """The (kind, name) of the object's controlling owner reference, if any."""
    refs = _meta(obj).get("ownerReferences")
    for ref in refs if isinstance(refs, list) else ():
        # Read defensively: the admission policy asks this before the shapes are checked.
        # (``type(ref) is dict`` first: the ABC check is slow, and this runs for every pod.)
        if (type(ref) is dict or isinstance(ref, Mapping)) and ref.get("controller") is True:
            kind, name = ref.get("kind"), ref.get("name")
            return (kind, name) if isinstance(kind, str) and isinstance(name, str) else None
    return None


def _is_ebs_pv(pv: Mapping) -> bool:
    spec = pv.get("spec") or {}
    return (spec.get("csi") or {}).get("driver") == "ebs.csi.aws.com" or "awsElasticBlockStore" in spec


@dataclass
class NodeRecord:
    """One node: what it offers, and (maintained by ClusterState) what its pods use."""

    name: str
    labels: dict
    taints: tuple
    unschedulable: bool
    ready: bool
    instance_type: str | None
    zone: str | None
    allocatable: Resources
    allocatable_pods: int
    used: Resources = ZERO
    pods: int = 0
    ip_pods: int = 0
    claims: dict = field(default_factory=lambda: defaultdict(int))   # "ns/claim" -> pods using it
    daemon_used: Resources = ZERO     # what DaemonSet pods take: a new node of this kind starts with it
    daemon_pods: int = 0
    daemon_ip_pods: int = 0
    extended: dict = field(default_factory=dict)        # allocatable extended resources (nvidia.com/gpu, hugepages-2Mi)
    extended_used: dict = field(default_factory=dict)
    score_used: Resources = ZERO      # requests as LeastAllocated scores them (missing cpu/memory = 100m/200Mi)
    ports: dict = field(default_factory=dict)           # (protocol, ip, port) -> pods binding it

    @staticmethod
    def from_object(obj: Mapping) -> "NodeRecord":
        meta = _meta(obj)
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        labels = dict(meta.get("labels") or {})
        allocatable = status.get("allocatable") or status.get("capacity") or {}
        name = meta.get("name", "")
        try:
            pods = units(allocatable.get("pods", 0))   # absent: the scheduler's allowed pod number is 0
        except QuantityError as exc:
            raise ObjectError(f"node {name} status.allocatable.pods", str(exc)) from None
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        return NodeRecord(
            name=name,
            labels=labels,
            taints=tuple(Taint(t.get("key", ""), t.get("value") or "", t.get("effect", ""))
                         for t in spec.get("taints") or []),
            unschedulable=bool(spec.get("unschedulable")),
            ready=ready,
            instance_type=_first_label(labels, INSTANCE_TYPE_LABELS),
            zone=_first_label(labels, ZONE_LABELS),
            allocatable=resources_from(allocatable, f"node {name} status.allocatable"),
            allocatable_pods=pods,
            extended=extended_amounts(allocatable, f"node {name} status.allocatable"),
        )


_intern = sys.intern
_REQUESTS_MEMO: dict = {}          # resource signature of a pod spec -> its (shared) Resources
_REQUESTS_MEMO_MAX = 8192


_NO_RESOURCES = ((), ())


def _resource_items(mapping) -> tuple:
    return tuple(mapping.items()) if mapping else ()


def _requests_signature(spec: Mapping) -> tuple | None:
    """The parts of a pod spec that decide its requests (None if they cannot be hashed)."""
    try:
        parts: list = [tuple([(_resource_items(r.get("requests")), _resource_items(r.get("limits")))
                              if (r := c.get("resources")) else _NO_RESOURCES
                              for c in spec.get("containers") or ()])]
        if spec.get("initContainers"):
            parts.append(tuple((_resource_items((c.get("resources") or {}).get("requests")),
                                _resource_items((c.get("resources") or {}).get("limits")), c.get("restartPolicy"))
                               for c in spec["initContainers"]))
        if spec.get("overhead"):
            parts.append(_resource_items(spec["overhead"]))
        key = tuple(parts)
        hash(key)
        return key
    except (AttributeError, TypeError):
        return None


def _all_requests(spec: Mapping, path: str) -> tuple:
    return (pod_requests(spec, path=path), pod_requests(spec, path=path, for_scoring=True),
            extended_requests(spec, path))


def _pod_requests_shared(spec: Mapping, meta: Mapping) -> tuple:
    """(requests, requests as scored, extended requests), memoized on the spec's resource
    fields: pods of one template share one instance of each, and a watch event does not
    parse the same quantities again."""
    key = _requests_signature(spec)
    if key is None:
        return _all_requests(spec, f"pod {meta.get('namespace')}/{meta.get('name')} spec")
    found = _REQUESTS_MEMO.get(key)
    if found is None:
        found = _all_requests(spec, f"pod {meta.get('namespace')}/{meta.get('name')} spec")
        if len(_REQUESTS_MEMO) >= _REQUESTS_MEMO_MAX:
            _REQUESTS_MEMO.clear()
        _REQUESTS_MEMO[key] = found
    return found


_LABELS_MEMO: dict = {}            # label items -> one shared tuple (pods of a ReplicaSet share theirs)
_LABELS_MEMO_MAX = 65536


def shared_labels(labels) -> tuple:
    """A pod's labels as sorted items, one shared tuple per distinct label set."""
    if not isinstance(labels, Mapping) or not labels:
        return ()
    try:
        key = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
    except TypeError:
        return ()
    found = _LABELS_MEMO.get(key)
    if found is None:
        if len(_LABELS_MEMO) >= _LABELS_MEMO_MAX:
            _LABELS_MEMO.clear()
        found = _LABELS_MEMO[key] = tuple((_intern(k), _intern(v)) for k, v in key)
    return found


def _anti_terms(spec: Mapping, namespace: str, labels: Mapping) -> tuple:
    terms = ((spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or ()
    return tuple(AffinityTerm.of(t, namespace, labels) for t in terms)


def _count_bound(index: dict[tuple, dict], pod: "PodRecord", sign: int) -> None:
    """Add ``sign`` to the count of ``pod``'s (namespace, labels) on its node, dropping zeros."""
    group_key = (pod.namespace, pod.labels)
    group = index.get(group_key)
    if group is None:
        group = index[group_key] = {}
    left = group.get(pod.node, 0) + sign
    if left > 0:
        group[pod.node] = left
    else:
        group.pop(pod.node, None)
        if not group:
            del index[group_key]


@dataclass(frozen=True, slots=True)
class PodRecord:
    """What the engine keeps of a pod: where it runs, what it takes, who owns it.

    150,000 of these live in a large cluster's cache: slotted, with interned strings and
    Resources shared between pods of one template.
    """

    namespace: str
    name: str
    node: str | None
    requests: Resources
    uses_ip: bool
    owner: tuple | None
    claims: tuple = ()
    rules: PodPlacementRules | None = None   # kept only while the pod waits for a node
    labels: tuple = ()                       # sorted items, shared between pods with equal labels
    priority: int = 0                        # spec.priority, set by the Priority admission plugin
    score_requests: Resources = ZERO         # requests as LeastAllocated scores them
    extended: tuple = ()                     # (name, amount) of extended resources requested
    ports: tuple = ()                        # host ports: (protocol, hostIP, port)
    anti: tuple = ()                         # required anti-affinity terms (repel pods placed later)
    gated: bool = False                      # spec.schedulingGates: not demand until the gates are removed
    terminating: bool = False                # metadata.deletionTimestamp set: holds its room, not a spread count

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @staticmethod
    def from_object(obj: Mapping) -> "PodRecord | None":
        """``None`` for pods that hold nothing: Succeeded or Failed."""
        meta = _meta(obj)
        if (obj.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return None
        spec = obj.get("spec") or {}
        node = spec.get("nodeName") or None
        volumes = spec.get("volumes")
        claims = tuple(sorted({v["persistentVolumeClaim"]["claimName"] for v in volumes
                               if (v.get("persistentVolumeClaim") or {}).get("claimName")})) if volumes else ()
        owner = controller_of(obj)
        if owner and isinstance(owner[0], str) and isinstance(owner[1], str):
            owner = (_intern(owner[0]), _intern(owner[1]))
        namespace = meta.get("namespace", "default")
        requests, scored, extended = _pod_requests_shared(spec, meta)
        labels = meta.get("labels") or {}
        priority = spec.get("priority")
        return PodRecord(
            namespace=_intern(namespace) if isinstance(namespace, str) else namespace,
            name=meta.get("name", ""),
            node=_intern(node) if isinstance(node, str) else node,
            requests=requests,
            uses_ip=uses_pod_ip(spec),
            owner=owner,
            claims=claims,
            rules=None if node else PodPlacementRules.from_pod_spec(
                spec, labels, daemon=bool(owner and owner[0] == "DaemonSet"),
                constraints=PodConstraints.from_pod_spec(spec, namespace, labels)),
            labels=shared_labels(labels),
            priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else 0,
            score_requests=scored,
            extended=extended,
            ports=host_ports(spec),
            anti=_anti_terms(spec, namespace, labels),
            gated=bool(spec.get("schedulingGates")) and not node,
            terminating=bool(meta.get("deletionTimestamp")),
        )


@dataclass
class Reservation:
    """Capacity promised to one admitted workload for pods that do not exist yet.

    At most one per workload: a new decision about the same workload replaces it (see
    ``ClusterState.reserve``). ``base`` records the workload's pods per node (and in all,
    ``base_total``) when the promise was made, so the promise shrinks by itself as the
    pods appear: whichever process reads it, from whichever copy, computes the same hold
    from the pods it sees (``held``), without anybody having to write a release.
    """

    workload: tuple
    per_node: dict
    requests: Resources
    uses_ip: bool
    expires_at: float | None
    base: dict = field(default_factory=dict)
    base_total: int = 0
    uid: str = ""
    branch_eni: bool = False      # each pod takes a branch ENI (a SecurityGroupPolicy selects it)

    @property
    def promised(self) -> int:
        return sum(self.per_node.values())


def _condition_true(obj: Mapping, kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(isinstance(c, Mapping) and c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _count(value, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def desired_pods(obj: Mapping) -> int | None:
    """How many pods the workload's controller is asked to run now (None: not a standing count).

    Deployments, StatefulSets and bare ReplicaSets: ``spec.replicas``; a Job that has not
    finished: its parallelism, capped by the completions still to go. A ReplicaSet of a
    Deployment and a CronJob have no count of their own (their parent, their Jobs do).
    DaemonSets are counted per node by ``engine.daemonsets`` (the pods each node still owes).
    """
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind in ("Deployment", "StatefulSet") or (kind == "ReplicaSet" and controller_of(obj) is None):
        return _count(spec.get("replicas"), 1)
    if kind == "Job":
        if spec.get("suspend") or _condition_true(obj, "Complete") or _condition_true(obj, "Failed"):
            return None
        wanted = _count(spec.get("parallelism"), 1) or 0
        completions = _count(spec.get("completions"), None)
        if completions is not None:
            succeeded = _count((obj.get("status") or {}).get("succeeded"), 0) or 0
            wanted = min(wanted, max(0, completions - succeeded))
        return wanted
    return None


def _trim(obj: Mapping) -> dict:
    """Drop what the engine never reads (managedFields, status, annotations we don't use)."""
    meta = dict(_meta(obj))
    meta.pop("managedFields", None)
    annotations = meta.get("annotations") or {}
    meta["annotations"] = {k: v for k, v in annotations.items()
                           if not k.startswith("kubectl.kubernetes.io/last-applied")}
    slim = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    slim["metadata"] = meta
    return slim


class ClusterState:
    """Everything the engine knows about one cluster, updated one object at a time."""

    def __init__(self, instance_table: InstanceTable | None = None):
        self.instance_table = instance_table or load_default_table()
        self.nodes: dict[str, NodeRecord] = {}
        self.pods: dict[tuple, PodRecord] = {}
        self.pending: dict[tuple, PodRecord] = {}
        self.pods_by_owner: dict[tuple, set] = defaultdict(set)       # (kind, ns, name) -> pod keys
        self.children: dict[tuple, set] = defaultdict(set)            # (kind, ns, name) -> child keys
        self.parents: dict[tuple, tuple] = {}                         # workload key -> its controller's key
        self.workloads: MutableMapping[tuple, dict] = {}              # (kind, ns, name) -> trimmed object
        self.storage_classes: dict[str, dict] = {}
        self.persistent_volumes: dict[str, Mapping] = {}
        self.claims: dict[tuple[str, str], Mapping] = {}              # (ns, name) -> PVC
        self.csinode_ebs_limit: dict[str, int] = {}
        self.attachments: dict[str, set] = defaultdict(set)           # node -> attached PV names
        self.attachment_index: dict[str, tuple] = {}                  # VolumeAttachment name -> (node, pv)
        self.limit_ranges: dict[str, dict] = defaultdict(dict)        # ns -> name -> LimitRange
        self.namespaces: dict[str, dict] = {}                         # name -> labels
        self.cni = CniConfig()
        self.network = NetworkState()                                  # subnets, ENIConfigs, SGPs, CNINodes, EC2
        self.headroom_nodes = 0                                        # --headroom-nodes: nodes the cluster may add
        self.node_pools: dict[str, dict] = {}                          # Karpenter NodePools
        self.node_classes: dict[tuple, NodeClass] = {}                 # (kind, name) -> EC2NodeClass / NodeClass
        self.reservations: dict[tuple, Reservation] = {}               # workload key -> its one promise
        self.desired: dict[tuple, int] = {}                            # workload key -> pods its controller should run
        self.replica_failure: set[tuple] = set()                      # controllers reporting they cannot create pods
        self.short: set[tuple] = set()                                 # workloads with fewer pods than desired
        self.label_index: dict[tuple, dict] = {}                      # (ns, labels) -> node -> bound pods
        self.terminating_index: dict[tuple, dict] = {}                # the same, of pods being deleted only
        self.anti_pods: dict[tuple, PodRecord] = {}                    # bound pods with required anti-affinity
        self.bound_priorities: dict[int, int] = {}                    # priority -> bound pods (preemption victims?)
        self.priority_classes: dict[str, dict] = {}                   # name -> value, globalDefault, preemptionPolicy
        self.resource_quotas: dict[str, dict] = defaultdict(dict)     # ns -> name -> {"hard", "used"}
        self._ip_cache: dict = {}
        self._ip_cache_key: tuple | None = None
        # For room_index.RoomIndex: nodes whose room changed since it last looked, and an
        # epoch bumped by every change that may move any node's room (a full rebuild).
        self.rooms_dirty: set[str] = set()
        self.rooms_epoch = 0
        self.daemon_epoch = 0        # bumped by nodes, DaemonSets and their pods (what DaemonSet pods are owed)
        self.owed_cache: tuple | None = None
        self.room_index = None
        self.reserved_sums: ReservedSums | None = None   # what reservations hold, kept across decisions
        self.skipped: list[str] = []                                   # objects we could not read (newest last)

    # ---- feeding -------------------------------------------------------------------
    def apply(self, obj: Mapping) -> None:
        """Add or replace one Kubernetes object (any kind; unknown kinds are ignored)."""
        kind = obj.get("kind")
        meta = _meta(obj)
        name, namespace = meta.get("name", ""), meta.get("namespace", "default")
        if kind == "Node" and name in self.nodes:
            self.rooms_dirty.add(name)          # a known node changed: only its own room moves
        elif kind not in ROOM_NEUTRAL_KINDS:
            self.rooms_epoch += 1
        if kind in ("Node", "DaemonSet"):
            self.daemon_epoch += 1
        if isinstance(kind, str) and (handlers := KIND_HANDLERS.get(kind)) is not None:
            handlers[0](self, obj, kind, namespace, name)

    def apply_or_skip(self, obj: Mapping, typed: bool = False) -> str | None:
        """``apply``, but an object of the wrong shape is noted in ``skipped`` instead of raising.

        Returns the note when it is new (for the caller to log once), else ``None``.

        Both state sources feed objects through here: one unreadable object (a snapshot
        edited by hand, a field of an unexpected type) must neither stop a watch nor crash
        ``check``; the engine simply does not count it, and says so.

        ``typed``: the object comes from the API server, which decoded it into its Go types,
        so a Pod's fields need no shape check (the 150,000 pods of a large cluster skip it);
        the objects kept as they are (``shape.STORED_KINDS``) are checked either way.
        """
        try:
            kind = obj.get("kind") if isinstance(obj, Mapping) else None
            if kind in shape.STORED_KINDS or (kind == "Pod" and not typed):
                shape.check_object(obj)      # read later, by every decision: a wrong type is found here
            self.apply(obj)
            return None
        except Exception as exc:  # noqa: BLE001 - any unreadable object: count it out, say so
            meta = obj.get("metadata") if isinstance(obj, Mapping) else None
            meta = meta if isinstance(meta, Mapping) else {}
            kind = obj.get("kind") if isinstance(obj, Mapping) else type(obj).__name__
            where = "/".join(str(p) for p in (meta.get("namespace"), meta.get("name")) if p)
            note = f"{kind} {where}: {exc}"
            if note in self.skipped:
                return None
            self.skipped.append(note)
            del self.skipped[:-MAX_SKIPPED]
            return note

    def remove(self, kind: str, namespace: str | None, name: str) -> None:
        """Forget one object, as on a watch DELETED event."""
        namespace = namespace or "default"
        if kind not in ROOM_NEUTRAL_KINDS:
            self.rooms_epoch += 1
        if kind in ("Node", "DaemonSet"):
            self.daemon_epoch += 1
        if isinstance(kind, str) and (handlers := KIND_HANDLERS.get(kind)) is not None:
            handlers[1](self, kind, namespace, name)

    # ---- per kind: what apply and remove do (the table is KIND_HANDLERS) ----------------
    def _apply_node(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self._set_node(NodeRecord.from_object(obj))
        self.network.note_node(obj)

    def _remove_node(self, kind: str, namespace: str, name: str) -> None:
        self.nodes.pop(name, None)
        self.network.forget_node(name)

    def _apply_pod(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self._set_pod((namespace, name), PodRecord.from_object(obj))
        self.network.note_pod((namespace, name), obj)

    def _remove_pod(self, kind: str, namespace: str, name: str) -> None:
        self._set_pod((namespace, name), None)
        self.network.note_pod((namespace, name), None)

    def _apply_network(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self.network.apply(obj)

    def _remove_network(self, kind: str, namespace: str, name: str) -> None:
        self.network.remove(kind, namespace, name)

    def _apply_workload(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        self._note_pods_moved(key)
        self._unlink(key)
        self.workloads[key] = _trim(obj)
        parent = controller_of(obj)
        if parent:
            parent_key = (parent[0], namespace, parent[1])
            self.parents[key] = parent_key
            self.children[parent_key].add(key)
            self._note_pods_moved(key)          # its new parent counts its pods now
        self._set_desired(key, obj)
        if kind == "DaemonSet" and namespace == "kube-system" and name == "aws-node":
            self.cni = CniConfig.from_daemonset(obj)

    def _remove_workload(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        parent = self.parents.get(key)
        self._note_pods_moved(key)
        self._unlink(key)
        self.workloads.pop(key, None)
        self.desired.pop(key, None)
        self.replica_failure.discard(key)
        self.short.discard(key)
        if parent is not None:
            self._recheck_short(parent)
        if kind == "DaemonSet" and namespace == "kube-system" and name == "aws-node":
            self.cni = CniConfig()

    def _apply_storage_class(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self.storage_classes[name] = _trim(obj)

    def _remove_storage_class(self, kind: str, namespace: str, name: str) -> None:
        self.storage_classes.pop(name, None)

    def _apply_persistent_volume(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self.persistent_volumes[name] = obj

    def _remove_persistent_volume(self, kind: str, namespace: str, name: str) -> None:
        self.persistent_volumes.pop(name, None)

    def _apply_claim(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self.claims[(namespace, name)] = obj

    def _remove_claim(self, kind: str, namespace: str, name: str) -> None:
        self.claims.pop((namespace, name), None)

    def _apply_csinode(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self._set_csinode(name, obj)

    def _remove_csinode(self, kind: str, namespace: str, name: str) -> None:
        self.csinode_ebs_limit.pop(name, None)

    def _apply_attachment(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self._set_attachment(name, obj)

    def _remove_attachment(self, kind: str, namespace: str, name: str) -> None:
        self._set_attachment(name, None)

    def _apply_limit_range(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self.limit_ranges[namespace][name] = obj

    def _remove_limit_range(self, kind: str, namespace: str, name: str) -> None:
        self.limit_ranges[namespace].pop(name, None)

    def _apply_namespace(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self.namespaces[name] = dict(_meta(obj).get("labels") or {})

    def _remove_namespace(self, kind: str, namespace: str, name: str) -> None:
        self.namespaces.pop(name, None)

    def _apply_priority_class(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        value = obj.get("value", 0)
        self.priority_classes[name] = {
            "value": value if isinstance(value, int) and not isinstance(value, bool) else 0,
            "globalDefault": bool(obj.get("globalDefault")),
            "preemptionPolicy": obj.get("preemptionPolicy") or "PreemptLowerPriority"}

    def _remove_priority_class(self, kind: str, namespace: str, name: str) -> None:
        self.priority_classes.pop(name, None)

    def _apply_resource_quota(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        self.resource_quotas[namespace][name] = {
            "hard": dict((obj.get("spec") or {}).get("hard") or {}),
            "scopes": list((obj.get("spec") or {}).get("scopes") or ()),
            "scopeSelector": (obj.get("spec") or {}).get("scopeSelector"),
            # The admission plugin enforces status.hard (synced by the quota controller); a quota
            # read from a manifest has no status yet and is taken at spec.hard.
            "status_hard": dict((obj.get("status") or {}).get("hard") or {}) if "status" in obj else None,
            "used": dict((obj.get("status") or {}).get("used") or {})}

    def _remove_resource_quota(self, kind: str, namespace: str, name: str) -> None:
        self.resource_quotas[namespace].pop(name, None)

    def _apply_node_pool(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        if str(obj.get("apiVersion", "")).startswith("karpenter.sh/"):     # not another project's NodePool
            spec = obj.get("spec") or {}
            ref: object = spec
            for key in ("template", "spec", "nodeClassRef"):      # read defensively: a stored object
                ref = ref.get(key) if isinstance(ref, Mapping) else None
            ref_kind, ref_name = (ref.get("kind") or EC2_NODE_CLASS, ref.get("name")) \
                if isinstance(ref, Mapping) else (EC2_NODE_CLASS, None)
            self.node_pools[name] = {"spec": {"limits": spec.get("limits") or {}},
                                     "status": {"resources": (obj.get("status") or {}).get("resources") or {}},
                                     "nodeClassRef": (str(ref_kind), str(ref_name)) if ref_name else None}

    def _remove_node_pool(self, kind: str, namespace: str, name: str) -> None:
        self.node_pools.pop(name, None)

    def _apply_node_class(self, obj: Mapping, kind: str, namespace: str, name: str) -> None:
        found = NodeClass.from_object(obj)
        if found is not None:
            self.node_classes[(found.kind, found.name)] = found

    def _remove_node_class(self, kind: str, namespace: str, name: str) -> None:
        self.node_classes.pop((kind, name), None)

    def _unlink(self, key: tuple) -> None:
        parent_key = self.parents.pop(key, None)
        if parent_key is not None:
            self.children[parent_key].discard(key)

    def _set_node(self, record: NodeRecord) -> None:
        old = self.nodes.get(record.name)
        if old:  # keep the aggregates its pods built up
            record.used, record.pods, record.ip_pods, record.claims = old.used, old.pods, old.ip_pods, old.claims
            record.daemon_used, record.daemon_pods, record.daemon_ip_pods = \
                old.daemon_used, old.daemon_pods, old.daemon_ip_pods
            record.extended_used, record.score_used, record.ports = old.extended_used, old.score_used, old.ports
        else:
            for pod in self.pods.values():
                if pod.node == record.name:
                    self._account(record, pod, +1)
        self.nodes[record.name] = record

    def _account(self, node: NodeRecord, pod: PodRecord, sign: int) -> None:
        self.rooms_dirty.add(node.name)
        node.used = node.used + pod.requests if sign > 0 else node.used - pod.requests
        node.score_used = node.score_used + pod.score_requests if sign > 0 else node.score_used - pod.score_requests
        node.pods += sign
        node.ip_pods += sign if pod.uses_ip else 0
        for name, amount in pod.extended:
            node.extended_used[name] = node.extended_used.get(name, 0) + sign * amount
        for port in pod.ports:
            left = node.ports.get(port, 0) + sign
            if left > 0:
                node.ports[port] = left
            else:
                node.ports.pop(port, None)
        if pod.owner and pod.owner[0] == "DaemonSet":
            node.daemon_used = node.daemon_used + pod.requests if sign > 0 else node.daemon_used - pod.requests
            node.daemon_pods += sign
            node.daemon_ip_pods += sign if pod.uses_ip else 0
        for claim in pod.claims:
            key = f"{pod.namespace}/{claim}"
            node.claims[key] += sign
            if node.claims[key] <= 0:
                del node.claims[key]

    def _note_pods_moved(self, owner_key: tuple) -> None:
        """The pods counted for ``owner_key`` (and so for its parent) may change: what a
        reservation of either holds must be computed again (``ReservedSums``)."""
        sums = self.reserved_sums
        if sums is not None and sums.held:
            sums.dirty.add(owner_key)
            parent = self.parents.get(owner_key)
            if parent is not None:
                sums.dirty.add(parent)

    def _set_pod(self, key: tuple, record: PodRecord | None) -> None:
        if record is not None and self.pods.get(key) == record:
            return      # a status-only update (most watch events): aggregates and indexes stand
        old = self.pods.pop(key, None)
        sums = self.reserved_sums
        if sums is not None and sums.held:
            sums.dirty.add(("Pod",) + key)
            for pod in (old, record):
                if pod is not None and pod.owner:
                    self._note_pods_moved((pod.owner[0], pod.namespace, pod.owner[1]))
        if ((old and old.owner and old.owner[0] == "DaemonSet")
                or (record and record.owner and record.owner[0] == "DaemonSet")):
            self.daemon_epoch += 1
        if old:
            self.pending.pop(key, None)
            if old.node:
                self._index_labels(old, -1)
            if old.owner:
                old_owner = (old.owner[0], old.namespace, old.owner[1])
                self.pods_by_owner[old_owner].discard(key)
                if self.desired:
                    self._recheck_owner(old_owner)
            if old.node in self.nodes:
                self._account(self.nodes[old.node], old, -1)
        if record is None:
            return
        self.pods[key] = record
        if record.owner:
            owner_key = (record.owner[0], record.namespace, record.owner[1])
            self.pods_by_owner[owner_key].add(key)
            if self.desired:
                self._recheck_owner(owner_key)
        if record.node is None:
            if not record.gated:        # a gated pod is not handed to the scheduler yet
                self.pending[key] = record
        else:
            self._index_labels(record, +1)
            if record.node in self.nodes:
                self._account(self.nodes[record.node], record, +1)

    def _index_labels(self, pod: PodRecord, sign: int) -> None:
        """Bound pods by (namespace, labels) and node: pod affinity and spread count from here,
        so a decision matches a selector once per distinct label set, never once per pod."""
        _count_bound(self.label_index, pod, sign)
        if pod.terminating:     # PodTopologySpread skips these (countPodsMatchSelector); affinity does not
            _count_bound(self.terminating_index, pod, sign)
        left = self.bound_priorities.get(pod.priority, 0) + sign
        if left > 0:
            self.bound_priorities[pod.priority] = left
        else:
            self.bound_priorities.pop(pod.priority, None)
        if pod.anti:
            if sign > 0:
                self.anti_pods[pod.key] = pod
            else:
                self.anti_pods.pop(pod.key, None)

    def _set_csinode(self, name: str, obj: Mapping) -> None:
        for driver in (obj.get("spec") or {}).get("drivers") or []:
            if driver.get("name") == "ebs.csi.aws.com":
                count = (driver.get("allocatable") or {}).get("count")
                if count is not None:
                    self.csinode_ebs_limit[name] = int(count)
                    return
        self.csinode_ebs_limit.pop(name, None)

    def _set_attachment(self, name: str, obj: Mapping | None) -> None:
        old = self.attachment_index.pop(name, None)
        if old:
            self.attachments[old[0]].discard(old[1])
        if obj is None:
            return
        spec = obj.get("spec") or {}
        pv = (spec.get("source") or {}).get("persistentVolumeName")
        if spec.get("attacher") == "ebs.csi.aws.com" and pv and spec.get("nodeName"):
            self.attachment_index[name] = (spec["nodeName"], pv)
            self.attachments[spec["nodeName"]].add(pv)

    # ---- pods promised by controllers ------------------------------------------------
    def _set_desired(self, key: tuple, obj: Mapping) -> None:
        wanted = desired_pods(obj)
        if wanted is None:
            self.desired.pop(key, None)
        else:
            self.desired[key] = wanted
        if _condition_true(obj, "ReplicaFailure"):
            self.replica_failure.add(key)
        else:
            self.replica_failure.discard(key)
        self._recheck_short(key)
        parent = self.parents.get(key)
        if parent is not None:
            self._recheck_short(parent)

    def _recheck_owner(self, owner_key: tuple) -> None:
        self._recheck_short(owner_key)
        parent = self.parents.get(owner_key)
        if parent is not None:
            self._recheck_short(parent)

    def pod_count(self, key: tuple) -> int:
        """Pods (waiting ones included) of a workload, directly or through its ReplicaSets/Jobs."""
        count = len(self.pods_by_owner.get(key, ()))
        for child in self.children.get(key, ()):
            count += len(self.pods_by_owner.get(child, ()))
        return count

    def cannot_create(self, key: tuple) -> bool:
        """The controller reports it cannot create the pods (``ReplicaFailure``, e.g. a ResourceQuota)."""
        return key in self.replica_failure or any(c in self.replica_failure for c in self.children.get(key, ()))

    def _recheck_short(self, key: tuple) -> None:
        wanted = self.desired.get(key)
        if wanted is not None and wanted > self.pod_count(key) and not self.cannot_create(key):
            self.short.add(key)
        else:
            self.short.discard(key)

    def missing_pods(self, key: tuple) -> int:
        """Pods a workload's controller still has to create (0 when it reports it cannot)."""
        if key not in self.short:
            return 0
        return max(0, self.desired.get(key, 0) - self.pod_count(key))

    # ---- reservations --------------------------------------------------------------
    def reserve(self, workload: tuple, per_node: Mapping[str, int], requests: Resources, uses_ip: bool,
                expires_at: float | None = None, uid: str = "", branch_eni: bool = False) -> Reservation | None:
        """Hold capacity for ``workload``'s admitted pods until they appear (or ``expires_at``).

        Two workloads admitted within a second would otherwise both count the same free
        slots. The latest decision about a workload wins: its earlier reservation is
        replaced, and a decision that places nothing releases it.
        """
        self.reservations.pop(workload, None)
        held = self.promise(workload, per_node, requests, uses_ip, expires_at, uid, branch_eni)
        if held is not None:
            self.reservations[workload] = held
        return held

    def promise(self, workload: tuple, per_node: Mapping[str, int], requests: Resources, uses_ip: bool,
                expires_at: float | None = None, uid: str = "", branch_eni: bool = False) -> Reservation | None:
        """The Reservation ``reserve`` would store, with its pods counted now (None: nothing to hold)."""
        per_node = {n: int(c) for n, c in per_node.items() if c > 0}
        if not per_node:
            return None
        base, total = self._pods_per_node(workload)
        return Reservation(workload, per_node, requests, uses_ip, expires_at,
                           {n: base.get(n, 0) for n in per_node}, total, uid, branch_eni)

    def trimmed(self, held: Reservation, at_most: int) -> Reservation | None:
        """``held`` cut down to ``at_most`` pods still to come (a scale-down releases the rest)."""
        now = self.held(held)
        if sum(now.values()) <= at_most:
            return held
        keep: dict[str, int] = {}
        left = at_most
        for node in sorted(now, key=lambda n: (-now[n], n)):
            take = min(now[node], left)
            if take > 0:
                keep[node] = take
                left -= take
        return self.promise(held.workload, keep, held.requests, held.uses_ip, held.expires_at, held.uid,
                            held.branch_eni)

    def expire_reservations(self, now: float) -> int:
        """Drop reservations past their expiry, and those whose pods have all appeared."""
        stale = [w for w, r in self.reservations.items()
                 if (r.expires_at is not None and r.expires_at <= now) or not self.held(r)]
        for workload in stale:
            del self.reservations[workload]
        return len(stale)

    def _pods_per_node(self, workload: tuple) -> tuple[dict[str, int], int]:
        """The workload's pods per node, and all of them (waiting ones included)."""
        counts: dict[str, int] = {}
        pods = self.pods_of(workload) if workload[0] != "Pod" else \
            [p for p in (self.pods.get((workload[1], workload[2])),) if p is not None]
        for pod in pods:
            if pod.node:
                counts[pod.node] = counts.get(pod.node, 0) + 1
        return counts, len(pods)

    def held(self, held: Reservation) -> dict[str, int]:
        """What a reservation still holds per node: its promise minus the pods that appeared since.

        A pod that landed on a promised node takes that node's place; a pod still waiting
        for a node is already counted as waiting demand, so it shrinks the total too.
        """
        counts, total = self._pods_per_node(held.workload)
        out: dict[str, int] = {}
        for node, count in held.per_node.items():
            left = held.base.get(node, 0) + count - counts.get(node, 0)
            if left > 0:
                out[node] = min(left, count)
        cap = max(0, held.base_total + held.promised - total)
        excess = sum(out.values()) - cap
        for node in sorted(out, reverse=True):
            if excess <= 0:
                break
            cut = min(out[node], excess)
            out[node] -= cut
            excess -= cut
        return {n: c for n, c in out.items() if c > 0}

    def reserved_by_node(self, exclude: tuple | None = None) -> dict[str, tuple[Resources, int, int]]:
        """Requests, pods and IP-consuming pods promised per node by reservations.

        One pass over the reservations per decision. ``exclude`` leaves out one
        workload's own reservation: when it is evaluated again (a scale, an update)
        its earlier promise is what the new decision replaces.
        """
        sums: dict[str, tuple[Resources, int, int]] = {}
        for held in self.reservations.values():
            if held.workload == exclude:
                continue
            for node, count in self.held(held).items():
                used, pods, ips = sums.get(node, (ZERO, 0, 0))
                sums[node] = (used + held.requests.scaled(count), pods + count, ips + (count if held.uses_ip else 0))
        return sums

    def reserved_branch_enis(self, exclude: tuple | None = None) -> dict[str, int]:
        """Branch ENIs (security groups for pods) promised per node by reservations.

        A promised pod that a SecurityGroupPolicy selects will take one of the node's
        ``vpc.amazonaws.com/pod-eni`` when it binds: two workloads admitted within a second
        must not both count the node's last branch ENI.
        """
        sums: dict[str, int] = {}
        for held in self.reservations.values():
            if held.branch_eni and held.workload != exclude:
                for node, count in self.held(held).items():
                    sums[node] = sums.get(node, 0) + count
        return sums

    def reserved_owners(self, exclude: tuple | None = None) -> dict[str, dict[tuple, int]]:
        """Per node, how many pods each workload's reservation holds there (for messages)."""
        owners: dict[str, dict[tuple, int]] = {}
        for held in self.reservations.values():
            if held.workload == exclude:
                continue
            for node, count in self.held(held).items():
                owners.setdefault(node, {})[held.workload] = count
        return owners

    # ---- questions -------------------------------------------------------------------
    def limits_for(self, node: NodeRecord) -> InstanceLimits | None:
        return self.instance_table.get(node.instance_type) if node.instance_type else None

    def ip_capacity(self, node: NodeRecord) -> IpCapacity:
        """The node's IP rule, cached per instance type until the CNI or the table changes."""
        key = (self.cni, len(self.instance_table))
        if self._ip_cache_key != key:
            self._ip_cache, self._ip_cache_key = {}, key
        capacity = self._ip_cache.get(node.instance_type)
        if capacity is None:
            capacity = node_ip_capacity(node.instance_type, self.limits_for(node), self.cni)
            self._ip_cache[node.instance_type] = capacity
        if self.network.nodes:       # per-node truth: Windows, trunk ENI, nodes still on secondary IPs
            return adjust_ip_capacity(self, node, capacity)
        return capacity

    def top_owner(self, owner_key: tuple) -> tuple:
        """Walk ReplicaSet -> Deployment and Job -> CronJob to the object a user applies.

        Reads the ``parents`` index, never the stored objects (which the live cache keeps
        compressed): this runs for every waiting pod in every decision.
        """
        parent = self.parents.get(owner_key)
        while parent is not None and parent[0] in WORKLOAD_KINDS:
            owner_key, parent = parent, self.parents.get(parent)
        return owner_key

    def pods_of(self, workload: tuple) -> list[PodRecord]:
        """The pods a workload owns, through its ReplicaSets or Jobs."""
        keys = set(self.pods_by_owner.get(workload, ()))
        for child in self.children.get(workload, ()):
            keys.update(self.pods_by_owner.get(child, ()))
        return [self.pods[k] for k in keys if k in self.pods]

    def ebs_volumes_on(self, node: NodeRecord) -> set:
        """EBS volumes attached to ``node``: VolumeAttachments plus the bound claims its pods mount."""
        volumes = set(self.attachments.get(node.name, ()))
        for key in node.claims:
            namespace, claim_name = key.split("/", 1)
            claim = self.claims.get((namespace, claim_name))
            pv_name = ((claim or {}).get("spec") or {}).get("volumeName")
            pv = self.persistent_volumes.get(pv_name or "")
            if pv and _is_ebs_pv(pv):
                volumes.add(pv_name)
        return volumes

    def namespace_labels(self, namespace: str) -> dict:
        return self.namespaces.get(namespace) or {}

    def ebs_volume_count(self, node: NodeRecord) -> int:
        """``len(ebs_volumes_on(node))``, without building the set for a node with no volumes at all."""
        if not node.claims and not self.attachments.get(node.name):
            return 0
        return len(self.ebs_volumes_on(node))

    def limit_ranges_in(self, namespace: str) -> list:
        return list(self.limit_ranges.get(namespace, {}).values())


# What ClusterState.apply and .remove do for each kind: (apply, remove). Unknown kinds are ignored.
# One row per kind keeps the two sides of a kind next to each other (and a new kind one line).
_Apply = Callable[[ClusterState, Mapping, str, str, str], None]
_Remove = Callable[[ClusterState, str, str, str], None]
KIND_HANDLERS: dict[str, tuple[_Apply, _Remove]] = {
    **{kind: (ClusterState._apply_network, ClusterState._remove_network) for kind in NETWORK_KINDS},
    **{kind: (ClusterState._apply_workload, ClusterState._remove_workload) for kind in WORKLOAD_KINDS},
    "Node": (ClusterState._apply_node, ClusterState._remove_node),
    "Pod": (ClusterState._apply_pod, ClusterState._remove_pod),
    "StorageClass": (ClusterState._apply_storage_class, ClusterState._remove_storage_class),
    "PersistentVolume": (ClusterState._apply_persistent_volume, ClusterState._remove_persistent_volume),
    "PersistentVolumeClaim": (ClusterState._apply_claim, ClusterState._remove_claim),
    "CSINode": (ClusterState._apply_csinode, ClusterState._remove_csinode),
    "VolumeAttachment": (ClusterState._apply_attachment, ClusterState._remove_attachment),
    "LimitRange": (ClusterState._apply_limit_range, ClusterState._remove_limit_range),
    "Namespace": (ClusterState._apply_namespace, ClusterState._remove_namespace),
    "PriorityClass": (ClusterState._apply_priority_class, ClusterState._remove_priority_class),
    "ResourceQuota": (ClusterState._apply_resource_quota, ClusterState._remove_resource_quota),
    "NodePool": (ClusterState._apply_node_pool, ClusterState._remove_node_pool),
    **{kind: (ClusterState._apply_node_class, ClusterState._remove_node_class) for kind in NODE_CLASS_KINDS},
}
