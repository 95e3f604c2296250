from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from cross_web import HTTPException
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from strawberry.django.views import GraphQLView

from graphql_api.context import Context
from graphql_api.scalars import JsonNumber
from graphql_api.schema import schema
from project.middleware import graphql_error_response

# Far deeper than any real request, so an event's over-deep metadata is rejected on its own (AI_MAX_METADATA_DEPTH)
# and the batch's good events are kept; deeper input would exhaust the JSON parser's stack.
MAX_JSON_DEPTH = 512
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def nests_deeper_than(text: str, limit: int) -> bool:
    """Whether JSON arrays and objects nest deeper than `limit`, counted without recursion (strings skipped)."""
    depth = 0
    for bracket in _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _refuse_constant(name: str) -> NoReturn:
    raise HTTPException(400, f"{name} is not a JSON value; send numbers as digits")


def decode_request_json(data: str | bytes) -> object:
    """A request's JSON (the body, or `variables` in a query string): UTF-8, bounded depth, an object or a list."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if nests_deeper_than(text, MAX_JSON_DEPTH):
        raise HTTPException(400, f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=JsonNumber)
    except json.JSONDecodeError:
        raise  # the view answers 400 "Unable to parse request body as JSON"
    except ValueError as exc:  # e.g. a number of more digits than Python converts
        raise HTTPException(400, f"Unable to parse request body as JSON: {exc}") from None
    if not isinstance(value, dict | list):
        raise HTTPException(400, 'Expected a JSON object such as {"query": "{ health { ok } }"}')
    return value


class ApiView(GraphQLView[Context, None]):
    """The endpoint: GraphiQL in a browser while DEBUG is on (read per request, so a settings change applies).
    A request that cannot be read is answered 400 with a JSON error, never a 500."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.graphql_ide = "graphiql" if settings.DEBUG else None
        try:
            return self.run(request=request)
        except HTTPException as exc:
            return graphql_error_response(exc.reason, exc.status_code)
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return graphql_error_response(f"The request body is larger than {limit:,} bytes; send fewer events", 413)

    def render_graphql_ide(self, request: HttpRequest) -> HttpResponse:
        """GraphiQL with its scripts and styles from this server (graphql_api/static), so it works offline. The CSRF
        cookie is set here because the page sends it back as the token of a signed-in session's requests."""
        get_token(request)
        return HttpResponse(render_to_string("graphql_api/graphiql.html", request=request))

    def get_context(self, request: HttpRequest, response: HttpResponse) -> Context:
        return Context.of(request, response)

    def parse_http_body(self, request: Any) -> Any:
        try:
            return super().parse_http_body(request)
        except UnicodeDecodeError:  # the request adapter decodes the body before it reaches decode_json
            raise HTTPException(400, "The request body is not valid UTF-8") from None

    def decode_json(self, data: str | bytes) -> object:
        return decode_request_json(data)


graphql_view = ApiView.as_view(schema=schema)
