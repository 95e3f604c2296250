"""The GraphQL schema, merged from one module per domain: usage and logs, spend and limits, analytics slices and
operations. The exported SDL is committed as schema.graphql: it is the contract for frontends."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry_django.optimizer import DjangoOptimizerExtension

from graphql_api.client_errors import ClientMistakes, Schema
from graphql_api.errors import should_mask_error
from graphql_api.limits.cost import QueryCostBudget
from graphql_api.limits.ratelimit import RateLimits
from graphql_api.limits.timeout import StatementTimeout
from graphql_api.operations.schema import OperationsMutation, OperationsQuery
from graphql_api.scalars import SCALAR_MAP
from graphql_api.slices.schema import SlicesQuery
from graphql_api.spend.limits import SpendListsQuery
from graphql_api.spend.schema import SpendMutation, SpendQuery
from graphql_api.usage_logs.schema import UsageLogsMutation, UsageLogsQuery

Query = merge_types("Query", (OperationsQuery, SlicesQuery, UsageLogsQuery, SpendQuery, SpendListsQuery))
Mutation = merge_types("Mutation", (UsageLogsMutation, SpendMutation, OperationsMutation))


@cache
def _limit_rules(max_depth: int, max_aliases: int) -> tuple[Any, ...]:
    """The depth and alias rules for these limits. Strawberry's limiters make a new rule class per instance; made
    once per value, the rules are the same on every request, so a validated query can be served from the cache."""
    depth = QueryDepthLimiter(max_depth=max_depth).validation_rules
    aliases = MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules
    return (*depth, *aliases)


class RequestLimits(AddValidationRules):
    """Query depth and alias limits, read from settings on each request."""

    def __init__(self) -> None:
        super().__init__(list(_limit_rules(settings.GRAPHQL_MAX_DEPTH, settings.GRAPHQL_MAX_ALIASES)))


def extensions() -> list[Any]:
    chosen: list[Any] = [
        RequestLimits,
        lambda: MaxTokensLimiter(max_token_count=settings.GRAPHQL_MAX_TOKENS),
        lambda: MaskErrors(should_mask_error=should_mask_error),
        # Dashboards send the same few query texts again and again: parse and validate each once per process.
        # Both caches are keyed by everything that decides the outcome (text, token limit, rules), and bounded.
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        ClientMistakes,  # after ValidationCache: it reads and replaces the errors that one sets
        # Before anything runs, in this order: the caller's rate limits, the query's cost; then a time limit.
        RateLimits,
        QueryCostBudget,
        StatementTimeout,
        DjangoOptimizerExtension,
    ]
    if not settings.GRAPHQL_INTROSPECTION:
        chosen.append(DisableIntrospection)
    return chosen


CONFIG = StrawberryConfig(scalar_map=SCALAR_MAP, disable_field_suggestions=not settings.DEBUG)
schema = Schema(query=Query, mutation=Mutation, config=CONFIG, extensions=extensions())
