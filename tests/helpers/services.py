"""Real services started and stopped by the fault tests: a private Redis, a private PostgreSQL cluster, a Celery
worker process. Each is the real program on a free loopback port, so killing one never touches the shared ones."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from django.db import connection

from tests.helpers.process import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], seconds: float = 60, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def database_url() -> str:
    """The test database as a URL for child processes."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"


class _KillableChild:
    """A child program that a test can kill with SIGKILL: no clean shutdown, as when a machine loses a process."""

    process: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None


class RedisServer(_KillableChild):
    """A redis-server of its own, killed and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.port), 10, "redis-server start")

    def stop(self) -> None:
        if self.process is not None:
            self.kill()


class PostgresCluster:
    """A PostgreSQL cluster of its own (initdb in a temporary folder), so a restart hits no other test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        bin_dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bin_dirs:
            raise RuntimeError("PostgreSQL server programs not found under /usr/lib/postgresql")
        self.bin = bin_dirs[-1]

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-U", "postgres", "-A", "trust")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.folder / "data"),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )

    def restart(self) -> None:
        """A fast shutdown (every session is ended, open transactions roll back), then a start."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        self.start()

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")


class WorkerProcess(_KillableChild):
    """`celery worker` as a child process on the given broker and database."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "project",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


class SmtpInbox:
    """A real SMTP server (aiosmtpd) on a free port that keeps what it accepts.

    With hold_at=n, the n-th message is held in the middle of its conversation (after RCPT, before DATA) until
    release() is called, so a test can kill the sender while a send is under way. Addresses in `refused` are
    refused at RCPT (550), as a server does a mailbox it does not know.
    """

    def __init__(self, hold_at: int | None = None) -> None:
        self.port = free_port()
        self.refused: set[str] = set()
        self.messages: list[tuple[list[str], Message]] = []
        self.hold_at = hold_at
        self.holding = threading.Event()
        self._release = threading.Event()
        self._started = 0
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if not envelope.rcpt_tos:  # the first recipient of a new message
            self._started += 1
            if self._started == self.hold_at:
                self.holding.set()
                while not self._release.is_set():
                    await asyncio.sleep(0.05)
        if address in self.refused:
            return "550 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((sorted(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [" ".join(str(message["Subject"]).split()) for _to, message in self.messages]

    def release(self) -> None:
        self._release.set()

    def __enter__(self) -> SmtpInbox:
        self._controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
        self._controller.stop()
