"""Event ids become unique per user (and among calls made on nobody's behalf) instead of across all users.

On a plain log table its unique constraint on event_id is replaced by two: (user, event_id), and event_id where
there is no user. A partitioned log table (usage/partitioning.py) has no unique constraint of its own; there the ids
claimed in UsageEventKey are rebuilt from the logs, each scoped to its user. Ids were unique across users until now,
so the existing logs meet the new constraints as they are."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models


def _partitioned(schema_editor: Any) -> bool:
    from usage.partitioning import log_table_partitioned

    return log_table_partitioned(schema_editor.connection)


class OnPlainLogTable(migrations.SeparateDatabaseAndState):
    """Changes to the log table's own constraints: always in the migration state, in the database only when the
    table is not partitioned (PostgreSQL refuses a unique index without the partition key there)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if not _partitioned(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if not _partitioned(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def _constraint_changes() -> list[Any]:
    return [
        migrations.RemoveConstraint(model_name="aiusagelog", name="usage_event_id_once"),
        migrations.AddConstraint(
            model_name="aiusagelog",
            constraint=models.UniqueConstraint(fields=("event_id", "user"), name="usage_event_id_once_per_user"),
        ),
        migrations.AddConstraint(
            model_name="aiusagelog",
            constraint=models.UniqueConstraint(
                condition=models.Q(("user__isnull", True)),
                fields=("event_id",),
                name="usage_event_id_once_without_user",
            ),
        ),
    ]


def scope_claimed_ids(apps: Any, schema_editor: Any) -> None:
    """The claimed ids again, scoped to their user. Unused while the table is plain: emptied, so that a later
    conversion fills it afresh."""
    schema_editor.execute("DELETE FROM usage_usageeventkey")
    if _partitioned(schema_editor):
        from usage.partitioning import claim_event_ids

        with schema_editor.connection.cursor() as cursor:
            claim_event_ids(cursor)


def unscope_claimed_ids(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute("DELETE FROM usage_usageeventkey")
    if _partitioned(schema_editor):
        schema_editor.execute(
            "INSERT INTO usage_usageeventkey SELECT DISTINCT event_id FROM usage_aiusagelog WHERE event_id IS NOT NULL"
        )


class Migration(migrations.Migration):
    dependencies = [("usage", "0009_permission_model")]

    operations = [
        OnPlainLogTable(database_operations=_constraint_changes(), state_operations=_constraint_changes()),
        migrations.RenameField(model_name="usageeventkey", old_name="event_id", new_name="scoped_id"),
        migrations.AlterField(
            model_name="usageeventkey",
            name="scoped_id",
            field=models.CharField(max_length=220, primary_key=True, serialize=False),
        ),
        migrations.RunPython(scope_claimed_ids, unscope_claimed_ids, elidable=False),
    ]
