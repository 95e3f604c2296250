"""The user a row is about: id and username for every caller, the email only for callers who may see everyone
(and for the user themself)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import strawberry
import strawberry_django
from django.contrib.auth import get_user_model
from django.db.models import Q

from graphql_api.context import Info
from graphql_api.errors import BadArgumentError, PermissionDeniedError
from graphql_api.permissions import current_user, sees_everyone
from usage.permissions import NotPermitted
from usage.validation import parse_id
from usage.visibility import check_user_ids


@strawberry_django.type(get_user_model(), name="User")
class UserType:
    id: strawberry.ID
    username: str

    @strawberry_django.field(only=["email"], description="null unless the caller may see everyone (or is this user)")
    def email(self, info: Info) -> str | None:
        caller = current_user(info)
        user: Any = self
        return (user.email or "") if sees_everyone(caller) or caller.pk == user.pk else None


def as_user_type(user: Any) -> UserType:
    """A user model instance where the schema expects the User type (strawberry-django resolves its fields)."""
    return cast("UserType", user)


def users_by_id(ids: Iterable[int | None]) -> dict[int, Any]:
    """The users these ids name, in one query."""
    wanted = {user_id for user_id in ids if user_id is not None}
    if not wanted:
        return {}
    return dict(get_user_model().objects.only("id", "username", "email").in_bulk(wanted))


def user_ids_q(info: Info, value: list[strawberry.ID], prefix: str, argument: str) -> Q:
    """Rows of these users; naming another user without the permission to see everyone is refused."""
    parsed = [parse_id(user_id) for user_id in value]
    if any(user_id is None for user_id in parsed):
        raise BadArgumentError(argument, "must be user ids")
    try:
        check_user_ids(current_user(info), [int(user_id) for user_id in parsed if user_id is not None], argument)
    except NotPermitted as exc:
        raise PermissionDeniedError(str(exc)) from exc
    return Q(**{f"{prefix}user_id__in": parsed})
