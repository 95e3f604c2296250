"""Who may do what: the one permission model, shared by the GraphQL API, the admin pages and the CSV exports.

Every signed-in, active user may read and record their own usage. Beyond that each capability is a permission of
its own, so reading everyone's figures never lets anyone act on others:

- READ_EVERYONE (`usage.view_ai_analytics`): every user's usage, spend and CAU, in the API and (for staff, who alone
  can open the admin) the analytics pages, the log list and the exports.
- RECORD_FOR_OTHERS (`usage.record_ai_usage_for_others`): record a call on another user's behalf.
- CHANGE_LIMITS (`usage.change_userspendlimit`, Django's own for the limits model, so the admin form and the API
  agree): set a user's daily and monthly limits, reset their alerts.
- QUEUE_JOBS (`usage.queue_ai_jobs`): queue a rollup or a pricing sync, send pending alerts now.

`is_staff` grants none of these: it only lets a user open the admin. Superusers hold every permission.
The README's permission table is this module in prose.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class Action(Enum):
    READ_OWN = "read their own usage"
    RECORD_OWN = "record their own usage"
    READ_EVERYONE = "read every user's usage"
    RECORD_FOR_OTHERS = "record usage for other users"
    CHANGE_LIMITS = "change spend limits"
    QUEUE_JOBS = "queue jobs"


PERMISSION_OF = {
    Action.READ_EVERYONE: "usage.view_ai_analytics",
    Action.RECORD_FOR_OTHERS: "usage.record_ai_usage_for_others",
    Action.CHANGE_LIMITS: "usage.change_userspendlimit",
    Action.QUEUE_JOBS: "usage.queue_ai_jobs",
}

AUTHENTICATION_REQUIRED = "authentication required: log in, or send 'Authorization: Bearer <api key>'"


def signed_in(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def may(user: Any, action: Action) -> bool:
    """Whether this user may take this action (an active superuser may take every action)."""
    if not signed_in(user):
        return False
    permission = PERMISSION_OF.get(action)
    return permission is None or bool(user.has_perm(permission))


def may_in_admin(user: Any, action: Action) -> bool:
    """The same decision inside the admin, which only staff can open at all."""
    return bool(signed_in(user) and user.is_staff and may(user, action))


def refusal(user: Any, action: Action, what: str) -> str:
    """Why `user` may not do `what`: not signed in, or the permission it needs."""
    if not signed_in(user):
        return AUTHENTICATION_REQUIRED
    return f"{what} needs the {PERMISSION_OF[action]} permission (to {action.value})"


class NotPermitted(PermissionError):
    """Raised by domain code asked to act for a caller who may not; the message says what was needed."""


def require(user: Any, action: Action, what: str) -> None:
    if not may(user, action):
        raise NotPermitted(refusal(user, action, what))
