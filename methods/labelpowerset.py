"""``lp``: label powerset, scikit-multilearn-ng's LabelPowerset with a linear SVM on TF-IDF features.

Every label combination seen in training is one class of a single multi-class
problem (one-vs-rest linear SVMs), so a prediction is always a combination
seen in training.
"""

from __future__ import annotations

from typing import Any

from mlbench.methods.classics import C_SPEC, CLASSIC_SPECS, CLASSIC_TFIDF, ClassicMethod, linear_svc
from mlbench.methods.tfidf import suggest_tfidf


class LabelPowerset(ClassicMethod):
    name = "lp"
    description = "Label powerset: one class per training label set, linear SVM on TF-IDF (scikit-multilearn-ng)"
    defaults = {**CLASSIC_TFIDF, "C": 1.0}  # LinearSVC's default C
    param_specs = {**CLASSIC_SPECS, "C": C_SPEC}

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {**suggest_tfidf(trial), "C": trial.suggest_float("C", 0.05, 20.0, log=True)}

    def _estimator(self, seed: int, n_labels: int) -> Any:
        from skmultilearn.problem_transform import LabelPowerset as _LabelPowerset

        return _LabelPowerset(classifier=linear_svc(self.params["C"], seed), require_dense=[False, True])
