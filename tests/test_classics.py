"""The scikit-multilearn-ng methods beyond the contract: a label subset never seen in training, and ML-kNN's posterior threshold."""

from __future__ import annotations

import numpy as np

from mlbench.api import FitContext, Split
from mlbench.methods.classics import ConstantSafeLinearSVC
from mlbench.registry import get_method

_LABELS = ("a", "b", "c", "d")


def _split(name: str, seqs: list[tuple[int, ...]]) -> Split:
    words = {0: "alpha apple", 1: "beta banana", 2: "gamma grape", 3: "delta date"}
    texts = [" ".join(words[j] for j in s) or "nothing" for s in seqs]
    return Split.build(name, [f"{name}{i}" for i in range(len(seqs))], texts, seqs, _LABELS)


def test_constant_safe_svc_predicts_its_only_class():
    clf = ConstantSafeLinearSVC().fit(np.zeros((3, 2)), np.array([4, 4, 4]))
    assert clf.predict(np.ones((2, 2))).tolist() == [4, 4]


def test_rakel_survives_a_partition_whose_labels_never_occur_in_training():
    # labels c and d never occur in training: with subsets of 2, one RAkEL partition may be {c, d}
    train = _split("tr", [(0,), (1,), (0, 1), (0,), (1,), ()] * 4)
    test = _split("te", [(0,), (1,), (2,)])
    for seed in range(4):
        m = get_method("rakel")(labelset_size=2, min_df=1).fit(train, train, FitContext(seed=seed, progress=False))
        pred = m.predict(test).toarray()
        assert pred[:, 2:].sum() == 0 and pred[0, 0] == 1 and pred[1, 1] == 1


def test_mlknn_threshold_moves_predictions_monotonically():
    train = _split("tr", [(0,), (1,), (0, 1), (2,), (3,), (2, 3)] * 5)
    m = get_method("mlknn")(k=5, min_df=1).fit(train, train, FitContext(progress=False))
    scores = m.predict_scores(train)
    assert scores.shape == (30, 4) and np.all((scores >= 0) & (scores <= 1))
    low = get_method("mlknn")(k=5, min_df=1, threshold=0.05).fit(train, train, FitContext(progress=False))
    assert low.predict(train).nnz >= m.predict(train).nnz
    assert (m.predict(train).toarray() == (scores >= 0.5)).all()


def test_mlknn_does_not_take_empty_documents_as_everybody_s_neighbours():
    # label-0 documents share one word with the query among many others (cosine < 0.5); empty documents
    # carry label 3. By Euclidean distance the empty rows are nearer (1 < sqrt(2 - 2 cos)).
    filler = [f"w{i}x w{i}y w{i}z w{i}u w{i}v w{i}q" for i in range(8)]
    texts = [f"alpha {f}" for f in filler] + [""] * 8 + [f"beta {f}" for f in filler]
    seqs = [(0,)] * 8 + [(3,)] * 8 + [(1,)] * 8
    train = Split.build("tr", [f"d{i}" for i in range(24)], texts, seqs, _LABELS)
    query = Split.build("q", ["q"], ["alpha"], [(0,)], _LABELS)
    m = get_method("mlknn")(k=5, min_df=1, sublinear_tf=False).fit(train, train, FitContext(progress=False))
    neighbours = m.model_.knn_.kneighbors(m._features(query), 5, return_distance=False)[0]
    assert sorted(neighbours) == sorted(set(neighbours)) and all(i < 8 for i in neighbours)  # label-0 documents
    assert m.predict_scores(query).shape == (1, 4)
