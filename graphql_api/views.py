from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from strawberry.django.views import GraphQLView

from graphql_api.schema import schema


class ApiView(GraphQLView):
    """The endpoint: GraphiQL in a browser while DEBUG is on (read per request, so a settings change applies)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.graphql_ide = "graphiql" if settings.DEBUG else None
        return super().dispatch(request, *args, **kwargs)


graphql_view = ApiView.as_view(schema=schema)
