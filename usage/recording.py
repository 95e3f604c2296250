"""The write path: validate one call, price it, and store it with the user's live spend in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, Literal, NamedTuple

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from usage import budgets, periods, validation
from usage.db import database_available, fetch_one
from usage.events import spend_threshold_crossed
from usage.langsmith_forward import forward_after_commit
from usage.models import AIProviderPricing, AIUsageLog, CallStatus, UsageEventKey, UserDailySpend, scoped_event_id
from usage.partitioning import log_table_partitioned
from usage.pricing import TokenCounts, price_call

LOG_TABLE = AIUsageLog._meta.db_table
SPEND_TABLE = UserDailySpend._meta.db_table
LOG_FIELDS = [f for f in AIUsageLog._meta.concrete_fields if not f.primary_key]
# An event_id its user (or the no-user scope) recorded before inserts nothing and returns no id: the duplicate is
# reported, never stored twice. The conflict target is the unique constraint of the call's scope (naming it spares
# PostgreSQL a check of every other unique index, the primary key's included, on each insert).
_INSERT_LOG = f"""
    INSERT INTO {LOG_TABLE} ({", ".join(str(f.column) for f in LOG_FIELDS)})
    VALUES ({", ".join(["%s"] * len(LOG_FIELDS))})
    ON CONFLICT {{target}} DO NOTHING
    RETURNING id
"""
INSERT_USER_LOG = _INSERT_LOG.format(target="(event_id, user_id)")
INSERT_LOG_WITHOUT_USER = _INSERT_LOG.format(target="(event_id) WHERE user_id IS NULL")
# One atomic increment: concurrent writers for the same user and day never lose each other's cost.
UPSERT_SPEND = f"""
    INSERT INTO {SPEND_TABLE} (user_id, time_zone, day, cost, requests, unpriced_requests)
    {{source}}
    ON CONFLICT (user_id, time_zone, day) DO UPDATE SET
        cost = {SPEND_TABLE}.cost + EXCLUDED.cost,
        requests = {SPEND_TABLE}.requests + 1,
        unpriced_requests = {SPEND_TABLE}.unpriced_requests + EXCLUDED.unpriced_requests
"""
ADD_TO_DAILY_SPEND = UPSERT_SPEND.format(source="VALUES (%s, %s, %s, %s, 1, %s)")
# PostgreSQL does both in one statement, so a call costs one round trip and one commit. It also returns the
# user's spend after the call: the day's counter as updated under its row lock (exact under concurrency) and the
# month's other days, from which save_log tells whether this call crossed an alert threshold.
_ADD_SPEND = f", spend AS ({UPSERT_SPEND.format(source='SELECT %s, %s, %s, %s, 1, %s FROM log')} RETURNING cost)"
SPEND_AND_RESULT = f"""{_ADD_SPEND}
    SELECT log.id, spend.cost, (
        SELECT COALESCE(SUM(other.cost), 0) FROM {SPEND_TABLE} other
        WHERE other.user_id = %s AND other.time_zone = %s AND other.day >= %s AND other.day < %s AND other.day <> %s
    )
    FROM log CROSS JOIN spend
"""
# The same for a call whose budget check has just read the month's other days: only the day's counter comes back.
SPEND_OF_DAY = f"{_ADD_SPEND} SELECT log.id, spend.cost FROM log CROSS JOIN spend"


@cache
def _claim_and_insert_log() -> str:
    """The log insert when the table is partitioned by month (usage.partitioning): the event id, scoped to its
    user, is claimed in its own table in the same statement, and the log is written only if the claim succeeded
    (or there is no id)."""
    typed_values = ", ".join(f"%s::{f.db_type(connection)}" for f in LOG_FIELDS)
    return f"""
    claim AS (
        INSERT INTO {UsageEventKey._meta.db_table} (scoped_id) SELECT %s::varchar WHERE %s::varchar IS NOT NULL
        ON CONFLICT DO NOTHING RETURNING 1
    ),
    log AS (
        INSERT INTO {LOG_TABLE} ({", ".join(str(f.column) for f in LOG_FIELDS)})
        SELECT {typed_values} WHERE %s::varchar IS NULL OR EXISTS (SELECT 1 FROM claim)
        RETURNING id
    )"""


def _insert_log(log: AIUsageLog) -> str:
    return INSERT_LOG_WITHOUT_USER if log.user_id is None else INSERT_USER_LOG


@cache
def _statement_text(then: str, partitioned: bool, insert_log: str) -> str:
    """Built once per process: formatting the full text on every call cost more than some of the work it does."""
    if partitioned:
        return f"WITH {_claim_and_insert_log()} {then}"
    return f"WITH log AS ({insert_log}) {then}"


def _log_statement(log: AIUsageLog, then: str, db: BaseDatabaseWrapper) -> tuple[str, list[Any]]:
    """WITH log AS (insert the log, unless its event_id was seen) followed by `then` (more CTEs, a SELECT), and
    the parameters of the log part."""
    values = _log_values(log, db)
    if log_table_partitioned(db):
        key = scoped_event_id(log.user_id, log.event_id)
        return _statement_text(then, True, ""), [key, key, *values, key]
    return _statement_text(then, False, _insert_log(log)), values


@dataclass(frozen=True)
class RecordResult:
    """What happened to one event: recorded (with the saved log) or a duplicate of an earlier event_id."""

    log: AIUsageLog | None

    @property
    def outcome(self) -> Literal["recorded", "duplicate"]:
        return "recorded" if self.log is not None else "duplicate"

    @property
    def duplicate(self) -> bool:
        return self.log is None


def build_log(
    *,
    user: AbstractBaseUser | int | None,
    feature: Any,
    provider: Any,
    model: Any,
    tokens: TokenCounts,
    occurred_at: Any = None,
    latency_ms: Any = None,
    status: Any = CallStatus.SUCCESS,
    error_message: Any = "",
    session_id: Any = None,
    event_id: Any = None,
    request_meta: Any = None,
    response_meta: Any = None,
) -> AIUsageLog:
    """A validated, priced, unsaved log row. Raises InvalidUsage naming the first bad field."""
    when = timezone.now() if occurred_at is None else validation.check_instant("occurred_at", occurred_at)
    identity = validation.check_identity(
        user=user, feature=feature, provider=provider, model=model, session_id=session_id, event_id=event_id
    )
    return priced_log(
        identity,
        tokens,
        occurred_at=when,
        latency_ms=validation.check_latency(latency_ms),
        status=validation.check_status(status),
        error_message=validation.clip_error_message(error_message),
        request_meta=validation.check_metadata("request_meta", request_meta),
        response_meta=validation.check_metadata("response_meta", response_meta),
    )


Price = tuple[AIProviderPricing | None, Decimal | None]


def priced_within_cap(identity: dict[str, Any], occurred_at: datetime, tokens: TokenCounts) -> Price:
    """(version, cost) of the call; raises InvalidUsage when it costs more than AI_MAX_COST_PER_CALL."""
    version, cost = price_call(identity["provider"], identity["model"], occurred_at, tokens)
    if version is not None and cost is not None:
        validation.check_cost(version, tokens, cost)
    return version, cost


_ALL_COLUMNS = [(f.attname, f) for f in AIUsageLog._meta.concrete_fields]
_PRICING_FIELD = AIUsageLog._meta.get_field("pricing")


def priced_log(identity: dict[str, Any], tokens: TokenCounts, price: Price | None = None, **checked: Any) -> AIUsageLog:
    """The unsaved log of values already validated (an identity from check_identity, tokens, and occurred_at,
    latency_ms, status, error_message, request_meta, response_meta), priced by the version in force then (unless
    `price`, from priced_within_cap for these tokens at that time, is given)."""
    version, cost = priced_within_cap(identity, checked["occurred_at"], tokens) if price is None else price
    values = identity | checked | tokens.__dict__
    values["total_cost"], values["pricing_id"] = cost, None if version is None else version.pk
    # Positional arguments in column order take the model's fast path (half the time of keyword arguments).
    log = AIUsageLog(*[values[name] if name in values else f.get_default() for name, f in _ALL_COLUMNS])
    if version is not None:
        _PRICING_FIELD.set_cached_value(log, version)  # log.pricing without a query, as assigning it would do
    return log


# On PostgreSQL psycopg adapts validated ints, strings, Decimals and aware datetimes itself; Django's per-field
# preparation (several reads of the connection per field, 100+ microseconds a row) is only needed for JSON. Only
# recorded_at computes its value when saved; every other value is the attribute itself.
_LOG_COLUMNS = [
    (f, f.attname, bool(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)),
     isinstance(f, models.JSONField))
    for f in LOG_FIELDS
]  # fmt: skip


def _log_values(log: AIUsageLog, db: BaseDatabaseWrapper | None = None) -> list[Any]:
    db = connections[DEFAULT_DB_ALIAS] if db is None else db
    if db.vendor != "postgresql":
        return [f.get_db_prep_save(f.pre_save(log, add=True), db) for f in LOG_FIELDS]
    stored = log.__dict__  # every column of a log built here is set; reading it skips each field's descriptor
    values = []
    for f, attname, computed, is_json in _LOG_COLUMNS:
        value = f.pre_save(log, add=True) if computed else stored[attname]
        values.append(f.get_db_prep_save(value, db) if is_json and value is not None else value)
    return values


def log_columns(logs: list[AIUsageLog], db: BaseDatabaseWrapper) -> list[list[Any]]:
    """PostgreSQL: the values of many logs as _log_values gives them, one list per column of LOG_FIELDS (a batch's
    statement takes one array per column; building them column by column spares a row list per log)."""
    columns = []
    for f, attname, computed, is_json in _LOG_COLUMNS:
        values = [f.pre_save(log, add=True) for log in logs] if computed else [log.__dict__[attname] for log in logs]
        if is_json:
            values = [None if value is None else f.get_db_prep_save(value, db) for value in values]
        columns.append(values)
    return columns


def _spend_values(log: AIUsageLog, zone: str, day: date) -> list[Any]:
    unpriced = 1 if log.total_cost is None else 0
    return [log.user_id, zone, day, log.total_cost or 0, unpriced]


def _other_days_values(log: AIUsageLog, zone: str, day: date) -> list[Any]:
    return [log.user_id, zone, periods.month_start(day), periods.next_month_start(day), day]


class _Inserted(NamedTuple):
    log_id: int
    spend: tuple[Decimal, Decimal] | None  # (day, month) spend of the user after this call


def _insert(log: AIUsageLog, day: date, check: budgets.BudgetCheck | None) -> _Inserted | None:
    """Insert the log and add it to the user's live spend on reporting `day`, both or neither; None when event_id
    was seen before."""
    db = connections[DEFAULT_DB_ALIAS]  # looked up once: each lookup costs as much as building a parameter list
    if db.vendor == "postgresql" and log.user_id is not None:
        return _insert_with_spend(log, day, check, db)
    with transaction.atomic():
        if db.vendor == "postgresql":
            row = fetch_one(*_log_statement(log, "SELECT id FROM log", db), db)
        else:
            row = fetch_one(_insert_log(log), _log_values(log, db), db)
        if row is None or log.user_id is None:
            return None if row is None else _Inserted(int(row[0]), None)
        with db.cursor() as cursor:
            cursor.execute(ADD_TO_DAILY_SPEND, _spend_values(log, periods.reporting_zone_name(), day))
        day_spend, month_spend, _unpriced = budgets.spend_in_month(log.user_id, day)
    return _Inserted(int(row[0]), (day_spend, month_spend))


def _insert_with_spend(
    log: AIUsageLog, day: date, check: budgets.BudgetCheck | None, db: BaseDatabaseWrapper
) -> _Inserted | None:
    """PostgreSQL, a call with a user: the log and the spend counter in one statement (one round trip)."""
    zone = periods.reporting_zone_name()
    if check is not None and check.day == day:
        # The month's other days, read by the check moments ago, change only if a late event for an earlier day
        # lands in between; the alert job's next run (every minute) covers that rare case.
        statement, params = _log_statement(log, SPEND_OF_DAY, db)
        row = fetch_one(statement, params + _spend_values(log, zone, day), db)
        return None if row is None else _Inserted(int(row[0]), (row[1], check.other_days_spend + row[1]))
    statement, params = _log_statement(log, SPEND_AND_RESULT, db)
    row = fetch_one(statement, params + _spend_values(log, zone, day) + _other_days_values(log, zone, day), db)
    return None if row is None else _Inserted(int(row[0]), (row[1], row[2] + row[1]))


def _announce_crossing(log: AIUsageLog, day: date, spend_after: tuple[Decimal, Decimal] | None) -> None:
    """Tell listeners (the alert job) when this call took today's or this month's spend over 80% or 100%."""
    if spend_after is None or log.user_id is None or not log.total_cost:
        return
    if day != periods.today():
        return
    day_limit, month_limit = budgets.user_limits(log.user_id)
    day_after, month_after = spend_after
    if not (budgets.near_limit(day_after, day_limit) or budgets.near_limit(month_after, month_limit)):
        return  # most calls: below the lowest threshold, nothing can have been crossed
    if budgets.crossed_threshold(day_after - log.total_cost, day_after, day_limit) or budgets.crossed_threshold(
        month_after - log.total_cost, month_after, month_limit
    ):
        spend_threshold_crossed.send(sender=AIUsageLog, user_id=log.user_id)


def save_log(log: AIUsageLog, check: budgets.BudgetCheck | None = None) -> RecordResult:
    """Store one validated log (of a call whose enforced budget `check` was made before it ran, if any). A repeated
    event_id stores nothing and is reported as a duplicate. Raises DatabaseUnavailable when the database cannot be
    reached."""
    day = periods.reporting_day(log.occurred_at)
    with database_available("the call was not recorded"):
        inserted = _insert(log, day, check)
    if inserted is None:
        return RecordResult(None)
    log.pk = inserted.log_id
    log._state.adding = False
    _announce_crossing(log, day, inserted.spend)
    forward_after_commit([log])
    return RecordResult(log)


def record_usage(
    *,
    user: AbstractBaseUser | int | None,
    feature: str,
    provider: str,
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    occurred_at: datetime | None = None,
    latency_ms: int | None = None,
    status: str = CallStatus.SUCCESS,
    error_message: str = "",
    session_id: str | None = None,
    event_id: str | None = None,
    request_meta: dict[str, Any] | None = None,
    response_meta: dict[str, Any] | None = None,
) -> RecordResult:
    """Record a call that already finished. Raises InvalidUsage (a ValueError) and writes nothing on bad input."""
    tokens = validation.check_tokens(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
    )
    log = build_log(
        user=user,
        feature=feature,
        provider=provider,
        model=model,
        tokens=tokens,
        occurred_at=occurred_at,
        latency_ms=latency_ms,
        status=status,
        error_message=error_message,
        session_id=session_id,
        event_id=event_id,
        request_meta=request_meta,
        response_meta=response_meta,
    )
    return save_log(log)
