"""Structure key of a PyTensor graph, for the in-process compiled-kernel caches.

The same encoder as the cache key (:class:`~cloudcache.fingerprint.canonical.GraphEncoder`,
XXH3-128), by content, walked from explicit inputs. The inputs enter by position and type only
(their values are the compiled program's arguments), so two calls that differ only in data
values get the same key; everything else enters by content: every op (its type and
``__props__``, or its type and attributes when it defines no ``__props__``, so a model unpickled
on a Dask worker, with new op objects, finds the kernel compiled for the same structure),
inner graphs, how nodes connect, every output type and the full content of every constant. A
value the encoder cannot describe by content is keyed by identity and kept alive by
:class:`GraphKey`, so an identity can never be reused while the key exists (and such a key
means nothing in another process: :attr:`GraphKey.portable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import graph_inputs

from cloudcache.compat.pytensor import is_instance
from cloudcache.fingerprint.canonical import GraphEncoder, content_digest
from cloudcache.fingerprint.digest import Digest


@dataclass(frozen=True)
class GraphKey:
    """Hex digest of a graph's structure, plus the identity-keyed values it references."""

    digest: str
    pinned: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    @property
    def portable(self) -> bool:
        """Whether the key means the same in another process (nothing keyed by identity)."""
        return not self.pinned


def graph_key(inputs: Sequence[Variable], outputs: Sequence[Variable]) -> GraphKey:
    """Key of the graph from ``inputs`` to ``outputs`` (input values excluded).

    Raises ``ValueError`` when the graph reads a variable that is neither one of ``inputs``
    nor a constant (its value would be baked into a program keyed without it).
    """
    given = {id(var) for var in inputs}
    for leaf in graph_inputs(list(outputs)):
        if id(leaf) not in given and not is_instance(leaf, Constant):
            raise ValueError(f"graph input {leaf} is neither an input nor a constant")
    digest = Digest()
    pinned: list[Any] = []
    ids = GraphEncoder(digest, pinned=pinned).function_graph(list(inputs), list(outputs))
    digest.token("outputs", ",".join(map(str, ids)))
    return GraphKey(digest.hexdigest(), tuple(pinned))


def variable_digests(variables: Sequence[Variable]) -> dict[str, str]:
    """Each named variable's own definition, for explanations (never part of the key).

    A variable's graph is walked down to the other ``variables`` it reads (entering by name,
    so a change of a parent's prior changes the parent's digest only) and to its shared inputs
    (by name and type: data values are the ``data`` component's business). Unnamed variables,
    and graphs the encoder cannot walk, are left out.
    """
    digests: dict[str, str] = {}
    for var in variables:
        if not var.name:
            continue
        others = [other for other in variables if other is not var]
        leaves = [leaf for leaf in graph_inputs([var], blockers=others) if leaf is not var]
        leaves = [leaf for leaf in leaves if not is_instance(leaf, Constant)]
        try:
            key = graph_key(leaves, [var])
        except Exception:  # an explanation detail: never let it break a call
            continue
        names = [leaf.name or type(leaf.type).__name__ for leaf in leaves]
        digests[var.name] = content_digest({"graph": key.digest, "inputs": names})
    return digests
