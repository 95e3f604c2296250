"""Turn provider usage objects into token counts by the project's rule (input includes cache reads and writes).

Each function takes the SDK's response object, its `usage` attribute, or the same as a plain dict.
"""

from __future__ import annotations

from typing import Any

from usage.pricing import TokenCounts
from usage.validation import check_count, check_tokens


def _get(source: Any, name: str) -> Any:
    if source is None:
        return None
    if isinstance(source, dict):
        return source.get(name)
    return getattr(source, name, None)


def _usage_of(response_or_usage: Any) -> Any:
    usage = _get(response_or_usage, "usage")
    return response_or_usage if usage is None else usage


def _count(source: Any, *path: str) -> int:
    """A reported count, checked here (so a bad one names the response's field and nothing is written): a whole
    number, a whole float such as 2.0, or a string of ASCII digits; absent counts as 0. 2.7 is refused, not cut."""
    for name in path:
        source = _get(source, name)
    if isinstance(source, str) and source.strip().isascii() and source.strip().isdigit():
        source = int(source)
    return check_count(".".join(path), 0 if source is None else source)


def openai_tokens(response_or_usage: Any) -> TokenCounts:
    """OpenAI Chat Completions (prompt/completion) or Responses (input/output) usage. Cached tokens are in input."""
    usage = _usage_of(response_or_usage)
    if _get(usage, "prompt_tokens") is not None or _get(usage, "completion_tokens") is not None:
        input_tokens = _count(usage, "prompt_tokens")
        output_tokens = _count(usage, "completion_tokens")
        cached = _count(usage, "prompt_tokens_details", "cached_tokens")
        reasoning = _count(usage, "completion_tokens_details", "reasoning_tokens")
    else:
        input_tokens = _count(usage, "input_tokens")
        output_tokens = _count(usage, "output_tokens")
        cached = _count(usage, "input_tokens_details", "cached_tokens")
        reasoning = _count(usage, "output_tokens_details", "reasoning_tokens")
    return check_tokens(
        input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached, reasoning_tokens=reasoning
    )


def anthropic_tokens(response_or_usage: Any) -> TokenCounts:
    """Anthropic reports cache reads and writes outside input_tokens; they are added back in here."""
    usage = _usage_of(response_or_usage)
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_write = _count(usage, "cache_creation_input_tokens")
    return check_tokens(
        input_tokens=_count(usage, "input_tokens") + cache_read + cache_write,
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


ADAPTERS = {"openai": openai_tokens, "azure": openai_tokens, "anthropic": anthropic_tokens}


def tokens_from_response(provider: str, response_or_usage: Any) -> TokenCounts:
    """Token counts for a provider's response; providers with OpenAI-style usage fall back to that reading."""
    return ADAPTERS.get(provider.strip().lower(), openai_tokens)(response_or_usage)
