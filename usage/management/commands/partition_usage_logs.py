"""Partition the log table by month (PostgreSQL), keeping every row; then create the coming months' partitions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from usage.partitioning import ensure_partitions, partition_log_table


class Command(BaseCommand):
    help = "Partition usage_aiusagelog by month on PostgreSQL (idempotent); set AI_USAGE_LOG_PARTITIONED=1 too."

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("partitioning needs PostgreSQL; this database is " + connection.vendor)
        converted = partition_log_table()
        created = ensure_partitions()
        state = "partitioned the log table" if converted else "the log table was already partitioned"
        self.stdout.write(f"{state}; {created} monthly partitions created")
