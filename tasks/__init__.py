"""Background jobs. The tasks are importable from here (`from tasks import rollup_usage`) once Django is set up;
they live in tasks.tasks, where Celery's autodiscovery looks for them."""

from __future__ import annotations

from typing import Any

TASK_NAMES = ("rollup_usage", "compute_cau", "sync_ai_pricing", "send_spend_alerts", "import_langsmith_runs")
__all__ = list(TASK_NAMES)


def __getattr__(name: str) -> Any:
    # Imported on first use: this package is imported with INSTALLED_APPS, before the models the tasks need.
    if name in TASK_NAMES:
        from tasks import tasks

        return getattr(tasks, name)
    raise AttributeError(name)
