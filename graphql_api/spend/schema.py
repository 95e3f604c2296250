"""Spend and limits: the caller's own spend, everyone's spend, and setting a user's limits."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.utils.str_converters import to_camel_case

from graphql_api.context import Info
from graphql_api.errors import BadArgumentError
from graphql_api.permissions import ChangesLimits, ReadsEveryone, SignedIn, current_user
from graphql_api.scalars import Money, UnreadableAmount
from graphql_api.spend.types import SpendStatusEnum, UserSpendPage, UserSpendType, all_user_spend, spend_type
from usage.budgets import set_spend_limits, spend_status
from usage.validation import InvalidUsage, parse_id

MAX_PAGE = 1000
LIMIT_ARGUMENT = "USD, at most 2 decimal places; null: the default limit; omitted: left as it is"


@strawberry.type
class SpendQuery:
    @strawberry.field(
        permission_classes=[SignedIn],
        description="The caller's own spend today and this month, with limits and status.",
    )
    def my_spend(self, info: Info) -> UserSpendType:
        user = current_user(info)
        return spend_type(user, spend_status(user.pk))

    @strawberry.field(
        permission_classes=[ReadsEveryone],
        description="Needs usage.view_ai_analytics: every active user's spend, most used limit first (paginate).",
    )
    def user_spend(
        self,
        statuses: Annotated[
            list[SpendStatusEnum] | None, strawberry.argument(description="any of these; omitted: every status")
        ] = None,
        status: Annotated[
            SpendStatusEnum | None, strawberry.argument(deprecation_reason="use statuses: [WARNING, EXCEEDED]")
        ] = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> UserSpendPage:
        if not 1 <= limit <= MAX_PAGE:
            raise BadArgumentError("limit", f"must be between 1 and {MAX_PAGE}, got {limit}")
        if offset < 0:
            raise BadArgumentError("offset", f"must not be negative, got {offset}")
        rows = all_user_spend([*(statuses or ()), *([status] if status else [])], search)
        return UserSpendPage(total_count=len(rows), rows=rows[offset : offset + limit])


def _limit(argument: str, value: Money | UnreadableAmount | None) -> Money | None:
    if isinstance(value, UnreadableAmount):
        raise BadArgumentError(argument, value.problem)
    return value


@strawberry.type
class SpendMutation:
    @strawberry.mutation(
        permission_classes=[ChangesLimits],
        description=(
            "Needs usage.change_userspendlimit: set a user's daily and monthly limits (null: the default; an omitted "
            "limit is unchanged)."
        ),
    )
    def set_spend_limit(
        self,
        info: Info,
        user_id: strawberry.ID,
        daily_limit: Annotated[Money | None, strawberry.argument(description=LIMIT_ARGUMENT)] = strawberry.UNSET,
        monthly_limit: Annotated[Money | None, strawberry.argument(description=LIMIT_ARGUMENT)] = strawberry.UNSET,
    ) -> UserSpendType:
        given = {"daily_limit": daily_limit, "monthly_limit": monthly_limit}
        changes = {
            name: _limit(to_camel_case(name), value) for name, value in given.items() if value is not strawberry.UNSET
        }
        number = parse_id(user_id)
        if number is None:
            raise BadArgumentError("userId", f"must be a user id such as 42, got {str(user_id)!r}")
        try:
            user = set_spend_limits(number, changes)
        except InvalidUsage as exc:
            raise BadArgumentError(to_camel_case(exc.field), exc.problem) from exc
        return spend_type(user, spend_status(user.pk))
