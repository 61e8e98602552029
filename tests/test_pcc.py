"""PCC: the chain's training, beam search against brute force and greedy chaining, and the point of it all
(lower subset 0/1 loss than BR when labels depend on each other)."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from mlbench.api import FitContext, MlbenchError, Split, Task
from mlbench.data.build import Document, build_task
from mlbench.methods.br import BinaryRelevance
from mlbench.methods.pcc import ProbabilisticClassifierChain, chain_order
from mlbench.metrics import micro_precision_recall_f1, subset_zero_one_loss

GROUPS = ("sport", "politics")
#: Within a group exactly one label, with these probabilities: the marginals all stay below 0.5, so BR
#: predicts the empty set (never correct), while the most probable set is the group's first label.
WITHIN = (0.45, 0.30, 0.25)
CUE_RATE = 0.3  # how often a document names its own label; the others are ambiguous within their group


def dependent_docs(n: int, seed: int, extra_labels: tuple[str, ...] = ()) -> list[Document]:
    """Mutually exclusive labels given an ambiguous text signal.

    Each document belongs to a group (named by a word in the text) and carries
    exactly one of the group's three labels; only ``CUE_RATE`` of the documents
    contain a word naming that label. ``extra_labels`` ride on every document.
    """
    rng = np.random.default_rng(seed)
    noise = [f"w{i}" for i in range(60)]
    docs = []
    for i in range(n):
        g = int(rng.integers(len(GROUPS)))
        j = int(rng.choice(len(WITHIN), p=WITHIN))
        label = f"{GROUPS[g]}-{'abc'[j]}"
        words = [GROUPS[g], *rng.choice(noise, size=int(rng.integers(4, 10)))]
        if rng.random() < CUE_RATE:
            words.append(f"cue{label.replace('-', '')}")
        rng.shuffle(words)
        docs.append(Document(f"d{seed}-{i}", " ".join(words), (label, *extra_labels)))
    return docs


def dependent_task(n_train: int = 1200, n_test: int = 600, extra_labels: tuple[str, ...] = (), **kw) -> Task:
    return build_task(
        "dependent",
        "test",
        dependent_docs(n_train, 1, extra_labels),
        dependent_docs(200, 2, extra_labels),
        dependent_docs(n_test, 3, extra_labels),
        **kw,
    )


def fit(method, task: Task, seed: int = 0):
    return method.fit(task.train, task.valid, FitContext(seed=seed, progress=False))


@pytest.fixture(scope="module")
def task() -> Task:
    return dependent_task()


@pytest.fixture(scope="module")
def model(task) -> ProbabilisticClassifierChain:
    return fit(ProbabilisticClassifierChain(beam_width=5), task)


@pytest.fixture(scope="module")
def hierarchy_task() -> Task:
    """The synthetic generator's 8-label hierarchy (parents and children co-occur)."""
    from mlbench.data.synthetic import generate

    docs = generate(500, n_labels=8, vocab_size=300, doc_len=25, seed=11, empty_fraction=0.02)
    return build_task("hier", "synthetic", docs[:350], docs[350:400], docs[400:])


def with_beam(model: ProbabilisticClassifierChain, beam_width: int) -> ProbabilisticClassifierChain:
    """The same fitted chain decoding with another beam (the module's fixtures stay untouched)."""
    other = copy.copy(model)
    other.params = {**model.params, "beam_width": beam_width}
    return other


def features(model: ProbabilisticClassifierChain, split: Split) -> sp.csr_matrix:
    return model.featurizer_(split)


def brute_force_log_probs(model: ProbabilisticClassifierChain, X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Joint log p(y | x) of every one of the 2^L assignments (chain order), by enumeration."""
    L = model.W_text_.shape[1]
    text = np.asarray(X @ model.W_text_, dtype=np.float64) + model.bias_
    sets = np.array(list(itertools.product((0, 1), repeat=L)), dtype=np.float64)  # 2^L x L
    # logit of link k under assignment y: text part + sum over earlier labels i of W_label[k, i] y_i
    W_label = np.tril(model.W_label_.astype(np.float64), k=-1)
    logits = text[:, None, :] + (sets @ W_label.T)[None, :, :]  # n x 2^L x L
    sign = 2 * sets - 1
    log_probs = -np.logaddexp(0.0, -sign[None] * logits).sum(axis=2)
    return sets, log_probs


def greedy_chain(model: ProbabilisticClassifierChain, X: sp.csr_matrix) -> np.ndarray:
    """Plain classifier chain: each label in turn, 1 when its probability exceeds 0.5 (chain order)."""
    L = model.W_text_.shape[1]
    text = np.asarray(X @ model.W_text_, dtype=np.float64) + model.bias_
    y = np.zeros((X.shape[0], L), dtype=np.int8)
    for k in range(L):
        y[:, k] = text[:, k] + y[:, :k] @ model.W_label_[k, :k].astype(np.float64) > 0
    return y


@pytest.mark.parametrize("which", ["dependent", "hierarchy"])
def test_full_beam_is_the_exhaustive_argmax(which, model, task, hierarchy_task):
    if which == "hierarchy":
        task = hierarchy_task
        model = fit(ProbabilisticClassifierChain(C=10.0), task)
    L = task.n_labels
    assert L <= 10
    X = features(model, task.test)
    sets, log_probs = brute_force_log_probs(model, X)
    assign, beam_lp, _ = model.beam_search(X, 2**L)
    assert beam_lp.shape == (len(task.test), 2**L) and np.isfinite(beam_lp).all()
    # the beam holds every assignment, best first, with the brute-force probabilities
    np.testing.assert_allclose(beam_lp, -np.sort(-log_probs, axis=1), rtol=0, atol=1e-9)
    best = log_probs.argmax(axis=1)
    np.testing.assert_array_equal(assign[:, 0, :], sets[best].astype(np.int8))
    # and predict() returns that argmax in the task's columns
    pred = with_beam(model, 2**L).predict(task.test).toarray()
    expected = np.zeros_like(pred)
    expected[:, model.order_] = sets[best]
    np.testing.assert_array_equal(pred, expected)


def test_full_beam_scores_are_the_exact_marginals(model, task):
    L = task.n_labels
    X = features(model, task.test)
    sets, log_probs = brute_force_log_probs(model, X)
    p = np.exp(log_probs - log_probs.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    exact = np.zeros((len(task.test), L))
    exact[:, model.order_] = p @ sets
    np.testing.assert_allclose(with_beam(model, 2**L).predict_scores(task.test), exact, atol=1e-5)


def test_narrow_beam_log_prob_is_that_of_its_assignment(hierarchy_task):
    model = fit(ProbabilisticClassifierChain(C=10.0), hierarchy_task)
    X = features(model, hierarchy_task.test)
    sets, log_probs = brute_force_log_probs(model, X)
    index = {tuple(s): i for i, s in enumerate(sets.astype(int))}
    assign, beam_lp, _ = model.beam_search(X, 3)
    for d in range(X.shape[0]):
        for s in range(3):
            assert beam_lp[d, s] == pytest.approx(log_probs[d, index[tuple(assign[d, s])]], abs=1e-9)
        # a beam of 3 finds at least the greedy assignment's probability
        greedy = greedy_chain(model, X[d])[0]
        assert beam_lp[d, 0] >= log_probs[d, index[tuple(greedy)]] - 1e-9


def test_beam_width_one_is_the_greedy_chain(model, task, hierarchy_task):
    for t, m in ((task, model), (hierarchy_task, fit(ProbabilisticClassifierChain(C=10.0), hierarchy_task))):
        X = features(m, t.test)
        assign, _, cond = m.beam_search(X, 1)
        greedy = greedy_chain(m, X)
        np.testing.assert_array_equal(assign[:, 0, :], greedy)
        m = with_beam(m, 1)
        # with one beam the scores are the chain's conditional probabilities along the greedy path
        scores = m.predict_scores(t.test)[:, m.order_]
        np.testing.assert_allclose(scores, cond[:, 0, :], atol=1e-6)
        np.testing.assert_array_equal(m.predict(t.test).toarray()[:, m.order_], greedy)


def test_chain_matches_scikit_learns_classifier_chain(hierarchy_task, monkeypatch):
    """Our links are scikit-learn's ClassifierChain links: same features, same regressions, same greedy output.

    Both solve the same LIBLINEAR problem with different copies of the solver, whose stopping points
    differ at a loose tolerance; solved to 1e-6 the weights agree closely, not to the last bit.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import ClassifierChain

    from mlbench.methods import linear

    monkeypatch.setattr(linear, "SOLVER_TOL", 1e-6)
    t = hierarchy_task
    model = fit(ProbabilisticClassifierChain(C=10.0, order="random", beam_width=1), t, seed=3)
    X_train = model.featurizer_(t.train)
    lr = LogisticRegression(C=10.0, solver="liblinear", tol=1e-6, random_state=3, max_iter=1000)
    chain = ClassifierChain(lr, order=list(model.order_)).fit(X_train, t.train.Y.toarray())
    for k, est in enumerate(chain.estimators_):
        np.testing.assert_allclose(est.coef_.ravel(), np.r_[model.W_text_[:, k], model.W_label_[k, :k]], rtol=1e-2, atol=5e-3)
        assert est.intercept_[0] == pytest.approx(model.bias_[k], rel=1e-2, abs=5e-3)
    np.testing.assert_array_equal(model.predict(t.test).toarray(), chain.predict(features(model, t.test)))


def test_pcc_beats_br_on_subset_loss_when_labels_depend(task):
    # C=1 keeps both models calibrated; with weak regularisation BR overfits the noise words into
    # confident guesses that narrow the gap (measured: BR 0.67 / greedy CC 0.49 / PCC b=5 0.41 at C=1).
    br = fit(BinaryRelevance(C=1.0), task)
    br_loss = subset_zero_one_loss(task.test.Y, br.predict(task.test))
    pcc = fit(ProbabilisticClassifierChain(C=1.0), task)
    greedy_loss = subset_zero_one_loss(task.test.Y, with_beam(pcc, 1).predict(task.test))
    for b in (5, 10):
        pcc_loss = subset_zero_one_loss(task.test.Y, with_beam(pcc, b).predict(task.test))
        # BR predicts the empty set for the ambiguous documents (~70% of them), PCC their likeliest label
        assert pcc_loss < br_loss - 0.15, (b, pcc_loss, br_loss)
        assert pcc_loss < greedy_loss, (b, pcc_loss, greedy_loss)


def test_chain_order_policies(task):
    labels = task.labels
    np.testing.assert_array_equal(chain_order("frequency", labels, 0), np.arange(len(labels)))
    r0, r0b, r1 = chain_order("random", labels, 0), chain_order("random", labels, 0), chain_order("random", labels, 1)
    assert sorted(r0) == list(range(len(labels)))
    np.testing.assert_array_equal(r0, r0b)
    assert not np.array_equal(r0, r1)
    explicit = chain_order(f"{labels[4]}, {labels[1]}", labels, 0)
    np.testing.assert_array_equal(explicit, [4, 1, 0, 2, 3, 5])
    full = ",".join(reversed(labels))
    np.testing.assert_array_equal(chain_order(full, labels, 0), np.arange(len(labels))[::-1])
    with pytest.raises(MlbenchError, match="unknown label"):
        chain_order("nosuchlabel", labels, 0)
    with pytest.raises(MlbenchError, match="twice"):
        chain_order(f"{labels[0]},{labels[0]}", labels, 0)


@pytest.mark.parametrize("order", ["random", "explicit"])
def test_other_orders_predict_in_task_columns(order, task, model):
    if order == "explicit":
        order = ",".join(reversed(task.labels))
    other = fit(ProbabilisticClassifierChain(beam_width=5, order=order), task, seed=1)
    assert not np.array_equal(other.order_, np.arange(task.n_labels))
    # labels exclude each other within a group: a column mix-up would wreck F1
    _, _, f1 = micro_precision_recall_f1(task.test.Y, other.predict(task.test))
    _, _, f1_freq = micro_precision_recall_f1(task.test.Y, model.predict(task.test))
    assert f1 > 0.5 and abs(f1 - f1_freq) < 0.05


def test_constant_and_unseen_labels_do_not_crash():
    # "always" rides on every document, "never" is in the label space but on no document
    labels = {f"{g}-{c}" for g in GROUPS for c in "abc"} | {"always", "never"}
    t = dependent_task(400, 200, extra_labels=("always",), label_set=labels)
    m = fit(ProbabilisticClassifierChain(beam_width=4, order="random"), t)
    pred = m.predict(t.test).toarray()
    assert (pred[:, t.labels.index("never")] == 0).all()
    assert (pred[:, t.labels.index("always")] == 1).all()
    scores = m.predict_scores(t.test)
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1 + 1e-6).all()


def test_empty_documents_and_empty_split(model, task):
    empty = Split.build("e", ["a", "b"], ["", "   "], [[0], []], task.labels)
    assert model.predict(empty).shape == (2, task.n_labels)
    assert model.predict_scores(empty).shape == (2, task.n_labels)
    none = Split.build("n", [], [], [], task.labels)
    assert model.predict(none).shape == (0, task.n_labels)
    assert model.predict_scores(none).shape == (0, task.n_labels)


def test_beam_wider_than_the_label_space_and_chunking(model, task, monkeypatch):
    import mlbench.methods.pcc as pcc

    X = features(model, task.test)
    a_full, lp_full, _ = model.beam_search(X, 10**6)  # capped at 2^L beams
    assert lp_full.shape[1] == 2**task.n_labels
    monkeypatch.setattr(pcc, "DECODE_CHUNK", 7)
    a_chunked, lp_chunked, _ = model.beam_search(X, 10**6)
    np.testing.assert_array_equal(a_full, a_chunked)
    np.testing.assert_allclose(lp_full, lp_chunked)


def test_save_load_and_determinism(model, task, tmp_path):
    path = tmp_path / "pcc.pkl"
    model.save(path)
    again = ProbabilisticClassifierChain.load(path)
    assert again.params == model.params
    assert (again.predict(task.test) != model.predict(task.test)).nnz == 0
    refit = fit(ProbabilisticClassifierChain(**model.params), task)
    assert (refit.predict(task.test) != model.predict(task.test)).nnz == 0


def test_bad_parameters():
    with pytest.raises(MlbenchError, match="no parameter"):
        ProbabilisticClassifierChain(beam=3)
    t = dependent_task(100, 50)
    with pytest.raises(MlbenchError, match="beam_width"):
        fit(ProbabilisticClassifierChain(beam_width=0), t)
    with pytest.raises(MlbenchError, match="unknown label"):
        fit(ProbabilisticClassifierChain(order="sport-a,nope"), t)
    assert ProbabilisticClassifierChain(preset="paper").params["beam_width"] >= 10


def test_search_space_draws_valid_params():
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = ProbabilisticClassifierChain.search_space(trial)
    m = ProbabilisticClassifierChain(**params)
    assert m.params["order"] in ("frequency", "random") and m.params["beam_width"] >= 1
