"""The query cost budget: an operation's work is estimated before it runs, and one over budget never reaches SQL.

A unit is one reporting day read from the daily summaries. A field costs the days of its range, times the
slices it reads (tokenUsage and usageSummary read three), times what one day costs in the source it must read:
the daily summaries (1), the hourly buckets (24: hourly granularity, another time zone, per-user detail), the
raw logs grouped into a slice (100: a status or session filter, a status dimension, a half-hour zone), or a page
of logs (10: one index range read in order with a count, no grouping, so an all-time page stays affordable). A
range that reaches today also reads the logs written since the last rollup. Aliases and fragments are summed. The
estimate is made from the arguments alone, so `period: ALL` counts as the longest range allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from django.conf import settings
from graphql import ExecutionResult, GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from graphql_api.limits.operation import Operation, RootField, operation_of, read_operation
from usage import periods

COSTS = "_limits_costs"  # where an execution keeps its estimate
DAY_COST = {"daily summaries": 1, "hourly buckets": 24, "log pages": 10, "raw logs": 100}
TAIL_COST = 5  # the logs written since the last rollup: about an hour of logs
SLICES_READ = {
    "usage": 1, "costTimeline": 1, "topUsers": 1, "tokenUsage": 3, "usageSummary": 3, "costliestRequests": 1,
    "usageLogs": 1, "cau": 1, "cauTrend": 1,
}  # fmt: skip
LOG_FIELDS = {"costliestRequests", "usageLogs"}
LOG_SOURCES = {"log pages", "raw logs"}  # they read the unrolled tail as part of the logs
SNAPSHOT_FIELDS = {"cau", "cauTrend"}  # read per-day counters or CAU snapshots, never logs
DEFAULT_DAYS = {"cau": 30, "cauTrend": 90}
# (filtered by provider or model, with every past version): the whole catalog is a few thousand versions, sending
# one unfiltered list takes about as long as a page of logs over a year.
PRICING_COST = {(False, False): 3000, (False, True): 6000, (True, False): 10, (True, True): 20}
# Lists that read no time range: one page of rows (at most 100) read in order with a count, like a page of logs.
PAGE_COST = {"spendLimits": 10, "spendAlerts": 10, "rollupRuns": 10}
ADVICE = (
    "Narrow the range, remove the status/session filter (it makes a query read raw logs), filter prices by "
    "provider or model, or ask for fewer fields per request."
)


@dataclass(frozen=True)
class FieldCost:
    label: str  # "alias: field", or the field's name
    days: int
    source: str
    reads: int
    units: int

    def describe(self) -> str:
        if not self.days:
            return f"{self.label}, reads {self.source} ({self.units:,} units)"
        times = "once" if self.reads == 1 else f"{self.reads} times"
        return f"{self.label}, reads {self.days:,} days of {self.source} {times} ({self.units:,} units)"


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _zone(name: Any) -> ZoneInfo | None:
    try:
        return periods.reporting_zone() if name is None else ZoneInfo(str(name))
    except (ValueError, KeyError, OSError):  # not found, or a tzdata folder ("Europe"); the resolver names it
        return None


def _clamped(days: int) -> int:
    return min(max(days, 1), periods.MAX_REPORT_DAYS)


def range_days(value: dict[str, Any], zone: ZoneInfo, default_days: int = 7) -> tuple[int, bool]:
    """The reporting days a range covers and whether it reaches today, by the rules of analytics.ranges (dates
    win over days, days over a period)."""
    today = datetime.now(UTC).astimezone(zone).date()
    if value.get("start") is not None or value.get("end") is not None:
        first, last = _date(value.get("start")) or today, _date(value.get("end")) or today
        return _clamped((last - first).days + 1), last >= today
    if isinstance(value.get("days"), int):
        return _clamped(value["days"]), True
    period = str(value.get("period") or "").upper()
    named = {"TODAY": 1, "YESTERDAY": 1, "WEEK": 7, "MONTH": today.day, "YEAR": today.timetuple().tm_yday}
    if period == "ALL":
        return periods.MAX_REPORT_DAYS, True
    return named.get(period, default_days), period != "YESTERDAY"


def _source(field: RootField, zone: ZoneInfo) -> str:
    if field.name in SNAPSHOT_FIELDS:
        return "daily summaries"
    arguments = field.arguments
    filters = arguments.get("filter") or {}
    group_by = arguments.get("groupBy") or []
    offset = datetime.now(UTC).astimezone(zone).utcoffset()
    half_hour_zone = offset is not None and offset.total_seconds() % 3600 != 0
    if field.name in LOG_FIELDS:
        return "log pages"
    if filters.get("statuses") or filters.get("sessionId") is not None:
        return "raw logs"
    if "STATUS" in group_by or half_hour_zone:
        return "raw logs"
    per_user = field.name != "topUsers" and ("USER" in group_by or field.selects("activeUsers"))
    if arguments.get("granularity") == "HOUR" or zone.key != periods.reporting_zone_name() or per_user:
        return "hourly buckets"
    return "daily summaries"


def pricing_cost(field: RootField) -> FieldCost:
    """The price list reads no time range: what it costs is the versions it sends back (thousands unfiltered)."""
    filtered = bool(field.arguments.get("provider") or field.arguments.get("model"))
    history = bool(field.arguments.get("includeHistory"))
    units = PRICING_COST[filtered, history]
    label = field.name if field.alias == field.name else f"{field.alias}: {field.name}"
    scope = "one provider's or model's" if filtered else "every model's"
    return FieldCost(label=label, days=0, source=f"{scope} prices", reads=1, units=units)


def field_cost(field: RootField) -> FieldCost | None:
    """The cost of one root field, or None for fields that read no time range."""
    if field.name == "pricing":
        return pricing_cost(field)
    if field.name in PAGE_COST:
        label = field.name if field.alias == field.name else f"{field.alias}: {field.name}"
        return FieldCost(label=label, days=0, source="one page of rows", reads=1, units=PAGE_COST[field.name])
    reads = SLICES_READ.get(field.name)
    if reads is None:
        return None
    if field.name == "cau":
        value = {key: field.arguments.get(key) for key in ("days", "start", "end")}
    else:
        value = field.arguments.get("range") or {}
    zone = _zone(value.get("timeZone"))
    if zone is None:
        return None  # refused by the resolver before it reads anything
    days, reaches_today = range_days(value, zone, DEFAULT_DAYS.get(field.name, 7))
    source = _source(field, zone)
    per_read = days * DAY_COST[source] + (TAIL_COST if reaches_today and source not in LOG_SOURCES else 0)
    label = field.name if field.alias == field.name else f"{field.alias}: {field.name}"
    return FieldCost(label=label, days=days, source=source, reads=reads, units=reads * per_read)


def operation_costs(fields: list[RootField]) -> Iterator[FieldCost]:
    for field in fields:
        cost = field_cost(field)
        if cost is not None:
            yield cost


def costs_of(context: ExecutionContext, operation: Operation) -> list[FieldCost]:
    """The operation's field costs, estimated once per execution: the rate limits and the budget both ask."""
    if COSTS not in context.__dict__:
        context.__dict__[COSTS] = list(operation_costs(operation.fields))
    return cast("list[FieldCost]", context.__dict__[COSTS])


def query_cost(query: str, variables: dict[str, Any] | None = None) -> int:
    """The estimated cost of a query text (for tests and benchmarks)."""
    operation = read_operation(parse(query), variables)
    return 0 if operation is None else sum(cost.units for cost in operation_costs(operation.fields))


def over_budget_message(costs: list[FieldCost], budget: int) -> str | None:
    total = sum(cost.units for cost in costs)
    if total <= budget:
        return None
    costliest = max(costs, key=lambda cost: cost.units)
    return (
        f"this query would cost {total:,} units, over the budget of {budget:,}: the costliest field, "
        f"{costliest.describe()}. {ADVICE}"
    )


class QueryCostBudget(SchemaExtension):
    """Refuses an operation whose estimated cost is over GRAPHQL_MAX_COST before any resolver runs."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        operation = operation_of(context) if context.result is None else None
        if operation is not None:
            budget = settings.GRAPHQL_MAX_COST
            refusal = over_budget_message(costs_of(context, operation), budget)
            if refusal is not None:
                error = GraphQLError(refusal, extensions={"code": "QUERY_TOO_COSTLY", "budget": budget})
                context.result = ExecutionResult(data=None, errors=[error])
        yield
