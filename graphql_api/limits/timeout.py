"""A time limit on every GraphQL request's SQL.

On PostgreSQL each statement runs under `statement_timeout` (API_STATEMENT_TIMEOUT_MS), set on the connection
when execution starts and reset when it ends: connections outlive requests (CONN_MAX_AGE), and Celery jobs and
management commands must not inherit the limit. The same limit is also a deadline for the whole request: once it
has passed, or once one statement was cancelled, the request's further statements fail at once instead of each
waiting for its own timeout (30 aliased fields would otherwise hold a worker 30 times as long).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout


class QueryTimeout(OperationalError):
    """The request's time is up: the statement was not sent."""


def was_cancelled(exc: BaseException | None) -> bool:
    return isinstance(exc, QueryTimeout) or (
        isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED
    )


class RequestDeadline:
    """A database execute wrapper that refuses statements once the request's time is up."""

    def __init__(self, limit_ms: int) -> None:
        self.deadline = time.monotonic() + limit_ms / 1000
        self.expired = False

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if self.expired or time.monotonic() > self.deadline:
            self.expired = True
            raise QueryTimeout("the request's statement time is up")
        try:
            return execute(sql, params, many, context)
        except OperationalError as exc:
            self.expired = self.expired or was_cancelled(exc)
            raise


def timeout_message(limit_ms: int) -> str:
    return (
        f"the query took longer than {limit_ms / 1000:g} s and was stopped; "
        "narrow the range or remove the status/session filter"
    )


def _apply(limit_ms: int) -> object | None:
    """Set the timeout on this thread's PostgreSQL connection; returns that connection, or None when not set (another
    database, or one that cannot be reached: the resolvers then report that as they always do)."""
    if connection.vendor != "postgresql":
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {int(limit_ms)}")
    except DatabaseError:
        return None
    return connection.connection


def _reset(applied: object | None) -> None:
    if applied is None or connection.connection is not applied:
        return  # never set, or the connection was replaced: a new one starts without it
    try:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
    except DatabaseError:
        # Inside a transaction (tests) the rollback undoes the SET; outside, a connection that cannot take the
        # RESET is not kept with the timeout on it.
        if not connection.in_atomic_block:
            connection.close()


def _explained(error: GraphQLError, limit_ms: int) -> GraphQLError:
    if not was_cancelled(error.original_error):
        return error
    return GraphQLError(
        timeout_message(limit_ms), nodes=error.nodes, source=error.source, positions=error.positions,
        path=error.path, extensions={"code": "QUERY_TIMEOUT"},
    )  # fmt: skip


class StatementTimeout(SchemaExtension):
    """API_STATEMENT_TIMEOUT_MS on the statements of one execution, with a clear error when it stops one."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        limit_ms = settings.API_STATEMENT_TIMEOUT_MS
        if context.result is not None or not limit_ms:
            yield  # refused before execution, or no limit
            return
        deadline = RequestDeadline(limit_ms)
        applied = _apply(limit_ms)
        try:
            with connection.execute_wrapper(deadline):
                yield
        finally:
            _reset(applied)
        result = context.result
        if deadline.expired and result is not None and result.errors:
            result.errors = [_explained(error, limit_ms) for error in result.errors]
