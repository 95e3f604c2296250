"""Four OS processes write 500 calls each at once: every row and every cent is accounted for."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count, Sum

from tests.conftest import as_summed, each_as_summed
from tests.helpers.services import database_url
from tests.helpers.workload import INPUT_PRICE, OUTPUT_PRICE, calls_for_worker, expected_cost
from usage.models import AIUsageLog, UserDailySpend

ROOT = Path(__file__).resolve().parents[1]
WORKERS, CALLS = 4, 500


def run_workers(user_ids: list[int]) -> None:
    env = {**os.environ, "DATABASE_URL": database_url()}
    ids = ",".join(map(str, user_ids))
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "tests/helpers/concurrent_writer.py"), str(w), str(CALLS), ids],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * WORKERS, errors


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_four_processes_writing_at_once_lose_nothing(make_price: Any) -> None:
    make_price(input_price=INPUT_PRICE, output_price=OUTPUT_PRICE)
    users = [get_user_model().objects.create_user(f"user{n}") for n in range(3)]
    user_ids = [u.pk for u in users]

    run_workers(user_ids)

    calls = [c for w in range(WORKERS) for c in calls_for_worker(w, CALLS, user_ids)]
    per_user: dict[int, Decimal] = defaultdict(Decimal)
    for call in calls:
        per_user[call["user"]] += expected_cost(call)
    totals = AIUsageLog.objects.aggregate(
        rows=Count("id"), cost=Sum("total_cost"), events=Count("event_id", distinct=True)
    )
    expected_total = as_summed(sum(per_user.values()))
    assert (totals["rows"], totals["events"], as_summed(totals["cost"])) == (2000, 2000, expected_total)
    logged = dict(AIUsageLog.objects.values_list("user_id").annotate(Sum("total_cost")).order_by())
    counted = dict(UserDailySpend.objects.values_list("user_id").annotate(Sum("cost")).order_by())
    assert each_as_summed(logged) == each_as_summed(counted) == each_as_summed(per_user)
    assert UserDailySpend.objects.aggregate(n=Sum("requests"))["n"] == 2000


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_events_replayed_by_four_processes_are_stored_once(make_price: Any) -> None:
    make_price(input_price=INPUT_PRICE, output_price=OUTPUT_PRICE)
    user = get_user_model().objects.create_user("replayer")
    env = {**os.environ, "DATABASE_URL": database_url()}
    # Every process sends worker 0's events: 4 x 100 sends of 100 unique events.
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "tests/helpers/concurrent_writer.py"), "0", "100", str(user.pk)], env=env
        )
        for _ in range(WORKERS)
    ]
    assert [p.wait(timeout=600) for p in procs] == [0] * WORKERS
    expected = sum(expected_cost(c) for c in calls_for_worker(0, 100, [user.pk]))
    logged = AIUsageLog.objects.aggregate(n=Count("id"), c=Sum("total_cost"))
    counted = UserDailySpend.objects.aggregate(n=Sum("requests"), c=Sum("cost"))
    assert (logged["n"], counted["n"]) == (100, 100)
    assert as_summed(logged["c"]) == as_summed(counted["c"]) == as_summed(expected)
