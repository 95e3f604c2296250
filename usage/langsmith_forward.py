"""Forwarding every recorded call to LangSmith as an `llm` run, in the background.

The write path only puts the saved log on a bounded in-process queue after its transaction commits; a daemon thread
turns logs into runs and posts them. So a call never waits for LangSmith and never fails because LangSmith is
down, slow or refusing: a run that cannot be sent is counted and dropped (the log itself is safe in our database).
The thread and its client are created lazily in each process (a Celery worker forks after start-up).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from usage.langsmith import langsmith_client
from usage.models import AIUsageLog, CallStatus

logger = logging.getLogger(__name__)
QUEUE_SIZE = 10_000  # runs waiting to be sent; beyond this (LangSmith down for long) new ones are dropped
RUN_NAMESPACE = uuid.UUID("6f1c3f4e-4a57-4f4c-9b55-52a1f3f0c0de")  # run ids derive from log ids: a resend is a no-op


def forwarding_enabled() -> bool:
    return bool(settings.LANGSMITH_TRACING and settings.LANGSMITH_API_KEY)


def forward_after_commit(logs: Iterable[AIUsageLog]) -> None:
    """Queue these saved logs for LangSmith once the surrounding transaction commits (nothing if it rolls back)."""
    if not forwarding_enabled():
        return
    saved = list(logs)
    transaction.on_commit(lambda: sender().submit(saved))


def run_id(log: AIUsageLog) -> uuid.UUID:
    return uuid.uuid5(RUN_NAMESPACE, f"usage-log:{log.pk}")


def usage_metadata(log: AIUsageLog) -> dict[str, Any]:
    """Tokens by LangSmith's convention (input includes cache reads and writes, output includes reasoning, as ours
    do) and our computed cost, left out for an unpriced call rather than sent as 0."""
    usage: dict[str, Any] = {
        "input_tokens": log.input_tokens,
        "output_tokens": log.output_tokens,
        "total_tokens": log.input_tokens + log.output_tokens,
        "input_token_details": {"cache_read": log.cached_input_tokens, "cache_creation": log.cache_write_tokens},
        "output_token_details": {"reasoning": log.reasoning_tokens},
    }
    if log.total_cost is not None:
        usage["total_cost"] = log.total_cost
    return usage


def run_fields(log: AIUsageLog) -> dict[str, Any]:
    """The run LangSmith receives for one log."""
    usage = usage_metadata(log)
    metadata = {
        "ls_provider": log.provider, "ls_model_name": log.model, "user_id": log.user_id,
        "session_id": log.session_id or None, "feature": log.feature, "usage_log_id": log.pk,
        "event_id": log.event_id, "status": log.status, "unpriced": log.total_cost is None, "usage_metadata": usage,
    }  # fmt: skip
    failed = log.status != CallStatus.SUCCESS
    return {
        "id": run_id(log),
        "name": log.feature,
        "run_type": "llm",
        "inputs": {"model": log.model},
        "outputs": {"usage_metadata": usage},
        "start_time": log.occurred_at,
        "end_time": log.occurred_at + timedelta(milliseconds=log.latency_ms or 0),
        "error": (log.error_message or log.status) if failed else None,
        "extra": {"metadata": metadata},
        "project_name": settings.LANGSMITH_PROJECT,
    }


@dataclass
class SenderStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0


class RunSender:
    """A daemon thread posting queued logs as runs, one process at a time."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.Queue[AIUsageLog] = queue.Queue(maxsize=QUEUE_SIZE)
        self.stats = SenderStats()
        self._client: Any = None
        self._client_target: tuple[str, str] | None = None
        self._thread = threading.Thread(target=self._run, name="langsmith-forwarder", daemon=True)
        self._thread.start()

    def submit(self, logs: list[AIUsageLog]) -> None:
        for log in logs:
            try:
                self.queue.put_nowait(log)
            except queue.Full:
                self.stats.dropped += 1

    def wait_until_sent(self, timeout: float = 10.0) -> bool:
        """Whether everything queued so far was handled (sent or failed) within `timeout` seconds (for tests)."""
        done = threading.Event()

        def join() -> None:
            self.queue.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            log = self.queue.get()
            try:
                self._send(log)
                self.stats.sent += 1
            except Exception as exc:  # LangSmith down or refusing: count it, keep the thread alive
                self.stats.failed += 1
                logger.warning("LangSmith run for usage log %s not sent: %s", log.pk, exc)
            finally:
                self.queue.task_done()

    def _send(self, log: AIUsageLog) -> None:
        fields = run_fields(log)
        self.client().create_run(fields.pop("name"), fields.pop("inputs"), fields.pop("run_type"), **fields)

    def client(self) -> Any:
        """The client for the configured endpoint and key (made again if they changed)."""
        target = (settings.LANGSMITH_ENDPOINT, settings.LANGSMITH_API_KEY)
        if self._client is None or self._client_target != target:
            self._client, self._client_target = forwarding_client(), target
        return self._client


def forwarding_client() -> Any:
    return langsmith_client(retries=2, timeout_seconds=settings.LANGSMITH_TIMEOUT_SECONDS)


_sender: RunSender | None = None
_sender_lock = threading.Lock()


def sender() -> RunSender:
    """This process's sender, started on first use (and again in a forked child, whose copy has no thread)."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender.pid != os.getpid():
            _sender = RunSender()
        return _sender
