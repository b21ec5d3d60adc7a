"""Storage rules for AWS: EBS and EFS claims that can never bind, attach or be shared.

EBS volumes are zonal block devices attached to one node at a time: ReadWriteOnce and
ReadWriteOncePod only (ReadWriteMany just for io2 Block multi-attach), sizes bounded per
volume type, and a per-node attach limit reported by the CSI driver on the CSINode. EFS is
a network filesystem: any Filesystem access mode, never Block. Each rule yields a finding
with a stable code and the fix users should reach for.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, cast

from .model import _is_ebs_pv
from .quantity import QuantityError, parse_quantity
from .requests import ObjectError
from .verdict import DENY, WARN, Reason, clip, counted

EBS_PROVISIONERS = ("ebs.csi.aws.com", "kubernetes.io/aws-ebs")
EFS_PROVISIONERS = ("efs.csi.aws.com",)
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
ZONE_KEYS = ("topology.ebs.csi.aws.com/zone", "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
GIB = 2**30
# EBS volume sizes in GiB by type (AWS EBS volume types documentation).
EBS_SIZE_GIB = {"gp2": (1, 16384), "gp3": (1, 65536), "io1": (4, 16384), "io2": (4, 65536),
                "st1": (125, 16384), "sc1": (125, 16384), "standard": (1, 1024)}

EBS_ACCESS_MODE = "EBS_ACCESS_MODE"
EBS_ATTACH_LIMIT = "EBS_ATTACH_LIMIT"      # found by placement (NodeRoom.volumes), or here for shared claims
EBS_SIZE = "EBS_SIZE"
EBS_SHARED_RWO = "EBS_SHARED_RWO"
EBS_ZONE = "EBS_ZONE"
EFS_BLOCK_MODE = "EFS_BLOCK_MODE"
NO_STORAGE_CLASS = "NO_STORAGE_CLASS"
STORAGE_CLASS_NOT_FOUND = "STORAGE_CLASS_NOT_FOUND"
CLAIM_NOT_FOUND = "CLAIM_NOT_FOUND"
ZONE_EXCLUSION = "outside the volume's zone"


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


def default_class(state) -> str | None:
    """The class the DefaultStorageClass admission plugin would set.

    As Kubernetes' GetDefaultClass: the annotation must be exactly "true"; of several
    defaults the newest (creationTimestamp) wins, then the name that sorts first.
    """
    defaults = [(str(_meta(sc).get("creationTimestamp") or ""), name) for name, sc in state.storage_classes.items()
                if any((_meta(sc).get("annotations") or {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)]
    if not defaults:
        return None
    newest = max(created for created, _ in defaults)      # RFC 3339 UTC timestamps sort as strings
    return min(name for created, name in defaults if created == newest)


def backend(storage_class: Mapping | None) -> str | None:
    provisioner = (storage_class or {}).get("provisioner")
    if provisioner in EBS_PROVISIONERS:
        return "ebs"
    if provisioner in EFS_PROVISIONERS:
        return "efs"
    return None


def _efs_class_name(state) -> str | None:
    names = sorted(n for n, sc in state.storage_classes.items() if backend(sc) == "efs")
    return names[0] if names else None


@dataclass
class ClaimView:
    """A claim's spec with its StorageClass resolved."""

    label: str
    spec: Mapping
    class_name: str | None
    storage_class: Mapping | None
    access_modes: tuple
    volume_mode: str

    @property
    def backend(self) -> str | None:
        return backend(self.storage_class)

    @property
    def ebs_type(self) -> str:
        return str(((self.storage_class or {}).get("parameters") or {}).get("type", "gp3")).lower()


def resolve_claim(state, spec: Mapping, label: str) -> tuple[ClaimView, list[Reason]]:
    name = spec.get("storageClassName")
    findings: list[Reason] = []
    if name is None:
        name = default_class(state)
        if name is None and not spec.get("volumeName"):
            findings.append(Reason(NO_STORAGE_CLASS, clip(f"{label}: no storageClassName and the cluster has no "
                                                          "default StorageClass")
                                   + "\nThe claim binds only to a matching pre-created PersistentVolume.\nSet "
                                     "storageClassName, or mark a class with storageclass.kubernetes.io/"
                                     "is-default-class: \"true\".", WARN))
    storage_class = state.storage_classes.get(name) if name else None
    if name and storage_class is None and not spec.get("volumeName"):
        findings.append(Reason(STORAGE_CLASS_NOT_FOUND, clip(f"{label}: StorageClass {name!r} does not exist; the "
                                                             "claim stays Pending")
                               + f"\nKnown classes: {', '.join(sorted(state.storage_classes)) or 'none'}.\nCreate "
                                 "the class first or fix storageClassName."))
    view = ClaimView(label, spec, name, storage_class, tuple(spec.get("accessModes") or ()),
                     spec.get("volumeMode") or "Filesystem")
    return view, findings


def _size_gib(spec: Mapping, path: str) -> int | None:
    raw = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if raw is None:
        return None
    try:
        return math.ceil(parse_quantity(raw) / GIB)   # the EBS CSI driver rounds up to whole GiB
    except QuantityError as exc:
        raise ObjectError(f"{path}.resources.requests.storage", str(exc)) from None


def spec_findings(state, view: ClaimView, path: str = "spec") -> list[Reason]:
    """Rules on the claim alone: access modes, volume mode and size for its backend."""
    findings = []
    modes = set(view.access_modes)
    if view.backend == "ebs":
        multi = modes & {"ReadWriteMany", "ReadOnlyMany"}
        io2_block = (view.ebs_type == "io2" and view.volume_mode == "Block"
                     and modes <= {"ReadWriteMany", "ReadWriteOnce"})     # (the API refuses RWOP with other modes)
        if multi and not io2_block:
            efs = _efs_class_name(state)
            fix = (f"Use the EFS StorageClass {efs!r} for shared storage" if efs else
                   "Install the EFS CSI driver and use an EFS StorageClass for shared storage")
            findings.append(Reason(EBS_ACCESS_MODE, clip(
                f"{view.label}: {'/'.join(sorted(multi))} on EBS class {view.class_name!r} never binds")
                + f"\nEBS volumes attach to one node (ReadWriteOnce/ReadWriteOncePod); the driver answers "
                  f"'Volume capabilities not supported'. Only io2 volumes with volumeMode: Block allow multi-attach."
                  f"\n{fix}, or use ReadWriteOnce."))
        size = _size_gib(view.spec, path)
        low, high = EBS_SIZE_GIB.get(view.ebs_type, (1, 65536))
        if size is not None and not low <= size <= high:
            findings.append(Reason(EBS_SIZE, clip(
                f"{view.label}: {size} GiB is outside the {view.ebs_type} range of {low:,}-{high:,} GiB")
                + f"\nThe EBS CSI driver rounds the request up to whole GiB and EC2 refuses volumes outside "
                  f"the type's range.\nRequest between {low:,} and {high:,} GiB, or use another volume type."))
    elif view.backend == "efs" and view.volume_mode == "Block":
        findings.append(Reason(EFS_BLOCK_MODE, clip(f"{view.label}: EFS cannot serve volumeMode: Block")
                               + "\nEFS is a network filesystem.\nUse volumeMode: Filesystem, or an EBS class "
                                 "for a raw block device."))
    return findings


def claim_findings(state, claim: Mapping, old: Mapping | None = None) -> list[Reason]:
    """Findings for a PersistentVolumeClaim object (CREATE, or UPDATE such as an expansion)."""
    meta = _meta(claim)
    label = f"PersistentVolumeClaim {meta.get('namespace') or 'default'}/{meta.get('name', '')}"
    spec = claim.get("spec") or {}
    if old is not None and (old.get("spec") or {}) == spec:
        return []
    view, findings = resolve_claim(state, spec, label)
    return findings + spec_findings(state, view)


@dataclass
class VolumeRules:
    """What a workload's volumes add to placement: findings, node restrictions, attach needs."""

    findings: list = field(default_factory=list)
    blocking: bool = False                       # a claim can never bind: every pod stays Pending
    zones: set | None = None
    pinned_node: str | None = None
    new_volumes_per_pod: int = 0                 # EBS volumes each new pod attaches (its own claims)
    node_filter: Callable | None = None
    max_pods: int | None = None                  # ReadWriteOncePod: at most this many of the workload's pods run
    node_volumes: int = 0                        # shared EBS claims not attached yet: one attachment per node


def _pv_zones(pv: Mapping) -> set:
    """Zones a PV can attach in: its node affinity (terms ORed, expressions ANDed), else its zone label."""
    spec = pv.get("spec") or {}
    terms = (((spec.get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")) or []
    zones: set = set()
    for term in terms:
        term_zones = None
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") in ZONE_KEYS and expr.get("operator") == "In":
                values = set(expr.get("values") or [])
                term_zones = values if term_zones is None else term_zones & values
        if term_zones is None:
            return set()                         # a term without a zone: the PV is not zonal
        zones |= term_zones
    if not terms:                                # in-tree PVs labelled by the PersistentVolumeLabel plugin
        labels = _meta(pv).get("labels") or {}
        zones = {labels[k] for k in ZONE_KEYS if labels.get(k)}
    return zones


def _class_zones(storage_class: Mapping | None) -> set:
    if not storage_class or storage_class.get("volumeBindingMode", "Immediate") != "Immediate":
        return set()
    zones: set[str] = set()
    for term in storage_class.get("allowedTopologies") or []:
        for expr in term.get("matchLabelExpressions") or []:
            if expr.get("key") in ZONE_KEYS:
                zones.update(expr.get("values") or [])
    return zones


def _pinned_node(pod_spec: Mapping) -> str | None:
    """The one node the pods must run on: nodeName, a hostname nodeSelector, or required affinity to one node."""
    pinned = pod_spec.get("nodeName") or (pod_spec.get("nodeSelector") or {}).get("kubernetes.io/hostname")
    if pinned:
        return pinned
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    for key, exprs in (("kubernetes.io/hostname", terms[0].get("matchExpressions") or []),
                       ("metadata.name", terms[0].get("matchFields") or [])):
        for expr in exprs:
            if expr.get("key") == key and expr.get("operator") == "In" and len(expr.get("values") or []) == 1:
                return expr["values"][0]
    return None


def node_zone(node) -> str | None:
    """The node's zone label (the EBS CSI driver's topology key first); None without one. (NodeRecord.zone
    reads a subset of the same labels, so it has nothing to add.)"""
    for key in ZONE_KEYS:
        if node.labels.get(key):
            return node.labels[key]
    return None


def free_attachments(state, node) -> int | None:
    """EBS attachments left on ``node`` per its CSINode (``None``: the driver reports no limit)."""
    limit = state.csinode_ebs_limit.get(node.name)
    return None if limit is None else limit - len(state.ebs_volumes_on(node))


def pod_volume_rules(state, demand) -> VolumeRules:
    """Apply the EBS/EFS rules to the claims a workload's pods mount."""
    rules = VolumeRules()
    label = f"{demand.kind} {demand.namespace}/{demand.name}"
    replicas = demand.replicas if demand.replicas is not None else len(state.nodes)
    zones: set | None = None
    for i, template in enumerate(demand.claim_templates):
        tname = _meta(template).get("name", str(i))
        view, findings = resolve_claim(state, template.get("spec") or {}, f"{label} volumeClaimTemplate {tname}")
        findings += spec_findings(state, view, f"spec.volumeClaimTemplates[{i}].spec")
        rules.findings += findings
        rules.blocking |= any(f.severity == DENY for f in findings)
        if view.backend == "ebs":
            rules.new_volumes_per_pod += 1
            zones = _narrow(zones, _class_zones(view.storage_class))
    shared_new = 0
    for volume in demand.pod_spec.get("volumes") or []:
        claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName") or ""
        claim = state.claims.get((demand.namespace, claim_name)) if claim_name else None
        if claim is None:
            if claim_name:
                rules.findings.append(Reason(CLAIM_NOT_FOUND, clip(
                    f"{label}: PersistentVolumeClaim {demand.namespace}/{claim_name} does not exist (yet)")
                    + "\nIts pods stay Pending until the claim exists and binds.\nCreate the claim first, or fix "
                      "claimName.", WARN))
            continue
        claim_label = f"PersistentVolumeClaim {demand.namespace}/{claim_name}"
        view, findings = resolve_claim(state, claim.get("spec") or {}, claim_label)
        findings = [f for f in findings + spec_findings(state, view) if f.severity == DENY]
        rules.findings += findings
        rules.blocking |= bool(findings)
        holders = _holders(state, demand, claim_name)
        if "ReadWriteOncePod" in view.access_modes:      # the scheduler enforces it for any driver
            _one_pod_claim(rules, demand, claim_label, replicas, holders)
        pv = state.persistent_volumes.get((claim.get("spec") or {}).get("volumeName") or "")
        if not (view.backend == "ebs" or (pv and _is_ebs_pv(pv))):
            continue
        zones = _narrow(zones, _pv_zones(pv) if pv else _class_zones(view.storage_class))
        multi_attach = "ReadWriteMany" in view.access_modes   # io2 Block; other RWX was denied above
        if not multi_attach and "ReadWriteOncePod" not in view.access_modes:
            _shared_claim(rules, demand, claim_label, replicas, holders)
        if not holders:
            shared_new += 1
    if shared_new:
        if replicas <= 1 or demand.replicas is None:   # one pod per node: per pod is per node
            rules.new_volumes_per_pod += shared_new
        else:                                          # pods on one node share one attachment
            rules.node_volumes = shared_new
    rules.zones = zones
    rules.node_filter = _node_filter(rules, state)
    if not rules.blocking:
        _unreachable(rules, state, label)
    return rules


def _narrow(current: set | None, zones: set) -> set | None:
    if not zones:
        return current
    return set(zones) if current is None else current & zones


def _holders(state, demand, claim_name: str) -> set:
    """Nodes where pods of *other* workloads already mount the claim (our own pods move with us)."""
    key = f"{demand.namespace}/{claim_name}"
    own = Counter(p.node for p in state.pods_of(demand.key) if p.node and claim_name in p.claims)
    return {name for name, node in state.nodes.items() if node.claims.get(key, 0) - own.get(name, 0) > 0}


def _one_pod_claim(rules: VolumeRules, demand, claim_label: str, replicas: int, holders: set) -> None:
    """ReadWriteOncePod: one pod in the whole cluster, whatever the node."""
    pods = replicas + (1 if holders else 0)
    if pods <= 1:
        return
    allowed = 0 if holders else 1
    rules.max_pods = allowed if rules.max_pods is None else min(rules.max_pods, allowed)
    if demand.replicas is None:
        rules.blocking = True
    if holders:
        summary = f"{claim_label} is ReadWriteOncePod and a pod on {', '.join(sorted(holders))} already uses it"
        detail = (f"{demand.kind} {demand.namespace}/{demand.name} wants {counted(replicas, 'more pod')} on it; "
                  "none can start.")
    else:
        summary = f"{claim_label} is ReadWriteOncePod but {pods} pods would mount it; only one can run"
        detail = "The scheduler keeps every other pod Pending."
    rules.findings.append(Reason(EBS_SHARED_RWO, clip(summary) + f"\n{detail}\nGive each pod its own claim (a "
                                 "StatefulSet with volumeClaimTemplates) or run a single pod on the claim."))


def _shared_claim(rules: VolumeRules, demand, claim_label: str, replicas: int, holders: set) -> None:
    """ReadWriteOnce EBS: pods on any node but the one holding the volume get Multi-Attach errors."""
    pods = replicas + (1 if holders else 0)
    if pods <= 1:
        return
    pinned = _pinned_node(demand.pod_spec)
    if pinned and (not holders or holders == {pinned}):
        rules.pinned_node = pinned
        return
    workload = f"{demand.kind} {demand.namespace}/{demand.name}"
    if holders:
        where = ", ".join(sorted(holders))
        if pinned:
            summary = f"{claim_label}: pods pinned to {pinned} but its EBS volume is attached to {where}"
            fix = ("Pin the pods to the node that holds the volume, stop the pods using it there first, or use an "
                   "EFS StorageClass (ReadWriteMany).")
        else:
            summary = f"{claim_label} (ReadWriteOnce EBS) is attached to {where}; pods elsewhere get Multi-Attach"
            fix = ("Use a StatefulSet with volumeClaimTemplates, an EFS StorageClass (ReadWriteMany), or pin the "
                   "pods to that node.")
        detail = (f"{workload} wants {counted(replicas, 'pod')} on a ReadWriteOnce volume another workload's pod "
                  f"holds on {where}; pods on other nodes stay in ContainerCreating (Multi-Attach error).")
    else:
        summary = (f"{claim_label} (ReadWriteOnce EBS) is shared by {pods} pods; "
                   "all but one node get Multi-Attach errors")
        detail = ("EBS attaches to one node at a time: pods the scheduler puts on other nodes stay in "
                  "ContainerCreating.")
        fix = ("Use a StatefulSet with volumeClaimTemplates, an EFS StorageClass (ReadWriteMany), or pin the pods "
               "to one node.")
    rules.findings.append(Reason(EBS_SHARED_RWO, clip(summary) + f"\n{detail}\n{fix}"))


def _node_filter(rules: VolumeRules, state):
    zones, pinned, need = rules.zones, rules.pinned_node, rules.node_volumes
    if zones is None and pinned is None and not need:
        return None

    def node_filter(node):
        if pinned is not None and node.name != pinned:
            return "not the node holding the volume"
        if zones is not None and node_zone(node) not in zones:
            return f"{ZONE_EXCLUSION} {'/'.join(sorted(zones)) or '(none)'}"
        if need:
            free = free_attachments(state, node)
            if free is not None and free < need + rules.new_volumes_per_pod:
                return "EBS attach limit reached"
        return None

    return node_filter


def _unreachable(rules: VolumeRules, state, label: str) -> None:
    """Volumes no node can take at all: a zone without nodes, or no attachment left where pods must run."""
    if not state.nodes:
        return
    zones = rules.zones
    if zones is not None and not any(node_zone(n) in zones for n in state.nodes.values()):
        where = "/".join(sorted(zones))
        summary = (f"{label}: its EBS volume lives in {where}, where the cluster has no nodes" if zones else
                   f"{label}: its EBS volumes live in different zones; no node can attach them all")
        rules.findings.append(Reason(EBS_ZONE, clip(summary) + "\nA zonal EBS volume can only attach to nodes in its "
                                     "zone.\nAdd nodes in that zone, or use WaitForFirstConsumer binding for new "
                                     "volumes."))
        rules.blocking = True
        return
    if rules.node_volumes:
        node_filter = cast(Callable, rules.node_filter)      # _node_filter makes one whenever node_volumes is set
        candidates = [n for n in state.nodes.values() if (rules.pinned_node is None or n.name == rules.pinned_node)
                      and (zones is None or node_zone(n) in zones)]
        if candidates and all(node_filter(n) for n in candidates):
            names = ", ".join(sorted(n.name for n in candidates)[:3])
            rules.findings.append(Reason(EBS_ATTACH_LIMIT, clip(
                f"{label}: no node it can run on can attach its EBS volume ({names})")
                + "\nEach node's CSINode allocatable count caps its EBS attachments, and those are all in use."
                  "\nDetach unused volumes, use instance types with more attachments, or run the pods elsewhere."))
            rules.blocking = True


def zone_reason(label: str, zones: set, placement) -> Reason:
    room = placement.placed
    return Reason(EBS_ZONE, clip(f"{label}: its EBS volume lives in {'/'.join(sorted(zones))}, where only {room} "
                                 "more pods fit")
                  + "\nA zonal EBS volume can only attach to nodes in its zone, so capacity elsewhere does not help."
                    "\nAdd nodes in that zone, or use WaitForFirstConsumer binding for new volumes.")
