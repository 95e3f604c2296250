"""Requests no view can serve safely are refused with 400 before any view runs.

A NUL character cannot be stored in or compared with a PostgreSQL text column: a filter, a search or a form field
holding one makes the database raise, which would reach the caller as a 500. No real address, filter or form value
contains one, so the request is refused whole, with a short plain answer (JSON for the GraphQL endpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.urls import reverse
from django.views.csrf import csrf_failure as django_csrf_failure

NUL = "\x00"
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CSRF_MISSING = (
    "CSRF verification failed: a request with a session cookie needs the X-CSRFToken header "
    "(or send 'Authorization: Bearer <api key>' instead of the session)"
)


def graphql_error_response(message: str, status: int = 400) -> JsonResponse:
    """A refusal in the GraphQL response shape, so API clients read it like any other error."""
    return JsonResponse({"data": None, "errors": [{"message": message}]}, status=status)


def _holds_nul(pairs: Iterable[tuple[str, list[str]]]) -> bool:
    return any(NUL in key or any(NUL in value for value in values) for key, values in pairs)


def nul_in_request(request: HttpRequest, is_graphql: bool) -> str | None:
    """Where a NUL character is, if anywhere: the path, the query string or a form field."""
    if NUL in request.path:
        return "the address"
    if _holds_nul(request.GET.lists()):
        return "the query string"
    # The GraphQL view reads its body itself (JSON); its strings are checked argument by argument.
    reads_form = not is_graphql and request.method == "POST" and request.content_type in FORM_CONTENT_TYPES
    return "a form field" if reads_form and _holds_nul(request.POST.lists()) else None


class RefuseMalformedRequests:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        is_graphql = request.path == reverse("graphql")
        where = nul_in_request(request, is_graphql)
        if where is None:
            return self.get_response(request)
        message = f"NUL characters are not allowed in {where}"
        if is_graphql:
            return graphql_error_response(message)
        return HttpResponseBadRequest(message, content_type="text/plain")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused CSRF check: JSON for the GraphQL endpoint (its clients parse JSON), Django's page elsewhere."""
    if request.path == reverse("graphql"):
        return graphql_error_response(CSRF_MISSING, 403)
    return django_csrf_failure(request, reason)
