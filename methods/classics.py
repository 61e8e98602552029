"""Shared parts of the multi-label classics from scikit-multilearn-ng (ML-kNN, RAkEL, LabelPowerset).

Each method is a scikit-multilearn-ng estimator on the TF-IDF features of the
linear methods, through the same cache (:func:`mlbench.methods.features.split_features`):
a tuning trial that changes only the estimator's settings does not featurise
the corpus again. On a feature task the estimator reads the task's own matrix,
scaled as the linear methods scale it. Subclasses say how to build the estimator
and whether it scores.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mlbench.api import FEATURES, TEXT, FitContext, Method, Param, Split, as_binary_csr
from mlbench.methods.features import split_features
from mlbench.methods.tfidf import TFIDF_DEFAULTS, TFIDF_SPECS

#: Unigram TF-IDF (BR's measured choice on Reuters); sublinear tf kept, as it suits distances and margins.
CLASSIC_TFIDF = {**TFIDF_DEFAULTS, "max_ngram": 1}
#: Types and ranges of the parameters every classic shares.
CLASSIC_SPECS: dict[str, Param] = dict(TFIDF_SPECS)
#: LinearSVC's C (RAkEL, LabelPowerset).
C_SPEC = Param("float", low=0, low_open=True)

try:  # scikit-learn is a dependency; the import is here so the wrapper below can subclass it
    from sklearn.svm import LinearSVC as _LinearSVC
except ImportError:  # pragma: no cover
    _LinearSVC = object  # type: ignore[misc,assignment]


class ConstantSafeLinearSVC(_LinearSVC):  # type: ignore[misc,valid-type]
    """A LinearSVC that accepts a single class (it then predicts it).

    A label-powerset problem of a RAkEL partition whose labels are never seen
    in training (e.g. after trimming) has one class, the empty set, which
    LinearSVC refuses.
    """

    def fit(self, X, y, sample_weight=None):
        classes = np.unique(np.asarray(y))
        if len(classes) < 2:
            self.constant_ = classes[0] if len(classes) else 0
            self.classes_ = classes
            return self
        self.constant_ = None
        return super().fit(X, y, sample_weight=sample_weight)

    def predict(self, X):
        if getattr(self, "constant_", None) is not None:
            return np.full(X.shape[0], self.constant_)
        return super().predict(X)


def linear_svc(C: float, seed: int) -> ConstantSafeLinearSVC:
    return ConstantSafeLinearSVC(C=float(C), random_state=seed, max_iter=5000)


class ClassicMethod(Method):
    """Fit/predict/save around one scikit-multilearn-ng estimator on TF-IDF features or a task's own features."""

    inputs = frozenset({TEXT, FEATURES})
    presets = {"small": {}, "paper": {}}  # no size preset: nothing here grows with a preset

    def _estimator(self, seed: int, n_labels: int) -> Any:
        raise NotImplementedError

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> "ClassicMethod":
        from mlbench.metrics import micro_precision_recall_f1

        # scikit-multilearn-ng draws RAkEL's partitions with the ``random`` module: seed it here.
        random.seed(ctx.seed)
        np.random.seed(ctx.seed)
        features = split_features(train, self.params)
        self.featurizer_, X = features.featurizer, features.X
        self.dense_features_ = getattr(features.featurizer, "mean", None) is not None  # a dense feature task
        self.model_ = self._estimator(ctx.seed, train.n_labels)
        self.model_.fit(X, train.Y.astype(np.int64).tocsr())
        self.n_labels_ = train.n_labels
        _, _, f1 = micro_precision_recall_f1(valid.Y, self.predict(valid))
        ctx.report(0, {"valid_micro_f1": f1})
        return self

    def _features(self, split: Split) -> sp.csr_matrix:
        return self.featurizer_(split)

    def predict(self, split: Split) -> sp.csr_matrix:
        if len(split) == 0:
            return sp.csr_matrix((0, split.n_labels), dtype=np.int8)
        return as_binary_csr(self.model_.predict(self._features(split)), len(split), split.n_labels)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            pickle.dump({"params": self.params, "featurizer": self.featurizer_, "model": self.model_,
                         "n_labels": self.n_labels_}, f)

    @classmethod
    def load(cls, path: Path) -> "ClassicMethod":
        # pickle: only load files this process or a trusted run wrote
        with open(path, "rb") as f:
            state = pickle.load(f)
        m = cls(**state["params"])
        m.featurizer_, m.model_, m.n_labels_ = state["featurizer"], state["model"], state["n_labels"]
        return m
