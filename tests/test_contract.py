"""Every registered method, plugins included, passes the method contract."""

from __future__ import annotations

import pytest

from mlbench.api import Method
from mlbench.contract import contract_task, run_contract
from mlbench.registry import get_method, method_names


COLUMN_CHECK = "each column predicts its own label (no two columns fit better exchanged)"
SCORES_CHECK = "predict_scores ranks predicted labels above the others (if offered)"
UNSEEN_CHECK = "handles a label never seen in training"


def test_contract_task_has_what_the_checks_need():
    task = contract_task()
    assert task.n_labels == 9
    assert any(not t.strip() for t in task.train.texts)
    assert task.train.Y[:, task.labels.index("zz-never-in-train")].nnz == 0
    assert task.test.Y[:, task.labels.index("zz-never-in-train")].nnz > 0


@pytest.mark.parametrize("name", method_names())
def test_method_contract(name):
    results = run_contract(get_method(name))
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert len(results) == 12


class _ShiftedColumns(get_method("br")):
    """A BR whose predictions come out one column off: the contract must catch it."""

    name = "shifted"

    def predict(self, split):
        import numpy as np
        import scipy.sparse as sp

        dense = super().predict(split).toarray()
        return sp.csr_matrix(np.roll(dense, 1, axis=1))


class _Unseeded(get_method("br")):
    """Thresholds at random: not reproducible under a seed."""

    name = "unseeded"

    def predict(self, split):
        import numpy as np
        import scipy.sparse as sp

        rng = np.random.default_rng()
        return sp.csr_matrix(rng.random((len(split), split.n_labels)) < 0.3)


def test_contract_catches_columns_out_of_order():
    results = {r.name: r for r in run_contract(_ShiftedColumns)}
    bad = [r for r in results.values() if not r.passed]
    assert [r.name for r in bad] == ["learns the easy task in label order (micro-F1 >= 0.5)", COLUMN_CHECK]


def test_contract_catches_nondeterminism():
    results = {r.name: r.passed for r in run_contract(_Unseeded)}
    assert results["deterministic under a seed"] is False


class _DeclaredNondeterministic(_Unseeded):
    """Same randomness, but declared: the determinism check is skipped with the reason, not failed."""

    name = "declared-nondeterministic"
    nondeterministic = "thresholds at random on purpose"


class _Bare(get_method("br")):
    """No scores, no save/load, no search space: those checks are skipped, not failed."""

    name = "bare"
    predict_scores = Method.predict_scores
    save = Method.save
    search_space = Method.__dict__["search_space"]

    def predict(self, split):
        import numpy as np

        from mlbench.api import as_binary_csr
        from mlbench.methods.linear import sigmoid

        X = self.vectorizer_.transform(split.texts)
        return as_binary_csr(sigmoid(np.asarray(X @ self.W_) + self.b_) >= 0.5, len(split), split.n_labels)


class _BadSearchSpace(get_method("br")):
    name = "bad-space"

    @classmethod
    def search_space(cls, trial):
        return {"C": trial.suggest_float("C", 1.0, 10.0), "no_such_param": 1}


def test_declared_nondeterminism_is_a_skip_with_its_reason():
    results = {r.name: r for r in run_contract(_DeclaredNondeterministic)}
    det = results["deterministic under a seed"]
    assert det.skipped and det.passed and det.status == "SKIP"
    assert "thresholds at random on purpose" in det.detail and "disagreed on" in det.detail


def test_parts_not_offered_are_skipped():
    results = {r.name: r for r in run_contract(_Bare)}
    assert not [r.name for r in results.values() if not r.passed]
    skipped = {name for name, r in results.items() if r.skipped}
    assert skipped == {
        "predict_scores shape and finiteness (if offered)",
        SCORES_CHECK,
        "save/load round trip (if offered)",
        "search space draws known parameters (if offered)",
    }


def test_search_space_with_unknown_parameter_fails():
    results = {r.name: r for r in run_contract(_BadSearchSpace)}
    bad = results["search space draws known parameters (if offered)"]
    assert not bad.passed and "no_such_param" in bad.detail


class _FitFails(get_method("br")):
    name = "fit-fails"

    def fit(self, train, valid, ctx):
        from mlbench.api import MlbenchError

        raise MlbenchError("fit-fails: cannot learn anything")


def test_a_failed_fit_is_one_failure_and_its_dependents_skip():
    results = run_contract(_FitFails)
    failed = [r for r in results if not r.passed]
    assert [(r.name, r.detail) for r in failed] == [
        ("fit/predict returns a sparse 0/1 matrix of the right shape", "fit-fails: cannot learn anything")
    ]
    assert sum(r.skipped and r.detail == "fit failed" for r in results) == 7


# ---- planted column bugs: each must fail its check, and `mlbench check` must exit 1

PLANTED = """
import numpy as np
import scipy.sparse as sp

from mlbench.methods.br import BinaryRelevance


class SwappedLastTwo(BinaryRelevance):
    name = "swapped-last-two"

    def predict(self, split):
        return sp.csr_matrix(super().predict(split).toarray()[:, [*range(split.n_labels - 2), split.n_labels - 1, split.n_labels - 2]])


class SwappedSeenPair(BinaryRelevance):
    name = "swapped-seen-pair"

    def predict(self, split):
        dense = super().predict(split).toarray()
        dense[:, [5, 6]] = dense[:, [6, 5]]
        return sp.csr_matrix(dense)


class ReversedScores(BinaryRelevance):
    name = "reversed-scores"

    def predict(self, split):  # right: thresholds the true scores
        return sp.csr_matrix(np.asarray(BinaryRelevance.predict_scores(self, split)) >= self.params["threshold"])

    def predict_scores(self, split):
        return np.asarray(super().predict_scores(split))[:, ::-1].copy()


class PredictsUnseen(BinaryRelevance):
    name = "predicts-unseen"

    def predict(self, split):
        dense = super().predict(split).toarray()
        dense[:, -1] = dense[:, 0]  # the unseen label copied from the most frequent one
        return sp.csr_matrix(dense)


class CrashesOnUnseen(BinaryRelevance):
    name = "crashes-on-unseen"

    def fit(self, train, valid, ctx):
        if (np.asarray(train.Y.sum(axis=0)).ravel() == 0).any():
            raise ValueError("a label has no positive example")
        return super().fit(train, valid, ctx)
"""


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugins") / "planted.py"
    path.write_text(PLANTED)
    from mlbench.registry import load_plugin_file

    load_plugin_file(str(path))
    return path


@pytest.mark.parametrize("method, check", [
    ("swapped-last-two", COLUMN_CHECK),
    ("swapped-seen-pair", COLUMN_CHECK),
    ("reversed-scores", SCORES_CHECK),
    ("predicts-unseen", UNSEEN_CHECK),
    ("crashes-on-unseen", UNSEEN_CHECK),
])
def test_planted_column_bugs_fail_their_check(planted, method, check, capsys):
    results = {r.name: r for r in run_contract(get_method(method))}
    assert results[check].status == "FAIL", results[check]
    from mlbench.cli import main

    assert main(["check", method, "--plugin", str(planted)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {check}" in out


def test_column_swaps_and_score_agreement_on_hand_examples():
    import numpy as np

    from mlbench.contract import column_swaps, score_agreement

    y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert column_swaps(y, y) == []
    swapped = y[:, [0, 2, 1]]
    assert [(i, j) for i, j, _ in column_swaps(y, swapped)] == [(1, 2)]
    scores = y + 0.1
    assert score_agreement(y, scores) == 1.0
    assert score_agreement(y, -scores) == 0.0
    assert score_agreement(np.zeros((2, 3)), np.zeros((2, 3))) is None
