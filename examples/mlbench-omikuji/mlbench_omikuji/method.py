"""``omikuji``: Parabel/Bonsai partitioned label trees (the FastXML family) through the omikuji library.

The features are the same TF-IDF as mlbench's ``br`` (``mlbench.methods.linear``), so the two methods
differ only in the learner. Omikuji trains from a file in the Extreme Classification Repository format
(``l1,l2 f:v f:v ...`` under an ``n_docs n_features n_labels`` header); the method writes one into a
temporary folder, trains, and keeps the model in memory. Label ids are the task's column indices, so
the predicted scores land in the task's label order without a mapping.

Omikuji ranks labels by a score in (0, 1]; a document gets every label whose score reaches
``threshold``, and at least its ``min_labels`` best-scored ones (every Reuters document has a label).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp

from mlbench.api import FEATURES, TEXT, FitContext, Method, MlbenchError, Param, Split, as_binary_csr
from mlbench.methods.features import split_features
from mlbench.methods.tfidf import TFIDF_DEFAULTS, TFIDF_SPECS, suggest_tfidf

#: Omikuji's own hyperparameters, with the library's defaults (Parabel's published settings).
TREE_DEFAULTS: dict[str, Any] = {
    "n_trees": 3,
    "min_branch_size": 100,  # a node with fewer labels becomes a leaf (one classifier per label)
    "max_depth": 20,
    "cluster_k": 2,  # 2 and balanced: Parabel; e.g. 100 and unbalanced with max_depth 3: Bonsai
    "cluster_balanced": True,
    "centroid_threshold": 0.0,
    "loss": "hinge",  # squared hinge ("hinge") or logistic ("log") node classifiers
    "linear_c": 1.0,
    "linear_eps": 0.1,
    "linear_max_iter": 20,
    "linear_weight_threshold": 0.1,
}


@contextmanager
def _quiet_native_output() -> Iterator[None]:
    """Keep the library's log lines and progress bars (written by Rust to fds 1 and 2) off the terminal.

    They would interleave with mlbench's progress bars and summary table. They go to a temporary
    file instead, whose last lines join the error message when the call fails.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
        except Exception as exc:
            sink.seek(0)
            lines = [ln for ln in sink.read().decode(errors="replace").replace("\r", "\n").splitlines() if ln.strip()]
            tail = " | ".join(lines[-3:])
            raise MlbenchError(f"omikuji: {type(exc).__name__}: {exc}" + (f" (omikuji said: {tail})" if tail else "")) from exc


def write_xc_file(path: Path, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
    """Write documents in the Extreme Classification Repository format that omikuji reads.

    A document without features (an empty text) is a line with only its labels; one without labels
    starts with the space that separates the (empty) label list from its features.
    """
    X, Y = X.tocsr(), Y.tocsr()
    X.sort_indices()
    with open(path, "w", encoding="ascii") as f:
        f.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
        for i in range(X.shape[0]):
            labels = ",".join(map(str, Y.indices[Y.indptr[i] : Y.indptr[i + 1]].tolist()))
            lo, hi = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j}:{v:.7g}" for j, v in zip(X.indices[lo:hi].tolist(), X.data[lo:hi].tolist()))
            f.write(labels + (" " + feats if feats else "") + "\n")


def _import_omikuji() -> Any:
    try:
        import omikuji
    except ImportError as exc:
        raise MlbenchError(f"omikuji: the omikuji library is missing ({exc}); pip install 'omikuji>=0.5,<0.6'") from exc
    return omikuji


# Runs in a child process: a Rust panic inside omikuji aborts its process, and must not take
# mlbench (a tuning study, a benchmark of many runs) down with it.
_TRAIN_SCRIPT = """
import json, sys
import omikuji
args = json.loads(sys.argv[1])
hp = omikuji.Model.default_hyper_param()
for key, value in args["fields"].items():
    if key == "linear_loss_type":
        value = (omikuji.LossType.HINGE if value == "hinge" else omikuji.LossType.LOG).value
    setattr(hp, key, value)
model = omikuji.Model.train_on_data(args["data"], hp, args["n_threads"])
model.save(args["out"])
"""


def _train_isolated(data: Path, fields: dict[str, Any], n_threads: int, out: Path) -> Any:
    """Train in a child process, which saves the model to ``out``; load it here.

    The child's log lines and progress bars go to a file whose last lines explain a failure.
    """
    omikuji = _import_omikuji()

    args = json.dumps({"data": str(data), "fields": fields, "n_threads": n_threads, "out": str(out)})
    log_path = out.with_suffix(".log")
    with open(log_path, "wb") as log_file:
        proc = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, args], stdout=log_file, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        text = log_path.read_bytes()[-20000:].decode(errors="replace").replace("\r", "\n")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip()[:1].isdigit()]
        panic = next((i for i, ln in enumerate(lines) if "panicked at" in ln), None)
        if panic is not None and panic + 1 < len(lines):
            why = f"Rust panic: {lines[panic + 1]}"
        else:
            why = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else "no output")
        raise MlbenchError(f"omikuji training failed (exit status {proc.returncode}): {why}")
    with _quiet_native_output():
        return omikuji.Model.load(str(out))


class Omikuji(Method):
    name = "omikuji"
    description = "Parabel/Bonsai label trees (FastXML family) via omikuji, on TF-IDF features"
    inputs = frozenset({TEXT, FEATURES})  # a feature task's own matrix, scaled as the linear methods scale it
    # TF-IDF as br uses it (unigrams, raw tf: best on Reuters validation for both); the tree
    # settings are Parabel's; threshold 0.3 measured best on Reuters validation (0.2-0.6 tried).
    defaults = {
        **TFIDF_DEFAULTS,
        "max_ngram": 1,
        "sublinear_tf": False,
        **TREE_DEFAULTS,
        "beam_size": 10,
        "top_k": 20,  # labels scored per document; the others score 0
        "threshold": 0.3,
        "min_labels": 1,  # always predict the best-scored label(s), whatever their score
        "n_threads": 1,  # 0: every core. More threads do not change the result's nature (see README)
    }
    # Checked by mlbench before any data is read; the cross-parameter rule (min_branch_size >= cluster_k)
    # stays in hyper_param_fields.
    param_specs = {
        **TFIDF_SPECS,
        "n_trees": Param("int", low=1),
        "min_branch_size": Param("int", low=2),
        "max_depth": Param("int", low=1),
        "cluster_k": Param("int", low=2),
        "cluster_balanced": Param("bool"),
        "centroid_threshold": Param("float", low=0),
        "loss": Param("choice", choices=("hinge", "log")),
        "linear_c": Param("float", low=0, low_open=True),
        "linear_eps": Param("float", low=0, low_open=True),
        "linear_max_iter": Param("int", low=1),
        "linear_weight_threshold": Param("float", low=0),
        "beam_size": Param("int", low=1),
        "top_k": Param("int", low=1),
        "threshold": Param("float", low=0, high=1),
        "min_labels": Param("int", low=0),
        "n_threads": Param("int", low=0),
    }
    # Parabel's settings are cheap on a CPU (seconds on Reuters): both presets keep them.
    presets = {"small": {}, "paper": {}}
    nondeterministic = (
        "omikuji takes no seed: its linear solver visits examples in an order drawn from an unseeded "
        "generator (Rust's thread_rng), so two fits differ slightly, even on one thread"
    )

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            **suggest_tfidf(trial),
            "n_trees": trial.suggest_int("n_trees", 1, 5),
            "min_branch_size": trial.suggest_categorical("min_branch_size", [16, 32, 100]),  # >= cluster_k
            "cluster_k": trial.suggest_categorical("cluster_k", [2, 4, 16]),
            "linear_c": trial.suggest_float("linear_c", 0.25, 8.0, log=True),
            "linear_weight_threshold": trial.suggest_float("linear_weight_threshold", 0.0, 0.2),
            "threshold": trial.suggest_float("threshold", 0.15, 0.6),
        }

    # ------------------------------------------------------------------ training

    def __init__(self, preset: str | None = None, **params: Any) -> None:
        super().__init__(preset, **params)
        self.hyper_param_fields()  # bad values fail here, before any data is loaded

    def hyper_param_fields(self) -> dict[str, Any]:
        """Omikuji's hyperparameter struct as plain fields, after checks that keep its Rust code from aborting.

        A node is split when it holds at least ``min_branch_size`` labels, into ``cluster_k`` clusters,
        and clustering fewer labels than clusters panics (which aborts the process): hence
        ``min_branch_size >= cluster_k``.
        """
        p = self.params
        problems = []
        if p["loss"] not in ("hinge", "log"):
            problems.append(f"loss must be 'hinge' or 'log', got {p['loss']!r}")
        if int(p["cluster_k"]) < 2:
            problems.append("cluster_k must be at least 2")
        if int(p["min_branch_size"]) < int(p["cluster_k"]):
            problems.append(f"min_branch_size ({p['min_branch_size']}) must be at least cluster_k ({p['cluster_k']})")
        for key in ("n_trees", "max_depth", "linear_max_iter", "beam_size", "top_k"):
            if int(p[key]) < 1:
                problems.append(f"{key} must be at least 1")
        for key in ("linear_c", "linear_eps"):
            if not float(p[key]) > 0:
                problems.append(f"{key} must be positive")
        for key in ("linear_weight_threshold", "centroid_threshold", "min_labels", "n_threads"):
            if float(p[key]) < 0:
                problems.append(f"{key} must not be negative")
        if problems:
            raise MlbenchError("omikuji: " + "; ".join(problems))
        return {
            "n_trees": int(p["n_trees"]),
            "min_branch_size": int(p["min_branch_size"]),
            "max_depth": int(p["max_depth"]),
            "cluster_k": int(p["cluster_k"]),
            "cluster_balanced": bool(p["cluster_balanced"]),
            "centroid_threshold": float(p["centroid_threshold"]),
            "linear_loss_type": p["loss"],  # mapped to omikuji.LossType in the training process
            "linear_c": float(p["linear_c"]),
            "linear_eps": float(p["linear_eps"]),
            "linear_max_iter": int(p["linear_max_iter"]),
            "linear_weight_threshold": float(p["linear_weight_threshold"]),
        }

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> "Omikuji":
        from mlbench.metrics import micro_precision_recall_f1

        if train.Y.nnz == 0:
            raise MlbenchError("omikuji: the training split carries no label at all")
        fields = self.hyper_param_fields()
        feats = split_features(train, self.params)  # TF-IDF of the texts, or a feature task's own matrix
        self.featurizer_, X = feats.featurizer, feats.X
        self.n_labels_ = train.n_labels
        with tempfile.TemporaryDirectory(prefix="mlbench-omikuji-") as tmp:
            data = Path(tmp) / "train.txt"
            write_xc_file(data, X, train.Y)
            # omikuji takes no seed: see the README on determinism
            self.model_ = _train_isolated(data, fields, int(self.params["n_threads"]), Path(tmp) / "model")
        self.model_.init_prediction_thread_pool(int(self.params["n_threads"]))
        _, _, f1 = micro_precision_recall_f1(valid.Y, self.predict(valid))
        ctx.report(0, {"valid_micro_f1": f1})
        return self

    # ---------------------------------------------------------------- prediction

    def predict_scores(self, split: Split) -> np.ndarray:
        """Dense ``len(split) x n_labels`` scores; labels outside a document's top_k score 0."""
        if split.n_labels != self.n_labels_:
            raise MlbenchError(f"omikuji: model has {self.n_labels_} labels, split has {split.n_labels}")
        X = self.featurizer_(split).sorted_indices()
        n_features = self.model_.n_features
        beam, top_k = int(self.params["beam_size"]), int(self.params["top_k"])
        scores = np.zeros((X.shape[0], split.n_labels), dtype=np.float32)
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            pairs = [(j, v) for j, v in zip(X.indices[lo:hi].tolist(), X.data[lo:hi].tolist()) if j < n_features]
            for label, score in self.model_.predict(pairs, beam_size=beam, top_k=top_k):
                scores[i, label] = score
        return scores

    def predict(self, split: Split) -> sp.csr_matrix:
        return self.decide(self.predict_scores(split))

    def decide(self, scores: np.ndarray) -> sp.csr_matrix:
        """Scores to a 0/1 matrix: ``score >= threshold``, plus each row's ``min_labels`` best."""
        pred = scores >= float(self.params["threshold"])
        k = min(int(self.params["min_labels"]), scores.shape[1])
        if k > 0 and scores.size:
            # a stable sort breaks ties by column, i.e. in favour of the more frequent label
            best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            rows = np.repeat(np.arange(scores.shape[0]), k)
            keep = scores[rows, best.ravel()] > 0  # never a label the model did not rank at all
            pred[rows[keep], best.ravel()[keep]] = True
        return as_binary_csr(pred, scores.shape[0], scores.shape[1])

    # --------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """A folder: omikuji's own files under ``model/`` and the rest pickled in ``state.pkl``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with _quiet_native_output():
            self.model_.save(str(path / "model"))
        with open(path / "state.pkl", "wb") as f:
            pickle.dump({"params": self.params, "featurizer": self.featurizer_, "n_labels": self.n_labels_}, f)

    @classmethod
    def load(cls, path: Path) -> "Omikuji":
        omikuji = _import_omikuji()

        path = Path(path)
        # pickle: only load folders this process or a trusted run wrote
        with open(path / "state.pkl", "rb") as f:
            state = pickle.load(f)
        m = cls(**state["params"])
        m.featurizer_, m.n_labels_ = state["featurizer"], state["n_labels"]
        with _quiet_native_output():
            m.model_ = omikuji.Model.load(str(path / "model"))
        m.model_.init_prediction_thread_pool(int(m.params["n_threads"]))
        return m
