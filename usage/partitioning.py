"""Monthly partitions of the log table on PostgreSQL, for very large installations (AI_USAGE_LOG_PARTITIONED).

At a hundred million logs one table and its b-tree indexes stop being pleasant: VACUUM and index builds take
hours, and deleting old months is a huge DELETE. Partitioned by month on occurred_at, each month is its own table
(dropped or archived whole), queries over a time range touch only their months, and a BRIN index on occurred_at
costs a few kilobytes per month where a b-tree costs gigabytes.

What changes: PostgreSQL allows a unique index on a partitioned table only if it includes the partition key, so
the log's "each event_id once per user" constraints move to their own table (UsageEventKey, keyed by the event id
scoped to its user). Writers claim the scoped id there in the same statement that inserts the log; a repeat by the
same user finds the claim and stores nothing, exactly as before.
"""

from __future__ import annotations

import logging
from datetime import date

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from usage.models import AIUsageLog, UsageEventKey

logger = logging.getLogger(__name__)

LOG_TABLE = AIUsageLog._meta.db_table
KEY_TABLE = UsageEventKey._meta.db_table
# The log's unique constraints on event ids, which UsageEventKey replaces on a partitioned table (the first one is
# the global constraint of databases migrated before 0010, which migrate's 0008 may convert).
EVENT_ID_UNIQUE = ("usage_event_id_once", "usage_event_id_once_per_user", "usage_event_id_once_without_user")
# models.scoped_event_id in SQL, over a row with user_id and event_id columns (NULL when event_id is NULL).
SCOPED_EVENT_ID = "COALESCE({prefix}user_id::text, '-') || ':' || {prefix}event_id"
TIME_BTREE = "usage_time"
MONTHS_AHEAD = 3
_partitioned: dict[str, bool] = {}


def log_table_partitioned(db: BaseDatabaseWrapper | None = None) -> bool:
    """Whether the log table is partitioned (read from the catalog once per process and database). The write path
    passes the connection it already holds: looking it up again costs more than the answer."""
    db = connections[DEFAULT_DB_ALIAS] if db is None else db
    if db.vendor != "postgresql":
        return False
    name = db.settings_dict["NAME"]
    if name not in _partitioned:
        with db.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [LOG_TABLE])
            row = cursor.fetchone()
        _partitioned[name] = row is not None and row[0] == "p"
    return _partitioned[name]


def forget_partitioning() -> None:
    """Read the table's state from the catalog again (after a test rolled a conversion back)."""
    _partitioned.clear()


def _month_after(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _partition_name(month: date) -> str:
    return f"{LOG_TABLE}_y{month.year}m{month.month:02d}"


def _create_month(cursor: CursorWrapper, month: date) -> bool:
    """The month's partition, unless it exists or the default partition already holds rows of that month."""
    name, end = _partition_name(month), _month_after(month)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if cursor.fetchone()[0]:
        return False
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {LOG_TABLE}_default WHERE occurred_at >= %s AND occurred_at < %s)",
        [month, end],
    )
    if cursor.fetchone()[0]:
        logger.warning("logs of %s are in the default partition; no partition of its own created", month)
        return False
    cursor.execute(f"CREATE TABLE {name} PARTITION OF {LOG_TABLE} FOR VALUES FROM ('{month}') TO ('{end}')")
    return True


def ensure_partitions(first: date | None = None) -> int:
    """Partitions for every month from `first` (default this month) to MONTHS_AHEAD months ahead; returns how many
    were created. Run daily by the rollup job, so writes always land in their month's partition."""
    if not log_table_partitioned():
        return 0
    month = (first or timezone.now().date()).replace(day=1)
    last = timezone.now().date().replace(day=1)
    for _ in range(MONTHS_AHEAD):
        last = _month_after(last)
    created = 0
    with transaction.atomic(), connection.cursor() as cursor:
        while month <= last:
            created += _create_month(cursor, month)
            month = _month_after(month)
    return created


def _index_definitions(cursor: CursorWrapper) -> list[str]:
    """The log table's indexes as CREATE statements, but for its primary key, the event id constraints, and the
    b-tree on occurred_at, which a BRIN index replaces."""
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname <> ALL(%s)",
        [LOG_TABLE, [f"{LOG_TABLE}_pkey", *EVENT_ID_UNIQUE, TIME_BTREE]],
    )
    return [row[0] for row in cursor.fetchall()]


def _foreign_keys(cursor: CursorWrapper) -> list[str]:
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) "
        "AND contype = 'f'",
        [LOG_TABLE],
    )
    return [f"ALTER TABLE {LOG_TABLE} ADD CONSTRAINT {name} {definition}" for name, definition in cursor.fetchall()]


def claim_event_ids(cursor: CursorWrapper) -> None:
    """Fill UsageEventKey with the scoped event id of every log (the logs' ids are unique per user already).
    The table's one column is filled by position: migrate's 0008 runs this before 0010 has renamed it."""
    cursor.execute(
        f"INSERT INTO {KEY_TABLE} SELECT {SCOPED_EVENT_ID.format(prefix='')} FROM {LOG_TABLE} "
        "WHERE event_id IS NOT NULL"
    )


def partition_log_table() -> bool:
    """Turn the log table into one partitioned by month, keeping every row, id, index and foreign key, in one
    transaction (writers wait). Returns False when it already is partitioned or the database is not PostgreSQL."""
    if connection.vendor != "postgresql" or log_table_partitioned():
        return False
    staging = f"{LOG_TABLE}_partitioned"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {LOG_TABLE} IN ACCESS EXCLUSIVE MODE")
        indexes, foreign_keys = _index_definitions(cursor), _foreign_keys(cursor)
        cursor.execute(
            f"CREATE TABLE {staging} (LIKE {LOG_TABLE} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS) "
            "PARTITION BY RANGE (occurred_at)"
        )
        cursor.execute(f"CREATE TABLE {LOG_TABLE}_default PARTITION OF {staging} DEFAULT")
        claim_event_ids(cursor)
        cursor.execute(f"SELECT MIN(occurred_at), COALESCE(MAX(id), 0) FROM {LOG_TABLE}")
        earliest, last_id = cursor.fetchone()
        cursor.execute(f"ALTER TABLE {staging} RENAME TO {LOG_TABLE}_new")
        cursor.execute(f"ALTER TABLE {LOG_TABLE} RENAME TO {LOG_TABLE}_old")
        cursor.execute(f"ALTER TABLE {LOG_TABLE}_new RENAME TO {LOG_TABLE}")
        _partitioned[connection.settings_dict["NAME"]] = True
        ensure_partitions(earliest.date() if earliest else None)
        cursor.execute(f"INSERT INTO {LOG_TABLE} SELECT * FROM {LOG_TABLE}_old")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred checks of rows written earlier, before the drop
        cursor.execute(f"DROP TABLE {LOG_TABLE}_old")
        cursor.execute(f"ALTER TABLE {LOG_TABLE} ADD PRIMARY KEY (id, occurred_at)")
        for statement in indexes + foreign_keys:
            cursor.execute(statement)
        cursor.execute(f"CREATE INDEX usage_time_brin ON {LOG_TABLE} USING brin (occurred_at)")
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [LOG_TABLE, max(last_id, 1),
                                                                                   last_id > 0])  # fmt: skip
    return True


def partition_if_configured() -> bool:
    """What migrate does: partition the table when AI_USAGE_LOG_PARTITIONED is on and it is not yet."""
    return bool(settings.AI_USAGE_LOG_PARTITIONED) and partition_log_table()
