from __future__ import annotations

from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "AI analytics"
    default_auto_field = "django.db.models.BigAutoField"
