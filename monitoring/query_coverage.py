"""The PromQL expressions of the alert/recording rules and the dashboard, as queries that must return data.

An alert expression such as `x > 0.95` returns nothing while healthy, so "does this expression see
its series?" is asked with every top-level comparison turned into a `bool` comparison (0 or 1 per
series) and with `and`/`or`/`unless` operands checked one by one.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = set(_OPENERS.values())
_SET_OPERATORS = ("and", "or", "unless")
_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_MATCHING_MODIFIER = re.compile(r"^\s*(on|ignoring)\s*\(")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_:]")
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")


@dataclass(frozen=True)
class SourcedExpression:
    """One PromQL expression and where it comes from (rule name or dashboard panel title)."""

    source: str
    expr: str


def rule_expressions(rule_files: list[str | os.PathLike[str]]) -> list[SourcedExpression]:
    """The `expr` of every recording and alert rule in the given Prometheus rule files."""
    found = []
    for path in rule_files:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        for group in document.get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("record") or rule.get("alert")
                found.append(SourcedExpression(f"{Path(path).name}: {name}", " ".join(rule["expr"].split())))
    return found


def dashboard_expressions(dashboard_file: str | os.PathLike[str], variables: dict[str, str]) -> list[SourcedExpression]:
    """The `expr` of every panel target of a Grafana dashboard JSON, with Grafana variables replaced.

    `variables` maps a variable with its `$` (e.g. `$__rate_interval`) to its value; a variable
    left unreplaced raises ValueError naming the panel.
    """
    dashboard = json.loads(Path(dashboard_file).read_text(encoding="utf-8"))
    found = []
    for panel in _all_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            leftover = _GRAFANA_VARIABLE.search(expr)
            if leftover:
                raise ValueError(f"panel {panel['title']!r}: no value given for variable {leftover.group()}")
            found.append(SourcedExpression(f"panel {panel['title']!r} {target['refId']}", expr))
    return found


def _all_panels(panels: list[dict]) -> list[dict]:
    """Panels including those nested in collapsed rows."""
    flat = []
    for panel in panels:
        flat.append(panel)
        flat.extend(_all_panels(panel.get("panels", [])))
    return flat


def data_queries(expr: str) -> list[str]:
    """Queries that return at least one sample iff every series `expr` depends on exists.

    `a > 0.9 and b` gives `["a > bool 0.9", "b"]`; an expression without top-level set operators
    or comparisons is returned as is.
    """
    return [_with_bool_comparisons(operand) for operand in _split_set_operators(expr)]


def _top_level_positions(expr: str) -> list[int]:
    """Indices of the characters of `expr` outside any brackets and string literals."""
    positions = []
    depth = 0
    quote: str | None = None
    index = 0
    while index < len(expr):
        char = expr[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced {char!r} at {index} in {expr!r}")
        elif depth == 0:
            positions.append(index)
        index += 1
    if depth or quote:
        raise ValueError(f"unclosed bracket or string in {expr!r}")
    return positions


def _split_set_operators(expr: str) -> list[str]:
    """Operands of the top-level `and`/`or`/`unless` of `expr`, without their on()/ignoring() modifiers."""
    top = set(_top_level_positions(expr))
    operands = []
    start = 0
    index = 0
    while index < len(expr):
        keyword = next(
            (op for op in _SET_OPERATORS if expr.startswith(op, index) and _is_word_at(expr, index, len(op), top)),
            None,
        )
        if keyword:
            operands.append(expr[start:index])
            start = index + len(keyword)
            index = start
            continue
        index += 1
    operands.append(expr[start:])
    return [_strip_matching_modifier(operand).strip() for operand in operands]


def _is_word_at(expr: str, index: int, length: int, top: set[int]) -> bool:
    """True when expr[index:index+length] is a whole top-level word (not part of a metric name)."""
    if index not in top:
        return False
    before = expr[index - 1] if index > 0 else " "
    after = expr[index + length] if index + length < len(expr) else " "
    return not _WORD_CHAR.match(before) and not _WORD_CHAR.match(after)


def _strip_matching_modifier(operand: str) -> str:
    """Drop a leading `on(...)`/`ignoring(...)` left over from the set operator before it."""
    match = _MATCHING_MODIFIER.match(operand)
    if not match:
        return operand
    closing = operand.index(")", match.end())
    return operand[closing + 1 :]


def _with_bool_comparisons(expr: str) -> str:
    """`expr` with ` bool` after each top-level comparison operator that lacks it."""
    top = _top_level_positions(expr)
    top_set = set(top)
    inserts = []
    index = 0
    while index < len(expr):
        if index in top_set:
            operator = next((op for op in _COMPARISONS if expr.startswith(op, index)), None)
            # `=~` and `!~` only occur inside {} selectors, so they never reach this point.
            if operator:
                end = index + len(operator)
                if not re.match(r"\s*bool\b", expr[end:]):
                    inserts.append(end)
                index = end
                continue
        index += 1
    for position in reversed(inserts):
        expr = expr[:position] + " bool" + expr[position:]
    return expr
