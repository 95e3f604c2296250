"""Settings from the environment fail loudly; docker-compose names only commands that exist; /graphql/ answers."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from decimal import Decimal
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import get_commands
from django.test import Client

from project import env

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "value", "reader", "message"),
    [
        ("AI_DEFAULT_DAILY_LIMIT", "ten", lambda n: env.env_money(n, "1"), "'ten' is not a decimal amount"),
        ("AI_DEFAULT_DAILY_LIMIT", "-1", lambda n: env.env_money(n, "1"), "must be a finite amount of zero or more"),
        ("AI_DEFAULT_DAILY_LIMIT", "NaN", lambda n: env.env_money(n, "1"), "must be a finite amount of zero or more"),
        ("ANALYTICS_TIME_ZONE", "Mars/Olympus", lambda n: env.env_time_zone(n), "is not an IANA time zone"),
        ("DEBUG", "maybe", lambda n: env.env_bool(n), "DEBUG='maybe' is not a boolean"),
        ("EMAIL_PORT", "25x", lambda n: env.env_int(n, 25), "EMAIL_PORT='25x' is not a whole number"),
        ("AI_SPEND_ALERT_RECIPIENTS", "ops@example.com,nobody", env.env_emails, "'nobody', which is not an email"),
        ("DATABASE_URL", "mysql://x/y", lambda n: env.database_from_url(n, "db"), "the scheme must be postgres://"),
        ("REDIS_URL", "http://x", env.redis_url, "the scheme must be redis://"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, reader: Any, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)) as caught:
        reader(name)
    assert str(caught.value).startswith(f"{name}")


def test_good_values_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_DEFAULT_MONTHLY_LIMIT", "250.50")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p%40ss@db.example:6432/metering")
    assert env.env_money("AI_DEFAULT_MONTHLY_LIMIT", "1") == Decimal("250.50")
    database = env.database_from_url("DATABASE_URL", "unused")
    assert (database["NAME"], database["USER"], database["PASSWORD"], database["HOST"], database["PORT"]) == (
        "metering",
        "u",
        "p@ss",
        "db.example",
        "6432",
    )


def test_start_up_stops_with_the_message_on_a_bad_value() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "ANALYTICS_TIME_ZONE": "Europe/Atlantis"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "ANALYTICS_TIME_ZONE='Europe/Atlantis' is not an IANA time zone such as Europe/Berlin" in result.stderr


def test_env_example_lists_every_setting_read() -> None:
    read = set()
    for path in [ROOT / "project/settings.py", ROOT / "usage/management/commands/bootstrap.py"]:
        read |= set(re.findall(r'env_\w+\("([A-Z_]+)"', path.read_text()))
        read |= set(re.findall(r'(?:redis_url|database_from_url)\("([A-Z_]+)"', path.read_text()))
    listed = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - listed == set()
    assert {"DATABASE_URL", "REDIS_URL", "ANALYTICS_TIME_ZONE", "AI_SPEND_ALERT_RECIPIENTS", "SECRET_KEY"} <= read


def compose_commands() -> list[list[str]]:
    text = (ROOT / "docker-compose.yml").read_text()
    commands = []
    for line in re.findall(r"^\s+command: (.+)$", text, re.M):
        if line.startswith('sh -c "'):
            commands += [shlex.split(part) for part in line[len('sh -c "') : -1].split("&&")]
        else:
            commands.append(shlex.split(line))
    return commands


def test_every_command_in_docker_compose_exists() -> None:
    commands = compose_commands()
    assert len(commands) == 5
    venv_bin = Path(sys.executable).parent
    for argv in commands:
        program = argv[0]
        if program == "python":
            assert argv[1] == "manage.py" and argv[2] in get_commands(), argv
        else:
            assert (venv_bin / program).exists(), f"{program} is not installed"
        if program == "gunicorn":
            module, attribute = argv[1].split(":")
            assert callable(getattr(import_module(module), attribute))
        if program == "celery":
            assert argv[1:3] == ["-A", "project"] and hasattr(import_module("project"), "celery_app")
        if "--scheduler" in argv:
            module, attribute = argv[argv.index("--scheduler") + 1].split(":")
            assert getattr(import_module(module), attribute)


@pytest.mark.django_db
def test_graphql_endpoint_answers_health() -> None:
    response = Client().post("/graphql/", {"query": "{ health { ok database } }"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"data": {"health": {"ok": True, "database": "ok"}}}


def test_committed_schema_matches_the_code() -> None:
    from graphql_api.schema import schema

    assert (ROOT / "schema.graphql").read_text().strip() == schema.as_str().strip(), (
        "schema.graphql is stale: run python manage.py export_schema graphql_api.schema:schema --path schema.graphql"
    )
