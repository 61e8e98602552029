"""A suite's YAML file read within bounds and typed, and the bounds of the matrix it describes.

A suite file may come from anyone (a shared repository, a colleague's message), so reading it is bounded
in bytes, in the document it expands to and in the matrix it asks for, and every way it can break ends in
one usage error (exit 2):

- the file: at most :data:`MAX_SUITE_BYTES` are read;
- YAML aliases: PyYAML composes a document into a graph of nodes in which an alias is the node it names,
  shared, so a few hundred bytes of nested aliases (the "billion laughs") stand for billions of values
  that only appear when the document is turned into Python objects and walked or printed. PyYAML has no
  limit of its own, so the composed graph is measured before anything is constructed
  (:func:`expanded_size`: every use of an alias counted in full) and must stay under
  :data:`MAX_YAML_NODES`; a document that contains itself is refused as well;
- nesting deeper than Python's recursion limit (PyYAML's composer recurses once per level);
- the matrix: at most :data:`MAX_SEEDS` seeds, each once, and :data:`MAX_CELLS` cells
  (:func:`check_matrix`), for a suite file and for ``bench --seeds/--methods/--tasks`` alike;
- messages show a value through :func:`shown`, cut to a line.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any, Sequence

from mlbench.api import UsageError

#: Bytes read from a suite file; a real suite is a few hundred.
MAX_SUITE_BYTES = 256 * 1024
#: YAML nodes a suite document may stand for, aliases expanded (paper-reuters is under 60).
MAX_YAML_NODES = 100_000
#: Seeds of one suite, and cells (methods x tasks x seeds): far above any suite that could finish.
MAX_SEEDS = 1000
MAX_CELLS = 20_000

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_repr.maxlist = _repr.maxdict = 8
_repr.maxlevel = 3


def shown(value: Any) -> str:
    """A value for an error message: its repr, cut short (a suite's value may be huge)."""
    return _repr.repr(value)


def yaml_problem(exc: Exception) -> str:
    """A YAML error on one line, with the line and column where the parser stopped."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


class _Unbounded(Exception):
    """The document expands past the node limit, or contains itself."""


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def expanded_size(root: Any, limit: int) -> int:
    """Nodes the composed YAML graph ``root`` stands for once every alias is expanded.

    A depth-first walk with one count per distinct node (a shared node is counted once and its count reused
    wherever it appears), so it costs the size of the file, not of the expansion. Raises ``_Unbounded``
    past ``limit`` or on a node that contains itself.
    """
    size: dict[int, int] = {}
    ancestors: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            ancestors.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            if size[key] > limit:
                raise _Unbounded(f"it expands to more than {limit:,} values (YAML aliases)")
            continue
        if key in size:
            continue
        if key in ancestors:
            raise _Unbounded("it contains itself (a YAML alias inside its own anchor)")
        ancestors.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in ancestors:
                raise _Unbounded("it contains itself (a YAML alias inside its own anchor)")
            if id(child) not in size:
                stack.append((child, False))
    return size[id(root)]


def read_suite_yaml(path: Path) -> Any:
    """The YAML document of a suite file as Python objects, read within the bounds above."""
    import yaml

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SUITE_BYTES + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"suite file {path} cannot be read: {exc}") from exc
    if len(data) > MAX_SUITE_BYTES:
        raise UsageError(f"suite file {path} is larger than {MAX_SUITE_BYTES // 1024} KiB; a suite is a few lines")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node, MAX_YAML_NODES)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise UsageError(f"suite file {path} is not valid YAML: {yaml_problem(exc)}") from exc
    except _Unbounded as exc:
        raise UsageError(f"suite file {path} is refused: {exc}") from exc
    except RecursionError as exc:
        raise UsageError(f"suite file {path} nests too deeply to be a suite") from exc
    finally:
        loader.dispose()


def check_matrix(name: str, methods: Sequence[str], tasks: Sequence[str], seeds: Sequence[int]) -> None:
    """Seeds and tasks each listed once, at most :data:`MAX_SEEDS` seeds and :data:`MAX_CELLS` cells."""
    if len(seeds) > MAX_SEEDS:
        raise UsageError(f"suite {name}: {len(seeds):,} seeds; at most {MAX_SEEDS:,} are allowed")
    for what, values in (("seed", seeds), ("task", tasks)):
        seen: set[Any] = set()
        for value in values:
            if value in seen:
                raise UsageError(f"suite {name}: lists {what} {shown(value)} twice")
            seen.add(value)
    cells = len(methods) * len(tasks) * len(seeds)
    if cells > MAX_CELLS:
        raise UsageError(f"suite {name}: {len(methods)} methods x {len(tasks)} tasks x {len(seeds)} seeds = "
                         f"{cells:,} cells; at most {MAX_CELLS:,} are allowed (split it into several suites)")


def suite_fields(raw: Any, path: Path) -> dict[str, Any]:
    """The fields of a ``Suite`` from a suite file's document, each of the type it must have."""
    if not isinstance(raw, dict) or not raw.get("methods") or not raw.get("tasks"):
        raise UsageError(f"suite file {path} needs 'methods' and 'tasks' lists")
    methods = raw["methods"]
    if isinstance(methods, list) and all(isinstance(m, str) for m in methods):
        methods = {m: {} for m in methods}
    if not isinstance(methods, dict) or not all(p is None or isinstance(p, dict) for p in methods.values()):
        raise UsageError(f"suite file {path}: 'methods' must be a list of names or a mapping name -> parameters")
    if not isinstance(raw["tasks"], list) or not all(isinstance(t, str) for t in raw["tasks"]):
        raise UsageError(f"suite file {path}: 'tasks' must be a list of task names")
    if not all(isinstance(raw.get(k), (str, type(None))) for k in ("name", "base_task")):
        raise UsageError(f"suite file {path}: 'name' and 'base_task' must be strings")
    seeds = raw.get("seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
        raise UsageError(f"suite file {path}: 'seeds' must be a list of integers, got {shown(seeds)}")
    labels = raw.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise UsageError(f"suite file {path}: 'labels' must map method names to short labels")
    return {
        "labels": dict(labels),
        "name": str(raw.get("name") or path.stem),
        "methods": {str(m): dict(p or {}) for m, p in methods.items()},
        "tasks": list(raw["tasks"]),
        "seeds": list(seeds),
        "preset": str(raw.get("preset", "small")),
        "base_task": raw.get("base_task"),
    }
