"""A complete mlbench method in one file: ridge regression on TF-IDF, one output per label.

Try it:  mlbench check --plugin examples/minimal_plugin.py ridge
         mlbench run --plugin examples/minimal_plugin.py --method ridge --task reuters
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from mlbench.api import FitContext, Method, Param, Split, as_binary_csr


class Ridge(Method):
    name = "ridge"
    description = "Ridge regression on TF-IDF features, one output per label, thresholded"
    defaults = {"alpha": 1.0, "threshold": 0.3}
    param_specs = {
        "alpha": Param("float", low=0, low_open=True),
        "threshold": Param("float", low=0, high=1, low_open=True, high_open=True),
    }
    presets = {"small": {}, "paper": {}}  # nothing to scale

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "alpha": trial.suggest_float("alpha", 0.01, 10.0, log=True),
            "threshold": trial.suggest_float("threshold", 0.1, 0.6),
        }

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> "Ridge":
        # heavy imports inside fit keep `mlbench list` fast
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import Ridge as SkRidge

        from mlbench.metrics import micro_precision_recall_f1

        self.vectorizer_ = TfidfVectorizer(sublinear_tf=True)
        X = self.vectorizer_.fit_transform(train.texts)
        self.model_ = SkRidge(alpha=self.params["alpha"]).fit(X, train.Y.toarray())
        _, _, f1 = micro_precision_recall_f1(valid.Y, self.predict(valid))
        ctx.report(0, {"valid_micro_f1": f1})  # once per epoch; a closed-form fit has one
        return self

    def predict_scores(self, split: Split) -> np.ndarray:
        scores = self.model_.predict(self.vectorizer_.transform(split.texts))
        return np.asarray(scores).reshape(len(split), split.n_labels)

    def predict(self, split: Split) -> sp.csr_matrix:
        chosen = self.predict_scores(split) >= self.params["threshold"]
        return as_binary_csr(chosen, len(split), split.n_labels)
