"""Multi-label metrics on sparse 0/1 indicator matrices.

Every set-based metric is derived from one pass of sparse arithmetic: the
elementwise product of the true and predicted CSR matrices gives the true
positives, and counting stored entries per column (per label) or per row (per
document) gives tp/fp/fn without ever building a dense ``n x L`` array. On
RCV1-sized inputs this is what makes evaluation after every epoch affordable.

Conventions, all matching scikit-learn with ``zero_division=0``:

* a ratio whose denominator is 0 is 0 (precision with nothing predicted, recall
  with nothing true);
* F1 is ``2 tp / (2 tp + fp + fn)``, so a label (macro-F1) or a document
  (example F1) with no true and no predicted positives scores 0, not 1;
* macro-F1 averages over *all* columns of the task's label list, including
  labels absent from both the truth and the prediction.

Ranking metrics (P@k, nDCG@k) take a dense ``n x L`` score matrix. Documents
without any true label contribute 0 to both and still count in the mean (as in
scikit-learn's ``ndcg_score``), so every method is averaged over the same
documents. Equal scores rank the lower column (the more frequent label, in a
task's label order) first, everywhere, so P@k and nDCG@k are reproducible from
stored scores and :func:`evaluate`'s single top-``max(ks)`` selection agrees
with a separate call at any smaller ``k``.

One-error and ranking loss (the label-ranking measures of the MULAN
benchmarks, as MULAN computes them) count only the documents they can judge:
one-error (the top-ranked label is not a true one) the documents with a true
label, ranking loss (the share of (true, false) label pairs whose false label
scores at least as high) the documents with a true and a false label. A tie
counts against the method in both.

HF and LF (:func:`frequency_groups`): among the labels with at least one
positive in the evaluated documents, the 10% most and the 10% least frequent
in training. Restricting to labels with positives keeps the paper's meaning
(frequent vs rare labels) while making LF measurable on a small test set, where
the rarest training labels often have no test document at all (every method
would score 0 on them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

#: Anything :class:`scipy.sparse.csr_matrix` accepts: sparse matrices/arrays, dense 0/1 arrays, nested lists.
IndicatorLike = Union[sp.spmatrix, sp.sparray, np.ndarray, Sequence[Sequence[float]]]

__all__ = [
    "IndicatorLike",
    "frequency_groups",
    "hamming_loss",
    "subset_zero_one_loss",
    "micro_precision_recall_f1",
    "macro_f1",
    "example_f1",
    "per_document_f1",
    "precision_at_k",
    "ndcg_at_k",
    "best_micro_f1_threshold",
    "ranked_columns",
    "evaluate",
]


# ----------------------------------------------------------------- input checks


def _as_indicator(y: IndicatorLike, name: str) -> sp.csr_matrix:
    """Canonical CSR whose stored entries are exactly the positives.

    Inputs are never modified: the caller's matrix is copied only when it has
    duplicates or explicit zeros, so the common case (``as_binary_csr`` output)
    costs one O(nnz) scan and no copy.
    """
    if not sp.issparse(y) and np.ndim(y) != 2:
        raise ValueError(f"{name} must be a 2-D n_docs x n_labels indicator matrix, got {np.ndim(y)} dimension(s)")
    # A csr_matrix is used as is so that scipy's cached canonical-format flag survives between calls.
    m = y if isinstance(y, sp.csr_matrix) else sp.csr_matrix(y)
    if not m.has_canonical_format:
        # Summing duplicates yields the value scipy itself gives the matrix; a label stored
        # twice becomes 2 and fails the 0/1 check instead of being counted twice below.
        m = m.copy()
        m.sum_duplicates()
    data = m.data
    if data.size and not np.all((data == 0) | (data == 1)):
        # Scores or {-1, 1} labels passed by mistake would otherwise give a silently wrong number.
        raise ValueError(f"{name} must hold only 0/1 values (got e.g. {data[(data != 0) & (data != 1)][0]!r})")
    if data.size and not np.all(data):
        m = m.copy()
        m.eliminate_zeros()
    return m


def _check_pair(y_true: IndicatorLike, y_pred: IndicatorLike) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    t = _as_indicator(y_true, "y_true")
    p = _as_indicator(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"cannot evaluate an empty problem of shape {t.shape}")
    return t, p


# ---------------------------------------------------------------- the one count


@dataclass(frozen=True)
class _Confusion:
    """tp/fp/fn per label (``label_*``, length L) and per document (``doc_*``, length n)."""

    label_tp: np.ndarray
    label_fp: np.ndarray
    label_fn: np.ndarray
    doc_tp: np.ndarray
    doc_fp: np.ndarray
    doc_fn: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.doc_tp), len(self.label_tp)


def _confusion(y_true: IndicatorLike, y_pred: IndicatorLike) -> _Confusion:
    """The single source of counts every set-based metric is computed from."""
    t, p = _check_pair(y_true, y_pred)
    n_labels = t.shape[1]
    # Both inputs store exactly their positives as 1s, so the product stores exactly the
    # hits (all 1s, no explicit zeros) and its structure alone gives the counts.
    hits = sp.csr_matrix(t.multiply(p))
    # Column counts via bincount on the index arrays: O(nnz), no sparse reduction machinery.
    label_true = np.bincount(t.indices, minlength=n_labels).astype(np.int64)
    label_pred = np.bincount(p.indices, minlength=n_labels).astype(np.int64)
    label_tp = np.bincount(hits.indices, minlength=n_labels).astype(np.int64)
    # Row counts are the differences of the row pointers.
    doc_true = np.diff(t.indptr).astype(np.int64)
    doc_pred = np.diff(p.indptr).astype(np.int64)
    doc_tp = np.diff(hits.indptr).astype(np.int64)
    return _Confusion(
        label_tp=label_tp,
        label_fp=label_pred - label_tp,
        label_fn=label_true - label_tp,
        doc_tp=doc_tp,
        doc_fp=doc_pred - doc_tp,
        doc_fn=doc_true - doc_tp,
    )


def _ratio(num: npt.ArrayLike, den: npt.ArrayLike) -> np.ndarray:
    """Elementwise ``num / den`` with 0 where ``den == 0`` (zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _f1(tp: np.ndarray | int, fp: np.ndarray | int, fn: np.ndarray | int) -> np.ndarray:
    # The count form avoids the 0/0 of 2PR/(P+R) and equals scikit-learn's own formula.
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _micro(c: _Confusion, cols: np.ndarray | None = None) -> tuple[float, float, float]:
    tp, fp, fn = c.label_tp, c.label_fp, c.label_fn
    if cols is not None:
        tp, fp, fn = tp[cols], fp[cols], fn[cols]
    tp_s, fp_s, fn_s = int(tp.sum()), int(fp.sum()), int(fn.sum())
    precision = float(_ratio(tp_s, tp_s + fp_s))
    recall = float(_ratio(tp_s, tp_s + fn_s))
    return precision, recall, float(_f1(tp_s, fp_s, fn_s))


def _macro_f1(c: _Confusion, cols: np.ndarray | None = None) -> float:
    f1 = _f1(c.label_tp, c.label_fp, c.label_fn)
    if cols is not None:
        f1 = f1[cols]
    return float(f1.mean())


def _hamming(c: _Confusion) -> float:
    n, n_labels = c.shape
    return float((int(c.label_fp.sum()) + int(c.label_fn.sum())) / (n * n_labels))


def _subset01(c: _Confusion) -> float:
    return float(np.mean((c.doc_fp + c.doc_fn) > 0))


# ------------------------------------------------------------- set-based metrics


def hamming_loss(y_true: IndicatorLike, y_pred: IndicatorLike) -> float:
    """Fraction of the ``n x L`` label slots that are wrong."""
    return _hamming(_confusion(y_true, y_pred))


def subset_zero_one_loss(y_true: IndicatorLike, y_pred: IndicatorLike) -> float:
    """Fraction of documents whose predicted label set is not exactly the true one."""
    return _subset01(_confusion(y_true, y_pred))


def micro_precision_recall_f1(y_true: IndicatorLike, y_pred: IndicatorLike) -> tuple[float, float, float]:
    """Micro-averaged precision, recall and F1 (counts pooled over all labels)."""
    return _micro(_confusion(y_true, y_pred))


def macro_f1(y_true: IndicatorLike, y_pred: IndicatorLike) -> float:
    """Unweighted mean of per-label F1 over all L labels (a label never true nor predicted scores 0)."""
    return _macro_f1(_confusion(y_true, y_pred))


def per_document_f1(y_true: IndicatorLike, y_pred: IndicatorLike) -> np.ndarray:
    """F1 of each document's predicted set against its true set (float64, length n).

    ``2 |T ∩ P| / (|T| + |P|)``, and 0 when both sets are empty. Cheap enough to
    serve as a per-sequence reward during RL fine-tuning.
    """
    c = _confusion(y_true, y_pred)
    return _f1(c.doc_tp, c.doc_fp, c.doc_fn)


def example_f1(y_true: IndicatorLike, y_pred: IndicatorLike) -> float:
    """Mean of :func:`per_document_f1`; equals scikit-learn's ``f1_score(average="samples", zero_division=0)``."""
    return float(per_document_f1(y_true, y_pred).mean())


def frequency_groups(
    label_freq: np.ndarray, fraction: float = 0.1, eligible: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the high-frequency and low-frequency labels.

    Labels are ranked by descending ``label_freq`` with ties kept in column
    order (a stable sort), which is exactly the task's own label order. HF is
    the first ``ceil(fraction * L)`` of that ranking and LF the last as many, so
    for a task HF is columns ``0..m-1`` and LF the last ``m`` columns. Both are
    returned sorted ascending; they overlap when ``fraction > 0.5``.

    ``eligible`` (a boolean mask over columns) ranks only those columns, and
    ``L`` is their number: :func:`evaluate` passes the labels that have a
    positive among the evaluated documents. No eligible column gives two empty
    groups.
    """
    freq = np.asarray(label_freq)
    if freq.ndim != 1:
        raise ValueError(f"label_freq must be 1-D, got shape {freq.shape}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    columns = np.arange(len(freq))
    if eligible is not None:
        mask = np.asarray(eligible, dtype=bool)
        if mask.shape != freq.shape:
            raise ValueError(f"eligible has shape {mask.shape}, expected {freq.shape}")
        columns = columns[mask]
    # Rounding first stops float noise from adding a label (0.1 * 30 == 3.0000000000000004).
    m = math.ceil(round(fraction * len(columns), 9))
    # Negated as float: negating unsigned counts would wrap around.
    ranking = columns[np.argsort(-freq[columns].astype(np.float64), kind="stable")]
    return np.sort(ranking[:m]), np.sort(ranking[len(columns) - m :])


# --------------------------------------------------------------- ranking metrics


#: Score entries per argpartition call in the ranking metrics (4 MiB of int64 indices).
_RANK_BLOCK_ELEMENTS = 1 << 19


def _top_columns(s: np.ndarray, depth: int) -> np.ndarray:
    """Each row's ``depth`` best columns, best first; equal scores rank the lower column first.

    ``argpartition`` finds each row's ``depth``-th largest score ``v`` in O(L); the
    columns scoring above ``v`` are all in, and the remaining places go to the
    lowest-index columns scoring exactly ``v``. The chosen columns (taken in column
    order) are then sorted by score with a stable sort, so ties keep column order.
    Measured against a full stable ``argsort`` per row, this keeps the selection's
    O(L) cost on wide label sets.
    """
    n, n_labels = s.shape
    if depth < n_labels:
        part = np.argpartition(s, n_labels - depth, axis=1)
        kth = np.take_along_axis(s, part[:, n_labels - depth : n_labels - depth + 1], axis=1)
        above = s > kth
        tied = s == kth
        need = depth - above.sum(axis=1, keepdims=True)
        chosen = above | (tied & (np.cumsum(tied, axis=1) <= need))
        cols = np.nonzero(chosen)[1].reshape(n, depth)
    else:
        cols = np.broadcast_to(np.arange(n_labels, dtype=np.int64), (n, n_labels))
    vals = np.take_along_axis(s, cols, axis=1)
    # Descending by score, ties by ascending column, for any real dtype (no negation, which
    # wraps unsigned integers): a stable ascending sort of the column-reversed row, reversed.
    order = np.argsort(vals[:, ::-1], axis=1, kind="stable")[:, ::-1]
    return np.take_along_axis(cols[:, ::-1], order, axis=1).astype(np.int64)


def ranked_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``min(k, L)`` best-scored columns, best first, equal scores lower column first (int64).

    The ranking P@k and nDCG@k use; a report bundle stores it in place of the scores.
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError("scores must be a dense 2-D n_docs x n_labels array")
    return _top_columns(s, min(int(k), s.shape[1]))


def _ranking_hits(y_true: IndicatorLike, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Whether each of the top-k ranked labels is true (n x min(k, L), best first) and |T| per document."""
    t = _as_indicator(y_true, "y_true")
    s = np.asarray(scores)
    if sp.issparse(scores) or s.ndim != 2:
        raise ValueError("scores must be a dense 2-D n_docs x n_labels array")
    if s.shape != t.shape:
        raise ValueError(f"y_true has shape {t.shape} but scores has shape {s.shape}")
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}")
    if np.issubdtype(s.dtype, np.floating) and np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    n, n_labels = s.shape
    if n == 0 or n_labels == 0:
        raise ValueError(f"cannot evaluate an empty problem of shape {s.shape}")
    depth = min(int(k), n_labels)  # with k > L the ranking simply holds every label

    top = np.empty((n, depth), dtype=np.int64)
    block = max(1, _RANK_BLOCK_ELEMENTS // n_labels)
    for start in range(0, n, block):
        top[start : start + block] = _top_columns(s[start : start + block], depth)
    keys = np.arange(n, dtype=np.int64)[:, None] * n_labels + top

    # Canonical CSR enumerates its (doc, label) pairs in row-major order, so the true
    # keys come out sorted and searchsorted finds the ranked pairs without densifying y_true.
    rows_of_nnz = np.repeat(np.arange(n, dtype=np.int64), np.diff(t.indptr))
    true_keys = rows_of_nnz * n_labels + t.indices
    if true_keys.size == 0:
        hits = np.zeros(keys.shape, dtype=bool)
    else:
        pos = np.minimum(np.searchsorted(true_keys, keys), true_keys.size - 1)
        hits = true_keys[pos] == keys
    return hits, np.diff(t.indptr).astype(np.int64)


def one_error(y_true: IndicatorLike, scores: np.ndarray) -> float:
    """Share of the documents with a true label whose top-ranked label (ties: lower column) is not true;
    0 when no document has a true label."""
    hits, n_true = _ranking_hits(y_true, scores, 1)
    judged = n_true > 0
    return float((~hits[judged, 0]).mean()) if judged.any() else 0.0


def ranking_loss(y_true: IndicatorLike, scores: np.ndarray) -> float:
    """Mean over the documents with both true and false labels of the share of (true, false) label pairs
    whose false label scores at least as high as the true one; 0 when no document has both.

    Vectorised over documents: sorting each row's scores once, a true label's wrongly ordered pairs are the
    false labels from the first position of its tie group on (:func:`sklearn.metrics.label_ranking_loss`
    counts the same pairs, but averages over every document)."""
    t = _as_indicator(y_true, "y_true")
    hits, _ = _ranking_hits(t, scores, 1)  # validates shapes and values
    s = np.asarray(scores, dtype=np.float64)
    n, n_labels = s.shape
    true = t.toarray().astype(bool)
    n_true = true.sum(axis=1)
    judged = (n_true > 0) & (n_true < n_labels)
    if not judged.any():
        return 0.0
    s, true, n_true = s[judged], true[judged], n_true[judged]
    order = np.argsort(s, axis=1, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=1)
    false_sorted = ~np.take_along_axis(true, order, axis=1)
    # index of the first position of each position's tie group
    starts = np.where(np.concatenate([np.ones((len(s), 1), bool), s_sorted[:, 1:] != s_sorted[:, :-1]], axis=1),
                      np.arange(n_labels)[None, :], 0)
    starts = np.maximum.accumulate(starts, axis=1)
    false_before = np.concatenate([np.zeros((len(s), 1), np.int64), np.cumsum(false_sorted, axis=1)], axis=1)
    n_false = false_before[:, -1]
    wrong_at = n_false[:, None] - np.take_along_axis(false_before, starts, axis=1)  # false labels scoring >= this
    wrong = (wrong_at * ~false_sorted).sum(axis=1)
    return float((wrong / (n_true * n_false)).mean())


def _precision_at_k(hits: np.ndarray, k: int) -> float:
    return float(hits.sum(axis=1).mean() / k)


def _ndcg_at_k(hits: np.ndarray, n_true: np.ndarray, k: int) -> float:
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = hits @ discount
    # Binary relevance: the ideal ranking puts min(k, |T|) true labels first.
    ideal_cum = np.concatenate(([0.0], np.cumsum(discount)))
    ideal = ideal_cum[np.minimum(n_true, hits.shape[1])]
    return float(_ratio(dcg, ideal).mean())


def precision_at_k(y_true: IndicatorLike, scores: np.ndarray, k: int) -> float:
    """Mean over documents of (#true labels among the k highest scores) / k.

    Documents with no true label score 0. With ``k > L`` every label is ranked
    and the count is still divided by ``k``.
    """
    hits, _ = _ranking_hits(y_true, scores, k)
    return _precision_at_k(hits, k)


def ndcg_at_k(y_true: IndicatorLike, scores: np.ndarray, k: int) -> float:
    """Mean over documents of DCG@k / ideal DCG@k with binary gains and 1/log2(rank+1) discounts.

    The ideal DCG places ``min(k, |T|)`` relevant labels first; documents with no
    true label score 0 (as in scikit-learn's ``ndcg_score``).
    """
    hits, n_true = _ranking_hits(y_true, scores, k)
    return _ndcg_at_k(hits, n_true, k)


# ---------------------------------------------------------------------- all of it


def top_labels_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of each row's ``k`` highest scores (ties: the lower column first)."""
    scores = np.asarray(scores)
    mask = np.zeros(scores.shape, dtype=bool)
    k = min(int(k), scores.shape[1]) if scores.ndim == 2 else 0
    if k > 0 and scores.shape[0]:
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.put_along_axis(mask, top, True, axis=1)
    return mask


def best_micro_f1_threshold(y_true: IndicatorLike, scores: np.ndarray, min_labels: int = 0) -> tuple[float, float]:
    """The one global threshold on ``scores`` that maximises micro-F1 on ``y_true``: ``(threshold, micro-F1)``.

    Predicting ``scores >= t`` for every cell, micro-F1 only changes when ``t``
    passes a score, so sorting the cells once and counting true positives along
    the sorted order gives micro-F1 at every distinct cut in O(n L log(n L)).
    The threshold returned lies halfway between the last score kept and the
    next lower one (so it generalises better than a score itself); ties are
    kept or dropped together. With no true positive anywhere it is 0.5 and F1 0.

    With ``min_labels = k``, every document also gets its ``k`` best-scored
    labels whatever the threshold (:func:`top_labels_mask`): those cells are
    always predicted, and the threshold is chosen over the others.
    """
    y = _as_indicator(y_true, "y_true")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != y.shape:
        raise ValueError(f"scores have shape {scores.shape}, y_true {y.shape}")
    n_true = y.nnz
    if n_true == 0 or scores.size == 0:
        return 0.5, 0.0
    truth = np.zeros(scores.size, dtype=bool)
    truth[np.ravel_multi_index(y.nonzero(), y.shape)] = True
    forced = top_labels_mask(scores, min_labels).ravel()
    tp0, kept0 = int(truth[forced].sum()), int(forced.sum())
    flat, truth = scores.ravel()[~forced], truth[~forced]
    if flat.size == 0:
        return 0.5, 2.0 * tp0 / (kept0 + n_true)
    order = np.argsort(-flat, kind="stable")
    s, t = flat[order], truth[order]
    tp = tp0 + np.cumsum(t)
    # a cut is only allowed after the last of a group of tied scores
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    kept = kept0 + np.arange(1, flat.size + 1)
    f1 = np.where(last_of_tie, 2.0 * tp / (kept + n_true), -1.0)
    best = int(np.argmax(f1))
    if kept0 and 2.0 * tp0 / (kept0 + n_true) > f1[best]:  # the forced labels alone do best
        return float(np.nextafter(s[0], np.inf)), 2.0 * tp0 / (kept0 + n_true)
    threshold = (s[best] + s[best + 1]) / 2.0 if best + 1 < s.size else s[best]
    return float(threshold), float(f1[best])


def evaluate(
    y_true: IndicatorLike,
    y_pred: IndicatorLike,
    label_freq: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    ks: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """Every metric of the benchmark from one count pass (plus one ranking pass).

    Keys: ``hamming_loss``, ``subset_01_loss``, ``micro_precision``,
    ``micro_recall``, ``micro_f1``, ``macro_f1``, ``example_f1``; with
    ``label_freq`` (train frequency per column) also ``hf_micro_f1``,
    ``hf_macro_f1``, ``lf_micro_f1``, ``lf_macro_f1`` over the
    :func:`frequency_groups` columns; with ``scores`` also ``p_at_{k}`` and
    ``ndcg_at_{k}`` for each ``k`` in ``ks``, ``one_error`` and ``ranking_loss``.
    """
    c = _confusion(y_true, y_pred)
    precision, recall, f1 = _micro(c)
    out: dict[str, float] = {
        "hamming_loss": _hamming(c),
        "subset_01_loss": _subset01(c),
        "micro_precision": precision,
        "micro_recall": recall,
        "micro_f1": f1,
        "macro_f1": _macro_f1(c),
        "example_f1": float(_f1(c.doc_tp, c.doc_fp, c.doc_fn).mean()),
    }
    if label_freq is not None:
        freq = np.asarray(label_freq)
        if freq.shape != (c.shape[1],):
            raise ValueError(f"label_freq has shape {freq.shape}, expected ({c.shape[1]},) for {c.shape[1]} labels")
        has_positive = c.label_tp + c.label_fn > 0
        for group, cols in zip(("hf", "lf"), frequency_groups(freq, eligible=has_positive)):
            out[f"{group}_micro_f1"] = _micro(c, cols)[2]
            out[f"{group}_macro_f1"] = _macro_f1(c, cols)
    if scores is not None:
        ks = list(ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
            raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
        ks = [int(k) for k in ks]
        # One selection at the deepest cut-off serves every shallower k: the top-k is a prefix.
        hits, n_true = _ranking_hits(y_true, scores, max(ks))
        for k in ks:
            out[f"p_at_{k}"] = _precision_at_k(hits[:, :k], k)
            out[f"ndcg_at_{k}"] = _ndcg_at_k(hits[:, :k], n_true, k)
        judged = n_true > 0
        out["one_error"] = float((~hits[judged, 0]).mean()) if judged.any() else 0.0
        out["ranking_loss"] = ranking_loss(y_true, scores)
    return out
