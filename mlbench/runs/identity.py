"""Run identity: which configuration and which code produced a run.

Every run is tagged with two digests:

* ``config_digest``: a hash of the method name, every resolved parameter
  (defaults, preset and overrides merged, as ``Method.params`` holds them) and
  the preset name. Two runs with the same digest ran the same settings; a
  report row is one (method, configuration digest).
* ``code_digest``: a hash of the source of the method's module and of every
  ``mlbench.*`` module in its import closure (found by reading the ``import``
  statements of each module, including imports inside functions), plus the
  mlbench version, and the closure of ``mlbench.metrics`` (the code that turns
  predictions into the reported numbers). A refactor of ``methods/neural/`` changes the digest of
  every neural method and of no linear one. A method defined outside mlbench
  (a plugin) contributes its own module's source; its own third-party imports
  are outside the closure (their versions are tagged separately).

``config_label`` says in words which configuration a run used: ``defaults``,
``--param k=v ...`` for overrides, ``suite NAME: k=v`` for a bench cell, or
``tuned (study NAME)``. :func:`identity_tags` computes all three; every path
that logs a parent run (``runner.run_once``, the bench, tuning) calls it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

#: Only modules under this package enter the code digest's closure.
PROJECT_PACKAGE = "mlbench"
#: The evaluation code enters every method's code digest: it shapes every logged metric.
EVALUATION_MODULE = "mlbench.metrics"
#: Stands in the configuration digest for a parameter that holds another run's model (a local
#: temporary path that differs on every run, while the configuration is the same).
MODEL_REFERENCE_VALUE = "<model of another run>"


def config_digest(method: str, params: Mapping[str, Any], preset: str | None) -> str:
    """12 hex digits identifying (method, every resolved parameter, preset)."""
    payload = json.dumps(
        {"method": method, "params": dict(params), "preset": preset or "default"}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _module_file(name: str) -> Path | None:
    """Source file of an importable module, or None (built-in, namespace, not found)."""
    mod = sys.modules.get(name)
    path = getattr(mod, "__file__", None) if mod is not None else None
    if path is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        path = spec.origin if spec is not None else None
    if not path or not str(path).endswith(".py"):
        return None
    return Path(path)


def _imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Every module name an ``import`` statement of ``source`` may load, relative ones resolved."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            # ``from pkg import sub`` may name a submodule as well as an attribute
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def import_closure(module: str) -> dict[str, Path]:
    """``{module name: source file}`` of ``module`` and every ``mlbench.*`` module it imports, transitively.

    Parents of a submodule are included (importing ``mlbench.a.b`` runs ``mlbench/a/__init__.py``).
    """
    found: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _module_file(name)
        if path is None:
            continue
        found[name] = path
        is_package = path.name == "__init__.py"
        candidates = _imported_names(path.read_text(encoding="utf-8"), name, is_package)
        parts = name.split(".")
        candidates.update(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(
            c for c in candidates
            if c not in found and (c == PROJECT_PACKAGE or c.startswith(PROJECT_PACKAGE + "."))
        )
    return found


@lru_cache(maxsize=None)
def code_digest(module: str) -> str:
    """12 hex digits over the sources of :func:`import_closure` (by module name) and the mlbench version."""
    from mlbench import __version__

    h = hashlib.sha256(f"mlbench {__version__}\n".encode())
    closure = {**import_closure(module), **import_closure(EVALUATION_MODULE)}
    for name, path in sorted(closure.items()):
        h.update(f"\0{name}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def method_code_digest(method_cls: type) -> str:
    return code_digest(method_cls.__module__)


def config_label(overrides: Mapping[str, Any], suite: str | None = None, study: str | None = None) -> str:
    """Words for a configuration: ``defaults``, ``--param k=v``, ``suite S: k=v`` or ``tuned (study S)``."""
    if study:
        return f"tuned (study {study})"
    shown = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(overrides.items()))
    if suite:
        return f"suite {suite}" + (f": {shown}" if shown else "")
    return f"--param {shown}" if shown else "defaults"


def identity_tags(
    method_cls: type,
    resolved: Mapping[str, Any],
    preset: str | None,
    overrides: Mapping[str, Any] | None = None,
    suite: str | None = None,
    study: str | None = None,
    model_references: tuple[str, ...] = (),
) -> dict[str, str]:
    """``config_digest``, ``code_digest`` and ``config_label`` tags of one parent run.

    ``resolved`` is the method's ``params`` after construction; ``overrides`` what
    the user set (for the label); ``model_references`` names parameters that hold
    another run's model, which enter the digest as a constant.
    """
    params = {k: (MODEL_REFERENCE_VALUE if k in model_references else v) for k, v in resolved.items()}
    shown = {k: (MODEL_REFERENCE_VALUE if k in model_references else v) for k, v in (overrides or {}).items()}
    return {
        "config_digest": config_digest(method_cls.name, params, preset),
        "code_digest": method_code_digest(method_cls),
        "config_label": config_label(shown, suite=suite, study=study),
    }
