"""The permission model (README's table), walked over HTTP against a live server: every query, mutation, admin page
and CSV export, for each of the six kinds of caller, allowed and refused, with the exact refusal and proof that a
refused action changed nothing."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from usage.apikeys import create_api_key
from usage.models import AIUsageLog, SpendAlert, UserSpendLimit
from usage.permissions import AUTHENTICATION_REQUIRED
from usage.recording import record_usage

# The live server reads the database from its own thread, so each test commits; serialized_rollback restores what
# the flush at its end removes (the permissions among them) for the tests after it.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ROLES = ["anonymous", "user", "analyst", "staff", "staff_with_permissions", "superuser"]
EVERYONE = set(ROLES)
SIGNED_IN = EVERYONE - {"anonymous"}
READERS = {"analyst", "staff_with_permissions", "superuser"}
ACTORS = {"staff_with_permissions", "superuser"}
ADMIN_READERS = ACTORS  # the admin opens to staff only
SUPERUSER = {"superuser"}
MODEL_PERMISSIONS = ["view_ai_analytics", "record_ai_usage_for_others", "change_userspendlimit", "queue_ai_jobs"]
AUTHENTICATION = "authentication required: log in, or send 'Authorization: Bearer <api key>'"


def needs(field: str, permission: str, action: str) -> str:
    return f"{field} needs the usage.{permission} permission (to {action})"


READ_ALL = ("view_ai_analytics", "read every user's usage")


@dataclass(frozen=True)
class Query:
    text: str
    allowed: set[str]
    refusal: str = ""  # for signed-in callers outside `allowed`

    def error_for(self, role: str) -> str | None:
        if role in self.allowed:
            return None
        return AUTHENTICATION if role == "anonymous" else self.refusal


def queries(victim: int) -> dict[str, Query]:
    """Every query and mutation; %(victim)s is another user's id."""
    other = f'filter: {{userIds: ["{victim}"]}}'
    return {
        "health": Query("{ health { ok } }", EVERYONE),
        "mySpend": Query("{ mySpend { status } }", SIGNED_IN),
        "usage": Query("{ usage { totals { requests } } }", SIGNED_IN),
        "usage of another user": Query(
            f"{{ usage({other}) {{ totals {{ requests }} }} }}", READERS,
            "filter.userIds: reading other users needs the usage.view_ai_analytics permission (to read every "
            "user's usage)",
        ),
        "costTimeline": Query("{ costTimeline { rows { period } } }", SIGNED_IN),
        "usageSummary": Query("{ usageSummary { totals { cost } } }", SIGNED_IN),
        "tokenUsage": Query("{ tokenUsage { totals { totalTokens } } }", SIGNED_IN),
        "costliestRequests": Query("{ costliestRequests { id } }", SIGNED_IN),
        "usageLogs": Query("{ usageLogs { totalCount } }", SIGNED_IN),
        "pricing": Query('{ pricing(provider: "acme") { model } }', SIGNED_IN),
        "usageLogs of another user": Query(
            f'{{ usageLogs(filters: {{userIds: ["{victim}"]}}) {{ totalCount }} }}', READERS,
            "filters.userIds: reading other users needs the usage.view_ai_analytics permission (to read every "
            "user's usage)",
        ),
        "spendAlerts": Query("{ spendAlerts { totalCount } }", SIGNED_IN),
        "spendAlerts of another user": Query(
            f'{{ spendAlerts(filters: {{userIds: ["{victim}"]}}) {{ totalCount }} }}', READERS,
            "filters.userIds: reading other users needs the usage.view_ai_analytics permission (to read every "
            "user's usage)",
        ),
        "spendLimits": Query("{ spendLimits { totalCount } }", READERS, needs("spendLimits", *READ_ALL)),
        "rollupRuns": Query("{ rollupRuns { totalCount } }", READERS, needs("rollupRuns", *READ_ALL)),
        "topUsers": Query("{ topUsers { rows { userId } } }", READERS, needs("topUsers", *READ_ALL)),
        "userSpend": Query("{ userSpend { totalCount } }", READERS, needs("userSpend", *READ_ALL)),
        "cau": Query("{ cau { cau } }", READERS, needs("cau", *READ_ALL)),
        "cauTrend": Query("{ cauTrend { cau } }", READERS, needs("cauTrend", *READ_ALL)),
        "systemStatus": Query("{ systemStatus { database } }", READERS, needs("systemStatus", *READ_ALL)),
        "setSpendLimit": Query(
            f'mutation {{ setSpendLimit(userId: "{victim}", dailyLimit: "7", monthlyLimit: "70") {{ status }} }}',
            ACTORS, needs("setSpendLimit", "change_userspendlimit", "change spend limits"),
        ),
        "syncPricing": Query(
            "mutation { syncPricing { taskId } }", ACTORS, needs("syncPricing", "queue_ai_jobs", "queue jobs")
        ),
        "runRollup": Query(
            "mutation { runRollup { taskId } }", ACTORS, needs("runRollup", "queue_ai_jobs", "queue jobs")
        ),
    }  # fmt: skip


@pytest.fixture
def people(make_price: Any) -> dict[str, Any]:
    make_price()
    users = get_user_model().objects
    people = {
        "user": users.create_user("user", "user@example.com", "pw"),
        "analyst": users.create_user("analyst", "analyst@example.com", "pw"),
        "staff": users.create_user("staff", "staff@example.com", "pw", is_staff=True),
        "staff_with_permissions": users.create_user("boss", "boss@example.com", "pw", is_staff=True),
        "superuser": users.create_superuser("root", "root@example.com", "pw"),
        "victim": users.create_user("victim", "victim@example.com", "pw"),
    }
    people["analyst"].user_permissions.add(Permission.objects.get(codename="view_ai_analytics"))
    people["staff_with_permissions"].user_permissions.add(*Permission.objects.filter(codename__in=MODEL_PERMISSIONS))
    record_usage(user=people["victim"], feature="chat", provider="acme", model="acme-1", input_tokens=1000)
    return people


def api(base: str, people: dict[str, Any], role: str) -> requests.Session:
    session = requests.Session()
    if role != "anonymous":
        session.headers["Authorization"] = f"Bearer {create_api_key(people[role], 'table')[1]}"
    return session


def graphql(session: requests.Session, base: str, text: str, variables: dict[str, Any] | None = None) -> Any:
    response = session.post(f"{base}/graphql/", json={"query": text, "variables": variables or {}}, timeout=30)
    unauthenticated = any(e["message"] == AUTHENTICATION_REQUIRED for e in response.json().get("errors", []))
    assert response.status_code == (401 if unauthenticated else 200), response.text
    return response.json()


def test_every_query_and_mutation_for_every_caller(live_server: Any, people: dict[str, Any]) -> None:
    victim = people["victim"]
    for role in ROLES:
        session = api(live_server.url, people, role)
        for name, query in queries(victim.pk).items():
            UserSpendLimit.objects.filter(user=victim).delete()
            answer = graphql(session, live_server.url, query.text)
            error = query.error_for(role)
            assert [e["message"] for e in answer.get("errors", [])] == ([error] if error else []), (name, role)
            assert (answer["data"] is None) == (error is not None), (name, role)
            if name == "setSpendLimit":  # a refused change leaves no limit behind
                expected = [(Decimal("7.00"), Decimal("70.00"))] if error is None else []
                assert list(UserSpendLimit.objects.filter(user=victim).values_list(
                    "daily_limit", "monthly_limit")) == expected, role  # fmt: skip


RECORD = "mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) { outcome field reason } }"
RECORD_FOR_OTHERS_REFUSED = (
    "userId: you may record usage only for yourself (recording for others needs the "
    "usage.record_ai_usage_for_others permission)"
)


def test_recording_for_oneself_and_for_others(live_server: Any, people: dict[str, Any]) -> None:
    victim = people["victim"]
    for role in ROLES:
        session = api(live_server.url, people, role)
        own = {"feature": f"own-{role}", "provider": "acme", "model": "acme-1", "inputTokens": 10}
        theirs = {**own, "feature": f"for-victim-{role}", "userId": str(victim.pk)}
        answer = graphql(session, live_server.url, RECORD, {"events": [own, theirs]})
        if role == "anonymous":
            assert [e["message"] for e in answer["errors"]] == [AUTHENTICATION]
            assert AIUsageLog.objects.filter(feature__endswith="-anonymous").count() == 0
            continue
        allowed = role in ACTORS
        assert answer["data"]["recordUsage"] == [
            {"outcome": "RECORDED", "field": None, "reason": None},
            {"outcome": "RECORDED", "field": None, "reason": None} if allowed
            else {"outcome": "REJECTED", "field": "userId", "reason": RECORD_FOR_OTHERS_REFUSED},
        ], role  # fmt: skip
        assert AIUsageLog.objects.filter(feature=f"own-{role}", user=people[role]).count() == 1
        assert AIUsageLog.objects.filter(feature=f"for-victim-{role}", user=victim).count() == (1 if allowed else 0)


def admin_session(base: str, people: dict[str, Any], role: str) -> requests.Session:
    session = requests.Session()
    if role != "anonymous":
        client = Client()
        client.force_login(people[role])
        session.cookies.set("sessionid", client.cookies["sessionid"].value)
    return session


def admin_pages(people: dict[str, Any]) -> dict[str, set[str]]:
    """Each admin page or export and the callers who may open it."""
    log = AIUsageLog.objects.filter(user=people["victim"]).first()
    assert log is not None
    return {
        "/admin/ai-analytics/": ADMIN_READERS,
        "/admin/ai-analytics/users/": ADMIN_READERS,
        "/admin/ai-analytics/users/?format=csv": ADMIN_READERS,
        "/admin/ai-analytics/system/": ADMIN_READERS,
        "/admin/usage/aiusagelog/": ADMIN_READERS,
        f"/admin/usage/aiusagelog/{log.pk}/change/": ADMIN_READERS,
        "/admin/usage/aiusagelog/export/": ADMIN_READERS,
        "/admin/analytics/useraicostsummary/": ADMIN_READERS,
        "/admin/analytics/usagehourlybucket/": ADMIN_READERS,
        "/admin/analytics/causnapshot/": ADMIN_READERS,
        "/admin/analytics/rollupruns/".replace("runs", "run"): ADMIN_READERS,
        "/admin/usage/spendalert/": ADMIN_READERS,
        "/admin/usage/userspendlimit/": ADMIN_READERS,
        "/admin/usage/userspendlimit/add/": ADMIN_READERS,
        "/admin/usage/apikey/": SUPERUSER,
    }


def test_every_admin_page_and_export_for_every_caller(live_server: Any, people: dict[str, Any]) -> None:
    for role in ROLES:
        session = admin_session(live_server.url, people, role)
        for page, allowed in admin_pages(people).items():
            response = session.get(f"{live_server.url}{page}", allow_redirects=False, timeout=30)
            if role in allowed:
                assert response.status_code == 200, (page, role)
            elif role in {"anonymous", "user", "analyst"}:  # not staff: the admin sends them to its login
                assert response.status_code == 302, (page, role)
                assert response.headers["Location"].startswith("/admin/login/?next="), (page, role)
            else:
                assert response.status_code == 403, (page, role)


def test_changing_a_limit_in_the_admin_needs_the_limits_permission(live_server: Any, people: dict[str, Any]) -> None:
    victim = people["victim"]
    for role in ["staff", "staff_with_permissions", "superuser"]:
        UserSpendLimit.objects.filter(user=victim).delete()
        session = admin_session(live_server.url, people, role)
        form = session.get(f"{live_server.url}/admin/usage/userspendlimit/add/", timeout=30)
        token = session.cookies.get("csrftoken", "")
        response = session.post(
            f"{live_server.url}/admin/usage/userspendlimit/add/",
            data={"csrfmiddlewaretoken": token, "user": victim.pk, "daily_limit": "3", "monthly_limit": "30"},
            allow_redirects=False, timeout=30,
        )  # fmt: skip
        if role == "staff":
            assert (form.status_code, response.status_code) == (403, 403)
            assert not UserSpendLimit.objects.filter(user=victim).exists()
        else:
            assert (form.status_code, response.status_code) == (200, 302), role
            assert UserSpendLimit.objects.get(user=victim).daily_limit == Decimal("3.00")


def run_admin_action(base: str, session: requests.Session, changelist: str, action: str, pk: int) -> int:
    session.get(f"{base}{changelist}", timeout=30)  # sets the CSRF cookie when the page opens
    response = session.post(
        f"{base}{changelist}",
        data={"csrfmiddlewaretoken": session.cookies.get("csrftoken", ""), "action": action,
              "_selected_action": [pk], "index": 0},
        allow_redirects=False, timeout=30,
    )  # fmt: skip
    return response.status_code


def test_admin_actions_on_limits_and_alerts_need_their_permissions(live_server: Any, people: dict[str, Any]) -> None:
    victim = people["victim"]
    today = timezone.now().date()
    limit = UserSpendLimit.objects.create(user=victim, daily_limit=Decimal("1"))
    for role in ["staff", "staff_with_permissions", "superuser"]:
        SpendAlert.objects.all().delete()
        alert = SpendAlert.objects.create(user=victim, period="day", period_start=today, threshold=80,
                                          spend=Decimal("0.8"), limit=Decimal("1"))  # fmt: skip
        session = admin_session(live_server.url, people, role)
        sent = run_admin_action(live_server.url, session, "/admin/usage/spendalert/", "retry_now", alert.pk)
        alert.refresh_from_db()
        assert (sent, alert.sent_at is not None) == ((403, False) if role == "staff" else (302, True)), role
        reset = run_admin_action(live_server.url, session, "/admin/usage/userspendlimit/", "reset_alerts", limit.pk)
        assert (reset, SpendAlert.objects.count()) == ((403, 1) if role == "staff" else (302, 0)), role
