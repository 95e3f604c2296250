"""Model-backed GraphQL lists: usage logs, price versions, spend limits, spend alerts and rollup runs, with their
filters, ordering, pagination, permissions and a constant number of queries however many rows they answer."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from tests.test_graphql_api import gql, logged_in
from usage.models import AIUsageLog

DENIED_VIEW = "needs the usage.view_ai_analytics permission (to read every user's usage)"


def log(user: Any, minutes_ago: int, cost: str | None, **fields: Any) -> AIUsageLog:
    values: dict[str, Any] = {"feature": "chat", "provider": "acme", "model": "acme-1", "input_tokens": 100}
    values.update(fields)
    return AIUsageLog.objects.create(
        user=user, occurred_at=timezone.now() - timedelta(minutes=minutes_ago),
        total_cost=None if cost is None else Decimal(cost), **values,
    )  # fmt: skip


def test_pricing_filters(alice: Any, make_price: Any) -> None:
    make_price("acme", "acme-1")
    make_price("acme", "acme-2", input_price=Decimal("3.5"))
    make_price("zeta", "z-1")
    answer = gql(
        logged_in(alice),
        '{ pricing(filters: {provider: {exact: "acme"}}, ordering: [{inputPrice: DESC}]) { model inputPrice } }',
    )
    assert answer == {
        "data": {"pricing": [{"model": "acme-2", "inputPrice": "3.5"}, {"model": "acme-1", "inputPrice": "2"}]}
    }
