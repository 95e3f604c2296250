"""The root fields an operation asks for, with their arguments as plain values, read before it runs.

The cost budget and the rate limits judge a request by these: every alias and fragment spread counts, and
arguments given as variables (or left to a variable's default) are resolved the way execution will see them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    value_from_ast_untyped,
)
from strawberry.types import ExecutionContext

CACHED = "_limits_operation"


@dataclass(frozen=True)
class RootField:
    name: str
    alias: str
    arguments: dict[str, Any]  # as sent: camelCase keys, enum names, dates as ISO strings
    node: FieldNode
    fragments: dict[str, FragmentDefinitionNode]

    def selects(self, name: str) -> bool:
        """Whether the field's selection asks for a field of this name at any depth."""
        return any(field.name.value == name for field in fields_of(self.node.selection_set, self.fragments))


@dataclass(frozen=True)
class Operation:
    kind: OperationType
    fields: list[RootField]


def operation_of(context: ExecutionContext) -> Operation | None:
    """The operation that will run (None when the document names none that matches: execution reports it).
    Read once per execution: the rate limits and the cost budget both ask."""
    if CACHED not in context.__dict__:
        context.__dict__[CACHED] = _read_operation(context)
    return cast("Operation | None", context.__dict__[CACHED])


def _read_operation(context: ExecutionContext) -> Operation | None:
    if context.graphql_document is None:
        return None
    return read_operation(context.graphql_document, context.variables, context.operation_name)


def read_operation(
    document: DocumentNode, given: dict[str, Any] | None, operation_name: str | None = None
) -> Operation | None:
    chosen = _chosen(document, operation_name)
    if chosen is None:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    variables = _variables(chosen, given or {})
    fields = [
        RootField(
            name=node.name.value,
            alias=node.alias.value if node.alias else node.name.value,
            arguments={arg.name.value: _value(arg.value, variables) for arg in node.arguments or ()},
            node=node,
            fragments=fragments,
        )
        for node in fields_of(chosen.selection_set, fragments, depth=1)
    ]
    return Operation(kind=chosen.operation, fields=fields)


def _chosen(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if operations else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)


def _variables(operation: OperationDefinitionNode, given: dict[str, Any]) -> dict[str, Any]:
    """The variables as execution sees them: those sent, else the defaults the operation declares."""
    values = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name in given:
            values[name] = given[name]
        elif definition.default_value is not None:
            values[name] = value_from_ast_untyped(definition.default_value)
    return values


def _value(node: ValueNode, variables: dict[str, Any]) -> Any:
    if isinstance(node, VariableNode):  # as sent: a recordUsage batch is not copied
        return variables.get(node.name.value)
    return _plain(value_from_ast_untyped(node, variables))


def _plain(value: Any) -> Any:
    """Undefined (a variable that was not sent) reads as not given."""
    if value is Undefined:
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if item is not Undefined}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def fields_of(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode], depth: int | None = None
) -> Iterator[FieldNode]:
    """Field nodes of a selection, through fragments; `depth=1` stops at the selection's own fields. Validation
    has already refused fragment cycles; the `seen` set only keeps a repeated spread from being walked twice at
    the same level."""
    if selection_set is None:
        return
    seen: set[str] = set()
    pending = list(selection_set.selections)
    while pending:
        selection = pending.pop(0)
        if isinstance(selection, FieldNode):
            yield selection
            if depth is None:
                yield from fields_of(selection.selection_set, fragments)
        elif isinstance(selection, InlineFragmentNode):
            pending.extend(selection.selection_set.selections)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                pending.extend(fragment.selection_set.selections)
