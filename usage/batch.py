"""Recording many finished calls at once (the API's recordUsage). Each call is validated and priced on its own, so a
bad one is rejected alone; the good ones are written together in one transaction with a handful of statements on
PostgreSQL, whatever the batch size, instead of a round trip per call."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, transaction

from usage import budgets, periods, validation
from usage.db import database_available, fetch_all
from usage.events import spend_threshold_crossed
from usage.langsmith_forward import forward_after_commit
from usage.models import AIUsageLog, UsageEventKey, UserDailySpend, scoped_event_id
from usage.partitioning import SCOPED_EVENT_ID, log_table_partitioned
from usage.recording import LOG_FIELDS, LOG_TABLE, SPEND_TABLE, RecordResult, build_log, log_columns, save_log
from usage.validation import InvalidUsage

logger = logging.getLogger(__name__)
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
# The inserted logs added to the counters, one upsert per (user, reporting day), in key order.
_ADD_TO_SPEND = f"""added AS (
    INSERT INTO {SPEND_TABLE} (user_id, time_zone, day, cost, requests, unpriced_requests)
    SELECT inserted.user_id, %b::varchar, batch.day, COALESCE(SUM(inserted.total_cost), 0), COUNT(*),
           COUNT(*) - COUNT(inserted.total_cost)
    FROM inserted JOIN batch ON batch.id = inserted.id
    WHERE inserted.user_id IS NOT NULL
    GROUP BY inserted.user_id, batch.day ORDER BY inserted.user_id, batch.day
    ON CONFLICT (user_id, time_zone, day) DO UPDATE SET
        cost = {SPEND_TABLE}.cost + EXCLUDED.cost,
        requests = {SPEND_TABLE}.requests + EXCLUDED.requests,
        unpriced_requests = {SPEND_TABLE}.unpriced_requests + EXCLUDED.unpriced_requests
)"""


# The unique constraint a batch's event ids can meet, by whose calls it holds (none named when it holds both).
CONFLICT_TARGETS = {"users": "(event_id, user_id)", "nobody": "(event_id) WHERE user_id IS NULL", "both": ""}


def _scope(logs: list[AIUsageLog]) -> str:
    with_user = sum(log.user_id is not None for log in logs)
    return "users" if with_user == len(logs) else "nobody" if with_user == 0 else "both"


@cache
def _insert_batch_statement(partitioned: bool, scope: str = "both") -> str:
    """One statement for a whole batch: each row gets its id from the log table's sequence, the logs are inserted
    (a repeated event id skipped) and the inserted ones added to the live spend counters of their user and
    reporting day. It returns each row's id and whether it was inserted, in the order sent.

    The rows come as one array per column (and one of reporting days): a fixed statement of a few parameters
    whatever the batch size, which PostgreSQL plans once and the driver does not have to rewrite (a VALUES list of
    20,000 placeholders cost more to build than to run). Its parameters go in binary (usage.db.fetch_all)."""
    arrays = ", ".join(f"%b::{field.db_type(connection)}[]" for field in LOG_FIELDS)
    columns = ", ".join(str(field.column) for field in LOG_FIELDS)
    batch = f"""batch AS (
        SELECT nextval(pg_get_serial_sequence('{LOG_TABLE}', 'id')) AS id, b.*
        FROM unnest({arrays}, %b::date[]) WITH ORDINALITY AS b({columns}, day, n)
    )"""
    insert = f"INSERT INTO {LOG_TABLE} (id, {columns}) SELECT id, {columns} FROM batch"
    if partitioned:
        # Event ids, scoped to their user, are claimed in their own table; the first of a repeated id wins.
        scoped_id = SCOPED_EVENT_ID.format(prefix="")
        inserted = f"""claim AS (
            INSERT INTO {UsageEventKey._meta.db_table} (scoped_id)
            SELECT DISTINCT {scoped_id} FROM batch WHERE event_id IS NOT NULL ORDER BY 1
            ON CONFLICT DO NOTHING RETURNING scoped_id
        ),
        chosen AS (
            SELECT DISTINCT ON ({scoped_id}) id FROM batch WHERE {scoped_id} IN (SELECT scoped_id FROM claim)
            ORDER BY {scoped_id}, id
        ),
        inserted AS (
            {insert} WHERE event_id IS NULL OR id IN (SELECT id FROM chosen)
            ORDER BY n RETURNING id, user_id, total_cost
        )"""
    else:
        # Naming the one constraint the batch's rows can meet spares PostgreSQL a check of every other unique
        # index (the primary key's included) on each row; a batch of both kinds names none.
        inserted = f"""inserted AS (
            {insert} ORDER BY n ON CONFLICT {CONFLICT_TARGETS[scope]} DO NOTHING RETURNING id, user_id, total_cost
        )"""
    return f"""WITH {batch}, {inserted}, {_ADD_TO_SPEND}
        SELECT batch.id, inserted.id IS NOT NULL FROM batch LEFT JOIN inserted ON inserted.id = batch.id
        ORDER BY batch.n"""


def build_call(call: dict[str, Any]) -> AIUsageLog:
    """One call's fields (as record_usage takes them) as a validated, priced, unsaved log."""
    fields = dict(call)
    tokens = validation.check_tokens(**{name: fields.pop(name, 0) for name in TOKEN_FIELDS})
    return build_log(tokens=tokens, **fields)


def record_batch(calls: list[dict[str, Any]]) -> list[RecordResult | InvalidUsage]:
    """Each call's outcome, in order: recorded, duplicate (its event_id was seen, in this batch or before) or the
    InvalidUsage that rejected it."""
    outcomes: list[RecordResult | InvalidUsage] = []
    valid: list[AIUsageLog] = []
    for call in calls:
        try:
            log = build_call(call)
        except InvalidUsage as exc:
            outcomes.append(exc)
            continue
        valid.append(log)
        outcomes.append(RecordResult(log))
    if connection.vendor != "postgresql":  # the embedded database: one call at a time, in one transaction
        with database_available("the batch was not recorded"), transaction.atomic():
            saved = {id(log): save_log(log) for log in valid}
        return [o if isinstance(o, InvalidUsage) or o.log is None else saved[id(o.log)] for o in outcomes]
    with database_available("the batch was not recorded"):
        inserted = _insert_batch_retrying(valid) if valid else set()
    return [o if isinstance(o, InvalidUsage) or id(o.log) in inserted else RecordResult(None) for o in outcomes]


# Deadlock and serialization failures: the transaction was rolled back whole and may simply run again.
RETRYABLE_STATES = ("40P01", "40001")


def _insert_batch_retrying(logs: list[AIUsageLog], attempts: int = 3) -> set[int]:
    for attempt in range(1, attempts + 1):
        try:
            return _insert_batch(logs)
        except OperationalError as exc:
            if attempt == attempts or getattr(exc.__cause__, "sqlstate", None) not in RETRYABLE_STATES:
                raise
            logger.warning("batch of %s calls rolled back (%s), attempt %s of %s", len(logs), exc, attempt, attempts)
    raise AssertionError("unreachable")


def _insert_batch(logs: list[AIUsageLog]) -> set[int]:
    """Insert the logs (a repeated event_id is skipped) and add the inserted ones to the live spend counters;
    returns the id() of each log object that was inserted."""
    db = connections[DEFAULT_DB_ALIAS]
    with transaction.atomic():
        # Rows go in scoped event id order, and counters in key order: concurrent batches that share event ids or
        # counters then take their locks in the same order and wait for each other instead of deadlocking. The
        # sort is stable, so of a repeated id the first in the batch gets the lower id and is inserted first.
        ordered = sorted(logs, key=lambda log: (log.event_id is None, scoped_event_id(log.user_id, log.event_id) or ""))
        days = _reporting_days(ordered)
        statement = _insert_batch_statement(log_table_partitioned(db), _scope(logs))
        params = [*log_columns(ordered, db), days, periods.reporting_zone_name()]
        inserted = []
        for log, day, (new_id, was_inserted) in zip(ordered, days, fetch_all(statement, params, db), strict=True):
            log.pk = new_id
            if was_inserted:
                log._state.adding = False
                inserted.append((log, day))
        _announce_crossings(_added_costs(inserted))
        forward_after_commit([log for log, _day in inserted])
    return {id(log) for log, _day in inserted}


def _reporting_days(logs: list[AIUsageLog]) -> list[date]:
    days: dict[datetime, date] = {}  # a batch's calls often share their instant: each is converted once
    return [days[log.occurred_at] if log.occurred_at in days else
            days.setdefault(log.occurred_at, periods.reporting_day(log.occurred_at)) for log in logs]  # fmt: skip


def _added_costs(inserted: list[tuple[AIUsageLog, date]]) -> dict[tuple[int, date], Decimal]:
    """The cost the batch added to each (user, reporting day) counter."""
    added: dict[tuple[int, date], Decimal] = defaultdict(Decimal)
    for log, day in inserted:
        if log.user_id is not None:
            added[(log.user_id, day)] += log.total_cost or 0
    return added


def _announce_crossings(added: dict[tuple[int, date], Decimal]) -> None:
    """Signal each user whose spend today or this month this batch took over an alert threshold."""
    today = periods.today()
    users = {user: cost for (user, day), cost in added.items() if day == today and cost}
    if not users:
        return
    zone = periods.reporting_zone_name()
    month = UserDailySpend.objects.filter(time_zone=zone, user_id__in=users, day__gte=periods.month_start(today),
                                          day__lt=periods.next_month_start(today))  # fmt: skip
    spend: dict[int, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for user_id, day, cost in month.values_list("user_id", "day", "cost"):
        spend[user_id][1] += cost
        if day == today:
            spend[user_id][0] += cost
    for user_id, cost in users.items():
        day_after, month_after = spend[user_id]
        day_limit, month_limit = budgets.user_limits(user_id)
        if not (budgets.near_limit(day_after, day_limit) or budgets.near_limit(month_after, month_limit)):
            continue  # most users: below the lowest threshold, nothing can have been crossed
        if budgets.crossed_threshold(day_after - cost, day_after, day_limit) or budgets.crossed_threshold(
            month_after - cost, month_after, month_limit
        ):
            spend_threshold_crossed.send(sender=AIUsageLog, user_id=user_id)
