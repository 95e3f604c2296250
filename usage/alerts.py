"""Spend-limit alerts: one email per user, period and threshold, written down before it is sent.

Finding due alerts and delivering them are separate steps. A due alert becomes a SpendAlert row (the unique
constraint on user, period, period start and threshold makes a second one impossible, whatever runs at once);
delivery locks each unsent row, sends, and marks it sent in the same transaction, so a send that fails (SMTP down)
leaves the row unsent for the next attempt and a send that succeeded is never repeated.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from usage import periods
from usage.budgets import thresholds_reached, user_limits
from usage.models import AlertPeriod, SpendAlert, UserDailySpend
from usage.money import canonical, for_people

logger = logging.getLogger(__name__)

# What a failed delivery looks like: the SMTP server refused, was unreachable or timed out.
DELIVERY_ERRORS = (smtplib.SMTPException, OSError)


@dataclass
class AlertReport:
    reached: int = 0  # thresholds found reached (already recorded ones included)
    sent: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"reached": self.reached, "sent": self.sent, "failed": self.failed}


def _alerts_for(user_id: int, period: str, start: date, spend: Decimal, limit: Decimal) -> list[SpendAlert]:
    """The alerts this spend calls for: every threshold reached, all but the highest marked superseded."""
    reached = thresholds_reached(spend, limit)
    fields = {"user_id": user_id, "period": period, "period_start": start, "spend": spend, "limit": limit}
    return [SpendAlert(threshold=t, superseded=t != reached[-1], **fields) for t in reached]


def record_due_alerts(user_ids: Iterable[int] | None = None, day: date | None = None) -> int:
    """Write an alert row for every threshold reached today or this month that has none yet; returns how many
    thresholds are reached (rows that existed already included)."""
    day = day or periods.today()
    month = periods.month_start(day)
    counters = UserDailySpend.objects.filter(
        time_zone=periods.reporting_zone_name(), day__gte=month, day__lt=periods.next_month_start(day),
        user__is_active=True,
    )  # fmt: skip
    if user_ids is not None:
        counters = counters.filter(user_id__in=list(user_ids))
    spends = counters.values("user_id").annotate(
        month_spend=Sum("cost", default=Decimal(0)), day_spend=Sum("cost", filter=Q(day=day), default=Decimal(0))
    )
    alerts: list[SpendAlert] = []
    for row in spends:
        daily_limit, monthly_limit = user_limits(row["user_id"])
        alerts += _alerts_for(row["user_id"], AlertPeriod.DAY, day, row["day_spend"], daily_limit)
        alerts += _alerts_for(row["user_id"], AlertPeriod.MONTH, month, row["month_spend"], monthly_limit)
    # Rows that exist already (sent or not) are left exactly as they are.
    SpendAlert.objects.bulk_create(alerts, ignore_conflicts=True)
    return len(alerts)


def admin_link(alert: SpendAlert) -> str:
    opts = get_user_model()._meta
    return settings.SITE_URL + reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[alert.user_id])


def staff_recipients() -> list[str]:
    """AI_SPEND_ALERT_RECIPIENTS when set, else every active superuser with an email address."""
    if settings.AI_SPEND_ALERT_RECIPIENTS:
        return list(settings.AI_SPEND_ALERT_RECIPIENTS)
    superusers = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
    return sorted(set(superusers.values_list("email", flat=True)))


def shown_percent(spend: Decimal, limit: Decimal) -> Decimal | None:
    """The share of the limit in whole percent, rounded down: 99.96% must not read as the 100% it has not
    reached, and amounts rounded for people still support a whole percentage. None for a limit of zero."""
    return (spend * 100 / limit).quantize(Decimal(1), ROUND_DOWN) if limit else None


def _from_people(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


def shown_amounts(spend: Decimal, limit: Decimal) -> tuple[str, str]:
    """Spend and limit as people read them, with the exact amounts beside them whenever the rounded figures
    would give another percentage than the one shown (99.96% of $10.00 shows as $10.00, which is not 99%)."""
    spend_text, limit_text = for_people(spend), for_people(limit)
    if shown_percent(_from_people(spend_text), _from_people(limit_text)) == shown_percent(spend, limit):
        return spend_text, limit_text
    return f"{spend_text} (exactly {canonical(spend)} USD)", f"{limit_text} (exactly {canonical(limit)} USD)"


def alert_subject(alert: SpendAlert) -> str:
    period = "daily" if alert.period == AlertPeriod.DAY else "monthly"
    name = alert.user.get_username()
    return f"AI spend alert: {name} reached {alert.threshold}% of the {period} limit for {_when(alert)}"


def _when(alert: SpendAlert) -> str:
    return alert.period_start.isoformat() if alert.period == AlertPeriod.DAY else f"{alert.period_start:%Y-%m}"


def _facts(alert: SpendAlert) -> list[tuple[str, str]]:
    spend, limit = shown_amounts(alert.spend, alert.limit)
    period = "daily" if alert.period == AlertPeriod.DAY else "monthly"
    return [
        ("User", f"{alert.user.get_username()} (id {alert.user_id})"),
        ("Period", f"{period}, {_when(alert)} ({periods.reporting_zone_name()})"),
        ("Spend", spend),
        ("Limit", limit),
        ("Percentage", _percentage(alert)),
    ]


def _percentage(alert: SpendAlert) -> str:
    percent = shown_percent(alert.spend, alert.limit)
    shown = "any spend is over a limit of zero" if percent is None else f"{percent}%"
    return f"{shown} (threshold {alert.threshold}%)"


def _message(alert: SpendAlert, to: list[str], link: str | None) -> EmailMultiAlternatives:
    facts = _facts(alert)
    text = "".join(f"{label}: {value}\n" for label, value in facts)
    rows = format_html_join("", '<tr><th align="left">{}</th><td>{}</td></tr>', facts)
    html = format_html("<table>{}</table>", rows)
    if link:
        text += f"\nAdmin: {link}\n"
        html += format_html('<p><a href="{}">Open {} in the admin</a></p>', link, alert.user.get_username())
    else:
        text += "\nAsk your administrator if the limit should change.\n"
        html += format_html("<p>{}</p>", "Ask your administrator if the limit should change.")
    message = EmailMultiAlternatives(alert_subject(alert), text, to=to)
    message.attach_alternative(format_html("<html><body>{}</body></html>", html), "text/html")
    return message


def compose(alert: SpendAlert) -> tuple[EmailMultiAlternatives | None, EmailMultiAlternatives | None]:
    """The user's copy (no admin link: the user may not open the admin) and the staff copy (with it). A user
    who is among the staff recipients gets the staff copy only."""
    staff = staff_recipients()
    email = getattr(alert.user, "email", "") or ""
    user_copy = _message(alert, [email], None) if email and email not in staff else None
    staff_copy = _message(alert, staff, admin_link(alert)) if staff else None
    return user_copy, staff_copy


def _send(alert: SpendAlert) -> None:
    """Send the copies not sent yet; the user's copy is marked as soon as it is out, so a retry after the staff
    copy failed does not send it twice."""
    user_copy, staff_copy = compose(alert)
    if user_copy is None and staff_copy is None:
        alert.last_error = "no recipient: the user has no email and there are no staff addresses"
    if user_copy is not None and alert.user_copy_sent_at is None:
        user_copy.send(fail_silently=False)
        alert.user_copy_sent_at = timezone.now()
    if staff_copy is not None:
        staff_copy.send(fail_silently=False)


def _deliver_one(alert_id: int) -> bool | None:
    """Send one unsent alert under its row lock: True sent, False failed, None taken or sent by another run."""
    with transaction.atomic():
        alert = (
            SpendAlert.objects.select_for_update(skip_locked=True)
            .select_related("user")
            .filter(pk=alert_id, sent_at__isnull=True, superseded=False)
            .first()
        )
        if alert is None:
            return None
        alert.attempts += 1
        try:
            _send(alert)
        except DELIVERY_ERRORS as exc:
            alert.last_error = f"{type(exc).__name__}: {exc}"
            alert.save(update_fields=["attempts", "last_error", "user_copy_sent_at"])
            logger.warning("spend alert %s not delivered: %s", alert.pk, alert.last_error)
            return False
        alert.sent_at = timezone.now()
        alert.save(update_fields=["attempts", "last_error", "user_copy_sent_at", "sent_at"])
        return True


def deliver_pending(limit: int = 500, ids: list[int] | None = None) -> AlertReport:
    """Send unsent alerts (of these ids, when given), oldest first."""
    report = AlertReport()
    pending = SpendAlert.objects.filter(sent_at__isnull=True, superseded=False).order_by("created_at", "id")
    if ids is not None:
        pending = pending.filter(id__in=ids)
    for alert_id in list(pending.values_list("id", flat=True)[:limit]):
        outcome = _deliver_one(alert_id)
        report.sent += outcome is True
        report.failed += outcome is False
    return report


def send_spend_alerts(user_ids: Iterable[int] | None = None) -> AlertReport:
    """Record the alerts now due (for these users, or everyone with spend this month) and send every unsent one."""
    reached = record_due_alerts(user_ids)
    report = deliver_pending()
    report.reached = reached
    return report


def reset_current_alerts(user_ids: list[int], day: date | None = None) -> int:
    """Forget these users' alerts for the current day and month, so a threshold crossed again (after a limit was
    raised, say) is announced again. Returns how many alert records were removed."""
    day = day or periods.today()
    current = Q(period=AlertPeriod.DAY, period_start=day) | Q(
        period=AlertPeriod.MONTH, period_start=periods.month_start(day)
    )
    removed, _ = SpendAlert.objects.filter(current, user_id__in=user_ids).delete()
    return removed
