"""Staff see the jobs' records in admin: runs, summaries, snapshots and alerts, and can resend waiting alerts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core import mail
from django.urls import reverse
from django.utils import timezone

from analytics.cau import refresh_cau_snapshots
from usage.models import AlertPeriod, SpendAlert
from usage.recording import record_usage

PAGES = [
    ("analytics", "rolluprun", "succeeded"),
    ("analytics", "useraicostsummary", "alice"),
    ("analytics", "usermonthlyaicostsummary", "alice"),
    ("analytics", "usagehourlybucket", "acme-1"),
    ("analytics", "dailyusagesummary", "acme-1"),
    ("analytics", "causnapshot", "90"),
    ("usage", "spendalert", "waiting (1 attempts): SMTPServerDisconnected: gone"),
]


def test_job_records_are_listed_read_only(admin_client: Any, alice: Any, make_price: Any) -> None:
    make_price()
    record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=1000)
    refresh_cau_snapshots()
    SpendAlert.objects.create(
        user=alice, period=AlertPeriod.DAY, period_start=timezone.localdate(), threshold=80,
        spend=Decimal("8"), limit=Decimal("10"), attempts=1, last_error="SMTPServerDisconnected: gone",
    )  # fmt: skip
    for app_label, model, shown in PAGES:
        page = admin_client.get(reverse(f"admin:{app_label}_{model}_changelist"))
        assert page.status_code == 200 and shown in page.content.decode(), model
        assert admin_client.get(reverse(f"admin:{app_label}_{model}_add")).status_code == 403


def test_staff_can_send_a_waiting_alert_now(admin_client: Any, alice: Any) -> None:
    alert = SpendAlert.objects.create(
        user=alice, period=AlertPeriod.MONTH, period_start=timezone.localdate().replace(day=1), threshold=100,
        spend=Decimal("12.5"), limit=Decimal("10"), attempts=3, last_error="ConnectionRefusedError: refused",
    )  # fmt: skip
    page = admin_client.post(
        reverse("admin:usage_spendalert_changelist"),
        {"action": "retry_now", "_selected_action": [alert.pk]},
        follow=True,
    )
    assert "1 sent, 0 failed" in page.content.decode()
    alert.refresh_from_db()
    assert alert.sent_at is not None and alert.attempts == 4
    subject = f"AI spend alert: alice reached 100% of the monthly limit for {alert.period_start:%Y-%m}"
    # The user's copy, and the staff copy to the superuser (AI_SPEND_ALERT_RECIPIENTS is not set).
    assert [(m.subject, m.to) for m in mail.outbox] == [
        (subject, ["alice@example.com"]),
        (subject, ["admin@example.com"]),
    ]
