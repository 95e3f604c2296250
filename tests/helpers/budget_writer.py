"""One of the processes of the budget edge test: its calls run in threads at once, each with enforcement on, and
each reports when its budget check started, whether it was admitted, and when its log was committed."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers.process import report, setup_django, wait_until

setup_django()

from django.db import connection  # noqa: E402

from usage.tracker import AIUsageTracker, BudgetExceeded  # noqa: E402


def one_call(user_id: int, event_id: str, tokens: int, work_seconds: float) -> None:
    check_started = time.time()
    try:
        with AIUsageTracker.track_ai_request(
            user=user_id, feature="edge", provider="acme", model="acme-1", event_id=event_id, enforce_budget=True
        ) as tracker:
            time.sleep(work_seconds)  # the AI call itself
            tracker.set_tokens(input_tokens=tokens)
    except BudgetExceeded as exc:
        report(event_id=event_id, admitted=False, check_started=check_started, reason=str(exc))
        return
    report(event_id=event_id, admitted=True, check_started=check_started, done=time.time())


def thread_calls(user_id: int, event_ids: list[str], tokens: int, work_seconds: float) -> None:
    try:
        for event_id in event_ids:
            one_call(user_id, event_id, tokens, work_seconds)
    finally:
        connection.close()


def main() -> None:
    process, calls, threads, user_id, tokens, work_seconds, start_at = sys.argv[1:8]
    event_ids = [f"edge-{process}-{i}" for i in range(int(calls))]
    workers = [
        threading.Thread(target=thread_calls, args=(int(user_id), event_ids[t :: int(threads)], int(tokens),
                                                    float(work_seconds)))
        for t in range(int(threads))
    ]  # fmt: skip
    wait_until(float(start_at))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
