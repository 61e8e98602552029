"""mlbench.metrics against scikit-learn and hand-computed references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import metrics as skm

from mlbench import metrics as M

TOL = 1e-12


def _binary(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m)
    m.data = (m.data != 0).astype(np.int8)
    m.eliminate_zeros()
    return m


def _problem(seed: int, density: float, flip: float, n: int = 120, n_labels: int = 25) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Random truth and a noisy prediction with empty rows, empty columns and documents predicted empty."""
    rng = np.random.default_rng(seed)
    t = _binary(sp.random(n, n_labels, density=density, format="csr", random_state=rng)).tolil()
    noise = _binary(sp.random(n, n_labels, density=flip, format="csr", random_state=rng))
    t[:4, :] = 0  # documents without labels
    t = _binary(t)
    p = (t + noise).tocsr()
    p.data %= 2  # XOR: flips the noisy slots
    p = _binary(p).tolil()
    p[2:7, :] = 0  # empty predictions, two of them on empty-truth documents
    p[:, n_labels - 2 :] = 0  # labels never predicted
    t = t.tolil()
    t[:, n_labels - 1] = 0  # last label never true nor predicted
    t[:, 0] = 0  # a label predicted but never true
    return _binary(t), _binary(p)


PROBLEMS = [(seed, density, flip) for seed in range(3) for density, flip in ((0.02, 0.01), (0.1, 0.05), (0.4, 0.2))]


@pytest.fixture(params=PROBLEMS, ids=lambda p: f"seed{p[0]}-d{p[1]}-f{p[2]}")
def problem(request: pytest.FixtureRequest) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return _problem(*request.param)


def test_problem_has_the_edge_cases(problem: tuple[sp.csr_matrix, sp.csr_matrix]) -> None:
    t, p = problem
    empty_true = np.diff(t.indptr) == 0
    empty_pred = np.diff(p.indptr) == 0
    assert (empty_true & empty_pred).any() and (~empty_true & empty_pred).any()
    assert (t.getnnz(axis=0) + p.getnnz(axis=0) == 0).any()


def test_set_metrics_match_sklearn(problem: tuple[sp.csr_matrix, sp.csr_matrix]) -> None:
    t, p = problem
    assert M.hamming_loss(t, p) == pytest.approx(skm.hamming_loss(t, p), abs=TOL)
    assert M.subset_zero_one_loss(t, p) == pytest.approx(1 - skm.accuracy_score(t, p), abs=TOL)
    ref_micro = skm.precision_recall_fscore_support(t, p, average="micro", zero_division=0)[:3]
    assert M.micro_precision_recall_f1(t, p) == pytest.approx(ref_micro, abs=TOL)
    assert M.macro_f1(t, p) == pytest.approx(skm.f1_score(t, p, average="macro", zero_division=0), abs=TOL)
    assert M.example_f1(t, p) == pytest.approx(skm.f1_score(t, p, average="samples", zero_division=0), abs=TOL)


def test_dense_and_sparse_inputs_agree(problem: tuple[sp.csr_matrix, sp.csr_matrix]) -> None:
    t, p = problem
    assert M.evaluate(t.toarray(), p.toarray().astype(bool)) == M.evaluate(sp.csr_array(t), p)


def test_evaluate_keys_types_and_consistency(problem: tuple[sp.csr_matrix, sp.csr_matrix]) -> None:
    t, p = problem
    rng = np.random.default_rng(0)
    freq = rng.integers(0, 50, size=t.shape[1])
    scores = rng.random(t.shape)
    out = M.evaluate(t, p, label_freq=freq, scores=scores, ks=(1, 3))
    assert list(out) == [
        "hamming_loss", "subset_01_loss", "micro_precision", "micro_recall", "micro_f1", "macro_f1", "example_f1",
        "hf_micro_f1", "hf_macro_f1", "lf_micro_f1", "lf_macro_f1", "p_at_1", "ndcg_at_1", "p_at_3", "ndcg_at_3",
        "one_error", "ranking_loss",
    ]  # fmt: skip
    assert all(type(v) is float for v in out.values())
    assert out["hamming_loss"] == M.hamming_loss(t, p)
    assert out["subset_01_loss"] == M.subset_zero_one_loss(t, p)
    assert (out["micro_precision"], out["micro_recall"], out["micro_f1"]) == M.micro_precision_recall_f1(t, p)
    assert out["macro_f1"] == M.macro_f1(t, p)
    assert out["example_f1"] == M.example_f1(t, p)
    for k in (1, 3):
        assert out[f"p_at_{k}"] == M.precision_at_k(t, scores, k)
        assert out[f"ndcg_at_{k}"] == M.ndcg_at_k(t, scores, k)
    assert out["one_error"] == M.one_error(t, scores) and out["ranking_loss"] == M.ranking_loss(t, scores)
    assert set(M.evaluate(t, p)) == set(list(out)[:7])


def test_frequency_group_f1_matches_sklearn_on_the_columns(problem: tuple[sp.csr_matrix, sp.csr_matrix]) -> None:
    t, p = problem
    freq = np.asarray(t.sum(axis=0)).ravel() + np.arange(t.shape[1]) % 3  # ties and zeros included
    out = M.evaluate(t, p, label_freq=freq)
    with_positives = np.asarray(t.sum(axis=0)).ravel() > 0
    hf, lf = M.frequency_groups(freq, eligible=with_positives)
    assert len(hf) == len(lf) == math.ceil(0.1 * with_positives.sum())
    assert with_positives[lf].all()  # LF is measurable: every one of its labels has a positive
    for name, cols in (("hf", hf), ("lf", lf)):
        tc, pc = t[:, cols], p[:, cols]
        assert out[f"{name}_micro_f1"] == pytest.approx(skm.f1_score(tc, pc, average="micro", zero_division=0), abs=TOL)
        assert out[f"{name}_macro_f1"] == pytest.approx(skm.f1_score(tc, pc, average="macro", zero_division=0), abs=TOL)


def test_per_document_f1_brute_force_and_empty_rows(problem: tuple[sp.csr_matrix, sp.csr_matrix]) -> None:
    t, p = problem
    got = M.per_document_f1(t, p)
    assert got.shape == (t.shape[0],) and got.dtype == np.float64
    for i in range(t.shape[0]):
        ts, ps = set(t[i].indices), set(p[i].indices)
        want = 2 * len(ts & ps) / (len(ts) + len(ps)) if ts or ps else 0.0
        assert got[i] == pytest.approx(want, abs=TOL)


def test_empty_document_and_unused_label_score_zero_like_sklearn() -> None:
    # What scikit-learn does with zero_division=0 (checked, not assumed): a document
    # with empty true and predicted sets scores 0 in average="samples", and a label
    # never true nor predicted contributes 0 to average="macro".
    t = np.array([[0, 0, 0], [1, 0, 0]])
    p = np.array([[0, 0, 0], [1, 0, 0]])
    assert skm.f1_score(t, p, average="samples", zero_division=0) == 0.5
    assert skm.f1_score(t, p, average="macro", zero_division=0) == pytest.approx(1 / 3)
    assert M.example_f1(t, p) == 0.5
    assert M.per_document_f1(t, p).tolist() == [0.0, 1.0]
    assert M.macro_f1(t, p) == pytest.approx(1 / 3, abs=TOL)
    assert M.micro_precision_recall_f1(t, np.zeros_like(p)) == (0.0, 0.0, 0.0)


def test_non_canonical_input_is_read_as_scipy_does_and_left_untouched() -> None:
    # Row 0 stores labels in the order 2, 1 (unsorted) with an explicit zero at label 0.
    t = sp.csr_matrix((np.array([1, 1, 0], dtype=np.int8), np.array([2, 1, 0]), np.array([0, 3, 3])), shape=(2, 3))
    before = (t.data.copy(), t.indices.copy(), t.indptr.copy())
    p = np.array([[0, 1, 1], [0, 0, 0]])
    assert M.evaluate(t, p)["hamming_loss"] == 0.0
    assert M.micro_precision_recall_f1(t, p) == (1.0, 1.0, 1.0)
    for a, b in zip(before, (t.data, t.indices, t.indptr)):
        np.testing.assert_array_equal(a, b)
    # scipy sums duplicate entries, so a label stored twice has value 2: not an indicator.
    dup = sp.csr_matrix((np.ones(2, dtype=np.int8), np.array([1, 1]), np.array([0, 2, 2])), shape=(2, 3))
    with pytest.raises(ValueError, match="0/1"):
        M.hamming_loss(dup, p)


# ------------------------------------------------------------------ frequency groups


def test_frequency_groups_hand_example() -> None:
    freq = np.array([9, 5, 5, 7, 0, 5, 1, 1, 3, 2, 0, 4])  # L = 12, ceil(0.25 * 12) = 3
    hf, lf = M.frequency_groups(freq, fraction=0.25)
    # Ranking (stable on -freq): 0(9) 3(7) 1(5) 2(5) 5(5) 11(4) 8(3) 9(2) 6(1) 7(1) 4(0) 10(0)
    np.testing.assert_array_equal(hf, [0, 1, 3])  # the tie 1/2/5 at the cut keeps the lower index
    np.testing.assert_array_equal(lf, [4, 7, 10])  # the tie 6/7 at the cut keeps the later one
    # Default fraction on a frequency-ordered task: first and last ceil(0.1 * L) columns.
    hf, lf = M.frequency_groups(np.arange(103, 0, -1))
    np.testing.assert_array_equal(hf, np.arange(11))
    np.testing.assert_array_equal(lf, np.arange(92, 103))
    # 0.1 * 30 is 3.0000000000000004 in floating point; the group must still have 3 labels.
    assert [len(g) for g in M.frequency_groups(np.ones(30))] == [3, 3]


def test_frequency_groups_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        M.frequency_groups(np.ones((2, 3)))
    with pytest.raises(ValueError, match="fraction"):
        M.frequency_groups(np.ones(5), fraction=0.0)


# ------------------------------------------------------------------ ranking metrics


def test_precision_and_ndcg_at_k_hand_example() -> None:
    y = np.array(
        [
            [1, 0, 1, 0, 0],  # ranking 1,2,0,3,4: hits at ranks 2 and 3
            [0, 0, 0, 0, 1],  # ranking 4,...: hit at rank 1
            [0, 0, 0, 0, 0],  # no true label: contributes 0
        ]
    )
    s = np.array(
        [
            [0.7, 0.9, 0.8, 0.2, 0.1],
            [0.1, 0.2, 0.3, 0.4, 0.9],
            [0.5, 0.4, 0.3, 0.2, 0.1],
        ]
    )
    assert M.precision_at_k(y, s, 1) == pytest.approx((0 + 1 + 0) / 3, abs=TOL)
    assert M.precision_at_k(y, s, 3) == pytest.approx((2 / 3 + 1 / 3 + 0) / 3, abs=TOL)
    d = [1 / math.log2(r + 1) for r in (1, 2, 3)]
    assert M.ndcg_at_k(y, s, 1) == pytest.approx((0 + 1 + 0) / 3, abs=TOL)
    # Doc 0 at k=3: DCG = d2 + d3, ideal with min(3, 2) = 2 relevant = d1 + d2.
    assert M.ndcg_at_k(y, s, 3) == pytest.approx(((d[1] + d[2]) / (d[0] + d[1]) + 1 + 0) / 3, abs=TOL)
    # k beyond L ranks every label; P@k still divides by k.
    assert M.precision_at_k(y, s, 7) == pytest.approx((2 / 7 + 1 / 7) / 3, abs=TOL)
    assert M.ndcg_at_k(y, s, 7) == pytest.approx(M.ndcg_at_k(y, s, 5), abs=TOL)


def _brute_force_ranking(y: np.ndarray, s: np.ndarray, k: int) -> tuple[float, float]:
    p_at_k, ndcg = [], []
    for yi, si in zip(y, s):
        ranked = np.argsort(-si, kind="stable")[:k]
        gains = yi[ranked]
        p_at_k.append(gains.sum() / k)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(k, int(yi.sum()))))
        dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
        ndcg.append(dcg / ideal if ideal else 0.0)
    return float(np.mean(p_at_k)), float(np.mean(ndcg))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 5, 40])
def test_ranking_metrics_match_brute_force_and_sklearn(seed: int, k: int) -> None:
    t, _ = _problem(seed, density=0.1, flip=0.0)
    y = t.toarray()
    rng = np.random.default_rng(seed)
    scores = rng.random(y.shape) + 0.5 * y  # continuous: no ties, so the ranking is unique
    p_ref, ndcg_ref = _brute_force_ranking(y, scores, k)
    assert M.precision_at_k(t, scores, k) == pytest.approx(p_ref, abs=TOL)
    assert M.ndcg_at_k(t, scores, k) == pytest.approx(ndcg_ref, abs=TOL)
    # sklearn's ndcg_score uses the same gains (the 0/1 labels), the same 1/log2(rank + 1)
    # discount, and normalises each document by the DCG of its own ideal top-k, i.e.
    # min(k, |T|) relevant labels first; documents without a relevant label score 0.
    # Without ties its tie averaging is inert, so it must agree exactly.
    has_label = y.sum(axis=1) > 0
    assert not has_label.all()
    assert M.ndcg_at_k(t[has_label], scores[has_label], k) == pytest.approx(
        skm.ndcg_score(y[has_label], scores[has_label], k=k), abs=TOL
    )
    assert M.ndcg_at_k(t, scores, k) == pytest.approx(skm.ndcg_score(y, scores, k=k), abs=TOL)


def test_ranking_in_row_blocks_matches_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    t, _ = _problem(7, density=0.1, flip=0.0)
    scores = np.random.default_rng(7).random(t.shape)
    whole = M.evaluate(t, t, scores=scores, ks=(1, 2, 5))
    monkeypatch.setattr(M, "_RANK_BLOCK_ELEMENTS", 7 * t.shape[1] + 1)  # 7 rows a block: 120 = 17 * 7 + 1
    assert M.evaluate(t, t, scores=scores, ks=(1, 2, 5)) == whole
    p_ref, ndcg_ref = _brute_force_ranking(t.toarray(), scores, 5)
    assert whole["p_at_5"] == pytest.approx(p_ref, abs=TOL)
    assert whole["ndcg_at_5"] == pytest.approx(ndcg_ref, abs=TOL)


def test_ranking_accepts_integer_and_float32_scores() -> None:
    y = np.array([[1, 0, 0], [0, 0, 1]])
    assert M.precision_at_k(y, np.array([[3, 2, 1], [1, 2, 3]], dtype=np.uint8), 1) == 1.0
    assert M.ndcg_at_k(y, np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], dtype=np.float32), 3) == pytest.approx(0.5)


# ---------------------------------------------------------------------- bad input


def test_shape_mismatches_raise_clear_errors() -> None:
    t = sp.csr_matrix(np.eye(4, 5, dtype=np.int8))
    with pytest.raises(ValueError, match=r"y_true has shape \(4, 5\) but y_pred has shape \(4, 6\)"):
        M.evaluate(t, np.zeros((4, 6)))
    with pytest.raises(ValueError, match="y_pred has shape"):
        M.macro_f1(t, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="scores has shape"):
        M.precision_at_k(t, np.zeros((4, 4)), 1)
    with pytest.raises(ValueError, match="scores has shape"):
        M.evaluate(t, t, scores=np.zeros((5, 5)))
    with pytest.raises(ValueError, match="label_freq has shape"):
        M.evaluate(t, t, label_freq=np.ones(4))
    with pytest.raises(ValueError, match="2-D"):
        M.hamming_loss(np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="empty problem"):
        M.hamming_loss(np.zeros((0, 5)), np.zeros((0, 5)))


def test_other_bad_input_raises() -> None:
    t = np.eye(3, dtype=np.int8)
    with pytest.raises(ValueError, match="0/1"):
        M.hamming_loss(t, np.full((3, 3), 0.7))
    with pytest.raises(ValueError, match="0/1"):
        M.example_f1(-t, t)
    with pytest.raises(ValueError, match="positive integer"):
        M.ndcg_at_k(t, np.ones((3, 3)), 0)
    with pytest.raises(ValueError, match="positive integers"):
        M.evaluate(t, t, scores=np.ones((3, 3)), ks=(1, 0))
    with pytest.raises(ValueError, match="NaN"):
        M.precision_at_k(t, np.full((3, 3), np.nan), 1)
    with pytest.raises(ValueError, match="dense"):
        M.precision_at_k(t, sp.csr_matrix(np.ones((3, 3))), 1)


def test_best_micro_f1_threshold_matches_a_brute_force_search() -> None:
    from mlbench.metrics import best_micro_f1_threshold, micro_precision_recall_f1

    rng = np.random.default_rng(3)
    y = (rng.random((60, 7)) < 0.25).astype(np.int8)
    scores = np.clip(0.35 * y + rng.random((60, 7)) * 0.7, 0, 1).round(2)  # rounded: many ties
    threshold, f1 = best_micro_f1_threshold(y, scores)
    brute = max(micro_precision_recall_f1(y, (scores >= t).astype(np.int8))[2] for t in np.unique(scores))
    assert f1 == pytest.approx(brute)
    assert micro_precision_recall_f1(y, (scores >= threshold).astype(np.int8))[2] == pytest.approx(f1)


@pytest.mark.parametrize("min_labels", [1, 2])
def test_best_micro_f1_threshold_with_labels_every_document_gets(min_labels) -> None:
    from mlbench.metrics import best_micro_f1_threshold, micro_precision_recall_f1, top_labels_mask

    rng = np.random.default_rng(4)
    y = (rng.random((80, 6)) < 0.2).astype(np.int8)
    scores = np.clip(0.3 * y + rng.random((80, 6)) * 0.7, 0, 1).round(2)
    forced = top_labels_mask(scores, min_labels)
    assert (forced.sum(axis=1) == min_labels).all()
    assert (scores[forced].reshape(80, min_labels).min(axis=1) >= np.where(forced, -1, scores).max(axis=1)).all()

    def f1_at(t):
        return micro_precision_recall_f1(y, ((scores >= t) | forced).astype(np.int8))[2]

    threshold, f1 = best_micro_f1_threshold(y, scores, min_labels=min_labels)
    brute = max(f1_at(t) for t in [*np.unique(scores), 1.5])
    assert f1 == pytest.approx(brute) and f1_at(threshold) == pytest.approx(f1)
    # one label per document, the right one top-scored everywhere: the forced labels alone are perfect
    y1 = np.eye(4, dtype=np.int8)[[0, 1, 2, 3, 0]]
    s1 = 0.5 * y1 + 0.4
    t1, f1_1 = best_micro_f1_threshold(y1, s1, min_labels=1)
    assert f1_1 == 1.0 and t1 > 0.4 and not ((s1 >= t1) & (y1 == 0)).any()


def test_best_micro_f1_threshold_known_answers() -> None:
    from mlbench.metrics import best_micro_f1_threshold

    # positives score 0.9 and 0.6, negatives 0.7 and 0.2: keeping all of {0.9, 0.7, 0.6} gives
    # 2 tp / (3 kept + 2 true) = 0.8, better than {0.9} alone (2/3); the cut lies between 0.6 and 0.2
    y = np.array([[1, 0], [0, 1]])
    scores = np.array([[0.9, 0.7], [0.2, 0.6]])
    assert best_micro_f1_threshold(y, scores) == pytest.approx((0.4, 0.8))
    # no true label anywhere: the default threshold and F1 0
    assert best_micro_f1_threshold(np.zeros((2, 2)), scores) == (0.5, 0.0)
    with pytest.raises(ValueError, match="shape"):
        best_micro_f1_threshold(y, scores[:1])


def test_lf_group_skips_labels_without_test_positives() -> None:
    # 20 labels by falling train frequency; only columns 0-9 and 15 have a test positive, so
    # LF (the least frequent 10% of those 11 labels: 2) is columns 9 and 15, not 18-19
    freq = np.arange(20, 0, -1)
    y = np.zeros((11, 20), dtype=np.int8)
    for i, j in enumerate([*range(10), 15]):
        y[i, j] = 1
    hf, lf = M.frequency_groups(freq, eligible=y.sum(axis=0) > 0)
    np.testing.assert_array_equal(hf, [0, 1])
    np.testing.assert_array_equal(lf, [9, 15])
    out = M.evaluate(y, y, label_freq=freq)
    assert out["lf_micro_f1"] == 1.0 and out["hf_micro_f1"] == 1.0
    assert M.frequency_groups(freq, eligible=np.zeros(20, bool))[1].size == 0


def _reference_top(scores: np.ndarray, k: int) -> list[list[int]]:
    """Straightforward ranking: sort each row's (-score, column) pairs."""
    return [[j for _, j in sorted((-float(v), j) for j, v in enumerate(row))[:k]] for row in scores]


def _reference_p_ndcg(y: np.ndarray, scores: np.ndarray, k: int) -> tuple[float, float]:
    ps, ns = [], []
    for row_y, top in zip(y, _reference_top(scores, k)):
        gains = [float(row_y[j]) for j in top]
        ps.append(sum(gains) / k)
        dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
        ideal = sum(1 / math.log2(r + 2) for r in range(min(k, int(row_y.sum()))))
        ns.append(dcg / ideal if ideal else 0.0)
    return float(np.mean(ps)), float(np.mean(ns))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int16])
def test_ranking_ties_break_by_lower_column(dtype) -> None:
    rng = np.random.default_rng(11)
    y = (rng.random((200, 9)) < 0.3).astype(np.int8)
    scores = rng.integers(0, 3, size=(200, 9)).astype(dtype)  # three values: ties everywhere
    out = M.evaluate(y, y, scores=scores, ks=(1, 3, 5))
    for k in (1, 2, 3, 5, 9, 12):
        p_ref, n_ref = _reference_p_ndcg(y, scores, k)
        assert M.precision_at_k(y, scores, k) == pytest.approx(p_ref, abs=TOL)
        assert M.ndcg_at_k(y, scores, k) == pytest.approx(n_ref, abs=TOL)
        if k in (1, 3, 5):  # one selection at max(ks) agrees with each separate call
            assert out[f"p_at_{k}"] == pytest.approx(p_ref, abs=TOL)
            assert out[f"ndcg_at_{k}"] == pytest.approx(n_ref, abs=TOL)


def test_all_tied_scores_rank_columns_in_order() -> None:
    y = np.array([[0, 0, 1, 1], [1, 0, 0, 0]])
    scores = np.zeros((2, 4))
    assert M.precision_at_k(y, scores, 1) == 0.5  # row 0 ranks column 0 first (false), row 1 too (true)
    assert M.precision_at_k(y, scores, 3) == pytest.approx((1 / 3 + 1 / 3) / 2)


def test_ranking_loss_agrees_with_scikit_learn_where_every_document_has_true_and_false_labels():
    rng = np.random.default_rng(5)
    for trial in range(100):
        n, L = int(rng.integers(1, 25)), int(rng.integers(2, 10))
        y = rng.random((n, L)) < 0.3
        y[:, 0], y[:, 1] = True, False
        scores = rng.integers(0, 3, (n, L)).astype(float) if trial % 2 else rng.random((n, L))  # ties, or none
        assert M.ranking_loss(sp.csr_matrix(y.astype(np.int8)), scores) == pytest.approx(
            skm.label_ranking_loss(y, scores), abs=1e-12)


def test_ranking_loss_and_one_error_count_only_the_documents_they_can_judge():
    y = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    scores = np.array([[0.9, 0.5, 0.1], [0.3, 0.2, 0.1], [0.1, 0.2, 0.3], [0.5, 0.5, 0.1]])
    # doc 0: no pair wrong; doc 3: true label 1 ties false label 0 (wrong) and beats label 2 -> 1/2
    assert M.ranking_loss(y, scores) == pytest.approx((0 + 0.5) / 2)
    # one-error over docs 0, 2, 3: top labels 0 (true), 2 (true), 0 (false: the tie goes to the lower column)
    assert M.one_error(y, scores) == pytest.approx(1 / 3)
    out = M.evaluate(y, (scores > 0.4).astype(int), scores=scores)
    assert out["one_error"] == pytest.approx(1 / 3) and out["ranking_loss"] == pytest.approx(0.25)
    assert M.ranking_loss(np.zeros((2, 3)), np.ones((2, 3))) == 0.0 and M.one_error(np.zeros((2, 3)), np.ones((2, 3))) == 0.0
