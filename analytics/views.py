"""Staff pages under /admin/ai-analytics/: the dashboard, user spend monitoring and system metrics.

Thin views: each reads from analytics.dashboard or usage.budgets and renders an admin-styled template.
Anonymous visitors go to the admin login; a logged-in user who is not staff is refused there too; staff need to
be superusers or hold usage.view_ai_analytics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import strip_tags

from analytics import charts
from analytics.csv_safety import SafeCsvWriter
from analytics.dashboard import (
    WINDOWS,
    dashboard,
    recent_pricing_syncs,
    recent_rollups,
    sum_by,
    unpriced_models,
    window_figures,
)
from analytics.job_runs import schedules_with_last_run
from analytics.slices import Measures
from usage import periods
from usage.budgets import SPEND_ORDERINGS, SpendStatus, UserSpendRow, every_user_spend
from usage.langsmith import langsmith_status
from usage.money import cost_with_unpriced, for_people
from usage.permissions import Action, may_in_admin

USERS_PER_PAGE = 50
STATUS_FILTERS = {"all": None, "warning": SpendStatus.WARNING.value, "exceeded": SpendStatus.EXCEEDED.value,
                  "ok": SpendStatus.OK.value}  # fmt: skip
STATUS_LABELS = [("all", "All"), ("warning", "⚠ Warning"), ("exceeded", "✗ Exceeded"), ("ok", "✓ OK")]
View = Callable[..., HttpResponse]


def can_view_analytics(user: Any) -> bool:
    return may_in_admin(user, Action.READ_EVERYONE)


def analytics_page(view: View) -> View:
    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_view_analytics(request.user):
            raise PermissionDenied("Viewing AI analytics needs the usage.view_ai_analytics permission.")
        return view(request, *args, **kwargs)

    return admin.site.admin_view(checked)


def _page(request: HttpRequest, template: str, title: str, **context: Any) -> HttpResponse:
    context |= admin.site.each_context(request) | {"title": title, "reporting_zone": periods.reporting_zone_name()}
    return render(request, f"admin/ai_analytics/{template}", context)


class BadParameter(ValueError):
    pass


def _days(request: HttpRequest) -> int:
    raw = request.GET.get("days", "7")
    if not raw.isdigit() or int(raw) not in WINDOWS:
        raise BadParameter(f"days: must be one of {', '.join(map(str, WINDOWS))}, got {raw!r}")
    return int(raw)


def _choice(request: HttpRequest, name: str, choices: Any, default: str) -> str:
    value = request.GET.get(name, default)
    if value not in choices:
        raise BadParameter(f"{name}: must be one of {', '.join(choices)}, got {value!r}")
    return value


def bad_parameters(view: View) -> View:
    """A bad query parameter answers 400 with the parameter and the problem, not a page of wrong figures."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except BadParameter as exc:
            return HttpResponseBadRequest(str(exc), content_type="text/plain")

    return guarded


def unpriced_note(measures: Measures) -> str:
    """A chart's value for a group with unpriced calls (plain text: the chart escapes it)."""
    return strip_tags(cost_with_unpriced(measures.total_cost, measures.unpriced_requests, measures.total_requests))


@analytics_page
@bad_parameters
def dashboard_view(request: HttpRequest) -> HttpResponse:
    days = _days(request)
    board = dashboard(days)
    providers = board.figures.by("provider")
    models = board.figures.by("model")
    daily = board.figures.daily
    return _page(
        request, "dashboard.html", "AI Analytics Dashboard",
        days=days, windows=WINDOWS, board=board, totals=board.figures.totals, providers=providers,
        langsmith=langsmith_status(),
        cost_chart=charts.columns("Cost per day (USD)", [(d.isoformat(), m.total_cost) for d, m in daily],
                                  for_people, charts.exact_money),
        provider_chart=charts.horizontal_bars(
            "Cost by provider", [(p, m.total_cost) for p, m in providers], for_people, charts.exact_money,
            "ai-providers", notes={p: unpriced_note(m) for p, m in providers if m.unpriced_requests},
        ),
        model_chart=charts.horizontal_bars(
            "Tokens by model", sorted(((name, m.total_tokens) for name, m in models), key=lambda r: -r[1])[:10],
            charts.tokens, charts.exact_tokens, "ai-models",
        ),
    )  # fmt: skip


@analytics_page
@bad_parameters
def users_view(request: HttpRequest) -> HttpResponse:
    status = _choice(request, "status", STATUS_FILTERS, "all")
    order = _choice(request, "o", SPEND_ORDERINGS, "percent")
    search = request.GET.get("q", "").strip()
    everyone = every_user_spend(search=search or None, order=order)
    counts = Counter(row.spend.status.value for row in everyone)
    wanted = STATUS_FILTERS[status]
    rows = [row for row in everyone if wanted is None or row.spend.status.value == wanted]
    if request.GET.get("format") == "csv":
        return _spend_csv(rows)
    page = Paginator(rows, USERS_PER_PAGE).get_page(request.GET.get("p"))
    return _page(
        request, "users.html", "User AI Spend Monitoring",
        page=page, status=status, status_labels=STATUS_LABELS, order=order, search=search, total=len(everyone),
        counts={"all": len(everyone), "ok": counts["OK"], "warning": counts["WARNING"], "exceeded": counts["EXCEEDED"]},
        query=_query(request, drop=("p", "format")),
    )  # fmt: skip


def _query(request: HttpRequest, drop: tuple[str, ...]) -> str:
    kept = request.GET.copy()
    for name in drop:
        kept.pop(name, None)
    return kept.urlencode()


CSV_COLUMNS = ["user_id", "username", "email", "day", "daily_spend", "daily_limit", "daily_percent",
               "monthly_spend", "monthly_limit", "monthly_percent", "status", "unpriced_calls_this_month"]  # fmt: skip


def plain(amount: Decimal | None) -> str:
    """An exact amount without exponent or trailing zeros (SQLite hands some back padded to 15 digits)."""
    if amount is None:
        return ""
    text = f"{amount:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _spend_csv(rows: list[UserSpendRow]) -> HttpResponse:
    """The filtered list in full (every page), amounts exact as stored."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="ai-user-spend-{stamp}.csv"'
    writer = SafeCsvWriter(response)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        daily, monthly = row.spend.daily, row.spend.monthly
        writer.writerow([
            row.user_id, row.username, row.email, row.spend.day.isoformat(),
            plain(daily.spend), plain(daily.limit), plain(daily.percent),
            plain(monthly.spend), plain(monthly.limit), plain(monthly.percent),
            row.spend.status.value, row.spend.unpriced_requests_this_month,
        ])  # fmt: skip
    return response


@analytics_page
@bad_parameters
def system_view(request: HttpRequest) -> HttpResponse:
    days = _days(request)
    figures = window_figures(days, group_by=("provider", "model", "feature"))
    models = [(provider, model, m) for (provider, model), m in sum_by(figures.result.rows, "provider", "model")]
    return _page(
        request, "system.html", "AI System Metrics",
        days=days, windows=WINDOWS, totals=figures.totals, features=figures.by("feature"),
        models=models, unpriced=unpriced_models(), rollups=recent_rollups(),
        syncs=recent_pricing_syncs(), schedules=schedules_with_last_run(), langsmith=langsmith_status(),
    )  # fmt: skip
