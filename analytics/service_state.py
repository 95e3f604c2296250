"""The service's own state, as operators ask for it: can it reach its database and broker."""

from __future__ import annotations

from django.db import connection


def database_state() -> str:
    """ "ok", or the kind of error: reported, not raised, because a status probe must always answer."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def broker_state() -> str:
    """ "ok", or the kind of error (as above) of one connection attempt to the Celery broker."""
    from project.celery import app  # the Celery app is made after Django's apps are ready

    try:
        with app.connection_for_write() as broker_connection:
            broker_connection.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
