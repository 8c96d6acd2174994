"""What a Python callable is made of: whether it is library code, and what its bytecode reads.

Library code (PyMC, PyTensor, NumPy, SciPy, JAX, NumPyro, the standard library ...) is keyed by
its importable name: its behaviour is fixed by the installed version. Anything else (a notebook
cell, a user module, a class built at run time) is keyed by content: see
:class:`cloudcache.fingerprint.canonical.GraphEncoder`.
"""

from __future__ import annotations

import dis
import functools
import sys
import types
from typing import Any

#: Top-level packages whose objects are keyed by name (their code is pinned by the install).
LIBRARY_PACKAGES: frozenset[str] = frozenset(
    {
        "pymc",
        "pytensor",
        "numpy",
        "scipy",
        "jax",
        "jaxlib",
        "numpyro",
        "cloudcache",
        "xarray",
        "arviz",
        "pandas",
        "builtins",
    }
) | frozenset(sys.stdlib_module_names)

#: Opcodes that read or write a module global by name.
GLOBAL_OPCODES: frozenset[str] = frozenset(
    {"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "STORE_NAME"}
)


def qualified_name(obj: Any) -> str:
    """``module.qualname`` of a function or class (``?`` for unknown parts)."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def is_library_module(module: str | None) -> bool:
    """Whether ``module`` belongs to a library package (see :data:`LIBRARY_PACKAGES`)."""
    return bool(module) and str(module).split(".")[0] in LIBRARY_PACKAGES


def is_importable_library_object(obj: Any) -> bool:
    """Whether ``obj`` is library code reachable by its own ``module.qualname``.

    Classes built at run time (PyMC's ``CustomDist`` makes one per call) and nested functions
    are not reachable by name, so they are keyed by content instead.
    """
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return False
    if not is_library_module(module) or "<" in qualname:
        return False
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return False
    return found is obj


@functools.lru_cache(maxsize=4096)
def global_reads(code: types.CodeType) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Globals that ``code`` (and the code nested in it) uses, each with the attributes read
    straight off it (``mod.SCALE`` reads ``SCALE`` of the global ``mod``), sorted by name."""
    reads: dict[str, set[str]] = {}
    _collect_reads(code, reads)
    return tuple((name, tuple(sorted(attrs))) for name, attrs in sorted(reads.items()))


def _collect_reads(code: types.CodeType, reads: dict[str, set[str]]) -> None:
    instructions = list(dis.get_instructions(code))
    for position, ins in enumerate(instructions):
        if ins.opname not in GLOBAL_OPCODES:
            continue
        attrs = reads.setdefault(str(ins.argval), set())
        following = instructions[position + 1] if position + 1 < len(instructions) else None
        if following is not None and following.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            attrs.add(str(following.argval))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _collect_reads(const, reads)


def code_parts(code: types.CodeType) -> tuple[Any, ...]:
    """What defines a code object's behaviour (not its file name or line numbers).

    Nested code objects (lambdas, inner functions, comprehensions) appear as further tuples.
    """
    consts = tuple(
        ("code", code_parts(c)) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return (
        code.co_code,
        consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
    )
