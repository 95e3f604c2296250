"""Running the few statements on the write path, which runs once per AI call."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from django.db import DatabaseError, InterfaceError, OperationalError, connection


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached or went away during a call (restart, failover, network).

    Nothing of the failed statement is kept. Repeating the call with the same event_id is safe: if its commit did
    get through before the connection broke, the repeat reports a duplicate instead of storing it twice.
    """


# SQLSTATE classes and codes of a connection that failed or was ended by the server (shutdown, restart, crash).
CONNECTION_LOST_STATES = ("08", "57P01", "57P02", "57P03")


def _connection_lost(exc: Exception) -> bool:
    """True when the connection failed or was closed, not when a statement failed on a working connection."""
    if isinstance(exc, InterfaceError):
        return True
    cause = exc.__cause__
    if not isinstance(cause, psycopg.OperationalError):
        return False  # SQLite's "database is locked" or "no such table" are not a lost server
    return cause.sqlstate is None or cause.sqlstate.startswith(CONNECTION_LOST_STATES)


@contextmanager
def database_available(action: str) -> Iterator[None]:
    """Turn a lost or refused connection into DatabaseUnavailable naming what could not be done.

    Outside a transaction the broken connection is closed as well, so the next call opens a new one: a worker or
    script that keeps running recovers once the database is back (Django only does this between web requests).
    """
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        if not _connection_lost(exc):
            raise  # a deadlock or a query error: the database is there, the caller learns what went wrong
        if not connection.in_atomic_block:
            with suppress(DatabaseError):
                connection.close()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"{action}: the database is unavailable ({reason})") from exc


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """Run one statement and return its first row.

    On PostgreSQL this uses a psycopg cursor with server-side binding on Django's own connection (same
    transaction, Django's exception types), so the statement is prepared once per connection (settings turn
    psycopg's preparing on unless DATABASE_PREPARED_STATEMENTS=0). Parsing and planning the full text on every
    call measured slower than the INSERT itself here.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.ensure_connection()
    started = time.monotonic()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        row = cursor.fetchone()
    if connection.queries_logged:  # keep query logging (tests, debug tools) complete
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return row
