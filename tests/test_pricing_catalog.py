"""Our exact costs agree with genai-prices' own calculation, and the catalog import versions prices correctly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from genai_prices import Usage, calc_price

from usage.catalog import CATALOG_EPOCH, CatalogError, load_catalog, sync_catalog
from usage.models import AIProviderPricing, PriceSource, StaleHour, UserDailySpend
from usage.pricing import TokenCounts, find_price, price_call
from usage.recording import record_usage

AT = datetime(2025, 11, 3, 12, 0, tzinfo=UTC)

# (our provider name, the name an app would send, genai-prices provider id)
REAL_MODELS = [
    ("openai", "gpt-4o", "openai"),
    ("openai", "gpt-4o-2024-08-06", "openai"),
    ("openai", "gpt-4o-mini", "openai"),
    ("openai", "gpt-4o-mini-2024-07-18", "openai"),
    ("openai", "gpt-4.1", "openai"),
    ("openai", "gpt-4.1-mini", "openai"),
    ("openai", "o3-mini", "openai"),
    ("openai", "o1", "openai"),
    ("openai", "gpt-3.5-turbo", "openai"),
    ("anthropic", "claude-3-5-sonnet-20241022", "anthropic"),
    ("anthropic", "claude-3-5-haiku-20241022", "anthropic"),
    ("anthropic", "claude-3-opus-20240229", "anthropic"),
    ("anthropic", "claude-sonnet-4-20250514", "anthropic"),
    ("anthropic", "claude-3-7-sonnet-latest", "anthropic"),
    ("google", "gemini-1.5-flash", "google"),
    ("google", "gemini-1.5-pro", "google"),
    ("google", "gemini-2.0-flash", "google"),
    ("google", "gemini-2.5-pro", "google"),
    ("google", "gemini-2.5-flash", "google"),
    ("mistral", "mistral-large-latest", "mistral"),
    ("mistral", "mistral-small-latest", "mistral"),
    ("deepseek", "deepseek-reasoner", "deepseek"),
    ("groq", "llama-3.3-70b-versatile", "groq"),
    ("x-ai", "grok-3", "x-ai"),
    ("cohere", "command-r-plus", "cohere"),
]

USAGES = [
    TokenCounts(input_tokens=1234, output_tokens=567),
    TokenCounts(input_tokens=250_000, output_tokens=4_000, cached_input_tokens=100_000),
    TokenCounts(input_tokens=9_000, output_tokens=1_000, cached_input_tokens=3_000, cache_write_tokens=2_000),
    TokenCounts(input_tokens=1, output_tokens=1),
    TokenCounts(input_tokens=0, output_tokens=0),
]


def reference_cost(provider: str, model: str, tokens: TokenCounts) -> Decimal:
    usage = Usage(
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cache_read_tokens=tokens.cached_input_tokens,
        cache_write_tokens=tokens.cache_write_tokens,
    )
    return calc_price(usage, model, provider_id=provider, genai_request_timestamp=AT).total_price


@pytest.mark.parametrize(("provider", "model", "catalog_provider"), REAL_MODELS)
def test_cost_matches_genai_prices_to_the_last_decimal(
    catalog: None, provider: str, model: str, catalog_provider: str
) -> None:
    for tokens in USAGES:
        version, cost = price_call(provider, model, AT, tokens)
        assert version is not None, f"{provider}/{model} found no price"
        assert version.source == PriceSource.CATALOG
        assert cost == reference_cost(catalog_provider, model, tokens), (model, tokens)


def test_enough_real_models_across_providers_are_compared() -> None:
    assert len(REAL_MODELS) >= 20
    assert {p for p, _, _ in REAL_MODELS} >= {"openai", "anthropic", "google", "mistral", "deepseek"}


def test_a_dated_name_resolves_to_its_model_price(catalog: None) -> None:
    dated = find_price("openai", "gpt-4o-2024-08-06", AT)
    plain = find_price("OpenAI", "gpt-4o", AT)
    assert dated is not None and plain is not None
    assert dated.model == "gpt-4o" and dated.pk == plain.pk
    anthropic = find_price("anthropic", "claude-3-5-sonnet-20241022", AT)
    assert anthropic is not None and anthropic.model == "claude-3-5-sonnet"


def test_tiers_reprice_every_token_once_the_threshold_is_crossed(catalog: None) -> None:
    """gemini-1.5-pro bills all tokens at the higher rate above 128k input tokens, as the catalog says."""
    below = TokenCounts(input_tokens=128_000, output_tokens=1_000)
    above = TokenCounts(input_tokens=128_001, output_tokens=1_000)
    version, cost_below = price_call("google", "gemini-1.5-pro", AT, below)
    _, cost_above = price_call("google", "gemini-1.5-pro", AT, above)
    assert version is not None and version.tiers["input"]
    assert cost_below == reference_cost("google", "gemini-1.5-pro", below)
    assert cost_above == reference_cost("google", "gemini-1.5-pro", above)
    assert cost_above > cost_below * 128_001 / 128_000


def test_unknown_model_has_no_price(catalog: None) -> None:
    assert find_price("openai", "no-such-model-xyz", AT) is None
    assert price_call("acme", "in-house", AT, TokenCounts(input_tokens=5)) == (None, None)


def test_first_import_then_unchanged_catalog_writes_nothing(catalog: None) -> None:
    count = AIProviderPricing.objects.count()
    newest = AIProviderPricing.objects.latest("created_at").created_at
    report = sync_catalog(load_catalog())
    assert report.added == [] and report.changed == []
    assert report.unchanged == 2125 and len(report.skipped) == 205
    assert AIProviderPricing.objects.count() == count
    assert AIProviderPricing.objects.latest("created_at").created_at == newest


def test_catalog_history_becomes_consecutive_versions(catalog: None) -> None:
    """The catalog's dated price changes are stored as versions that close where the next one opens."""
    dated = AIProviderPricing.objects.filter(source=PriceSource.CATALOG).exclude(effective_from=CATALOG_EPOCH)
    assert dated.exists()
    later = dated.first()
    assert later is not None
    earlier = AIProviderPricing.objects.get(
        provider=later.provider, model=later.model, source=PriceSource.CATALOG, effective_until=later.effective_from
    )
    assert find_price(later.provider, later.model, later.effective_from - timedelta(seconds=1)) == earlier
    assert find_price(later.provider, later.model, later.effective_from) == later


def _catalog_file(tmp_path: Path, change: dict[str, str]) -> Path:
    """A one-provider catalog file in genai-prices' v2 format, built from a tiny hand-written model list."""
    provider = {
        "id": "acme",
        "name": "Acme",
        "api_pattern": "https://api\\.acme\\.test",
        "models": [
            {"id": "acme-1", "match": {"starts_with": "acme-1"}, "prices": {"input_mtok": "1.5", "output_mtok": "6"}},
            {
                "id": "acme-2",
                "match": {"equals": "acme-2"},
                "prices": {"input_mtok": "3", "output_mtok": "12", **change},
            },
        ],
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps([provider]))
    return path


def test_changed_price_closes_the_old_version_and_opens_a_new_one(db: None, tmp_path: Path) -> None:
    sync_catalog(load_catalog(str(_catalog_file(tmp_path, {}))))
    before = timezone.now()
    report = sync_catalog(load_catalog(str(_catalog_file(tmp_path, {"output_mtok": "10"}))))
    assert report.changed == ["acme/acme-2"] and report.unchanged == 1 and report.added == []
    old, new = AIProviderPricing.objects.filter(model="acme-2").order_by("effective_from")
    assert old.output_price == Decimal("12") and old.effective_until == new.effective_from
    assert new.output_price == Decimal("10") and new.effective_until is None and new.effective_from >= before
    assert find_price("acme", "acme-2", before - timedelta(seconds=1)) == old
    assert find_price("acme", "acme-2", timezone.now()) == new


def test_manual_prices_are_never_overwritten_and_win(db: None, tmp_path: Path, make_price) -> None:  # type: ignore[no-untyped-def]
    manual = make_price(provider="acme", model="acme-1", input_price=Decimal("0.5"), output_price=Decimal("1"))
    sync_catalog(load_catalog(str(_catalog_file(tmp_path, {}))))
    sync_catalog(load_catalog(str(_catalog_file(tmp_path, {"output_mtok": "99"}))))
    manual.refresh_from_db()
    assert (manual.input_price, manual.output_price, manual.effective_until) == (Decimal("0.5"), Decimal("1"), None)
    assert find_price("acme", "acme-1", timezone.now()) == manual


def test_management_command_reports_what_it_did_and_prices_waiting_calls(alice: Any, tmp_path: Path) -> None:
    from io import StringIO

    waiting = record_usage(
        user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=1_000_000, output_tokens=3
    ).log
    assert waiting is not None and waiting.total_cost is None
    path = _catalog_file(tmp_path, {})
    out = StringIO()
    call_command("sync_ai_pricing", "--source", str(path), stdout=out)
    assert out.getvalue().splitlines() == [
        "Price catalog synced: 2 added, 0 changed, 0 unchanged, 0 skipped (not priced per token)",
        "Unpriced calls now priced: 1",
    ]
    waiting.refresh_from_db()
    assert waiting.total_cost == Decimal("1.500018") and waiting.pricing is not None
    assert waiting.pricing.model == "acme-1"
    counter = UserDailySpend.objects.get(user=alice)
    assert (counter.cost, counter.requests, counter.unpriced_requests) == (Decimal("1.500018"), 1, 0)
    assert StaleHour.objects.count() == 1
    out = StringIO()
    call_command("sync_ai_pricing", "--source", str(path), stdout=out)
    assert out.getvalue().splitlines() == [
        "Price catalog synced: 0 added, 0 changed, 2 unchanged, 0 skipped (not priced per token)",
        "Unpriced calls now priced: 0",
    ]
    counter.refresh_from_db()
    assert (counter.cost, counter.unpriced_requests) == (Decimal("1.500018"), 0)


def test_unreadable_catalog_is_a_clear_error(db: None, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(CatalogError, match=r"could not read the price catalog from .*nope\.json"):
        load_catalog(str(missing))
    assert AIProviderPricing.objects.count() == 0


@pytest.mark.parametrize("hour", [3, 12, 17, 23])
def test_daily_price_windows_follow_the_catalog(catalog: None, hour: int) -> None:
    """DeepSeek bills a peak price from 00:30 to 16:30 UTC and a discount outside it."""
    at = AT.replace(hour=hour)
    tokens = TokenCounts(input_tokens=10_000, output_tokens=2_000, cached_input_tokens=4_000)
    version, cost = price_call("deepseek", "deepseek-chat", at, tokens)
    expected = calc_price(
        Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=4_000),
        "deepseek-chat",
        provider_id="deepseek",
        genai_request_timestamp=at,
    ).total_price
    assert version is not None and cost == expected
    assert (version.daily_from_time is not None) == (hour in (3, 12))
