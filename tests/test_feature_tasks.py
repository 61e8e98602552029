"""Feature tasks in the contract: a split carries a feature matrix instead of texts, a method declares what it
reads, an incompatible pair is refused by `run` before any data is read and skipped by `bench`, and every
built-in that reads features learns a feature task and saves and reloads on it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mlbench.api import FEATURES, TEXT, FitContext, Split, incompatibility
from mlbench.cli.main import main
from mlbench.contract import seed_everything
from mlbench.data.build import build_feature_task
from mlbench.data.synthetic import contract_tasks
from mlbench.metrics import micro_precision_recall_f1
from mlbench.registry import get_method, method_names

PLUGIN = '''
import numpy as np
from mlbench.api import FEATURES, Dataset
from mlbench.data.build import build_feature_task


class Blobs(Dataset):
    name = "blobs"
    description = "two labels over dense features"
    inputs = frozenset({FEATURES})

    def load(self, data_dir=None, seed=0):
        if __import__("os").environ.get("BLOBS_NO_LOAD"):
            raise AssertionError("the data was read")
        rng = np.random.default_rng(0)
        Y = (rng.random((400, 3)) < 0.4).astype(int)
        X = Y @ rng.normal(size=(3, 6)) + 0.3 * rng.normal(size=(400, 6))
        return build_feature_task("blobs", "blobs", X[:300], Y[:300], X[300:], Y[300:], ["a", "b", "c"])
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLBENCH_NO_PROGRESS", "1")
    path = tmp_path / "blobs.py"
    path.write_text(PLUGIN)
    return str(path)


def test_a_split_carries_features_instead_of_texts():
    task = contract_tasks().features.main
    assert task.inputs == {FEATURES} and task.train.texts == () and task.train.n_features > 0
    sub = task.train.subset([0, 2])
    assert sub.X.shape == (2, task.train.n_features) and sub.inputs == {FEATURES}
    with pytest.raises(ValueError, match="X has shape"):
        Split.build("x", ["a"], (), [[0]], ("l",), X=np.zeros((2, 3)))
    assert contract_tasks().main.inputs == {TEXT}


def test_incompatibility_names_what_each_side_reads():
    assert incompatibility(get_method("br"), frozenset({FEATURES}), "t") == ""
    assert incompatibility(get_method("minilm"), frozenset({FEATURES}), "t") == (
        "method 'minilm' reads text; task 't' offers features")


def test_run_refuses_an_incompatible_pair_before_any_data_is_read(plugin, monkeypatch, capsys):
    monkeypatch.setenv("BLOBS_NO_LOAD", "1")
    assert main(["run", "--method", "minilm", "--task", "blobs", "--no-tracking", "--plugin", plugin]) == 2
    assert capsys.readouterr().err.strip() == "mlbench: error: method 'minilm' reads text; task 'blobs' offers features"


@pytest.mark.slow
def test_bench_skips_an_incompatible_cell_with_its_reason(plugin, capsys):
    suite = "suite.yaml"
    open(suite, "w").write("name: s\nmethods: [br, minilm]\ntasks: [blobs, blobs-trim1]\nseeds: [0]\n")
    assert main(["bench", suite, "--plugin", plugin, "-q"]) == 0
    captured = capsys.readouterr()
    assert "2 run, 0 already complete, 0 failed, 2 skipped (the method cannot read the task)" in captured.out
    assert "minilm on blobs seed 0: skipped, method 'minilm' reads text; task 'blobs' offers features" in captured.err


@pytest.mark.parametrize("name", [m for m in method_names() if FEATURES in get_method(m).inputs])
@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_every_method_that_reads_features_learns_them_and_reloads(name, kind, tmp_path):
    ident = contract_tasks().features.identity
    to = (lambda X: X) if kind == "sparse" else (lambda X: X.toarray())
    task = build_feature_task("t", "t", to(sp.vstack([ident.train.X, ident.valid.X])),
                              sp.vstack([ident.train.Y, ident.valid.Y]), to(ident.test.X), ident.test.Y,
                              list(ident.labels))
    cls = get_method(name)
    seed_everything(0)
    model = cls(**cls.contract_params).fit(task.train, task.valid, FitContext(progress=False))
    pred = model.predict(task.test)
    assert micro_precision_recall_f1(task.test.Y, pred)[2] > 0.6
    if model.supports_save:
        model.save(tmp_path / "m")
        assert (cls.load(tmp_path / "m").predict(task.test) != pred).nnz == 0


def test_the_sequence_decoders_read_a_dense_task_as_a_few_projected_states():
    from mlbench.methods.neural.batching import collate

    ident = contract_tasks().features.identity
    task = build_feature_task("d", "d", sp.vstack([ident.train.X, ident.valid.X]).toarray(),
                              sp.vstack([ident.train.Y, ident.valid.Y]), ident.test.X.toarray(), ident.test.Y,
                              list(ident.labels))
    cls = get_method("seq2seq")
    for k, expected in ((4, 4), (0, None)):
        model = cls(**{**cls.contract_params, "feature_tokens": k, "epochs": 1})
        model.fit(task.train, task.valid, FitContext(progress=False))
        batch = collate(model.encode(task.test), np.arange(5))
        memory, _ = model.network_.encode(batch.tokens, batch.lengths, batch.values)
        assert memory.states.shape[1] == (expected or batch.tokens.shape[1])  # 0: one state per present feature
    sparse_model = cls(**{**cls.contract_params, "epochs": 1})
    sparse_model.fit(ident.train, ident.valid, FitContext(progress=False))
    assert sparse_model.network_.feature_tokens == 0  # sparse rows keep one state per active feature
