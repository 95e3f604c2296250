from __future__ import annotations

from typing import Any

from django.db import migrations

from tasks.schedules import ensure_default_schedules


def create_import_schedule(apps: Any, _schema_editor: Any) -> None:
    ensure_default_schedules(
        apps.get_model("django_celery_beat", "IntervalSchedule"),
        apps.get_model("django_celery_beat", "PeriodicTask"),
        apps.get_model("django_celery_beat", "PeriodicTasks"),
        names=("LangSmith run import",),
    )


class Migration(migrations.Migration):
    dependencies = [("tasks", "0001_default_schedules")]

    operations = [migrations.RunPython(create_import_schedule, migrations.RunPython.noop)]
