from __future__ import annotations

from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "AI usage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from usage import signals  # noqa: F401  (connects the price cache invalidation)
