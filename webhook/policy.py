"""The admission policy around the engine, shared by the webhook server and ``check``.

CI must predict what the cluster will answer, so both read the same rules from here:

* ``capacity-webhook/skip: "<reason>"`` on an object bypasses the check (the server logs
  the reason and warns; ``check`` reports the object as skipped);
* ``capacity-webhook/ignore: "CODE1,CODE2"`` on an object drops those reason codes from
  its verdict (``check --ignore CODE`` does the same for a whole run);
* the namespace label ``capacity-webhook/mode: enforce|warn|audit`` overrides the mode;
* namespaces the chart's ``namespaceSelector`` excludes never reach the webhook: the
  ``webhook.excludedNamespaces`` list (default ``kube-system``) plus the release namespace,
  and every namespace labelled ``capacity-webhook/ignore``. The API server applies that
  selector, so only ``check`` needs ``excluded_by``; the defaults here mirror
  ``charts/capacity-webhook/values.yaml`` (a test keeps them equal).

Pure functions over plain dicts: no flask, no kubernetes client.
"""

from __future__ import annotations

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


def excluded_by(namespace: str, labels: Mapping | None, excluded: Iterable[str]) -> str | None:
    """Why the chart's namespaceSelector keeps ``namespace`` away from the webhook, or None."""
    if namespace in set(excluded):
        return f"namespace {namespace} is excluded (webhook.excludedNamespaces)"
    if labels and NAMESPACE_IGNORE_LABEL in labels:
        return f"namespace {namespace} is labelled {NAMESPACE_IGNORE_LABEL}"
    return None


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
    custom_selector: bool = False


def chart_settings(values: object, source: str = "values") -> ChartSettings:
    """Read ``mode``, ``headroomNodes``, ``webhook.excludedNamespaces`` (and whether
    ``webhook.namespaceSelector`` replaces the generated selector) from chart values.

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
    return ChartSettings(mode, headroom, tuple(excluded) if excluded is not None else None,
                         bool(webhook.get("namespaceSelector")))
