"""The questions of a developer dashboard and an analytics page (the product's seed notes 002 and 003), asked over
HTTP exactly as a frontend asks them: JSON bodies, an API key in the Authorization header, a live server on the
loopback address. Every figure is compared with sums over the stored logs, in the reporting time zone, and every
amount with its one canonical string form."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from django.utils import timezone

from tests.helpers.people import user_with
from usage.apikeys import create_api_key
from usage.models import AIProviderPricing, AIUsageLog, PriceSource

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ZONE_NAME = "America/New_York"
ZONE = ZoneInfo(ZONE_NAME)
EPOCH = datetime(2020, 1, 1, tzinfo=ZoneInfo("UTC"))
MODELS = {"acme": ["acme-1", "acme-2"], "beta": ["beta-big", "mystery"]}  # mystery has no price
PRICES = {"acme-1": ("2.5", "10"), "acme-2": ("0.15", "0.6"), "beta-big": ("3", "15")}
RECORD = """mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) { outcome reason } }"""
METRICS = """requests successfulRequests failedRequests successRate inputTokens outputTokens totalTokens cost
             avgCostPerRequest avgLatencyMs unpricedRequests"""


class Frontend:
    """A client as a browser app or a Node service is: JSON over HTTP with a bearer API key."""

    def __init__(self, base: str, raw_key: str) -> None:
        self.url = f"{base}/graphql/"
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"})

    def ask(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = self.session.post(self.url, json={"query": query, "variables": variables or {}}, timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def refused(self, query: str) -> list[str]:
        response = self.session.post(self.url, json={"query": query}, timeout=60)
        return [error["message"] for error in response.json()["errors"]]


def canonical(amount: Decimal) -> str:
    """The API's documented form of an amount: plain digits, no exponent, no trailing zeros."""
    text = format(amount, "f")
    return (text.rstrip("0").rstrip(".") if "." in text else text) or "0"


def local_day(log: AIUsageLog) -> date:
    return log.occurred_at.astimezone(ZONE).date()


def today() -> date:
    return timezone.now().astimezone(ZONE).date()


def logs_between(first: date, last: date, **filters: Any) -> list[AIUsageLog]:
    return [log for log in AIUsageLog.objects.filter(**filters).order_by("id") if first <= local_day(log) <= last]


def expected_metrics(logs: Iterable[AIUsageLog]) -> dict[str, Any]:
    logs = list(logs)
    requests_ = len(logs)
    successful = sum(1 for log in logs if log.status == "success")
    cost = sum((log.total_cost or Decimal(0) for log in logs), Decimal(0))
    latencies = [log.latency_ms for log in logs if log.latency_ms is not None]
    inputs, outputs = sum(log.input_tokens for log in logs), sum(log.output_tokens for log in logs)
    return {
        "requests": requests_,
        "successfulRequests": successful,
        "failedRequests": requests_ - successful,
        "successRate": canonical((Decimal(successful) / requests_).quantize(Decimal("0.0001"))) if requests_ else None,
        "inputTokens": str(inputs),
        "outputTokens": str(outputs),
        "totalTokens": str(inputs + outputs),
        "cost": canonical(cost),
        "avgCostPerRequest": canonical(cost / requests_) if requests_ else None,
        "avgLatencyMs": canonical((Decimal(sum(latencies)) / len(latencies)).quantize(Decimal("0.1")))
        if latencies
        else None,
        "unpricedRequests": sum(1 for log in logs if log.total_cost is None),
    }


def by(logs: Iterable[AIUsageLog], key: Callable[[AIUsageLog], Any]) -> dict[Any, list[AIUsageLog]]:
    groups: dict[Any, list[AIUsageLog]] = defaultdict(list)
    for log in logs:
        groups[key(log)].append(log)
    return groups


def events_for(people: list[Any], rng: random.Random) -> list[dict[str, Any]]:
    """60 days of calls, a few of them today, across providers, models, features, sessions and statuses."""
    now = timezone.now()
    events = []
    for n in range(240):
        provider = rng.choice(list(MODELS))
        occurred = now - timedelta(seconds=30 + n * 61) if n < 12 else now - timedelta(hours=rng.randint(1, 60 * 24))
        events.append({
            "userId": str(rng.choice(people).pk), "feature": rng.choice(["sql", "rag", "hybrid"]),
            "provider": provider, "model": rng.choice(MODELS[provider]), "occurredAt": occurred.isoformat(),
            "inputTokens": rng.randint(0, 3000), "outputTokens": rng.randint(0, 900),
            "latencyMs": rng.choice([None, rng.randint(100, 4000)]),
            "status": rng.choice(["success"] * 9 + ["error"]), "sessionId": rng.choice(["s1", "s2", None]),
        })  # fmt: skip
    return events


@pytest.fixture
def world(live_server: Any, settings: Any) -> dict[str, Any]:
    settings.ANALYTICS_TIME_ZONE = ZONE_NAME
    for model, (input_price, output_price) in PRICES.items():
        provider = "acme" if model.startswith("acme") else "beta"
        AIProviderPricing.objects.create(
            provider=provider, model=model, input_price=Decimal(input_price), output_price=Decimal(output_price),
            effective_from=EPOCH, source=PriceSource.MANUAL,
        )  # fmt: skip
    ops = user_with("ops")  # the backend service: records for everyone, reads everything, queues jobs
    alice, bob = user_with("alice", "view_ai_analytics"), user_with("bob", "view_ai_analytics")
    alice.user_permissions.clear()
    bob.user_permissions.clear()
    service = Frontend(live_server.url, create_api_key(ops, "service")[1])
    rng = random.Random(2026)
    events = events_for([alice, bob, ops], rng)
    outcomes = service.ask(RECORD, {"events": events[:200]})["recordUsage"]
    assert [o["outcome"] for o in outcomes] == ["RECORDED"] * 200
    service.ask("mutation { runRollup { taskId } }")  # settled days answered from the summaries...
    AIUsageLog.objects.update(recorded_at=timezone.now() - timedelta(days=3))
    tail = service.ask(RECORD, {"events": events[200:]})["recordUsage"]  # ...and these from the logs
    assert [o["outcome"] for o in tail] == ["RECORDED"] * 40
    return {
        "staff": service,
        "alice": Frontend(live_server.url, create_api_key(alice, "dashboard")[1]),
        "alice_user": alice,
        "people": {p.pk: p for p in (ops, alice, bob)},
    }


def test_the_developer_dashboard(world: dict[str, Any]) -> None:
    """Seed 002: the dashboard card for the last 7 days, the query-type split, token usage for one session, and
    the cost of each query ordered by cost or date, for staff (everyone) and for a user (their own)."""
    first, last = today() - timedelta(days=6), today()
    for who, mine in (("staff", {}), ("alice", {"user": world["alice_user"]})):
        client = world[who]
        data = client.ask(f"""{{ usage(range: {{days: 7}}) {{ totals {{ {METRICS} }} }}
            byType: usage(range: {{days: 7}}, groupBy: [FEATURE]) {{ rows {{ feature metrics {{ requests cost }} }} }}
        }}""")
        week = logs_between(first, last, **mine)
        assert len(week) >= 10 and any(log.total_cost is None for log in logs_between(first, last))  # not vacuous
        assert data["usage"]["totals"] == expected_metrics(week)
        split = {row["feature"]: row["metrics"] for row in data["byType"]["rows"]}
        assert split == {
            feature: {"requests": len(logs), "cost": expected_metrics(logs)["cost"]}
            for feature, logs in by(week, lambda log: log.feature).items()
        }
        tokens = client.ask(f"""{{ tokenUsage(range: {{days: 30}}, filter: {{sessionId: "s1"}}) {{
            totals {{ {METRICS} }} }} }}""")["tokenUsage"]
        session = logs_between(today() - timedelta(days=29), last, session_id="s1", **mine)
        assert tokens["totals"] == expected_metrics(session)
        for order, key in (("COST", lambda log: (-(log.total_cost or -1), -log.occurred_at.timestamp())),
                           ("DATE", lambda log: (-log.occurred_at.timestamp(), -log.pk))):  # fmt: skip
            costs = client.ask(f"""{{ costliestRequests(range: {{days: 7}}, limit: 10, order: {order}) {{
                id cost inputTokens outputTokens model user {{ id username }} }} }}""")["costliestRequests"]
            expected = sorted(week, key=key)[:10]
            assert costs == [
                {"id": str(log.pk), "cost": None if log.total_cost is None else canonical(log.total_cost),
                 "inputTokens": str(log.input_tokens), "outputTokens": str(log.output_tokens), "model": log.model,
                 "user": {"id": str(log.user_id), "username": world["people"][log.user_id].username}}
                for log in expected
            ]  # fmt: skip


def period_days(period: str) -> tuple[date, date]:
    now = today()
    first = {
        "TODAY": now, "WEEK": now - timedelta(days=6), "MONTH": now.replace(day=1),
        "YEAR": now.replace(month=1, day=1), "ALL": min(local_day(log) for log in AIUsageLog.objects.all()),
    }[period]  # fmt: skip
    return first, now


def month_before(day: date) -> date:
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def test_the_usage_summary_by_period_and_provider(world: dict[str, Any]) -> None:
    """Seed 003: the summary for each period (today, week, month, year, all), unfiltered and for one provider,
    with the provider and top-model breakdowns and both labelled comparisons."""
    staff = world["staff"]
    for period in ("TODAY", "WEEK", "MONTH", "YEAR", "ALL"):
        for provider in (None, "beta"):
            where = "" if provider is None else f', filter: {{providers: ["{provider}"]}}'
            answer = staff.ask(f"""{{ usageSummary(range: {{period: {period}}}{where}) {{
                totals {{ {METRICS} }}
                byProvider {{ provider metrics {{ requests cost totalTokens }} }}
                byModel {{ model metrics {{ requests cost }} }}
                previousWindow {{ start end totals {{ requests cost }} costChangePercent }}
                previousCalendarPeriod {{ start end label totals {{ requests cost }} }} }} }}""")["usageSummary"]
            first, last = period_days(period)
            filters = {} if provider is None else {"provider": provider}
            logs = logs_between(first, last, **filters)
            assert logs, (period, provider)
            assert answer["totals"] == expected_metrics(logs), (period, provider)
            providers = by(logs, lambda log: log.provider)
            assert {row["provider"]: row["metrics"] for row in answer["byProvider"]} == {
                name: {k: expected_metrics(group)[k] for k in ("requests", "cost", "totalTokens")}
                for name, group in providers.items()
            }
            models = {name: expected_metrics(group) for name, group in by(logs, lambda log: log.model).items()}
            assert {row["model"]: row["metrics"]["cost"] for row in answer["byModel"]} == {
                name: m["cost"] for name, m in models.items()
            }
            span = (last - first).days + 1
            before = (first - timedelta(days=span), first - timedelta(days=1))
            window = answer["previousWindow"]
            assert (window["start"], window["end"]) == (before[0].isoformat(), before[1].isoformat())
            earlier = expected_metrics(logs_between(*before, **filters))
            assert window["totals"] == {"requests": earlier["requests"], "cost": earlier["cost"]}
            calendar = answer["previousCalendarPeriod"]
            if period in ("TODAY", "WEEK", "MONTH"):
                days = (month_before(first), month_before(last))
                assert (calendar["start"], calendar["end"]) == (days[0].isoformat(), days[1].isoformat())
                same = expected_metrics(logs_between(*days, **filters))
                assert calendar["totals"] == {"requests": same["requests"], "cost": same["cost"]}
                assert calendar["label"].endswith(f"{days[1]:%b} {days[1].day}, {days[1].year}")


def test_cost_timelines_token_usage_and_top_users(world: dict[str, Any]) -> None:
    """Seed 003: the cost timeline by day, week and month (one row per period and provider, zeros included), the
    token breakdowns with their daily series, and the top users with who they are (staff only)."""
    staff = world["staff"]
    starts = {
        "DAY": lambda d: d,
        "WEEK": lambda d: d - timedelta(days=d.weekday()),
        "MONTH": lambda d: d.replace(day=1),
    }
    for period, granularity in (("MONTH", "DAY"), ("YEAR", "WEEK"), ("YEAR", "MONTH"), ("ALL", "DAY")):
        rows = staff.ask(f"""{{ costTimeline(range: {{period: {period}}}, granularity: {granularity},
            groupBy: [PROVIDER]) {{ rows {{ period provider metrics {{ requests cost totalTokens }} }} }} }}""")[
            "costTimeline"
        ]["rows"]
        first, last = period_days(period)
        logs = logs_between(first, last)
        start_of = starts[granularity]
        periods = sorted({start_of(first + timedelta(days=n)) for n in range((last - first).days + 1)})
        groups = by(logs, lambda log, start_of=start_of: (start_of(local_day(log)), log.provider))
        providers = sorted({log.provider for log in logs})
        assert len(rows) > len(groups)  # some periods without calls are shown as zeros
        assert [(row["period"][:10], row["provider"]) for row in rows] == [
            (p.isoformat(), name) for p in periods for name in providers
        ]
        for row in rows:
            m = expected_metrics(groups.get((date.fromisoformat(row["period"][:10]), row["provider"]), []))
            assert row["metrics"] == {"requests": m["requests"], "cost": m["cost"], "totalTokens": m["totalTokens"]}
    tokens = staff.ask("""{ tokenUsage(range: {period: MONTH}) {
        byProvider { provider metrics { inputTokens outputTokens } } byModel { model metrics { totalTokens } }
        daily { period metrics { totalTokens } } } }""")["tokenUsage"]
    first, last = period_days("MONTH")
    logs = logs_between(first, last)
    assert {r["provider"]: r["metrics"] for r in tokens["byProvider"]} == {
        name: {"inputTokens": expected_metrics(g)["inputTokens"], "outputTokens": expected_metrics(g)["outputTokens"]}
        for name, g in by(logs, lambda log: log.provider).items()
    }
    assert {r["model"]: r["metrics"]["totalTokens"] for r in tokens["byModel"]} == {
        name: expected_metrics(g)["totalTokens"] for name, g in by(logs, lambda log: log.model).items()
    }
    daily = by(logs, local_day)
    assert [(r["period"][:10], r["metrics"]["totalTokens"]) for r in tokens["daily"]] == [
        (
            (first + timedelta(days=n)).isoformat(),
            expected_metrics(daily.get(first + timedelta(days=n), []))["totalTokens"],
        )
        for n in range((last - first).days + 1)
    ]
    top = staff.ask("""{ topUsers(range: {period: MONTH}, limit: 10) { rows {
        user { id username email } metrics { cost requests totalTokens avgCostPerRequest } } } }""")["topUsers"]
    spenders = sorted(by(logs, lambda log: log.user_id).items(), key=lambda item: -sum(
        (log.total_cost or Decimal(0) for log in item[1]), Decimal(0)))  # fmt: skip
    assert len(spenders) == 3
    assert top["rows"] == [
        {"user": {"id": str(user_id), "username": world["people"][user_id].username,
                  "email": world["people"][user_id].email},
         "metrics": {k: expected_metrics(group)[k] for k in ("cost", "requests", "totalTokens", "avgCostPerRequest")}}
        for user_id, group in spenders
    ]  # fmt: skip
    assert world["alice"].refused("{ topUsers { rows { userId } } }") == [
        "topUsers needs the usage.view_ai_analytics permission (to read every user's usage)"
    ]
