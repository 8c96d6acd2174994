"""cloudcache walkthrough as a marimo notebook.

Open it with ``marimo edit notebooks/walkthrough_marimo.py`` or run it as a script with
``python notebooks/walkthrough_marimo.py``. Environment variables (all optional):
``CLOUDCACHE_NOTEBOOK_DRAWS`` (draws and tuning steps per chain, default 1000),
``CLOUDCACHE_NOTEBOOK_BACKEND`` (``numpyro`` or ``pymc``, default ``numpyro``) and
``CLOUDCACHE_DIR`` (the cache directory, default ``./.cloudcache``).
"""

# ruff: noqa: B018  (a bare last expression is how a notebook cell shows a value)
import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import os
    import subprocess
    import sys

    import marimo as mo
    import numpy as np
    import pymc as pm
    import xarray as xr

    import cloudcache as cc
    from cloudcache.demo.models import eight_schools_model
    from cloudcache.ui.display import calls_table

    DRAWS = int(os.environ.get("CLOUDCACHE_NOTEBOOK_DRAWS", "1000"))
    BACKEND = os.environ.get("CLOUDCACHE_NOTEBOOK_BACKEND", "numpyro")
    CACHE_DIR = os.environ.get("CLOUDCACHE_DIR") or ".cloudcache"
    # progressbar is cosmetic: it is not part of the key (True or False hit the same entry).
    SETTINGS = {"draws": DRAWS, "tune": DRAWS, "chains": 2, "random_seed": 1, "progressbar": False}
    return (
        BACKEND,
        CACHE_DIR,
        SETTINGS,
        calls_table,
        cc,
        eight_schools_model,
        mo,
        np,
        os,
        pm,
        subprocess,
        sys,
        xr,
    )


@app.cell
def _(mo):
    mo.md(r"""
    # cloudcache in five minutes

    `with cc.cloud(model, cache=...)` answers every `pm.sample(...)` inside the block from
    a cache when the same model, data and sampler settings were sampled before. Otherwise
    it samples, stores the result as a readable NetCDF file, and returns it.

    We use the classic eight-schools model. Every `run.last` below is the record of the
    call just made, shown as a card: a **hit** or **miss** badge, the key, where the result
    came from, how long the call took and how much sampling time it saved.
    """)
    return


@app.cell
def _(BACKEND, CACHE_DIR, SETTINGS, cc, eight_schools_model, pm):
    # 1. A first call. Nothing is stored yet, so this samples (a miss) and writes the entry.
    model = eight_schools_model()
    with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND) as _run:
        idata = pm.sample(**SETTINGS)
    first = _run.last
    first
    return first, idata, model


@app.cell
def _(mo):
    mo.md(r"""
    ## The instant re-run

    Running the same call again does not sample: the result comes from the in-process
    memory tier under the same key, in milliseconds. Re-run the cell above (or this one)
    and its card turns into a green **hit**.
    """)
    return


@app.cell
def _(BACKEND, CACHE_DIR, SETTINGS, cc, first, model, pm):
    with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND) as _run:
        pm.sample(**SETTINGS)
    rerun = _run.last
    assert rerun.key == first.key
    rerun
    return (rerun,)


@app.cell
def _(mo):
    mo.md(r"""
    ## The disk cache survives restarts

    After a restart the memory tier is empty and the model is rebuilt from scratch; the
    key is the same, so the `.nc` file answers. Reading only the file store shows it.
    The file is plain NetCDF: `xarray.open_datatree` (or ArviZ) opens it without
    cloudcache.
    """)
    return


@app.cell
def _(BACKEND, CACHE_DIR, SETTINGS, cc, eight_schools_model, idata, np, pm, rerun, xr):
    _rebuilt = eight_schools_model()
    with cc.cloud(_rebuilt, cache=cc.FileStore(CACHE_DIR), backend=BACKEND) as _run:
        pm.sample(**SETTINGS)
    from_disk = _run.last
    assert from_disk.key == rerun.key
    with xr.open_datatree(from_disk.location, engine="h5netcdf") as _opened:
        np.testing.assert_array_equal(
            _opened["posterior"]["eight_schools::mu"].values,
            idata["posterior"]["eight_schools::mu"].values,
        )
    from_disk
    return (from_disk,)


@app.cell
def _(mo):
    mo.md(r"""
    ## Overwrite

    `overwrite=True` never reads: it samples again and replaces the stored entry (same
    key, new file).
    """)
    return


@app.cell
def _(BACKEND, CACHE_DIR, SETTINGS, cc, from_disk, model, pm):
    with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND, overwrite=True) as _run:
        pm.sample(**SETTINGS)
    overwritten = _run.last
    assert overwritten.key == from_disk.key
    overwritten
    return (overwritten,)


@app.cell
def _(mo):
    mo.md(r"""
    ## Model iteration

    Change the model and you get a new key, so each variant keeps its own entry. Here the
    centred parameterisation sits next to the non-centred one; switching back is a hit.
    """)
    return


@app.cell
def _(BACKEND, CACHE_DIR, SETTINGS, cc, mo, model, np, overwritten, pm):
    _effects = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    _sigmas = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    with pm.Model(coords={"school": np.arange(8)}, name="eight_schools") as centred_model:
        _mu = pm.Normal("mu", 0.0, 5.0)
        _tau = pm.HalfCauchy("tau", 5.0)
        _theta = pm.Normal("theta", _mu, _tau, dims="school")
        pm.Normal("y", _theta, _sigmas, observed=_effects, dims="school")

    with cc.cloud(centred_model, cache=CACHE_DIR, backend=BACKEND) as _run:
        idata_centred = pm.sample(**SETTINGS)
    centred = _run.last
    with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND) as _run:
        pm.sample(**SETTINGS)
    back_to_noncentred = _run.last
    assert centred.key != overwritten.key and back_to_noncentred.key == overwritten.key
    mo.hstack([centred, back_to_noncentred], justify="start")
    return back_to_noncentred, centred, idata_centred


@app.cell
def _(mo):
    mo.md(r"""
    ## Before and after the model change

    Both posteriors came out of the cache's NetCDF entries; ArviZ plots them side by side.
    """)
    return


@app.cell
def _(idata, idata_centred, pm):
    _variables = ["eight_schools::mu", "eight_schools::tau", "eight_schools::theta"]
    if pm.__version__.startswith("5."):  # InferenceData: ArviZ 0.x plots it
        import arviz as _az
        import matplotlib.pyplot as _plt

        _az.plot_forest(
            [idata, idata_centred],
            model_names=["non-centred", "centred"],
            var_names=_variables,
            combined=True,
        )
        forest = _plt.gcf()
    else:  # DataTrees: ArviZ 1.x plots them
        import arviz_plots as _azp

        forest = _azp.plot_forest(
            {"non-centred": idata, "centred": idata_centred},
            var_names=_variables,
            combined=True,
            backend="matplotlib",
        )
        forest.add_legend("model")
    forest
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Predictive sampling is cached too

    `pm.sample_prior_predictive` and `pm.sample_posterior_predictive` follow the same
    rules. A posterior predictive is keyed by the trace it was given: a trace that came
    from the cache is known by its key, so nothing is hashed.
    """)
    return


@app.cell
def _(BACKEND, CACHE_DIR, back_to_noncentred, cc, idata, model, pm):
    with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND) as _run:
        pm.sample_prior_predictive(draws=100, random_seed=2)
        pm.sample_posterior_predictive(idata, random_seed=3, progressbar=False)
        pm.sample_posterior_predictive(idata, random_seed=3, progressbar=False)
    predictive = list(_run.records)
    assert back_to_noncentred.hit and predictive[-1].hit
    _run  # a session shows a table of its calls
    return (predictive,)


@app.cell
def _(mo):
    mo.md(r"""
    ## The command line

    `cloudcache ls` lists what is stored, `show` prints one entry's metadata, and
    `rm`, `clear`, `prune`, `verify`, `sync` maintain a cache. Here we call it as
    `python -m cloudcache` so it uses this notebook's Python.
    """)
    return


@app.cell
def _(CACHE_DIR, centred, mo, os, subprocess, sys):
    def cloudcache_cli(*arguments):
        """Run `cloudcache ARGUMENTS` with this notebook's Python; its output as text."""
        completed = subprocess.run(
            [sys.executable, "-m", "cloudcache", *arguments],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "COLUMNS": "140", "NO_COLOR": "1"},
        )
        return completed.stdout

    cli_listing = cloudcache_cli("ls", "--cache", CACHE_DIR)
    _shown = cloudcache_cli("show", centred.key[:16], "--cache", CACHE_DIR)
    mo.vstack(
        [
            mo.md(f"`cloudcache ls --cache {CACHE_DIR}`"),
            mo.plain_text(cli_listing),
            mo.md(f"`cloudcache show {centred.key[:16]} --cache {CACHE_DIR}`"),
            mo.plain_text(_shown),
        ]
    )
    return (cli_listing,)


@app.cell
def _(mo):
    mo.md(r"""
    ## Time saved, call by call

    Every call of this walkthrough: a hit saved the sampling time of the run that stored it.
    """)
    return


@app.cell
def _(
    back_to_noncentred,
    calls_table,
    centred,
    first,
    from_disk,
    mo,
    overwritten,
    predictive,
    rerun,
):
    _calls = [first, rerun, from_disk, overwritten, centred, back_to_noncentred, *predictive]
    mo.Html(calls_table(_calls))
    return


@app.cell
def _(
    back_to_noncentred,
    centred,
    first,
    from_disk,
    mo,
    overwritten,
    predictive,
    rerun,
):
    _steps = [first, rerun, from_disk, overwritten, centred, back_to_noncentred, *predictive]
    _hits = sum(record.hit for record in _steps)
    mo.md(f"**Walkthrough complete**: {len(_steps)} calls, {_hits} answered from the cache.")
    return


if __name__ == "__main__":
    app.run()
