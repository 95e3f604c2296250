"""A client's mistakes answered as such: named, never masked, never a 500, and without mapping the schema.

- In production no error suggests names ("Did you mean 'filter'?"): with introspection off, suggestions would
  still let anyone spell out the schema one guess at a time.
- A document with several operations and no operationName is refused, as the GraphQL spec requires (Strawberry
  would run the first one).
- Strings that no database column can hold (NUL characters, lone surrogates) are refused naming the argument,
  whether written inline or sent as variables. recordUsage is left to judge each event on its own.
- A scalar literal that cannot be read (dailyLimit: "NaN") is refused naming the argument, not masked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import strawberry
from django.conf import settings
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    ListValueNode,
    Node,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    ValueNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from graphql_api.errors import PermissionDeniedError, should_mask_error
from graphql_api.limits.operation import read_operation
from graphql_api.scalars import ScalarValueError

logger = logging.getLogger(__name__)

SUGGESTION = re.compile(r" Did you mean [^?]*\?")
MULTIPLE_OPERATIONS = "Must provide operation name if query contains multiple operations."
CHECKED_PER_EVENT = {"recordUsage"}  # its events are judged one by one: a bad one never drops the good ones


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        if not settings.DEBUG:
            for error in errors:
                error.message = SUGGESTION.sub("", error.message)
        # A refusal the caller is shown (permission, argument, validation) is one line in the log; only the
        # unexpected errors, masked for the caller, keep their traceback.
        for error in errors:
            if not should_mask_error(error):
                where = f" at {'.'.join(map(str, error.path))}" if error.path else ""
                logger.info("GraphQL request refused%s: %s", where, error.message)
        super().process_errors([error for error in errors if should_mask_error(error)], execution_context)


class ClientMistakes(SchemaExtension):
    """Runs where validation runs. List it after ValidationCache, which sets the errors it then reads or replaces
    (always with a new list: the cached one is shared by every request with the same text)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            if context.pre_execution_errors and (refused := refusal_first(context, document)):
                context.pre_execution_errors = [refused]
            elif context.pre_execution_errors:
                context.pre_execution_errors = [named_literal_error(e, document) for e in context.pre_execution_errors]
            # The name the client sent: `operation_name` falls back to the first operation's own name.
            elif problem := operation_problem(document, getattr(context, "_provided_operation_name", None)) or (
                bad_string(document, context.variables or {})
            ):
                context.pre_execution_errors = [problem]
        yield


def refusal_first(context: ExecutionContext, document: DocumentNode) -> GraphQLError | None:
    """The refusal of a root field the caller may not use, in place of what is wrong with its arguments: whatever
    they send, a caller without the permission learns only that they lack it."""
    operation = read_operation(document, context.variables, getattr(context, "_provided_operation_name", None))
    if operation is None:
        return None
    root = context.schema.get_type_by_name(operation.kind.value.capitalize())
    fields = {context.schema.config.name_converter.get_graphql_name(f): f for f in getattr(root, "fields", ())}
    for field in operation.fields:
        for permission in getattr(fields.get(field.name), "permission_classes", ()):
            try:
                permission().has_permission(None, FieldInfo(context.context, field.name))
            except PermissionDeniedError as exc:
                return GraphQLError(str(exc), field.node, original_error=exc)
    return None


@dataclass(frozen=True)
class FieldInfo:
    """What a field permission reads of `info`, for checking it before the field runs."""

    context: Any
    field_name: str


def operation_problem(document: DocumentNode, operation_name: str | None) -> GraphQLError | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) > 1 and not operation_name:
        return GraphQLError(MULTIPLE_OPERATIONS, operations)
    return None


def argument_values(document: DocumentNode) -> Iterator[tuple[str, str, ValueNode]]:
    """(field name, argument path such as filter.providers, value node) for every value written in an argument."""
    pending: list[Node] = list(document.definitions)
    while pending:
        node = pending.pop()
        if isinstance(node, FieldNode):
            for argument in node.arguments or ():
                for path, value in _leaves(argument.name.value, argument.value):
                    yield node.name.value, path, value
        selection_set = getattr(node, "selection_set", None)
        pending.extend(selection_set.selections if selection_set else ())


def _leaves(path: str, value: ValueNode) -> Iterator[tuple[str, ValueNode]]:
    pending: list[tuple[str, ValueNode]] = [(path, value)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, ObjectValueNode):
            pending.extend((f"{path}.{field.name.value}", field.value) for field in value.fields)
        elif isinstance(value, ListValueNode):
            pending.extend((path, item) for item in value.values)
        else:
            yield path, value


def string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate)"
    return None


def bad_default(document: DocumentNode) -> GraphQLError | None:
    """A variable's default value holding a string no database can store (it reaches the resolvers unchecked
    when the variable is not sent)."""
    for definition in document.definitions:
        for variable in getattr(definition, "variable_definitions", None) or ():
            if variable.default_value is None:
                continue
            for _path, value in _leaves(f"${variable.variable.name.value}", variable.default_value):
                if isinstance(value, StringValueNode) and (problem := string_problem(value.value)):
                    return GraphQLError(f"${variable.variable.name.value}: {problem}", value)
    return None


def bad_string(document: DocumentNode, variables: dict[str, Any]) -> GraphQLError | None:
    """The first argument holding a string no database can store, inline, through a variable or its default."""
    if in_default := bad_default(document):
        return in_default
    for field, path, value in argument_values(document):
        if field in CHECKED_PER_EVENT:
            continue
        if isinstance(value, StringValueNode) and (problem := string_problem(value.value)):
            return GraphQLError(f"{path}: {problem}", value)
        if isinstance(value, VariableNode) and (found := _bad_json_string(path, variables.get(value.name.value))):
            return GraphQLError(f"{found[0]}: {found[1]}", value)
    return None


def _bad_json_string(path: str, value: Any) -> tuple[str, str] | None:
    pending: list[tuple[str, Any]] = [(path, value)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            pending.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((path, item) for item in value)
        elif isinstance(value, str) and (problem := string_problem(value)):
            return path, problem
    return None


def named_literal_error(error: GraphQLError, document: DocumentNode) -> GraphQLError:
    """A literal our scalars refused, as an error naming its argument (and shown: it has no original error)."""
    if not isinstance(error.original_error, ScalarValueError) or not error.nodes:
        return error
    paths = {id(value): path for _field, path, value in argument_values(document)}
    path = paths.get(id(error.nodes[0]))
    return GraphQLError(f"{path}: {error.original_error}" if path else error.message, error.nodes)
