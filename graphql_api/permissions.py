"""Field permissions (decided by usage.permissions, the one model the admin shares) and the errors the API shows as
they are (everything else is masked)."""

from __future__ import annotations

from typing import Any, ClassVar

from graphql import GraphQLError
from strawberry.permission import BasePermission
from strawberry.types import Info

from usage.permissions import AUTHENTICATION_REQUIRED, Action, may, refusal, signed_in
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


class Needs(BasePermission):
    """A field's permission: the action it takes, as usage.permissions decides. A refusal is an error naming the
    field and the permission it needs, never an empty answer."""

    action: ClassVar[Action]

    def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        user = info.context.request.user
        if not may(user, self.action):
            raise PermissionDeniedError(refusal(user, self.action, info.field_name))
        return True


class SignedIn(Needs):
    action = Action.READ_OWN


class ReadsEveryone(Needs):
    action = Action.READ_EVERYONE


class ChangesLimits(Needs):
    action = Action.CHANGE_LIMITS


class QueuesJobs(Needs):
    action = Action.QUEUE_JOBS


def current_user(info: Info[Any, Any]) -> Any:
    user = info.context.request.user
    if not signed_in(user):
        raise PermissionDeniedError(AUTHENTICATION_REQUIRED)
    return user


def sees_everyone(user: Any) -> bool:
    """Users granted usage.view_ai_analytics (and superusers) see every user's usage; others only their own."""
    return may(user, Action.READ_EVERYONE)


def records_for_others(user: Any) -> bool:
    return may(user, Action.RECORD_FOR_OTHERS)
