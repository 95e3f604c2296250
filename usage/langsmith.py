"""LangSmith connection state: connected, disconnected (with the reason) or not configured.

The probe asks LangSmith for the configured project with a short timeout and no retries, so a status page never
hangs on it, and its answer is cached for a minute (shared between processes when the cache is Redis).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)
STATUS_CACHE_KEY = "langsmith:status"
STATUS_CACHE_SECONDS = 60
CONNECTED, DISCONNECTED, NOT_CONFIGURED = "connected", "disconnected", "not configured"


@dataclass(frozen=True)
class LangSmithStatus:
    state: str
    reason: str = ""
    project: str = ""
    url: str = ""  # "View in LangSmith": the project's page when it exists, else LangSmith's home

    @property
    def label(self) -> str:
        return f"{self.state}: {self.reason}" if self.reason else self.state


def configured() -> bool:
    return bool(settings.LANGSMITH_API_KEY)


def langsmith_client(retries: int, timeout_seconds: float) -> Any:
    """A client for the configured LangSmith that sends each request itself (no batching thread of its own: our
    callers are already in the background or must answer at once), with bounded retries and timeout."""
    from langsmith import Client
    from urllib3.util import Retry

    timeout_ms = int(timeout_seconds * 1000)
    return Client(
        api_url=settings.LANGSMITH_ENDPOINT, api_key=settings.LANGSMITH_API_KEY, web_url=settings.LANGSMITH_WEB_URL,
        retry_config=Retry(total=retries, backoff_factor=0.5), timeout_ms=(timeout_ms, timeout_ms),
        auto_batch_tracing=False,
    )  # fmt: skip


def probe_client() -> Any:
    """For the status check: one quick request, no retries."""
    return langsmith_client(retries=0, timeout_seconds=settings.LANGSMITH_TIMEOUT_SECONDS)


def check_status() -> LangSmithStatus:
    """Ask LangSmith now (uncached)."""
    if not configured():
        return LangSmithStatus(NOT_CONFIGURED, "LANGSMITH_API_KEY is not set")
    project, home = settings.LANGSMITH_PROJECT, settings.LANGSMITH_WEB_URL
    try:
        found = next(iter(probe_client().list_projects(name=project, limit=1)), None)
    except Exception as exc:  # any failure is the answer: the reason is shown to staff
        return LangSmithStatus(DISCONNECTED, _reason(exc), project, home)
    url = f"{home}/o/{found.tenant_id}/projects/p/{found.id}" if found is not None else home
    return LangSmithStatus(CONNECTED, "" if found else f"project {project!r} has no runs yet", project, url)


def _reason(exc: Exception) -> str:
    """What staff need to act on: a timeout or a refused connection said plainly, anything else abridged."""
    text = " ".join(str(exc).split())
    if "timed out" in text.lower():
        return f"no answer within {settings.LANGSMITH_TIMEOUT_SECONDS} s from {settings.LANGSMITH_ENDPOINT}"
    if "connection refused" in text.lower():
        return f"connection refused by {settings.LANGSMITH_ENDPOINT}"
    return f"{type(exc).__name__}: {text[:200]}"


def langsmith_status() -> LangSmithStatus:
    """The cached state (at most a minute old)."""
    with _cache_may_be_down():
        cached = cache.get(STATUS_CACHE_KEY)
        if cached is not None:
            return LangSmithStatus(**cached)
    status = check_status()
    with _cache_may_be_down():
        cache.set(STATUS_CACHE_KEY, asdict(status), STATUS_CACHE_SECONDS)
    return status


def forget_status() -> None:
    with _cache_may_be_down():
        cache.delete(STATUS_CACHE_KEY)


@contextmanager
def _cache_may_be_down() -> Iterator[None]:
    """The cache only saves requests to LangSmith: with Redis down the status is checked afresh, pages still load."""
    try:
        yield
    except Exception as exc:  # redis-py's ConnectionError and TimeoutError, whichever client raises them
        logger.warning("cache unavailable, LangSmith status not cached: %s", exc)
