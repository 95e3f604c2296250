"""Summary sums wide enough for any usage (see the comment above cost_sum_field in analytics/models.py).

On PostgreSQL each table is altered by one statement, so a large summary table is rewritten once, not once per
column; SQLite rebuilds each table once, as Django does there for any change of type.
"""

from decimal import Decimal

import analytics.models
from django.db import migrations, models

SUMMARIES = ["usagehourlybucket", "useraicostsummary", "dailyusagesummary", "usermonthlyaicostsummary"]
SUM_COLUMNS = ["input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
               "latency_sum_ms"]
COLUMNS = {name: {**dict.fromkeys(SUM_COLUMNS, "sum"), "total_cost": "cost"} for name in SUMMARIES}
COLUMNS["causnapshot"] = {"total_cost": "cost", "cau": "cost"}
WIDE = {"sum": "numeric(38,0)", "cost": "numeric(40,18)"}
NARROW = {"sum": "bigint", "cost": "numeric(32,18)"}


def field_of(kind, wide):
    if kind == "sum":
        return analytics.models.SumField(default=0) if wide else models.BigIntegerField(default=0)
    return models.DecimalField(max_digits=40 if wide else 32, decimal_places=18, default=Decimal(0))


def named(field, name, model):
    field.set_attributes_from_name(name)
    field.model = model
    return field


def alter(wide):
    def run(apps, schema_editor):
        for model_name, columns in COLUMNS.items():
            model = apps.get_model("analytics", model_name)
            if schema_editor.connection.vendor == "postgresql":
                types = WIDE if wide else NARROW
                clauses = ", ".join(f"ALTER COLUMN {name} TYPE {types[kind]}" for name, kind in columns.items())
                schema_editor.execute(f"ALTER TABLE {model._meta.db_table} {clauses}")
                continue
            # One rebuild with every column changed: alter_field one column at a time would rebuild the table from
            # the historical model each time and undo the columns changed before.
            schema_editor._remake_table(model, alter_fields=[
                (model._meta.get_field(name), named(field_of(kind, wide), name, model)) for name, kind in columns.items()
            ])

    return run


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0004_daily_usage_summary'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(alter(wide=True), alter(wide=False))],
            state_operations=[
                migrations.AlterField(
                    model_name='causnapshot',
                    name='cau',
                    field=models.DecimalField(decimal_places=18, default=0, max_digits=40),
                ),
                migrations.AlterField(
                    model_name='causnapshot',
                    name='total_cost',
                    field=models.DecimalField(decimal_places=18, default=0, max_digits=40),
                ),
                migrations.AlterField(
                    model_name='dailyusagesummary',
                    name='cache_write_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='dailyusagesummary',
                    name='cached_input_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='dailyusagesummary',
                    name='input_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='dailyusagesummary',
                    name='latency_sum_ms',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='dailyusagesummary',
                    name='output_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='dailyusagesummary',
                    name='reasoning_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='dailyusagesummary',
                    name='total_cost',
                    field=models.DecimalField(decimal_places=18, default=0, max_digits=40),
                ),
                migrations.AlterField(
                    model_name='usagehourlybucket',
                    name='cache_write_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usagehourlybucket',
                    name='cached_input_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usagehourlybucket',
                    name='input_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usagehourlybucket',
                    name='latency_sum_ms',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usagehourlybucket',
                    name='output_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usagehourlybucket',
                    name='reasoning_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usagehourlybucket',
                    name='total_cost',
                    field=models.DecimalField(decimal_places=18, default=0, max_digits=40),
                ),
                migrations.AlterField(
                    model_name='useraicostsummary',
                    name='cache_write_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='useraicostsummary',
                    name='cached_input_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='useraicostsummary',
                    name='input_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='useraicostsummary',
                    name='latency_sum_ms',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='useraicostsummary',
                    name='output_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='useraicostsummary',
                    name='reasoning_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='useraicostsummary',
                    name='total_cost',
                    field=models.DecimalField(decimal_places=18, default=0, max_digits=40),
                ),
                migrations.AlterField(
                    model_name='usermonthlyaicostsummary',
                    name='cache_write_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usermonthlyaicostsummary',
                    name='cached_input_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usermonthlyaicostsummary',
                    name='input_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usermonthlyaicostsummary',
                    name='latency_sum_ms',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usermonthlyaicostsummary',
                    name='output_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usermonthlyaicostsummary',
                    name='reasoning_tokens',
                    field=analytics.models.SumField(default=0),
                ),
                migrations.AlterField(
                    model_name='usermonthlyaicostsummary',
                    name='total_cost',
                    field=models.DecimalField(decimal_places=18, default=0, max_digits=40),
                ),
            ],
        ),
    ]
