"""LangSmith, both ways, with the real langsmith client against a local server: forwarded runs, connection status,
and importing runs as usage logs (idempotent, resumable after a failed page)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.helpers.fake_langsmith import API_KEY, TENANT, FakeLangSmith
from usage.langsmith import CONNECTED, DISCONNECTED, NOT_CONFIGURED, forget_status, langsmith_status
from usage.langsmith_forward import run_id, sender
from usage.langsmith_import import import_project
from usage.models import AIUsageLog, LangSmithImport
from usage.recording import record_usage
from usage.tracker import AIUsageTracker

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeLangSmith]:
    server = FakeLangSmith()
    yield server
    server.stop()


@pytest.fixture
def langsmith(settings: Any, fake: FakeLangSmith) -> FakeLangSmith:
    settings.LANGSMITH_API_KEY = API_KEY
    settings.LANGSMITH_ENDPOINT = fake.url
    settings.LANGSMITH_WEB_URL = "https://smith.example"
    settings.LANGSMITH_PROJECT = "metering"
    settings.LANGSMITH_TRACING = True
    settings.LANGSMITH_TIMEOUT_SECONDS = 1
    forget_status()
    yield fake
    forget_status()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once the probe is closed


# --- forwarding -------------------------------------------------------------------------------------------


def test_a_tracked_call_is_forwarded_with_its_usage_and_cost(
    langsmith: FakeLangSmith, alice: Any, make_price: Any, django_capture_on_commit_callbacks: Any
) -> None:
    make_price(cached_input_price=Decimal("0.50"))
    with (
        django_capture_on_commit_callbacks(execute=True),
        AIUsageTracker.track_ai_request(
            user=alice, feature="chat", provider="acme", model="acme-1", session_id="conv-7", event_id="e-1"
        ) as tracker,
    ):
        tracker.set_tokens(input_tokens=1200, output_tokens=300, cached_input_tokens=200, reasoning_tokens=100)
    assert sender().wait_until_sent()
    log = tracker.log
    assert log.total_cost == Decimal("0.0045")  # 1000 x 2 + 200 x 0.5 + 300 x 8, per million
    [run] = langsmith.posted
    assert (run["id"], run["name"], run["run_type"], run["session_name"]) == (
        str(run_id(log)),
        "chat",
        "llm",
        "metering",
    )
    metadata = run["extra"]["metadata"]
    assert (metadata["ls_provider"], metadata["ls_model_name"], metadata["user_id"], metadata["session_id"]) == (
        "acme", "acme-1", alice.pk, "conv-7"
    )  # fmt: skip
    assert metadata["usage_metadata"] == {
        "input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500,
        "input_token_details": {"cache_read": 200, "cache_creation": 0}, "output_token_details": {"reasoning": 100},
        "total_cost": Decimal("0.0045"),
    }  # fmt: skip
    assert run["error"] is None
    assert datetime.fromisoformat(run["start_time"]) == log.occurred_at


def test_a_failed_call_is_forwarded_with_its_error_and_an_unpriced_one_without_a_cost(
    langsmith: FakeLangSmith, alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        record_usage(
            user=alice, feature="search", provider="acme", model="no-price", input_tokens=10, status="timeout",
            error_message="upstream timed out", latency_ms=2500, occurred_at=START,
        )  # fmt: skip
    assert sender().wait_until_sent()
    [run] = langsmith.posted
    assert run["error"] == "upstream timed out"
    assert "total_cost" not in run["extra"]["metadata"]["usage_metadata"]
    assert run["extra"]["metadata"]["unpriced"] is True
    assert datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"]) == timedelta(
        milliseconds=2500
    )


def test_nothing_is_forwarded_unless_tracing_is_on(
    langsmith: FakeLangSmith, alice: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.LANGSMITH_TRACING = False
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=5)
    assert callbacks == []
    assert sender().wait_until_sent()
    assert langsmith.posted == []


@pytest.mark.parametrize("trouble", ["down", "hanging", "refusing the key"])
def test_langsmith_trouble_never_fails_or_loses_a_call(
    langsmith: FakeLangSmith, alice: Any, settings: Any, trouble: str, django_capture_on_commit_callbacks: Any
) -> None:
    if trouble == "down":
        settings.LANGSMITH_ENDPOINT = closed_port_url()
    elif trouble == "hanging":
        langsmith.hang_seconds = 2.5  # beyond the 1 s timeout
    else:
        settings.LANGSMITH_API_KEY = "a-wrong-key"
    failed_before = sender().stats.failed
    with django_capture_on_commit_callbacks(execute=True):
        result = record_usage(user=alice, feature="chat", provider="acme", model="acme-1", input_tokens=5,
                              event_id=f"trouble-{trouble}")  # fmt: skip
    assert result.outcome == "recorded"
    assert AIUsageLog.objects.filter(event_id=f"trouble-{trouble}").count() == 1
    assert sender().wait_until_sent(timeout=30)
    assert sender().stats.failed == failed_before + 1
    assert langsmith.posted == []


# --- status -----------------------------------------------------------------------------------------------


def test_status_not_configured_without_a_key(settings: Any) -> None:
    settings.LANGSMITH_API_KEY = ""
    forget_status()
    status = langsmith_status()
    assert (status.state, status.reason, status.label) == (
        NOT_CONFIGURED, "LANGSMITH_API_KEY is not set", "not configured: LANGSMITH_API_KEY is not set"
    )  # fmt: skip


def test_status_connected_links_to_the_project_and_is_cached(langsmith: FakeLangSmith) -> None:
    project_id = langsmith.add_project("metering")
    status = langsmith_status()
    assert (status.state, status.project, status.url) == (
        CONNECTED, "metering", f"https://smith.example/o/{TENANT}/projects/p/{project_id}"
    )  # fmt: skip
    asked = len(langsmith.requests)
    assert langsmith_status() == status
    assert len(langsmith.requests) == asked  # answered from the cache for a minute


def test_status_connected_before_the_project_has_runs(langsmith: FakeLangSmith) -> None:
    status = langsmith_status()
    assert (status.state, status.reason, status.url) == (
        CONNECTED, "project 'metering' has no runs yet", "https://smith.example"
    )  # fmt: skip


def test_status_disconnected_with_the_reason(langsmith: FakeLangSmith, settings: Any) -> None:
    settings.LANGSMITH_API_KEY = "a-wrong-key"
    refused = langsmith_status()
    assert refused.state == DISCONNECTED
    assert refused.reason.startswith("LangSmithAuthError: ")
    assert "Invalid token" in refused.reason
    forget_status()
    settings.LANGSMITH_ENDPOINT = closed_port_url()
    down = langsmith_status()
    assert (down.state, down.reason) == (DISCONNECTED, f"connection refused by {settings.LANGSMITH_ENDPOINT}")


def test_status_gives_up_on_a_hanging_server_without_retrying(langsmith: FakeLangSmith) -> None:
    langsmith.hang_seconds = 2.5
    status = langsmith_status()
    assert (status.state, status.reason) == (DISCONNECTED, f"no answer within 1 s from {langsmith.url}")
    assert len([r for r in langsmith.requests if r.startswith("GET /sessions")]) == 1


def test_system_status_and_dashboard_show_the_state(langsmith: FakeLangSmith, admin_client: Any) -> None:
    langsmith.add_project("metering")
    page = admin_client.get("/admin/ai-analytics/").content.decode()
    assert "✓ Connected" in page
    assert f'href="https://smith.example/o/{TENANT}/projects/p/' in page


# --- import -----------------------------------------------------------------------------------------------


def add_runs(fake: FakeLangSmith, alice: Any, bob: Any) -> None:
    """Six runs with usage (two users by id and name, one unknown), one without, one still running, one of ours."""
    usage = {"input_tokens": 1000, "output_tokens": 100, "input_token_details": {"cache_read": 400}}
    for minute, user in enumerate([alice.pk, "bob", "stranger", alice.pk]):
        fake.add_run("team-app", start_time=(START + timedelta(minutes=minute)).isoformat(),
                     end_time=(START + timedelta(minutes=minute, seconds=2)).isoformat(),
                     extra={"metadata": {"ls_provider": "acme", "ls_model_name": "acme-1", "user_id": user,
                                         "thread_id": "t-1", "usage_metadata": usage}})  # fmt: skip
    fake.add_run("team-app", start_time=(START + timedelta(minutes=5)).isoformat(),
                 end_time=(START + timedelta(minutes=5, seconds=1)).isoformat(), error="rate limited",
                 prompt_tokens=50, completion_tokens=0,
                 extra={"invocation_params": {"model": "acme-1"}, "metadata": {"ls_provider": "acme"}})  # fmt: skip
    fake.add_run("team-app", start_time=(START + timedelta(minutes=6)).isoformat(),
                 end_time=(START + timedelta(minutes=6)).isoformat(), prompt_tokens=7, completion_tokens=3,
                 extra={"metadata": {"ls_provider": "acme", "ls_model_name": "acme-1", "user_id": bob.pk}})  # fmt: skip
    fake.add_run(
        "team-app",
        start_time=(START + timedelta(minutes=7)).isoformat(),
        end_time=(START + timedelta(minutes=7)).isoformat(),
        name="retriever-step",
    )  # no usage
    fake.add_run(
        "team-app",
        start_time=(START + timedelta(minutes=8)).isoformat(),
        end_time=None,
        extra={"metadata": {"ls_provider": "acme", "ls_model_name": "acme-1"}},
    )  # still running
    fake.add_run(
        "team-app",
        start_time=(START + timedelta(minutes=9)).isoformat(),
        end_time=(START + timedelta(minutes=9)).isoformat(),
        prompt_tokens=9,
        extra={"metadata": {"usage_log_id": 42, "ls_provider": "acme"}},
    )  # one we forwarded


IMPORTED_COST = (
    4 * (Decimal(600) * 2 + Decimal(400) * Decimal("0.5") + Decimal(100) * 8) / 1_000_000
    + (Decimal(50) * 2 + Decimal(7) * 2 + Decimal(3) * 8) / 1_000_000
)


def test_import_records_finished_llm_runs_priced_by_our_catalog(
    langsmith: FakeLangSmith, alice: Any, bob: Any, make_price: Any
) -> None:
    make_price(cached_input_price=Decimal("0.50"))
    add_runs(langsmith, alice, bob)
    report = import_project("team-app")
    assert (report.fetched, report.recorded, report.duplicates, report.without_usage, report.forwarded_by_us) == (
        9, 6, 0, 2, 1
    )  # fmt: skip
    logs = AIUsageLog.objects.order_by("occurred_at")
    assert logs.count() == 6
    assert sum(log.total_cost for log in logs) == IMPORTED_COST == Decimal("0.008938")
    assert [log.user_id for log in logs] == [alice.pk, bob.pk, None, alice.pk, None, bob.pk]
    first = logs[0]
    assert (first.input_tokens, first.cached_input_tokens, first.output_tokens, first.latency_ms) == (
        1000,
        400,
        100,
        2000,
    )
    assert (first.provider, first.model, first.feature, first.session_id) == ("acme", "acme-1", "chat", "t-1")
    errored = logs[4]
    assert (errored.status, errored.error_message, errored.input_tokens) == ("error", "rate limited", 50)
    state = LangSmithImport.objects.get(project="team-app")
    assert state.cursor == START + timedelta(minutes=6)  # the newest finished run; the running one comes later
    assert (state.last_succeeded, state.imported_total) == (True, 6)


def test_import_again_counts_nothing_twice_and_catches_late_finishers(
    langsmith: FakeLangSmith, alice: Any, bob: Any, make_price: Any
) -> None:
    make_price(cached_input_price=Decimal("0.50"))
    add_runs(langsmith, alice, bob)
    import_project("team-app")
    running = next(run for run in langsmith.stored_runs if run["end_time"] is None)
    running.update(end_time=(START + timedelta(minutes=8, seconds=3)).isoformat(), prompt_tokens=100)
    again = import_project("team-app")
    assert (again.recorded, again.duplicates) == (1, 6)  # inside the overlap: read again, written once
    assert AIUsageLog.objects.count() == 7
    third = import_project("team-app")
    assert (third.recorded, third.duplicates) == (0, 7)
    assert AIUsageLog.objects.count() == 7
    assert LangSmithImport.objects.get(project="team-app").imported_total == 7


def test_an_import_that_fails_half_way_resumes_without_double_counting(
    langsmith: FakeLangSmith, alice: Any, bob: Any, make_price: Any
) -> None:
    make_price(cached_input_price=Decimal("0.50"))
    add_runs(langsmith, alice, bob)
    langsmith.fail_pages = {2}  # pages of two runs, newest first: the third page fails, retries included
    with pytest.raises(Exception, match="500"):
        import_project("team-app", batch_size=1)
    written = AIUsageLog.objects.count()
    assert written == 1  # pages 0 and 1: our own run, the running one, one without usage, and one recorded
    state = LangSmithImport.objects.get(project="team-app")
    assert (state.cursor, state.last_succeeded) == (None, False)
    assert "500" in state.last_error
    langsmith.fail_pages = set()
    report = import_project("team-app")
    assert (report.recorded, report.duplicates) == (6 - written, written)
    assert AIUsageLog.objects.count() == 6
    assert sum(log.total_cost for log in AIUsageLog.objects.all()) == IMPORTED_COST


def test_import_command(langsmith: FakeLangSmith, alice: Any, bob: Any, make_price: Any, settings: Any) -> None:
    make_price(cached_input_price=Decimal("0.50"))
    add_runs(langsmith, alice, bob)
    out = StringIO()
    call_command("import_langsmith_runs", "--project", "team-app", stdout=out)
    assert out.getvalue() == (
        "team-app: 9 fetched, 6 recorded, 0 duplicates, 0 rejected, 2 without usage, 1 forwarded by us, "
        "0 refused metadata\n"
    )
    settings.LANGSMITH_API_KEY = ""
    with pytest.raises(CommandError, match="LANGSMITH_API_KEY is not set"):
        call_command("import_langsmith_runs", "--project", "team-app")
