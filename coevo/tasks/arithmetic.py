"""Re-deriving the answer of a problem that is plain arithmetic, exactly.

A procedural Teacher has no language model, so it can only accept a problem someone else wrote
(a Generator's proposal) when it can compute the answer itself. It can when the question holds
one arithmetic expression of whole or decimal numbers with + - × ÷ and brackets ("What is
12 + 7 × 3?", "Compute (48 - 6) / 7."): the expression is parsed into Python's AST and evaluated
with exact fractions. Anything else (words between the numbers, powers, variables, an expression
too long or with numbers too large to be a practice problem) is not derivable: `None`.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

MAX_EXPRESSION_CHARS = 200
MAX_NUMBER_DIGITS = 12

_OPERATORS = {"×": "*", "x": "*", "X": "*", "·": "*", "÷": "/", "−": "-", "–": "-"}
# Digits, decimal points, operators, brackets and spaces, starting and ending with a number or bracket.
_EXPRESSION_RE = re.compile(r"(?:(?<![\w)])[-−])?[\d(][\d.\s+\-*/×xX·÷−–()]*[\d)]")


def arithmetic_expression(question: str) -> str | None:
    """The one arithmetic expression in a question (with at least one operator), or None."""
    candidates = [m.group(0).strip() for m in _EXPRESSION_RE.finditer(question[:2000])]
    with_operator = [c for c in candidates if re.search(r"\d\s*[+\-*/×xX·÷−–]\s*[\d(]", c)]
    if len(with_operator) != 1:
        return None
    return with_operator[0]


def evaluate(expression: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or None when it is not one we accept."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        return None
    text = expression
    for symbol, operator in _OPERATORS.items():
        text = text.replace(symbol, operator)
    if re.search(rf"\d{{{MAX_NUMBER_DIGITS + 1},}}", text) or "**" in text:
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    try:
        return _value(tree.body)
    except (ZeroDivisionError, ValueError):
        return None


def derive_answer(question: str) -> Fraction | None:
    """The exact answer of a question that is one arithmetic expression; None otherwise."""
    expression = arithmetic_expression(question)
    return None if expression is None else evaluate(expression)


def _value(node: ast.expr) -> Fraction:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _value(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right
    raise ValueError("not plain arithmetic")
