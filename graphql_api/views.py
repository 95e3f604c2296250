from __future__ import annotations

import json
from typing import Any

from cross_web import HTTPException
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from strawberry.django.views import GraphQLView

from graphql_api.schema import schema


class ApiView(GraphQLView):
    """The endpoint: GraphiQL in a browser while DEBUG is on (read per request, so a settings change applies)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.graphql_ide = "graphiql" if settings.DEBUG else None
        return super().dispatch(request, *args, **kwargs)

    def decode_json(self, data: str | bytes) -> object:
        """A body Python's json cannot read (nested deeper than it recurses, a number of thousands of digits) is
        the client's mistake: HTTP 400 saying so, not a 500."""
        try:
            return super().decode_json(data)
        except json.JSONDecodeError:
            raise
        except RecursionError:
            raise HTTPException(400, "Unable to parse request body as JSON: it is nested too deeply") from None
        except ValueError as exc:
            raise HTTPException(400, f"Unable to parse request body as JSON: {exc}") from None


graphql_view = ApiView.as_view(schema=schema)
