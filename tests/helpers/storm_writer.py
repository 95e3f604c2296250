"""One of the processes of the replay storm: sends its share of the events through the Python API or through
recordUsage over the GraphQL view, and reports each outcome as a JSON line."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers.process import report, setup_django, wait_until

setup_django()

from django.test import Client  # noqa: E402

from tests.helpers.workload import storm_events, storm_share  # noqa: E402
from usage.tracker import record_usage  # noqa: E402

MUTATION = "mutation($events: [UsageEventInput!]!) { recordUsage(events: $events) { eventId outcome reason } }"


def as_graphql(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "userId": str(event["user"]),
        "feature": event["feature"],
        "provider": event["provider"],
        "model": event["model"],
        "inputTokens": event["input_tokens"],
        "outputTokens": event["output_tokens"],
        "occurredAt": event["occurred_at"].isoformat(),
        "eventId": event["event_id"],
    }


def send_python(events: list[dict[str, Any]]) -> None:
    for event in events:
        report(event_id=event["event_id"], outcome=record_usage(**event).outcome)


def send_graphql(events: list[dict[str, Any]], api_key: str) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}", SERVER_NAME="localhost")
    for start in range(0, len(events), 1000):
        batch = [as_graphql(e) for e in events[start : start + 1000]]
        body = {"query": MUTATION, "variables": {"events": batch}}
        answer = client.post("/graphql/", body, content_type="application/json").json()
        assert "errors" not in answer, answer["errors"]
        for result in answer["data"]["recordUsage"]:
            report(event_id=result["eventId"], outcome=result["outcome"].lower(), reason=result["reason"])


def main() -> None:
    channel, process, processes, count, users, latest, start_at = sys.argv[1:8]
    user_ids = [int(u) for u in users.split(",")]
    events = storm_events(int(count), user_ids, datetime.fromisoformat(latest))
    mine = storm_share(events, int(process), int(processes), repeats=3)
    wait_until(float(start_at))
    if channel == "python":
        send_python(mine)
    else:
        send_graphql(mine, sys.argv[8])


if __name__ == "__main__":
    main()
