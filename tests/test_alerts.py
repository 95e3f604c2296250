"""Spend-limit alerts: one email per user, period and threshold, under concurrency and with SMTP down at first."""

from __future__ import annotations

import threading
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import override_settings

from tasks import send_spend_alerts
from tests.helpers.services import SmtpInbox
from usage import periods
from usage.events import spend_threshold_crossed
from usage.models import SpendAlert, UserSpendLimit
from usage.recording import record_usage
from usage.tracker import AIUsageTracker, BudgetExceeded

STAFF = ["staff@example.com"]
# At 2 USD per million input tokens: 425,000 tokens cost 0.85 USD and 75,000 cost 0.15 USD.
EIGHTY_FIVE_CENTS, FIFTEEN_CENTS = 425_000, 75_000


@pytest.fixture
def limited_alice(alice: Any, make_price: Any) -> Any:
    make_price(input_price=Decimal("2.00"))
    UserSpendLimit.objects.create(user=alice, daily_limit=Decimal("10.00"), monthly_limit=Decimal("1000.00"))
    return alice


def spend(user: Any, input_tokens: int) -> None:
    record_usage(user=user, feature="chat", provider="acme", model="acme-1", input_tokens=input_tokens)


def spend_at_once(user: Any, input_tokens: int, calls: int, blocker: Any) -> None:
    """`calls` writes from as many threads, released together."""
    start = threading.Barrier(calls)
    errors: list[BaseException] = []

    def write() -> None:
        with blocker.unblock():
            try:
                start.wait()
                spend(user, input_tokens)
            except BaseException as exc:  # reported below: a thread's failure must fail the test
                errors.append(exc)
            finally:
                connection.close()

    threads = [threading.Thread(target=write) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def alert_rows() -> list[tuple[Any, ...]]:
    rows = SpendAlert.objects.order_by("threshold", "period").values_list(
        "period", "threshold", "spend", "superseded", "attempts"
    )
    return [
        (period, threshold, spent.normalize(), superseded, attempts)
        for period, threshold, spent, superseded, attempts in rows
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(AI_SPEND_ALERT_RECIPIENTS=STAFF)
def test_twenty_concurrent_writes_give_exactly_one_email_per_threshold(
    limited_alice: Any, django_db_blocker: Any
) -> None:
    spend_at_once(limited_alice, EIGHTY_FIVE_CENTS, 10, django_db_blocker)  # 8.50 of 10.00: crosses 80%
    assert [m.subject for m in mail.outbox] == [
        f"AI spend alert: alice reached 80% of the daily limit (85.00% on {periods.today()})"
    ]
    spend_at_once(limited_alice, FIFTEEN_CENTS, 10, django_db_blocker)  # 10.00 of 10.00: crosses 100%
    send_spend_alerts.delay()  # the scheduled run afterwards finds nothing new
    assert [m.subject for m in mail.outbox][1:] == [
        f"AI spend alert: alice exceeded the daily limit (100.00% on {periods.today()})"
    ]
    assert alert_rows() == [("day", 80, Decimal("8.5"), False, 1), ("day", 100, Decimal("10"), False, 1)]
    assert SpendAlert.objects.filter(sent_at__isnull=True).count() == 0
    assert all(m.to == ["alice@example.com"] and m.cc == STAFF for m in mail.outbox)


@override_settings(AI_SPEND_ALERT_RECIPIENTS=STAFF)
def test_the_email_names_user_period_spend_limit_percentage_and_admin_page(limited_alice: Any) -> None:
    spend(limited_alice, 4_100_000)  # 8.20 of 10.00
    send_spend_alerts.delay()  # the write's own trigger runs after commit, which a test transaction never reaches
    (message,) = mail.outbox
    today = periods.today()
    assert message.subject == f"AI spend alert: alice reached 80% of the daily limit (82.00% on {today})"
    assert message.body == (
        f"User: alice (id {limited_alice.pk})\n"
        f"Period: daily, {today} (UTC)\n"
        "Spend: 8.20 USD\n"
        "Limit: 10.00 USD\n"
        "Percentage: 82.00% (threshold 80%)\n\n"
        f"Admin: http://127.0.0.1:8000/admin/auth/user/{limited_alice.pk}/change/\n"
    )


def test_an_enforced_call_announces_the_monthly_thresholds_its_cost_crosses_over_earlier_days(
    alice: Any, make_price: Any
) -> None:
    """An enforced call's write reuses the month figure its check read; the crossing it announces must still
    count the spend of the month's other days."""
    make_price(input_price=Decimal("2.00"))
    UserSpendLimit.objects.create(user=alice, daily_limit=Decimal("100.00"), monthly_limit=Decimal("10.00"))
    today = periods.today()
    other_day = today - timedelta(days=1) if today.day > 1 else today + timedelta(days=1)
    at = datetime.combine(other_day, time(12), tzinfo=periods.reporting_zone())
    record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=3_500_000, occurred_at=at)
    heard: list[int] = []

    def listen(user_id: int, **_kwargs: Any) -> None:
        heard.append(user_id)

    def enforced_call(input_tokens: int) -> None:
        track = AIUsageTracker.track_ai_request
        with track(user=alice, feature="chat", provider="acme", model="acme-1", enforce_budget=True) as tracker:
            tracker.set_tokens(input_tokens=input_tokens)

    spend_threshold_crossed.connect(listen, dispatch_uid="test-listen")
    try:
        enforced_call(500_000)  # 7.00 on the other day + 1.00 today: 80% of the month's 10.00
        assert heard == [alice.pk]
        enforced_call(250_000)  # 8.50: no new threshold
        assert heard == [alice.pk]
        enforced_call(750_000)  # 10.00: 100%
        assert heard == [alice.pk, alice.pk]
        with pytest.raises(BudgetExceeded, match=r"exceeded the monthly AI spend limit: 10\.00 of 10\.00 USD"):
            enforced_call(1)
    finally:
        spend_threshold_crossed.disconnect(dispatch_uid="test-listen")
    assert heard == [alice.pk, alice.pk]
    assert alice.ai_usage_logs.count() == 4


def test_two_thresholds_crossed_at_once_send_only_the_highest(limited_alice: Any) -> None:
    spend(limited_alice, 5_500_000)  # 0 -> 11.00 of 10.00 in one call
    send_spend_alerts.delay()
    assert [m.subject for m in mail.outbox] == [
        f"AI spend alert: alice exceeded the daily limit (110.00% on {periods.today()})"
    ]
    assert alert_rows() == [("day", 80, Decimal("11"), True, 0), ("day", 100, Decimal("11"), False, 1)]
    send_spend_alerts.delay()
    assert len(mail.outbox) == 1


def test_the_scheduled_run_finds_users_a_lowered_limit_puts_over(limited_alice: Any, bob: Any) -> None:
    spend(limited_alice, 1_000_000)  # 2.00: OK under 10.00
    spend(bob, 1_000_000)  # bob has the default limits
    send_spend_alerts.delay()
    assert mail.outbox == [] and SpendAlert.objects.count() == 0
    UserSpendLimit.objects.filter(user=limited_alice).update(monthly_limit=Decimal("2.00"))
    from usage.budgets import limit_cache

    limit_cache.clear()  # a queryset update sends no signal; admin saves do
    send_spend_alerts.delay()
    assert [m.subject for m in mail.outbox] == [
        f"AI spend alert: alice exceeded the monthly limit (100.00% on {periods.today():%Y-%m})"
    ]
    assert mail.outbox[0].to == ["alice@example.com"] and mail.outbox[0].cc == []


def test_a_real_smtp_server_down_at_first_gets_the_alert_once_it_is_up(limited_alice: Any) -> None:
    inbox = SmtpInbox()  # its port is chosen now; the server starts below
    port = inbox.port
    smtp = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1"}
    with override_settings(**smtp, EMAIL_PORT=port, EMAIL_TIMEOUT=3, AI_SPEND_ALERT_RECIPIENTS=STAFF):
        spend(limited_alice, 5_000_000)  # 10.00 of 10.00
        assert send_spend_alerts.delay().get() == {"reached": 2, "sent": 0, "failed": 1}
        (alert,) = SpendAlert.objects.filter(superseded=False)
        assert alert.sent_at is None and alert.attempts == 1
        assert alert.last_error.startswith("ConnectionRefusedError: ")
        with inbox:
            assert send_spend_alerts.delay().get() == {"reached": 2, "sent": 1, "failed": 0}
            assert send_spend_alerts.delay().get() == {"reached": 2, "sent": 0, "failed": 0}
    alert.refresh_from_db()
    assert alert.sent_at is not None and alert.attempts == 2
    ((recipients, message),) = inbox.messages
    assert recipients == ["alice@example.com", "staff@example.com"]
    assert (
        message["Subject"].replace("\r\n", "").replace("\n", "")
        == f"AI spend alert: alice exceeded the daily limit (100.00% on {periods.today()})"
    )
    assert message["To"] == "alice@example.com" and message["Cc"] == "staff@example.com"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(AI_SPEND_ALERT_RECIPIENTS=STAFF)
def test_a_batch_that_crosses_a_limit_sends_the_alert_after_commit(limited_alice: Any) -> None:
    from usage.batch import record_batch

    call = {"user": limited_alice, "feature": "chat", "provider": "acme", "model": "acme-1"}
    outcomes = record_batch([{**call, "input_tokens": EIGHTY_FIVE_CENTS}] * 12)  # 10.20 of 10.00 in one batch
    assert [o.outcome for o in outcomes] == ["recorded"] * 12  # type: ignore[union-attr]
    assert [m.subject for m in mail.outbox] == [
        f"AI spend alert: alice exceeded the daily limit (102.00% on {periods.today()})"
    ]
    assert alert_rows() == [("day", 80, Decimal("10.2"), True, 0), ("day", 100, Decimal("10.2"), False, 1)]
