"""Why did this miss? ``cloud(..., explain=True)`` and ``cloudcache why`` on real entries."""

from __future__ import annotations

import contextlib
import io
import json

import pymc as pm
import pytest
from cli_entries import CALLS, DRAWS, sampled_cache
from click.testing import CliRunner

import cloudcache as cc
from cloudcache.cli import app
from cloudcache.fingerprint.key import major_minor
from cloudcache.stores import MemoryStore
from cloudcache.stores.maintenance.catalog import Catalog
from cloudcache.ui.explain import differences, explain_miss, nearest_entry


@pytest.fixture(scope="module")
def cache():
    return sampled_cache()


def test_first_call_of_a_model_says_nothing_is_stored(cache):
    assert "no stored entry of model 'tiny'" in cache.stderr["base"]
    assert "no stored entry of model 'other'" in cache.stderr["other"]


def test_changed_data_names_the_pm_data_variable(cache):
    text = cache.stderr["data"]
    assert f"nearest stored entry of 'tiny' is {cache.prefixes['base']}" in text
    assert "values of pm.Data 'tiny::x' changed" in text
    assert "graph" not in text.split("it differs in", 1)[1]


def test_changed_draws_names_the_sampler_argument(cache):
    text = cache.stderr["draws"]
    assert "sampler settings: draws 30 -> 40" in text
    assert "pm.Data" not in text


def test_changed_prior_is_a_graph_difference(cache):
    text = cache.stderr["prior"].split("it differs in", 1)[1]
    assert "model graph" in text
    assert "pm.Data" not in text and "sampler settings" not in text


def test_hit_prints_no_explanation(cache):
    model, draws = CALLS["base"]
    captured = io.StringIO()
    with (
        contextlib.redirect_stderr(captured),
        cc.cloud(model, cache=str(cache.root), backend="pymc", explain=True) as run,
    ):
        pm.sample(draws, **DRAWS)
    assert run.last is not None and run.last.hit
    assert f"hit {cache.prefixes['base']}" in captured.getvalue()
    assert "why" not in captured.getvalue()


def test_backend_and_version_differences_are_named(cache):
    catalog = Catalog(cache.root)
    stored = catalog.find(cache.prefixes["base"])[0]
    catalog.read_metadata([stored])
    new = json.loads(json.dumps(stored.metadata))
    new["components"]["backend"] = "numpyro"
    new["components"]["versions"]["pymc"] = "9.9"
    found = {d.component: d.detail for d in differences(new, stored.metadata)}
    assert found == {
        "backend": "backend: pymc -> numpyro",
        "versions": f"library versions: pymc '{major_minor(pm.__version__)}' -> '9.9'",
    }


def test_nearest_entry_prefers_fewest_differences(cache):
    entries = Catalog(cache.root).entries(slug="tiny")
    changed_data = next(e for e in entries if e.prefix == cache.prefixes["data"])
    new = json.loads(json.dumps(changed_data.metadata))
    new["components"]["request"] = "0" * 32
    new["request"]["draws"] = 99
    nearest, found = nearest_entry(new, entries)
    assert nearest is not None and nearest.prefix == cache.prefixes["data"]
    assert [str(d) for d in found] == ["sampler settings: draws 30 -> 99"]


def test_explain_needs_a_file_store(capsys):
    explain_miss(MemoryStore(), {"key": "ab" * 16, "model": "tiny"}, overwrite=False, quiet=False)
    assert "needs a disk or object-store cache" in capsys.readouterr().err


def test_explain_with_overwrite_says_the_cache_was_not_read(capsys):
    explain_miss(MemoryStore(), {"key": "ab" * 16}, overwrite=True, quiet=False)
    assert "overwrite=True" in capsys.readouterr().err


def test_explain_must_be_a_bool():
    with pytest.raises(TypeError, match="explain must be True or False"):
        cc.cloud(CALLS["base"][0], explain="yes")


def test_why_command_explains_a_stored_entry(cache):
    result = CliRunner().invoke(app, ["why", cache.prefixes["data"], "--cache", str(cache.root)])
    assert result.exit_code == 0, result.output
    assert "values of pm.Data 'tiny::x' changed" in result.output


def test_why_json_lists_components(cache):
    arguments = ["why", cache.prefixes["draws"], "-c", str(cache.root), "--json"]
    result = CliRunner().invoke(app, arguments)
    report = json.loads(result.output)
    assert report["nearest"]["prefix"] in {cache.prefixes["base"], cache.prefixes["data"]}
    assert [d["component"] for d in report["differences"]] == ["request"]


def test_why_unknown_prefix_exits_1(cache):
    result = CliRunner().invoke(app, ["why", "0000", "-c", str(cache.root)])
    assert result.exit_code == 1


def test_explain_works_for_a_predictive_miss(tmp_path) -> None:
    """The one cache path explains every kind of miss, not just pm.sample."""
    from tiny_models import tiny_model

    captured = io.StringIO()
    with (
        contextlib.redirect_stderr(captured),
        cc.cloud(tiny_model(), cache=str(tmp_path), backend="pymc", explain=True) as run,
    ):
        pm.sample_prior_predictive(draws=20, random_seed=3)
        pm.sample_prior_predictive(draws=25, random_seed=3)
    assert [record.hit for record in run.records] == [False, False]
    text = captured.getvalue()
    assert "no stored entry of model 'tiny'" in text
    assert "draws 20 -> 25" in text


def test_changed_seed_is_named_as_the_user_spelled_it(tmp_path) -> None:
    model, draws = CALLS["base"]
    with cc.cloud(model, cache=str(tmp_path), backend="pymc", quiet=True):
        pm.sample(draws, **DRAWS)
    captured = io.StringIO()
    with (
        contextlib.redirect_stderr(captured),
        cc.cloud(model, cache=str(tmp_path), backend="pymc", explain=True) as run,
    ):
        pm.sample(draws, **{**DRAWS, "random_seed": 2})
    text = captured.getvalue().split("it differs in", 1)[1]
    assert "sampler settings: random_seed 1 -> 2" in text
    assert "chain-generators" not in text
    assert run.last is not None
    why = CliRunner().invoke(app, ["why", run.last.key[:12], "--cache", str(tmp_path)])
    assert why.exit_code == 0, why.output
    assert "random_seed 1 -> 2" in why.output and "chain-generators" not in why.output


def test_changed_prior_names_the_variable_not_its_dependants(cache):
    text = cache.stderr["prior"].split("it differs in", 1)[1]
    assert "model graph: definition of 'tiny::a' changed" in text
    assert "tiny::y" not in text and "tiny::b" not in text  # y only reads a: not named
