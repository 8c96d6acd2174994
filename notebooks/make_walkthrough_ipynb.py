"""Write ``walkthrough.ipynb`` (the Jupyter walkthrough) from the cells below, without outputs.

Run ``python notebooks/make_walkthrough_ipynb.py`` after editing a cell; the test suite checks
that the committed notebook matches what this script writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).with_name("walkthrough.ipynb")

CELLS: list[tuple[str, str]] = [
    (
        "markdown",
        """\
# cloudcache in five minutes (Jupyter)

`with cc.cloud(model, cache=...)` answers every `pm.sample(...)` inside the block from a cache
when the same model, data and sampler settings were sampled before. Otherwise it samples,
stores the result as a readable NetCDF file, and returns it.

Optional environment variables: `CLOUDCACHE_NOTEBOOK_DRAWS` (draws and tuning steps per chain,
default 1000), `CLOUDCACHE_NOTEBOOK_BACKEND` (`numpyro` or `pymc`, default `numpyro`) and
`CLOUDCACHE_DIR` (the cache directory, default `./.cloudcache`).""",
    ),
    (
        "code",
        """\
import os
import subprocess
import sys

import numpy as np
import pymc as pm
import xarray as xr
from IPython.display import HTML, display

import cloudcache as cc
from cloudcache.demo.models import eight_schools_model
from cloudcache.ui.display import calls_table

DRAWS = int(os.environ.get("CLOUDCACHE_NOTEBOOK_DRAWS", "1000"))
BACKEND = os.environ.get("CLOUDCACHE_NOTEBOOK_BACKEND", "numpyro")
CACHE_DIR = os.environ.get("CLOUDCACHE_DIR") or ".cloudcache"
# progressbar is cosmetic: it is not part of the key (True or False hit the same entry).
SETTINGS = {"draws": DRAWS, "tune": DRAWS, "chains": 2, "random_seed": 1, "progressbar": False}
steps = {}""",
    ),
    (
        "markdown",
        """\
## A first call

Nothing is stored yet, so this samples (a miss) and writes the entry. `run.last` is the
record of the call, shown as a card: a **hit** or **miss** badge, the key, where the result
went, how long the call took and how much sampling time it saved.""",
    ),
    (
        "code",
        """\
model = eight_schools_model()
with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND) as run:
    idata = pm.sample(**SETTINGS)
steps["first"] = run.last
run.last""",
    ),
    (
        "markdown",
        """\
## The instant re-run

Run the cell above again, or make the same call here: the result comes from the in-process
memory tier under the same key, in milliseconds, and the card turns into a green **hit**.""",
    ),
    (
        "code",
        """\
with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND) as run:
    idata_again = pm.sample(**SETTINGS)
steps["rerun"] = run.last
assert run.last.key == steps["first"].key
run.last""",
    ),
    (
        "markdown",
        """\
## The disk cache survives kernel restarts

After a restart the memory tier is empty and the model is rebuilt from scratch; the key is the
same, so the `.nc` file answers. Reading only the file store shows it. The file is plain
NetCDF: `xarray.open_datatree` (or ArviZ) opens it without cloudcache.""",
    ),
    (
        "code",
        """\
rebuilt = eight_schools_model()
with cc.cloud(rebuilt, cache=cc.FileStore(CACHE_DIR), backend=BACKEND) as run:
    pm.sample(**SETTINGS)
steps["from_disk"] = run.last
with xr.open_datatree(run.last.location, engine="h5netcdf") as opened:
    np.testing.assert_array_equal(
        opened["posterior"]["eight_schools::mu"].values,
        idata["posterior"]["eight_schools::mu"].values,
    )
run.last""",
    ),
    (
        "markdown",
        """\
## Overwrite

`overwrite=True` never reads: it samples again and replaces the stored entry (same key, new
file).""",
    ),
    (
        "code",
        """\
with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND, overwrite=True) as run:
    pm.sample(**SETTINGS)
steps["overwrite"] = run.last
assert run.last.key == steps["first"].key
run.last""",
    ),
    (
        "markdown",
        """\
## Model iteration

Change the model and you get a new key, so each variant keeps its own entry. Here the centred
parameterisation sits next to the non-centred one; switching back is a hit.""",
    ),
    (
        "code",
        """\
effects = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
sigmas = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
with pm.Model(coords={"school": np.arange(8)}, name="eight_schools") as centred_model:
    mu = pm.Normal("mu", 0.0, 5.0)
    tau = pm.HalfCauchy("tau", 5.0)
    theta = pm.Normal("theta", mu, tau, dims="school")
    pm.Normal("y", theta, sigmas, observed=effects, dims="school")

with cc.cloud(centred_model, cache=CACHE_DIR, backend=BACKEND) as run:
    idata_centred = pm.sample(**SETTINGS)
steps["centred"] = run.last
with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND) as run:
    pm.sample(**SETTINGS)
steps["back_to_noncentred"] = run.last
assert steps["centred"].key != steps["first"].key
assert steps["back_to_noncentred"].key == steps["first"].key
display(steps["centred"], steps["back_to_noncentred"])""",
    ),
    (
        "markdown",
        """\
## Before and after the model change

Both posteriors came out of the cache's NetCDF entries; ArviZ plots them side by side (they
are what `pm.sample` returns: DataTrees for ArviZ 1.x on PyMC 6, InferenceData for ArviZ 0.x on
PyMC 5).""",
    ),
    (
        "code",
        """\
variables = ["eight_schools::mu", "eight_schools::tau", "eight_schools::theta"]
if pm.__version__.startswith("5."):
    import arviz as az
    import matplotlib.pyplot as plt

    az.plot_forest(
        [idata, idata_centred],
        model_names=["non-centred", "centred"],
        var_names=variables,
        combined=True,
    )
    plt.show()
else:
    import arviz_plots as azp

    forest = azp.plot_forest(
        {"non-centred": idata, "centred": idata_centred},
        var_names=variables,
        combined=True,
        backend="matplotlib",
    )
    forest.add_legend("model")
    forest.show()""",
    ),
    (
        "markdown",
        """\
## Predictive sampling is cached too

`pm.sample_prior_predictive` and `pm.sample_posterior_predictive` follow the same rules. A
posterior predictive is keyed by the trace it was given: a trace that came from the cache is
known by its key, so nothing is hashed.""",
    ),
    (
        "code",
        """\
with cc.cloud(model, cache=CACHE_DIR, backend=BACKEND) as run:
    pm.sample_prior_predictive(draws=100, random_seed=2)
    pm.sample_posterior_predictive(idata, random_seed=3, progressbar=False)
    pm.sample_posterior_predictive(idata, random_seed=3, progressbar=False)
steps["prior"], steps["ppc"], steps["ppc_again"] = run.records
assert steps["ppc_again"].hit
run  # a session shows a table of its calls""",
    ),
    (
        "markdown",
        """\
## The command line

`cloudcache ls` lists what is stored, `show` prints one entry's metadata, and `rm`, `clear`,
`prune`, `verify`, `sync` maintain a cache. We call it as `python -m cloudcache` so it uses
this kernel's Python.""",
    ),
    (
        "code",
        """\
def cloudcache_cli(*arguments):
    # `cloudcache ARGUMENTS` with this kernel's Python: prints the command and its output
    print("$ cloudcache " + " ".join(arguments))
    completed = subprocess.run(
        [sys.executable, "-m", "cloudcache", *arguments],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "140"},
    )
    print(completed.stdout)
    return completed.stdout


listing = cloudcache_cli("ls", "--cache", CACHE_DIR)
shown = cloudcache_cli("show", steps["centred"].key[:16], "--cache", CACHE_DIR)""",
    ),
    (
        "markdown",
        """\
## Time saved, call by call

Every call of this walkthrough: a hit saved the sampling time of the run that stored it.""",
    ),
    (
        "code",
        """\
HTML(calls_table(steps.values()))""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The walkthrough notebook, outputs empty, with a python3 kernelspec."""
    notebook = nbformat.v4.new_notebook()
    makers = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    for index, (kind, source) in enumerate(CELLS):
        cell = makers[kind](source)
        cell["id"] = f"cell-{index:02d}"  # stable ids keep the committed file reproducible
        notebook.cells.append(cell)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def render() -> str:
    """The notebook file's exact text."""
    return nbformat.writes(build())


if __name__ == "__main__":
    NOTEBOOK.write_text(render(), encoding="utf-8")
    print(f"wrote {NOTEBOOK}", file=sys.stderr)
