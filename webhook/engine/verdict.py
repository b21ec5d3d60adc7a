"""Verdicts, reasons and the modes that turn findings into allow / warn / deny.

A finding has a severity: ``deny`` findings (pods would stay Pending, a claim can never
bind) block in enforce mode, only warn in warn mode, and are just recorded in audit
mode; ``warn`` findings never block. The first line of every reason message is a
summary of at most 120 characters, because the webhook sends it as an admission warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # annotations only: placement imports the model, which must not import verdicts back
    from .placement import Placement
    from .requests import Resources

MODES = ("enforce", "warn", "audit")
ALLOW, WARN, DENY = "allow", "warn", "deny"
SUMMARY_LIMIT = 120


def clip(line: str, limit: int = SUMMARY_LIMIT) -> str:
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 pod``, ``2 pods``, ``0 pods``: a count and its noun in agreement (``1 EBS attachment left``).

    ``plural`` for nouns whose plural is not noun + "s".
    """
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


@dataclass(frozen=True)
class Reason:
    code: str
    message: str                 # first line: <= 120 characters; more lines: detail and fix
    severity: str = DENY         # DENY or WARN

    @property
    def summary(self) -> str:
        return self.message.split("\n", 1)[0]

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "severity": self.severity}


@dataclass
class Verdict:
    kind: str
    namespace: str
    name: str
    verdict: str = ALLOW
    requested: int = 0
    schedulable: int = 0
    pending: int = 0
    reasons: list = field(default_factory=list)
    placement: Placement | None = None     # for reservations and reports
    pod_requests: Resources | None = None  # of one new pod, for reservations
    uses_ip: bool = True
    branch_eni: bool = False           # each new pod takes a branch ENI (security groups for pods)
    reserve_limit: int | None = None   # a rollout holds only the pods beyond those it replaces
    hold_at_most: int | None = None    # nothing new to place: an earlier promise shrinks to this many pods
    mode: str = "enforce"

    def reservation(self) -> dict[str, int]:
        """Pods placed per node, to hold with ``ClusterState.reserve`` once admitted."""
        if self.placement is None:
            return {}
        held: dict[str, int] = {}
        left = self.reserve_limit
        for node, placed in sorted(self.placement.placed_per_node().items()):
            count = placed if left is None else min(placed, left)
            if count > 0:
                held[node] = count
                left = None if left is None else left - count
        return held

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    @property
    def message(self) -> str:
        return "\n".join(r.message for r in self.reasons)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "verdict": self.verdict,
                "requested": self.requested, "schedulable": self.schedulable, "pending": self.pending,
                "reasons": [r.as_dict() for r in self.reasons]}


def decide(verdict: Verdict, mode: str) -> Verdict:
    """Set ``verdict.verdict`` from its reasons' severities and the mode."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    verdict.mode = mode
    severities = {r.severity for r in verdict.reasons}
    if mode == "audit":
        verdict.verdict = ALLOW
    elif DENY in severities:
        verdict.verdict = DENY if mode == "enforce" else WARN
    elif WARN in severities:
        verdict.verdict = WARN
    else:
        verdict.verdict = ALLOW
    return verdict
