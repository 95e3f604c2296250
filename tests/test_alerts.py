"""Spend-limit alerts: one email per user, period and threshold, under concurrency and with SMTP down at first."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from email.message import Message
from typing import Any

import pytest
from django.contrib.auth import get_user_model
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
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
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
    eighty = f"AI spend alert: alice reached 80% of the daily limit for {periods.today()}"
    assert [(m.subject, m.to) for m in mail.outbox] == [(eighty, ["alice@example.com"]), (eighty, STAFF)]
    spend_at_once(limited_alice, FIFTEEN_CENTS, 10, django_db_blocker)  # 10.00 of 10.00: crosses 100%
    send_spend_alerts.delay()  # the scheduled run afterwards finds nothing new
    hundred = f"AI spend alert: alice reached 100% of the daily limit for {periods.today()}"
    assert [(m.subject, m.to) for m in mail.outbox][2:] == [(hundred, ["alice@example.com"]), (hundred, STAFF)]
    assert alert_rows() == [("day", 80, Decimal("8.5"), False, 1), ("day", 100, Decimal("10"), False, 1)]
    assert SpendAlert.objects.filter(sent_at__isnull=True).count() == 0


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
        f"AI spend alert: alice reached 100% of the daily limit for {periods.today()}"
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
    assert [(m.subject, m.to) for m in mail.outbox] == [
        (f"AI spend alert: alice reached 100% of the monthly limit for {periods.today():%Y-%m}", ["alice@example.com"])
    ]  # no superuser, no AI_SPEND_ALERT_RECIPIENTS: no staff copy


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
    assert [to for to, _message in inbox.messages] == [["alice@example.com"], STAFF]
    assert inbox.subjects() == [f"AI spend alert: alice reached 100% of the daily limit for {periods.today()}"] * 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(AI_SPEND_ALERT_RECIPIENTS=STAFF)
def test_a_batch_that_crosses_a_limit_sends_the_alert_after_commit(limited_alice: Any) -> None:
    from usage.batch import record_batch

    call = {"user": limited_alice, "feature": "chat", "provider": "acme", "model": "acme-1"}
    outcomes = record_batch([{**call, "input_tokens": EIGHTY_FIVE_CENTS}] * 12)  # 10.20 of 10.00 in one batch
    assert [o.outcome for o in outcomes] == ["recorded"] * 12  # type: ignore[union-attr]
    assert [m.subject for m in mail.outbox] == [
        f"AI spend alert: alice reached 100% of the daily limit for {periods.today()}"
    ] * 2
    assert alert_rows() == [("day", 80, Decimal("10.2"), True, 0), ("day", 100, Decimal("10.2"), False, 1)]


@pytest.fixture
def inbox() -> Iterator[SmtpInbox]:
    """A real SMTP server on loopback that the alerts are sent to."""
    with SmtpInbox() as server, override_settings(EMAIL_BACKEND=SMTP_BACKEND, EMAIL_HOST="127.0.0.1",
                                                  EMAIL_PORT=server.port, EMAIL_TIMEOUT=3):  # fmt: skip
        yield server


def parts(message: Message) -> dict[str, str]:
    """A multipart/alternative email's parts by content type, decoded, with SMTP's CRLF line ends as \\n."""
    assert message.get_content_type() == "multipart/alternative"
    return {
        part.get_content_type(): part.get_payload(decode=True).decode().replace("\r\n", "\n")  # type: ignore[union-attr]
        for part in message.get_payload()  # type: ignore[union-attr]
    }


def delivered(inbox: SmtpInbox) -> dict[str, dict[str, str]]:
    """Each delivered email's parts, by its recipients."""
    return {", ".join(to): parts(message) for to, message in inbox.messages}


@override_settings(AI_SPEND_ALERT_RECIPIENTS=STAFF)
def test_the_user_and_the_staff_each_get_a_text_and_html_email_only_the_staff_copy_links_to_the_admin(
    limited_alice: Any, inbox: SmtpInbox
) -> None:
    spend(limited_alice, 4_100_000)  # 8.20 of 10.00
    send_spend_alerts.delay()  # the write's own trigger runs after commit, which a test transaction never reaches
    today = periods.today()
    assert inbox.subjects() == [f"AI spend alert: alice reached 80% of the daily limit for {today}"] * 2
    facts = (
        f"User: alice (id {limited_alice.pk})\n"
        f"Period: daily, {today} (UTC)\n"
        "Spend: $8.20\n"
        "Limit: $10.00\n"
        "Percentage: 82% (threshold 80%)\n\n"
    )
    admin = f"http://127.0.0.1:8000/admin/auth/user/{limited_alice.pk}/change/"
    rows = (
        f'<table><tr><th align="left">User</th><td>alice (id {limited_alice.pk})</td></tr>'
        f'<tr><th align="left">Period</th><td>daily, {today} (UTC)</td></tr>'
        '<tr><th align="left">Spend</th><td>$8.20</td></tr>'
        '<tr><th align="left">Limit</th><td>$10.00</td></tr>'
        '<tr><th align="left">Percentage</th><td>82% (threshold 80%)</td></tr></table>'
    )
    assert delivered(inbox) == {
        "alice@example.com": {
            "text/plain": facts + "Ask your administrator if the limit should change.\n",
            "text/html": f"<html><body>{rows}<p>Ask your administrator if the limit should change.</p></body></html>",
        },
        "staff@example.com": {
            "text/plain": facts + f"Admin: {admin}\n",
            "text/html": f'<html><body>{rows}<p><a href="{admin}">Open alice in the admin</a></p></body></html>',
        },
    }


def test_without_recipients_set_the_superusers_with_an_email_get_the_staff_copy(
    limited_alice: Any, inbox: SmtpInbox
) -> None:
    users = get_user_model().objects
    users.create_superuser("root", "root@example.com", "pw")
    users.create_superuser("ops", "ops@example.com", "pw")
    users.create_superuser("noemail", "", "pw")
    users.create_superuser("gone", "gone@example.com", "pw", is_active=False)
    users.create_user("staffer", "staffer@example.com", "pw", is_staff=True)
    spend(limited_alice, 5_000_000)  # 10.00 of 10.00
    send_spend_alerts.delay()
    assert [to for to, _message in inbox.messages] == [["alice@example.com"], ["ops@example.com", "root@example.com"]]


@override_settings(AI_SPEND_ALERT_RECIPIENTS=STAFF)
def test_the_amounts_shown_support_the_percentage_shown(alice: Any, make_price: Any, inbox: SmtpInbox) -> None:
    """Cents alone showed 'Spend 0.07 USD / Limit 0.07 USD / 101.26%'."""
    make_price(input_price=Decimal("1.00"))
    UserSpendLimit.objects.create(user=alice, daily_limit=Decimal("0.07"), monthly_limit=Decimal("1000.00"))
    spend(alice, 56_882)  # 0.056882 of 0.07: 81.26%
    send_spend_alerts.delay()
    spend(alice, 14_000)  # 0.070882: 101.26%
    send_spend_alerts.delay()
    texts = [parts(message)["text/plain"].split("\n")[2:5] for to, message in inbox.messages if to == STAFF]
    assert texts == [
        ["Spend: $0.05688", "Limit: $0.07", "Percentage: 81% (threshold 80%)"],
        ["Spend: $0.07088", "Limit: $0.07", "Percentage: 101% (threshold 100%)"],
    ]


@override_settings(AI_SPEND_ALERT_RECIPIENTS=STAFF)
def test_when_rounding_would_contradict_the_percentage_the_exact_amounts_are_shown(
    limited_alice: Any, make_price: Any, inbox: SmtpInbox
) -> None:
    spend(limited_alice, 4_998_000)  # 9.996 of 10.00 shows as $10.00, which would be 100%, not 99%
    send_spend_alerts.delay()
    (text,) = [parts(message)["text/plain"] for to, message in inbox.messages if to == STAFF]
    assert text.split("\n")[2:5] == [
        "Spend: $10.00 (exactly 9.996 USD)",
        "Limit: $10.00 (exactly 10 USD)",
        "Percentage: 99% (threshold 80%)",
    ]


@override_settings(AI_SPEND_ALERT_RECIPIENTS=STAFF)
def test_a_refused_staff_copy_is_retried_without_sending_the_users_copy_again(
    limited_alice: Any, inbox: SmtpInbox
) -> None:
    inbox.refused.add("staff@example.com")
    spend(limited_alice, 5_000_000)  # 10.00 of 10.00
    assert send_spend_alerts.delay().get() == {"reached": 2, "sent": 0, "failed": 1}
    (alert,) = SpendAlert.objects.filter(superseded=False)
    assert (alert.sent_at, alert.attempts, alert.user_copy_sent_at is not None) == (None, 1, True)
    assert alert.last_error == ("SMTPRecipientsRefused: {'staff@example.com': (550, b'No such mailbox')}")
    inbox.refused.clear()
    assert send_spend_alerts.delay().get() == {"reached": 2, "sent": 1, "failed": 0}
    assert send_spend_alerts.delay().get() == {"reached": 2, "sent": 0, "failed": 0}
    assert [to for to, _message in inbox.messages] == [["alice@example.com"], STAFF]
    alert.refresh_from_db()
    assert alert.sent_at is not None and alert.attempts == 2
