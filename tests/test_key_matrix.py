"""The key contract across fresh processes: what must hit does, what must miss does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from keymatrix_cases import CASES

HERE = Path(__file__).parent
HIT_CASES = sorted(name for name in CASES if name.startswith("hit_"))
MISS_CASES = sorted(name for name in CASES if name.startswith("miss_"))

#: Misses whose change is keyed because it can change a posterior, but cannot change this
#: model's: every bounded parameter is transformed, so ``check_bounds=False`` removes checks
#: that never fail. PyMC 5 returns bit-identical draws; PyMC 6's differ only in the last bits of
#: its compiled code. The miss itself (not a hit, a key of its own) is still required.
SAME_POSTERIOR_MISSES = frozenset({"miss_check_bounds"})


def run_fresh_process(cache_dir: Path, names: list[str]) -> dict[str, dict]:
    """Run ``names`` in a new Python process on ``cache_dir``; return the results by case."""
    completed = subprocess.run(
        [sys.executable, str(HERE / "keymatrix_cases.py"), str(cache_dir), *names],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    return {result["case"]: result for result in results}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    cache_dir = tmp_path_factory.mktemp("keymatrix")
    base = run_fresh_process(cache_dir, ["base"])
    hits = run_fresh_process(cache_dir, HIT_CASES)
    misses = run_fresh_process(cache_dir, MISS_CASES)
    return {**base, **hits, **misses}


def test_matrix_is_large_enough() -> None:
    assert len(HIT_CASES) >= 10
    assert len(MISS_CASES) >= 15


def test_base_was_sampled(matrix: dict[str, dict]) -> None:
    assert matrix["base"]["hit"] is False


@pytest.mark.parametrize("case", HIT_CASES)
def test_must_hit(matrix: dict[str, dict], case: str) -> None:
    result, base = matrix[case], matrix["base"]
    assert result["hit"] is True, f"{case} missed"
    assert result["key"] == base["key"]
    assert result["fingerprint"] == base["fingerprint"]


@pytest.mark.parametrize("case", MISS_CASES)
def test_must_miss_and_return_the_new_posterior(matrix: dict[str, dict], case: str) -> None:
    result, base = matrix[case], matrix["base"]
    assert result["hit"] is False, f"{case} was wrongly answered from the cache"
    assert result["key"] != base["key"]
    if case not in SAME_POSTERIOR_MISSES:
        assert result["fingerprint"] != base["fingerprint"]


def test_every_miss_has_its_own_key(matrix: dict[str, dict]) -> None:
    keys = [matrix[case]["key"] for case in MISS_CASES]
    assert len(set(keys)) == len(keys)


def test_miss_shapes_follow_the_request(matrix: dict[str, dict]) -> None:
    assert matrix["miss_draws"]["draws"] == 26
    assert matrix["miss_chains"]["chains"] == 2
