from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from graphql_api.views import graphql_view

urlpatterns = [
    path("admin/ai-analytics/", include("analytics.urls")),
    path("admin/", admin.site.urls),
    path("graphql/", graphql_view, name="graphql"),
]
