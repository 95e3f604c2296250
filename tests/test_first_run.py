"""The first run shows the demo data everywhere at once, and the system page shows each job's run as soon as it ran."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Min
from django.test import Client

import tasks
from analytics.models import CAUSnapshot, JobRun, RollupRun
from usage import periods
from usage.catalog import CatalogError
from usage.models import AIUsageLog


@pytest.fixture
def staff(db: None) -> Any:
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def last_runs(client: Client) -> dict[str, str]:
    """The system page's "Last run" of each job, by task name."""
    schedules = client.get("/admin/ai-analytics/system/").context["schedules"]
    return {s.task: s.last_outcome or ("never" if s.last_run_at is None else "beat") for s in schedules}


def test_bootstrap_rolls_up_and_snapshots_cau_over_every_demo_day(staff: Any) -> None:
    call_command("bootstrap", stdout=StringIO())
    first_day = periods.reporting_day(AIUsageLog.objects.aggregate(first=Min("occurred_at"))["first"])
    today = periods.today()
    days = [first_day + timedelta(days=n) for n in range((today - first_day).days + 1)]
    assert list(RollupRun.objects.values_list("outcome", flat=True)) == ["succeeded", "succeeded"]  # CAU's own too
    query = {"query": "{ cauTrend(windowDays: 90, range: {days: 90}) { date activeUsers } }"}
    trend = logged_in(staff).post("/graphql/", query, content_type="application/json").json()["data"]["cauTrend"]
    assert [point["date"] for point in trend if point["activeUsers"]] == [day.isoformat() for day in days]
    assert CAUSnapshot.objects.count() == 3 * len(days)  # windows of 7, 30 and 90 days
    assert b"No rollup has run yet" not in logged_in(staff).get("/admin/ai-analytics/system/").content
    assert last_runs(logged_in(staff)) == {
        "tasks.compute_cau": "succeeded", "tasks.rollup_usage": "succeeded", "tasks.send_spend_alerts": "never",
        "tasks.sync_ai_pricing": "never", "tasks.import_langsmith_runs": "never",
    }  # fmt: skip


def test_a_second_bootstrap_runs_no_job_again(staff: Any) -> None:
    call_command("bootstrap", stdout=StringIO())
    runs = list(JobRun.objects.values_list("task", "started_at"))
    call_command("bootstrap", stdout=StringIO())
    assert list(JobRun.objects.values_list("task", "started_at")) == runs


def test_the_system_page_shows_each_job_run_and_its_outcome_as_soon_as_it_ends(staff: Any) -> None:
    client = logged_in(staff)
    tasks.send_spend_alerts.delay()
    with pytest.raises(CatalogError):
        tasks.sync_ai_pricing.delay(source="/nowhere.json")
    assert last_runs(client) == {
        "tasks.compute_cau": "never", "tasks.rollup_usage": "never", "tasks.send_spend_alerts": "succeeded",
        "tasks.sync_ai_pricing": "failed", "tasks.import_langsmith_runs": "never",
    }  # fmt: skip
    alerts = JobRun.objects.get(task="tasks.send_spend_alerts")
    assert alerts.finished_at is not None and alerts.started_at <= alerts.finished_at
    page = client.get("/admin/ai-analytics/system/").content.decode()
    assert f"{alerts.finished_at:%Y-%m-%d %H:%M:%S} (succeeded)" in page
