"""The ``check`` job: evaluate manifests in order against one cluster state.

Each object that is admitted spends the room it takes (as a permanent reservation), so
the next object in the same run sees what is left, as it would after ``kubectl apply``
of the whole folder. Objects that already exist in the state are updates.

The admission policy is the webhook's (``webhook.policy``): a ``capacity-webhook/skip``
object, an object in a namespace the chart's namespaceSelector excludes and an object its
objectSelector does not match are admitted unchecked (and still take their room, as they
would in the cluster); the namespace label
``capacity-webhook/mode`` overrides ``--mode``; ``capacity-webhook/ignore`` codes on an
object, and ``--ignore`` codes for the run, are dropped from its verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from . import policy
from .engine import shape
from .engine.evaluate import HANDLED_KINDS, evaluate, identity
from .engine.model import ClusterState
from .engine.verdict import ALLOW, DENY, Reason, Verdict
from .manifests import InputError, Manifest

UPDATE_STORE_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")
STATE_KINDS = ("Namespace", "LimitRange", "StorageClass", "PersistentVolume", "ResourceQuota", "PriorityClass")


@dataclass(frozen=True)
class CheckOptions:
    """The settings the chart gives the webhook, as ``check`` flags."""

    mode: str = "enforce"
    ignore: frozenset[str] = frozenset()
    excluded_namespaces: tuple[str, ...] = policy.DEFAULT_EXCLUDED_NAMESPACES
    # webhook.namespaceSelector: when set it replaces the selector generated from
    # excluded_namespaces, as in the chart; webhook.objectSelector.
    namespace_selector: dict | None = None
    object_selector: dict | None = None

    def namespace_selector_in_effect(self) -> dict:
        """The namespaceSelector the webhook is registered with (what the chart renders)."""
        return self.namespace_selector or policy.generated_namespace_selector(self.excluded_namespaces)

    def excluded_by(self, namespace: str, labels, obj, old) -> str | None:
        """Why the API server would not send this object to the webhook, or None."""
        why = policy.namespace_excluded_by(namespace, labels, self.namespace_selector_in_effect(),
                                           custom=bool(self.namespace_selector))
        return why or policy.object_excluded_by(obj, old, self.object_selector)


def options_for(chart: policy.ChartSettings, *, mode: str = "enforce",
                ignore: frozenset[str] = frozenset(), excluded_namespaces: Iterable[str] = (),
                namespace_selector: dict | None = None, object_selector: dict | None = None,
                release_namespace: str | None = None) -> CheckOptions:
    """``check``'s settings from the chart values and the command-line flags (which win), so
    the webhook's selectors are the ones the chart renders: a custom ``webhook.namespaceSelector``
    replaces the one generated from ``webhook.excludedNamespaces`` plus the release namespace.
    ``mode``: the flag's value, already preferred over the chart's by the caller."""
    excluded: tuple[str, ...] | None = tuple(excluded_namespaces) or chart.excluded_namespaces
    excluded = policy.DEFAULT_EXCLUDED_NAMESPACES if excluded is None else excluded
    if release_namespace:
        excluded = (*excluded, release_namespace)
    custom = namespace_selector or (None if tuple(excluded_namespaces) else chart.namespace_selector)
    return CheckOptions(mode=mode, ignore=ignore, excluded_namespaces=excluded, namespace_selector=custom,
                        object_selector=object_selector or chart.object_selector)


@dataclass
class CheckResult:
    """One checked object: where it is, the verdict, and what the policy did to it."""

    source: str
    line: int
    obj: dict
    verdict: Verdict
    skipped: str | None = None                          # why the webhook would not check it
    ignored: list[Reason] = field(default_factory=list)  # reasons dropped by --ignore or the annotation
    ignored_in_source: frozenset[str] = frozenset()      # codes the object's own annotation dropped

    @property
    def name(self) -> str:
        return f"{self.verdict.kind} {self.verdict.namespace}/{self.verdict.name}"


def existing(state: ClusterState, obj) -> Mapping | None:
    kind, namespace, name = identity(obj)
    if kind == "PersistentVolumeClaim":
        return state.claims.get((namespace, name))
    return state.workloads.get((kind, namespace, name))


def check_manifests(state: ClusterState, manifests: Iterable[Manifest],
                    options: CheckOptions = CheckOptions()) -> Iterable[CheckResult]:
    """Yield a CheckResult for every pod controller, Pod and PVC, spending capacity as it goes."""
    for index, item in enumerate(manifests):
        obj = item.obj
        kind, namespace, _ = identity(obj)
        if kind not in HANDLED_KINDS:
            if kind in STATE_KINDS:
                bad = shape.problem(obj)
                if bad is not None:     # nothing to judge it by: the run's input is wrong
                    raise InputError(f"{item.source}:{item.line}: {kind} {identity(obj)[2]}: cannot read "
                                     f"{bad.field}: {bad.problem}")
                state.apply(obj)      # later objects in the run see them, as after kubectl apply
            continue
        old = existing(state, obj)
        if shape.problem(obj) is not None:
            # The policy reads annotations and labels too: an object of the wrong shape is
            # judged by the engine alone, which names the field (INVALID_OBJECT).
            yield CheckResult(item.source, item.line, obj, evaluate(state, obj, old, options.mode))
            continue
        labels = state.namespaces.get(namespace)
        skipped = options.excluded_by(namespace, labels, obj, old)
        reason = policy.skip_reason(obj)
        if skipped is None and reason is not None:
            skipped = f"annotation {policy.SKIP_ANNOTATION}: {reason or 'no reason given'}"
        if skipped:
            # The webhook never sees it (or lets it through), but its pods still take room.
            verdict = evaluate(state, obj, old, "audit")
            verdict.reasons = []
            _spend(state, obj, verdict, index)
            yield CheckResult(item.source, item.line, obj, verdict, skipped=skipped)
            continue
        mode = policy.namespace_mode(options.mode, namespace, labels).mode
        verdict = evaluate(state, obj, old, mode)
        in_source = policy.ignored_codes(obj)
        drop = options.ignore | in_source
        ignored = [r for r in verdict.reasons if r.code in drop]
        verdict = policy.without_codes(verdict, drop, mode)
        if verdict.verdict != DENY:
            _spend(state, obj, verdict, index)
        yield CheckResult(item.source, item.line, obj, verdict, ignored=ignored,
                          ignored_in_source=frozenset(in_source & {r.code for r in ignored}))


def _spend(state: ClusterState, obj, verdict, index: int) -> None:
    if verdict.kind == "PersistentVolumeClaim":
        state.apply(obj)
    elif verdict.reservation():
        state.reserve((verdict.kind, verdict.namespace, verdict.name), verdict.reservation(),
                      verdict.pod_requests, verdict.uses_ip, uid=f"check-{index}",
                      branch_eni=verdict.branch_eni)


def would_fail(results: Iterable[CheckResult], fail_on: str) -> bool:
    """``--fail-on``: deny fails on a deny; warn fails on a deny or a warn; never never fails."""
    verdicts = {r.verdict.verdict for r in results}
    return fail_on != "never" and (DENY in verdicts or (fail_on == "warn" and "warn" in verdicts))


__all__ = ["ALLOW", "CheckOptions", "CheckResult", "check_manifests", "existing", "options_for", "would_fail"]
