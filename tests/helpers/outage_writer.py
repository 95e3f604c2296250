"""A process that keeps recording calls while the test takes a service away under it.

Every call's outcome is reported: recorded, duplicate, or unavailable (DatabaseUnavailable, with its message).
Calls that failed are sent again at the end, with the same event_id, until the database takes them. With a
blocked user, every 10th call is also an enforced call for that user, which must be refused every time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers.process import report, setup_django, wait_until

setup_django(inline_jobs=False)  # alert jobs go to the broker under test

from usage.tracker import AIUsageTracker, BudgetExceeded, DatabaseUnavailable, record_usage  # noqa: E402


def call(process: int, i: int, user_ids: list[int]) -> dict[str, object]:
    return {
        "user": user_ids[i % len(user_ids)],
        "feature": "outage",
        "provider": "acme",
        "model": "acme-1",
        "input_tokens": 1000,
        "output_tokens": 100,
        "event_id": f"outage-{process}-{i}",
    }


def try_record(fields: dict[str, object]) -> bool:
    try:
        outcome = record_usage(**fields).outcome  # type: ignore[arg-type]
    except DatabaseUnavailable as exc:
        report(event_id=fields["event_id"], outcome="unavailable", error=str(exc), at=time.time())
        return False
    report(event_id=fields["event_id"], outcome=outcome, at=time.time())
    return True


def try_blocked_call(user_id: int) -> None:
    try:
        with AIUsageTracker.track_ai_request(
            user=user_id, feature="blocked", provider="acme", model="acme-1", enforce_budget=True
        ) as tracker:
            tracker.set_tokens(input_tokens=1)
    except BudgetExceeded:
        report(blocked="refused")
    except DatabaseUnavailable as exc:
        report(blocked="unavailable", error=str(exc))
    else:
        report(blocked="ran")


def main() -> None:
    process, count, users, blocked_user, pause, start_at = sys.argv[1:7]
    user_ids = [int(u) for u in users.split(",")]
    wait_until(float(start_at))
    failed = []
    for i in range(int(count)):
        fields = call(int(process), i, user_ids)
        if not try_record(fields):
            failed.append(fields)
        if int(blocked_user) and i % 10 == 0:
            try_blocked_call(int(blocked_user))
        time.sleep(float(pause))
    deadline = time.monotonic() + 120
    while failed and time.monotonic() < deadline:
        if try_record(failed[0]):
            failed.pop(0)
        else:
            time.sleep(0.2)


if __name__ == "__main__":
    main()
