"""Shared parts of the linear methods (BR, PCC): TF-IDF features and per-label logistic regressions."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlbench.api import Param

#: Hyperparameters of the TF-IDF featurisation, shared by every linear method.
TFIDF_DEFAULTS: dict[str, Any] = {
    "max_ngram": 2,
    "min_df": 2,
    "max_features": 200_000,
    "sublinear_tf": True,
}


#: Types and ranges of :data:`TFIDF_DEFAULTS` (``max_features`` null: every term).
TFIDF_SPECS: dict[str, Param] = {
    "max_ngram": Param("int", low=1),
    "min_df": Param("int", low=1),
    "max_features": Param("int", low=1, none_ok=True),
    "sublinear_tf": Param("bool"),
}


def make_vectorizer(params: dict[str, Any]):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        lowercase=True,
        ngram_range=(1, int(params["max_ngram"])),
        min_df=int(params["min_df"]),
        max_features=params["max_features"],
        sublinear_tf=bool(params["sublinear_tf"]),
        dtype=np.float32,
    )


def suggest_tfidf(trial: Any) -> dict[str, Any]:
    """The TF-IDF part of a linear method's Optuna search space."""
    return {
        "max_ngram": trial.suggest_int("max_ngram", 1, 2),
        "min_df": trial.suggest_int("min_df", 1, 5),
        "sublinear_tf": trial.suggest_categorical("sublinear_tf", [True, False]),
    }


def fit_binary_lr(X, y: np.ndarray, C: float, class_weight: str | None, seed: int) -> tuple[np.ndarray, float]:
    """One logistic regression; returns (weights, bias) as plain arrays.

    A label whose training column is constant (never or always present, e.g.
    after trimming) has nothing to learn: it gets a zero weight vector and a
    bias that saturates the sigmoid at its constant value.
    """
    from sklearn.linear_model import LogisticRegression

    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        return np.zeros(X.shape[1], dtype=np.float32), (20.0 if positives else -20.0)
    clf = LogisticRegression(C=C, solver="liblinear", class_weight=class_weight, random_state=seed, max_iter=1000)
    clf.fit(X, y)
    return clf.coef_.ravel().astype(np.float32), float(clf.intercept_[0])


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))
