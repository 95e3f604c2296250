"""What a helper script run as its own OS process needs: the project on the path and Django set up."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


def wait_until(epoch: float) -> None:
    """Start together with the other processes (they were all given the same moment)."""
    time.sleep(max(0.0, epoch - time.time()))


def report(**fields: Any) -> None:
    """One JSON line on stdout per outcome, read back by the test."""
    print(json.dumps(fields, default=str), flush=True)
