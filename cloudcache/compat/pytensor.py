"""What differs between PyTensor 2.x and 3.x, and the one PyTensor internal cloudcache relies on.

PyMC 5 runs on PyTensor 2.x, PyMC 6 on 3.x. PyTensor 3 has dedicated ops for ``logsumexp``,
``logaddexp``, ``xlogy`` and ``xlog1py`` (2.x builds them from ``Elemwise`` and ``CAReduce``,
which :mod:`cloudcache.backends.numpyro.data_flow` already knows) and one base class of the reading
``Subtensor`` ops (2.x has unrelated classes). The ``...Subtensor1`` ops are in neither list on
either version (their operands stay constants: conservative, never wrong).

:func:`is_instance` answers ``isinstance`` for PyTensor's graph classes without the ABC machinery.
PyTensor's ``Op``, ``Type`` and ``Variable`` classes use an ``ABCMeta`` metaclass, so the first
``isinstance`` of each new class against one of them walks every registered subclass (~400 below
``Op``) before answering no; a fresh process's first key paid ~7 ms for it. None of these
classes has virtual (``register``-ed) subclasses or a ``__subclasshook__``, so the plain
inheritance check gives the same answers (``tests/test_compat.py`` checks that it still does).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytensor
from pytensor.graph.op import Op
from pytensor.tensor.subtensor import (
    AdvancedIncSubtensor,
    AdvancedSubtensor,
    IncSubtensor,
    Subtensor,
)

#: The major version of the installed PyTensor (2 with PyMC 5, 3 with PyMC 6).
PYTENSOR_MAJOR: int = int(pytensor.__version__.split(".", 1)[0])

#: Ops that only combine their operands arithmetically and exist only in PyTensor 3.
SPECIAL_ARITHMETIC_OPS: tuple[type[Op], ...]

#: Ops that read part of their first input (the others are indices).
SUBTENSOR_OPS: tuple[type[Op], ...]

#: Ops that write their second input into part of their first (the others are indices).
INC_SUBTENSOR_OPS: tuple[type[Op], ...] = (IncSubtensor, AdvancedIncSubtensor)

if PYTENSOR_MAJOR >= 3:
    from pytensor.tensor.special import LogAddExp, LogSumExp, XLog1PY, XLogY
    from pytensor.tensor.subtensor import BaseSubtensor

    SPECIAL_ARITHMETIC_OPS = (LogSumExp, LogAddExp, XLogY, XLog1PY)
    SUBTENSOR_OPS = (BaseSubtensor,)
else:
    SPECIAL_ARITHMETIC_OPS = ()
    SUBTENSOR_OPS = (Subtensor, AdvancedSubtensor)  # what BaseSubtensor covers in 3.x


def reduction_settings(op: Op) -> dict[str, Any]:
    """Keywords (besides ``axis``) that rebuild the ``Max``/``Min`` reduction ``op``.

    PyTensor 3's reductions take an ``initial`` flag (reduce empty axes to the identity);
    PyTensor 2's take none.
    """
    return {"initial": op.initial} if PYTENSOR_MAJOR >= 3 else {}


def reduction_initial(op: Op, dtype: Any) -> Any:
    """The value a ``Max``/``Min`` ``op`` gives over empty axes (``None``: an error, as 2.x)."""
    return op.initial_value(dtype) if PYTENSOR_MAJOR >= 3 else None


@functools.cache
def _process_source_dir() -> str:
    """One folder for this process's generated source, removed when the process exits."""
    folder = tempfile.mkdtemp(prefix="cloudcache-pytensor-src-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@contextlib.contextmanager
def generated_source_in_process_folder() -> Iterator[None]:
    """Keep the Python source PyTensor generates (its JAX linker) in one folder of this process.

    Without ``generated_src_dir`` PyTensor writes each generated function to a new file in the
    temp folder and never removes it. PyTensor 3 has the option; PyTensor 2 has not (its files
    stay in the temp folder).
    """
    if not hasattr(pytensor.config, "generated_src_dir") or pytensor.config.generated_src_dir:
        yield  # PyTensor 2, or the user chose a folder
        return
    with pytensor.config.change_flags(generated_src_dir=_process_source_dir()):
        yield


def is_instance(obj: Any, *classes: type) -> bool:
    """Whether ``obj`` is an instance of one of ``classes`` by inheritance (as ``isinstance``
    answers for a class without virtual subclasses)."""
    if len(classes) == 1:  # the common case, without a generator (a few hundred per key)
        return type.__instancecheck__(classes[0], obj)
    return any(type.__instancecheck__(cls, obj) for cls in classes)
