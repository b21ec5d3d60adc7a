"""The admission policy around the engine, shared by the webhook server and ``check``.

CI must predict what the cluster will answer, so both read the same rules from here:

* ``capacity-webhook/skip: "<reason>"`` on an object bypasses the check (the server logs
  the reason and warns; ``check`` reports the object as skipped);
* ``capacity-webhook/ignore: "CODE1,CODE2"`` on an object drops those reason codes from
  its verdict (``check --ignore CODE`` does the same for a whole run);
* the namespace label ``capacity-webhook/mode: enforce|warn|audit`` overrides the mode;
* objects the chart's selectors leave out never reach the webhook. The namespaceSelector is
  generated from ``webhook.excludedNamespaces`` (default ``kube-system``) plus the release
  namespace and the ``capacity-webhook/ignore`` namespace label, unless
  ``webhook.namespaceSelector`` replaces it; ``webhook.objectSelector`` filters on the
  object's own labels. The API server applies them, so only ``check`` needs
  ``namespace_excluded_by``/``object_excluded_by``, which evaluate a metav1.LabelSelector as
  the API server does (k8s.io/apimachinery labels.Requirement.Matches; a namespace always
  carries ``kubernetes.io/metadata.name``). The defaults here mirror
  ``charts/capacity-webhook/values.yaml`` and its ``_helpers.tpl`` (tests render the chart
  with helm and compare).

Pure functions over plain dicts: no flask, no kubernetes client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from .engine.verdict import MODES, Verdict, decide

SKIP_ANNOTATION = "capacity-webhook/skip"
IGNORE_ANNOTATION = "capacity-webhook/ignore"
MODE_LABEL = "capacity-webhook/mode"
NAMESPACE_IGNORE_LABEL = "capacity-webhook/ignore"
DEFAULT_EXCLUDED_NAMESPACES = ("kube-system",)


def _annotations(obj: object) -> Mapping:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def skip_reason(obj: object) -> str | None:
    """The ``capacity-webhook/skip`` reason when the object carries it ('' when empty), else None."""
    annotations = _annotations(obj)
    if SKIP_ANNOTATION not in annotations:
        return None
    value = annotations.get(SKIP_ANNOTATION)
    return value if isinstance(value, str) else ""


def parse_codes(text: str) -> set[str]:
    """``"POD_IP_EXHAUSTED, rollout_stall"`` -> ``{"POD_IP_EXHAUSTED", "ROLLOUT_STALL"}``."""
    return {part.strip().upper() for part in text.replace(";", ",").replace(" ", ",").split(",") if part.strip()}


def ignored_codes(obj: object) -> set[str]:
    """Reason codes the object's ``capacity-webhook/ignore`` annotation asks to drop."""
    value = _annotations(obj).get(IGNORE_ANNOTATION)
    return parse_codes(value) if isinstance(value, str) else set()


@dataclass(frozen=True)
class NamespaceMode:
    mode: str
    from_namespace: bool = False
    warning: str | None = None      # the label is set to something that is not a mode


def namespace_mode(default: str, namespace: str, labels: Mapping | None) -> NamespaceMode:
    """The mode for objects in ``namespace``: its ``capacity-webhook/mode`` label, else ``default``."""
    label = (labels or {}).get(MODE_LABEL)
    if label is None:
        return NamespaceMode(default)
    if label in MODES:
        return NamespaceMode(label, from_namespace=True)
    return NamespaceMode(default, warning=f"namespace {namespace} label {MODE_LABEL}={label!r} is not one of "
                                          f"{', '.join(MODES)}: using {default}")


NAME_LABEL = "kubernetes.io/metadata.name"    # the API server sets it on every namespace
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def generated_namespace_selector(excluded: Iterable[str]) -> dict:
    """The namespaceSelector the chart renders when ``webhook.namespaceSelector`` is empty
    (``capacity-webhook.namespaceSelector`` in _helpers.tpl): the excluded names, in order,
    without repeats, and no ``capacity-webhook/ignore`` label."""
    names = list(dict.fromkeys(excluded))
    expressions = [{"key": NAME_LABEL, "operator": "NotIn", "values": names}] if names else []
    return {"matchExpressions": [*expressions, {"key": NAMESPACE_IGNORE_LABEL, "operator": "DoesNotExist"}]}


def selector_problem(selector: object) -> str | None:
    """What the API server would reject in a metav1.LabelSelector, in one phrase, or None."""
    if selector is None:
        return None
    if not isinstance(selector, dict):
        return "must be a mapping with matchLabels and/or matchExpressions"
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        return f"has unknown field {sorted(unknown)[0]!r} (only matchLabels and matchExpressions)"
    labels = selector.get("matchLabels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return "matchLabels must map label names to string values"
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return "matchExpressions must be a list"
    for index, expr in enumerate(expressions):
        where = f"matchExpressions[{index}]"
        if not isinstance(expr, dict) or not isinstance(expr.get("key"), str) or not expr["key"]:
            return f"{where} needs a key"
        operator, values = expr.get("operator"), expr.get("values")
        if operator not in SELECTOR_OPERATORS:
            return f"{where}.operator is {operator!r}, not one of {', '.join(SELECTOR_OPERATORS)}"
        if values is not None and (not isinstance(values, list) or not all(isinstance(v, str) for v in values)):
            return f"{where}.values must be a list of strings"
        if operator in ("In", "NotIn") and not values:
            return f"{where}: {operator} needs at least one value"
        if operator in ("Exists", "DoesNotExist") and values:
            return f"{where}: {operator} takes no values"
    return None


def _requirements(selector: Mapping | None) -> list[tuple[str, str, tuple[str, ...]]]:
    """(key, operator, values) for every requirement; matchLabels are In with one value."""
    if not selector:
        return []
    labels = [(k, "In", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    return labels + [(e["key"], e["operator"], tuple(e.get("values") or ()))
                     for e in selector.get("matchExpressions") or []]


def _requirement_matches(key: str, operator: str, values: tuple[str, ...], labels: Mapping) -> bool:
    # labels.Requirement.Matches: In needs the label with one of the values; NotIn holds when the
    # label is absent too.
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    return key not in labels


def unmatched(selector: Mapping | None, labels: Mapping | None) -> str | None:
    """The first requirement of a valid selector that ``labels`` fail, as text, or None when
    they match. An absent or empty selector matches everything (the API server defaults a
    webhook's selectors to {})."""
    labels = labels or {}
    for key, operator, values in _requirements(selector):
        if not _requirement_matches(key, operator, values, labels):
            shown = f" ({', '.join(values)})" if values else ""
            return f"{key} {operator}{shown}"
    return None


def selector_matches(selector: Mapping | None, labels: Mapping | None) -> bool:
    return unmatched(selector, labels) is None


def namespace_labels(namespace: str, labels: Mapping | None) -> dict:
    """A namespace's labels as the API server matches them: with ``kubernetes.io/metadata.name``."""
    return {**(labels or {}), NAME_LABEL: namespace}


def namespace_excluded_by(namespace: str, labels: Mapping | None, selector: Mapping | None,
                          custom: bool = True) -> str | None:
    """Why the webhook's namespaceSelector keeps ``namespace`` away from the webhook, or None.
    ``custom``: the selector is the chart's ``webhook.namespaceSelector``, not the generated one."""
    failed = unmatched(selector, namespace_labels(namespace, labels))
    if failed is None:
        return None
    if not custom and failed.startswith(f"{NAME_LABEL} "):
        return f"namespace {namespace} is excluded (webhook.excludedNamespaces)"
    if not custom and failed.startswith(f"{NAMESPACE_IGNORE_LABEL} "):
        return f"namespace {namespace} is labelled {NAMESPACE_IGNORE_LABEL}"
    return f"namespace {namespace} does not match webhook.namespaceSelector ({failed})"


def excluded_by(namespace: str, labels: Mapping | None, excluded: Iterable[str]) -> str | None:
    """Why the chart's generated namespaceSelector keeps ``namespace`` away from the webhook, or None."""
    return namespace_excluded_by(namespace, labels, generated_namespace_selector(excluded), custom=False)


def object_excluded_by(obj: object, old: object, selector: Mapping | None) -> str | None:
    """Why the webhook's objectSelector keeps this create/update away from the webhook, or None.
    The API server calls the webhook when the new object's labels match, or the old object's."""
    if not selector:
        return None

    def labels(o: object) -> Mapping:
        meta = o.get("metadata") if isinstance(o, dict) else None
        found = meta.get("labels") if isinstance(meta, dict) else None
        return found if isinstance(found, dict) else {}

    failed = unmatched(selector, labels(obj))
    if failed is None or (old is not None and selector_matches(selector, labels(old))):
        return None
    return f"its labels do not match webhook.objectSelector ({failed})"


def without_codes(verdict: Verdict, codes: set[str] | frozenset[str], mode: str) -> Verdict:
    """The verdict with the reasons whose code is in ``codes`` removed, decided again in ``mode``."""
    if not codes or not any(r.code in codes for r in verdict.reasons):
        return verdict
    kept = replace(verdict, reasons=[r for r in verdict.reasons if r.code not in codes])
    return decide(kept, mode)


@dataclass(frozen=True)
class ChartSettings:
    """What a Helm values file of the chart sets for the webhook, as ``check`` needs it."""

    mode: str | None = None
    headroom_nodes: int | None = None
    excluded_namespaces: tuple[str, ...] | None = None
    namespace_selector: dict | None = None      # webhook.namespaceSelector: replaces the generated one
    object_selector: dict | None = None         # webhook.objectSelector

    @property
    def custom_selector(self) -> bool:
        return bool(self.namespace_selector)


def chart_settings(values: object, source: str = "values") -> ChartSettings:
    """Read ``mode``, ``headroomNodes``, ``webhook.excludedNamespaces``,
    ``webhook.namespaceSelector`` and ``webhook.objectSelector`` from chart values.

    Raises ValueError with one sentence when a value has the wrong shape.
    """
    if values is None:
        return ChartSettings()
    if not isinstance(values, dict):
        raise ValueError(f"{source}: chart values must be a mapping")
    mode = values.get("mode")
    if mode is not None and mode not in MODES:
        raise ValueError(f"{source}: mode is {mode!r}, not one of {', '.join(MODES)}")
    headroom = values.get("headroomNodes")
    if headroom is not None and (isinstance(headroom, bool) or not isinstance(headroom, int) or headroom < 0):
        raise ValueError(f"{source}: headroomNodes must be a whole number >= 0")
    webhook = values.get("webhook") or {}
    if not isinstance(webhook, dict):
        raise ValueError(f"{source}: webhook must be a mapping")
    excluded = webhook.get("excludedNamespaces")
    if excluded is not None and (not isinstance(excluded, list) or not all(isinstance(n, str) for n in excluded)):
        raise ValueError(f"{source}: webhook.excludedNamespaces must be a list of names")
    selectors = {}
    for key in ("namespaceSelector", "objectSelector"):
        selector = webhook.get(key)
        problem = selector_problem(selector)
        if problem:
            raise ValueError(f"{source}: webhook.{key} {problem}")
        selectors[key] = selector or None
    return ChartSettings(mode, headroom, tuple(excluded) if excluded is not None else None,
                         selectors["namespaceSelector"], selectors["objectSelector"])


_LABEL_NAME = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                         r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def parse_selector(text: str) -> dict:
    """A label selector in kubectl's syntax (``kubectl get -l``) as a metav1.LabelSelector:
    ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``, ``key notin (a,b)``,
    ``key`` (exists) and ``!key`` (does not exist), separated by commas.

    Raises ValueError naming the term it cannot read.
    """
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    expressions: list[dict] = []
    for raw in terms:
        term = raw.strip()
        if not term:
            raise ValueError(f"selector {text!r}: empty term")
        set_match = re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", term)
        if set_match:
            key, word, inner = set_match.groups()
            values = [v.strip() for v in inner.split(",")] if inner.strip() else []
            expression = {"key": key, "operator": "In" if word == "in" else "NotIn", "values": values}
        elif term.startswith("!"):
            key, values = term[1:].strip(), []
            expression = {"key": key, "operator": "DoesNotExist"}
        elif "=" in term:
            equality = re.fullmatch(r"([^=!]*?)\s*(==|!=|=)\s*([^=!]*)", term)
            if equality is None:
                raise ValueError(f"selector {text!r}: cannot read {term!r}")
            key, operator, value = equality.groups()
            values = [value.strip()]
            expression = {"key": key, "operator": "NotIn" if operator == "!=" else "In", "values": values}
        else:
            key, values = term, []
            expression = {"key": key, "operator": "Exists"}
        if not _LABEL_NAME.fullmatch(key) or len(key.rsplit("/", 1)[-1]) > 63:
            raise ValueError(f"selector {text!r}: {key!r} is not a label name")
        bad = [v for v in values if not _LABEL_VALUE.fullmatch(v) or len(v) > 63]
        if bad or (expression["operator"] in ("In", "NotIn") and not values):
            raise ValueError(f"selector {text!r}: {bad[0] if bad else term!r} is not a label value")
        expressions.append(expression)
    return {"matchExpressions": expressions}
