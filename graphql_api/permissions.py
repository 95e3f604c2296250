"""Who is asking, what they may see, and the errors the API shows as they are (everything else is masked)."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.types import Info

from usage.validation import InvalidUsage


class PermissionDeniedError(Exception):
    """The caller may not do this. Shown to the caller; never turned into an empty answer."""


class BadArgumentError(Exception):
    """An argument is wrong; the message names it and the problem."""

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}")


class ServiceUnavailableError(Exception):
    """A dependency (the database) is down; the message says what was not done, without internal addresses."""


VISIBLE_ERRORS = (PermissionDeniedError, BadArgumentError, InvalidUsage, ServiceUnavailableError)


def should_mask_error(error: GraphQLError) -> bool:
    """Validation errors (no original error) and our own refusals are shown; anything unexpected is masked."""
    original = error.original_error
    # GraphQL's own refusals (a variable of the wrong type or null where a value is required) name the path.
    return original is not None and not isinstance(original, (*VISIBLE_ERRORS, GraphQLError))


def current_user(info: Info[Any, Any]) -> Any:
    user = info.context.request.user
    if not user.is_authenticated or not user.is_active:
        raise PermissionDeniedError("authentication required: log in, or send 'Authorization: Bearer <api key>'")
    return user


def sees_everyone(user: Any) -> bool:
    """Staff, and users granted usage.view_ai_analytics, see every user's usage; others only their own."""
    return bool(user.is_staff or user.has_perm("usage.view_ai_analytics"))


def staff_user(info: Info[Any, Any], action: str) -> Any:
    user = current_user(info)
    if not user.is_staff:
        raise PermissionDeniedError(f"{action} is for staff only")
    return user


def analytics_viewer(info: Info[Any, Any], what: str) -> Any:
    user = current_user(info)
    if not sees_everyone(user):
        raise PermissionDeniedError(f"{what} needs staff or the usage.view_ai_analytics permission")
    return user
