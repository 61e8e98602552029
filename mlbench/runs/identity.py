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

Two more tags name the data: ``content_digest`` hashes what the methods read
(every split's ids, texts, feature matrix and label sequences; the fingerprint
covers ids, labels and transforms only), and ``data_code_digest`` the code that
reads and builds the task (the dataset plugin's import closure, or the
own-files reader's, and the task variants'), so an edited reader shows as a
change of identity even where it leaves the fingerprint alone.

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
import re
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


#: The module that builds task variants (``-shuffled``, ``-trim<k>``): in every task's data code digest.
VARIANTS_MODULE = "mlbench.data.variants"
#: The reader of the user's own files (``--task PATH``), whose tasks' dataset is ``files:<digest>``.
FILES_MODULE = "mlbench.data.files"


def data_code_digest(dataset: str) -> str:
    """12 hex digits over the code that reads and builds a task of ``dataset`` (see the module docstring)."""
    from mlbench.registry import dataset_names, get_dataset

    module = FILES_MODULE if dataset.startswith("files:") or dataset not in dataset_names() else (
        get_dataset(dataset).__module__)
    h = hashlib.sha256(f"mlbench {_version()}\n".encode())
    for name, path in sorted({**import_closure(module), **import_closure(VARIANTS_MODULE)}.items()):
        h.update(f"\0{name}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _version() -> str:
    from mlbench import __version__

    return str(__version__)


_content: dict[int, tuple[Any, str]] = {}


def content_digest(task: Any) -> str:
    """16 hex digits over what a method reads of ``task``: every split's ids, texts, feature matrix and
    label sequences, and the label list (remembered per task object for the process)."""
    import numpy as np
    import scipy.sparse as sp

    known = _content.get(id(task))
    if known is not None and known[0] is task:
        return known[1]
    h = hashlib.blake2b(digest_size=8)
    h.update(json.dumps(list(task.labels)).encode())
    for name, split in task.splits.items():
        h.update(f"\0{name}\0{len(split)}\0".encode())
        for field_ in (split.ids, split.texts):
            for value in field_:
                h.update(value.encode("utf-8", "surrogatepass"))
                h.update(b"\0")
        h.update(json.dumps(split.label_seqs).encode())
        if split.X is not None:
            X = sp.csr_matrix(split.X, dtype=np.float32)
            X.sort_indices()
            for part in (np.asarray(X.shape, dtype=np.int64), X.indptr.astype(np.int64), X.indices.astype(np.int64),
                         X.data):
                h.update(np.ascontiguousarray(part).tobytes())
    digest = h.hexdigest()
    _content.clear()  # one task at a time is enough: a process runs one task's cells together
    _content[id(task)] = (task, digest)
    return digest


def config_label(overrides: Mapping[str, Any], suite: str | None = None, study: str | None = None) -> str:
    """Words for a configuration: ``defaults``, ``--param k=v``, ``suite S: k=v`` or ``tuned (study S)``."""
    if study:
        return f"tuned (study {study})"
    shown = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(overrides.items()))
    if suite:
        return f"suite {suite}" + (f": {shown}" if shown else "")
    return f"--param {shown}" if shown else "defaults"


#: The longest row label reports show (tables, figure legends, CD diagrams) and MLflow run names begin with.
MAX_LABEL = 32
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def short_label(method: str, overrides: Mapping[str, Any], suite: str | None = None, study: str | None = None,
                digest: str = "") -> str:
    """A configuration's row label, at most :data:`MAX_LABEL` characters: the method's name for its defaults,
    ``method+v1,k=v2`` for overrides (a word-like string value alone, any other value with its key; a model
    handed over from another run is left out), ``method+tuned`` for a study's best; when that is too long,
    ``method@suite``, else ``method#<digest>``. The full configuration stays in :func:`config_label`."""
    if study:
        words = ["tuned"]
    else:
        words = []
        for key, value in sorted(overrides.items()):
            if value == MODEL_REFERENCE_VALUE:
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            words.append(text if isinstance(value, str) and _WORD.fullmatch(text) else f"{key}={text}")
    label = method + ("+" + ",".join(words) if words else "")
    for candidate in (label, f"{method}@{suite}" if suite else "", f"{method}#{digest[:8]}" if digest else ""):
        if candidate and len(candidate) <= MAX_LABEL:
            return candidate
    return label[:MAX_LABEL]


def parse_config_label(label: str) -> tuple[str | None, str | None, dict[str, Any]]:
    """(suite, study, overrides) of a :func:`config_label` text: what a run logged before it carried a short
    label, read back so that its row gets the same :func:`short_label` a new run would."""
    study = re.fullmatch(r"tuned \(study (.+)\)", label)
    if study:
        return None, study.group(1), {}
    suite, shown = None, ""
    if label.startswith("suite "):
        suite, _, shown = label[len("suite "):].partition(": ")
    elif label.startswith("--param "):
        shown = label[len("--param "):]
    overrides: dict[str, Any] = {}
    for token in shown.replace(MODEL_REFERENCE_VALUE, "\0").split():
        key, sep, value = token.partition("=")
        if not sep:
            continue
        value = value.replace("\0", MODEL_REFERENCE_VALUE)
        try:
            overrides[key] = value if value == MODEL_REFERENCE_VALUE else json.loads(value)
        except ValueError:
            overrides[key] = value
    return suite, None, overrides


def identity_tags(
    method_cls: type,
    resolved: Mapping[str, Any],
    preset: str | None,
    overrides: Mapping[str, Any] | None = None,
    suite: str | None = None,
    study: str | None = None,
    model_references: tuple[str, ...] = (),
    label: str | None = None,
) -> dict[str, str]:
    """``config_digest``, ``code_digest``, ``config_label`` and ``label`` tags of one parent run.

    ``resolved`` is the method's ``params`` after construction; ``overrides`` what
    the user set (for the labels); ``model_references`` names parameters that hold
    another run's model, which enter the digest as a constant; ``label`` is the short label a suite gave the
    configuration (else :func:`short_label` makes one).
    """
    params = {k: (MODEL_REFERENCE_VALUE if k in model_references else v) for k, v in resolved.items()}
    shown = {k: (MODEL_REFERENCE_VALUE if k in model_references else v) for k, v in (overrides or {}).items()}
    digest = config_digest(method_cls.name, params, preset)
    return {
        "config_digest": digest,
        "code_digest": method_code_digest(method_cls),
        "config_label": config_label(shown, suite=suite, study=study),
        "label": label or short_label(method_cls.name, shown, suite=suite, study=study, digest=digest),
    }


def data_tags(task: Any) -> dict[str, str]:
    """``content_digest`` and ``data_code_digest`` of a task (see the module docstring)."""
    return {"content_digest": content_digest(task), "data_code_digest": data_code_digest(task.dataset)}
