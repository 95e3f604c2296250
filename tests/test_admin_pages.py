"""The staff analytics pages and admin lists: who may open them, and that every figure equals the logs'."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.log_admin import CappedCountPaginator
from analytics.rollup import run_rollup
from usage import periods
from usage.alerts import send_spend_alerts
from usage.catalog import CatalogError
from usage.models import AIUsageLog, PricingSync, SpendAlert, UserSpendLimit
from usage.recording import record_usage
from usage.repricing import sync_prices_and_reprice
from usage.tracker import AIUsageTracker

PAGES = ["/admin/ai-analytics/", "/admin/ai-analytics/users/", "/admin/ai-analytics/system/"]
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Call:
    user: str
    model: str
    feature: str
    input_tokens: int
    output_tokens: int
    days_ago: int  # 0: today, 1: yesterday
    status: str = "success"
    latency_ms: int = 500

    @property
    def cost(self) -> Decimal | None:
        if self.model == "mystery":
            return None
        return (self.input_tokens * Decimal("2.00") + self.output_tokens * Decimal("8.00")) / MILLION


CALLS = [
    Call("alice", "acme-1", "chat", 1000, 500, 0, latency_ms=300),
    Call("alice", "acme-1", "chat", 2000, 100, 0, latency_ms=700),
    Call("bob", "acme-1", "search", 4000, 100, 0, status="error", latency_ms=1500),
    Call("bob", "mystery", "search", 50, 5, 0),
    Call("carol", "acme-1", "chat", 4000, 1000, 1),
    Call("alice", "acme-1", "summarise", 100, 10, 1),
    Call("carol", "acme-1", "chat", 7000, 700, 10),  # outside the 7-day window, inside 30 days
]


def when(days_ago: int) -> Any:
    """An instant on that reporting day: a second ago for today, midday for earlier days."""
    if days_ago == 0:
        return timezone.now() - timedelta(seconds=1)
    day = periods.today() - timedelta(days=days_ago)
    return timezone.make_aware(
        timezone.datetime.combine(day, timezone.datetime.min.time()), periods.reporting_zone()
    ) + (timedelta(hours=12))


def record(call: Call, users: dict[str, Any], index: int) -> None:
    record_usage(
        user=users[call.user], feature=call.feature, provider="acme", model=call.model,
        input_tokens=call.input_tokens, output_tokens=call.output_tokens, occurred_at=when(call.days_ago),
        latency_ms=call.latency_ms, status=call.status, error_message="boom" if call.status != "success" else "",
        event_id=f"page-{index}",
    )  # fmt: skip


@pytest.fixture
def users(db: None) -> dict[str, Any]:
    model = get_user_model()
    return {name: model.objects.create_user(name, f"{name}@example.com", "pw") for name in ("alice", "bob", "carol")}


@pytest.fixture
def calls(users: dict[str, Any], make_price: Any) -> dict[str, Any]:
    """All calls but the last two rolled up; the last two are the unrolled tail the pages must still count."""
    make_price()
    for index, call in enumerate(CALLS[:-2]):
        record(call, users, index)
    run_rollup()
    for index, call in enumerate(CALLS[-2:], start=len(CALLS) - 2):
        record(call, users, index)
    return users


@pytest.fixture
def admin_user(db: None) -> Any:
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff_member(name: str, with_permission: bool) -> Any:
    user = get_user_model().objects.create_user(name, f"{name}@example.com", "pw", is_staff=True)
    if with_permission:
        user.user_permissions.add(Permission.objects.get(codename="view_ai_analytics"))
    return user


# --- who may open the pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitors_are_sent_to_the_admin_login(db: None, page: str) -> None:
    response = Client().get(page)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={page}"


@pytest.mark.parametrize("page", PAGES)
def test_a_logged_in_user_who_is_not_staff_is_refused(users: dict[str, Any], page: str) -> None:
    response = logged_in(users["alice"]).get(page)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={page}"
    login_page = logged_in(users["alice"]).get(response["Location"])
    assert b"You are authenticated as alice, but are not authorized to access this page" in login_page.content


@pytest.mark.parametrize("page", PAGES)
def test_staff_without_the_analytics_permission_get_403(db: None, page: str) -> None:
    response = logged_in(staff_member("sam", with_permission=False)).get(page)
    assert response.status_code == 403


@pytest.mark.parametrize("page", PAGES)
def test_staff_with_the_permission_and_superusers_see_the_pages(admin_user: Any, page: str) -> None:
    assert logged_in(staff_member("ann", with_permission=True)).get(page).status_code == 200
    assert logged_in(admin_user).get(page).status_code == 200


def test_the_admin_home_links_the_pages_only_for_analytics_viewers(db: None) -> None:
    viewer = logged_in(staff_member("ann", with_permission=True)).get("/admin/").content.decode()
    assert "AI Gateway Analytics" in viewer
    for page in PAGES:
        assert f'href="{page}"' in viewer
    other = logged_in(staff_member("sam", with_permission=False)).get("/admin/").content.decode()
    assert "AI Gateway Analytics" not in other


def test_a_bad_window_is_refused_with_the_parameter_named(admin_user: Any) -> None:
    response = logged_in(admin_user).get("/admin/ai-analytics/?days=8")
    assert response.status_code == 400
    assert response.content.decode() == "days: must be one of 7, 30, 90, got '8'"
    bad_status = logged_in(admin_user).get("/admin/ai-analytics/users/?status=broke")
    assert bad_status.content.decode() == "status: must be one of all, warning, exceeded, ok, got 'broke'"


# --- the dashboard ----------------------------------------------------------------------------------------


def priced_sum(selected: list[Call]) -> Decimal:
    return sum((call.cost for call in selected if call.cost is not None), Decimal(0))


def spent(user: str, days_ago: int | None = None) -> Decimal:
    """A user's spend on one day, or this month (days_ago None), from the call list."""
    today = periods.today()

    def counted(call: Call) -> bool:
        day = today - timedelta(days=call.days_ago)
        return call.days_ago == days_ago if days_ago is not None else day.replace(day=1) == today.replace(day=1)

    return priced_sum([call for call in CALLS if call.user == user and counted(call)])


def test_dashboard_figures_equal_the_logs(admin_user: Any, calls: dict[str, Any]) -> None:
    response = logged_in(admin_user).get("/admin/ai-analytics/")
    week = [call for call in CALLS if call.days_ago < 7]
    totals = response.context["totals"]
    assert totals.total_requests == 6
    assert totals.total_cost == priced_sum(week) == Decimal("0.03588")
    assert totals.total_tokens == sum(call.input_tokens + call.output_tokens for call in week) == 12865
    assert totals.failed_requests == 1
    assert totals.error_rate == Decimal("0.1667")
    assert totals.unpriced_requests == 1
    assert totals.avg_latency_ms == Decimal("666.7")  # (300 + 700 + 1500 + 500 + 500 + 500) / 6, to 0.1 ms
    board = response.context["board"]
    assert board.today.total_cost == priced_sum([c for c in CALLS if c.days_ago == 0]) == Decimal("0.0196")
    assert board.yesterday.total_cost == priced_sum([c for c in CALLS if c.days_ago == 1]) == Decimal("0.01628")
    assert board.today.total_requests == 4
    assert board.yesterday.total_requests == 2
    html = response.content.decode()
    assert 'data-metric="total_cost" data-value="0.03588' in html
    assert 'data-metric="requests" data-value="6"' in html


def test_dashboard_top_users_are_todays_spenders_linking_to_their_admin_page(
    admin_user: Any, calls: dict[str, Any]
) -> None:
    response = logged_in(admin_user).get("/admin/ai-analytics/")
    top = [(s.username, s.spend, s.requests) for s in response.context["board"].top_spenders]
    assert top == [("alice", Decimal("0.0108"), 2), ("bob", Decimal("0.0088"), 2)]
    alice = calls["alice"]
    assert f'href="/admin/auth/user/{alice.pk}/change/">alice</a>' in response.content.decode()


def test_dashboard_providers_charts_cau_and_recent_activity(admin_user: Any, calls: dict[str, Any]) -> None:
    response = logged_in(admin_user).get("/admin/ai-analytics/?days=30")
    providers = [(name, m.total_requests, m.total_cost) for name, m in response.context["providers"]]
    assert providers == [("acme", 7, priced_sum(CALLS))]
    assert priced_sum(CALLS) == Decimal("0.05548")
    html = response.content.decode()
    assert '<div class="ai-bar" data-label="acme" data-value="0.05548' in html  # the provider chart
    assert html.count('<div class="ai-bar" data-label="20') == 30  # a column for each day of the window
    assert f'data-label="{periods.today().isoformat()}" data-value="0.0196' in html
    for figure in response.context["board"].cau:
        expected = AIUsageTracker.get_cau(days=figure.days)
        assert (figure.cau, figure.active_users, figure.total_cost) == (
            expected["cau"], expected["active_users"], expected["total_cost"]
        )  # fmt: skip
    assert [f.active_users for f in response.context["board"].cau] == [3, 3, 3]
    recent = response.context["board"].recent
    assert len(recent) == 7
    assert recent[0].occurred_at >= recent[-1].occurred_at


# --- user spend monitoring ---------------------------------------------------------------------------------


@pytest.fixture
def limits(calls: dict[str, Any]) -> None:
    """alice over her daily limit (108%), bob at 88% of his, carol fine."""
    UserSpendLimit.objects.create(user=calls["alice"], daily_limit=Decimal("0.01"))
    UserSpendLimit.objects.create(user=calls["bob"], daily_limit=Decimal("0.01"))


def test_users_page_shows_every_user_with_spend_limits_and_status(admin_user: Any, limits: None) -> None:
    response = logged_in(admin_user).get("/admin/ai-analytics/users/")
    rows = {row.username: row.spend for row in response.context["page"].object_list}
    assert set(rows) == {"alice", "bob", "carol", "root"}
    assert (rows["alice"].daily.spend, rows["alice"].daily.limit, rows["alice"].daily.percent) == (
        Decimal("0.0108"), Decimal("0.01"), Decimal("108.00")
    )  # fmt: skip
    assert rows["alice"].monthly.spend == spent("alice")
    assert rows["carol"].monthly.spend == spent("carol")
    assert rows["alice"].status == "EXCEEDED"
    assert (rows["bob"].daily.spend, rows["bob"].daily.percent, rows["bob"].status) == (
        Decimal("0.0088"), Decimal("88.00"), "WARNING"
    )  # fmt: skip
    assert response.context["counts"] == {"all": 4, "ok": 2, "warning": 1, "exceeded": 1}
    html = response.content.decode()
    assert 'class="ai-bar-fill ai-over" style="width: 100.0%"' in html  # alice's daily bar: red, full
    assert 'class="ai-bar-fill ai-warn" style="width: 88.0%"' in html  # bob's daily bar: yellow


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=exceeded", ["alice"]),
        ("status=warning", ["bob"]),
        ("status=ok&o=username", ["carol", "root"]),
        ("q=BO", ["bob"]),
        ("q=example.com&o=username", ["alice", "bob", "carol", "root"]),
        ("o=daily", ["alice", "bob", "root", "carol"]),  # equal spend: in the order the users were created
    ],
)
def test_users_page_filters_search_and_sorting(admin_user: Any, limits: None, query: str, expected: list[str]) -> None:
    response = logged_in(admin_user).get(f"/admin/ai-analytics/users/?{query}")
    assert [row.username for row in response.context["page"].object_list] == expected


def test_users_page_has_no_cap_and_pages_through_everyone(admin_user: Any, calls: dict[str, Any]) -> None:
    model = get_user_model()
    model.objects.bulk_create([model(username=f"user{n:03}", email=f"u{n}@example.com") for n in range(120)])
    client = logged_in(admin_user)
    seen = []
    for page in (1, 2, 3):
        response = client.get(f"/admin/ai-analytics/users/?o=username&p={page}")
        seen += [row.username for row in response.context["page"].object_list]
    assert len(seen) == 124 == len(set(seen))
    assert response.context["page"].paginator.num_pages == 3


def test_users_csv_export_holds_the_filtered_list_exactly(admin_user: Any, limits: None) -> None:
    response = logged_in(admin_user).get("/admin/ai-analytics/users/?status=exceeded&format=csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="ai-user-spend-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    today = periods.today().isoformat()
    alice = get_user_model().objects.get(username="alice").pk
    month = spent("alice")
    assert rows == [
        ["user_id", "username", "email", "day", "daily_spend", "daily_limit", "daily_percent", "monthly_spend",
         "monthly_limit", "monthly_percent", "status", "unpriced_calls_this_month"],
        [str(alice), "alice", "alice@example.com", today, "0.0108", "0.01", "108", f"{month.normalize():f}", "100",
         f"{(month * 100 / 100).quantize(Decimal('0.01')).normalize():f}", "EXCEEDED", "0"],
    ]  # fmt: skip


# --- system metrics ---------------------------------------------------------------------------------------


def test_system_page_breaks_down_features_models_and_unpriced_calls(admin_user: Any, calls: dict[str, Any]) -> None:
    response = logged_in(admin_user).get("/admin/ai-analytics/system/?days=30")
    features = {name: (m.total_requests, m.total_cost, m.failed_requests) for name, m in response.context["features"]}
    for feature in ("chat", "search", "summarise"):
        selected = [call for call in CALLS if call.feature == feature]
        failed = sum(call.status != "success" for call in selected)
        assert features[feature] == (len(selected), priced_sum(selected), failed)
    models = {(p, m): (measures.total_requests, measures.unpriced_requests) for p, m, measures in
              response.context["models"]}  # fmt: skip
    assert models == {("acme", "acme-1"): (6, 0), ("acme", "mystery"): (1, 1)}
    unpriced = [(row.provider, row.model, row.calls) for row in response.context["unpriced"]]
    assert unpriced == [("acme", "mystery", 1)]
    assert [run.outcome for run in response.context["rollups"]] == ["succeeded"]
    tasks = sorted(schedule.task for schedule in response.context["schedules"])
    assert tasks == ["tasks.compute_cau", "tasks.import_langsmith_runs", "tasks.rollup_usage",
                     "tasks.send_spend_alerts", "tasks.sync_ai_pricing"]  # fmt: skip


def test_a_failed_pricing_sync_is_recorded_with_its_error(admin_user: Any) -> None:
    with pytest.raises(CatalogError) as raised:
        sync_prices_and_reprice(source="/nowhere.json", trigger="command")
    message = (
        "could not read the price catalog from /nowhere.json: [Errno 2] No such file or directory: '/nowhere.json'"
    )
    assert str(raised.value) == message
    sync = PricingSync.objects.get()
    assert (sync.trigger, sync.succeeded, sync.added) == ("command", False, 0)
    assert sync.error == f"CatalogError: {message}"
    assert sync.finished_at is not None
    page = logged_in(admin_user).get("/admin/ai-analytics/system/")
    assert list(page.context["syncs"]) == [sync]


# --- model admins -----------------------------------------------------------------------------------------


def test_log_list_shows_statistics_of_the_filtered_rows(admin_user: Any, calls: dict[str, Any]) -> None:
    response = logged_in(admin_user).get("/admin/usage/aiusagelog/?feature=chat")
    chat = [call for call in CALLS if call.feature == "chat"]
    stats = response.context["log_statistics"]
    assert stats["calls"] == len(chat) == 4
    assert stats["cost"] == priced_sum(chat)
    assert (stats["input_tokens"], stats["output_tokens"]) == (14000, 2300)
    assert (stats["failed"], stats["unpriced"], stats["max_latency"]) == (0, 0, 700)


def test_unfiltered_log_list_totals_every_log_without_scanning_them(admin_user: Any, calls: dict[str, Any]) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = logged_in(admin_user).get("/admin/usage/aiusagelog/")
    stats = response.context["log_statistics"]
    assert (stats["calls"], stats["cost"], stats["failed"], stats["unpriced"]) == (7, priced_sum(CALLS), 1, 1)
    assert (stats["input_tokens"], stats["output_tokens"], stats["max_latency"]) == (18150, 2415, 1500)
    assert stats["input_tokens"] == sum(call.input_tokens for call in CALLS)
    over_logs = [q["sql"] for q in queries if 'FROM "usage_aiusagelog"' in q["sql"]]
    assert [sql for sql in over_logs if "DISTINCT" in sql and "WHERE" not in sql] == []
    assert [sql for sql in over_logs if "SUM(" in sql and "WHERE" not in sql] == []  # totals from the summaries
    assert '<a href="?model=acme-1"' in response.content.decode()  # filter choices, from the daily summaries
    assert '<span id="log-count">7 AI usage logs</span>' in response.content.decode()  # exact below the cap


def test_log_list_counts_at_most_a_hundred_pages(admin_user: Any) -> None:
    cap = CappedCountPaginator.COUNT_CAP
    now = timezone.now()
    fields = {"feature": "bulk", "provider": "acme", "model": "acme-1", "input_tokens": 1, "output_tokens": 1}
    logs = (AIUsageLog(occurred_at=now - timedelta(seconds=i), **fields) for i in range(cap + 50))
    AIUsageLog.objects.bulk_create(logs, batch_size=2000)
    with CaptureQueriesContext(connection) as queries:
        first = logged_in(admin_user).get("/admin/usage/aiusagelog/")
    changelist = first.context["cl"]
    assert (changelist.result_count, changelist.paginator.num_pages, changelist.paginator.capped) == (cap, 100, True)
    assert (
        f'<span id="log-count">more than {cap} AI usage logs (filter to narrow the list)</span>'
        in first.content.decode()
    )
    log_counts = [q["sql"] for q in queries if "COUNT(" in q["sql"] and 'FROM "usage_aiusagelog"' in q["sql"]]
    assert [sql for sql in log_counts if "WHERE" not in sql and "LIMIT" not in sql] == []  # no count of every log
    (capped_count,) = [sql for sql in log_counts if f"LIMIT {cap + 1}" in sql]
    assert "ORDER BY" not in capped_count  # any 10,001 rows will do: no sort of the newest first
    last = logged_in(admin_user).get("/admin/usage/aiusagelog/?p=100")
    assert len(last.context["cl"].result_list) == 100  # the last page number shown is a full page


def test_log_csv_export_follows_the_list_filters(admin_user: Any, calls: dict[str, Any]) -> None:
    response = logged_in(admin_user).get("/admin/usage/aiusagelog/export/?status__exact=error")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    assert (rows[0]["user"], rows[0]["feature"], rows[0]["status"], rows[0]["input_tokens"]) == (
        "bob", "search", "error", "4000"
    )  # fmt: skip
    assert Decimal(rows[0]["total_cost"]) == Decimal("0.0088")
    unpriced = logged_in(admin_user).get("/admin/usage/aiusagelog/export/?priced=no")
    exported = list(csv.DictReader(io.StringIO(b"".join(unpriced.streaming_content).decode())))
    assert [(row["model"], row["total_cost"]) for row in exported] == [("mystery", "")]


def test_reset_alerts_forgets_only_the_current_periods(admin_user: Any, limits: None) -> None:
    send_spend_alerts()
    alice = get_user_model().objects.get(username="alice")
    old = SpendAlert.objects.create(
        user=alice, period="month", period_start=periods.month_start(periods.today()) - timedelta(days=40),
        threshold=100, spend=Decimal(1), limit=Decimal(1),
    )  # fmt: skip
    assert SpendAlert.objects.filter(user=alice).count() == 3  # today's 80% (superseded) and 100%, and the old one
    limit = UserSpendLimit.objects.get(user=alice)
    response = logged_in(admin_user).post(
        "/admin/usage/userspendlimit/", {"action": "reset_alerts", "_selected_action": [limit.pk]}
    )
    assert response.status_code == 302
    assert list(SpendAlert.objects.filter(user=alice)) == [old]
    assert SpendAlert.objects.filter(user__username="bob").count() == 1  # bob's were not selected


def test_price_list_links_each_version_to_its_model_history(admin_user: Any, make_price: Any) -> None:
    make_price(model="acme-2")
    html = logged_in(admin_user).get("/admin/usage/aiproviderpricing/").content.decode()
    assert 'href="/admin/usage/aiproviderpricing/?provider=acme&amp;model=acme-2">all versions</a>' in html
    history = logged_in(admin_user).get("/admin/usage/aiproviderpricing/?provider=acme&model=acme-2")
    assert [row.model for row in history.context["cl"].result_list] == ["acme-2"]


def test_log_export_is_refused_to_non_staff(users: dict[str, Any]) -> None:
    response = logged_in(users["alice"]).get("/admin/usage/aiusagelog/export/")
    assert response.status_code == 302
    assert AIUsageLog.objects.count() == 0
