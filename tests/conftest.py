from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from graphql_api.limits.ratelimit import forget_counts
from usage.budgets import limit_cache
from usage.catalog import load_catalog, sync_catalog
from usage.models import AIProviderPricing, PriceSource
from usage.pricing import forget_cached_prices
from usage.validation import forget_known_users

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

requires_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (the CI's second pass runs it)"
)


# SQLite keeps decimals as floating point (15 significant digits, as the README says), so a sum over rows that
# concurrent writers committed in a different order each run can differ in its last digits. PostgreSQL's numeric
# sums are exact, and there the amounts are compared whole.
SQLITE_SUM_QUANTUM = Decimal("1e-10")


def as_summed(amount: Decimal) -> Decimal:
    """An amount as the database under test can sum it: unchanged on PostgreSQL, to 10 decimal places on SQLite."""
    return amount if connection.vendor == "postgresql" else amount.quantize(SQLITE_SUM_QUANTUM)


def each_as_summed(amounts: dict[Any, Decimal]) -> dict[Any, Decimal]:
    return {key: as_summed(amount) for key, amount in amounts.items()}


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> None:
    """Test users' passwords are hashed with MD5 instead of 1,000,000 PBKDF2 rounds (about 0.3 s each, and most
    tests make several users). PBKDF2 stays accepted for any hash made with it."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]


@pytest.fixture(autouse=True, scope="session")
def _jobs_run_inline() -> None:
    """Jobs queued by the code under test run inline (test_worker runs a real worker and broker instead)."""
    from project.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    forget_cached_prices()
    limit_cache.clear()
    forget_known_users()
    forget_counts()


@pytest.fixture
def alice(db: None) -> Any:
    return get_user_model().objects.create_user("alice", "alice@example.com", "pw")


@pytest.fixture
def bob(db: None) -> Any:
    return get_user_model().objects.create_user("bob", "bob@example.com", "pw")


@pytest.fixture
def make_price(db: None) -> Callable[..., AIProviderPricing]:
    """A manual price version: input/output USD per million tokens, in force from EPOCH unless told otherwise."""

    def make(provider: str = "acme", model: str = "acme-1", **fields: Any) -> AIProviderPricing:
        values: dict[str, Any] = {
            "input_price": Decimal("2.00"),
            "output_price": Decimal("8.00"),
            "effective_from": EPOCH,
            "source": PriceSource.MANUAL,
        }
        values.update(fields)
        return AIProviderPricing.objects.create(provider=provider, model=model, **values)

    return make


@pytest.fixture
def catalog(db: None) -> None:
    """The catalog bundled with genai-prices, imported into the test database."""
    if not AIProviderPricing.objects.filter(source=PriceSource.CATALOG).exists():
        sync_catalog(load_catalog())
