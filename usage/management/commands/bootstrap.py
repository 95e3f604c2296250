from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db.models import Min

from project.celery import app as celery_app
from project.env import env_str
from usage import periods
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
            self._first_jobs()
        self._ensure_admin()

    def _first_jobs(self) -> None:
        """The rollup and the CAU snapshots over every day of the demo data, once, so that every page and the CAU
        trend show it at once instead of after the first scheduled runs (CAU runs daily). They run here, through
        the job runner, so each is recorded as a run of its job."""
        first = AIUsageLog.objects.aggregate(first=Min("occurred_at"))["first"]
        days_back = (periods.today() - periods.reporting_day(first)).days if first else 1
        celery_app.loader.import_default_modules()  # registers the jobs, as a worker does at start
        for task, kwargs in (("tasks.rollup_usage", {}), ("tasks.compute_cau", {"days_back": days_back})):
            result = celery_app.tasks[task].apply(kwargs=kwargs)
            self.stdout.write(f"First run of {task}: {result.result}")

    def _ensure_admin(self) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write("Admin login: already created (use the password printed on the first run).")
            return
        username = env_str("ADMIN_USERNAME", "admin") or "admin"
        password = env_str("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username=username, email=f"{username}@localhost", password=password)
        self.stdout.write(self.style.SUCCESS(f"Admin login created: username {username!r}, password {password!r}"))
