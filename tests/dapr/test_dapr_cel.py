"""The CEL subset used by routing rules and circuit-breaker trips."""

from __future__ import annotations

import pytest

from wonderland.dapr.cel import compile_expression

EVENT = {
    "event": {
        "type": "widget",
        "source": "orders/eu",
        "data": {"amount": "25", "qty": 3, "tags": ["a", "b"], "nested": {"ok": True}},
    }
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('event.type == "widget"', True),
        ("event.type != 'widget'", False),
        ("has(event.data.amount) && int(event.data.amount) > 10", True),
        ("has(event.data.missing) || event.data.qty >= 3", True),
        ("!has(event.data.missing)", True),
        ('event.source.startsWith("orders/") && event.source.endsWith("eu")', True),
        ('event.source.contains("/") && event.source.matches("^orders/[a-z]+$")', True),
        ('"b" in event.data.tags && size(event.data.tags) == 2', True),
        ("event.data.qty * 2 + 1 == 7 && event.data.qty % 2 == 1", True),
        ("event.data.nested.ok ? true : false", True),
        ("double(event.data.amount) / 2.0 > 12.4", True),
        ('string(event.data.qty) == "3"', True),
        ("event.data.missing == 1", False),  # a missing field does not match (no error)
        ("event.data.amount > 10", False),  # string vs int: no match
    ],
)
def test_expressions(expr: str, expected: bool) -> None:
    assert compile_expression(expr).matches(EVENT) is expected


@pytest.mark.parametrize(
    "bad", ["", "event.type ==", "event.type = 'x'", "unknownfn(event)", "has(event)"]
)
def test_bad_expressions_fail_at_compile_time(bad: str) -> None:
    with pytest.raises(ValueError):
        compile_expression(bad)


def test_evaluate_reports_the_problem() -> None:
    with pytest.raises(ValueError, match="no such key"):
        compile_expression("event.nope").evaluate(EVENT)
