"""Running the few statements on the write path, which runs once per AI call."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """Run one statement and return its first row.

    On PostgreSQL this uses a psycopg cursor with server-side binding on Django's own connection (same
    transaction, Django's exception types), so the statement is prepared once per connection. Django's default
    client-side binding makes the server parse and plan the full text on every call, which measured slower than
    the INSERT itself here.
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
