"""Verdicts: modes, summaries, reservations. The README's mode table is the oracle:
enforce denies on a deny finding, warn turns it into a warning, audit allows and records;
a warn finding never blocks. A summary line is at most 120 characters (admission warnings)."""

import pytest

from webhook.engine.verdict import DENY, WARN, Reason, Verdict, clip, decide


def verdict_with(*severities):
    return Verdict("Deployment", "default", "web", reasons=[Reason(f"C{i}", f"m{i}", s) for i, s in
                                                              enumerate(severities)])


@pytest.mark.parametrize("severities,mode,expected", [
    ((), "enforce", "allow"), ((WARN,), "enforce", "warn"), ((DENY,), "enforce", "deny"),
    ((WARN, DENY), "enforce", "deny"), ((DENY,), "warn", "warn"), ((WARN,), "warn", "warn"), ((), "warn", "allow"),
    ((DENY,), "audit", "allow"), ((WARN,), "audit", "allow"),
])
def test_modes_turn_findings_into_a_verdict(severities, mode, expected):
    result = decide(verdict_with(*severities), mode)
    assert (result.verdict, result.mode) == (expected, mode)


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of enforce, warn, audit, got 'block'"):
        decide(verdict_with(), "block")


def test_clip_keeps_120_characters_and_marks_the_cut():
    assert clip("x" * 120) == "x" * 120
    assert clip("x" * 121) == "x" * 117 + "..." and len(clip("word " * 40)) <= 120
    assert clip("abcdef", 5) == "ab..."


def test_reasons_and_verdicts_as_data():
    reason = Reason("POD_IP_EXHAUSTED", "summary line\ndetail\nfix")
    assert reason.summary == "summary line" and reason.severity == DENY
    assert reason.as_dict() == {"code": "POD_IP_EXHAUSTED", "message": "summary line\ndetail\nfix", "severity": "deny"}
    v = Verdict("Deployment", "shop", "web", requested=5, schedulable=3, pending=2, reasons=[reason])
    assert v.codes == ["POD_IP_EXHAUSTED"] and v.message == "summary line\ndetail\nfix"
    assert v.as_dict() == {"kind": "Deployment", "namespace": "shop", "name": "web", "verdict": "allow",
                           "requested": 5, "schedulable": 3, "pending": 2, "reasons": [reason.as_dict()]}


class _Placed:
    def __init__(self, per_node):
        self.per_node = per_node

    def placed_per_node(self):
        return dict(self.per_node)


def test_a_reservation_holds_the_placed_pods_up_to_the_limit_in_node_order():
    v = Verdict("Deployment", "default", "web")
    assert v.reservation() == {}
    v.placement = _Placed({"b": 2, "a": 3, "c": 0})
    assert v.reservation() == {"a": 3, "b": 2}
    v.reserve_limit = 4
    assert v.reservation() == {"a": 3, "b": 1}
    v.reserve_limit = 0
    assert v.reservation() == {}
