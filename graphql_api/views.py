from __future__ import annotations

from django.conf import settings
from strawberry.django.views import GraphQLView

from graphql_api.schema import schema

graphql_view = GraphQLView.as_view(schema=schema, graphql_ide="graphiql" if settings.DEBUG else None)
