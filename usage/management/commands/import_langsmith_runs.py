from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from usage.langsmith_import import import_project


class Command(BaseCommand):
    help = "Import LLM runs from LangSmith projects as usage logs, from each project's stored cursor."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--project", action="append", help="A project to import (repeatable; default: LANGSMITH_IMPORT_PROJECTS)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.LANGSMITH_API_KEY:
            raise CommandError("LANGSMITH_API_KEY is not set: there is no LangSmith to import from")
        projects = options["project"] or settings.LANGSMITH_IMPORT_PROJECTS
        if not projects:
            raise CommandError("no project: pass --project NAME or set LANGSMITH_IMPORT_PROJECTS")
        for project in projects:
            try:
                report = import_project(project)
            except Exception as exc:
                raise CommandError(f"{project}: import failed ({type(exc).__name__}: {exc}); run it again") from exc
            figures = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in asdict(report).items())
            self.stdout.write(self.style.SUCCESS(f"{project}: {figures}"))
