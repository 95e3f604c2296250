"""The system under load and faults, on PostgreSQL and Redis: every call and every cent is kept.

Each test drives real OS processes against the real services, then compares the database with totals computed
from the inputs alone. The fault tests start services of their own (a Redis, a PostgreSQL cluster, a Celery
worker) so that killing one never touches the shared ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from celery import Celery
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from analytics.models import (
    DailyUsageSummary,
    RollupRun,
    RunOutcome,
    UsageHourlyBucket,
    UserAICostSummary,
    UserMonthlyAICostSummary,
)
from analytics.rollup import ABANDONED, all_hours, run_rollup
from bench.rollup import GENERATE_LOGS, ensure_users
from tests.conftest import requires_postgres
from tests.helpers.people import user_with
from tests.helpers.process import ROOT
from tests.helpers.services import PostgresCluster, RedisServer, SmtpInbox, WorkerProcess, database_url, wait_for
from tests.helpers.workload import INPUT_PRICE, OUTPUT_PRICE, TINY_PRICE, storm_events
from usage import periods
from usage.alerts import alert_subject, send_spend_alerts
from usage.apikeys import create_api_key
from usage.models import AIUsageLog, AlertPeriod, SpendAlert, UserDailySpend, UserSpendLimit
from usage.tracker import AIUsageTracker, BudgetExceeded, record_usage

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PROCESSES = 4
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
STORM_EVENTS = 10_000


def start_helpers(script: str, argument_lists: list[list[str]], env: dict[str, str] | None = None) -> list[Any]:
    """One helper process per argument list, all started at once."""
    env = {**os.environ, "DATABASE_URL": database_url(), **(env or {})}
    command = [sys.executable, str(ROOT / "tests/helpers" / script)]
    return [
        subprocess.Popen([*command, *arguments], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for arguments in argument_lists
    ]


def collect(procs: list[Any]) -> list[dict[str, Any]]:
    """Wait for the helpers; every JSON line they printed, in one list. Each must have exited cleanly."""
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), [err[-3000:] for _out, err in outputs]
    return [json.loads(line) for out, _err in outputs for line in out.splitlines()]


def still_running(procs: list[Any]) -> bool:
    """For wait conditions: a helper that already stopped fails the test with its error output."""
    for proc in procs:
        if proc.poll() is not None:
            raise AssertionError(f"a helper stopped early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
    return True


def run_helper(script: str, argument_lists: list[list[str]], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return collect(start_helpers(script, argument_lists, env))


def storm_cost(event: dict[str, Any]) -> Decimal:
    return (event["input_tokens"] * INPUT_PRICE + event["output_tokens"] * OUTPUT_PRICE) / 1_000_000


def assert_counters_equal_logs() -> None:
    """The live spend counters hold exactly what the logs hold, per user and reporting day."""
    per_day: dict[tuple[int, Any], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    for user_id, occurred_at, cost in AIUsageLog.objects.values_list("user_id", "occurred_at", "total_cost"):
        entry = per_day[(user_id, periods.reporting_day(occurred_at))]
        entry[0] += cost or 0
        entry[1] += 1
    counters = {(c.user_id, c.day): [c.cost, c.requests] for c in UserDailySpend.objects.all()}
    assert counters == dict(per_day)


@pytest.mark.parametrize("channel", ["python", "graphql"])
def test_a_replay_storm_stores_each_event_once(channel: str, make_price: Any) -> None:
    """10,000 unique events, each sent 3 times by different processes of 4 running at once."""
    make_price(input_price=INPUT_PRICE, output_price=OUTPUT_PRICE)
    users = [get_user_model().objects.create_user(f"storm{n}") for n in range(5)]
    staff = user_with("ingest", "record_ai_usage_for_others")
    _key, raw_key = create_api_key(staff, "storm")
    user_ids = ",".join(str(u.pk) for u in users)
    latest = (timezone.now() - timedelta(minutes=1)).replace(microsecond=0)
    start_at = str(time.time() + 3)

    outcomes = run_helper(
        "storm_writer.py",
        [
            [channel, str(p), str(PROCESSES), str(STORM_EVENTS), user_ids, latest.isoformat(), start_at, raw_key]
            for p in range(PROCESSES)
        ],
    )

    events = storm_events(STORM_EVENTS, [u.pk for u in users], latest)
    assert len(outcomes) == 3 * STORM_EVENTS
    per_event = defaultdict(Counter)
    for outcome in outcomes:
        per_event[outcome["event_id"]][outcome["outcome"]] += 1
    assert set(per_event) == {e["event_id"] for e in events}
    assert {eid: dict(c) for eid, c in per_event.items()} == {
        e["event_id"]: {"recorded": 1, "duplicate": 2} for e in events
    }
    expected_total = sum(storm_cost(e) for e in events)
    stored = AIUsageLog.objects.aggregate(
        rows=Count("id"), events=Count("event_id", distinct=True), cost=Sum("total_cost"), tokens=Sum("input_tokens")
    )
    assert stored == {
        "rows": STORM_EVENTS,
        "events": STORM_EVENTS,
        "cost": expected_total,
        "tokens": sum(e["input_tokens"] for e in events),
    }
    per_user: dict[int, Decimal] = defaultdict(Decimal)
    for event in events:
        per_user[event["user"]] += storm_cost(event)
    assert dict(AIUsageLog.objects.values_list("user_id").annotate(Sum("total_cost")).order_by()) == per_user
    assert_counters_equal_logs()
    assert UserDailySpend.objects.aggregate(n=Sum("requests"))["n"] == STORM_EVENTS


EDGE_CALLS, EDGE_THREADS = 50, 4  # 50 calls from 4 processes of 4 threads: 16 in flight at a time
EDGE_TOKENS = 1000  # 0.0025 USD a call at 2.5 USD per million input tokens


def test_budget_edge_overspends_only_by_calls_already_in_flight(make_price: Any) -> None:
    make_price(input_price=INPUT_PRICE, output_price=OUTPUT_PRICE)
    user = get_user_model().objects.create_user("edge")
    UserSpendLimit.objects.create(user=user, daily_limit=Decimal("1.00"), monthly_limit=Decimal("1000"))
    call_cost = EDGE_TOKENS * INPUT_PRICE / 1_000_000
    # 3.5 calls below the limit: the 4th call to commit reaches it.
    prior_tokens = int((Decimal("1.00") - Decimal("3.5") * call_cost) / INPUT_PRICE * 1_000_000)
    record_usage(user=user, feature="edge", provider="acme", model="acme-1", input_tokens=prior_tokens)
    start_at = str(time.time() + 3)
    shares = [len(range(p, EDGE_CALLS, PROCESSES)) for p in range(PROCESSES)]  # 13, 13, 12, 12

    outcomes = run_helper(
        "budget_writer.py",
        [[str(p), str(shares[p]), str(EDGE_THREADS), str(user.pk), str(EDGE_TOKENS), "0.2", start_at]
         for p in range(PROCESSES)],
    )  # fmt: skip

    assert len(outcomes) == EDGE_CALLS
    admitted = [o for o in outcomes if o["admitted"]]
    refused = [o for o in outcomes if not o["admitted"]]
    assert len(refused) > 0
    for outcome in refused:
        assert outcome["reason"].startswith(f"user {user.pk} has exceeded the daily AI spend limit: ")
        assert outcome["reason"].endswith(" of 1.00 USD")
    # The limit was reached once 4 calls had committed: by the 4th-earliest "committed" time at the latest.
    reached_at = sorted(o["done"] for o in admitted)[3]
    assert [o["event_id"] for o in admitted if o["check_started"] >= reached_at] == []
    in_flight = [o for o in admitted if o["check_started"] < reached_at < o["done"]]
    spend = AIUsageLog.objects.aggregate(n=Count("id"), cost=Sum("total_cost"))
    assert spend == {"n": len(admitted) + 1, "cost": prior_tokens * INPUT_PRICE / 1_000_000 + len(admitted) * call_cost}
    overspend = spend["cost"] - Decimal("1.00")
    assert Decimal(0) <= overspend <= (len(in_flight) + 1) * call_cost
    assert_counters_equal_logs()
    # Once over, a further enforced call is refused before it runs and writes nothing.
    with (
        pytest.raises(BudgetExceeded),
        AIUsageTracker.track_ai_request(
            user=user, feature="edge", provider="acme", model="acme-1", enforce_budget=True
        ),
    ):
        pytest.fail("the call ran although the user is over the limit")
    assert AIUsageLog.objects.count() == len(admitted) + 1


TINY_CALLS, TINY_BATCH, TINY_PROCESSES = 1_000_000, 10_000, 2


def test_a_million_calls_at_a_tiny_price_sum_exactly(make_price: Any) -> None:
    """A million calls of 1 to 3 tokens at 1.5e-7 USD a token, recorded in batches by two processes at once."""
    make_price(provider="tiny", model="tiny-1", input_price=TINY_PRICE, output_price=TINY_PRICE)
    user_ids = ",".join(str(get_user_model().objects.create_user(f"tiny{n}").pk) for n in range(10))
    now = timezone.now().isoformat()
    arguments = [str(TINY_PROCESSES), str(TINY_CALLS), str(TINY_BATCH), user_ids, now]
    reports = run_helper("tiny_batch_writer.py", [[str(p), *arguments] for p in range(TINY_PROCESSES)])
    assert sorted(r["start"] for r in reports) == list(range(0, TINY_CALLS, TINY_BATCH))
    assert [r["outcomes"] for r in reports] == [{"recorded": TINY_BATCH}] * (TINY_CALLS // TINY_BATCH)

    per_token = TINY_PRICE / 1_000_000
    tokens = sum(1 + i % 3 for i in range(TINY_CALLS))  # 1, 2, 3 tokens in turn
    assert tokens == 1_999_999  # 333,334 calls of 1 token, 333,333 of 2 and 333,333 of 3
    expected = tokens * per_token
    assert expected == Decimal("0.29999985")
    stored = AIUsageLog.objects.aggregate(
        n=Count("id"),
        zero_or_unpriced=Count("id", filter=Q(total_cost__isnull=True) | Q(total_cost=0)),
        cheapest=Min("total_cost"),
        dearest=Max("total_cost"),
        cost=Sum("total_cost"),
    )
    assert stored == {
        "n": TINY_CALLS,
        "zero_or_unpriced": 0,
        "cheapest": Decimal("0.00000015"),
        "dearest": Decimal("0.00000045"),
        "cost": expected,
    }
    assert UserDailySpend.objects.aggregate(c=Sum("cost"), n=Sum("requests")) == {"c": expected, "n": TINY_CALLS}

    run = run_rollup()
    assert run.outcome == "succeeded", run.error
    for summary in (UserAICostSummary, UserMonthlyAICostSummary, DailyUsageSummary, UsageHourlyBucket):
        totals = summary.objects.aggregate(c=Sum("total_cost"), n=Sum("total_requests"))
        assert totals == {"c": expected, "n": TINY_CALLS}, summary.__name__


OUTAGE_USERS = 4
OUTAGE_CALL_COST = (1000 * INPUT_PRICE + 100 * OUTPUT_PRICE) / 1_000_000  # 0.0035 USD


def outage_users() -> tuple[list[Any], Any]:
    """Four users whose daily limit the load crosses (80% after about 366 calls in all, 100% after 458: while the
    service is down), and one already over a tiny limit."""
    users = [get_user_model().objects.create_user(f"load{n}", f"load{n}@example.com") for n in range(OUTAGE_USERS)]
    for user in users:
        UserSpendLimit.objects.create(user=user, daily_limit=Decimal("0.40"), monthly_limit=Decimal("1000"))
    blocked = get_user_model().objects.create_user("blocked")
    UserSpendLimit.objects.create(user=blocked, daily_limit=Decimal("0.01"), monthly_limit=Decimal("1000"))
    record_usage(user=blocked, feature="setup", provider="acme", model="acme-1", input_tokens=10_000)  # 0.025 USD
    return users, blocked


def count_logs() -> int:
    return AIUsageLog.objects.filter(feature="outage").count()


def assert_every_call_stored_once(outcomes: list[dict[str, Any]], sent: int) -> None:
    calls = [o for o in outcomes if "event_id" in o]
    finally_stored = {o["event_id"] for o in calls if o["outcome"] in ("recorded", "duplicate")}
    assert len(finally_stored) == sent
    stored = AIUsageLog.objects.filter(feature="outage").aggregate(n=Count("id"), c=Sum("total_cost"))
    assert stored == {"n": sent, "c": sent * OUTAGE_CALL_COST}
    assert set(AIUsageLog.objects.filter(feature="outage").values_list("event_id", flat=True)) == finally_stored
    assert_counters_equal_logs()


def test_redis_going_down_mid_writes_loses_no_call_and_no_alert(make_price: Any, tmp_path: Any) -> None:
    make_price(input_price=INPUT_PRICE, output_price=OUTPUT_PRICE)
    users, blocked = outage_users()
    redis = RedisServer()
    redis.start()
    with SmtpInbox() as inbox:
        services = {"REDIS_URL": redis.url, "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(inbox.port)}
        worker = WorkerProcess({**os.environ, "DATABASE_URL": database_url(), **services}, tmp_path / "worker.log")
        worker.start()
        try:
            user_ids = ",".join(str(u.pk) for u in users)
            start_at = str(time.time() + 2)
            writers = start_helpers(
                "outage_writer.py", [[str(p), "1500", user_ids, str(blocked.pk), "0.003", start_at] for p in (0, 1)],
                services,
            )  # fmt: skip
            wait_for(lambda: still_running(writers) and count_logs() >= 400, what="400 calls before the outage")
            redis.kill()
            down_from = count_logs()
            with override_settings(CACHES={"default": {"BACKEND": REDIS_CACHE, "LOCATION": redis.url}}):
                staff = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
                client = Client()
                client.force_login(staff)
                assert client.get("/admin/ai-analytics/").status_code == 200  # the dashboard without its cache
            wait_for(lambda: count_logs() >= down_from + 600, what="600 calls during the outage")
            redis.start()
            outcomes = collect(writers)
        finally:
            worker.stop()
            redis.stop()
        with override_settings(EMAIL_BACKEND=SMTP_BACKEND, EMAIL_HOST="127.0.0.1", EMAIL_PORT=inbox.port):
            send_spend_alerts()  # the next scheduled run
        # The user's copies (the superuser made above gets a staff copy of the alerts sent after it existed).
        subjects = [" ".join(str(m["Subject"]).split()) for to, m in inbox.messages if to != ["boss@example.com"]]

    assert [o for o in outcomes if o.get("outcome") not in (None, "recorded")] == []  # none failed, none repeated
    assert_every_call_stored_once(outcomes, 3000)
    # The limit was enforced from the database all along, with Redis up and down.
    assert Counter(o["blocked"] for o in outcomes if "blocked" in o) == {"refused": 300}
    assert AIUsageLog.objects.filter(user=blocked).count() == 1
    # Every user crossed 100% of the daily limit: one email each for it, none twice, none left unsent.
    alerts = SpendAlert.objects.filter(user__in=users)
    assert alerts.filter(sent_at__isnull=True, superseded=False).count() == 0
    sent = list(alerts.filter(sent_at__isnull=False))
    assert sorted(subjects) == sorted(alert_subject(alert) for alert in sent)
    assert {(a.user_id, a.period) for a in sent if a.threshold == 100} == {(u.pk, AlertPeriod.DAY) for u in users}


def summary_tables() -> dict[str, list[tuple[Any, ...]]]:
    """Every summary row without its id, sorted: what a rollup produces."""
    tables = (UsageHourlyBucket, UserAICostSummary, DailyUsageSummary, UserMonthlyAICostSummary)
    return {
        model.__name__: sorted(model.objects.values_list(*[f.attname for f in model._meta.concrete_fields[1:]]))
        for model in tables
    }


def generate_logs(count: int, users: int) -> None:
    """Many logs in one statement (the benchmark's generator): enough that a rollup takes seconds."""
    ensure_users(users)
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(id) FROM auth_user WHERE username LIKE 'bench%%'")
        first_user = cursor.fetchone()[0]
        now = timezone.now()
        params = {"count": count, "recorded": now, "end": now, "span": 90 * 86400, "users": users,
                  "first_user": first_user}  # fmt: skip
        cursor.execute(GENERATE_LOGS, params)
        cursor.execute("ANALYZE usage_aiusagelog")


class Broker:
    """A private Redis as broker, with a worker process on it and a way to send it tasks by name."""

    def __init__(self, tmp_path: Any, env: dict[str, str] | None = None) -> None:
        self.redis = RedisServer()
        self.env = {**os.environ, "DATABASE_URL": database_url(), **(env or {})}
        self.tmp_path = tmp_path
        self.worker: WorkerProcess | None = None

    def __enter__(self) -> Broker:
        self.redis.start()
        self.env["REDIS_URL"] = self.redis.url
        # Not the current app: shared tasks bind to the current app, and later tests must keep the project's.
        self.sender = Celery(broker=self.redis.url, set_as_current=False)
        return self

    def start_worker(self) -> None:
        self.worker = WorkerProcess(self.env, self.tmp_path / "worker.log")
        self.worker.start()

    def send(self, task: str, **kwargs: Any) -> None:
        self.sender.send_task(task, kwargs=kwargs)

    def __exit__(self, *_exc: object) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.sender.close()
        self.redis.stop()


def running_rollup() -> RollupRun | None:
    return RollupRun.objects.filter(outcome=RunOutcome.RUNNING).first()


def test_a_worker_killed_mid_rollup_leaves_tables_as_a_clean_run_makes_them(tmp_path: Any) -> None:
    generate_logs(300_000, users=200)
    with Broker(tmp_path) as broker:
        broker.start_worker()
        broker.send("tasks.rollup_usage")
        wait_for(lambda: running_rollup() is not None, what="the rollup to start")
        time.sleep(0.5)
        killed = running_rollup()
        assert killed is not None, "the rollup finished before the worker could be killed"
        assert broker.worker is not None
        broker.worker.kill()
        assert summary_tables() == {name: [] for name in summary_tables()}  # its transaction never committed

        broker.start_worker()

        # The killed run's database session ends when PostgreSQL notices its client is gone; until then it holds
        # the lock and a new run is skipped. The next scheduled runs get through.
        def next_run_succeeded() -> bool:
            if RollupRun.objects.filter(outcome=RunOutcome.SUCCEEDED).exists():
                return True
            if not RollupRun.objects.filter(outcome=RunOutcome.RUNNING).exclude(pk=killed.pk).exists():
                broker.send("tasks.rollup_usage")
            time.sleep(1)
            return False

        wait_for(next_run_succeeded, 120, "a rollup after the kill")
    killed.refresh_from_db()
    assert (killed.outcome, killed.error) == (RunOutcome.FAILED, ABANDONED)
    after_kill = summary_tables()
    for model in (UsageHourlyBucket, UserAICostSummary, DailyUsageSummary, UserMonthlyAICostSummary):
        model.objects.all().delete()
    clean = run_rollup(hours=all_hours(), trigger="backfill")
    assert clean.outcome == RunOutcome.SUCCEEDED
    assert summary_tables() == after_kill
    assert UsageHourlyBucket.objects.aggregate(n=Sum("total_requests"))["n"] == 300_000


def test_a_worker_killed_mid_alert_run_sends_no_email_twice_and_loses_none(tmp_path: Any) -> None:
    users = [get_user_model().objects.create_user(f"spender{n}", f"spender{n}@example.com") for n in range(6)]
    for user in users:  # each at 150% of a 1.00 daily limit
        UserSpendLimit.objects.create(user=user, daily_limit=Decimal("1.00"), monthly_limit=Decimal("1000"))
        UserDailySpend.objects.create(user=user, time_zone=periods.reporting_zone_name(), day=periods.today(),
                                      cost=Decimal("1.50"), requests=1)  # fmt: skip
    with (
        SmtpInbox(hold_at=3) as inbox,
        Broker(tmp_path, {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(inbox.port)}) as broker,
    ):
        broker.start_worker()
        broker.send("tasks.send_spend_alerts")
        assert inbox.holding.wait(60), "the alert run did not reach its third email"
        assert broker.worker is not None
        broker.worker.kill()  # while the third email is half-way through its SMTP conversation
        inbox.release()
        unsent = SpendAlert.objects.filter(sent_at__isnull=True, superseded=False)
        assert (len(inbox.messages), unsent.count()) == (2, 4)

        broker.start_worker()
        broker.send("tasks.send_spend_alerts")
        wait_for(lambda: not unsent.exists(), 60, "the remaining alerts to be sent")
        wait_for(lambda: len(inbox.messages) >= 6, 10, "the sixth email")
        time.sleep(0.5)  # time for a seventh, should one be on its way
    sent = SpendAlert.objects.filter(sent_at__isnull=False)
    assert sent.count() == 6
    assert sorted(inbox.subjects()) == sorted(alert_subject(alert) for alert in sent)
    assert sorted(to for to, _message in inbox.messages) == sorted([u.email] for u in users)
    assert sorted(sent.values_list("attempts", flat=True)) == [1] * 6


SEED_OUTAGE_DATABASE = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from usage.models import AIProviderPricing
from tests.conftest import EPOCH
AIProviderPricing.objects.create(provider="acme", model="acme-1", input_price=Decimal("2.5"),
                                 output_price=Decimal("10"), effective_from=EPOCH, source="manual")
print(",".join(str(get_user_model().objects.create_user(f"load{n}").pk) for n in range(4)))
"""


@pytest.fixture
def private_postgres() -> Any:
    """A PostgreSQL cluster of its own with the schema migrated, so restarting it touches no other test."""
    folder = Path(tempfile.mkdtemp(prefix="pg-restart-"))
    folder.chmod(0o755)
    cluster = PostgresCluster(folder / "cluster")
    cluster.init()
    try:
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE app")
        env = {**os.environ, "DATABASE_URL": cluster.url("app")}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_postgres_restarting_under_load_fails_calls_clearly_and_the_app_recovers(private_postgres: Any) -> None:
    env = {"DATABASE_URL": private_postgres.url("app")}
    seed = [sys.executable, "manage.py", "shell", "-c", SEED_OUTAGE_DATABASE]
    seeded = subprocess.run(seed, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True, text=True)
    user_ids = seeded.stdout.strip().splitlines()[-1]  # the shell prints a banner first
    database = psycopg.connect(private_postgres.url("app"), autocommit=True)

    def logs_in_private_database() -> int:
        try:
            return int(database.execute("SELECT COUNT(*) FROM usage_aiusagelog").fetchone()[0])
        except psycopg.OperationalError:
            return 0

    start_at = str(time.time() + 2)
    writers = start_helpers(
        "outage_writer.py", [[str(p), "1500", user_ids, "0", "0.003", start_at] for p in (0, 1)], env
    )
    wait_for(lambda: still_running(writers) and logs_in_private_database() >= 500, what="500 calls before the restart")
    private_postgres.restart()
    restarted_at = time.time()
    outcomes = collect(writers)
    database.close()

    failed = [o for o in outcomes if o.get("outcome") == "unavailable"]
    assert failed, "no call was under way during the restart"
    for outcome in failed:
        assert outcome["error"].startswith("the call was not recorded: the database is unavailable (")
    final = {o["event_id"]: o["outcome"] for o in outcomes if o["outcome"] != "unavailable"}
    assert len(final) == 3000  # every call, the failed ones sent again with their event_id
    assert [o for o in outcomes if o["outcome"] == "recorded" and o["at"] > restarted_at] != []
    with psycopg.connect(private_postgres.url("app")) as check:
        stored = check.execute(
            "SELECT COUNT(*), COUNT(DISTINCT event_id), SUM(total_cost) FROM usage_aiusagelog"
        ).fetchone()
        counters = check.execute("SELECT SUM(requests), SUM(cost) FROM usage_userdailyspend").fetchone()
        per_user_logs = check.execute(
            "SELECT user_id, SUM(total_cost) FROM usage_aiusagelog GROUP BY 1 ORDER BY 1"
        ).fetchall()
        per_user_counters = check.execute(
            "SELECT user_id, SUM(cost) FROM usage_userdailyspend GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert stored == (3000, 3000, 3000 * OUTAGE_CALL_COST)
    assert counters == (3000, 3000 * OUTAGE_CALL_COST)  # nothing half-written: no log without its counter
    assert per_user_logs == per_user_counters
