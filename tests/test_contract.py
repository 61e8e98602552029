"""Every registered method, plugins included, passes the method contract."""

from __future__ import annotations

import pytest

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
    assert len(results) == 8


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
