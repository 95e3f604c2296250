"""A local stand-in for the few LangSmith endpoints this service uses, on 127.0.0.1, for the real client to talk to.

GET /sessions (find a project), POST /runs (a forwarded run, kept for the test to read), POST /runs/query (a
project's runs, in pages with cursors). It can refuse the key, hang, or fail one page of a listing.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "lsv2-test-key"
TENANT = "00000000-0000-0000-0000-0000000000aa"


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class FakeLangSmith:
    def __init__(self, page_size: int = 2) -> None:
        self.projects: dict[str, str] = {}  # name -> id
        self.stored_runs: list[dict[str, Any]] = []  # runs a project holds, for /runs/query
        self.posted: list[dict[str, Any]] = []  # runs received on POST /runs (numbers parsed as Decimal)
        self.page_size = page_size
        self.hang_seconds = 0.0
        self.fail_pages: set[int] = set()  # 0-based page numbers of /runs/query answered with 500 (every time)
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_project(self, name: str) -> str:
        return self.projects.setdefault(name, str(uuid.uuid4()))

    def add_run(self, project: str, **fields: Any) -> dict[str, Any]:
        run = {"id": str(uuid.uuid4()), "run_type": "llm", "name": "chat", "session_id": self.add_project(project),
               "inputs": {}, "outputs": {}, "extra": {}, **fields}  # fmt: skip
        run.setdefault("trace_id", run["id"])
        self.stored_runs.append(run)
        return run

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)  # the tests of a slow server have the client give up before this

            def _authorised(self) -> bool:
                if fake.hang_seconds:
                    time.sleep(fake.hang_seconds)
                if self.headers.get("x-api-key") != API_KEY:
                    self._answer(401, {"detail": "Invalid token"})
                    return False
                return True

            def _body(self) -> Any:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                return json.loads(raw, parse_float=Decimal) if raw else {}

            def do_GET(self) -> None:
                fake.requests.append(f"GET {self.path}")
                if not self._authorised():
                    return
                url = urlsplit(self.path)
                if url.path == "/sessions":
                    name = parse_qs(url.query).get("name", [""])[0]
                    found = [
                        {
                            "id": pid,
                            "name": n,
                            "tenant_id": TENANT,
                            "reference_dataset_id": None,
                            "start_time": "2026-01-01T00:00:00",
                        }
                        for n, pid in fake.projects.items()
                        if n == name
                    ]
                    self._answer(200, found)  # fmt: skip
                else:
                    self._answer(200, {})

            def do_POST(self) -> None:
                fake.requests.append(f"POST {self.path}")
                body = self._body()
                if not self._authorised():
                    return
                if self.path == "/runs":
                    fake.posted.append(body)
                    self._answer(202, {})
                elif self.path == "/runs/query":
                    self._query(body)
                else:
                    self._answer(404, {"detail": "not found"})

            def _query(self, body: dict[str, Any]) -> None:
                offset = int(body.get("cursor") or 0)
                page = offset // fake.page_size
                if page in fake.fail_pages:
                    self._answer(500, {"detail": "internal error"})
                    return
                since = body.get("start_time")
                runs = [r for r in fake.stored_runs if r["session_id"] in body.get("session", [])
                        and (since is None or _instant(r["start_time"]) >= _instant(since))]  # fmt: skip
                runs.sort(key=lambda r: r["start_time"], reverse=True)  # newest first, as LangSmith lists them
                chunk = runs[offset : offset + fake.page_size]
                more = offset + fake.page_size < len(runs)
                self._answer(200, {"runs": chunk, "cursors": {"next": str(offset + fake.page_size) if more else None}})

        return Handler
