"""Compiled NumPyro programs kept on disk, so a new process neither converts nor traces them.

JAX's persistent compilation cache skips only XLA's compilation: to find a cached executable a
new process still converts the model to JAX, traces and lowers every program (1.5-2 s on a
small model, before the first draw of a fresh-process miss, resume or extension). The runner's
programs are therefore also kept whole, serialised with JAX's
``jax.experimental.serialize_executable``, in ``cloudcache-programs/`` inside the directory of
JAX's compilation cache (:mod:`.jax_cache`). A file is named by a digest of everything the
program depends on: its in-process key (graph key, argument signature, plan, device layout),
the versions of JAX, jaxlib, NumPyro, PyTensor and PyMC, the source of the code that builds the
programs and keys the graph, JAX's settings (64-bit mode, matmul precision, PRNG
implementation), ``XLA_FLAGS``, the device and, on Linux, the CPU's instruction-set flags. A
later process with the same digest loads the executable instead of building it: the same
binary, so the same floats. A kept program is compiled with JAX's own cache off (an executable
JAX loaded from its cache serialises without its machine code), so for these programs the kept
files take that cache's place. A torn or foreign file is built again; a program that cannot be
serialised is not kept.

A file is a NumPy archive read with ``allow_pickle=False``: a JSON header (the structure of
each program's arguments and results, rebuilt from plain containers and named tuples and
checked against the structure it was kept from) and each program's bytes, loaded by
``deserialize_and_load``. The sampler state's named tuples are rebuilt as stand-ins with
NumPyro's names and fields, so loading never imports NumPyro (0.4-0.6 s of a fresh process):
the host only flattens and rebuilds states, leaf by leaf, and one stand-in class per name and
fields keeps the structures of ``init``'s result and ``step``'s argument equal. The header also
lists the custom calls of each program: JAX sets some kernels up only when it lowers a call to
them (LAPACK's, such as the Cholesky factor of a dense mass matrix), so a process loading a
program that makes such calls has them set up first
(:func:`~cloudcache.compat.jax.set_up_lowering_time_kernels`), or builds the program where this
JAX cannot. Like JAX's own cache, the directory holds executable code: it must not be
writable by people you do not trust (it is per user by default). Nothing is kept when that
cache is off or when the graph key holds identity-keyed values (they mean nothing in another
process).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloudcache.backends.numpyro.jax_cache import cache_dir, persistent_cache_off
from cloudcache.compat.jax import needs_lowering_time_kernels, set_up_lowering_time_kernels
from cloudcache.stores import nofollow
from cloudcache.stores.checkpoints import archive_bytes, read_archive
from cloudcache.util.versions import installed_versions

#: Sub-directory of JAX's compilation cache holding the serialised programs.
PROGRAMS = "cloudcache-programs"

#: Bumped when what a file holds changes.
FILE_FORMAT = 4

#: Code whose change can change a program or what its key means (relative to the package).
_SOURCES = ("backends/numpyro", "fingerprint", "compat/jax.py", "compat/pytensor.py")

_log = logging.getLogger("cloudcache")

Executables = dict[str, Any]


def load_or_build(
    key: Hashable,
    portable: bool,
    devices: Sequence[Any],
    build: Callable[[], Executables],
) -> Executables:
    """The compiled programs of ``key`` (name -> ``jax.stages.Compiled``): loaded from disk
    when kept there, else built by ``build`` and kept (when ``portable``)."""
    location = _location(key, devices) if portable else None
    if location is None:
        return build()
    loaded = _load(*location, devices)
    if loaded is not None:
        return loaded
    # Compiled here, never loaded from JAX's own cache: jaxlib 0.12 serialises an executable
    # it loaded from its cache without its machine code (the copy loaded in a new process
    # fails with "Function ... not found"). Kept programs take that cache's place.
    with persistent_cache_off():
        built = build()
    _save(*location, built)
    return built


def _location(key: Hashable, devices: Sequence[Any]) -> tuple[str, str] | None:
    """``(directory, file name)`` of the kept programs of ``key``; None when nothing is kept."""
    directory = cache_dir()
    if directory is None:
        return None
    text = f"{FILE_FORMAT}|{key!r}|{_environment(devices[0])}"
    return directory, hashlib.sha256(text.encode()).hexdigest()


def _load(directory: str, name: str, devices: Sequence[Any]) -> Executables | None:
    from jax.experimental.serialize_executable import deserialize_and_load

    try:
        with read_archive(directory, PROGRAMS, name) as archive:
            header = json.loads(str(archive["header"][()]))
            if header.get("format") != FILE_FORMAT:
                return None
            programs = header["programs"]
            custom_calls = [target for entry in programs.values() for target in entry[4]]
            if needs_lowering_time_kernels(custom_calls) and not set_up_lowering_time_kernels():
                return None  # their kernels would be called unset up: built instead
            loaded = {}
            for program, (in_spec, in_text, out_spec, out_text, _) in programs.items():
                in_tree, out_tree = _treedef(in_spec, in_text), _treedef(out_spec, out_text)
                payload = archive[f"program_{program}"].tobytes()
                loaded[program] = deserialize_and_load(
                    payload, in_tree, out_tree, execution_devices=devices
                )
            return loaded
    except FileNotFoundError:
        return None
    except Exception as error:  # a torn or foreign file: built as if it were not there
        _log.debug("cloudcache: cannot load the kept program %s (%s)", name, error)
        return None


def _save(directory: str, name: str, executables: Executables) -> None:
    from jax.experimental.serialize_executable import serialize

    try:
        header: dict[str, Any] = {"format": FILE_FORMAT, "programs": {}}
        arrays: dict[str, np.ndarray] = {}
        for program, compiled in executables.items():
            payload, in_tree, out_tree = serialize(compiled)
            header["programs"][program] = [
                _tree_spec(in_tree),
                str(in_tree),
                _tree_spec(out_tree),
                str(out_tree),
                _custom_calls(compiled),
            ]
            arrays[f"program_{program}"] = np.frombuffer(payload, dtype=np.uint8)
        arrays["header"] = np.array(json.dumps(header))
        nofollow.write_atomically(directory, f"{PROGRAMS}/{name}", archive_bytes(arrays))
    except Exception as error:  # not serialisable, or a read-only directory: built next time
        _log.debug("cloudcache: cannot keep the program %s (%s)", name, error)


def _custom_calls(compiled: Any) -> list[str]:
    """The custom-call targets ``compiled`` calls (from its optimised HLO text; ``"?"`` for a
    custom call whose target this cannot read)."""
    text = compiled.as_text()
    targets = set(re.findall(r'custom_call_target="([^"]+)"', text))
    if not targets and "custom-call" in text:
        targets.add("?")
    return sorted(targets)


#: Where the classes of a program's argument and result trees may come from (NumPyro's
#: sampler state); any other class in a kept file makes it unusable.
_TREE_CLASS_MODULES = ("numpyro.",)

#: A name or field of a named tuple in a kept file.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _tree_spec(treedef: Any) -> Any:
    """A pytree structure as plain JSON: ``"*"`` a leaf, ``None``, ``{"tuple": [...]}``,
    ``{"list": [...]}``, ``{"dict": keys, "of": [...]}``, ``{"namedtuple": "module:Name",
    "fields": [...], "of": [...]}`` (``ValueError`` for any other node)."""
    if treedef.num_nodes == 1 and treedef.num_leaves == 1:
        return "*"
    kind, aux = treedef.node_data()
    children = [_tree_spec(child) for child in treedef.children()]
    if kind is type(None):
        return None
    if kind is tuple:
        return {"tuple": children}
    if kind is list:
        return {"list": children}
    if kind is dict:
        return {"dict": [str(k) for k in aux], "of": children}
    if issubclass(kind, tuple) and hasattr(kind, "_fields"):
        return {
            "namedtuple": f"{kind.__module__}:{kind.__qualname__}",
            "fields": list(kind._fields),
            "of": children,
        }
    raise ValueError(f"a {kind.__name__} node")


def _treedef(spec: Any, text: str) -> Any:
    """The pytree structure ``spec`` describes; ``ValueError`` unless it prints as ``text``
    (the structure it was kept from)."""
    import jax

    treedef = jax.tree_util.tree_structure(_example(spec))
    if str(treedef) != text:
        raise ValueError("the kept tree structure does not rebuild")
    return treedef


def _example(spec: Any) -> Any:
    """A pytree of ``spec``'s structure, every leaf ``0``."""
    if spec == "*":
        return 0
    if spec is None:
        return None
    if "tuple" in spec:
        return tuple(_example(child) for child in spec["tuple"])
    if "list" in spec:
        return [_example(child) for child in spec["list"]]
    children = [_example(child) for child in spec["of"]]
    if "dict" in spec:
        return dict(zip(spec["dict"], children, strict=True))
    return _stand_in(spec["namedtuple"], tuple(spec["fields"]))(*children)


@functools.cache
def _stand_in(name: str, fields: tuple[str, ...]) -> type:
    """A named tuple standing in for ``"module:Qualified.Name"`` with ``fields`` (only from
    :data:`_TREE_CLASS_MODULES`): one class per name and fields, so equal structures stay equal."""
    module, _, qualname = name.partition(":")
    if not module.startswith(_TREE_CLASS_MODULES):
        raise ValueError(f"a tree class from {module}")
    parts = (*module.split("."), *qualname.split("."), *fields)
    if not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise ValueError(f"{name} is not a named tuple's name")
    stand_in = collections.namedtuple(qualname.rsplit(".", 1)[-1], fields, module=module)
    stand_in.__qualname__ = qualname
    return stand_in


@functools.cache
def _source_digest() -> str:
    """Digest of the code that builds the programs and keys their graphs."""
    package = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for name in _SOURCES:
        root = package / name
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def _cpu_flags() -> str:
    """The CPU's instruction-set flags (Linux; elsewhere the machine's name)."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return f"{platform.machine()} {platform.processor()}"


def _environment(device: Any) -> str:
    """What besides the key decides the executable: libraries, our code, settings, hardware."""
    import jax

    client = device.client
    return repr(
        (
            sorted(installed_versions("jax", "jaxlib", "numpyro", "pytensor", "pymc").items()),
            _source_digest(),
            sys.version_info[:2],
            bool(jax.config.jax_enable_x64),
            str(jax.config.jax_default_matmul_precision),
            # how random keys are split and drawn: traced into the programs
            str(getattr(jax.config, "jax_default_prng_impl", "")),
            str(getattr(jax.config, "jax_threefry_partitionable", "")),
            os.environ.get("XLA_FLAGS", ""),
            client.platform,
            client.platform_version,
            device.device_kind,
            len(client.devices()),
            _cpu_flags(),
        )
    )
