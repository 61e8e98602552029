"""The linear methods' machinery: LIBLINEAR fits (threaded = serial, = scikit-learn's problem), the TF-IDF
feature cache (memory and disk, hit on a solver-only change, missed on a featurisation change), the
fitted-model cache (a threshold- or beam-only change does not refit), and a CLI start that stays light."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from mlbench.api import FitContext, Split
from mlbench.methods import features, linear
from mlbench.methods.br import BinaryRelevance
from mlbench.methods.pcc import ProbabilisticClassifierChain, fit_chain

LABELS = ("a", "b", "c", "d")


def tiny_split(name: str, n: int, seed: int) -> Split:
    """Documents whose words cue their labels (with noise); label ``d`` never occurs."""
    rng = np.random.default_rng(seed)
    texts, seqs = [], []
    for i in range(n):
        labs = [j for j in range(3) if rng.random() < 0.4]
        words = [f"cue{LABELS[j]}" for j in labs if rng.random() < 0.8] + list(rng.choice([f"w{k}" for k in range(30)], 6))
        texts.append(" ".join(words))
        seqs.append(labs)
    return Split.build(name, [f"{name}{i}" for i in range(n)], texts, seqs, LABELS)


@pytest.fixture()
def splits():
    features.clear_memory_cache()
    linear.clear_model_cache()
    return tiny_split("train", 200, 0), tiny_split("valid", 60, 1)


def fit(method, train, valid):
    return method.fit(train, valid, FitContext(seed=0, progress=False))


def test_threaded_fit_equals_serial(splits):
    train, _ = splits
    X = features.tfidf_features(train.texts, BinaryRelevance.defaults).X
    W1, b1 = linear.fit_binary_relevance(X, train.Y, 10.0, threads=1)
    W2, b2 = linear.fit_binary_relevance(X, train.Y, 10.0, threads=3)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(b1, b2)
    assert b1[3] == -linear.CONSTANT_BIAS and not W1[:, 3].any()  # the never-seen label: saturated constant
    order = np.array([2, 0, 1, 3])
    for a, b in zip(fit_chain(X, train.Y, order, 10.0, threads=1), fit_chain(X, train.Y, order, 10.0, threads=2)):
        np.testing.assert_array_equal(a, b)


def test_liblinear_solves_scikit_learns_problem(splits, monkeypatch):
    """Solved tightly, our regression is scikit-learn's; at the default tolerance it stops near that optimum."""
    from sklearn.linear_model import LogisticRegression

    train, _ = splits
    X = features.tfidf_features(train.texts, BinaryRelevance.defaults).X
    y = train.Y[:, 0].toarray().ravel()
    for cw in (None, "balanced"):
        ref = LogisticRegression(C=5.0, solver="liblinear", class_weight=cw, tol=1e-8, max_iter=1000).fit(X, y)
        w, b = linear.fit_binary_lr(X, y, 5.0, cw)  # the default tolerance (1e-2): close, not exact
        assert np.abs(w - ref.coef_.ravel()).max() < 0.05 and b == pytest.approx(ref.intercept_[0], abs=0.05)
        with monkeypatch.context() as m:
            m.setattr(linear, "SOLVER_TOL", 1e-8)
            w, b = linear.fit_binary_lr(X, y, 5.0, cw)
        np.testing.assert_allclose(w, ref.coef_.ravel(), atol=2e-3)
        assert b == pytest.approx(ref.intercept_[0], abs=2e-3)


def test_chain_links_see_only_earlier_labels(splits):
    """fit_chain's node filtering is the explicit [X | Y_<k] of each link."""
    train, _ = splits
    X = features.tfidf_features(train.texts, BinaryRelevance.defaults).X
    order = np.array([1, 2, 0, 3])
    W_text, W_label, bias = fit_chain(X, train.Y, order, 3.0, threads=1)
    Yc = train.Y[:, order].toarray().astype(np.float32)
    for k in range(3):
        Xk = sp.hstack([X, sp.csr_matrix(Yc[:, :k])], format="csr")
        w, b = linear.fit_binary_lr(Xk, Yc[:, k], 3.0, None)
        np.testing.assert_allclose(w, np.r_[W_text[:, k], W_label[k, :k]], atol=1e-6)
        assert b == pytest.approx(bias[k], abs=1e-6)
    assert not np.triu(W_label).any()


def test_feature_cache_hit_on_solver_only_change_and_missed_on_featurisation_change(splits, monkeypatch, tmp_path):
    monkeypatch.setenv(features.CACHE_ENV, "off")
    train, valid = splits
    first = fit(BinaryRelevance(), train, valid)
    fit(BinaryRelevance(C=3.0), train, valid)
    assert (features.stats.fits, features.stats.memory_hits) == (1, 1)
    assert linear.model_cache_hits == 0  # a new C is a new solve
    fit(BinaryRelevance(min_df=1), train, valid)
    fit(BinaryRelevance(sublinear_tf=True), train, valid)
    assert features.stats.fits == 3
    assert first.featurizer_.vectorizer is BinaryRelevance().fit(train, valid, FitContext(progress=False)).featurizer_.vectorizer


def test_memory_cache_keeps_within_its_byte_budget(splits, monkeypatch):
    monkeypatch.setenv(features.CACHE_ENV, "off")
    train, _ = splits
    one = features.tfidf_features(train.texts, BinaryRelevance.defaults)
    monkeypatch.setattr(features, "MEMORY_BYTES", features._nbytes(one.X) + 1)
    features.tfidf_features(train.texts, {**BinaryRelevance.defaults, "min_df": 1})
    assert len(features._features) == 1  # the older entry went; the newest always stays
    features.tfidf_features(train.texts, BinaryRelevance.defaults)
    assert features.stats.fits == 3


def test_threshold_only_change_does_not_refit(splits, monkeypatch):
    train, valid = splits
    calls = []
    solve = linear.fit_binary_relevance
    monkeypatch.setattr("mlbench.methods.br.fit_binary_relevance", lambda *a, **k: calls.append(1) or solve(*a, **k))
    low = fit(BinaryRelevance(threshold=0.2), train, valid)
    high = fit(BinaryRelevance(threshold=0.6), train, valid)
    assert len(calls) == 1 and linear.model_cache_hits == 1
    scores = low.predict_scores(valid)
    np.testing.assert_array_equal(high.predict(valid).toarray(), (scores >= 0.6).astype(np.int8))
    np.testing.assert_array_equal(low.predict(valid).toarray(), (scores >= 0.2).astype(np.int8))
    fit(BinaryRelevance(threshold=0.6, C=2.0), train, valid)
    assert len(calls) == 2


def test_pcc_beam_only_change_does_not_refit(splits, monkeypatch):
    train, valid = splits
    calls = []
    solve = fit_chain
    monkeypatch.setattr("mlbench.methods.pcc.fit_chain", lambda *a, **k: calls.append(1) or solve(*a, **k))
    fit(ProbabilisticClassifierChain(beam_width=1), train, valid)
    fit(ProbabilisticClassifierChain(beam_width=4), train, valid)
    assert len(calls) == 1
    fit(ProbabilisticClassifierChain(beam_width=4, order="random"), train, valid)
    assert len(calls) == 2


def test_disk_cache_serves_another_process_and_survives_damage(splits, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(features.CACHE_ENV, str(tmp_path))
    train, _ = splits
    made = features.tfidf_features(train.texts, BinaryRelevance.defaults)
    features.clear_memory_cache()  # as a fresh worker process would start
    read = features.tfidf_features(train.texts, BinaryRelevance.defaults)
    assert (features.stats.fits, features.stats.disk_hits) == (0, 1)
    assert (read.X != made.X).nnz == 0 and read.vectorizer.vocabulary_ == made.vectorizer.vocabulary_
    entry = tmp_path / made.key
    (entry / "X.npz").write_bytes(b"damaged")
    features.clear_memory_cache()
    again = features.tfidf_features(train.texts, BinaryRelevance.defaults)
    assert features.stats.fits == 1 and "ignoring" in caplog.text
    assert (again.X != made.X).nnz == 0
    features.clear_memory_cache()
    features.tfidf_features(train.texts, BinaryRelevance.defaults)  # the rewritten entry is whole again
    assert features.stats.disk_hits == 1


def test_cli_first_screen_imports_no_numerical_library():
    code = (
        "import sys\n"
        "import mlbench.cli.main as cli\n"
        "for argv in (['--help'], ['list']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('numpy', 'scipy', 'torch', 'mlflow', 'optuna', 'sklearn') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    # third-party plugins are imported to describe them (a broken one must show as a row): an installed
    # plugin that imports numpy is its own cost, so only the project's own first screen is measured here
    env = {**os.environ, "MLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert "HEAVY []" in out and "br " in out
