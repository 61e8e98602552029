"""Paired bootstrap confidence intervals for the difference between two systems.

Both systems predicted the same test documents, so documents are resampled
together (the same bootstrap sample for both), which removes the variance that
comes from the documents themselves (Koehn 2004; Berg-Kirkpatrick et al. 2012).

Corpus-level metrics are rebuilt from per-document sufficient statistics:
micro-F1 from per-document true-positive, false-positive and false-negative
counts, subset 0/1 loss from per-document exact-match indicators. A bootstrap
replicate is then a weighted sum, and all replicates are one matrix product of
multinomial resampling counts with those statistics: no Python loop over
replicates or documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp

#: Replicates handled per matrix product; bounds memory at about chunk x n_docs counts.
_CHUNK = 200


@dataclass(frozen=True)
class BootstrapResult:
    metric: str
    a: float  # metric of system A on the full test set
    b: float
    diff: float  # a - b
    low: float  # confidence interval of a - b
    high: float
    p_value: float  # two-sided: how often the resampled difference crosses zero
    n_resamples: int
    confidence: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def document_counts(y_true: sp.spmatrix, y_pred: sp.spmatrix) -> np.ndarray:
    """``n x 4`` per-document statistics: tp, fp, fn, exact match (0/1)."""
    t = sp.csr_matrix(y_true, dtype=np.int32)
    p = sp.csr_matrix(y_pred, dtype=np.int32)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    tp = np.asarray(t.multiply(p).sum(axis=1)).ravel()
    n_true = np.diff(t.indptr)
    n_pred = np.diff(p.indptr)
    fp = n_pred - tp
    fn = n_true - tp
    exact = (fp == 0) & (fn == 0)
    return np.column_stack([tp, fp, fn, exact]).astype(np.float64)


def _micro_f1(sums: np.ndarray) -> np.ndarray:
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)


def _zero_one(sums: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    return 1.0 - sums[..., 3] / n


METRICS = ("micro_f1", "subset_01_loss")


def _metric(name: str, sums: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    if name == "micro_f1":
        return _micro_f1(sums)
    if name == "subset_01_loss":
        return _zero_one(sums, n)
    raise ValueError(f"unknown bootstrap metric {name!r}; choose from {', '.join(METRICS)}")


def resample_weights(n_docs: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_resamples x n_docs`` counts: how often each document is drawn in each replicate."""
    return rng.multinomial(n_docs, np.full(n_docs, 1.0 / n_docs), size=n_resamples).astype(np.float64)


def paired_bootstrap(
    y_true: sp.spmatrix,
    pred_a: sp.spmatrix | Sequence[sp.spmatrix],
    pred_b: sp.spmatrix | Sequence[sp.spmatrix],
    metrics: tuple[str, ...] = METRICS,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, BootstrapResult]:
    """Percentile intervals of metric(A) - metric(B) over paired resamples of documents.

    Either side may be several prediction matrices of the same documents
    (one per training seed): its metric is then the mean over them, in the
    full test set and in every replicate alike, so the interval covers the
    difference of the seed means and reflects the documents' variance only.
    """
    side_a = [pred_a] if sp.issparse(pred_a) or isinstance(pred_a, np.ndarray) else list(pred_a)
    side_b = [pred_b] if sp.issparse(pred_b) or isinstance(pred_b, np.ndarray) else list(pred_b)
    if not side_a or not side_b:
        raise ValueError("each side needs at least one prediction matrix")
    counts = [document_counts(y_true, p) for p in side_a + side_b]
    n = counts[0].shape[0]
    if n == 0:
        raise ValueError("cannot bootstrap an empty test set")
    ka = len(side_a)

    def side_means(m: str, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # sums: ... x 4 * (ka + kb), four statistics per prediction matrix
        per = np.stack([_metric(m, sums[..., 4 * i : 4 * i + 4], n) for i in range(len(counts))], axis=-1)
        return per[..., :ka].mean(axis=-1), per[..., ka:].mean(axis=-1)

    rng = np.random.default_rng(seed)
    stacked = np.concatenate(counts, axis=1)  # one product serves every matrix of both systems
    diffs = {m: np.empty(n_resamples) for m in metrics}
    done = 0
    while done < n_resamples:
        k = min(_CHUNK, n_resamples - done)
        sums = resample_weights(n, k, rng) @ stacked
        for m in metrics:
            ra, rb = side_means(m, sums)
            diffs[m][done : done + k] = ra - rb
        done += k
    alpha = (1.0 - confidence) / 2.0
    total = stacked.sum(axis=0)
    out = {}
    for m in metrics:
        a, b = (float(v) for v in side_means(m, total))
        d = diffs[m]
        low, high = np.quantile(d, [alpha, 1.0 - alpha])
        # two-sided bootstrap p-value: twice the smaller tail beyond zero
        p = min(1.0, 2.0 * min(np.mean(d <= 0), np.mean(d >= 0)))
        out[m] = BootstrapResult(m, a, b, a - b, float(low), float(high), float(p), n_resamples, confidence)
    return out
