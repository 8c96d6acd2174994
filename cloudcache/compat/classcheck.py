"""``isinstance`` for PyTensor's graph classes without the ABC machinery.

PyTensor's ``Op``, ``Type`` and ``Variable`` classes use an ``ABCMeta`` metaclass, so the first
``isinstance`` of each new class against one of them walks every registered subclass (~400
below ``Op``) before answering no; a fresh process's first key paid ~7 ms for it. None of these
classes has virtual (``register``-ed) subclasses or a ``__subclasshook__``, so the plain
inheritance check below gives the same answers.
"""

from __future__ import annotations

from typing import Any


def is_instance(obj: Any, *classes: type) -> bool:
    """Whether ``obj`` is an instance of one of ``classes`` by inheritance (as ``isinstance``
    answers for a class without virtual subclasses)."""
    if len(classes) == 1:  # the common case, without a generator (a few hundred per key)
        return type.__instancecheck__(classes[0], obj)
    return any(type.__instancecheck__(cls, obj) for cls in classes)
