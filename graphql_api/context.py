"""The request context every resolver receives: who is calling, resolved once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import strawberry
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest, HttpResponse
from strawberry.django.context import StrawberryDjangoContext

from usage.models import ApiKey


@dataclass
class Context(StrawberryDjangoContext):
    user: AbstractBaseUser | AnonymousUser
    api_key: ApiKey | None  # the key the request was made with; None for a session or an anonymous caller

    @classmethod
    def of(cls, request: HttpRequest, response: HttpResponse) -> Context:
        # ApiKeyMiddleware has already replaced the session user by the key's user when a key was sent.
        return cls(request=request, response=response, user=request.user, api_key=getattr(request, "api_key", None))


Info: TypeAlias = strawberry.Info[Context, Any]
