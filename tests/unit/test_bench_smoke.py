"""``python -m bench --quick --only envelope`` runs and prints the documented figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_envelope_bench_prints_positive_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "envelope", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert json.loads(out.read_text()) == document
    assert document["quick"] is True
    assert document["machine"]["cpus"] >= 1
    assert list(document["sections"]) == ["envelope"]
    envelope = document["sections"]["envelope"]
    assert "error" not in envelope
    for part in ("encrypted", "plain", "rsa", "aes"):
        assert envelope[part]["ops_per_s"] > 0
        assert envelope[part]["us_per_op"] > 0
        assert envelope[part]["iterations"] > 0
    for name in (
        "encrypted_over_plain_time",
        "rsa_share_of_encrypted",
        "aes_share_of_encrypted",
        "rsa_over_aes_time",
    ):
        assert envelope["ratios"][name] > 0
    assert envelope["payload_bytes"] > 0
    assert envelope["rsa_key_bits"] == 2048
