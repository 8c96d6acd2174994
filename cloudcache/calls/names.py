"""Variable names no sampler can compile: refused before the key, in words, never compiled.

PyMC accepts any character in a model's or a variable's name, and a name reaches no
``compile``/``exec`` of cloudcache's. But PyTensor's numba and JAX back ends write each node of
a graph, variable names included, into the Python source they compile, and Python refuses a
source with a NUL byte (``SyntaxError: source code string cannot contain null bytes``, deep in
the first compilation); nutpie panics on one. A model whose variable names hold a NUL can
therefore never be sampled, with or without the cache, so every call with one is refused at
once with :class:`~cloudcache.errors.UncompilableName` naming the variable. Every other
character works (newlines and quotes only ever land in a generated comment); names a cache
entry cannot store are :mod:`cloudcache.stores.format.names`'s concern.
"""

from __future__ import annotations

import pymc as pm

from cloudcache.errors import UncompilableName


def refuse_uncompilable_names(model: pm.Model) -> None:
    """Raise :class:`UncompilableName` for the first variable name holding a NUL byte."""
    for name in model.named_vars:
        if "\0" in name:
            raise UncompilableName(
                f"cloudcache: the variable name {name!r} (model name included) holds a NUL "
                "byte; PyTensor's compilers and nutpie cannot compile a model with one (PyMC "
                "alone fails with 'SyntaxError: source code string cannot contain null bytes'). "
                "Rename the model or the variable."
            )
