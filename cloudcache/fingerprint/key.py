"""The cache key: model components + normalised request + backend + library versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pymc as pm

from cloudcache.fingerprint.canonical import content_digest
from cloudcache.fingerprint.model import model_components, model_slug

#: Bumped whenever the key's recipe changes, so old entries are never served by a new recipe.
KEY_SCHEMA = 2


class KeyedRequest(Protocol):
    """What the key needs of a request (``pm.sample``'s or a predictive call's)."""

    def key_arguments(self) -> dict[str, Any]:
        """The call's arguments in key form (cosmetic ones left out, the seed's key form)."""
        ...


@dataclass(frozen=True)
class CacheKey:
    """A full hex key, its named components (for explanations) and the model's slug."""

    hex: str
    slug: str
    components: dict[str, Any] = field(repr=False)

    @property
    def prefix(self) -> str:
        return self.hex[:16]


def major_minor(version: str) -> str:
    """``"6.4.0"`` -> ``"6.4"``."""
    return ".".join(version.split(".")[:2])


def compute_key(
    model: pm.Model,
    request: KeyedRequest,
    backend_name: str,
    library_versions: dict[str, str],
    *,
    kind: str = "sample",
    extra: dict[str, Any] | None = None,
) -> CacheKey:
    """Key of sampling ``model`` as ``request`` asks with ``backend_name``."""
    components: dict[str, Any] = model_components(model)
    components["request"] = content_digest(request.key_arguments())
    components["backend"] = backend_name
    components["versions"] = {lib: major_minor(v) for lib, v in sorted(library_versions.items())}
    components["kind"] = kind
    if extra:
        components["extra"] = content_digest(extra)
    components["schema"] = KEY_SCHEMA
    return CacheKey(hex=content_digest(components), slug=model_slug(model), components=components)
