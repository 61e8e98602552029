"""The package's shape: imports run one way through the stages, no cycles, no re-export layers, small modules,
and the built-in methods' code digests equal the committed reports' (a refactor moved no number).

Stages, lowest first: the plugin contract (``mlbench``, ``api``, ``registry``, ``contract``, ``metrics``,
``progress``), ``data/`` (with the built-in plugins ``mlbench.methods`` and ``mlbench.tasks``, which build on
the contract and the data layer only), ``runs/``, ``reports/``, ``cli/``. A module may import its own stage or
a lower one, never a higher one. Every ``import`` statement counts, including those inside functions and
under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import csv
import json
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_MODULES = {"mlbench", "mlbench.api", "mlbench.registry", "mlbench.contract", "mlbench.metrics",
                    "mlbench.progress"}
STAGES = {"contract": 0, "data": 1, "plugins": 1, "runs": 2, "reports": 3, "cli": 4}
#: Built-in methods whose code digests the committed Reuters report records.
REPORTED_METHODS_REPORT = ROOT / "reports" / "reuters" / "runs.csv"


def module_files() -> dict[str, Path]:
    """Every module of the installed package by name (the mapped methods/ and tasks/ folders included)."""
    out: dict[str, Path] = {}
    for prefix, folder in (("mlbench", ROOT / "mlbench"), ("mlbench.methods", ROOT / "methods"),
                           ("mlbench.tasks", ROOT / "tasks")):
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if prefix == "mlbench" and parts and parts[0] in ("methods", "tasks"):
                continue
            out[name] = path
    return out


def stage(module: str) -> str:
    if module in CONTRACT_MODULES:
        return "contract"
    part = module.split(".")[1]
    return "plugins" if part in ("methods", "tasks") else part


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The mlbench modules ``module`` imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != module:
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: imports(name, path, known) for name, path in files.items()}


def test_the_stages_cover_every_module():
    assert {stage(m) for m in module_files()} <= set(STAGES)


def test_no_import_runs_against_the_stage_order():
    upward = [f"{m} ({stage(m)}) imports {t} ({stage(t)})"
              for m, targets in import_graph().items() for t in sorted(targets)
              if STAGES[stage(t)] > STAGES[stage(m)]]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = import_graph()
    # a package's __init__ is imported by its submodules implicitly; only explicit imports count here
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_top_level_holds_the_contract_and_the_stage_folders():
    entries = sorted(p.name for p in (ROOT / "mlbench").iterdir() if p.name not in ("__init__.py", "__pycache__"))
    assert entries == ["api.py", "cli", "contract.py", "data", "metrics.py", "progress.py", "registry.py",
                       "reports", "runs"]


def test_every_folder_says_what_it_owns():
    for init in (ROOT / "mlbench").rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init} has no docstring"


#: api.py and metrics.py keep their bytes (every committed code digest covers them).
SIZE_EXEMPT = {"mlbench/api.py", "mlbench/metrics.py"}


def test_no_module_over_400_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in (ROOT / "mlbench").rglob("*.py")
            if str(p.relative_to(ROOT)) not in SIZE_EXEMPT and (n := len(p.read_text().splitlines())) > 400]
    assert not long, long


def test_no_re_export_layer():
    """No module imports names only to hand them on: every name a module imports from mlbench is used in it."""
    offenders = []
    for name, path in module_files().items():
        if not name.startswith("mlbench."):
            continue
        tree = ast.parse(path.read_text())
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
        text = path.read_text()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlbench"):
                for a in node.names:
                    bound = a.asname or a.name
                    # a name used only in a string annotation still counts as used
                    if bound not in used and f'"{bound}"' not in text and f"'{bound}'" not in text:
                        offenders.append(f"{name} imports {bound} from {node.module} and never uses it")
        imported = {a.asname or a.name.split(".")[0] for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                    for a in n.names}
        for n in tree.body:
            if isinstance(n, ast.Assign) and any(isinstance(x, ast.Name) and x.id == "__all__" for x in n.targets):
                listed = {e.value for e in ast.walk(n.value) if isinstance(e, ast.Constant)}
                if listed & imported:
                    offenders.append(f"{name} lists imported names in __all__: {', '.join(sorted(listed & imported))}")
        if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body) and name != "mlbench":
            offenders.append(f"{name} defines a module __getattr__")
    assert not offenders, "\n".join(offenders)


def _committed_digests() -> dict[str, set[str]]:
    with open(REPORTED_METHODS_REPORT, newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, set[str]] = {}
    for row in rows:
        out.setdefault(row["method"], set()).add(row["code_digest"])
    return out


def _marked_stale() -> set[tuple[str, str]]:
    meta = json.loads((REPORTED_METHODS_REPORT.parent / "bundle.json").read_text())
    return {(e["method"], e["code_digest"]) for e in meta.get("stale", [])}


@pytest.mark.parametrize("method", sorted(_committed_digests()))
def test_built_in_code_digests_equal_the_committed_reports(method):
    """Every run of a built-in method in reports/reuters ran on today's code, or the bundle marks it stale
    (the page shows its rows with †): a code change never leaves a report silently out of date."""
    from mlbench.registry import entries, get_method
    from mlbench.runs.identity import method_code_digest

    found, _ = entries("mlbench.methods")
    if method not in found or not found[method].builtin:
        pytest.skip(f"{method} is not a built-in method")
    if importlib.util.find_spec(get_method(method).__module__) is None:  # pragma: no cover
        pytest.skip(f"{method} cannot be imported here")
    today = method_code_digest(get_method(method))
    unmarked = {d for d in _committed_digests()[method] if d != today and (method, d) not in _marked_stale()}
    assert not unmarked, f"{method}: runs on code {sorted(unmarked)} are neither today's ({today}) nor marked stale"
