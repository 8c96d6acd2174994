"""The walkthrough notebooks execute headless, every cell, against a fresh cache directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SUMMARY_MARKER = "CLOUDCACHE_WALKTHROUGH_SUMMARY "
DRAWS = "30"

#: What each step of the walkthrough must do on an empty cache.
EXPECTED_HITS = {
    "first": False,
    "rerun": True,
    "from_disk": True,
    "overwrite": False,
    "centred": False,
    "back_to_noncentred": True,
    "prior": False,
    "ppc": False,
    "ppc_again": True,
}


EXPECTED_STATES = {name: "hit" if hit else "miss" for name, hit in EXPECTED_HITS.items()}


def notebook_env(cache_dir: Path, backend: str) -> dict[str, str]:
    return {
        **os.environ,
        "CLOUDCACHE_DIR": str(cache_dir),
        "CLOUDCACHE_NOTEBOOK_DRAWS": DRAWS,
        "CLOUDCACHE_NOTEBOOK_BACKEND": backend,
    }


#: What the tests read of a finished walkthrough (users never see it): every step's record and
#: which of them ``cloudcache ls`` listed. Run after the notebook's own cells, in its namespace
#: (``steps``/``listing`` in the Jupyter one; the marimo one's definitions are bound first).
SUMMARY_CODE = """
import json as _json
summary = {
    name: {"hit": record.hit, "key": record.key, "location": record.location}
    for name, record in steps.items()
}
summary["cli_lists"] = [name for name, record in steps.items() if record.key[:16] in listing]
print("CLOUDCACHE_WALKTHROUGH_SUMMARY " + _json.dumps(summary))
"""

#: Runs the marimo walkthrough as ``python walkthrough_marimo.py`` does (``app.run()``), then
#: prints the summary from the definitions it returns.
MARIMO_RUNNER = (
    """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("walkthrough", sys.argv[1])
notebook = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebook)
_, defs = notebook.app.run()
predictive = defs["predictive"]
steps = {
    "first": defs["first"], "rerun": defs["rerun"], "from_disk": defs["from_disk"],
    "overwrite": defs["overwritten"], "centred": defs["centred"],
    "back_to_noncentred": defs["back_to_noncentred"],
    "prior": predictive[0], "ppc": predictive[1], "ppc_again": predictive[2],
}
listing = defs["cli_listing"]
"""
    + SUMMARY_CODE
)


def test_walkthroughs_hold_no_test_scaffolding() -> None:
    for name in ("walkthrough_marimo.py", "walkthrough.ipynb", "make_walkthrough_ipynb.py"):
        text = (NOTEBOOKS / name).read_text(encoding="utf-8")
        assert SUMMARY_MARKER.strip() not in text, name
        assert "[:600]" not in text, name  # output is shown whole, never cut mid-word


def parse_summary(text: str) -> dict[str, Any]:
    lines = [line for line in text.splitlines() if line.startswith(SUMMARY_MARKER)]
    assert lines, f"the notebook printed no summary line; output ends with:\n{text[-2000:]}"
    return json.loads(lines[-1].removeprefix(SUMMARY_MARKER))


def check_walkthrough(summary: dict[str, Any], cache_dir: Path) -> None:
    assert {name: summary[name]["hit"] for name in EXPECTED_HITS} == EXPECTED_HITS
    first, centred = summary["first"], summary["centred"]
    assert summary["rerun"]["location"] == "memory"
    assert summary["from_disk"]["location"] == first["location"]
    assert Path(first["location"]).is_file() and Path(first["location"]).parent.parent == cache_dir
    assert centred["key"] != first["key"] and Path(centred["location"]).is_file()
    # The posterior predictive sits beside the posterior it read, labelled by that trace's
    # content (issue 20.1: a trace is known by its content, not by the entry it came from).
    ppc = Path(summary["ppc"]["location"])
    assert ppc.parent == Path(first["location"]).parent
    assert re.fullmatch(r"ppc_[0-9a-f]{8}-[0-9a-f]{16}\.nc", ppc.name), ppc.name
    assert set(summary["cli_lists"]) == set(EXPECTED_HITS)


@pytest.mark.timeout(600)
def test_marimo_walkthrough_runs_as_a_script(tmp_path: Path) -> None:
    pytest.importorskip("marimo")
    cache_dir = tmp_path / "cache"
    completed = subprocess.run(
        [sys.executable, "-c", MARIMO_RUNNER, str(NOTEBOOKS / "walkthrough_marimo.py")],
        cwd=tmp_path,
        env=notebook_env(cache_dir, "numpyro"),
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    check_walkthrough(parse_summary(completed.stdout), cache_dir)


@pytest.fixture(scope="module")
def kernel_spec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``python3`` kernelspec that launches *this* interpreter (not whatever is on PATH)."""
    pytest.importorskip("ipykernel")
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "python3"
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (cloudcache tests)",
                "language": "python",
            }
        )
    )
    return root


@pytest.mark.timeout(600)
def test_jupyter_walkthrough_executes_every_cell(
    tmp_path: Path, kernel_spec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    cache_dir = tmp_path / "cache"
    for name, value in notebook_env(cache_dir, "pymc").items():
        monkeypatch.setenv(name, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(NOTEBOOKS / "walkthrough.ipynb", as_version=4)
    users_cells = len(notebook.cells)
    notebook.cells.append(nbformat.v4.new_code_cell(SUMMARY_CODE))
    specs = KernelSpecManager(kernel_dirs=[str(kernel_spec_dir)])
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    client = nbclient.NotebookClient(
        notebook,
        km=manager,
        timeout=540,
        allow_errors=False,  # any failing cell raises CellExecutionError and fails the test
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )
    check_walkthrough(parse_summary(printed), cache_dir)
    shown = [
        output
        for cell in notebook.cells[:users_cells]
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    streams = "".join(output.get("text", "") for output in shown)
    assert "TqdmWarning" not in streams and "IProgress" not in streams
    assert "$ cloudcache ls --cache" in streams and "$ cloudcache show" in streams
    assert "CLOUDCACHE_WALKTHROUGH_SUMMARY" not in streams
    shown_json = streams.split("$ cloudcache show", 1)[1].split("\n", 1)[1]
    metadata = json.loads(shown_json[: shown_json.rindex("}") + 1])  # whole, not cut
    assert metadata["kind"] == "sample"
    rich = [
        output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") in ("display_data", "execute_result")
    ]
    cards = "".join(data.get("text/html", "") for data in rich)
    states = re.findall(r'class="cloudcache-(?:card|row)" data-state="(\w+)"', cards)
    # cards: first, rerun, from_disk, overwrite, centred, back_to_noncentred; then the rows of
    # the predictive session's table and of the table of every call
    cards = [EXPECTED_STATES[name] for name in list(EXPECTED_HITS)[:6]]
    assert states == [*cards, "miss", "miss", "hit", *EXPECTED_STATES.values()], states
    assert any("image/png" in data for data in rich), "the forest plot was not displayed"


def test_committed_jupyter_notebook_matches_its_generator_and_has_no_outputs() -> None:
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import make_walkthrough_ipynb
    finally:
        sys.path.remove(str(NOTEBOOKS))
    committed = (NOTEBOOKS / "walkthrough.ipynb").read_text(encoding="utf-8")
    assert committed == make_walkthrough_ipynb.render(), (
        "notebooks/walkthrough.ipynb is stale: run python notebooks/make_walkthrough_ipynb.py"
    )
    cells = json.loads(committed)["cells"]
    assert all(not cell.get("outputs") for cell in cells if cell["cell_type"] == "code")
