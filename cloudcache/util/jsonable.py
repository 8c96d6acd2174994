"""Make values safe for the JSON metadata record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """Numbers, strings, lists and dicts as they are; arrays as lists; anything else as repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 1000 else f"<array {value.dtype} {value.shape}>"
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return repr(value)


def seed_spelling(seed: Any) -> Any:
    """``random_seed`` as the user wrote it, for messages: ``None``, ints and int sequences as
    they are, anything else (a numpy ``Generator``, a ``SeedSequence``) as its class name."""
    if seed is None or isinstance(seed, int | np.integer | list | tuple | np.ndarray):
        return jsonable(seed)
    return f"a {type(seed).__name__}"
