"""Field permissions, declared on each field and decided by usage.permissions (the one model the admin shares).
A refusal is always an error naming the field and the permission it needs, never an empty answer; a caller without
valid credentials is answered HTTP 401."""

from __future__ import annotations

from typing import Any, ClassVar

from strawberry.permission import BasePermission

from graphql_api.context import Info
from graphql_api.errors import NotAuthenticatedError, PermissionDeniedError
from usage.permissions import AUTHENTICATION_REQUIRED, Action, may, refusal, signed_in


class Needs(BasePermission):
    """A field's permission: the action it takes, as usage.permissions decides."""

    action: ClassVar[Action]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        user = current_user(info)
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


def current_user(info: Info) -> Any:
    """The signed-in caller, or a 401 authentication error."""
    user = info.context.user
    if not signed_in(user):
        info.context.response.status_code = 401
        raise NotAuthenticatedError(AUTHENTICATION_REQUIRED)
    return user


def sees_everyone(user: Any) -> bool:
    """Users granted usage.view_ai_analytics (and superusers) see every user's usage; others only their own."""
    return may(user, Action.READ_EVERYONE)


def records_for_others(user: Any) -> bool:
    return may(user, Action.RECORD_FOR_OTHERS)
