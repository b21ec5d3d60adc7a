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
from typing import Callable, Mapping

from .quantity import QuantityError, parse_quantity
from .requests import ObjectError
from .verdict import DENY, WARN, Reason, clip

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
EBS_SIZE = "EBS_SIZE"
EBS_SHARED_RWO = "EBS_SHARED_RWO"
EBS_ZONE = "EBS_ZONE"
EFS_BLOCK_MODE = "EFS_BLOCK_MODE"
NO_STORAGE_CLASS = "NO_STORAGE_CLASS"
STORAGE_CLASS_NOT_FOUND = "STORAGE_CLASS_NOT_FOUND"


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


def default_class(state) -> str | None:
    defaults = sorted(name for name, sc in state.storage_classes.items()
                      if any(str((_meta(sc).get("annotations") or {}).get(a, "")).lower() == "true"
                             for a in DEFAULT_CLASS_ANNOTATIONS))
    return defaults[-1] if defaults else None


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
        io2_block = view.ebs_type == "io2" and view.volume_mode == "Block" and modes <= {"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"}
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
    new_volumes_per_pod: int = 0
    per_node_cap: int | None = None
    node_filter: Callable | None = None


def _pv_zones(pv: Mapping) -> set:
    zones = set()
    terms = ((((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")) or []
    for term in terms:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") in ZONE_KEYS and expr.get("operator") == "In":
                zones.update(expr.get("values") or [])
    return zones


def _class_zones(storage_class: Mapping | None) -> set:
    if not storage_class or storage_class.get("volumeBindingMode", "Immediate") != "Immediate":
        return set()
    zones = set()
    for term in storage_class.get("allowedTopologies") or []:
        for expr in term.get("matchLabelExpressions") or []:
            if expr.get("key") in ZONE_KEYS:
                zones.update(expr.get("values") or [])
    return zones


def _pinned_node(pod_spec: Mapping) -> str | None:
    return pod_spec.get("nodeName") or (pod_spec.get("nodeSelector") or {}).get("kubernetes.io/hostname")


def node_zone(node) -> str | None:
    for key in ZONE_KEYS:
        if node.labels.get(key):
            return node.labels[key]
    return node.zone


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
    for volume in demand.pod_spec.get("volumes") or []:
        claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        claim = state.claims.get((demand.namespace, claim_name)) if claim_name else None
        if claim is None:
            continue
        claim_label = f"PersistentVolumeClaim {demand.namespace}/{claim_name}"
        view, findings = resolve_claim(state, claim.get("spec") or {}, claim_label)
        findings = [f for f in findings + spec_findings(state, view) if f.severity == DENY]
        rules.findings += findings
        rules.blocking |= bool(findings)
        pv = state.persistent_volumes.get((claim.get("spec") or {}).get("volumeName") or "")
        if view.backend == "ebs" or (pv and ((pv.get("spec") or {}).get("csi") or {}).get("driver") == "ebs.csi.aws.com"):
            zones = _narrow(zones, _pv_zones(pv) if pv else _class_zones(view.storage_class))
            holders = _holders(state, demand, claim_name)
            _shared_claim(rules, state, demand, view, claim_label, replicas, holders)
            if not holders:
                rules.new_volumes_per_pod += 1
        elif "ReadWriteOncePod" in view.access_modes:
            _shared_claim(rules, state, demand, view, claim_label, replicas, _holders(state, demand, claim_name))
    rules.zones = zones
    rules.node_filter = _node_filter(rules)
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


def _shared_claim(rules: VolumeRules, state, demand, view: ClaimView, claim_label: str, replicas: int,
                  holders: set) -> None:
    pods = replicas + (1 if holders else 0)
    if pods <= 1 or demand.kind == "StatefulSet" and replicas <= 1 and not holders:
        return
    if "ReadWriteOncePod" in view.access_modes:
        rules.findings.append(Reason(EBS_SHARED_RWO, clip(
            f"{claim_label} is ReadWriteOncePod but {pods} pods would mount it; only one can run")
            + "\nThe scheduler keeps every other pod Pending.\nGive each pod its own claim (a StatefulSet with "
              "volumeClaimTemplates) or use ReadWriteOnce on a single pod."))
        rules.blocking = rules.blocking or replicas > 1 and not holders
        return
    pinned = _pinned_node(demand.pod_spec)
    if pinned and (not holders or holders == {pinned}):
        rules.pinned_node = pinned
        return
    if len(holders) == 1 and not pinned:
        # The volume is attached to one node already: pods elsewhere will hit Multi-Attach.
        rules.findings.append(Reason(EBS_SHARED_RWO, clip(
            f"{claim_label} (ReadWriteOnce EBS) is attached to {next(iter(holders))}; pods elsewhere get Multi-Attach")
            + f"\n{demand.kind} {demand.namespace}/{demand.name} wants {replicas} pods on a volume that one node holds"
              f"; pods on other nodes stay in ContainerCreating.\nUse a StatefulSet with volumeClaimTemplates, an EFS "
              "StorageClass (ReadWriteMany), or pin the pods to that node."))
        return
    rules.findings.append(Reason(EBS_SHARED_RWO, clip(
        f"{claim_label} (ReadWriteOnce EBS) is shared by {pods} pods; all but one node get Multi-Attach errors")
        + f"\nEBS attaches to one node at a time: pods the scheduler puts on other nodes stay in "
          "ContainerCreating.\nUse a StatefulSet with volumeClaimTemplates, an EFS StorageClass (ReadWriteMany), or "
          "pin the pods to one node."))


def _node_filter(rules: VolumeRules):
    zones, pinned = rules.zones, rules.pinned_node
    if zones is None and pinned is None:
        return None

    def node_filter(node):
        if pinned is not None and node.name != pinned:
            return "not the node holding the volume"
        if zones is not None and node_zone(node) not in zones:
            return f"outside the volume's zone {'/'.join(sorted(zones)) or '(none)'}"
        return None

    return node_filter


def zone_reason(label: str, zones: set, placement) -> Reason:
    room = placement.placed
    return Reason(EBS_ZONE, clip(f"{label}: its EBS volume lives in {'/'.join(sorted(zones))}, where only {room} "
                                 "more pods fit")
                  + "\nA zonal EBS volume can only attach to nodes in its zone, so capacity elsewhere does not help."
                    "\nAdd nodes in that zone, or use WaitForFirstConsumer binding for new volumes.")
