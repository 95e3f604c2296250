"""What a helper script run as its own OS process needs: the project on the path and Django set up."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def setup_django(inline_jobs: bool = True) -> None:
    """Set up Django. With inline_jobs, jobs a write triggers (spend alerts) run in this process and mail goes
    to memory, instead of queueing on the broker other tests share."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    if inline_jobs:
        from django.conf import settings

        from project.celery import app

        app.conf.task_always_eager = True
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def wait_until(epoch: float) -> None:
    """Start together with the other processes (they were all given the same moment)."""
    time.sleep(max(0.0, epoch - time.time()))


_report_lock = threading.Lock()


def report(**fields: Any) -> None:
    """One JSON line on stdout per outcome, read back by the test (whole lines, whichever thread reports)."""
    line = json.dumps(fields, default=str)
    with _report_lock:
        print(line, flush=True)
