"""Print (or check) the cache keys of a broad set of models and calls, through the public API.

Every call goes through ``cloudcache.cloud`` exactly as a user's would (argument binding, backend
choice, key), answered by a store that records the key it is asked for and returns a stand-in
entry, so nothing is sampled and the whole run takes seconds. A refactoring that must not change
any key runs this before and after:

    python scripts/key_snapshot.py --out keys.json      # record
    python scripts/key_snapshot.py --check keys.json    # exit 1 and name every key that differs

Keys hold the PyMC, PyTensor and backend versions (major.minor): record and check in the same
environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

import cloudcache as cc
from cloudcache.stores import Entry, EntryRef, Lookup

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "mutation")]

import gallery_models  # noqa: E402
import keymatrix_cases  # noqa: E402
import tiny_models  # noqa: E402
import zoo  # noqa: E402

#: A fixed stand-in entry: its metadata enters a posterior predictive's trace identity.
STAND_IN_METADATA = {"created": "2000-01-01T00:00:00+00:00", "sampling_seconds": 1.0}


class KeyRecorder(cc.Store):
    """Answers every read with a stand-in entry and remembers the key it was asked for."""

    description = "key recorder"

    def __init__(self) -> None:
        self.keys: list[str] = []

    def lookup(self, ref: EntryRef, timeout: float | None = None) -> Lookup:
        self.keys.append(ref.key)
        tree = xr.DataTree.from_dict(
            {"/posterior": xr.Dataset({"v": (("chain", "draw"), np.zeros((1, 2)))})}
        )
        return Lookup(Entry(tree, dict(STAND_IN_METADATA), "recorder"))

    def put(self, ref: EntryRef, entry: Entry, timeout: float | None = None) -> str:
        raise AssertionError("nothing is sampled, so nothing is written")


SAMPLE_CALL = {"draws": 100, "tune": 50, "chains": 2, "random_seed": 1}

#: ``(name, cloud() backend, the calls made in one block)``; each call is ``(kind, kwargs)``.
VARIANTS: tuple[tuple[str, str, tuple[tuple[str, dict[str, Any]], ...]], ...] = (
    ("defaults", "auto", (("sample", {}),)),
    (
        "auto",
        "auto",
        (
            ("sample", SAMPLE_CALL),
            ("prior", {"draws": 50, "random_seed": 2}),
            ("posterior", {"random_seed": 3}),
        ),
    ),
    ("target_accept", "auto", (("sample", {**SAMPLE_CALL, "target_accept": 0.9}),)),
    ("pymc", "pymc", (("sample", SAMPLE_CALL),)),
    ("numpyro", "numpyro", (("sample", SAMPLE_CALL),)),
    ("nutpie", "nutpie", (("sample", SAMPLE_CALL),)),
    (
        "explicit_sampler",
        "auto",
        (("sample", {**SAMPLE_CALL, "nuts_sampler": "numpyro", "random_seed": 7}),),
    ),
    (
        "generator_seed",
        "auto",
        (("sample", {**SAMPLE_CALL, "random_seed": np.random.default_rng(3)}),),
    ),
    ("init", "numpyro", (("sample", {**SAMPLE_CALL, "init": "adapt_diag"}),)),
    ("tune_changed", "auto", (("sample", {**SAMPLE_CALL, "tune": 51}),)),
)


def models() -> Iterator[tuple[str, Callable[[], pm.Model]]]:
    """Every model of the snapshot, by a stable name."""
    yield "tiny", tiny_models.tiny_model
    yield "tiny_shifted", lambda: tiny_models.tiny_model("other", shift=1.0)
    yield "zoo_hierarchical", zoo.hierarchical
    yield "zoo_hierarchical_unbounded", lambda: zoo.hierarchical(check_bounds=False)
    yield "zoo_covariate", lambda: zoo.covariate(zoo.X, zoo.Y)
    yield "zoo_custom_dist", zoo.custom_dist
    yield "zoo_closure_dist", lambda: zoo.closure_dist(2.0)
    yield "zoo_potential", zoo.potential
    yield "zoo_transformed", zoo.transformed
    yield "zoo_masked", zoo.masked
    yield "zoo_same_named_shared", lambda: zoo.same_named_shared(zoo.X[:4], zoo.X[4:8])[0]
    yield "keymatrix_base", keymatrix_cases.build
    yield "keymatrix_student", lambda: keymatrix_cases.build(student=True)
    yield "keymatrix_deterministic", lambda: keymatrix_cases.build(deterministic=True)
    yield "keymatrix_coords", lambda: keymatrix_cases.build(coords=["x", "y", "z"])
    yield "keymatrix_initval", lambda: keymatrix_cases.build(initval=0.3)
    for case in gallery_models.GALLERY:
        yield f"gallery_{case.name}", case.build


def call(kind: str, kwargs: dict[str, Any], trace: Any) -> Any:
    if kind == "sample":
        return pm.sample(**kwargs, progressbar=False)
    if kind == "prior":
        return pm.sample_prior_predictive(**kwargs)
    return pm.sample_posterior_predictive(trace, **kwargs, progressbar=False)


def snapshot() -> dict[str, str]:
    """``{"<model>/<variant>/<call>": key}`` for every model and variant."""
    keys: dict[str, str] = {}
    for model_name, build in models():
        for variant, backend, calls in VARIANTS:
            model = build()
            recorder = KeyRecorder()
            trace = None
            with cc.cloud(model, cache=recorder, backend=backend, quiet=True):
                for kind, kwargs in calls:
                    result = call(kind, kwargs, trace)
                    trace = result if kind == "sample" else trace
            names = [kind for kind, _ in calls]
            if len(recorder.keys) != len(names):
                raise AssertionError(f"{model_name}/{variant}: {recorder.keys} for {names}")
            for kind, key in zip(names, recorder.keys, strict=True):
                keys[f"{model_name}/{variant}/{kind}"] = key
    return keys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the keys to this JSON file")
    parser.add_argument("--check", type=Path, help="compare with the keys in this JSON file")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keys = snapshot()
    if args.out:
        args.out.write_text(json.dumps(keys, indent=1, sort_keys=True) + "\n")
    if args.check:
        recorded = json.loads(args.check.read_text())
        differ = sorted(
            name for name in recorded.keys() | keys.keys() if recorded.get(name) != keys.get(name)
        )
        for name in differ:
            print(f"differs: {name}: {recorded.get(name)} -> {keys.get(name)}")
        print(json.dumps({"compared": len(recorded), "differ": len(differ)}))
        return 1 if differ else 0
    if not args.out:
        print(json.dumps(keys, indent=1, sort_keys=True))
    print(json.dumps({"keys": len(keys), "distinct": len(set(keys.values()))}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
