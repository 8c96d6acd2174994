"""Issue 21.6: every user-supplied name works, or gets a clear error; none is ever compiled.

Real PyMC models whose model name, variable name, dimension name and coordinate values are
hostile strings go through a real miss, a real disk hit (the memory store emptied) and the real
command line's listing. A name holding Python code proves that no name reaches ``compile``/
``exec`` as code (PyTensor writes node names into generated source, as comments). Names no
sampler can compile (a NUL byte in a variable name) are refused at once; names NetCDF cannot
store (a NUL byte in a dimension name or coordinate value, an empty dimension name) return the
sampled result with one warning that names them, and are never stored wrong.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
import pytest
from click.testing import CliRunner
from reliability_figures import record_trials
from reliability_workers import sample_kwargs

import cloudcache as cc
from cloudcache.cli import app
from cloudcache.errors import UncompilableName
from cloudcache.stores.resolve import process_memory_store

#: Names that must work everywhere PyMC accepts them (PyMC itself refuses "/" in names).
WORKING = {
    "newline": "a\nb",
    "carriage return": "a\rb",
    "dot-dot": "..",
    "unicode": "μ-ß-日本-\u202e-\U0001f600",
    "quotes": 'it\'s "quoted"',
    "backslashes": "..\\..\\escape",
    "blanks": " a\tb ",
    "very long": "n" * 3000,
    "python code": "x\n__import__('os').mkdir('TRIPWIRE')#",
}


def _model(name: str = "m", variable: str = "x", dim: str = "obs", value: str = "a") -> pm.Model:
    with pm.Model(name=name, coords={dim: [value, "b", "c"]}) as model:
        mu = pm.Normal(variable, 0.0, 1.0)
        pm.Normal("y", mu, 1.0, observed=np.array([0.3, -0.1, 0.8]), dims=dim)
    return model


def _sample(model: pm.Model, root: Path) -> tuple[Any, Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cc.cloud(model, cache=str(root), backend="pymc", quiet=True) as run:
            tree = pm.sample(**sample_kwargs(3))
    return tree, run.last, [str(w.message) for w in caught if "cloudcache" in str(w.message)]


def _listed(root: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["ls", "--cache", str(root), "--json"])
    assert result.exit_code == 0, result.output
    plain = CliRunner().invoke(app, ["ls", "--cache", str(root)])
    assert plain.exit_code == 0 and "\x1b" not in plain.output, plain.output
    return json.loads(result.output)


@pytest.mark.parametrize("name", WORKING.values(), ids=WORKING.keys())
def test_hostile_names_work_through_a_miss_a_disk_hit_and_the_listing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the "python code" name would create its tripwire
    root = tmp_path / "cache"
    build = lambda: _model(name=name, variable=name, dim=name, value=name)  # noqa: E731
    first, missed, messages = _sample(build(), root)
    assert not missed.hit and not messages, messages
    assert Path(missed.location).resolve().is_relative_to(root.resolve())

    process_memory_store().clear()
    second, hit, messages = _sample(build(), root)
    assert hit.hit and not messages, messages  # a disk hit: the names read back exactly
    assert second["posterior"].identical(first["posterior"])
    observed = second["observed_data"].to_dataset()  # a tree node would read ".." as a path
    assert name in observed.dims and list(observed[name].values) == [name, "b", "c"]
    assert f"{name}::{name}" in second["posterior"].data_vars

    [row] = _listed(root)
    assert row["path"] == missed.location and row["status"] == "ok"
    assert row["model"] == Path(missed.location).parent.name  # the model's folder name
    assert not (tmp_path / "TRIPWIRE").exists(), "a name was run as code"
    record_trials("hostile input", "hostile names: miss, disk hit, listing", 1, 0)


@pytest.mark.parametrize(
    "where", ["model name", "variable name"], ids=["model-name", "variable-name"]
)
def test_a_nul_in_a_variable_name_is_refused_clearly(where: str, tmp_path: Path) -> None:
    """Before: ``SyntaxError: source code string cannot contain null bytes`` from PyTensor."""
    model = _model(name="a\0b") if where == "model name" else _model(variable="a\0b")
    with (
        pytest.raises(UncompilableName, match="NUL byte") as refused,
        cc.cloud(model, cache=str(tmp_path), backend="pymc", quiet=True),
    ):
        pm.sample(**sample_kwargs(3))
    assert "a\\x00b" in str(refused.value) and "Rename" in str(refused.value)
    assert not list(tmp_path.rglob("*.nc"))  # nothing sampled, nothing stored


UNSTORABLE = {
    "NUL in a dimension name": {"dim": "a\0b"},
    "empty dimension name": {"dim": ""},
    "NUL in a coordinate value": {"value": "a\0b"},
}


@pytest.mark.parametrize("names", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_names_netcdf_cannot_store_return_the_result_with_one_clear_warning(
    names: dict[str, str], tmp_path: Path
) -> None:
    """Before: a NUL dimension was stored as a truncated name and every read was "damaged"."""
    for _ in range(2):  # the second call misses again, never reads anything "damaged"
        process_memory_store().clear()
        tree, record, messages = _sample(_model(**names), tmp_path)
        assert "posterior" in tree.children and not record.hit
        assert record.location == "uncached"
        assert len(messages) == 1, messages
        assert "could not store" in messages[0] and "NetCDF cannot store" in messages[0]
        assert ("NUL byte" in messages[0]) == ("\0" in "".join(names.values()))
    assert _listed(tmp_path) == []
    assert not list(tmp_path.rglob("*.nc")) and not list(tmp_path.rglob("*.tmp"))
