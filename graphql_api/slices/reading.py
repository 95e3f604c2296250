"""Reading a slice for the API: the caller's scope and range, the measures the query selects, rows in order."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import strawberry

from analytics.ranges import ReportRange, resolve
from analytics.slices import Measures, SliceFilter, SliceQuery, SliceResult, SliceRow
from analytics.timelines import filled, period_starts, row_count
from graphql_api.context import Info
from graphql_api.errors import BadArgumentError, PermissionDeniedError
from graphql_api.permissions import current_user, sees_everyone
from graphql_api.scalars import BigInt, Money
from graphql_api.slices.inputs import Dimension, Granularity, MetricOrder, TimeRange, UsageFilter
from graphql_api.slices.types import Metrics, UsageRow, UsageSlice
from graphql_api.users import users_by_id
from usage.permissions import Action, refusal
from usage.validation import InvalidUsage, parse_id

MAX_ROWS = 10_000


def metrics(m: Measures) -> Metrics:
    requests = m.total_requests
    return Metrics(
        requests=requests,
        successful_requests=m.successful_requests,
        failed_requests=m.failed_requests,
        success_rate=m.success_rate,
        error_rate=m.error_rate,
        input_tokens=BigInt(m.input_tokens),
        output_tokens=BigInt(m.output_tokens),
        cached_input_tokens=BigInt(m.cached_input_tokens),
        reasoning_tokens=BigInt(m.reasoning_tokens),
        total_tokens=BigInt(m.total_tokens),
        cost=Money(m.total_cost),
        avg_cost_per_request=None if m.avg_cost_per_request is None else Money(m.avg_cost_per_request),
        avg_latency_ms=m.avg_latency_ms,
        active_users=len(m.users),
        unpriced_requests=m.unpriced_requests,
    )


def usage_rows(info: Info, rows: list[SliceRow]) -> list[UsageRow]:
    """The API's rows, each with its user (loaded in one query) when the query asks for it."""
    users = users_by_id(row.key.get("user") for row in rows) if selects(info, "user") else {}
    return [usage_row(row, users) for row in rows]


def usage_row(row: SliceRow, users: dict[int, Any]) -> UsageRow:
    key = row.key
    user = key.get("user")
    return UsageRow(
        period=key.get("period"), provider=key.get("provider"), model=key.get("model"), feature=key.get("feature"),
        user_id=None if user is None else strawberry.ID(str(user)), user=users.get(user) if user else None,
        status=key.get("status"), metrics=metrics(row.measures),
    )  # fmt: skip


def report_range(value: TimeRange | None, info: Info, argument: str | None = "range") -> ReportRange:
    """The reporting days of a TimeRange argument (errors name `argument.field`), as far as the caller may see:
    period ALL starts at the first call the caller can see."""
    value = value or TimeRange()
    user = current_user(info)
    try:
        return resolve(
            period=None if value.period is None else value.period.value,
            days=value.days, start=value.start, end=value.end, time_zone=value.time_zone,
            user_ids=None if sees_everyone(user) else (user.pk,),
        )  # fmt: skip
    except InvalidUsage as exc:
        raise BadArgumentError(f"{argument}.{exc.field}" if argument else exc.field, exc.problem) from exc


def scoped_filter(info: Info, value: UsageFilter | None) -> SliceFilter:
    """The caller's filter, narrowed to their own usage unless they may see everyone's."""
    value = value or UsageFilter()
    user = current_user(info)
    parsed = [parse_id(u) for u in value.user_ids or ()]
    user_ids = tuple(u for u in parsed if u is not None)
    if len(user_ids) != len(parsed):
        raise BadArgumentError("filter.userIds", "must be user ids")
    if not sees_everyone(user):
        if any(u != user.pk for u in user_ids):  # refused, never narrowed into an empty answer
            raise PermissionDeniedError(f"filter.userIds: {refusal(user, Action.READ_EVERYONE, 'reading other users')}")
        user_ids = (user.pk,)
    return SliceFilter(
        providers=tuple(value.providers or ()), models=tuple(value.models or ()),
        features=tuple(value.features or ()), user_ids=user_ids, statuses=tuple(value.statuses or ()),
        session_id=value.session_id,
    )  # fmt: skip


def selects(info: Info, name: str) -> bool:
    """Whether the query asks for a field of this name anywhere below the current one."""
    return name in selected_names(info)


# The stored measures each Metrics field is derived from.
MEASURES_OF_FIELD = {
    "requests": ("total_requests",), "successfulRequests": ("successful_requests",),
    "failedRequests": ("failed_requests",), "successRate": ("successful_requests",),
    "errorRate": ("failed_requests",), "inputTokens": ("input_tokens",), "outputTokens": ("output_tokens",),
    "cachedInputTokens": ("cached_input_tokens",), "reasoningTokens": ("reasoning_tokens",),
    "totalTokens": ("input_tokens", "output_tokens"), "cost": ("total_cost",), "avgCostPerRequest": ("total_cost",),
    "avgLatencyMs": ("latency_sum_ms", "latency_count"), "unpricedRequests": ("unpriced_requests",),
}  # fmt: skip
MEASURES_OF_ORDER = {
    "cost": ("total_cost",), "requests": ("total_requests",), "tokens": ("input_tokens", "output_tokens"),
    "errors": ("failed_requests",),
}  # fmt: skip


def selected_names(info: Info) -> set[str]:
    """Every field name the query asks for below the current field (fragments included)."""
    names, pending = set(), list(info.selected_fields)
    while pending:
        current = pending.pop()
        names.add(getattr(current, "name", ""))
        pending.extend(getattr(current, "selections", []))
    return names


def wanted_measures(info: Info, order_by: MetricOrder | None = None) -> frozenset[str]:
    """The stored measures this query reads, for its fields and its ordering."""
    names = selected_names(info)
    wanted = {measure for name in names for measure in MEASURES_OF_FIELD.get(name, ())}
    return frozenset(wanted | set(MEASURES_OF_ORDER.get(order_by.value if order_by else "", ())))


SORT_KEYS = {
    MetricOrder.COST: lambda r: r.measures.total_cost,
    MetricOrder.REQUESTS: lambda r: r.measures.total_requests,
    MetricOrder.TOKENS: lambda r: r.measures.input_tokens + r.measures.output_tokens,
    MetricOrder.ERRORS: lambda r: r.measures.failed_requests,
}


def ordered(result: SliceResult, order_by: MetricOrder | None, granularity: Granularity | None) -> list[SliceRow]:
    rows = sorted(result.rows, key=lambda r: tuple(str(v) for v in r.key.values()))  # stable for ties
    order = order_by or (MetricOrder.PERIOD if granularity else MetricOrder.COST)
    if order is MetricOrder.PERIOD:
        return sorted(rows, key=lambda r: (r.key.get("period") is None, r.key.get("period") or 0))
    return sorted(rows, key=SORT_KEYS[order], reverse=True)


def _ranking(info: Info, group_by: list[Dimension] | None, granularity: Granularity | None,
             order_by: MetricOrder | None, limit: int) -> tuple[tuple[str, ...], int] | None:  # fmt: skip
    """Users ranked by a measure with no totals asked for: the database may keep just the best `limit`."""
    if group_by != [Dimension.USER] or granularity or order_by in (None, MetricOrder.PERIOD) or selects(info, "totals"):
        return None
    assert order_by is not None
    return MEASURES_OF_ORDER[order_by.value], limit


def usage_slice(
    info: Info,
    range: TimeRange | None,
    filter: UsageFilter | None,
    group_by: list[Dimension] | None,
    granularity: Granularity | None,
    order_by: MetricOrder | None,
    limit: int,
    named_users_only: bool = False,
    fill_gaps: bool = False,
) -> UsageSlice:
    if not 1 <= limit <= MAX_ROWS:
        raise BadArgumentError("limit", f"must be between 1 and {MAX_ROWS}, got {limit}")
    window = report_range(range, info)
    dimensions = tuple(d.value for d in group_by or ())
    query = SliceQuery(
        start=window.start, end=window.end, zone=window.zone, group_by=dimensions,
        granularity=None if granularity is None else granularity.value,
        filters=replace(scoped_filter(info, filter), named_users_only=named_users_only),
        with_users=selects(info, "activeUsers"), measures=wanted_measures(info, order_by),
        top=_ranking(info, group_by, granularity, order_by, limit),
    )  # fmt: skip
    result = query.run()
    if fill_gaps and granularity is not None:
        rows = filled_timeline(result, window, granularity, dimensions)[:limit]
    else:
        rows = ordered(result, order_by, granularity)[:limit]
    return UsageSlice(
        start=window.start, end=window.end, time_zone=window.zone.key, source=result.source,
        totals=metrics(result.totals), rows=usage_rows(info, rows),
    )  # fmt: skip


def filled_timeline(
    result: SliceResult, window: ReportRange, granularity: Granularity, dimensions: tuple[str, ...]
) -> list[SliceRow]:
    """One row per period of the range and group, zeros included; refused when that is more rows than an answer
    may hold."""
    periods = period_starts(window.first, window.last, window.zone, granularity.value)
    count = row_count(result, periods, dimensions)
    if count > MAX_ROWS:
        raise BadArgumentError(
            "granularity",
            f"{len(periods)} periods x {count // len(periods)} groups is {count} rows, more than {MAX_ROWS}; "
            "choose a shorter range, a coarser granularity or fewer groups",
        )
    return filled(result, periods, dimensions)
