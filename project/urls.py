from __future__ import annotations

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from graphql_api.views import graphql_view

urlpatterns = [
    path("admin/ai-analytics/", include("analytics.urls")),
    path("admin/", admin.site.urls),
    path("graphql/", graphql_view, name="graphql"),
    # Browsers ask for /favicon.ico on every page; answer with the icon rather than a 404 in the console.
    path("favicon.ico", RedirectView.as_view(url=static("ai_analytics/favicon.svg"), permanent=True)),
]
