"""The user a row is about: id and username for every caller, the email only for callers who may see everyone
(and for the user themself)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import strawberry
import strawberry_django
from django.contrib.auth import get_user_model

from graphql_api.context import Info
from graphql_api.permissions import current_user, sees_everyone


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
