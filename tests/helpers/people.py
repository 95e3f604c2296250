"""Users holding the permissions of the permission model (usage/permissions.py)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Permission

ALL_PERMISSIONS = ["view_ai_analytics", "record_ai_usage_for_others", "change_userspendlimit", "queue_ai_jobs"]


def ensure_permissions() -> None:
    """The usage app's permissions, which a transactional test's flush may have emptied before this test."""
    create_permissions(apps.get_app_config("usage"), verbosity=0)


def user_with(username: str, *codenames: str, is_staff: bool = False) -> Any:
    """A user holding the named usage permissions (every one of the model's when none are named)."""
    ensure_permissions()
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw", is_staff=is_staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames or ALL_PERMISSIONS))
    return user
