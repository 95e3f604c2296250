"""A real Celery worker on the configured broker: the embedded filesystem broker in the default pass, Redis in the
PostgreSQL pass. A log is written, the task travels through the broker, the worker runs it, the tables match."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import kombu.pools
import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core import mail
from django.test.utils import override_settings

from analytics.models import RollupRun, UserAICostSummary
from project.celery import app
from tasks import rollup_usage
from tests.test_rollup import assert_rollup_matches_logs
from usage import periods
from usage.models import SpendAlert, UserSpendLimit
from usage.recording import record_usage

transactional = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the worker did not finish the task in time"
        time.sleep(0.1)


def forget_broker_connections() -> None:
    """Drop pooled connections made with the previous broker options, so producer and worker use the new ones."""
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(scope="session")
def private_broker_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Embedded broker folders for the test session (the app keeps its connection pool, so one set for all)."""
    root = tmp_path_factory.mktemp("broker")
    folders = {name: root / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    return {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
    }


@pytest.fixture
def worker(transactional_db: None, private_broker_folders: dict[str, str]) -> Iterator[Any]:
    """A worker thread consuming the real broker; tasks are queued, not run inline, while it runs."""
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_transport_options")}
    app.conf.task_always_eager = False
    if app.conf.broker_url.startswith("filesystem://"):  # not the queue folder `make run` uses
        app.conf.broker_transport_options = private_broker_folders
    forget_broker_connections()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as running:
            yield running
    finally:
        app.conf.update(saved)
        forget_broker_connections()


@transactional
def test_a_log_is_rolled_up_by_the_worker(worker: Any, alice: Any, make_price: Any) -> None:
    assert app.conf.broker_url.split(":")[0] == ("redis" if settings.REDIS_URL else "filesystem")
    make_price()
    record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=1_234_567, output_tokens=89)
    record_usage(user=alice, feature="search", provider="acme", model="unpriced-model", input_tokens=10)
    rollup_usage.delay()
    wait_for(lambda: RollupRun.objects.filter(outcome="succeeded").exists())
    summary = UserAICostSummary.objects.get(user=alice, date=periods.today())
    assert (summary.total_requests, summary.unpriced_requests, summary.total_cost) == (2, 1, Decimal("2.469846"))
    assert_rollup_matches_logs("UTC")


@transactional
@override_settings(AI_SPEND_ALERT_RECIPIENTS=["staff@example.com"])
def test_a_write_that_exceeds_the_limit_queues_the_alert_at_once(worker: Any, alice: Any, make_price: Any) -> None:
    make_price()
    UserSpendLimit.objects.create(user=alice, daily_limit=Decimal("5.00"), monthly_limit=Decimal("100.00"))
    record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=2_500_000)  # 5.00
    wait_for(lambda: SpendAlert.objects.filter(sent_at__isnull=False).exists())
    assert [m.subject for m in mail.outbox] == [
        f"AI spend alert: alice reached 100% of the daily limit for {periods.today()}"
    ] * 2
