"""Rate limits on the GraphQL API: reads (requests) and writes (recordUsage events), per API key, per logged-in
user, and per address for anonymous requests, in fixed windows that start at a caller's first request.

Counts live in Redis when REDIS_URL is set, so every web process shares them; otherwise in this process's memory.
When Redis cannot be reached the request is still served: the limiter logs it and counts in memory until Redis
answers again (checked every few seconds), so an outage neither fails requests nor lifts the limits.
A refused request answers HTTP 429 with Retry-After and a GraphQL error, and does not count against the limit
that refused it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings
from graphql import ExecutionResult, GraphQLError, OperationType
from strawberry.extensions import SchemaExtension

from graphql_api.limits.cost import costs_of
from graphql_api.limits.operation import Operation, operation_of
from graphql_api.usage_logs.ingest import MAX_EVENTS

logger = logging.getLogger(__name__)

KEY_PREFIX = "ratelimit:"
REDIS_TIMEOUT_SECONDS = 0.25
REDIS_RETRY_SECONDS = 5.0
LOCAL_MAX_KEYS = 10_000

# Adds `amount` unless that would pass `limit`; the window starts with the first amount. Returns whether it was
# taken, and the milliseconds until the window ends.
TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if used + amount > limit then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then left = window end
  return {0, left}
end
redis.call('INCRBY', KEYS[1], amount)
if used == 0 then redis.call('PEXPIRE', KEYS[1], window) end
return {1, redis.call('PTTL', KEYS[1])}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # whole seconds until the window ends


class LocalCounts:
    """Windows in this process's memory (without Redis, or while Redis is down)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (used, ends at, monotonic)

    def take(self, key: str, amount: int, limit: int, window: int) -> Verdict:
        now = time.monotonic()
        with self._lock:
            used, ends = self._windows.get(key, (0, now + window))
            if ends <= now:
                used, ends = 0, now + window
            if used + amount > limit:
                return Verdict(False, math.ceil(ends - now))
            if len(self._windows) >= LOCAL_MAX_KEYS:
                self._forget_ended(now)
            self._windows[key] = (used + amount, ends)
            return Verdict(True, math.ceil(ends - now))

    def _forget_ended(self, now: float) -> None:
        self._windows = {key: entry for key, entry in self._windows.items() if entry[1] > now}

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


local_counts = LocalCounts()
_redis_retry_at = 0.0


@cache
def _redis_take(url: str) -> Any:
    client = redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
    return client.register_script(TAKE)


def take(key: str, amount: int, limit: int, window: int) -> Verdict:
    """Use `amount` of the allowance under `key`, unless that would pass `limit` in this window."""
    global _redis_retry_at
    url = settings.REDIS_URL
    if url and time.monotonic() >= _redis_retry_at:
        try:
            taken, left_ms = _redis_take(url)(keys=[KEY_PREFIX + key], args=[amount, limit, window * 1000])
            return Verdict(bool(taken), max(1, math.ceil(int(left_ms) / 1000)))
        except redis.RedisError as exc:
            _redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning("rate limits: Redis unavailable (%s); counting in this process for now", exc)
    return local_counts.take(key, amount, limit, window)


def forget_counts() -> None:
    """Start every window afresh (tests)."""
    global _redis_retry_at
    local_counts.clear()
    _redis_retry_at = 0.0
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT_SECONDS)
        try:
            keys = list(client.scan_iter(match=KEY_PREFIX + "*", count=1000))
            if keys:
                client.delete(*keys)
        except redis.RedisError:
            pass  # nothing was counted there
        finally:
            client.close()


def caller_of(request: Any) -> tuple[str, str]:
    """The identity whose allowance a request uses, and how to name it to the caller. Requests with an API key
    reach this point only with a valid key (others were refused with 401), so the key's hash names it."""
    token = request.headers.get("Authorization", "").partition(" ")[2].strip()  # as the key check reads it
    if token:
        return "key:" + hashlib.sha256(token.encode()).hexdigest()[:32], "this API key"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}", "this user"
    return f"ip:{request.META.get('REMOTE_ADDR', '')}", "this address"


def events_sent(operation: Operation) -> int:
    """The recordUsage events in a mutation, over every alias (a single object counts as a list of one)."""
    if operation.kind is not OperationType.MUTATION:
        return 0
    total = 0
    for field in operation.fields:
        if field.name == "recordUsage":
            events = field.arguments.get("events")
            total += len(events) if isinstance(events, list) else int(events is not None)
    return total


def _allowances(request: Any, operation: Operation, units: int) -> Iterator[tuple[str, int, int, str]]:
    """(key, amount, limit, what) for each allowance this request uses; `units` is the operation's estimated cost."""
    caller, who = caller_of(request)
    window = settings.API_RATE_LIMIT_WINDOW_SECONDS
    if caller.startswith("ip:"):
        yield caller, 1, settings.API_RATE_LIMIT_ANONYMOUS, f"requests per {window} s from {who}"
        return
    events = events_sent(operation)
    if events:
        yield f"writes:{caller}", events, settings.API_RATE_LIMIT_WRITES, f"recorded events per {window} s for {who}"
    if any(field.name != "recordUsage" for field in operation.fields) or not events:
        yield f"reads:{caller}", 1, settings.API_RATE_LIMIT_READS, f"requests per {window} s for {who}"
    # Requests that each fit the cost budget can still, one after another, keep every worker busy: their
    # estimated work is rationed too. An operation over the budget is refused by the budget itself, unrun.
    if 0 < units <= settings.GRAPHQL_MAX_COST:
        yield f"cost:{caller}", units, settings.API_RATE_LIMIT_COST, f"query cost units per {window} s for {who}"


def too_many_events(operation: Operation) -> str | None:
    """recordUsage takes at most MAX_EVENTS events per request, however many aliases share them."""
    events = events_sent(operation)
    if events <= MAX_EVENTS:
        return None
    return f"recordUsage: at most {MAX_EVENTS:,} events per request (over all aliases), got {events:,}"


def refusal(request: Any, operation: Operation, units: int) -> tuple[str, int] | None:
    """The message and Retry-After seconds when the request is over a limit, else None."""
    window = settings.API_RATE_LIMIT_WINDOW_SECONDS
    for key, amount, limit, what in _allowances(request, operation, units):
        verdict = take(key, amount, limit, window)
        if not verdict.allowed:
            asked = f" (this request: {amount:,})" if amount > 1 else ""
            return f"rate limit: at most {limit:,} {what}{asked}; retry in {verdict.retry_after} s", verdict.retry_after
    return None


class RateLimits(SchemaExtension):
    """Answers 429 with Retry-After, before anything runs, when the caller is over a limit."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        request = getattr(context.context, "request", None)
        operation = operation_of(context) if request is not None and context.result is None else None
        if operation is not None and (message := too_many_events(operation)):
            context.result = ExecutionResult(data=None, errors=[GraphQLError(message)])
        elif operation is not None:
            refused = refusal(request, operation, sum(cost.units for cost in costs_of(context, operation)))
            if refused is not None:
                message, retry_after = refused
                error = GraphQLError(message, extensions={"code": "RATE_LIMITED", "retryAfter": retry_after})
                context.result = ExecutionResult(data=None, errors=[error])
                response = context.context.response
                response.status_code = 429
                response["Retry-After"] = str(retry_after)
        yield
