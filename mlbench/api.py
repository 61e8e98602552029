"""The contracts every method and task honours.

A *task* hands out three :class:`Split` objects over one label list; a split carries raw
texts, a feature matrix, or both (its :attr:`Split.inputs`). A *method* declares the
inputs it reads (:attr:`Method.inputs`), is fitted on the train and valid splits through
:meth:`Method.fit`, receiving a :class:`FitContext` with the device, the seed, a per-epoch
``report`` hook and a checkpoint folder, and predicts a sparse 0/1 matrix whose columns
follow the task's label list.

This module imports neither torch nor MLflow, and numpy and scipy only inside
the functions that compute with them: the command line's first screen
(``mlbench --help``, ``mlbench list``) must stay cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

if TYPE_CHECKING:  # imported where used: numpy and scipy cost half a second of start-up
    import numpy as np
    import scipy.sparse as sp

ReportHook = Callable[[int, Mapping[str, float]], None]


class MlbenchError(Exception):
    """An error with a message meant for the user (printed on one line, no traceback)."""


class DataError(MlbenchError):
    """Missing, corrupt or malformed data."""


class UsageError(MlbenchError):
    """Bad input on the command line or in a suite file (the CLI exits with status 2)."""


class UnknownNameError(MlbenchError):
    """An unknown method or task name (the CLI exits with status 2)."""


# --------------------------------------------------------------------------- data


#: What a split can hand a method: raw texts (``Split.texts``) and a feature matrix (``Split.X``).
TEXT, FEATURES = "text", "features"


@dataclass(frozen=True, eq=False)
class Split:
    """One part of a task: documents (texts, a feature matrix, or both), their ordered label sequences and indicators.

    ``label_seqs[i]`` lists column indices into ``labels`` in the order a sequence
    model should emit them (the task's label order policy decides it); ``Y`` is
    the same information as an ``n_docs x n_labels`` CSR indicator matrix. ``X``,
    when given, is the ``n_docs x n_features`` feature matrix (CSR float32 for
    sparse features, a float32 ndarray for dense ones); ``texts`` is then either
    empty (a feature task) or one text per document.
    """

    name: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    label_seqs: tuple[tuple[int, ...], ...]
    labels: tuple[str, ...]
    Y: sp.csr_matrix = field(repr=False)
    X: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        texts_ok = len(self.texts) == n or (self.X is not None and len(self.texts) == 0)
        if not (texts_ok and len(self.label_seqs) == n == self.Y.shape[0]):
            raise ValueError(f"split {self.name!r}: ids, texts, label_seqs and Y disagree in length")
        if self.Y.shape[1] != len(self.labels):
            raise ValueError(f"split {self.name!r}: Y has {self.Y.shape[1]} columns for {len(self.labels)} labels")
        if self.X is not None and (len(self.X.shape) != 2 or self.X.shape[0] != n):
            raise ValueError(f"split {self.name!r}: X has shape {self.X.shape} for {n} documents")

    @classmethod
    def build(
        cls,
        name: str,
        ids: Sequence[str],
        texts: Sequence[str],
        label_seqs: Sequence[Sequence[int]],
        labels: Sequence[str],
        X: Any = None,
    ) -> "Split":
        """Make a split from sequences; the indicator matrix is derived from them."""
        seqs = tuple(tuple(int(j) for j in s) for s in label_seqs)
        return cls(
            name=name,
            ids=tuple(str(i) for i in ids),
            texts=tuple(texts),
            label_seqs=seqs,
            labels=tuple(labels),
            Y=indicator_matrix(seqs, len(labels)),
            X=X,
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def inputs(self) -> frozenset[str]:
        """``{"text"}``, ``{"features"}`` or both: what this split's documents come as."""
        has_text = self.X is None or (len(self.texts) == len(self.ids) and len(self.ids) > 0)
        return frozenset(({TEXT} if has_text else set()) | ({FEATURES} if self.X is not None else set()))

    @property
    def n_features(self) -> int:
        """Columns of ``X``; 0 for a split without features."""
        return 0 if self.X is None else int(self.X.shape[1])

    def subset(self, rows: Sequence[int] | np.ndarray, name: str | None = None) -> "Split":
        import numpy as np
        import scipy.sparse as sp

        rows = np.asarray(rows, dtype=np.int64)
        X = None if self.X is None else (self.X[rows].tocsr() if sp.issparse(self.X) else self.X[rows])
        return Split(
            name=name or self.name,
            ids=tuple(self.ids[i] for i in rows),
            texts=tuple(self.texts[i] for i in rows) if self.texts else (),
            label_seqs=tuple(self.label_seqs[i] for i in rows),
            labels=self.labels,
            Y=self.Y[rows].tocsr(),
            X=X,
        )


def indicator_matrix(label_seqs: Sequence[Sequence[int]], n_labels: int) -> sp.csr_matrix:
    """CSR 0/1 matrix (int8) from label index sequences; duplicates count once."""
    import numpy as np
    import scipy.sparse as sp

    indptr = np.zeros(len(label_seqs) + 1, dtype=np.int64)
    cols: list[int] = []
    for i, seq in enumerate(label_seqs):
        uniq = sorted(set(seq))
        cols.extend(uniq)
        indptr[i + 1] = indptr[i] + len(uniq)
    indices = np.asarray(cols, dtype=np.int32)
    data = np.ones(len(indices), dtype=np.int8)
    return sp.csr_matrix((data, indices, indptr), shape=(len(label_seqs), n_labels))


@dataclass(frozen=True, eq=False)
class Task:
    """A dataset with a fixed split, a label order policy and transforms.

    ``labels`` is ordered by descending training frequency (ties by name), so
    column 0 is the most frequent label. ``fingerprint`` hashes the document ids
    of every split, the label list and the transforms: scores are comparable
    only between runs that share it.
    """

    name: str
    dataset: str
    labels: tuple[str, ...]
    train: Split
    valid: Split
    test: Split
    transforms: tuple[str, ...] = ()
    description: str = ""

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def inputs(self) -> frozenset[str]:
        """What the task's documents come as (:attr:`Split.inputs` of its training split)."""
        return self.train.inputs

    @property
    def label_freq(self) -> np.ndarray:
        """Number of training documents carrying each label (task label order)."""
        import numpy as np

        return np.asarray(self.train.Y.sum(axis=0)).ravel().astype(np.int64)

    @property
    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        payload = {
            "dataset": self.dataset,
            "labels": list(self.labels),
            "transforms": list(self.transforms),
            "splits": {name: list(s.ids) for name, s in self.splits.items()},
        }
        h.update(json.dumps(payload, sort_keys=True).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """Sizes and label statistics, for ``mlbench data info``."""
        out: dict[str, Any] = {"task": self.name, "labels": self.n_labels, "fingerprint": self.fingerprint}
        for name, s in self.splits.items():
            nnz = s.Y.nnz
            out[f"{name}_docs"] = len(s)
            out[f"{name}_cardinality"] = round(nnz / max(len(s), 1), 3)
        return out


class Dataset(ABC):
    """A source of base splits, registered in the ``mlbench.tasks`` entry-point group.

    Variants (``-shuffled``, ``-trim<k>``) are applied by the core on top of
    :meth:`load`, so every dataset gets them for free.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: What its tasks' documents can come as, known before any data is read: ``{"text"}``, ``{"features"}``,
    #: or both when the copy found decides (RCV1: a text layout, or scikit-learn's TF-IDF vectors).
    inputs: ClassVar[frozenset[str]] = frozenset({TEXT})

    @abstractmethod
    def load(self, data_dir: Path | None = None, seed: int = 0) -> Task:
        """Return the base task with the canonical (frequency) label order."""


# ---------------------------------------------------------------- parameter specs


@dataclass(frozen=True)
class Param:
    """What one hyperparameter accepts: a kind, optional bounds, and whether ``None`` is allowed.

    ``kind`` is "int", "float" (ints accepted; inf and nan never), "bool", "str", "choice"
    (one of ``choices``) or "int_list" (a non-empty list of ints, each within the bounds).
    ``low``/``high`` bound numbers; ``low_open``/``high_open`` make a bound exclusive. ``also``
    lists extra literal values accepted besides the kind (e.g. ``"valid"`` for a threshold).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    none_ok: bool = False
    also: tuple[Any, ...] = ()

    def describe(self) -> str:
        """The allowed values in words, e.g. "a number > 0", "an integer in [1, 5]"."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind == "str":
            text = "a string"
        elif self.kind == "choice":
            text = "one of " + ", ".join(json.dumps(c) for c in self.choices)
        else:
            noun = {"int": "an integer", "float": "a number", "int_list": "a non-empty list of integers"}[self.kind]
            text = noun + self._range()
        extras = [json.dumps(a) for a in self.also] + (["null"] if self.none_ok else [])
        return text + (" or " + " or ".join(extras) if extras else "")

    def _range(self) -> str:
        lo, hi = self.low, self.high
        if lo is None and hi is None:
            return ""
        if hi is None:
            return f" {'>' if self.low_open else '>='} {_num(lo)}"
        if lo is None:
            return f" {'<' if self.high_open else '<='} {_num(hi)}"
        return f" in {'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}{')' if self.high_open else ']'}"

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.none_ok
        if any(value == a and type(value) is type(a) for a in self.also):
            return True
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str)
        if self.kind == "choice":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if self.kind == "int_list":
            return (isinstance(value, (list, tuple)) and len(value) > 0
                    and all(_is_int(x) and self._in_range(x) for x in value))
        if self.kind == "int":
            return _is_int(value) and self._in_range(value)
        if self.kind == "float":
            return _is_number(value) and math.isfinite(value) and self._in_range(value)
        raise ValueError(f"unknown parameter kind {self.kind!r}")

    def _in_range(self, v: float) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        if self.high is not None and (v >= self.high if self.high_open else v > self.high):
            return False
        return True


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def resolve_params(method_cls: type["Method"], preset: str | None, params: Mapping[str, Any]) -> dict[str, Any]:
    """A method's parameters: its defaults, then the preset's values, then ``params``.

    Raises :class:`UsageError` for a preset the method lacks or a parameter it does not declare.
    """
    name = getattr(method_cls, "name", method_cls.__name__)
    merged = dict(method_cls.defaults)
    if preset is not None:
        if preset not in method_cls.presets:
            raise UsageError(f"method {name!r} has no preset {preset!r}; choose from {', '.join(sorted(method_cls.presets))}")
        merged.update(method_cls.presets[preset])
    unknown = sorted(set(params) - set(merged))
    if unknown:
        raise UsageError(f"method {name!r} has no parameter {', '.join(unknown)}; known: {', '.join(sorted(merged))}")
    merged.update(params)
    return merged


def validate_params(
    method_cls: type["Method"], preset: str | None, params: Mapping[str, Any], given: str = "--param"
) -> dict[str, Any]:
    """:func:`resolve_params`, then each value checked against the method's ``param_specs``.

    Raises :class:`UsageError` naming the parameter, the value and what is allowed, before any
    data is read; ``given`` says where explicit values came from. A method without ``param_specs`` gets only the name checks (plugins written
    before specs existed keep working); a spec'd method's undeclared names are not checked.
    """
    name = getattr(method_cls, "name", method_cls.__name__)
    merged = resolve_params(method_cls, preset, params)
    specs = method_cls.param_specs
    for key, value in merged.items():
        spec = specs.get(key)
        if spec is not None and not spec.accepts(value):
            where = given if key in params else f"preset {preset!r}" if preset and key in method_cls.presets[preset] else "default"
            raise UsageError(f"method {name!r}: {key}={json.dumps(value) if _jsonable(value) else repr(value)} ({where}) "
                             f"is not allowed; {key} must be {spec.describe()}")
    return merged


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------------- methods


class FitContext:
    """What the runner hands a method during ``fit``.

    ``report(epoch, metrics)`` must be called once per epoch (or once at the end
    for non-iterative methods) with validation metrics such as
    ``{"valid_micro_f1": 0.81}``; hooks registered by the runner draw progress,
    log MLflow curves and may raise ``optuna.TrialPruned`` to stop a trial.
    """

    def __init__(
        self,
        device: str = "cpu",
        seed: int = 0,
        checkpoint_dir: Path | str | None = None,
        hooks: Sequence[ReportHook] = (),
        progress: bool = True,
    ) -> None:
        self.device = device
        self.seed = seed
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.hooks: list[ReportHook] = list(hooks)
        self.progress = progress
        self.history: list[tuple[int, dict[str, float]]] = []

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        clean = {k: float(v) for k, v in metrics.items()}
        self.history.append((epoch, clean))
        for hook in self.hooks:
            hook(epoch, clean)


class Method(ABC):
    """A multi-label learner behind one fit/predict interface.

    Subclasses set ``name``, ``description``, ``defaults`` and ``presets`` and
    implement :meth:`fit` and :meth:`predict`. Hyperparameters are plain keyword
    arguments: ``defaults``, then the chosen preset, then explicit values.
    Heavy imports (torch) belong inside ``fit``/``predict`` so that listing
    methods stays fast.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: The inputs the method can read (:data:`TEXT`, :data:`FEATURES`); a task must offer one of them
    #: (:func:`incompatibility`). A method that reads texts owns its featurisation.
    inputs: ClassVar[frozenset[str]] = frozenset({TEXT})
    #: Whether the method can use a GPU: ``--device auto`` picks CUDA for it when one is visible.
    accelerated: ClassVar[bool] = False
    #: Hyperparameters that make the method small enough for the contract's checks (merged over its defaults).
    contract_params: ClassVar[dict[str, Any]] = {}
    #: Why two fits under the same seed may differ, for a method that cannot be seeded (e.g. a
    #: library with its own unseeded random generator); empty for a reproducible method. The
    #: contract then reports its determinism check as SKIP with this reason instead of FAIL.
    nondeterministic: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: Type and range of each default, checked by :func:`validate_params` before any data is read;
    #: empty (a plugin without a declaration): only the parameter names are checked.
    param_specs: ClassVar[dict[str, Param]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"small": {}, "paper": {}}

    def __init__(self, preset: str | None = None, **params: Any) -> None:
        self.params: dict[str, Any] = resolve_params(type(self), preset, params)
        self.preset = preset

    @classmethod
    def unavailable(cls, params: Mapping[str, Any] | None = None) -> str:
        """Why the method cannot run here with ``params`` (e.g. an optional package is not
        installed), in one line naming what to install; "" when it can. Cheap: nothing heavy is
        imported. The contract reports every check as SKIP with this reason."""
        return ""

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Draw hyperparameters from an Optuna trial; the default searches nothing."""
        return {}

    @abstractmethod
    def fit(self, train: Split, valid: Split, ctx: FitContext) -> "Method":
        """Learn from ``train``; ``valid`` serves model selection and early stopping."""

    @abstractmethod
    def predict(self, split: Split) -> sp.csr_matrix:
        """Return an ``len(split) x split.n_labels`` CSR 0/1 matrix."""

    def fit_report(self) -> dict[str, float | str]:
        """Facts about the last fit worth logging with the run (optional): numbers become MLflow
        metrics, strings ``mlbench.fit.<key>`` tags (e.g. the share of the vocabulary that
        pretrained vectors covered, and their source and version)."""
        return {}

    def predict_scores(self, split: Split) -> np.ndarray:
        """Per-label scores for ranking metrics (higher is more likely); optional."""
        raise NotImplementedError(f"method {self.name!r} does not produce scores")

    @property
    def supports_scores(self) -> bool:
        return type(self).predict_scores is not Method.predict_scores

    # Optional persistence: methods that offer it override both.
    def save(self, path: Path) -> None:
        raise NotImplementedError(f"method {self.name!r} cannot be saved")

    @classmethod
    def load(cls, path: Path) -> "Method":
        raise NotImplementedError(f"method {cls.name!r} cannot be loaded")

    @property
    def supports_save(self) -> bool:
        return type(self).save is not Method.save


def incompatibility(method_cls: type[Method], task_inputs: frozenset[str], task_name: str) -> str:
    """Why ``method_cls`` cannot run on a task whose documents come as ``task_inputs``; "" when it can."""
    if method_cls.inputs & task_inputs:
        return ""
    reads = " or ".join(sorted(method_cls.inputs)) or "nothing"
    offers = " and ".join(sorted(task_inputs)) or "nothing"
    return f"method {method_cls.name!r} reads {reads}; task {task_name!r} offers {offers}"


def prediction_problem(pred: Any, n_rows: int, n_labels: int) -> str:
    """What keeps ``pred`` from being a valid prediction of ``n_rows`` documents: a scipy sparse matrix of
    shape ``(n_rows, n_labels)`` holding only 0 and 1 (so no NaN); "" when it is one."""
    import numpy as np
    import scipy.sparse as sp

    if not sp.issparse(pred):
        return f"predict returned {type(pred).__name__}, expected a scipy sparse matrix"
    if pred.shape != (n_rows, n_labels):
        return f"predict returned shape {pred.shape}, expected {(n_rows, n_labels)}"
    data = pred.tocsr().data
    if data.size and not np.isin(data, (0, 1)).all():
        return "predict returned values other than 0 and 1"
    return ""


def scores_problem(scores: Any, n_rows: int, n_labels: int) -> str:
    """What keeps ``scores`` from being valid label scores of ``n_rows`` documents (an array of shape
    ``(n_rows, n_labels)``, every value finite); "" when they are."""
    import numpy as np

    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return f"predict_scores returned {type(scores).__name__} that is not numeric ({exc})"
    if s.shape != (n_rows, n_labels):
        return f"predict_scores returned shape {s.shape}, expected {(n_rows, n_labels)}"
    if not np.isfinite(s).all():
        return f"predict_scores returned {int((~np.isfinite(s)).sum())} non-finite values"
    return ""


def as_binary_csr(pred: Any, n_rows: int, n_labels: int) -> sp.csr_matrix:
    """Validate and normalise a prediction to an int8 CSR 0/1 matrix."""
    import numpy as np
    import scipy.sparse as sp

    m = sp.csr_matrix(pred)
    if m.shape != (n_rows, n_labels):
        raise MlbenchError(f"prediction has shape {m.shape}, expected {(n_rows, n_labels)}")
    m = m.astype(np.int8)
    m.data = (m.data != 0).astype(np.int8)
    m.eliminate_zeros()
    m.sort_indices()
    return m
