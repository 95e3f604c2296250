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
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q, Sum
from django.urls import reverse
from django.utils import timezone

from usage import periods
from usage.budgets import thresholds_reached, user_limits
from usage.models import AlertPeriod, SpendAlert, UserDailySpend

logger = logging.getLogger(__name__)

# What a failed delivery looks like: the SMTP server refused, was unreachable or timed out.
DELIVERY_ERRORS = (smtplib.SMTPException, OSError)
CENT = Decimal("0.01")


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


def compose(alert: SpendAlert) -> EmailMessage:
    user = alert.user
    name = user.get_username()
    period = "daily" if alert.period == AlertPeriod.DAY else "monthly"
    when = alert.period_start.isoformat() if alert.period == AlertPeriod.DAY else f"{alert.period_start:%Y-%m}"
    what = "exceeded" if alert.threshold >= 100 else f"reached {alert.threshold}% of"
    subject = f"AI spend alert: {name} {what} the {period} limit ({alert.percent}% on {when})"
    body = (
        f"User: {name} (id {alert.user_id})\n"
        f"Period: {period}, {when} ({periods.reporting_zone_name()})\n"
        f"Spend: {alert.spend.quantize(CENT)} USD\n"
        f"Limit: {alert.limit.quantize(CENT)} USD\n"
        f"Percentage: {alert.percent}% (threshold {alert.threshold}%)\n\n"
        f"Admin: {admin_link(alert)}\n"
    )
    user_email = [user.email] if getattr(user, "email", "") else []
    staff = [address for address in settings.AI_SPEND_ALERT_RECIPIENTS if address not in user_email]
    return EmailMessage(subject, body, to=user_email or staff, cc=staff if user_email else [])


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
        message = compose(alert)
        try:
            if message.recipients():
                message.send(fail_silently=False)
            else:
                alert.last_error = "no recipient: the user has no email and AI_SPEND_ALERT_RECIPIENTS is empty"
        except DELIVERY_ERRORS as exc:
            alert.last_error = f"{type(exc).__name__}: {exc}"
            alert.save(update_fields=["attempts", "last_error"])
            logger.warning("spend alert %s not delivered: %s", alert.pk, alert.last_error)
            return False
        alert.sent_at = timezone.now()
        alert.save(update_fields=["attempts", "last_error", "sent_at"])
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
