"""``python -m bench`` with tiny counts prints the documented keys of the ``engine``, ``memory``
and ``scale`` sections (docs/benchmarks.md). Keys only: the tests never check a timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RATIOS = {
    "escrow_over_engine_throughput",
    "ipn_over_signal_p50",
    "ipn_over_signal_p99",
    "history_events_happy_path",
    "parked_orders",
    "max_cached_workflows",
    "worker_rss_mb",
    "evicted_over_cached_wake_p50",
    "two_over_one_throughput",
}


def test_tiny_bench_prints_the_ratios_and_section_keys(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "bench", "--quick", "--orders", "2", "--in-flight", "2"]
    argv += ["--parked", "6", "--cache", "3", "--out", str(out)]
    argv += ["--only", "engine", "--only", "memory", "--only", "scale"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads(done.stdout)
    assert json.loads(out.read_text()) == document
    assert list(document)[:2] == ["benchmark", "ratios"]
    assert set(document["ratios"]) == RATIOS
    sections = document["sections"]
    assert list(sections) == ["engine", "memory", "scale"]
    for figures in sections.values():
        assert "error" not in figures

    engine = sections["engine"]
    for batch in ("engine_1", "escrow", "engine_2"):
        assert {"orders_per_s", "order_ms_p50", "start_ms_p50", "cpu_ms_per_order"} <= set(
            engine[batch]
        )
    assert {"worker", "gateway", "sandbox", "temporal"} <= set(engine["escrow"]["cpu_ms_per_order"])
    assert engine["driver"]["waits_by"] in ("webhooks", "polling")
    assert {"escrow_events", "escrow_events_by_type", "engine_events"} <= set(engine["history"])
    assert {"http_ms_p50", "http_ms_p99", "signal_ms_p50", "signal_ms_p99"} <= set(
        engine["ipn_intake"]
    )
    assert set(engine["targets"]) == {
        "escrow_over_engine_throughput",
        "ipn_over_signal_p99",
        "history_events_happy_path",
    }

    memory = sections["memory"]
    assert memory["parked_orders"] == 6 and memory["max_cached_workflows"] == 3
    assert memory["rss_by_parked"][0]["parked"] == 0
    assert {"cached", "evicted", "evicted_over_cached_p50"} <= set(memory["wake"])

    scale = sections["scale"]
    assert {"one_worker_one_gateway", "two_workers_two_gateways", "ledger"} <= set(scale)
    assert scale["ledger"]["violations"] == []
