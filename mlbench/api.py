"""The contracts every method and task honours.

A *task* hands out three :class:`Split` objects over one label list. A *method*
is fitted on the train and valid splits through :meth:`Method.fit`, receiving a
:class:`FitContext` with the device, the seed, a per-epoch ``report`` hook and a
checkpoint folder, and predicts a sparse 0/1 matrix whose columns follow the
task's label list.

This module imports neither torch nor MLflow: listing plugins must stay cheap.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

ReportHook = Callable[[int, Mapping[str, float]], None]


class MlbenchError(Exception):
    """An error with a message meant for the user (printed on one line, no traceback)."""


class DataError(MlbenchError):
    """Missing, corrupt or malformed data."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class Split:
    """One part of a task: documents, their ordered label sequences and indicators.

    ``label_seqs[i]`` lists column indices into ``labels`` in the order a sequence
    model should emit them (the task's label order policy decides it); ``Y`` is
    the same information as an ``n_docs x n_labels`` CSR indicator matrix.
    """

    name: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    label_seqs: tuple[tuple[int, ...], ...]
    labels: tuple[str, ...]
    Y: sp.csr_matrix = field(repr=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.texts) == len(self.label_seqs) == n == self.Y.shape[0]):
            raise ValueError(f"split {self.name!r}: ids, texts, label_seqs and Y disagree in length")
        if self.Y.shape[1] != len(self.labels):
            raise ValueError(f"split {self.name!r}: Y has {self.Y.shape[1]} columns for {len(self.labels)} labels")

    @classmethod
    def build(
        cls,
        name: str,
        ids: Sequence[str],
        texts: Sequence[str],
        label_seqs: Sequence[Sequence[int]],
        labels: Sequence[str],
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
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    def subset(self, rows: Sequence[int] | np.ndarray, name: str | None = None) -> "Split":
        rows = np.asarray(rows, dtype=np.int64)
        return Split(
            name=name or self.name,
            ids=tuple(self.ids[i] for i in rows),
            texts=tuple(self.texts[i] for i in rows),
            label_seqs=tuple(self.label_seqs[i] for i in rows),
            labels=self.labels,
            Y=self.Y[rows].tocsr(),
        )


def indicator_matrix(label_seqs: Sequence[Sequence[int]], n_labels: int) -> sp.csr_matrix:
    """CSR 0/1 matrix (int8) from label index sequences; duplicates count once."""
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
    def label_freq(self) -> np.ndarray:
        """Number of training documents carrying each label (task label order)."""
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

    @abstractmethod
    def load(self, data_dir: Path | None = None, seed: int = 0) -> Task:
        """Return the base task with the canonical (frequency) label order."""


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
    #: The input the method consumes; built-ins all take raw texts and own their featurisation.
    input: ClassVar[str] = "text"
    #: Why two fits under the same seed may differ, for a method that cannot be seeded (e.g. a
    #: library with its own unseeded random generator); empty for a reproducible method. The
    #: contract then reports its determinism check as SKIP with this reason instead of FAIL.
    nondeterministic: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {"small": {}, "paper": {}}

    def __init__(self, preset: str | None = None, **params: Any) -> None:
        merged = dict(self.defaults)
        if preset is not None:
            if preset not in self.presets:
                raise MlbenchError(
                    f"method {self.name!r} has no preset {preset!r}; choose from {', '.join(sorted(self.presets))}"
                )
            merged.update(self.presets[preset])
        unknown = sorted(set(params) - set(merged))
        if unknown:
            raise MlbenchError(
                f"method {self.name!r} has no parameter {', '.join(unknown)}; "
                f"known: {', '.join(sorted(merged))}"
            )
        merged.update(params)
        self.params: dict[str, Any] = merged
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


def as_binary_csr(pred: Any, n_rows: int, n_labels: int) -> sp.csr_matrix:
    """Validate and normalise a prediction to an int8 CSR 0/1 matrix."""
    m = sp.csr_matrix(pred)
    if m.shape != (n_rows, n_labels):
        raise MlbenchError(f"prediction has shape {m.shape}, expected {(n_rows, n_labels)}")
    m = m.astype(np.int8)
    m.data = (m.data != 0).astype(np.int8)
    m.eliminate_zeros()
    m.sort_indices()
    return m
