"""What each module must not import, checked over every import in src/.

Each package's ``__init__`` docstring (and each top-level module's) states its line of this
table ("Must not import ..."), once; this test keeps those statements true. Imports inside functions count too: a lazy import is still a
dependency, only a cheaper one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "slowthink"

# (modules it applies to, what they must not import, why). A prefix matches the module and
# everything below it; "slowthink.recipes" forbids every recipe module.
LAYERS: list[tuple[tuple[str, ...], tuple[str, ...], str]] = [
    (
        ("slowthink.algorithms",),
        (
            "slowthink.config",
            "slowthink.models",
            "slowthink.training",
            "slowthink.rollout",
            "slowthink.recipes",
            "slowthink.rewards",
            "torch.distributed",
            "transformers",
        ),
        "pure math on tensors: no config objects, no model, no torch.distributed",
    ),
    (
        ("slowthink.rewards",),
        ("torch", "transformers", "slowthink.models", "slowthink.rollout", "slowthink.training", "slowthink.recipes"),
        "the checker runs in worker processes without the ML stack",
    ),
    (
        ("slowthink.sandbox",),
        ("torch", "transformers", "slowthink.models", "slowthink.rollout", "slowthink.training", "slowthink.recipes"),
        "the sandbox runs untrusted code without the ML stack",
    ),
    (
        ("slowthink.data",),
        ("torch", "transformers", "slowthink.rollout", "slowthink.training", "slowthink.recipes", "slowthink.models"),
        "data readers work without a model (the tiny task is data; the tiny model is not)",
    ),
    (
        ("slowthink.eval", "slowthink.rollout", "slowthink.tir", "slowthink.training"),
        ("slowthink.recipes",),
        "library code never reaches up into the recipes",
    ),
    (
        (
            "slowthink.config",
            "slowthink.durable",
            "slowthink.cli.command_config",
            "slowthink.cli.errors",
            "slowthink.data.prompts",
            "slowthink.monitors",
            "slowthink.progress",
        ),
        ("torch", "transformers", "slowthink.recipes"),
        "light modules the CLI imports at start-up",
    ),
    (
        ("slowthink.monitors",),
        ("slowthink.models", "slowthink.rollout", "slowthink.training", "slowthink.serve"),
        "monitors compute from texts, numbers and verdicts: no model, no engine, no trainer",
    ),
    (
        ("slowthink.algorithms", "slowthink.rewards", "slowthink.sandbox", "slowthink.data"),
        ("slowthink.monitors",),
        "the monitors read rewards' verdicts and keywords: nothing below reaches up into them",
    ),
    (
        ("slowthink.models",),
        (
            "slowthink.data",
            "slowthink.rewards",
            "slowthink.monitors",
            "slowthink.rollout",
            "slowthink.training",
            "slowthink.eval",
            "slowthink.recipes",
            "slowthink.serve",
        ),
        "models load and build a model; everything that uses one sits above them",
    ),
    (
        ("slowthink.models.tiny", "slowthink.models.quiet"),
        ("slowthink.models.modeling",),
        "modeling.py builds the tiny model through tiny.py: no cycle",
    ),
    (("slowthink.serve",), ("slowthink.recipes",), "the server serves a model; it runs no recipe"),
    (("slowthink.serve.api", "slowthink.serve.replies"), ("torch", "transformers"), "requests and replies are plain data"),
    (
        (
            "slowthink.algorithms",
            "slowthink.rewards",
            "slowthink.sandbox",
            "slowthink.data",
            "slowthink.eval",
            "slowthink.rollout",
            "slowthink.tir",
            "slowthink.training",
            "slowthink.curate",
            "slowthink.recipes",
        ),
        ("slowthink.serve",),
        "the server sits on top of the library: nothing below reaches up into it",
    ),
]
# The heavy engines, imported only by the module that wraps them.
ENGINES = {
    "vllm": ("slowthink.rollout.vllm_backend",),
    "wandb": ("slowthink.tracking",),
    "mlflow": ("slowthink.tracking",),
    "fastapi": ("slowthink.serve.app",),
    "uvicorn": ("slowthink.serve.server",),
    "httpx": ("slowthink.rollout.openai_backend",),
    "datasketch": ("slowthink.curate.dedup",),
    "math_verify": ("slowthink.rewards.equivalence",),
}


def module_name(path: Path) -> str:
    name = ".".join(("slowthink", *path.relative_to(SRC).with_suffix("").parts))
    return name.removesuffix(".__init__")


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_module_imports_respect_its_layer(path):
    name, found = module_name(path), imports(path)
    problems = []
    for owners, forbidden, why in LAYERS:
        if any(_under(name, owner) for owner in owners):
            problems += [f"{imp} ({why})" for imp in found if any(_under(imp, f) for f in forbidden)]
    for engine, allowed in ENGINES.items():
        if name not in allowed:
            problems += [f"{imp} (only {', '.join(allowed)} imports {engine})" for imp in found if _under(imp, engine)]
    if not _under(name, "slowthink.cli"):
        # CLI glue lives in slowthink/cli/: no other module (library packages, recipes,
        # report, serve) imports it or typer; library code raises its own error types instead.
        glue = [imp for imp in found if _under(imp, "slowthink.cli") or _under(imp, "typer")]
        problems += [f"{imp} (command-line glue lives in slowthink/cli/ and nothing outside imports it)" for imp in glue]
    assert not sorted(set(problems)), f"{name} imports: " + "; ".join(sorted(set(problems)))


ROOMS = [p for p in MODULES if p.name == "__init__.py" or p.parent == SRC]


@pytest.mark.parametrize("path", ROOMS, ids=lambda p: module_name(p))
def test_each_room_says_once_what_it_must_not_import(path):
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert doc, f"{module_name(path)} has no module docstring"
    assert "must not import" in doc.lower() or "imports nothing" in doc.lower(), (
        f"{module_name(path)}: its docstring should say what it must not import"
    )


# Import circles that remain, each to be opened by a move; a circle not listed here fails the
# test, and so does a listed one that is gone (delete it from the list).
KNOWN_CIRCLES: set[frozenset[str]] = set()


def _module_graph() -> dict[str, set[str]]:
    """Module -> the slowthink modules it imports (lazy imports too), each name cut back to
    the longest prefix that is a module (``from pkg import name`` names ``pkg.name`` when
    that is a module, else ``pkg``)."""
    names = {module_name(path): path for path in MODULES}
    graph = {}
    for name, path in names.items():
        targets = set()
        for imp in imports(path):
            while imp and imp not in names:
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                targets.add(imp)
        graph[name] = targets
    return graph


def _circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_circle_finder_sees_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset({"a", "b", "c"})}
    assert _circles({"a": {"b"}, "b": set()}) == set()


def test_no_new_import_circle():
    circles = _circles(_module_graph())
    new = [sorted(c) for c in circles - KNOWN_CIRCLES]
    assert not new, f"import circles: {new}"
    gone = [sorted(c) for c in KNOWN_CIRCLES - circles]
    assert not gone, f"these circles are open now; remove them from KNOWN_CIRCLES: {gone}"
