"""``mlknn``: ML-kNN (Zhang and Zhou 2007), scikit-multilearn-ng's implementation on TF-IDF features.

For each label, the number of the k nearest training documents carrying it is
turned into a posterior by Bayes' rule with smoothed counts (``s``); a label is
predicted when its posterior reaches ``threshold``. Neighbours are by cosine
distance on the TF-IDF rows (and on a sparse feature task's rows), by Euclidean
distance on a dense feature task's standardised rows (as ML-kNN's paper measures).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from mlbench.api import Param, Split, as_binary_csr
from mlbench.methods.classics import CLASSIC_SPECS, CLASSIC_TFIDF, ClassicMethod
from mlbench.methods.tfidf import suggest_tfidf


class MLkNN(ClassicMethod):
    name = "mlknn"
    description = "ML-kNN: k nearest neighbours with per-label Bayesian posteriors on TF-IDF (scikit-multilearn-ng)"
    # k and s are the library's and the paper's defaults (k=10, Laplace smoothing s=1).
    defaults = {**CLASSIC_TFIDF, "k": 10, "s": 1.0, "threshold": 0.5}
    param_specs = {**CLASSIC_SPECS, "k": Param("int", low=1), "s": Param("float", low=0, low_open=True),
                   "threshold": Param("float", low=0, high=1, low_open=True, high_open=True)}

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            **suggest_tfidf(trial),
            "k": trial.suggest_int("k", 3, 40),
            "s": trial.suggest_float("s", 0.1, 3.0, log=True),
            "threshold": trial.suggest_float("threshold", 0.2, 0.7),
        }

    def _estimator(self, seed: int, n_labels: int) -> Any:
        from skmultilearn.adapt import MLkNN as _MLkNN

        from sklearn.neighbors import NearestNeighbors

        k = int(self.params["k"])
        model = _MLkNN(k=k, s=float(self.params["s"]))
        # The library's neighbour search is Euclidean: an empty document (a zero TF-IDF row, which Reuters
        # has) is then at distance 1 from every document, nearer than any document sharing less than half
        # its weight, so it is everybody's neighbour (test micro-F1 0.24 on Reuters). Cosine distance puts
        # it with the unrelated documents (distance 1) where it belongs.
        model.knn_ = NearestNeighbors(n_neighbors=k, metric="euclidean" if self.dense_features_ else "cosine")
        return model

    def fit(self, train, valid, ctx):
        if len(train) <= int(self.params["k"]):
            from mlbench.api import MlbenchError

            raise MlbenchError(f"mlknn: k={self.params['k']} needs more than k training documents, got {len(train)}")
        return super().fit(train, valid, ctx)

    def predict_scores(self, split: Split) -> np.ndarray:
        if len(split) == 0:
            return np.zeros((0, split.n_labels), dtype=np.float32)
        proba = self.model_.predict_proba(self._features(split))
        return np.asarray(proba.todense() if sp.issparse(proba) else proba, dtype=np.float32)

    def predict(self, split: Split) -> sp.csr_matrix:
        # thresholding the posteriors ourselves makes the threshold a tunable parameter
        return as_binary_csr(self.predict_scores(split) >= float(self.params["threshold"]), len(split), split.n_labels)
