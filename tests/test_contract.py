"""The method contract: every registered method passes every check (one test id per method and check), and
each check catches the bug planted for it in a throwaway method."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mlbench.api import FEATURES, Method, MlbenchError, as_binary_csr
from mlbench.contract import (CHECKS, Session, check_column_identity, check_declarations, check_deterministic,
                              check_empty_documents, check_feature_task, check_fit_predict, check_learns_in_label_order,
                              check_param_specs, check_save_load, check_scores, check_scores_agree,
                              check_search_space, check_unseen_label, checks_for, column_swaps, run_check,
                              run_contract, score_agreement)
from mlbench.data.synthetic import UNSEEN_LABEL, contract_tasks
from mlbench.methods.br import BinaryRelevance
from mlbench.registry import get_method, method_names

NAME = {fn: name for name, fn in CHECKS}

# ----------------------------------------------------------------------------- every method, every check

#: One shared session (one fit) per method: the checks of a method reuse its fit, as `mlbench check` does.
_sessions: dict[str, Session] = {}


def _session(method: str) -> Session:
    if method not in _sessions:
        _sessions[method] = Session.start(get_method(method), contract_tasks())
    return _sessions[method]


@pytest.mark.parametrize("method, check", [(m, fn) for m in method_names() for _, fn in CHECKS],
                         ids=[f"{m}-{fn.__name__[len('check_'):]}" for m in method_names() for _, fn in CHECKS])
def test_every_method_passes_every_check(method, check):
    session = _session(method)
    ((name, applied),) = [(n, fn) for n, fn in checks_for(session.method_cls) if n == NAME[check]]
    result = run_check(name, applied, session)
    assert result.passed, f"{result.name}: {result.detail}"


def test_contract_tasks_have_what_the_checks_need():
    tasks = contract_tasks()
    task = tasks.main
    assert task.n_labels == 9 and tasks.unseen_label == UNSEEN_LABEL
    assert any(not t.strip() for t in task.train.texts)
    assert task.train.Y[:, task.labels.index(UNSEEN_LABEL)].nnz == 0
    assert task.test.Y[:, task.labels.index(UNSEEN_LABEL)].nnz > 0
    assert UNSEEN_LABEL not in tasks.without_unseen.labels and tasks.identity.n_labels == 6


def test_run_contract_runs_every_check_in_order():
    results = run_contract(BinaryRelevance, contract_tasks())
    assert [r.name for r in results] == [name for name, _ in CHECKS]
    assert all(r.passed for r in results) and len(results) == 13


# ----------------------------------------------------------------------------- a planted bug per check


class NoDescription(BinaryRelevance):
    name = "no-description"
    description = ""


class UndeclaredDefault(BinaryRelevance):
    name = "undeclared-default"
    defaults = {**BinaryRelevance.defaults, "extra": 1}


class DenseScores(BinaryRelevance):
    """predict returns the float score matrix instead of a sparse 0/1 one (once fitted)."""

    name = "dense-scores"

    def fit(self, train, valid, ctx):
        super().fit(train, valid, ctx)
        self.fitted_ = True
        return self

    def predict(self, split):
        return np.asarray(self.predict_scores(split)) if getattr(self, "fitted_", False) else super().predict(split)


class ShiftedColumns(BinaryRelevance):
    """Predictions one column off."""

    name = "shifted"

    def predict(self, split):
        return sp.csr_matrix(np.roll(super().predict(split).toarray(), 1, axis=1))


class SwappedSeenPair(BinaryRelevance):
    name = "swapped-seen-pair"

    def predict(self, split):
        dense = super().predict(split).toarray()
        dense[:, [1, 2]] = dense[:, [2, 1]]
        return sp.csr_matrix(dense)


class Unseeded(BinaryRelevance):
    """Thresholds at random: not reproducible under a seed."""

    name = "unseeded"

    def predict(self, split):
        return sp.csr_matrix(np.random.default_rng().random((len(split), split.n_labels)) < 0.3)


class FailsOnEmpty(BinaryRelevance):
    name = "fails-on-empty"

    def predict(self, split):
        if any(not t.strip() for t in split.texts) and len(split) < 10:
            raise ValueError("empty document")
        return super().predict(split)


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


class BlindToFeatures(BinaryRelevance):
    """Declares features but predicts nothing from them."""

    name = "blind-to-features"

    def predict(self, split):
        if not split.texts:
            return sp.csr_matrix((len(split), split.n_labels), dtype=np.int8)
        return super().predict(split)


class NaNScores(BinaryRelevance):
    name = "nan-scores"

    def predict_scores(self, split):
        s = np.asarray(super().predict_scores(split), dtype=float)
        s[0, 0] = np.nan
        return s


class ReversedScores(BinaryRelevance):
    name = "reversed-scores"

    def predict(self, split):  # right: thresholds the true scores
        return sp.csr_matrix(np.asarray(BinaryRelevance.predict_scores(self, split)) >= self.params["threshold"])

    def predict_scores(self, split):
        return np.asarray(super().predict_scores(split))[:, ::-1].copy()


class ForgetfulLoad(BinaryRelevance):
    name = "forgetful-load"

    @classmethod
    def load(cls, path):
        model = super().load(path)
        model.params = {**model.params, "threshold": 0.99}
        return model


class BadSearchSpace(BinaryRelevance):
    name = "bad-space"

    @classmethod
    def search_space(cls, trial):
        return {"C": trial.suggest_float("C", 1.0, 10.0), "no_such_param": 1}


PLANTED = [
    (NoDescription, check_declarations, "description"),
    (UndeclaredDefault, check_param_specs, "does not declare extra"),
    (DenseScores, check_fit_predict, "expected a scipy sparse matrix"),
    (ShiftedColumns, check_learns_in_label_order, "columns out of label order"),
    (SwappedSeenPair, check_column_identity, "fit the truth better exchanged"),
    (Unseeded, check_deterministic, "disagree on"),
    (FailsOnEmpty, check_empty_documents, "empty document"),
    (PredictsUnseen, check_unseen_label, "label never seen in training"),
    (CrashesOnUnseen, check_unseen_label, "succeeds without it"),
    (BlindToFeatures, check_feature_task, "as 0/1 features"),
    (NaNScores, check_scores, "non-finite"),
    (ReversedScores, check_scores_agree, "disagree with predict"),
    (ForgetfulLoad, check_save_load, "reloaded model disagrees"),
    (BadSearchSpace, check_search_space, "no_such_param"),
]


@pytest.mark.parametrize("method_cls, check, says", PLANTED, ids=[c.name for c, _, _ in PLANTED])
def test_each_check_catches_its_planted_bug(method_cls, check, says):
    result = run_check(NAME[check], check, Session.start(method_cls, contract_tasks()))
    assert result.status == "FAIL" and says in result.detail, result


def test_every_check_has_a_planted_bug():
    assert {check for _, check, _ in PLANTED} == {fn for _, fn in CHECKS}


def test_shifted_columns_fail_exactly_the_order_checks():
    results = run_contract(ShiftedColumns, contract_tasks())
    assert [r.name for r in results if not r.passed] == [
        NAME[check_learns_in_label_order], NAME[check_column_identity], NAME[check_feature_task]]


PLANTED_FILE = """
import numpy as np
import scipy.sparse as sp

from mlbench.methods.br import BinaryRelevance


class SwappedLastTwo(BinaryRelevance):
    name = "swapped-last-two"

    def predict(self, split):
        order = [*range(split.n_labels - 2), split.n_labels - 1, split.n_labels - 2]
        return sp.csr_matrix(super().predict(split).toarray()[:, order])
"""


def test_mlbench_check_prints_a_line_per_check_and_exits_1_on_a_failure(tmp_path, capsys):
    from mlbench.cli.main import main

    path = tmp_path / "planted.py"
    path.write_text(PLANTED_FILE)
    assert main(["check", "swapped-last-two", "--plugin", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {NAME[check_column_identity]}" in out
    assert sum(line.startswith(("  PASS", "  FAIL", "  SKIP")) for line in out.splitlines()) == len(CHECKS)


# ----------------------------------------------------------------------------- skips


class DeclaredNondeterministic(Unseeded):
    """Same randomness, but declared: the determinism check is skipped with the reason, not failed."""

    name = "declared-nondeterministic"
    nondeterministic = "thresholds at random on purpose"


class Bare(BinaryRelevance):
    """No scores, no save/load, no search space: those checks are skipped, not failed."""

    name = "bare"
    predict_scores = Method.predict_scores
    save = Method.save
    search_space = Method.__dict__["search_space"]

    def predict(self, split):
        from mlbench.methods.linear import sigmoid

        X = self.featurizer_(split)
        return as_binary_csr(sigmoid(np.asarray(X @ self.W_) + self.b_) >= 0.5, len(split), split.n_labels)


class FitFails(BinaryRelevance):
    name = "fit-fails"

    def fit(self, train, valid, ctx):
        raise MlbenchError("fit-fails: cannot learn anything")


def test_declared_nondeterminism_is_a_skip_with_its_reason():
    det = run_check(NAME[check_deterministic], check_deterministic,
                    Session.start(DeclaredNondeterministic, contract_tasks()))
    assert det.skipped and det.passed and det.status == "SKIP"
    assert "thresholds at random on purpose" in det.detail and "disagreed on" in det.detail


def test_parts_not_offered_are_skipped():
    results = run_contract(Bare, contract_tasks())
    assert not [r.name for r in results if not r.passed]
    assert {r.name for r in results if r.skipped} == {NAME[check_scores], NAME[check_scores_agree],
                                                      NAME[check_save_load], NAME[check_search_space]}


def test_a_failed_fit_is_one_failure_and_its_dependents_skip():
    results = run_contract(FitFails, contract_tasks())
    assert [(r.name, r.detail) for r in results if not r.passed] == [
        (NAME[check_fit_predict], "fit-fails: cannot learn anything")
    ]
    assert sum(r.skipped and r.detail == "fit failed" for r in results) == 8


def test_a_method_that_cannot_run_here_skips_every_check_with_the_reason():
    class NeedsAPackage(BinaryRelevance):
        name = "needs-a-package"

        @classmethod
        def unavailable(cls, params=None):
            return "install the some-weights package"

    results = run_contract(NeedsAPackage, contract_tasks())
    assert all(r.skipped and r.detail == "install the some-weights package" for r in results)


class FeaturesOnly(BinaryRelevance):
    name = "features-only"
    inputs = frozenset({FEATURES})


def test_a_method_that_reads_features_only_is_checked_on_the_feature_tasks():
    results = run_contract(FeaturesOnly, contract_tasks())
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert next(r for r in results if r.name == NAME[check_feature_task]).skipped
    assert Session.start(FeaturesOnly, contract_tasks()).tasks.main.inputs == {FEATURES}


# ----------------------------------------------------------------------------- helpers


def test_column_swaps_and_score_agreement_on_hand_examples():
    y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert column_swaps(y, y) == []
    swapped = y[:, [0, 2, 1]]
    assert [(i, j) for i, j, _ in column_swaps(y, swapped)] == [(1, 2)]
    scores = y + 0.1
    assert score_agreement(y, scores) == 1.0
    assert score_agreement(y, -scores) == 0.0
    assert score_agreement(np.zeros((2, 3)), np.zeros((2, 3))) is None
