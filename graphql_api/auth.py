"""Bearer API keys on the GraphQL endpoint. A request with an Authorization header is that key's user or is
refused outright; browsers never send such a header on their own, so these requests skip the CSRF check that
session-authenticated requests keep."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from usage.apikeys import key_for

BAD_KEY = "Authorization: unknown, revoked or malformed API key (expected 'Bearer aik_...')"


class ApiKeyMiddleware:
    """Placed after AuthenticationMiddleware: a valid key replaces the session user for this request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = request.headers.get("Authorization")
        if request.path != reverse("graphql"):
            return self.get_response(request)
        if header is None and not request.user.is_authenticated:
            # No credentials (no session cookie, or one of no signed-in user): nothing a forged cross-site request
            # could borrow, so no CSRF check; the caller gets the API's own "authentication required".
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        if header is not None:
            scheme, _, token = header.partition(" ")
            key = key_for(token.strip()) if scheme.lower() == "bearer" else None
            if key is None:
                return JsonResponse({"errors": [{"message": BAD_KEY}]}, status=401)
            request.user, request.api_key = key.user, key  # type: ignore[attr-defined]
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return self.get_response(request)
