"""Importing LLM runs from LangSmith projects as usage logs.

Each run becomes one log priced by our catalog, with `langsmith:<run id>` as its event_id, so importing the same
run again (a rerun, two imports at once, an overlap) records nothing twice. The stored cursor (the newest start time
imported) moves only after a whole import succeeded; a page that fails half-way leaves it where it was, and the next
run reads those runs again, finding the ones already written to be duplicates. Each import reads back an overlap
before the cursor, so runs that were still going last time are caught once they finish.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F
from django.utils import timezone

from usage.batch import record_batch
from usage.langsmith import langsmith_client
from usage.models import AIUsageLog, CallStatus, LangSmithImport
from usage.validation import InvalidUsage, check_metadata_shape

logger = logging.getLogger(__name__)
OVERLAP = timedelta(hours=1)
BATCH = 200


@dataclass
class ImportReport:
    fetched: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    without_usage: int = 0  # skipped: no token counts (a run that is not a model call, or still running)
    forwarded_by_us: int = 0  # skipped: runs this service sent, whose calls are logged already
    refused_metadata: int = 0  # skipped: metadata nested deeper or larger than ours may be (check_metadata_shape)


def import_client() -> Any:
    return langsmith_client(retries=2, timeout_seconds=settings.LANGSMITH_TIMEOUT_SECONDS * 3)  # pages take longer


def import_all_projects() -> dict[str, dict[str, int]]:
    """Import every project in LANGSMITH_IMPORT_PROJECTS (none when LangSmith is not configured)."""
    if not settings.LANGSMITH_API_KEY:
        return {}
    return {project: asdict(import_project(project)) for project in settings.LANGSMITH_IMPORT_PROJECTS}


def import_project(project: str, client: Any = None, batch_size: int = BATCH) -> ImportReport:
    """Import the project's runs since its cursor (less the overlap), writing them `batch_size` at a time."""
    state, _ = LangSmithImport.objects.get_or_create(project=project)
    LangSmithImport.objects.filter(pk=state.pk).update(last_started_at=timezone.now())
    since = state.cursor - OVERLAP if state.cursor else None
    report = ImportReport()
    try:
        newest = _import_runs(client or import_client(), project, since, report, batch_size)
    except Exception as exc:
        _finish(state, report, succeeded=False, error=f"{type(exc).__name__}: {exc}")
        raise
    cursor = max(filter(None, [state.cursor, newest]), default=None)
    _finish(state, report, succeeded=True, cursor=cursor)
    return report


def _import_runs(
    client: Any, project: str, since: datetime | None, report: ImportReport, batch_size: int
) -> datetime | None:
    """Record the project's finished LLM runs that started from `since`; returns the newest start time recorded,
    held back to the oldest run still going (so it is read again once it has finished)."""
    newest: datetime | None = None
    oldest_running: datetime | None = None
    pending: list[dict[str, Any]] = []
    for run in client.list_runs(project_name=project, run_type="llm", start_time=since):
        report.fetched += 1
        started = _aware(run.start_time)
        if run.end_time is None:
            oldest_running = min(filter(None, [oldest_running, started]))
            report.without_usage += 1
            continue
        call = call_from_run(run, project, report)
        if call is None:
            continue
        pending.append(call)
        newest = max(filter(None, [newest, started]))
        if len(pending) >= batch_size:
            _record(pending, report)
            pending = []
    _record(pending, report)
    if oldest_running is not None and newest is not None:
        return min(newest, oldest_running - timedelta(microseconds=1))
    return newest


def _aware(moment: datetime) -> datetime:
    """LangSmith sends UTC times, sometimes without their zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _metadata(run: Any) -> dict[str, Any]:
    return dict((run.extra or {}).get("metadata") or {})


def run_tokens(run: Any) -> dict[str, int] | None:
    """Token counts by our rule (input includes cache reads and writes, output includes reasoning), from the run's
    usage_metadata where it has one, else its prompt/completion counts; None when it reports no usage."""
    usage = _metadata(run).get("usage_metadata") or (run.outputs or {}).get("usage_metadata")
    if usage:
        details_in = usage.get("input_token_details") or {}
        details_out = usage.get("output_token_details") or {}
        tokens = {
            "input_tokens": usage.get("input_tokens") or 0, "output_tokens": usage.get("output_tokens") or 0,
            "cached_input_tokens": details_in.get("cache_read") or 0,
            "cache_write_tokens": details_in.get("cache_creation") or 0,
            "reasoning_tokens": details_out.get("reasoning") or 0,
        }  # fmt: skip
    else:
        tokens = {"input_tokens": run.prompt_tokens or 0, "output_tokens": run.completion_tokens or 0}
    return tokens if any(tokens.values()) else None


def _model(run: Any, metadata: dict[str, Any]) -> tuple[str, str]:
    params = (run.extra or {}).get("invocation_params") or {}
    model = metadata.get("ls_model_name") or params.get("model") or params.get("model_name") or "unknown"
    return str(metadata.get("ls_provider") or "unknown"), str(model)


def call_from_run(run: Any, project: str, report: ImportReport) -> dict[str, Any] | None:
    """The record_usage fields of one finished run, or None (counted in the report) when it is not importable."""
    metadata = _metadata(run)
    try:  # before any value is read: str() of a value nested thousands of levels deep raises RecursionError
        check_metadata_shape("metadata", metadata)
    except InvalidUsage:
        report.refused_metadata += 1
        return None
    if "usage_log_id" in metadata:
        report.forwarded_by_us += 1
        return None
    tokens = run_tokens(run)
    if tokens is None:
        report.without_usage += 1
        return None
    provider, model = _model(run, metadata)
    started, ended = _aware(run.start_time), _aware(run.end_time)
    session = metadata.get("session_id") or metadata.get("thread_id") or metadata.get("conversation_id")
    return {
        **tokens,
        "user": metadata.get("user_id"),
        "feature": str(metadata.get("feature") or run.name or "langsmith")[:100],
        "provider": provider, "model": model,
        "occurred_at": started, "latency_ms": max(0, int((ended - started).total_seconds() * 1000)),
        "status": CallStatus.ERROR if run.error else CallStatus.SUCCESS,
        "error_message": str(run.error or "")[:2000],
        "session_id": None if session is None else str(session)[:128],
        "event_id": f"langsmith:{run.id}",
        "request_meta": {"langsmith_run_id": str(run.id), "langsmith_project": project},
    }  # fmt: skip


def _resolve_users(calls: Iterable[dict[str, Any]]) -> None:
    """Metadata names a user by id or username; one unknown to us leaves the call on nobody's behalf."""
    wanted = {str(call["user"]) for call in calls if call["user"] is not None}
    users = get_user_model().objects.all()
    by_id = {str(pk): pk for pk in users.filter(pk__in=[w for w in wanted if w.isdigit()]).values_list("pk", flat=True)}
    by_name = dict(users.filter(username__in=wanted).values_list("username", "pk"))
    for call in calls:
        name = None if call["user"] is None else str(call["user"])
        call["user"] = None if name is None else by_id.get(name, by_name.get(name))


def _not_stored_yet(calls: list[dict[str, Any]], report: ImportReport) -> list[dict[str, Any]]:
    """The calls whose run is not stored yet, for its user or for nobody; the others are counted as duplicates.
    Event ids are unique per user, and a run's user may resolve differently from one import to the next (a user
    created in between), so its id in the user's scope alone would not stop a second copy. Another user's log with
    the same id never counts: it cannot swallow the run. The runs' start times bound the lookup to their months."""
    starts = [call["occurred_at"] for call in calls if isinstance(call["occurred_at"], datetime)]
    logs = AIUsageLog.objects.filter(event_id__in=[call["event_id"] for call in calls])
    if len(starts) == len(calls):
        logs = logs.filter(occurred_at__gte=min(starts), occurred_at__lte=max(starts))
    stored = set(logs.values_list("event_id", "user_id"))
    fresh = [c for c in calls if (c["event_id"], None) not in stored and (c["event_id"], c["user"]) not in stored]
    report.duplicates += len(calls) - len(fresh)
    return fresh


def _record(calls: list[dict[str, Any]], report: ImportReport) -> None:
    if not calls:
        return
    _resolve_users(calls)
    fresh = _not_stored_yet(calls, report)
    for call, outcome in zip(fresh, record_batch(fresh), strict=True):
        if isinstance(outcome, InvalidUsage):  # absurd usage, say: this run is skipped, the import goes on
            logger.warning("LangSmith run %s not imported: %s", call["event_id"], outcome)
            report.rejected += 1
        elif outcome.duplicate:
            report.duplicates += 1
        else:
            report.recorded += 1


def _finish(state: LangSmithImport, report: ImportReport, succeeded: bool, error: str = "", **fields: Any) -> None:
    LangSmithImport.objects.filter(pk=state.pk).update(
        last_finished_at=timezone.now(), last_succeeded=succeeded, last_report=asdict(report), last_error=error,
        imported_total=F("imported_total") + report.recorded, **fields,
    )  # fmt: skip
