"""How deep and how many values a JSON-like value holds, measured without recursion.

Python's json module, the ORM and the template engine all recurse once per nesting level, so a value nested a few
hundred levels deep makes them raise RecursionError. These walks keep their own stack instead: they handle any
depth (100,000 levels, or a value that contains itself) and stop as soon as a limit is passed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

CONTAINERS = (dict, list, tuple)


def exceeded_limit(value: Any, *, max_depth: int, max_values: int | None = None) -> Literal["depth", "values"] | None:
    """Which limit the value passes first, if any. Depth counts containers within each other (`{"a": 1}` is one
    level, `{"a": [1]}` two); values counts every container and scalar, each of which takes at least one byte as
    JSON."""
    if not isinstance(value, CONTAINERS):
        return None
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 1
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return "depth"
        children = node.values() if isinstance(node, dict) else node
        seen += len(children)
        if max_values is not None and seen > max_values:
            return "values"
        stack.extend((child, depth + 1) for child in children if isinstance(child, CONTAINERS))
    return None


def text_may_nest_deeper(text: str, max_depth: int) -> bool:
    """False when JSON text certainly nests no deeper than max_depth: each level opens with a bracket, so fewer
    brackets than levels settles it without parsing (brackets inside strings only make the answer cautious)."""
    return text.count("{") + text.count("[") > max_depth


def first_inexact_float(value: Any) -> float | None:
    """The first float that would come back from PostgreSQL's jsonb as a different number, if any. jsonb keeps the
    decimal text json.dumps writes (the shortest that reads back as the float) and returns it as written; from
    2**53 up that text is a whole number other than the float's exact value (5.688489694389726e+16 returns as the
    integer 56884896943897260, not 56884896943897264), so it would not be stored as given."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, float) and abs(node) >= 2**53 and Decimal(repr(node)) != Decimal(node):
            return node
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return None
