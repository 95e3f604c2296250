"""Offset pagination with bounds that are errors, not silent caps: strawberry-django clamps a limit above its
maximum to 100 without a word, and a client that asked for 500 rows must be told it got at most 100."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.extensions.field_extension import FieldExtension
from strawberry_django.pagination import OffsetPaginationInput

from graphql_api.errors import BadArgumentError

MAX_PAGE = 100  # strawberry-django's PAGINATION_MAX_LIMIT


def check_page(pagination: OffsetPaginationInput | None, argument: str = "pagination") -> None:
    if pagination is None or pagination is strawberry.UNSET:
        return
    limit = pagination.limit
    if limit is not None and limit is not strawberry.UNSET and not 1 <= limit <= MAX_PAGE:
        raise BadArgumentError(f"{argument}.limit", f"must be between 1 and {MAX_PAGE}, got {limit}")
    if pagination.offset < 0:
        raise BadArgumentError(f"{argument}.offset", f"must not be negative, got {pagination.offset}")


class PageBounds(FieldExtension):
    """Refuses a page limit outside 1..100 or a negative offset, naming the argument, before the field resolves."""

    def resolve(self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        check_page(kwargs.get("pagination"))
        return next_(source, info, **kwargs)
