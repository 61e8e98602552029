"""Paired bootstrap: known answers on constructed data and agreement with a naive loop."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score

from mlbench.reports.bootstrap import document_counts, paired_bootstrap, resample_weights


def _random_problem(seed, n=400, L=12):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, L)) < 0.2).astype(np.int8)
    a = y.copy()
    a[rng.random((n, L)) < 0.05] ^= 1
    b = y.copy()
    b[rng.random((n, L)) < 0.15] ^= 1
    return sp.csr_matrix(y), sp.csr_matrix(a), sp.csr_matrix(b)


def test_document_counts():
    y = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]]))
    p = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [1, 0, 0]]))
    c = document_counts(y, p)
    assert c.tolist() == [[1, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 1]]


def test_identical_systems_have_a_zero_interval():
    y, a, _ = _random_problem(0)
    res = paired_bootstrap(y, a, a, n_resamples=300)
    for r in res.values():
        assert r.diff == 0 and r.low == 0 and r.high == 0 and not r.significant


def test_a_system_better_on_every_document_is_significant():
    y, _, b = _random_problem(1)
    res = paired_bootstrap(y, y, b, n_resamples=500)  # A is perfect
    f1 = res["micro_f1"]
    assert f1.a == 1.0 and f1.b == pytest.approx(f1_score(y, b, average="micro"))
    assert f1.low > 0 and f1.significant and f1.p_value < 0.01
    zo = res["subset_01_loss"]
    assert zo.a == 0.0 and zo.high < 0  # A's loss is lower on every resample


def test_matches_a_naive_loop_with_the_same_draws():
    y, a, b = _random_problem(2, n=150)
    n_res, seed = 200, 5
    res = paired_bootstrap(y, a, b, n_resamples=n_res, seed=seed)
    weights = resample_weights(y.shape[0], n_res, np.random.default_rng(seed))
    naive_f1, naive_01 = [], []
    for w in weights:
        rows = np.repeat(np.arange(y.shape[0]), w.astype(int))
        yt, pa, pb = y[rows], a[rows], b[rows]
        naive_f1.append(f1_score(yt, pa, average="micro") - f1_score(yt, pb, average="micro"))
        exact = lambda p: np.mean((yt != p).sum(axis=1).A.ravel() == 0)  # noqa: E731
        naive_01.append((1 - exact(pa)) - (1 - exact(pb)))
    lo, hi = np.quantile(naive_f1, [0.025, 0.975])
    assert res["micro_f1"].low == pytest.approx(lo) and res["micro_f1"].high == pytest.approx(hi)
    lo, hi = np.quantile(naive_01, [0.025, 0.975])
    assert res["subset_01_loss"].low == pytest.approx(lo) and res["subset_01_loss"].high == pytest.approx(hi)


def test_interval_covers_the_true_difference_on_a_known_answer():
    """A makes exactly one error fewer than B on a fixed 20% of documents: the
    0/1-loss difference is -0.2 on the full set and the interval is around it."""
    n, L = 1000, 5
    y = sp.csr_matrix(np.eye(L, dtype=np.int8)[np.arange(n) % L])
    b = y.toarray().copy()
    b[: n // 5, :] = 0  # B misses every label of the first 200 documents
    res = paired_bootstrap(y, y, sp.csr_matrix(b), n_resamples=1000)
    zo = res["subset_01_loss"]
    assert zo.diff == pytest.approx(-0.2)
    assert zo.low < -0.2 < zo.high and zo.high - zo.low < 0.1


def test_shape_mismatch():
    y, a, _ = _random_problem(3)
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap(y, a[:10], a)


def test_several_seeds_per_side_bootstrap_the_difference_of_seed_means():
    y, a1, b1 = _random_problem(4, n=150)
    _, a2, b2 = _random_problem(5, n=150)
    n_res, seed = 200, 3
    single = paired_bootstrap(y, a1, b1, n_resamples=n_res, seed=seed)
    assert paired_bootstrap(y, [a1], [b1], n_resamples=n_res, seed=seed) == single
    res = paired_bootstrap(y, [a1, a2], [b1, b2], n_resamples=n_res, seed=seed)
    f1 = lambda t, p: f1_score(t, p, average="micro")  # noqa: E731
    assert res["micro_f1"].a == pytest.approx((f1(y, a1) + f1(y, a2)) / 2)
    assert res["micro_f1"].diff == pytest.approx((f1(y, a1) + f1(y, a2) - f1(y, b1) - f1(y, b2)) / 2)
    # every replicate resamples the documents once, for all four matrices together
    weights = resample_weights(y.shape[0], n_res, np.random.default_rng(seed))
    naive = []
    for w in weights:
        rows = np.repeat(np.arange(y.shape[0]), w.astype(int))
        yt = y[rows]
        naive.append((f1(yt, a1[rows]) + f1(yt, a2[rows]) - f1(yt, b1[rows]) - f1(yt, b2[rows])) / 2)
    lo, hi = np.quantile(naive, [0.025, 0.975])
    assert res["micro_f1"].low == pytest.approx(lo) and res["micro_f1"].high == pytest.approx(hi)
    # a side may also average over a different number of matrices than the other
    uneven = paired_bootstrap(y, [a1, a2], b1, n_resamples=50)
    assert uneven["micro_f1"].b == pytest.approx(f1(y, b1))
