"""Find methods and datasets: entry points, plus plugin files given on the command line.

This module owns the names: which distribution or file provides each method and dataset, loading a class
on first use, and describing them all for ``mlbench list``. Turning a task name (a dataset plus variants,
or a path) into a task is :mod:`mlbench.data.tasks`.

Built-ins are declared in mlbench's own ``pyproject.toml`` under the same
entry-point groups as third-party plugins (``mlbench.methods``,
``mlbench.tasks``), so every run exercises the plugin path. Names are read
from the metadata without importing anything; a plugin is imported only when
it is used or described, and one that fails to import becomes a warning, not a
crash.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import os
import re
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from mlbench import DIST_NAME
from mlbench.api import Dataset, Method, MlbenchError, UnknownNameError, UsageError

log = logging.getLogger(__name__)

METHOD_GROUP = "mlbench.methods"
TASK_GROUP = "mlbench.tasks"
BUILTIN_DIST = DIST_NAME
AUTOLOAD_ENV = "MLBENCH_DISABLE_PLUGIN_AUTOLOAD"
#: Distributions (comma-separated) that win a name two third-party distributions both declare.
PREFER_ENV = "MLBENCH_PLUGIN_PREFER"

# Classes registered from ``--plugin file.py``: group -> name -> class.
_local: dict[str, dict[str, type]] = {METHOD_GROUP: {}, TASK_GROUP: {}}


@dataclass
class Entry:
    """One registered name; ``obj`` is filled when it is loaded."""

    name: str
    group: str
    source: str  # distribution name, or the plugin file's path
    entry_point: EntryPoint | None = None
    obj: type | None = None
    error: str | None = None
    #: Other third-party distributions declaring the same name, none of them preferred: using the name is an error.
    rivals: tuple[str, ...] = ()
    #: Clash warnings about this name, logged when the name is used.
    warnings: tuple[str, ...] = ()

    @property
    def builtin(self) -> bool:
        return self.source == BUILTIN_DIST

    @property
    def origin(self) -> str:
        """Where the name comes from, for messages and run tags: "mlbench-omikuji 0.1.0", "file x.py"."""
        if self.entry_point is None:
            return f"plugin file {self.source}"
        dist = self.entry_point.dist
        version = dist.version if dist is not None else "?"
        return f"{self.source} {version}" + (" (built-in)" if self.builtin else "")

    def _fail(self, error: str) -> MlbenchError:
        self.error = error
        if self.entry_point is not None:
            where = f"distribution {self.source!r}, entry point '{self.name} = {self.entry_point.value}'"
        else:
            where = f"plugin file {self.source}"
        return MlbenchError(f"plugin {self.name!r} ({where}): {error}")

    def load(self) -> type:
        if self.rivals:
            kind = "method" if self.group == METHOD_GROUP else "task"
            dists = ", ".join(repr(d) for d in (self.source, *self.rivals))
            self.error = f"declared by several distributions ({dists})"
            raise MlbenchError(
                f"{kind} name {self.name!r} is declared by distributions {dists}; uninstall all but one, "
                f"or pick one with {PREFER_ENV}={self.source}"
            )
        if self.obj is None:
            if self.entry_point is None:  # pragma: no cover - local entries always carry obj
                raise MlbenchError(f"{self.name} has nothing to load")
            try:
                obj = self.entry_point.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a plugin that raises or exits at import must not take the core down
                raise self._fail(f"failed to load: {import_failure(exc)}") from exc
            expected = Method if self.group == METHOD_GROUP else Dataset
            if not (inspect.isclass(obj) and issubclass(obj, expected)):
                raise self._fail(f"{self.entry_point.value} is not a subclass of mlbench.api.{expected.__name__}")
            if inspect.isabstract(obj):
                missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
                raise self._fail(f"{self.entry_point.value} does not implement {missing}")
            declared = getattr(obj, "name", None)
            if declared != self.name:
                # runs are logged under the class's name: the two must agree
                raise self._fail(f"{self.entry_point.value} declares name {declared!r}, not the entry point's {self.name!r}")
            self.obj = obj
        return self.obj


def import_failure(exc: BaseException) -> str:
    """What went wrong importing a plugin, on one line: the exception, or the exit it tried."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: {exc.code} (the plugin exits while being imported)"
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}"


def _autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip() not in ("", "0", "false", "False")


def entries(group: str) -> tuple[dict[str, Entry], list[str]]:
    """All entries of ``group`` by name, and warnings about clashes.

    On a name clash the built-in wins (the other distribution is named in a
    warning). Between third-party distributions no install order decides: a
    distribution named in ``$MLBENCH_PLUGIN_PREFER`` wins (with a warning);
    otherwise the entry keeps its rivals and using the name is an error naming
    them all (``mlbench list`` shows it as a warning row).
    """
    found: dict[str, Entry] = {}
    warnings: list[str] = []
    disabled = _autoload_disabled()
    prefer = [d.strip() for d in os.environ.get(PREFER_ENV, "").split(",") if d.strip()]

    def rank(dist: str) -> tuple[int, int, str]:
        # the built-in, then preferred distributions in the order given, then by name: never discovery order
        if dist == BUILTIN_DIST:
            return (0, 0, dist)
        return (1, prefer.index(dist), dist) if dist in prefer else (2, 0, dist)

    eps = sorted(entry_points(group=group), key=lambda ep: (rank(ep.dist.name if ep.dist else "?"), ep.name))
    for ep in eps:
        dist = ep.dist.name if ep.dist is not None else "?"
        if disabled and dist != BUILTIN_DIST:
            continue
        if ep.name in found:
            kept = found[ep.name]
            if kept.source == dist:
                continue
            if rank(kept.source)[0] == 2:  # two third-party distributions, neither preferred nor built-in
                kept.rivals = (*kept.rivals, dist)
                continue
            why = "" if kept.builtin else f" ({PREFER_ENV})"
            message = (f"{group} name {ep.name!r} from distribution {dist!r} (entry point '{ep.name} = {ep.value}') "
                       f"clashes with distribution {kept.source!r}; ignoring {dist!r}{why}")
            warnings.append(message)
            kept.warnings = (*kept.warnings, message)
            continue
        found[ep.name] = Entry(ep.name, group, dist, entry_point=ep)
    for name, cls in _local[group].items():
        if name in found:
            message = (f"{group} name {name!r} from plugin file {inspect.getsourcefile(cls)} clashes with "
                       f"{found[name].source!r}; ignoring the file's")
            warnings.append(message)
            found[name].warnings = (*found[name].warnings, message)
            continue
        found[name] = Entry(name, group, str(inspect.getsourcefile(cls)), obj=cls)
    return found, warnings


def load_plugin_file(path: str | Path) -> list[str]:
    """Import a local Python file and register the methods and datasets it defines.

    Returns the registered names. Classes are found by subclassing
    :class:`Method` or :class:`Dataset` and defining ``name`` in the file itself.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"plugin file {path} does not exist" if not path.exists() else f"plugin file {path} is not a file")
    # a stable name (str hashes differ per process): the module name enters the plugin's code digest, which
    # must be the same in every process that loads the file (bench workers, a later resumed command)
    where = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    module_name = f"mlbench_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{where}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise MlbenchError(f"plugin file {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        del sys.modules[module_name]
        raise
    except BaseException as exc:  # SystemExit included: a plugin that exits at import would end mlbench with 0
        del sys.modules[module_name]
        raise MlbenchError(f"plugin file {path} failed to import: {import_failure(exc)}") from exc
    names = []
    for obj in vars(module).values():
        if not inspect.isclass(obj) or obj.__module__ != module_name or inspect.isabstract(obj):
            continue
        group = METHOD_GROUP if issubclass(obj, Method) else TASK_GROUP if issubclass(obj, Dataset) else None
        if group is None or not isinstance(getattr(obj, "name", None), str):
            continue
        _local[group][obj.name] = obj
        names.append(obj.name)
    if not names:
        raise MlbenchError(f"plugin file {path} defines no Method or Dataset subclass with a 'name'")
    return names


_warned: set[str] = set()


def _resolve(group: str, name: str | None = None) -> dict[str, Entry]:
    """``entries(group)``, logging each clash warning about ``name`` once per process (``list`` prints them itself)."""
    found, _ = entries(group)
    if name in found:
        _log_clashes(found[name])
    return found


def _log_clashes(entry: Entry) -> None:
    for w in entry.warnings:
        if w not in _warned:
            _warned.add(w)
            log.warning(w)


def method_names() -> list[str]:
    return sorted(entries(METHOD_GROUP)[0])


def dataset_names() -> list[str]:
    return sorted(entries(TASK_GROUP)[0])


def get_method(name: str) -> type[Method]:
    found = _resolve(METHOD_GROUP, name)
    if name not in found:
        raise UnknownNameError(f"unknown method {name!r}; available: {', '.join(sorted(found)) or 'none'}")
    return found[name].load()


def method_origin(name: str) -> str:
    """The distribution and version (or plugin file) that provides method ``name``."""
    found, _ = entries(METHOD_GROUP)
    if name not in found:
        raise UnknownNameError(f"unknown method {name!r}; available: {', '.join(sorted(found)) or 'none'}")
    return found[name].origin


def get_dataset(name: str) -> type[Dataset]:
    """The dataset class registered as ``name`` (a dataset name without variants)."""
    found = _resolve(TASK_GROUP, name)
    if name not in found:
        raise UnknownNameError(f"unknown dataset {name!r}; available: {', '.join(sorted(found)) or 'none'}")
    return found[name].load()


@dataclass
class Row:
    kind: str
    name: str
    description: str
    source: str
    status: str  # "ok" or a warning


def static_description(entry: Entry) -> str | None:
    """A class's ``description`` read from its module's source without importing it, or None.

    Only a literal string assigned in the class body counts. Used for the
    built-ins, whose modules import numpy and scipy at the top: ``mlbench list``
    then shows them without paying those imports (third-party plugins are still
    imported, so that one that fails to import shows up as a warning).
    """
    import ast

    if entry.entry_point is None:
        return None
    module, _, attr = entry.entry_point.value.partition(":")
    try:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (ImportError, OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == attr.strip():
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                        and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == "description"
                        and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
                    return stmt.value.value
    return None


def describe_all() -> tuple[list[Row], list[str]]:
    """Every method and dataset with a one-line description; broken plugins become warning rows.

    Built-ins are described from their source (:func:`static_description`);
    loading a plugin's class imports its module, which by convention imports
    no heavy framework at the top (torch is imported inside ``fit``).
    """
    rows: list[Row] = []
    warnings: list[str] = []
    for kind, group in (("method", METHOD_GROUP), ("task", TASK_GROUP)):
        found, clash = entries(group)
        warnings.extend(clash)
        for name in sorted(found):
            e = found[name]
            known = static_description(e) if e.builtin and e.obj is None else None
            if known is not None:
                desc = known.strip().splitlines()
                rows.append(Row(kind, name, desc[0] if desc else "", e.source, "ok"))
                continue
            try:
                obj = e.load()
                desc = (getattr(obj, "description", "") or "").strip().splitlines()
                rows.append(Row(kind, name, desc[0] if desc else "", e.source, "ok"))
            except MlbenchError as exc:
                rows.append(Row(kind, name, "", e.source, f"WARNING: {e.error or exc}"))
                warnings.append(str(exc))
    return rows, warnings
