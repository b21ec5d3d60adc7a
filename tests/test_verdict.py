"""Verdicts: the 120-character summary, the three modes, and what an admitted workload holds.

Oracles: the modes as README.md defines them (enforce denies ``deny`` findings, warn turns
them into warnings, audit only records), the admission warning limit of 120 characters,
and the motivating cluster's hand-counted room: two t3.medium nodes, each 3 ENIs x (6 - 1)
= 15 pod IPs, with 5 and 4 IP-consuming kube-system pods, so 10 + 11 = 21 free slots.
"""

from __future__ import annotations

import pytest

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.engine.placement import NodeOutcome, Placement
from webhook.engine.verdict import ALLOW, DENY, WARN, Reason, Verdict, clip, decide
from webhook.state.snapshot import state_from_objects

N1, N2 = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"


def test_clip_keeps_120_characters_and_cuts_longer_lines_to_117_plus_an_ellipsis():
    assert clip("a" * 120) == "a" * 120
    assert clip("a" * 121) == "a" * 117 + "..." and len(clip("a" * 500)) == 120
    assert clip("a" * 116 + "   " + "b" * 10) == "a" * 116 + "..."      # no space left before the ellipsis
    assert clip("abcdefghij", 8) == "abcde..." and clip("abcdefgh", 8) == "abcdefgh"


def test_a_reason_summary_is_its_first_line_and_deny_is_the_default_severity():
    reason = Reason("CODE", "first line\nsecond\nthird")
    assert reason.summary == "first line" and reason.severity == DENY
    assert reason.as_dict() == {"code": "CODE", "message": "first line\nsecond\nthird", "severity": "deny"}
    assert Reason("C", "only").summary == "only"


def test_a_fresh_verdict_allows_nothing_requested():
    verdict = Verdict("ConfigMap", "default", "c")
    assert verdict.as_dict() == {"kind": "ConfigMap", "namespace": "default", "name": "c", "verdict": "allow",
                                 "requested": 0, "schedulable": 0, "pending": 0, "reasons": []}
    assert verdict.reservation() == {} and verdict.codes == [] and verdict.message == ""


@pytest.mark.parametrize("severities,mode,want", [
    ((), "enforce", ALLOW), ((), "warn", ALLOW), ((), "audit", ALLOW),
    ((WARN,), "enforce", WARN), ((WARN,), "warn", WARN), ((WARN,), "audit", ALLOW),
    ((DENY,), "enforce", DENY), ((DENY,), "warn", WARN), ((DENY,), "audit", ALLOW),
    ((WARN, DENY), "enforce", DENY), ((DENY, WARN), "warn", WARN), ((WARN, DENY), "audit", ALLOW),
])
def test_the_mode_turns_severities_into_the_verdict(severities, mode, want):
    verdict = Verdict("Deployment", "default", "web", reasons=[Reason(f"C{i}", "m", s) for i, s in
                                                                enumerate(severities)])
    assert decide(verdict, mode) is verdict
    assert (verdict.verdict, verdict.mode) == (want, mode)


def test_an_unknown_mode_is_refused_by_name():
    with pytest.raises(ValueError) as error:
        decide(Verdict("Pod", "default", "p"), "dry")
    assert str(error.value) == "mode must be one of enforce, warn, audit, got 'dry'"


def test_codes_and_message_list_every_reason_in_order():
    verdict = Verdict("Pod", "default", "p", reasons=[Reason("A", "one\ndetail"), Reason("B", "two", WARN)])
    assert verdict.codes == ["A", "B"] and verdict.message == "one\ndetail\ntwo"


def test_an_admitted_workload_holds_what_it_placed_per_node_and_a_rollout_only_its_extra_pods():
    state = state_from_objects(s.two_t3_medium_cluster()["items"])
    verdict = evaluate(state, s.small_web("web", 30))
    assert (verdict.schedulable, verdict.pending) == (21, 9)
    assert verdict.reservation() == {N1: 10, N2: 11}
    verdict.reserve_limit = 15          # node names in order: N1's 10, then 5 of N2's 11
    assert verdict.reservation() == {N1: 10, N2: 5}
    verdict.reserve_limit = 10          # N1 takes all ten: nothing left for N2, which is not listed
    assert verdict.reservation() == {N1: 10}
    verdict.reserve_limit = 0
    assert verdict.reservation() == {}


def test_the_reserve_limit_is_spent_in_node_name_order_and_unplaced_nodes_hold_nothing():
    # A rollout replacing 16 running pods that placed 3 + 12 + 4 holds only the 3 beyond them.
    per_node = {"node-c": NodeOutcome(None, 4, ""), "node-a": NodeOutcome(None, 3, ""),
                "node-b": NodeOutcome(None, 12, ""), "node-d": NodeOutcome(None, 0, "POD_IP_EXHAUSTED")}
    verdict = Verdict("Deployment", "default", "web", placement=Placement(19, 19, per_node, {}))
    assert verdict.reservation() == {"node-a": 3, "node-b": 12, "node-c": 4}
    for limit, held in [(19, {"node-a": 3, "node-b": 12, "node-c": 4}), (40, {"node-a": 3, "node-b": 12, "node-c": 4}),
                        (16, {"node-a": 3, "node-b": 12, "node-c": 1}), (15, {"node-a": 3, "node-b": 12}),
                        (3, {"node-a": 3}), (2, {"node-a": 2}), (0, {})]:
        verdict.reserve_limit = limit
        assert verdict.reservation() == held, limit
