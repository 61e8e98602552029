"""Benchmark suites: a matrix of methods x tasks x seeds, resumable from the MLflow store.

A cell is (method, task, seed) with the method's configuration (preset and
parameters). A cell is complete when the store holds a FINISHED parent run with
the same task fingerprint, seed and configuration digest (:func:`cell_digest`, the
digest every run is tagged with) on today's code; :func:`mlbench.runs.matrix.run_suite` skips
complete cells, so a killed suite picks up where it stopped, and a cell that
fails is reported and the suite goes on.

Suites are named (``paper-reuters``) or read from a YAML file::

    name: my-suite
    methods: [br, pcc]            # or a mapping: {br: {C: 10}, pcc: {}}
    tasks: [reuters, reuters-shuffled]
    seeds: [0, 1, 2]
    preset: small

A parameter value ``"@<method>"`` hands one cell's fitted model to another:
with ``seq2set: {init_from: "@seq2seq"}`` the seq2seq cell of each task and
seed saves its model in the store (the run's ``model/`` artifact) and the
seq2set cell of the same task and seed starts from it, instead of repeating the
same maximum-likelihood training. The referencing run is tagged with the run it
started from (``init_from_run``), and its fit time excludes the referenced one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from mlbench.api import MlbenchError, UsageError
from mlbench.runs.identity import MAX_LABEL
from mlbench.runs.suite_file import check_matrix, read_suite_yaml, shown, suite_fields
from mlbench.runs.tracking import MAX_PARAM_CHARS, TAG_PREFIX, flatten_params

#: What a suite's short label for a configuration may hold.
LABEL_TEXT = re.compile(rf"[A-Za-z0-9][A-Za-z0-9+,=@#._-]{{0,{MAX_LABEL - 1}}}")
TRIM_SERIES = (0, 5, 10, 15, 20, 25, 30)
PAPER_METHODS = ("br", "pcc", "xml-cnn", "cnn-rnn", "seq2seq", "seq2set")


@dataclass
class Suite:
    name: str
    methods: dict[str, dict[str, Any]]
    tasks: list[str]
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    preset: str = "small"
    base_task: str | None = None  # the task Table 1 reports; default the first task
    labels: dict[str, str] = field(default_factory=dict)  # method -> short row label of its configuration

    @property
    def base(self) -> str:
        return self.base_task or self.tasks[0]

    def cells(self) -> list[tuple[str, str, int]]:
        return [(m, t, s) for t in self.tasks for m in self.methods for s in self.seeds]


def _paper_suite(dataset: str) -> Suite:
    tasks = [dataset, f"{dataset}-shuffled"] + [f"{dataset}-trim{k}" for k in TRIM_SERIES if k > 0]
    methods: dict[str, dict[str, Any]] = {m: {} for m in PAPER_METHODS}
    # Seq2Set's MLE pre-training is Seq2Seq's training (same network, settings and seed), so each
    # seq2set cell starts its RL phase from the seq2seq cell of the same task and seed
    methods["seq2set"] = {"init_from": "@seq2seq"}
    return Suite(name=f"paper-{dataset}", methods=methods, tasks=tasks, base_task=dataset)


#: A parameter value ``"@<method>"`` in a suite names the fitted model of that method's cell with the
#: same task and seed (it must come earlier in the suite's method list and be able to save itself).
MODEL_REFERENCE = "@"


def model_references(suite: Suite) -> dict[str, dict[str, str]]:
    """``{method: {param: referenced method}}`` for every ``"@method"`` value in the suite."""
    refs: dict[str, dict[str, str]] = {}
    order = list(suite.methods)
    for method, params in suite.methods.items():
        for key, value in params.items():
            if isinstance(value, str) and value.startswith(MODEL_REFERENCE):
                target = value[len(MODEL_REFERENCE):]
                if target not in suite.methods:
                    raise UsageError(f"suite {suite.name}: {method}.{key} = {shown(value)} names no method of the suite")
                if order.index(target) >= order.index(method):
                    raise UsageError(f"suite {suite.name}: {method}.{key} = {shown(value)}: {target} must be listed before {method}")
                refs.setdefault(method, {})[key] = target
    return refs


#: The eleven MULAN benchmarks (mlbench.data.mulan_sets), in MULAN's order of size.
MULAN_TASKS = ("emotions", "scene", "yeast", "genbase", "medical", "enron", "corel5k", "bibtex", "delicious",
               "tmc2007", "mediamill")
#: Every built-in method that reads features (the minilm methods read texts only).
FEATURE_METHODS = ("br", "pcc", "mlknn", "rakel", "lp", "xml-cnn", "cnn-rnn", "seq2seq", "seq2set")


def _mulan_suite() -> Suite:
    methods: dict[str, dict[str, Any]] = {m: {} for m in FEATURE_METHODS}
    methods["seq2set"] = {"init_from": "@seq2seq"}  # its RL phase starts from the seq2seq cell's model
    return Suite(name="mulan", methods=methods, tasks=[*MULAN_TASKS, "reuters"], base_task="reuters")


NAMED_SUITES: dict[str, Callable[[], Suite]] = {
    "paper-reuters": lambda: _paper_suite("reuters"),
    "paper-rcv1": lambda: _paper_suite("rcv1"),
    # the linear methods only: minutes on a laptop, for a first look or a smoke test
    "linear-reuters": lambda: Suite(
        name="linear-reuters",
        methods={"br": {}, "pcc": {}},
        tasks=["reuters", "reuters-shuffled"] + [f"reuters-trim{k}" for k in TRIM_SERIES if k > 0],
        base_task="reuters",
    ),
    # twelve real datasets: the MULAN benchmarks and Reuters, every built-in method that reads features
    "mulan": _mulan_suite,
}


def load_suite(spec: str) -> Suite:
    """A named suite or the path of a YAML file."""
    if spec in NAMED_SUITES:
        return NAMED_SUITES[spec]()
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"unknown suite {spec!r}; named suites: {', '.join(sorted(NAMED_SUITES))}, or a YAML file")
    return Suite(**suite_fields(read_suite_yaml(path), path))  # bounded: size, YAML aliases, nesting; typed


def validate_suite(suite: Suite) -> None:
    """Check every method, parameter, task name and seed of a suite without loading any data.

    Raises :class:`UsageError` (or the registry's unknown-name error) for the first problem, so
    a typo in the last cell fails before the first cell trains.
    """
    from mlbench.api import validate_params
    from mlbench.data.tasks import check_task_name
    from mlbench.registry import get_method

    if not suite.methods or not suite.tasks or not suite.seeds:
        raise UsageError(f"suite {suite.name}: needs at least one method, one task and one seed")
    if suite.preset not in ("small", "paper"):
        raise UsageError(f"suite {suite.name}: preset must be small or paper, got {suite.preset!r}")
    check_matrix(suite.name, list(suite.methods), suite.tasks, suite.seeds)  # counts and repeats, before names
    for seed in suite.seeds:
        if not 0 <= seed < 2**32:
            raise UsageError(f"suite {suite.name}: seed {seed} is not in [0, {2**32 - 1}]")
    model_references(suite)
    for method, params in suite.methods.items():
        method_cls = get_method(method)
        # a "@method" value is a model handed over at run time, not a value of the parameter's type
        plain = {k: v for k, v in params.items() if not (isinstance(v, str) and v.startswith(MODEL_REFERENCE))}
        unknown = sorted(set(params) - set(plain) - set(method_cls.defaults))
        if unknown:
            raise UsageError(f"suite {suite.name}: method {method!r} has no parameter {', '.join(unknown)}")
        try:
            resolved = validate_params(method_cls, suite.preset, plain, given="in the suite")
        except UsageError as exc:
            raise UsageError(f"suite {suite.name}: {exc}") from exc
        problem = _cross_check(method_cls, suite.preset, resolved)
        if problem:
            raise UsageError(f"suite {suite.name}: method {method!r}: {problem}")
    for task in suite.tasks:
        check_task_name(task)
    for method, label in suite.labels.items():
        if method not in suite.methods:
            raise UsageError(f"suite {suite.name}: labels names {shown(method)}, which is no method of the suite")
        if not LABEL_TEXT.fullmatch(label):
            raise UsageError(f"suite {suite.name}: the label of {method} must be 1 to {MAX_LABEL} letters, digits "
                             f"or + , = @ # . _ -, got {shown(label)}")
    if len(set(suite.labels.values())) < len(suite.labels):
        raise UsageError(f"suite {suite.name}: two methods have the same label")


def _cross_check(method_cls: type, preset: str, params: dict[str, Any]) -> str:
    """What the method's own check of its values together (``check_params``, e.g. a stride of half a window or
    more) says of ``params``, without making the method: making one may need packages or files that checking
    a suite must not touch. A check that needs more than the parameters is left to the cell."""
    check = getattr(method_cls, "check_params", None)
    if check is None:
        return ""
    probe = object.__new__(method_cls)
    probe.params, probe.preset = dict(params), preset
    try:
        return str(check(probe) or "")
    except Exception:  # noqa: BLE001 - the cell will make the method and say what is wrong
        return ""


def cell_digest(suite: Suite, method: str) -> str:
    """The configuration digest (:func:`mlbench.runs.identity.config_digest`) of ``method``'s cells in ``suite``:
    the parameters the method resolves from the suite's preset and values, a model reference counting as
    :data:`~mlbench.runs.identity.MODEL_REFERENCE_VALUE`. It is the digest the cells' runs are tagged with."""
    from mlbench.registry import get_method
    from mlbench.runs.identity import MODEL_REFERENCE_VALUE, config_digest

    refs = model_references(suite).get(method, {})
    params = suite.methods[method]
    resolved = dict(get_method(method)(preset=suite.preset, **{k: v for k, v in params.items() if k not in refs}).params)
    resolved.update({k: MODEL_REFERENCE_VALUE for k in refs})
    return config_digest(method, resolved, suite.preset)


def find_cell_run(tracker: Any, task_name: str, fingerprint: str, method: str, seed: int, digest: str) -> Any | None:
    """The newest FINISHED parent run of one cell (method, seed, configuration digest) of ``task_name``, or None."""
    runs = tracker.finished_parent_runs(task_name, {"fingerprint": fingerprint, "method": method, "seed": str(seed),
                                                    "config_digest": digest})
    return runs[0] if runs else None


def completed_cells(tracker: Any, task_name: str, fingerprint: str) -> dict[tuple[str, int, str], Any]:
    """(method, seed, configuration digest) -> the newest FINISHED parent run (an MLflow ``Run``) of ``task_name``."""
    done: dict[tuple[str, int, str], Any] = {}
    for r in tracker.finished_parent_runs(task_name, {"fingerprint": fingerprint}):
        tags = r.data.tags
        if "mlbench.config_digest" in tags:
            key = (tags.get("mlbench.method", ""), int(tags.get("mlbench.seed", -1)), tags["mlbench.config_digest"])
            done.setdefault(key, r)  # newest first
    return done


def stored_cell(suite: Suite, tracker: Any, task: Any, method: str, seed: int,
                sources: dict[str, str]) -> tuple[Any | None, list[str]]:
    """The newest FINISHED run of a cell (or None) and what makes it out of date: its model source has a newer
    run, the method's code or the task's data code changed since ([] when it is current)."""
    from mlbench.registry import get_method

    stored = completed_cells(tracker, task.name, task.fingerprint).get((method, seed, cell_digest(suite, method)))
    if stored is None:
        return None, []
    tags = stored.data.tags
    return stored, (changed_sources(suite, tracker, task, seed, sources, tags)
                    + changed_code(get_method(method), tags) + changed_data_code(task, tags))


def changed_params(
    resolved: dict[str, Any], logged: dict[str, str], defaults: dict[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """Parameters whose resolved value differs from the one a stored run logged, as ``key: old -> new``.

    Says why a suite's cell no longer matches its earlier run (another
    configuration digest): a method's code defaults or preset changed since.
    A parameter the run did not log (the method gained it later) counts as
    changed only when it is set away from the method's default.
    """
    skip = set(ignore)

    def as_logged(params: dict[str, Any]) -> dict[str, str]:
        return {k: v[:MAX_PARAM_CHARS] for k, v in flatten_params(params).items()}

    now = as_logged({k: v for k, v in resolved.items() if k not in skip})
    base = as_logged(defaults)
    changed = []
    for k, v in sorted(now.items()):
        old = logged.get(k)
        if old is None and base.get(k) == v:
            continue
        if old != v:
            changed.append(f"{k}: {'(absent)' if old is None else old} -> {v}")
    return changed


def changed_sources(
    suite: Suite, tracker: Any, task: Any, seed: int, references: dict[str, str], tags: dict[str, str]
) -> list[str]:
    """The model references of a stored run whose source cell has a newer run than the one it started from."""
    changed = []
    for key, target in references.items():
        source = find_cell_run(tracker, task.name, task.fingerprint, target, seed, cell_digest(suite, target))
        used = tags.get(f"{TAG_PREFIX}{key}_run")
        if source is not None and source.info.run_id != used:
            changed.append(f"{key}: {target} run {used or '(none)'} -> {source.info.run_id}")
    return changed


def changed_data_code(task: Any, tags: dict[str, str]) -> list[str]:
    """``data code: old -> new`` when the code that reads and builds the task changed since the stored run
    (a run logged before runs carried a data code digest is taken as it is: its fingerprint still matches)."""
    from mlbench.runs.identity import data_code_digest

    old = tags.get(f"{TAG_PREFIX}data_code_digest")
    now = data_code_digest(task.dataset)
    return [] if old is None or old == now else [f"data code: {old} -> {now}"]


def changed_code(method_cls: type, tags: dict[str, str]) -> list[str]:
    """``code: old -> new`` when the stored run's code digest differs from the method's code now.

    A run logged before runs carried a code digest counts as changed: nothing
    says which code produced it.
    """
    from mlbench.runs.identity import method_code_digest

    now = method_code_digest(method_cls)
    old = tags.get(f"{TAG_PREFIX}code_digest")
    return [] if old == now else [f"code: {old or '(no digest)'} -> {now}"]


def _referenced_model(suite: Suite, tracker: Any, task: Any, target: str, seed: int, dst: Path) -> tuple[str, str]:
    """(local folder, run id) of the saved model of ``target``'s cell for ``task`` and ``seed``."""
    run = find_cell_run(tracker, task.name, task.fingerprint, target, seed, cell_digest(suite, target))
    if run is None or "mlbench.saved_model" not in run.data.tags:
        what = "has not run" if run is None else f"ran without saving its model (run {run.info.run_id})"
        raise MlbenchError(f"needs the {target} model of this task and seed, but that cell {what}")
    dst.mkdir(parents=True, exist_ok=True)
    return str(tracker.download_model(run.info.run_id, dst)), run.info.run_id


@dataclass
class CellOutcome:
    method: str
    task: str
    seed: int
    status: str  # "done", "skipped", "failed", "incompatible" (the method cannot read the task); "pending" in a dry run
    seconds: float = 0.0
    detail: str = ""
