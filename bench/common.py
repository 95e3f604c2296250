"""Shared set-up for benchmarks: a dedicated PostgreSQL database, Django pointed at it, and the report file."""

from __future__ import annotations

import os
import platform
import re
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "BENCHMARKS.md"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench"


def setup_django() -> str:
    """Point Django at the benchmark database (created if missing), migrate it, and return its URL."""
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    # Production settings over plain HTTP on 127.0.0.1, with a key for this throwaway database only.
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-for-a-throwaway-database-0123456789")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    # One benchmark caller sends thousands of requests a minute: measured is the work, not the limiter's refusals.
    os.environ.setdefault("API_RATE_LIMIT_READS", "1000000000")
    os.environ.setdefault("API_RATE_LIMIT_WRITES", "1000000000")
    os.environ.setdefault("API_RATE_LIMIT_COST", "1000000000000")
    sys.path.insert(0, str(ROOT))
    _create_database(url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return url


def _create_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def machine() -> str:
    cpus = os.cpu_count()
    return f"{platform.machine()}, {cpus} cores, Python {platform.python_version()}, {platform.system()}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the report section between its markers, leaving the other sections as they are."""
    REPORT.parent.mkdir(exist_ok=True)
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n\nRun with `make bench` (needs PostgreSQL).\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    REPORT.write_text(text)


def with_every_permission(user: Any) -> Any:
    """The benchmark's caller reads everyone's usage and records for others (usage.permissions), as a central
    service's key does."""
    from django.contrib.auth.models import Permission

    from usage.permissions import PERMISSION_OF

    codenames = [permission.split(".", 1)[1] for permission in PERMISSION_OF.values()]
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="usage", codename__in=codenames))
    return user
