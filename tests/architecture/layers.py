"""The import contract: layers import downwards only, and no module imports itself in a circle.

    interfaces  api, webhooks, admin, auth, serializers, views, urls, schema, apps, management
                commands, and config/ (settings, URLs, Celery wiring); may import anything
    lifecycle   workflows that span apps; may import the domain apps and core
    domain      customers <- subscriptions <- licensing <- deployments, usage -> subscriptions;
                each app's models, services, selectors, tasks, ...; may import core and the
                apps below it, never an interface, lifecycle or config
    core        errors, audit, plans, timestamps; imports nothing of ours

The Stripe simulator is a separate program: it imports nothing of ours and nothing of ours
imports it (tests do). Every import counts, function-local ones and those under
TYPE_CHECKING too, so a cycle cannot hide inside a function; and a function-local import of
our own code must say why in a comment on its line or the line above.

Run: `python -m tests.architecture.layers [ROOT]` (part of `make lint`); exit status 1 and
one line per violation when the contract is broken.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGES = (
    "config",
    "core",
    "customers",
    "subscriptions",
    "licensing",
    "usage",
    "deployments",
    "lifecycle",
    "stripe_simulator",
)
# Domain apps and the apps each may import (besides itself and core).
DOMAIN_DEPENDENCIES = {
    "customers": set(),
    "subscriptions": {"customers"},
    "licensing": {"customers", "subscriptions"},
    "deployments": {"customers", "subscriptions", "licensing"},
    "usage": {"customers", "subscriptions"},
}
# A module is an interface when its own name is one of these, or it is a management command.
INTERFACE_MODULES = {
    "api",
    "admin",
    "auth",
    "apps",
    "schema",
    "serializers",
    "urls",
    "views",
    "webhooks",
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int
    local: bool
    explained: bool


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def layer_of(module: str) -> str:
    """'core', 'domain', 'lifecycle', 'interface' or 'simulator'."""
    parts = module.split(".")
    package = parts[0]
    if package == "stripe_simulator":
        return "simulator"
    if package == "core":
        return "core"
    if package == "config" or "management" in parts or parts[-1] in INTERFACE_MODULES:
        return "interface"
    if package == "lifecycle":
        return "lifecycle"
    return "domain"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found[_module_name(root, path)] = path
    return found


def _imports(root: Path, modules: dict[str, Path]) -> list[Import]:
    return [
        edge
        for module, path in modules.items()
        for edge in _file_imports(root, module, path, modules)
    ]


def _file_imports(root: Path, module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    source = path.read_text()
    lines = source.splitlines()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []

    def explained(line: int) -> bool:
        above = lines[line - 2].strip() if line >= 2 else ""
        return "#" in lines[line - 1] or above.startswith("#")

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            anchor = package[: len(package) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        # `from package import module` imports the module; otherwise the package itself.
        named = [f"{base}.{alias.name}" for alias in node.names]
        return [name if name in modules else base for name in named]

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.extend(
                    Import(
                        importer=module,
                        imported=_known(target, modules),
                        path=path.relative_to(root),
                        line=child.lineno,
                        local=local,
                        explained=explained(child.lineno),
                    )
                    for target in targets(child)
                    if target.split(".")[0] in PACKAGES
                )
            inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, local or inner)

    visit(ast.parse(source, filename=str(path)), local=False)
    return found


def _known(target: str, modules: dict[str, Path]) -> str:
    """The longest prefix of `target` that is one of our modules (`a.b.name` -> `a.b`)."""
    parts = target.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or target


def _refusal(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when it may."""
    source, target = layer_of(importer), layer_of(imported)
    source_app, target_app = importer.split(".")[0], imported.split(".")[0]
    if source == "simulator" or target == "simulator":
        if source == target:
            return None
        return "the Stripe simulator is a separate program: no imports between it and the apps"
    if source == "interface":
        return None
    if target == "interface":
        return f"{source} code may not import an interface module"
    if target == "lifecycle" and source != "lifecycle":
        return f"{source} code may not import lifecycle (it sits above the domain apps)"
    if source == "core":
        return None if target == "core" else "core imports nothing of ours"
    if (
        source == "domain"
        and target == "domain"
        and source_app != target_app
        and target_app not in DOMAIN_DEPENDENCIES[source_app]
    ):
        return (
            f"{source_app} may not import {target_app}: domain apps depend one way "
            "(customers <- subscriptions <- licensing <- deployments, usage -> subscriptions)"
        )
    return None


def _cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in imports:
        if edge.importer != edge.imported:
            graph.setdefault(edge.importer, set()).add(edge.imported)
            graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(groups)


def check(root: Path) -> list[Violation]:
    modules = _modules(root)
    imports = _imports(root, modules)
    violations = []
    for edge in imports:
        if reason := _refusal(edge.importer, edge.imported):
            violations.append(
                Violation(
                    edge.path, edge.line, f"{edge.importer} imports {edge.imported}: {reason}"
                )
            )
        elif edge.local and not edge.explained:
            violations.append(
                Violation(
                    edge.path,
                    edge.line,
                    f"{edge.importer} imports {edge.imported} inside a function without a "
                    "comment saying why (a deferred import that dodges a cycle is a cycle)",
                )
            )
    for group in _cycles(imports):
        members = set(group)
        first = next(e for e in imports if e.importer in members and e.imported in members)
        violations.append(
            Violation(first.path, first.line, "import cycle among " + ", ".join(group))
        )
    return list(dict.fromkeys(violations))  # one line per violation, in order


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2]
    violations = check(root)
    for violation in violations:
        print(violation)
    if violations:
        print(f"{len(violations)} import contract violation(s); see docs/architecture.md")
        return 1
    print(f"import contract kept: {len(_modules(root))} modules in {len(PACKAGES)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
