from __future__ import annotations

from typing import Any

from django.db import migrations

from tasks.schedules import ensure_default_schedules


def create_default_schedules(apps: Any, _schema_editor: Any) -> None:
    ensure_default_schedules(
        apps.get_model("django_celery_beat", "IntervalSchedule"),
        apps.get_model("django_celery_beat", "PeriodicTask"),
        apps.get_model("django_celery_beat", "PeriodicTasks"),
    )


class Migration(migrations.Migration):
    dependencies = [("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(create_default_schedules, migrations.RunPython.noop)]
