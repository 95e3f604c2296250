"""request_meta / response_meta read through MetadataField, which turns a stored value nested too deep to render
into a short note. The column is unchanged (the same JSON type), so only Django's model state changes: no table
rewrite, which on SQLite would copy the whole log table."""

from django.db import migrations

import usage.models


class Migration(migrations.Migration):
    dependencies = [("usage", "0010_event_ids_per_user")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="aiusagelog",
                    name="request_meta",
                    field=usage.models.MetadataField(blank=True, null=True),
                ),
                migrations.AlterField(
                    model_name="aiusagelog",
                    name="response_meta",
                    field=usage.models.MetadataField(blank=True, null=True),
                ),
            ]
        )
    ]
