"""The TF-IDF settings shared by the methods that read TF-IDF vectors (BR, PCC, the classics, plugins).

Their defaults, their types and ranges, and their part of an Optuna search space. They live apart from the
featurisation code (:mod:`mlbench.methods.features`, which the neural methods also import for feature tasks)
and from the logistic solver (:mod:`mlbench.methods.linear`, which only BR and PCC call), so that a change
to either one moves the code digest of the methods that run it and of no other.
"""

from __future__ import annotations

from typing import Any

from mlbench.api import Param

#: Hyperparameters of the TF-IDF featurisation; each method may override them (BR, PCC and the classics
#: read unigrams).
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


def suggest_tfidf(trial: Any) -> dict[str, Any]:
    """The featurisation part of a TF-IDF method's Optuna search space."""
    return {
        "max_ngram": trial.suggest_int("max_ngram", 1, 2),
        "min_df": trial.suggest_int("min_df", 1, 5),
        "sublinear_tf": trial.suggest_categorical("sublinear_tf", [True, False]),
    }
