"""The decision time budget (webhook/engine/budget.py): ``check()`` raises only inside a
``deadline(seconds)`` block whose deadline has passed, never without one."""

import pytest

from webhook.engine import budget


def test_without_a_budget_check_never_raises():
    budget.check()
    with budget.deadline(None):
        budget.check()


def test_a_passed_deadline_raises_and_names_the_budget_and_is_gone_after_the_block():
    with budget.deadline(-1.0):                     # a deadline one second in the past
        with pytest.raises(budget.BudgetExceeded) as exceeded:
            budget.check()
    assert exceeded.value.seconds == -1.0
    assert str(exceeded.value) == "the capacity decision took longer than its -1 s budget"
    budget.check()                                  # the block is over: no deadline any more


def test_a_deadline_in_the_future_does_not_raise():
    with budget.deadline(3600.0):
        budget.check()
