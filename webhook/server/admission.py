"""The admission policy around the engine: ``AdmissionHandler`` decides one parsed review.

No flask and no HTTP here (``app.py`` is the transport): the handler takes a ``Review`` and
returns an ``Outcome``, so it can be driven directly, as the reservation tests do.

The policy:

* the check is bypassed by ``capacity-webhook/skip: "<reason>"`` on the object (logged with
  the user and the reason; the response warns that the check was skipped), for objects a
  workload controller creates (their workload was checked and holds a reservation), and,
  with a warning, while no cluster state has been loaded yet (never deny on no data);
* the mode is the server's, overridden by the namespace label ``capacity-webhook/mode``;
  the HorizontalPodAutoscaler is never denied, and stale data turns a deny into a warning;
* an allowed, non-dry-run workload reserves the room its pods were placed in, one
  reservation per workload (the latest decision replaces it, a scale-down shrinks it),
  for ``reservation_ttl`` seconds (or until the pods show up);
* nothing a client sends becomes a 500: bad bodies get a 4xx with one clear sentence, and
  an unexpected failure on a valid review is allowed with a warning and logged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from .. import policy
from ..engine import budget
from ..engine.evaluate import evaluate
from ..engine.model import WORKLOAD_KINDS, controller_of
from ..engine.verdict import ALLOW, DENY, MODES, WARN
from ..policy import SKIP_ANNOTATION
from ..state.ledger import Ledger, LedgerConflict, LedgerUnavailable, MemoryLedger
from .review import Review, ScaleError, sanitize_warning, scale_objects, scale_target_key

HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
LEDGER_TIMEOUT = 1.0                  # seconds of ledger I/O per review (the webhook's timeoutSeconds is 3)
MAX_LEDGER_ATTEMPTS = 8

DECISION_BUDGET = 1.5                 # seconds; the chart's webhook timeoutSeconds is 3

log = logging.getLogger("capacity_webhook.server")


def internal_error(out: "Outcome", uid: str, exc: BaseException) -> "Outcome":
    """A bug in the webhook: logged with its traceback, counted, and allowed with a warning."""
    log.error("internal error while deciding review %s", uid, exc_info=exc)
    out.allowed, out.message, out.audit = True, None, {}
    out.warnings = ["capacity-webhook internal error: the capacity check was skipped (see the server log)"]
    out.fields["error"] = f"{type(exc).__name__}: {exc}"
    out.fields["internalError"] = True
    return out


@dataclass
class Outcome:
    """What one review answers, and the fields of its log line."""

    allowed: bool = True
    warnings: list = field(default_factory=list)
    message: str | None = None
    audit: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return DENY if not self.allowed else (WARN if self.warnings else ALLOW)


class AdmissionHandler:
    """Decides one parsed review against the holder's state (no flask, no I/O)."""

    def __init__(self, holder, mode: str = "enforce", stale_after: float = 60.0, reservation_ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, ledger: Ledger | None = None,
                 ledger_timeout: float = LEDGER_TIMEOUT, decision_budget: float | None = DECISION_BUDGET):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.decision_budget = decision_budget
        self.holder = holder
        self.mode = mode
        self.stale_after = stale_after
        self.reservation_ttl = reservation_ttl
        self.clock = clock
        self.ledger = ledger if ledger is not None else MemoryLedger(holder)
        self.ledger_timeout = ledger_timeout

    # ---- the decision ------------------------------------------------------------------
    def decide(self, review: Review) -> Outcome:
        out = Outcome(fields={"uid": review.uid, "operation": review.operation, "kind": review.kind,
                              "resource": review.resource, "subResource": review.sub_resource,
                              "namespace": review.namespace, "name": review.name, "user": review.user,
                              "dryRun": review.dry_run})
        if review.operation not in ("CREATE", "UPDATE"):
            return self._note(out, f"{review.operation} is not checked")
        if review.sub_resource and not review.is_scale:
            return self._note(out, f"subresource {review.sub_resource} is not checked")
        if review.is_scale and scale_target_key(review) is None:
            return self._note(out, f"scale of {review.resource or 'an unknown resource'} is not checked")
        if not review.is_scale:
            assert review.obj is not None    # parse_review refuses a CREATE or UPDATE without an object
            skipped = self._skip(out, review, review.obj)
            if skipped:
                return skipped
            owner = controller_of(review.obj) if isinstance(review.obj.get("metadata"), dict) else None
            if owner and owner[0] in WORKLOAD_KINDS:
                # Every pod a controller makes comes through here: answer without the state lock.
                # Its workload was checked when it was applied and holds the reservation for these
                # pods; checking again would count the same pods twice.
                return self._note(out, f"created by {owner[0]} {owner[1]}")
        if not self.holder.ready:
            out.warnings.append("capacity-webhook has no cluster state yet (still loading): the capacity check "
                                "was skipped")
            out.fields["note"] = "not ready"
            return out
        try:
            return self._decide_with_state(out, review)
        except budget.BudgetExceeded as exc:   # never block the API for a decision that takes too long
            log.warning("review %s: %s; allowed with a warning", review.uid, exc)
            out.allowed, out.message = True, None
            out.warnings = [f"capacity-webhook could not decide within {exc.seconds:g} s: the capacity check was "
                            "skipped"]
            out.fields["error"] = "decision budget exceeded"
            out.fields["budgetExceeded"] = True
            return out
        except Exception as exc:  # a bug must not block the cluster's API: allow, warn, log
            return internal_error(out, review.uid, exc)

    def _decide_with_state(self, out: Outcome, review: Review) -> Outcome:
        """Decide against the local state and the ledger's promises; commit the promise.

        The decision is made against one version of the ledger and committed against the
        same version. A conflict means somebody (another thread, worker or replica)
        committed in between: re-read and decide again. A deny that promised room helped
        cause is re-checked once on a freshly read ledger (the local copy may hold a
        promise that was since released). Ledger I/O gets ``ledger_timeout`` seconds per
        review; past that, the local decision stands and an allow says its reservation
        was not recorded: a slow API server never blocks an apply.
        """
        deadline = time.monotonic() + self.ledger_timeout
        fresh = False
        for _attempt in range(MAX_LEDGER_ATTEMPTS):
            result = Outcome(out.allowed, list(out.warnings), out.message, dict(out.audit), dict(out.fields))
            with self.holder.locked() as state:
                version = self.ledger.version
                now = self.clock()
                state.expire_reservations(now)
                verdict = self._judge(result, review, state)
                if verdict is None:
                    return result
                change = self._reservation_change(state, review, verdict, now) \
                    if result.allowed and not review.dry_run else None
                promised = bool(state.reservations)
            if not result.allowed and self.ledger.shared and not fresh and promised:
                try:
                    self.ledger.refresh(deadline)
                except LedgerUnavailable as exc:
                    result.fields["ledger"] = f"not re-read: {exc}"
                    return result
                fresh = True
                continue
            if change is None:
                if result.allowed and not review.dry_run:
                    result.fields.setdefault("reserved", 0)
                return result
            workload, held = change
            try:
                self.ledger.commit(version, workload, held, deadline)
            except LedgerConflict as exc:
                if exc.reread:
                    try:
                        self.ledger.refresh(deadline)
                    except LedgerUnavailable as failure:
                        return self._unrecorded(result, failure)
                    fresh = True
                result.fields["ledgerRetries"] = _attempt + 1
                continue
            except LedgerUnavailable as exc:
                return self._unrecorded(result, exc)
            result.fields["reserved"] = held.promised if held is not None else 0
            return result
        return self._unrecorded(result, LedgerUnavailable(f"still conflicting after {MAX_LEDGER_ATTEMPTS} attempts"))

    @staticmethod
    def _unrecorded(out: Outcome, exc: Exception) -> Outcome:
        """Allowed on the local view, but nobody else will see the promise: say so."""
        out.warnings.append("capacity-webhook could not record this workload's capacity reservation (the ledger "
                            "was not reachable in time): another workload may be admitted into the same room")
        out.fields["reserved"] = 0
        out.fields["ledger"] = f"unrecorded: {exc}"
        log.warning("reservation not recorded for %s %s/%s: %s", out.fields.get("kind"), out.fields.get("namespace"),
                    out.fields.get("name"), exc)
        return out

    def _judge(self, out: Outcome, review: Review, state):
        """One decision against ``state`` (caller holds the lock); ``None``: ``out`` is final as is."""
        obj, old = review.obj, review.old
        if review.is_scale:
            key = scale_target_key(review)
            assert key is not None           # decide() answered scales of unknown resources already
            stored = state.workloads.get(key)
            if stored is None:
                out.warnings.append(f"{key[0]} {key[1]}/{key[2]} is not in capacity-webhook's cluster state: "
                                    "the scale was not checked")
                out.fields["note"] = "scale target unknown"
                return None
            if self._skip(out, review, stored):
                return None
            try:
                obj, old = scale_objects(review, stored)
            except ScaleError as exc:
                out.warnings.append(f"{key[0]} {key[1]}/{key[2]}: cannot read {exc.field}: {exc.problem}; "
                                    "the capacity check was skipped")
                out.fields["reasons"] = ["INVALID_OBJECT"]
                return None
        assert obj is not None               # a CREATE or UPDATE object, or the scaled workload
        chosen = policy.namespace_mode(self.mode, review.namespace, state.namespaces.get(review.namespace))
        mode = engine_mode = chosen.mode
        if chosen.from_namespace:
            out.fields["modeFrom"] = "namespace"
        if chosen.warning:
            out.warnings.append(chosen.warning)
        stale_for = self.holder.stale_for()
        stale = stale_for > self.stale_after
        downgraded = None
        if engine_mode == "enforce" and review.user == HPA_USER:
            engine_mode, downgraded = "warn", "hpa"
        elif engine_mode == "enforce" and stale:
            engine_mode, downgraded = "warn", "stale"
        with budget.deadline(self.decision_budget):
            verdict = evaluate(state, obj, old, engine_mode)
        verdict = policy.without_codes(verdict, policy.ignored_codes(obj), engine_mode)

        would_deny = any(r.severity == DENY for r in verdict.reasons)
        out.fields.update(mode=mode, engineVerdict=verdict.verdict, requested=verdict.requested,
                          schedulable=verdict.schedulable, pending=verdict.pending, reasons=verdict.codes)
        if downgraded and would_deny:
            out.fields["downgraded"] = downgraded
        if stale:
            out.fields["staleSeconds"] = round(stale_for, 1)
        if verdict.verdict == DENY:
            out.allowed = False
            out.message = verdict.message
        elif verdict.verdict == WARN:
            if stale and would_deny:
                out.warnings.insert(0, f"capacity data is stale (no watch update for {stale_for:.0f}s): "
                                       "this would be denied, it is allowed with warnings")
            out.warnings.extend(r.summary for r in verdict.reasons)
        elif mode == "audit" and verdict.reasons:
            out.audit = {"verdict": "would-deny" if would_deny else "would-warn", "pending": str(verdict.pending),
                         "reasons": ",".join(verdict.codes)}
        return verdict

    def _reservation_change(self, state, review: Review, verdict, now: float) -> tuple | None:
        """``(workload, promise or None)`` to commit for an admitted decision; ``None``: nothing changes.

        One reservation per workload, the latest decision wins: a decision that places
        pods replaces the earlier promise; one with nothing new to place (a scale-down, a
        no-op apply) shrinks it to the pods still to come; one that places nothing
        releases it.
        """
        if self.reservation_ttl <= 0 or verdict.kind not in WORKLOAD_KINDS + ("Pod",):
            return None
        workload = (verdict.kind, verdict.namespace, verdict.name)
        per_node = verdict.reservation()
        if per_node and verdict.pod_requests is not None:
            return workload, state.promise(workload, per_node, verdict.pod_requests, verdict.uses_ip,
                                           now + self.reservation_ttl, uid=review.uid, branch_eni=verdict.branch_eni)
        earlier = state.reservations.get(workload)
        if earlier is None:
            return None
        if verdict.hold_at_most is not None:
            kept = state.trimmed(earlier, verdict.hold_at_most)
            return None if kept is earlier else (workload, kept)
        return workload, None

    # ---- bypasses ----------------------------------------------------------------------
    @staticmethod
    def _note(out: Outcome, note: str) -> Outcome:
        out.fields["note"] = note
        return out

    @staticmethod
    def _skip(out: Outcome, review: Review, obj: dict | None) -> Outcome | None:
        given = policy.skip_reason(obj)
        if given is None:
            return None
        reason = sanitize_warning(given, limit=200) or "no reason given"
        who = review.user or "unknown user"
        out.warnings.append(f"capacity check skipped by annotation {SKIP_ANNOTATION} ({reason}), requested by {who}")
        out.fields.update(skipped=True, skipReason=reason, note="skip annotation")
        return out
