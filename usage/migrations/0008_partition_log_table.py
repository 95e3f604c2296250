"""With AI_USAGE_LOG_PARTITIONED on PostgreSQL, the log table becomes partitioned by month (see
usage/partitioning.py). Elsewhere, and with the setting off, nothing happens; turning the setting on later takes
`manage.py partition_usage_logs`."""

from typing import Any

from django.db import migrations


def partition(apps: Any, schema_editor: Any) -> None:
    from usage.partitioning import partition_if_configured

    partition_if_configured()


class Migration(migrations.Migration):
    dependencies = [("usage", "0007_usage_event_key")]

    operations = [migrations.RunPython(partition, migrations.RunPython.noop, elidable=False)]
