"""A separate OS process that records calls through the public API (run by test_concurrent_writes)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402

from project.celery import app  # noqa: E402

# Jobs a write triggers (spend alerts) run in this process instead of queueing on the shared broker.
app.conf.task_always_eager = True
settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

from tests.helpers.workload import calls_for_worker  # noqa: E402
from usage.tracker import AIUsageTracker, record_usage  # noqa: E402


def main(worker: int, count: int, user_ids: list[int]) -> None:
    for index, call in enumerate(calls_for_worker(worker, count, user_ids)):
        if index % 2:  # half through the context manager, half as already-finished calls
            with AIUsageTracker.track_ai_request(
                user=call["user"],
                feature=call["feature"],
                provider=call["provider"],
                model=call["model"],
                event_id=call["event_id"],
            ) as tracker:
                tracker.set_tokens(input_tokens=call["input_tokens"], output_tokens=call["output_tokens"])
        else:
            record_usage(**call)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), [int(u) for u in sys.argv[3].split(",")])
