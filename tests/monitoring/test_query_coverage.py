"""Turning rule and dashboard expressions into queries that return data whenever their series exist."""

from __future__ import annotations

import json

import pytest

from monitoring.query_coverage import dashboard_expressions, data_queries, rule_expressions


@pytest.mark.parametrize(
    ("expr", "queries"),
    [
        ("sum by (job) (rate(x_total[5m]))", ["sum by (job) (rate(x_total[5m]))"]),
        ("x > 0.95", ["x > bool 0.95"]),
        ("x != x", ["x != bool x"]),
        ("x >= bool 3", ["x >= bool 3"]),
        ('up{job=~"pepnet-.*"} == 0', ['up{job=~"pepnet-.*"} == bool 0']),
        ("deriv(a[15m]) > 0 and a > 10000", ["deriv(a[15m]) > bool 0", "a > bool 10000"]),
        ("a > 0.1 and on(job) b > 3 * c", ["a > bool 0.1", "b > bool 3 * c"]),
        ("a unless ignoring(reason) b", ["a", "b"]),
        ("sum(rate(x[1m])) or vector(0)", ["sum(rate(x[1m]))", "vector(0)"]),
        # set-operator words inside names, labels or brackets are not operators
        ('order_total{label="a and b"} > 1', ['order_total{label="a and b"} > bool 1']),
        ("max(x) by (or_label) < 2", ["max(x) by (or_label) < bool 2"]),
        ("count(a > 1)", ["count(a > 1)"]),
    ],
)
def test_data_queries(expr: str, queries: list[str]) -> None:
    assert data_queries(expr) == queries


def test_unbalanced_expression_is_rejected() -> None:
    with pytest.raises(ValueError, match="unclosed"):
        data_queries("sum(rate(x[1m])")


def test_rule_expressions_reads_records_and_alerts(tmp_path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        "groups:\n- name: g\n  rules:\n  - record: r:x\n    expr: sum(x)\n"
        "  - alert: A\n    expr: >-\n      r:x\n      > 1\n"
    )
    found = rule_expressions([path])
    assert [(e.source, e.expr) for e in found] == [("rules.yml: r:x", "sum(x)"), ("rules.yml: A", "r:x > 1")]


def test_dashboard_expressions_substitute_variables_and_reject_unknown_ones(tmp_path) -> None:
    dashboard = {
        "panels": [
            {
                "type": "row",
                "title": "r",
                "panels": [{"title": "nested", "targets": [{"refId": "A", "expr": "rate(x[$__rate_interval])"}]}],
            },
            {"title": "top", "targets": [{"refId": "B", "expr": "y"}]},
        ]
    }
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard))
    found = dashboard_expressions(path, {"$__rate_interval": "1m"})
    assert [e.expr for e in found] == ["rate(x[1m])", "y"]
    with pytest.raises(ValueError, match=r"panel 'nested': no value given for variable \$__rate_interval"):
        dashboard_expressions(path, {})
