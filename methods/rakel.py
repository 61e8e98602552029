"""``rakel``: RAkEL-d (Tsoumakas and Vlahavas 2007), scikit-multilearn-ng's RakelD on TF-IDF features.

The label space is cut at random (seeded) into disjoint subsets of
``labelset_size`` labels; each subset is a label-powerset problem (one class
per label combination seen in training) solved by a linear SVM, and the
predicted combinations are put back together.
"""

from __future__ import annotations

from typing import Any

from mlbench.api import Param
from mlbench.methods.classics import C_SPEC, CLASSIC_SPECS, CLASSIC_TFIDF, ClassicMethod, linear_svc
from mlbench.methods.tfidf import suggest_tfidf


class RAkEL(ClassicMethod):
    name = "rakel"
    description = "RAkEL-d: label powersets of random disjoint label subsets, linear SVMs on TF-IDF (scikit-multilearn-ng)"
    # labelset_size 3 is the size the RAkEL paper recommends; C=1 is LinearSVC's default.
    defaults = {**CLASSIC_TFIDF, "labelset_size": 3, "C": 1.0}
    param_specs = {**CLASSIC_SPECS, "labelset_size": Param("int", low=1), "C": C_SPEC}

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            **suggest_tfidf(trial),
            "labelset_size": trial.suggest_int("labelset_size", 2, 8),
            "C": trial.suggest_float("C", 0.05, 20.0, log=True),
        }

    def _estimator(self, seed: int, n_labels: int) -> Any:
        from skmultilearn.ensemble import RakelD

        return RakelD(
            base_classifier=linear_svc(self.params["C"], seed),
            base_classifier_require_dense=[False, True],
            labelset_size=max(1, min(int(self.params["labelset_size"]), n_labels)),
        )
