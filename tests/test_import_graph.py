"""A static read of the package's imports: no circles, no private names used across modules.

Every ``import`` counts: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cloudcache"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def package_of(module: str) -> str:
    """The package a module's relative imports start from."""
    is_package = MODULES[module].name == "__init__.py"
    return module if is_package else module.rpartition(".")[0]


def imported(module: str) -> Iterator[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package_of(module).split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if candidate in MODULES:  # ``from package import module``
                    yield candidate, None, node.lineno
                else:
                    yield base, alias.name, node.lineno


def internal_edges() -> dict[str, set[str]]:
    """Which package modules each package module imports (a package import means its __init__)."""
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for target, _, _ in imported(module):
            if target in MODULES and target != module:
                edges[module].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_checker_finds_a_planted_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_in_the_package() -> None:
    cycle = find_cycle(internal_edges())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_private_name_imported_from_another_module() -> None:
    found = [
        f"{module}:{line} imports {name} from {target}"
        for module in MODULES
        for target, name, line in imported(module)
        if name is not None and is_private(name) and target.startswith("cloudcache")
    ]
    assert not found, "\n".join(found)


def private_definitions(module: str) -> set[str]:
    """Private names ``module`` defines: functions, classes, assignments, ``self._x`` attributes."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {name for name in names if is_private(name)}


DEFINED = {module: private_definitions(module) for module in MODULES}


def private_attribute_uses(module: str) -> Iterator[str]:
    """``x._name`` (``x`` not ``self``/``cls``) where only another package module defines ``_name``.

    Private attributes of third-party objects are not this check's business.
    """
    elsewhere = set().union(*(names for other, names in DEFINED.items() if other != module))
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if not isinstance(node, ast.Attribute) or not is_private(node.attr):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}:
            continue
        if node.attr in elsewhere and node.attr not in DEFINED[module]:
            yield f"{module}:{node.lineno} uses .{node.attr} defined in another module"


def test_the_checker_sees_a_private_attribute_of_another_module() -> None:
    assert "_call_warned" in DEFINED["cloudcache.calls.path"]
    assert "_compiled" in DEFINED["cloudcache.calls.audit"]


def test_no_private_attribute_of_another_module() -> None:
    found = [use for module in sorted(MODULES) for use in private_attribute_uses(module)]
    assert not found, "\n".join(found)


def test_the_command_line_and_the_package_start_without_pymc() -> None:
    """``import cloudcache`` and the CLI stay light: no PyMC, PyTensor or JAX until needed."""
    import subprocess
    import sys

    code = (
        "import sys, cloudcache, cloudcache.cli\n"
        "cloudcache.__version__\n"
        "print(sorted(m for m in ('pymc', 'pytensor', 'jax') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stderr


#: The package's layers, top to bottom: a module may import its own layer and the layers below
#: it, never one above (docs/architecture.md draws the same table). ``entry`` is the package's
#: root modules and the two programs (``cloudcache.cli``, ``cloudcache.demo``).
LAYERS: tuple[str, ...] = (
    "entry",
    "calls",
    "executors",
    "ui",
    "backends",
    "stores",
    "fingerprint",
    "compat",
    "util",
    "errors",
)

#: Sub-packages of one layer that never import each other (like xarray's engines).
SIBLINGS: tuple[tuple[str, str], ...] = (
    ("cloudcache.backends.numpyro", "cloudcache.backends.nutpie"),
)


def layer_of(module: str) -> str:
    """The layer of a package module (its first sub-package, or ``entry``)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in {"session", "prewarm", "__main__", "cli", "demo"}:
        return "entry"
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and the docs")
    return parts[1]


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def wrong_way_imports(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a higher layer, or between two siblings."""
    found = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            if LAYERS.index(layer_of(module)) > LAYERS.index(layer_of(target)):
                found.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
            for first, second in SIBLINGS:
                if {inside(module, first), inside(target, second)} == {True} or {
                    inside(module, second),
                    inside(target, first),
                } == {True}:
                    found.append(f"{module} imports its sibling {target}")
    return found


def test_the_layer_checker_finds_a_planted_wrong_way_import() -> None:
    planted = {
        "cloudcache.fingerprint.key": {"cloudcache.calls.request"},
        "cloudcache.calls.path": {"cloudcache.stores.base"},
        "cloudcache.backends.nutpie.plan": {"cloudcache.backends.numpyro.plan"},
    }
    assert wrong_way_imports(planted) == [
        "cloudcache.backends.nutpie.plan imports its sibling cloudcache.backends.numpyro.plan",
        "cloudcache.fingerprint.key (fingerprint) imports cloudcache.calls.request (calls)",
    ]


def test_imports_run_down_the_layers() -> None:
    found = wrong_way_imports(internal_edges())
    assert not found, "\n".join(found)
