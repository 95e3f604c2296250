"""Every benchmark in one go, written to docs/BENCHMARKS.md with a plot of query latency against log count.

    python -m bench            1,000,000 logs (the GraphQL queries also at 100,000, for the plot)
    python -m bench --quick    100,000 logs, a short load run: a few minutes
    python -m bench --large    adds 10,000,000 logs (an hour or more, several GB of disk)

Needs PostgreSQL (BENCH_DATABASE_URL, default the local `bench` database); Redis is used when REDIS_URL is set.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import ROOT, machine, write_section
from bench.plot import RESULTS, plot_query_latency


def run(module: str, *arguments: object) -> dict[str, Any] | None:
    """Run one benchmark as its own process; its last JSON line (if it prints one) is its result."""
    command = [sys.executable, "-m", f"bench.{module}", *map(str, arguments)]
    print("==", " ".join(command[2:]), flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    print(done.stdout[-2000:], f"({time.monotonic() - started:.0f} s)", flush=True)
    for line in reversed(done.stdout.strip().splitlines()):
        try:
            result = json.loads(line)
        except ValueError:
            continue  # a line of a report, or of indented JSON
        if isinstance(result, dict):
            return result
    return None


def keep_query_result(result: dict[str, Any]) -> None:
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    saved[str(result["logs"])] = {**result, "measured": datetime.now(UTC).date().isoformat(), "machine": machine()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100,000 logs and a 10 s load run")
    size.add_argument("--large", action="store_true", help="also 10,000,000 logs")
    args = parser.parse_args()
    sizes = [100_000] if args.quick else [100_000, 1_000_000] + ([10_000_000] if args.large else [])
    largest = sizes[-1]

    run("write_path", "--calls", 1000 if args.quick else 3000, "--rounds", 3 if args.quick else 5)
    run("rollup", "--logs", largest)
    for logs in sizes:  # the largest last, so the admin pages below reuse its data
        result = run("graphql", "--logs", logs)
        if result is not None:
            keep_query_result(result)
    run("admin_pages", "--logs", largest, "--reuse")
    run("load", "--seconds", 10 if args.quick else 30)
    run("langsmith_forward", "--calls", 500 if args.quick else 2000)
    write_run_section(args.quick, args.large, sizes)


def write_run_section(quick: bool, large: bool, sizes: list[int]) -> None:
    plot = plot_query_latency()
    write_section(
        "run",
        f"""## This run

`python -m bench{" --quick" if quick else " --large" if large else ""}` on {datetime.now(UTC):%Y-%m-%d}:
log counts {", ".join(f"{n:,}" for n in sizes)}; machine: {machine()}. Sections below that name another log count
or date come from earlier runs and are kept until a run measures them again.

![GraphQL query latency against log count]({plot.relative_to(ROOT / "docs")})
""",
    )


if __name__ == "__main__":
    main()
