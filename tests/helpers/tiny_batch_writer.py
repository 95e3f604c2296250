"""One of the processes recording the million tiny calls: every `processes`-th batch of them through
record_batch, reporting how each batch came out as a JSON line."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers.process import report, setup_django

setup_django()

from tests.helpers.workload import tiny_call  # noqa: E402
from usage.batch import record_batch  # noqa: E402


def main(process: int, processes: int, calls: int, batch_size: int, user_ids: list[int], now: datetime) -> None:
    for start in range(process * batch_size, calls, processes * batch_size):
        outcomes = record_batch([tiny_call(i, user_ids, now) for i in range(start, min(start + batch_size, calls))])
        kinds = Counter(type(o).__name__ if isinstance(o, Exception) else o.outcome for o in outcomes)
        report(start=start, outcomes=dict(kinds))


if __name__ == "__main__":
    process, processes, calls, batch_size, users, now = sys.argv[1:]
    main(int(process), int(processes), int(calls), int(batch_size), [int(u) for u in users.split(",")],
         datetime.fromisoformat(now))  # fmt: skip
