"""Content fingerprints of Python values and models: what the structure/content split must see.

Pure key computations (no sampling) except one end-to-end call that must run uncached.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xxhash

import cloudcache as cc
from cloudcache.calls.request import normalize_sample_call
from cloudcache.errors import UnkeyableObject
from cloudcache.fingerprint import compute_key
from cloudcache.fingerprint.canonical import content_digest

HERE = Path(__file__).parent
REQUEST = normalize_sample_call(pm.sample, (), {"draws": 10, "chains": 1, "random_seed": 1})


def key_of(model: pm.Model) -> str:
    return compute_key(model, REQUEST, "pymc", {"pymc": pm.__version__}).hex


def recursive(n: int) -> int:
    return 0 if n <= 0 else recursive(n - 1)


class Holder:
    def __init__(self, scale: float) -> None:
        self.scale = scale

    def apply(self, x: Any) -> Any:
        return x * self.scale


def test_lambdas_differing_only_in_the_function_they_call_differ() -> None:
    assert content_digest(lambda x: np.exp(x)) != content_digest(lambda x: np.log(x))


def test_closures_defaults_and_partials_count() -> None:
    def make(scale: float) -> Any:
        return lambda x: x * scale

    assert content_digest(make(1.0)) != content_digest(make(2.0))
    assert content_digest(make(1.0)) == content_digest(make(1.0))

    def with_default(x: Any, k: float = 1.0) -> Any:
        return x * k

    other = functools.partial(with_default, k=2.0)
    assert content_digest(functools.partial(with_default, k=1.0)) != content_digest(other)


def test_bound_method_state_counts() -> None:
    assert content_digest(Holder(1.0).apply) != content_digest(Holder(2.0).apply)


def test_recursive_functions_and_library_callables_are_keyed() -> None:
    assert content_digest(recursive) == content_digest(recursive)
    for library in (np.exp, np.sum, pm.logp, pm.Normal, len):
        content_digest(library)


def test_dataframes_in_closures_are_keyed_by_content() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    before = content_digest(lambda: frame)
    frame.loc[0, "a"] = 9.0
    assert content_digest(lambda: frame) != before


def test_c_extension_callables_outside_libraries_are_unkeyable() -> None:
    with pytest.raises(UnkeyableObject, match="C-extension callable"):
        content_digest(xxhash.xxh64_intdigest)


def test_ellipsis_and_slices_are_keyed_by_content() -> None:
    assert content_digest((Ellipsis, slice(1, 2))) != content_digest((Ellipsis, slice(1, 3)))


def _interpolated(top: float) -> pm.Model:
    with pm.Model() as model:
        pm.Interpolated("z", np.linspace(0.0, top, 12), np.ones(12))
    return model


def test_interpolated_is_keyed_by_content() -> None:
    assert key_of(_interpolated(1.0)) == key_of(_interpolated(1.0))
    assert key_of(_interpolated(1.0)) != key_of(_interpolated(2.0))


class _Scaler:
    """A user class whose instances are copied, as PyMC's sampler copies a model's Ops."""

    def __init__(self, factor: float) -> None:
        self.factor = factor


def test_copying_an_instance_keeps_its_class_key() -> None:
    import copy

    before = content_digest(_Scaler(2.0))
    copy.copy(_Scaler(2.0))  # copyreg caches __slotnames__ on the class
    assert "__slotnames__" in vars(_Scaler)
    assert content_digest(_Scaler(2.0)) == before


def test_two_shared_variables_with_one_name_both_count() -> None:
    import pytensor

    first = pytensor.shared(np.zeros(3), name="s")
    second = pytensor.shared(np.ones(3), name="s")
    with pm.Model() as model:
        b = pm.Normal("b")
        pm.Normal("y", b * first + b * second, 1.0, observed=np.zeros(3))
    before = compute_key(model, REQUEST, "pymc", {})
    second.set_value(np.full(3, 2.0))
    after = compute_key(model, REQUEST, "pymc", {})
    assert before.hex != after.hex
    assert set(after.components["data"]) == {"s#0", "s#1"}


def _logp_with_c_default(value: Any, mu: Any, _hash: Any = xxhash.xxh64_intdigest) -> Any:
    return pm.logp(pm.Normal.dist(mu, 1.0), value)


def test_unkeyable_model_runs_uncached_with_a_reason(tmp_path: Path) -> None:
    with pm.Model() as model:
        mu = pm.Normal("mu")
        pm.CustomDist("y", mu, logp=_logp_with_c_default, observed=np.zeros(4))
    with cc.cloud(model, cache=tmp_path, backend="pymc", quiet=True) as run:
        tree = pm.sample(draws=10, tune=10, chains=1, random_seed=1, progressbar=False)
    assert "posterior" in tree
    assert run.last is not None and run.last.hit is False
    assert "C-extension callable" in run.last.reason
    assert "\n" not in run.last.reason


KEY_SCRIPT = """
import json, sys
sys.path[:0] = [{tests!r}, {mutation!r}]
import zoo
import test_key_content as t
print(json.dumps({{
    "hierarchical": t.key_of(zoo.hierarchical()),
    "custom_dist": t.key_of(zoo.custom_dist()),
    "closure_dist": t.key_of(zoo.closure_dist(1.5)),
    "potential": t.key_of(zoo.potential()),
    "transformed": t.key_of(zoo.transformed()),
    "masked": t.key_of(zoo.masked()),
    "interpolated": t.key_of(t._interpolated(1.0)),
}}))
"""


def _start_fresh_process(hash_seed: str) -> subprocess.Popen[str]:
    script = KEY_SCRIPT.format(tests=str(HERE), mutation=str(HERE / "mutation"))
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _keys_of(process: subprocess.Popen[str]) -> dict[str, str]:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_keys_of_code_holding_models_are_process_stable() -> None:
    """Fresh processes with different hash seeds (set/dict order, str hashes) agree."""
    processes = [_start_fresh_process(seed) for seed in ("1", "4242")]
    first, second = (_keys_of(process) for process in processes)
    assert first == second
    assert len(set(first.values())) == len(first)


def test_forward_seed_key_is_the_integer_pymc_reseeds_from() -> None:
    from pymc.util import _get_seeds_per_chain

    from cloudcache.calls.request import forward_seed_key

    generator = np.random.default_rng(5)
    assert forward_seed_key(1) == forward_seed_key(np.int64(1)) == ("forward-seed", 1)
    expected = int(_get_seeds_per_chain(np.random.default_rng(5), 1)[0])
    assert forward_seed_key(generator) == ("forward-seed", expected)
    assert forward_seed_key(generator) == forward_seed_key(generator)  # the copy is advanced
    generator.integers(10)
    assert forward_seed_key(generator) != ("forward-seed", expected)


def test_a_custom_ops_code_and_its_jax_implementation_count() -> None:
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op
    from pytensor.link.jax.dispatch import jax_funcify

    class Twice(Op):
        __props__ = ()

        def make_node(self, x: Any) -> Apply:
            x = pt.as_tensor_variable(x)
            return Apply(self, [x], [x.type()])

        def perform(self, node: Any, inputs: Any, outputs: Any) -> None:
            outputs[0][0] = inputs[0] * 2

    with pm.Model() as model:
        b = pm.Normal("b")
        pm.Deterministic("d", Twice()(b))
    before = key_of(model)

    @jax_funcify.register(Twice)
    def _twice_in_jax(op: Any, **kwargs: Any) -> Any:
        return lambda x: x * 2

    registered = key_of(model)
    assert registered != before

    def perform_thrice(self: Any, node: Any, inputs: Any, outputs: Any) -> None:
        outputs[0][0] = inputs[0] * 3

    Twice.perform = perform_thrice  # type: ignore[method-assign]
    assert key_of(model) not in (before, registered)


def test_a_variable_listed_again_keeps_the_key_and_the_structure_walk() -> None:
    """PyMC 5's posterior predictive appends the observed variables to ``observed_RVs`` again:
    the model is unchanged, so its key and its memoised structure walk are too."""
    from cloudcache.fingerprint.model import walk_structure

    with pm.Model() as model:
        mu = pm.Normal("mu")
        pm.Normal("y", mu, 1.0, observed=np.array([1.0, 2.0]))
    request = normalize_sample_call(pm.sample, (), {"draws": 10, "tune": 10, "chains": 1})
    before = compute_key(model, request, "pymc", {})
    walk = walk_structure(model)
    model.observed_RVs.append(model.observed_RVs[0])  # as PyMC 5's extend path does
    assert walk_structure(model) is walk
    assert compute_key(model, request, "pymc", {}).hex == before.hex
