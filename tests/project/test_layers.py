"""The layers of generation/, redaction/ and project/ (docs/architecture.md) stay one-way: a
module imports only from its own package or a lower layer, never through an import inside a
function, and the module graph has no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. A module's layer is that of the longest prefix naming it.
LAYERS = [
    ("redaction",),
    ("generation.models", "generation.apps", "generation.backends"),
    ("generation.records",),
    ("generation.lifecycle",),
    ("generation.ops",),
    ("generation.http",),
    ("generation.api", "generation.openai_api", "generation.editor", "generation.ws", "generation.admin",
     "generation.management", "project"),
]
# Transports that may use another's pieces, and why.
SHARED = {
    ("generation.management", "generation.api"): "the CLI takes the native API's request body",
    ("generation.ws", "generation.api"): "the WebSocket takes the native API's request body",
}
# Imports that must stay inside a function, and why.
DEFERRED = {
    ("generation.management.commands.serve", "project.http_server"): "daphne.server installs Twisted's reactor on import",
    ("generation.management.commands.serve", "project.asgi"): "builds the ASGI application: only when serving",
    ("project.apps", "project.checks"): "Django's idiom: system checks register when the app is ready",
    ("redaction.apps", "redaction.signals"): "Django's idiom: signal receivers connect when the app is ready",
    ("redaction.fields", "redaction.models"): "redaction.fields imports before Django is set up (bench/redaction_bench.py)",
}


def layer_of(module: str) -> tuple[int, str] | None:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    return best


def modules() -> dict[str, Path]:
    found = {}
    for package in ("generation", "project", "redaction"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                if not path.read_text().strip():
                    continue  # an empty package marker imports nothing
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """(imported module, whether the import sits inside a function) for in-repo imports."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            checking = type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in child.names]  # resolved() finds the module
            for name in names:
                if name.split(".")[0] in ("generation", "project", "redaction") and not checking:
                    found.append((name, in_function))
            visit(child, nested, checking)

    visit(tree, False, False)
    return found


def resolved(name: str, known: dict[str, Path]) -> str | None:
    """The repo module an import names (`from pkg import module` names the module)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for module, path in known.items():
        edges[module] = set()
        for name, in_function in imports(module, path):
            target = resolved(name, known)
            if target and target != module:
                edges[module].add(target)
                if in_function:
                    assert (module, target) in DEFERRED, f"{module} imports {target} inside a function"
    return edges


def test_every_module_has_a_layer():
    assert [module for module in modules() if layer_of(module) is None] == []


def test_imports_go_down_the_layers_and_transports_do_not_import_each_other():
    wrong = []
    for module, targets in graph().items():
        (layer, home) = layer_of(module)
        for target in targets:
            (target_layer, target_home) = layer_of(target)
            if target_layer > layer:
                wrong.append(f"{module} -> {target} (up)")
            elif (
                target_layer == layer == len(LAYERS) - 1
                and home != target_home
                and "project" not in (home, target_home)  # the root URLconf mounts every transport
                and (home, target_home) not in SHARED
            ):
                wrong.append(f"{module} -> {target} (transport to transport)")
    assert wrong == []


def test_no_import_cycles():
    edges, state, cycles = graph(), {}, []

    def walk(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                walk(target, stack + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert cycles == []
