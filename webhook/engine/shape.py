"""The JSON types of the object fields the engine reads, checked before it reads them.

The kube-apiserver decodes every object into its Go types before it calls a webhook, so
a review from a real cluster always has the right shapes. Hand-made reviews, manifests
given to ``check`` and snapshot files do not: a string where ``ownerReferences`` (a list
of objects) belongs, ``[null]`` as containers, labels that are a list. ``check_object``
walks an object against the Kubernetes types of the fields the engine (and the
admission policy around it) reads, and raises ``ObjectError`` naming the first wrong
field, so that the verdict can say ``INVALID_OBJECT: cannot read spec.template.spec.
containers[0]: must be an object, got null``. The engine itself then reads fields of
known shapes; an exception it raises anyway is a bug, not the user's fault, and is
reported as an internal error by the adapters.

A missing field and ``null`` are the same (the API omits empty optional fields); unknown
fields are ignored; quantities are only type-checked here (``quantity.parse_quantity``
checks their syntax where they are converted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .requests import ObjectError

# ---- the type language ---------------------------------------------------------------
STR, INT, INT32, BOOL, NUMBER, QUANTITY, INT_OR_STR, ANY = ("str", "int", "int32", "bool", "number", "quantity",
                                                             "int-or-str", "any")
_INT64 = 2**63 - 1          # Go's int64 / int32: a larger JSON number does not decode into the field
_INT32 = 2**31 - 1


class ListOf:
    def __init__(self, item: Any):
        self.item = item


class MapOf:
    def __init__(self, value: Any):
        self.value = value


_NAMES = {STR: "a string", INT: "an integer (64-bit)", INT32: "an integer (32-bit)", BOOL: "a boolean",
          NUMBER: "a number", QUANTITY: "a quantity (a string or a number)", INT_OR_STR: "an integer or a string"}


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer" if -_INT64 - 1 <= value <= _INT64 else "an integer out of range"
    if isinstance(value, float):
        return "a number"
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(type(value), "a value")


def _scalar_ok(kind: str, value: object) -> bool:
    if kind == ANY:
        return True
    if kind == STR:
        return isinstance(value, str)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind in (INT, INT32):
        limit = _INT64 if kind == INT else _INT32
        return isinstance(value, int) and not isinstance(value, bool) and -limit - 1 <= value <= limit
    if kind in (NUMBER, QUANTITY):
        return isinstance(value, (int, float, str)) and not isinstance(value, bool)
    if kind == INT_OR_STR:
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)
                                          and -_INT32 - 1 <= value <= _INT32)
    raise AssertionError(kind)


def _check(value: object, schema: Any, path: str) -> None:
    if value is None:
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise ObjectError(path, f"must be an object, got {_type_name(value)}")
        for key, sub in schema.items():
            if key in value:
                _check(value[key], sub, f"{path}.{key}" if path else key)
    elif isinstance(schema, ListOf):
        if not isinstance(value, list):
            raise ObjectError(path, f"must be an array, got {_type_name(value)}")
        for index, item in enumerate(value):
            if item is None and not isinstance(schema.item, str):
                raise ObjectError(f"{path}[{index}]", "must be an object, got null")
            _check(item, schema.item, f"{path}[{index}]")
    elif isinstance(schema, MapOf):
        if not isinstance(value, dict):
            raise ObjectError(path, f"must be an object, got {_type_name(value)}")
        for key, item in value.items():
            if schema.value != ANY and item is None:
                raise ObjectError(f"{path}.{key}", f"must be {_NAMES.get(schema.value, 'set')}, got null")
            _check(item, schema.value, f"{path}.{key}")
    elif not _scalar_ok(schema, value):
        raise ObjectError(path, f"must be {_NAMES[schema]}, got {_type_name(value)}")


_SCALAR_EXPR = {
    STR: "isinstance({v}, str)",
    BOOL: "isinstance({v}, bool)",
    INT: f"(isinstance({{v}}, int) and not isinstance({{v}}, bool) and {-_INT64 - 1} <= {{v}} <= {_INT64})",
    INT32: f"(isinstance({{v}}, int) and not isinstance({{v}}, bool) and {-_INT32 - 1} <= {{v}} <= {_INT32})",
    NUMBER: "(isinstance({v}, (int, float, str)) and not isinstance({v}, bool))",
    QUANTITY: "(isinstance({v}, (int, float, str)) and not isinstance({v}, bool))",
    INT_OR_STR: f"(isinstance({{v}}, str) or (isinstance({{v}}, int) and not isinstance({{v}}, bool) "
                f"and {-_INT32 - 1} <= {{v}} <= {_INT32}))",
}


class _Compiler:
    """Turns a schema into Python functions that answer "would ``_check`` pass?".

    ``_check`` builds the field path of every field it visits and makes a call per value;
    150,000 pods in a snapshot are almost all well-formed, so they are walked by these
    functions instead (nested objects and scalar fields tested inline, a function per
    array or map item type, no paths), and only an object that fails is walked again by
    ``_check`` to name the field. tests/test_robustness.py checks that both walks agree.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.keep: list = []          # the schemas compiled (their ids name the functions)

    def function(self, schema: Any) -> str:
        name = self.names.get(id(schema))
        if name is not None:
            return name
        name = self.names[id(schema)] = f"_f{len(self.names)}"
        self.keep.append(schema)
        body: list[str] = []
        self._block(schema, "o", 1, body)
        self.lines.append(f"def {name}(o):\n" + "\n".join(body) + "\n    return True\n")
        return name

    def _block(self, schema: Any, var: str, depth: int, body: list[str]) -> None:
        """Lines that return False unless ``var`` (not None) has the shape ``schema``."""
        pad = "    " * depth
        if isinstance(schema, str):
            if schema != ANY:
                body.append(f"{pad}if not {_SCALAR_EXPR[schema].format(v=var)}: return False")
        elif isinstance(schema, dict):
            body.append(f"{pad}if not isinstance({var}, dict): return False")
            subs = [(key, sub) for key, sub in schema.items() if sub != ANY]
            if subs:
                getter = f"g{depth}"
                body.append(f"{pad}{getter} = {var}.get")
                for key, sub in subs:
                    item = f"x{depth}"
                    body.append(f"{pad}{item} = {getter}({key!r})")
                    body.append(f"{pad}if {item} is not None:")
                    self._block(sub, item, depth + 1, body)
        elif isinstance(schema, (ListOf, MapOf)):
            listing = isinstance(schema, ListOf)
            item_schema = schema.item if isinstance(schema, ListOf) else schema.value
            body.append(f"{pad}if not isinstance({var}, {'list' if listing else 'dict'}): return False")
            if item_schema == ANY:
                return
            values = var if listing else f"{var}.values()"
            item = f"i{depth}"
            body.append(f"{pad}for {item} in {values}:")
            if listing and isinstance(item_schema, str):      # null items of scalar arrays pass
                body.append(f"{pad}    if {item} is not None and not {_SCALAR_EXPR[item_schema].format(v=item)}: "
                            "return False")
            else:                                             # other null items do not
                body.append(f"{pad}    if {item} is None: return False")
                self._block(item_schema, item, depth + 1, body)
        else:
            raise AssertionError(schema)


_COMPILED: dict[int, Any] = {}


def _validator(schema: Any):
    """The compiled ``_valid`` for one schema (compiled on first use)."""
    found = _COMPILED.get(id(schema))
    if found is None:
        compiler = _Compiler()
        name = compiler.function(schema)
        scope: dict = {}
        exec("\n".join(compiler.lines), scope)       # noqa: S102 - source generated above from our own schemas
        found = _COMPILED[id(schema)] = (scope[name], schema)
    return found[0]


def _valid(value: object, schema: Any) -> bool:
    """Whether ``_check(value, schema, ...)`` would pass, without building field paths."""
    return value is None or _validator(schema)(value)


# ---- the Kubernetes types (the fields read anywhere in webhook/) -----------------------
RESOURCE_LIST = MapOf(QUANTITY)
LABEL_SELECTOR = {"matchLabels": MapOf(STR),
                  "matchExpressions": ListOf({"key": STR, "operator": STR, "values": ListOf(STR)})}
OWNER_REFERENCE = {"apiVersion": STR, "kind": STR, "name": STR, "uid": STR, "controller": BOOL}
OBJECT_META = {"name": STR, "generateName": STR, "namespace": STR, "uid": STR, "labels": MapOf(STR),
               "annotations": MapOf(STR), "ownerReferences": ListOf(OWNER_REFERENCE), "deletionTimestamp": STR,
               "resourceVersion": STR}
NODE_SELECTOR_REQUIREMENT = {"key": STR, "operator": STR, "values": ListOf(STR)}
NODE_SELECTOR_TERM = {"matchExpressions": ListOf(NODE_SELECTOR_REQUIREMENT),
                      "matchFields": ListOf(NODE_SELECTOR_REQUIREMENT)}
POD_AFFINITY_TERM = {"labelSelector": LABEL_SELECTOR, "namespaceSelector": LABEL_SELECTOR,
                     "namespaces": ListOf(STR), "topologyKey": STR, "matchLabelKeys": ListOf(STR),
                     "mismatchLabelKeys": ListOf(STR)}
WEIGHTED_POD_AFFINITY_TERM = {"weight": INT32, "podAffinityTerm": POD_AFFINITY_TERM}
POD_AFFINITY = {"requiredDuringSchedulingIgnoredDuringExecution": ListOf(POD_AFFINITY_TERM),
                "preferredDuringSchedulingIgnoredDuringExecution": ListOf(WEIGHTED_POD_AFFINITY_TERM)}
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": ListOf(NODE_SELECTOR_TERM)},
        "preferredDuringSchedulingIgnoredDuringExecution": ListOf({"weight": INT32, "preference": NODE_SELECTOR_TERM}),
    },
    "podAffinity": POD_AFFINITY,
    "podAntiAffinity": POD_AFFINITY,
}
RESOURCES = {"requests": RESOURCE_LIST, "limits": RESOURCE_LIST, "claims": ListOf({"name": STR})}
CONTAINER = {"resources": RESOURCES, "restartPolicy": STR,
             "ports": ListOf({"containerPort": INT32, "hostPort": INT32, "protocol": STR, "hostIP": STR}),
             "volumeMounts": ListOf({"name": STR, "mountPath": STR}),
             "volumeDevices": ListOf({"name": STR, "devicePath": STR})}
PVC_SPEC = {"accessModes": ListOf(STR), "storageClassName": STR, "volumeMode": STR, "volumeName": STR,
            "resources": {"requests": RESOURCE_LIST, "limits": RESOURCE_LIST},
            "selector": LABEL_SELECTOR, "dataSource": MapOf(ANY), "dataSourceRef": MapOf(ANY)}
PVC = {"metadata": OBJECT_META, "spec": PVC_SPEC, "status": {"phase": STR, "accessModes": ListOf(STR),
                                                            "capacity": RESOURCE_LIST}}
VOLUME = {"name": STR, "persistentVolumeClaim": {"claimName": STR, "readOnly": BOOL},
          "ephemeral": {"volumeClaimTemplate": {"metadata": OBJECT_META, "spec": PVC_SPEC}}}
TOLERATION = {"key": STR, "operator": STR, "value": STR, "effect": STR, "tolerationSeconds": INT}
TOPOLOGY_SPREAD = {"maxSkew": INT32, "topologyKey": STR, "whenUnsatisfiable": STR, "labelSelector": LABEL_SELECTOR,
                   "minDomains": INT32, "nodeAffinityPolicy": STR, "nodeTaintsPolicy": STR,
                   "matchLabelKeys": ListOf(STR)}
POD_SPEC = {"containers": ListOf(CONTAINER), "initContainers": ListOf(CONTAINER),
            "ephemeralContainers": ListOf(CONTAINER), "overhead": RESOURCE_LIST, "resources": RESOURCES,
            "hostNetwork": BOOL, "nodeSelector": MapOf(STR), "nodeName": STR, "tolerations": ListOf(TOLERATION),
            "affinity": AFFINITY, "topologySpreadConstraints": ListOf(TOPOLOGY_SPREAD), "volumes": ListOf(VOLUME),
            "priorityClassName": STR, "priority": INT32, "schedulerName": STR, "runtimeClassName": STR,
            "schedulingGates": ListOf({"name": STR}), "preemptionPolicy": STR}
POD_TEMPLATE = {"metadata": OBJECT_META, "spec": POD_SPEC}
JOB_SPEC = {"parallelism": INT32, "completions": INT32, "suspend": BOOL, "completionMode": STR,
            "template": POD_TEMPLATE}
WORKLOAD_SPEC = {"replicas": INT32, "selector": LABEL_SELECTOR, "template": POD_TEMPLATE,
                 "strategy": {"type": STR, "rollingUpdate": {"maxSurge": INT_OR_STR, "maxUnavailable": INT_OR_STR}},
                 "updateStrategy": {"type": STR, "rollingUpdate": {"maxSurge": INT_OR_STR,
                                                                    "maxUnavailable": INT_OR_STR,
                                                                    "partition": INT32}},
                 "volumeClaimTemplates": ListOf({"metadata": OBJECT_META, "spec": PVC_SPEC}),
                 "podManagementPolicy": STR}
STATUS = {"replicas": INT32, "readyReplicas": INT32, "phase": STR}

SCHEMAS: dict[str, dict] = {
    "Pod": {"metadata": OBJECT_META, "spec": POD_SPEC,
            "status": {"phase": STR, "nominatedNodeName": STR,
                       "conditions": ListOf({"type": STR, "status": STR, "reason": STR})}},
    "Deployment": {"metadata": OBJECT_META, "spec": WORKLOAD_SPEC, "status": STATUS},
    "ReplicaSet": {"metadata": OBJECT_META, "spec": WORKLOAD_SPEC, "status": STATUS},
    "StatefulSet": {"metadata": OBJECT_META, "spec": WORKLOAD_SPEC, "status": STATUS},
    "DaemonSet": {"metadata": OBJECT_META, "spec": WORKLOAD_SPEC},
    "Job": {"metadata": OBJECT_META, "spec": JOB_SPEC},
    "CronJob": {"metadata": OBJECT_META, "spec": {"suspend": BOOL, "jobTemplate": {"metadata": OBJECT_META,
                                                                                  "spec": JOB_SPEC}}},
    "PersistentVolumeClaim": PVC,
}
# State objects the cluster state keeps as they are and reads later (checked when they are applied).
TOPOLOGY_SELECTOR = {"matchLabelExpressions": ListOf({"key": STR, "values": ListOf(STR)})}
SCHEMAS.update({
    "Node": {"metadata": OBJECT_META, "spec": {"unschedulable": BOOL, "providerID": STR,
                                               "taints": ListOf({"key": STR, "value": STR, "effect": STR})},
             "status": {"allocatable": RESOURCE_LIST, "capacity": RESOURCE_LIST,
                        "conditions": ListOf({"type": STR, "status": STR})}},
    "Namespace": {"metadata": OBJECT_META},
    "LimitRange": {"metadata": OBJECT_META, "spec": {"limits": ListOf({
        "type": STR, "default": RESOURCE_LIST, "defaultRequest": RESOURCE_LIST, "max": RESOURCE_LIST,
        "min": RESOURCE_LIST, "maxLimitRequestRatio": RESOURCE_LIST})}},
    "StorageClass": {"metadata": OBJECT_META, "provisioner": STR, "parameters": MapOf(STR),
                     "volumeBindingMode": STR, "reclaimPolicy": STR, "allowVolumeExpansion": BOOL,
                     "allowedTopologies": ListOf(TOPOLOGY_SELECTOR)},
    "PersistentVolume": {"metadata": OBJECT_META, "spec": {
        "accessModes": ListOf(STR), "capacity": RESOURCE_LIST, "storageClassName": STR, "volumeMode": STR,
        "csi": {"driver": STR, "volumeHandle": STR}, "awsElasticBlockStore": {"volumeID": STR},
        "claimRef": {"namespace": STR, "name": STR, "uid": STR},
        "nodeAffinity": {"required": {"nodeSelectorTerms": ListOf(NODE_SELECTOR_TERM)}}},
        "status": {"phase": STR}},
    "CSINode": {"metadata": OBJECT_META, "spec": {"drivers": ListOf({
        "name": STR, "nodeID": STR, "allocatable": {"count": INT32}})}},
    "VolumeAttachment": {"metadata": OBJECT_META, "spec": {"attacher": STR, "nodeName": STR,
                                                           "source": {"persistentVolumeName": STR}}},
})
# kept as objects by ClusterState, or few and read by every decision (a Pod becomes a record)
STORED_KINDS = frozenset(SCHEMAS) - {"Pod"}
_ANY_OBJECT = {"metadata": OBJECT_META}


MAX_DEPTH = 64      # Kubernetes objects the engine judges are never deeper than ~25 levels


def check_depth(obj: object, where: str = "object", limit: int = MAX_DEPTH) -> None:
    """Raise ``ObjectError`` if ``obj`` nests deeper than ``limit`` (iteratively: no recursion).

    Parts of an object the engine reads are frozen or compared as a whole, fields unknown
    to the schema included; a list nested 5,000 deep there would exhaust Python's stack.
    """
    level, depth = [obj], 0        # the arrays and objects nested ``depth`` levels deep (level by level)
    while level:
        if depth > limit:
            raise ObjectError(where, f"nested more than {limit} levels deep")
        deeper: list = []
        for value in level:
            if isinstance(value, dict):
                deeper += [v for v in value.values() if isinstance(v, (dict, list))]
            elif isinstance(value, list):
                deeper += [v for v in value if isinstance(v, (dict, list))]
        level, depth = deeper, depth + 1


def check_object(obj: object, prefix: str = "", depth: bool = False) -> None:
    """Raise ``ObjectError`` naming the first field of ``obj`` whose JSON type is wrong.

    ``prefix`` is prepended to the field path (``"oldObject."`` for the old object);
    ``depth`` also bounds the nesting (``check_depth``).
    """
    if not isinstance(obj, Mapping):
        raise ObjectError(prefix.rstrip(".") or "object", f"must be an object, got {_type_name(obj)}")
    if depth:
        check_depth(obj, prefix.rstrip(".") or "object")
    kind = obj.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise ObjectError(f"{prefix}kind", f"must be a string, got {_type_name(kind)}")
    schema = SCHEMAS.get(kind or "", _ANY_OBJECT)
    # Both walks recurse along the schema, never deeper than it (fields it does not name are
    # not read): a deep object cannot exhaust the stack here (``check_depth`` bounds the rest).
    if not _valid(obj, schema):
        _check(obj, schema, prefix.rstrip("."))     # names the first wrong field


def problem(obj: object, prefix: str = "") -> ObjectError | None:
    """``check_object`` as a value: the error, or ``None`` when the shapes are right."""
    try:
        check_object(obj, prefix)
    except ObjectError as exc:
        return exc
    return None
