"""The plot of GraphQL query latency against log count, from the results each GraphQL benchmark run keeps."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import ROOT

RESULTS = ROOT / "docs" / "benchmarks" / "graphql-results.json"
PLOT = ROOT / "docs" / "benchmarks" / "query-latency.png"
SERIES = [("timeline", "costTimeline 90 days"), ("top_users", "topUsers 30 days")]


def plot_query_latency() -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    results = json.loads(RESULTS.read_text())
    counts = sorted(int(n) for n in results)
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    for key, label in SERIES:
        for measure, style in (("median_ms", "-o"), ("p95_ms", "--^")):
            values = [results[str(n)][key][measure] for n in counts]
            axes.plot(counts, values, style, label=f"{label}, {measure.split('_')[0]}")
        floors = [results[str(n)][f"{key}_floor"]["median_ms"] for n in counts]
        axes.plot(counts, floors, ":", color="grey", label=f"{label}, floor (bare SQL) median")
    axes.axhline(50, color="red", linewidth=0.8, label="p95 target (50 ms)")
    latest = max(str(results[str(n)].get("measured", "")) for n in counts)
    for n in counts:  # points kept from an earlier run are labelled as such
        if str(results[str(n)].get("measured", "")) != latest:
            axes.annotate("earlier run", (n, 0), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    axes.set_xscale("log")
    axes.set_xlabel("logs in the database")
    axes.set_ylabel("latency (ms)")
    axes.set_title("GraphQL dashboard queries against log count")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PLOT)
    plt.close(figure)
    return PLOT


if __name__ == "__main__":
    print(plot_query_latency())
