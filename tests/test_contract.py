"""Every registered method, plugins included, passes the method contract."""

from __future__ import annotations

import pytest

from mlbench.api import Method
from mlbench.contract import contract_task, run_contract
from mlbench.registry import get_method, method_names


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
    assert len(results) == 10


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
    assert [r.name for r in bad] == ["learns the easy task in label order (micro-F1 >= 0.5)"]


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
    assert sum(r.skipped and r.detail == "fit failed" for r in results) == 6
