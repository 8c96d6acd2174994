"""nutpie's compiled model built from C callbacks that numba caches on disk.

``nutpie.compile_pymc_model`` wraps PyTensor's numba functions (log density + gradient, and
the draw expansion) in ``numba.cfunc`` callbacks that read the shared data through a pointer
record. numba cannot cache those callbacks (nutpie builds them as closures over the data,
"dynamic globals"), and compiling them is most of a compile (4.3 of 5 CPU-s for radon): a new
process paid it on every first miss.

Here the two callbacks are generated as source whose only globals are PyTensor's cached numba
function, the record's layout and nutpie's pointer intrinsic, and registered with PyTensor's
numba cache locator under a key made of PyTensor's own cache key of the compiled graph and the
callback's source. numba then stores the compiled callbacks on disk (in PyTensor's compile
directory) and a later process loads them instead of compiling. The callbacks compute exactly
what nutpie's do (same PyTensor function, same record layout, same return codes), so the
draws are nutpie's. A graph PyTensor does not cache (no key) is compiled by nutpie itself.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

import numpy as np

#: Bumped whenever the generated callbacks change (it enters their cache key).
CALLBACK_REVISION = 2


class NotCacheable(Exception):
    """PyTensor gave the model's numba function no cache key."""


def _locked(func: Callable[..., Any]) -> Callable[..., Any]:
    lock = threading.Lock()

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return func(*args, **kwargs)

    return wrapper


def _reads(keys: list[str], shared_data: dict[str, np.ndarray]) -> tuple[list[str], list[str]]:
    """Source lines that build each shared array from the pointer record, and their names."""
    lines, names = [], []
    for n, key in enumerate(keys):
        value = shared_data[key]
        dims = ", ".join(f"int(shape_{n}[{i}])" for i in range(value.ndim))
        lines += [
            f"    ptr_{n} = address_as_void_pointer(shared['data'][{key!r}][()])",
            f"    flat_{n} = numba.carray(ptr_{n}, int(shared['size'][{key!r}][()]), "
            f"np.{value.dtype.name})",
            f"    shape_{n} = shared['shape'][{key!r}]",
            f"    arg_{n} = flat_{n}.reshape(({dims}{',' if value.ndim == 1 else ''}))",
        ]
        names.append(f"arg_{n}")
    return lines, names


def logp_source(n_dim: int, keys: list[str], shared_data: dict[str, np.ndarray]) -> str:
    """The log density callback (nutpie's ``logp_numba``, data read by literal field names)."""
    reads, names = _reads(keys, shared_data)
    return "\n".join(
        [
            "def cloudcache_nutpie_logp(dim, x_, out_, logp_, user_data_):",
            f"    if dim != {n_dim}:",
            "        return -1",
            "    user_data = numba.carray(user_data_, (), RECORD)",
            "    shared = user_data['shared']",
            *reads,
            "    try:",
            f"        x = numba.carray(x_, ({n_dim},))",
            f"        out = numba.carray(out_, ({n_dim},))",
            "        logp = numba.carray(logp_, ())",
            f"        logp_val, grad = inner(x, {', '.join(names)})",
            "        logp[()] = logp_val",
            "        out[...] = grad",
            "        if not np.all(np.isfinite(out)):",
            "            return 3",
            "        if not np.isfinite(logp_val):",
            "            return 4",
            "    except Exception:",
            "        return 1",
            "    return 0",
        ]
    )


def expand_source(
    n_dim: int, n_expanded: int, keys: list[str], shared_data: dict[str, np.ndarray]
) -> str:
    """The draw expansion callback (nutpie's ``expand_numba``)."""
    reads, names = _reads(keys, shared_data)
    return "\n".join(
        [
            "def cloudcache_nutpie_expand(dim, expanded, x_, out_, user_data_):",
            f"    if dim != {n_dim}:",
            "        return -1",
            f"    if expanded != {n_expanded}:",
            "        return -1",
            "    user_data = numba.carray(user_data_, (), RECORD)",
            "    shared = user_data['shared']",
            *reads,
            "    try:",
            f"        x = numba.carray(x_, ({n_dim},))",
            f"        out = numba.carray(out_, ({n_expanded},))",
            f"        (values,) = inner(x, {', '.join(names)})",
            "        out[...] = values",
            "    except Exception:",
            "        return -2",
            "    return 0",
        ]
    )


def cached_callback(source: str, name: str, inner: Any, record: np.dtype, signature: Any) -> Any:
    """``numba.cfunc(signature, cache=True)`` of ``source``, cached by PyTensor's locator under
    a key of PyTensor's key of ``inner``, the source, the record layout, our revision and this
    module's name (numba's cached entry re-imports the module that compiled it by name)."""
    import numba
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    inner_key = CACHED_SRC_FUNCTIONS.get(getattr(inner, "py_func", None))
    if inner_key is None:
        raise NotCacheable(name)
    key = hashlib.sha256(
        f"{CALLBACK_REVISION}|{__name__}|{inner_key}|{record.descr}|{source}".encode()
    ).hexdigest()
    function = compile_numba_function_src(
        source,
        name,
        global_env={
            "__name__": __name__,
            "numba": numba,
            "np": np,
            "RECORD": record,
            "address_as_void_pointer": address_as_void_pointer,
            "inner": inner,
        },
        cache_key=f"cloudcache_nutpie_{key}",
    )
    return numba.cfunc(signature, cache=True)(function)


def compile_disk_cached(
    model: Any,
    var_names: Iterable[str] | None = None,
    initial_points: dict[str, Any] | None = None,
) -> Any:
    """What ``nutpie.compile_pymc_model(model, var_names=..., initial_points=...)`` returns
    (numba backend, default initialisation), with callbacks numba caches on disk.

    Raises :class:`NotCacheable` when PyTensor gives the compiled graph no cache key.
    """
    import numba
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _make_functions,
        _prepare_dims_and_coords,
        make_user_data,
    )
    from pymc.initial_point import make_initial_point_fn

    initial_point_fn = _locked(
        make_initial_point_fn(
            model=model,
            overrides=initial_points,
            default_strategy="support_point",
            jitter_rvs=set(model.free_RVs),
            return_transformed=True,
        )
    )
    n_dim, n_expanded, logp_pt, expand_pt, flat_initial, shape_info, reparameterized = (
        _make_functions(
            model,
            mode="NUMBA",
            compute_grad=True,
            join_expanded=True,
            pymc_initial_point_fn=initial_point_fn,
            var_names=var_names,
        )
    )
    shared_data: dict[str, np.ndarray] = {}
    shared_var_keys: dict[Any, str] = {}
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        if var in shared_var_keys:
            continue
        key = f"shared_{len(shared_var_keys)}"  # deterministic: the key of the callbacks
        shared_data[key] = np.array(var.get_value(), order="C", copy=True)
        shared_data[key].flags.writeable = False
        shared_var_keys[var] = key
    user_data = make_user_data(shared_var_keys, shared_data)
    record = user_data.dtype
    logp_keys = [shared_var_keys[var] for var in logp_pt.get_shared()]
    expand_keys = [shared_var_keys[var] for var in expand_pt.get_shared()]
    double_ptr = numba.types.CPointer(numba.types.double)
    logp_sig = numba.types.int64(
        numba.types.uint64, double_ptr, double_ptr, double_ptr, numba.types.voidptr
    )
    expand_sig = numba.types.int64(
        numba.types.uint64, numba.types.uint64, double_ptr, double_ptr, numba.types.voidptr
    )
    logp_c = cached_callback(
        logp_source(n_dim, logp_keys, shared_data),
        "cloudcache_nutpie_logp",
        logp_pt.vm.jit_fn,
        record,
        logp_sig,
    )
    expand_c = cached_callback(
        expand_source(n_dim, n_expanded, expand_keys, shared_data),
        "cloudcache_nutpie_expand",
        expand_pt.vm.jit_fn,
        record,
        expand_sig,
    )
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    return CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp_c,
        compiled_expand_func=expand_c,
        initial_point_func=flat_initial,
        shared_data=shared_data,
        shared_var_keys=shared_var_keys,
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=logp_pt,
        expand_func=expand_pt,
        reparameterized_names=reparameterized,
    )
