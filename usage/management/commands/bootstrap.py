from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from project.env import env_str
from usage.demo import load_demo_data
from usage.models import AIProviderPricing, AIUsageLog


class Command(BaseCommand):
    help = "First-run set-up: load the price catalog and demo data and create an admin login, each only once."

    def handle(self, *args: Any, **options: Any) -> None:
        if not AIProviderPricing.objects.exists():
            call_command("sync_ai_pricing", stdout=self.stdout)
        if not AIUsageLog.objects.exists():
            count = load_demo_data()
            self.stdout.write(f"Demo data: {count} calls for users alice, bob, charlie, dana and erin.")
        self._ensure_admin()

    def _ensure_admin(self) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write("Admin login: already created (use the password printed on the first run).")
            return
        username = env_str("ADMIN_USERNAME", "admin") or "admin"
        password = env_str("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username=username, email=f"{username}@localhost", password=password)
        self.stdout.write(self.style.SUCCESS(f"Admin login created: username {username!r}, password {password!r}"))
