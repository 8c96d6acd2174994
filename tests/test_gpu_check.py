"""The GPU check script runs end to end on the CPU, so the one GPU call cannot fail on set-up."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_check  # noqa: E402


def test_gpu_check_runs_every_step_on_the_cpu(tmp_path: Path) -> None:
    status = gpu_check.main(
        [
            "--cpu",
            "--no-nutpie",
            "--posteriors",
            "kidiq-kidscore_momiq",
            "--sizes",
            "500",
            "--draws",
            "100",
            "--tune",
            "100",
            "--chains",
            "2",
            "--z",
            "6",
            "--sd-tol",
            "0.5",
            "--out",
            str(tmp_path),
        ]
    )
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    for step in ("references", "scaling", "reuse", "determinism", "hits"):
        assert "error" not in report[step], report[step]
    assert report["reuse"]["new_seed"]["compilations"] == 0
    assert report["reuse"]["new_data"]["compilations"] == 0
    assert report["determinism"]["identical"]
    assert report["hits"]["memory_hit"]["location"] == "memory"
    assert report["hits"]["disk_hit"]["location"].endswith(".nc")
    assert report["environment"]["jax_backend"] == "cpu"
    assert status == 0, report["references"]
