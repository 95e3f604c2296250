"""`bin/run` (what `make run` starts) on a fresh data folder: it serves, and a TERM or INT to its process group
(what `timeout`, systemd, a container stop or Ctrl-C send) stops it quickly, leaving nothing behind, with status 0."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.process import ROOT
from tests.helpers.services import free_port, port_open, wait_for

# Settings of the test run that must not leak into the product started here: it runs as on a fresh machine.
NOT_PASSED_ON = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "EMAIL_HOST")
AVOIDABLE_NOISE = ("Warning", "WARNING", "Watching for file changes", "No hostname was supplied", "ERROR")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh data folder for both runs: the first migrates and loads the demo data, the second reuses them."""
    return tmp_path_factory.mktemp("run-data")


def started_from(data_dir: Path) -> set[int]:
    """Every live process started with this data folder in its environment (the web server, the worker, its pool)."""
    marker = f"APP_DATA_DIR={data_dir}".encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.add(int(entry.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return pids


def run_and_stop(data_dir: Path, stop_with: signal.Signals) -> tuple[int, str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in NOT_PASSED_ON}
    env.update(APP_DATA_DIR=str(data_dir), PORT=str(port), ADMIN_PASSWORD="pw-for-the-run-test")
    log = data_dir / f"run-{stop_with.name}.log"
    with log.open("wb") as out:
        run = subprocess.Popen(
            [str(ROOT / "bin/run")], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for(lambda: port_open(port) or run.poll() is not None, 120, "bin/run to serve")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=10) as page:
                assert page.status == 200
            wait_for(lambda: b"celery@" in log.read_bytes() and b" ready." in log.read_bytes(), 60, "the worker")
            os.killpg(run.pid, stop_with)  # the whole group, as a terminal or a service manager does
            status = run.wait(10)
        finally:
            for pid in started_from(data_dir):  # only if the test failed: leave nothing running
                os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not started_from(data_dir), 5, "every process of the run to end")
    return status, log.read_text()


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_then_stops_on_a_signal_to_its_group_leaving_nothing_behind(
    data_dir: Path, stop_with: signal.Signals
) -> None:
    status, output = run_and_stop(data_dir, stop_with)
    assert status == 0, output
    assert [line for line in output.splitlines() if any(noise in line for noise in AVOIDABLE_NOISE)] == []
    assert "Admin:   http://127.0.0.1:" in output and "beat: Starting..." in output
