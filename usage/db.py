"""Running the few statements on the write path, which runs once per AI call."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper


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


class database_available:  # lower case: used like the function-style context manager it replaced
    """Turn a lost or refused connection into DatabaseUnavailable naming what could not be done.

    Outside a transaction the broken connection is closed as well, so the next call opens a new one: a worker or
    script that keeps running recovers once the database is back (Django only does this between web requests).
    A class rather than a generator: it wraps every recorded call, and entering it should cost next to nothing.
    """

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        if not isinstance(exc, OperationalError | InterfaceError) or not _connection_lost(exc):
            return  # nothing failed, or a deadlock or query error: the caller learns what went wrong
        if not connection.in_atomic_block:
            with suppress(DatabaseError):
                connection.close()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"{self.action}: the database is unavailable ({reason})") from exc


def fetch_one(sql: str, params: Sequence[Any], db: BaseDatabaseWrapper | None = None) -> tuple[Any, ...] | None:
    """Run one statement and return its first row.

    On PostgreSQL this uses a psycopg cursor with server-side binding on Django's own connection (same
    transaction, Django's exception types), so the statement is prepared once per connection (settings turn
    psycopg's preparing on unless DATABASE_PREPARED_STATEMENTS=0). Parsing and planning the full text on every
    call measured slower than the INSERT itself here. `db` is the default connection, when the caller holds it.
    """
    if db is None:
        db = connections[DEFAULT_DB_ALIAS]  # one lookup: every attribute read through the proxy repeats it
    if db.vendor != "postgresql":
        with db.cursor() as django_cursor:
            django_cursor.execute(sql, params)
            return django_cursor.fetchone()
    with _prepared(db, sql, params) as cursor:
        return cursor.fetchone()


def fetch_all(sql: str, params: Sequence[Any], db: BaseDatabaseWrapper | None = None) -> list[tuple[Any, ...]]:
    """fetch_one's way (PostgreSQL only) for a statement returning many rows. Placeholders written %b send their
    parameter in binary: a batch's per-column arrays go in half the time psycopg takes to quote each element."""
    with _prepared(db or connections[DEFAULT_DB_ALIAS], sql, params) as cursor:
        return cursor.fetchall() if cursor.description is not None else []  # [] for a statement of no rows


@contextmanager
def _prepared(db: BaseDatabaseWrapper, sql: str, params: Sequence[Any]) -> Iterator[psycopg.Cursor[Any]]:
    """The write-path cursor after running a prepared statement, with Django's error types and query log."""
    if db.connection is None:
        db.ensure_connection()
    started = time.monotonic()
    with db.wrap_database_errors:
        cursor = _write_path_cursor(db)
        cursor.execute(sql, params, prepare=True)
        yield cursor
    if db.queries_logged:  # keep query logging (tests, debug tools) complete
        db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


def _write_path_cursor(db: BaseDatabaseWrapper) -> psycopg.Cursor[Any]:
    """One plain psycopg cursor per connection, made once: building a cursor cost as much as dumping a call's
    parameters. It is kept on Django's connection wrapper (one per thread), so it goes when the thread's wrapper
    goes, and is made again when the wrapper has opened a new connection (after a reconnect)."""
    cursor: psycopg.Cursor[Any] | None = db.__dict__.get("_write_path_cursor")
    if cursor is None or cursor.closed or cursor.connection is not db.connection:
        cursor = db.__dict__["_write_path_cursor"] = psycopg.Cursor(db.connection)
    return cursor
