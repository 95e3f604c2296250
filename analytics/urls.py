"""The staff analytics pages, mounted under /admin/ai-analytics/ (before the admin's own catch-all URLs)."""

from __future__ import annotations

from django.urls import path

from analytics import views

app_name = "ai_analytics"
urlpatterns = [
    path("", views.dashboard_view, name="dashboard"),
    path("users/", views.users_view, name="users"),
    path("system/", views.system_view, name="system"),
]
