"""The neural methods end to end on a small synthetic task: fit, predict, determinism, save/load, thresholds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mlbench.api import FitContext, MlbenchError
from mlbench.tasks.synthetic import SyntheticDataset


@pytest.fixture(scope="module")
def synthetic_task():
    return SyntheticDataset(n_docs=300, n_labels=8, vocab_size=300, doc_len=30).load()


@pytest.mark.parametrize("name", ["xml-cnn", "cnn-rnn"])
def test_method_fits_predicts_deterministically_and_round_trips(name, synthetic_task, tmp_path) -> None:
    from mlbench.metrics import micro_precision_recall_f1
    from mlbench.registry import get_method

    cls = get_method(name)
    task = synthetic_task

    def fit():
        torch.manual_seed(123)  # fit must not depend on the global generator's state
        m = cls(**cls.contract_params)
        m.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False))
        return m

    model = fit()
    pred = model.predict(task.test)
    assert sp.issparse(pred) and pred.shape == (len(task.test), task.n_labels)
    assert micro_precision_recall_f1(task.test.Y, pred)[2] > 0.5
    assert (fit().predict(task.test) != pred).nnz == 0
    model.save(tmp_path / "saved")
    again = cls.load(tmp_path / "saved")
    assert (again.predict(task.test) != pred).nnz == 0
    if model.supports_scores:
        assert np.allclose(again.predict_scores(task.test), model.predict_scores(task.test))


def test_method_modules_do_not_import_torch() -> None:
    code = "import sys, mlbench.methods.xml_cnn, mlbench.methods.cnn_rnn; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_xml_cnn_valid_threshold_is_chosen_on_validation_and_saved(synthetic_task, tmp_path) -> None:
    from mlbench.methods.xml_cnn import XMLCNN
    from mlbench.metrics import best_micro_f1_threshold, micro_precision_recall_f1

    task = synthetic_task
    model = XMLCNN(**{**XMLCNN.contract_params, "epochs": 3, "threshold": "valid"})
    model.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False))
    valid_scores = model.predict_scores(task.valid)
    expected, f1 = best_micro_f1_threshold(task.valid.Y, valid_scores)
    assert model.threshold_ == pytest.approx(expected)
    pred = model.predict(task.valid)
    assert (pred != sp.csr_matrix(valid_scores >= expected)).nnz == 0
    assert micro_precision_recall_f1(task.valid.Y, pred)[2] == pytest.approx(f1)
    assert f1 >= micro_precision_recall_f1(task.valid.Y, sp.csr_matrix(valid_scores >= 0.5))[2]
    model.save(tmp_path / "saved")
    assert XMLCNN.load(tmp_path / "saved").threshold_ == pytest.approx(expected)


def test_xml_cnn_min_labels_gives_every_document_its_best_labels(synthetic_task, tmp_path) -> None:
    from mlbench.methods.xml_cnn import XMLCNN
    from mlbench.metrics import best_micro_f1_threshold, micro_precision_recall_f1, top_labels_mask

    task = synthetic_task
    ctx = FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False)
    # a threshold few scores reach: without min_labels most documents get nothing
    strict = XMLCNN(**{**XMLCNN.contract_params, "epochs": 2, "threshold": 0.95}).fit(task.train, task.valid, ctx)
    scores = strict.predict_scores(task.test)
    bare = strict.predict(task.test)
    assert (np.diff(bare.indptr) == 0).sum() > 0
    strict.params["min_labels"] = 2
    topped = strict.predict(task.test)
    expected = (scores >= 0.95) | top_labels_mask(scores, 2)
    assert (topped != sp.csr_matrix(expected)).nnz == 0 and (np.diff(topped.indptr) >= 2).all()
    # the validation threshold is chosen with the same rule, and saved with the model
    model = XMLCNN(**{**XMLCNN.contract_params, "epochs": 3, "threshold": "valid", "min_labels": 1})
    model.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt2", progress=False))
    valid_scores = model.predict_scores(task.valid)
    t, f1 = best_micro_f1_threshold(task.valid.Y, valid_scores, min_labels=1)
    assert model.threshold_ == pytest.approx(t)
    assert micro_precision_recall_f1(task.valid.Y, model.predict(task.valid))[2] == pytest.approx(f1)
    model.save(tmp_path / "saved")
    loaded = XMLCNN.load(tmp_path / "saved")
    assert loaded.params["min_labels"] == 1 and (loaded.predict(task.test) != model.predict(task.test)).nnz == 0
    with pytest.raises(MlbenchError, match="min_labels"):
        XMLCNN(min_labels=-1)


@pytest.mark.parametrize("bad", [0, 1.0, "best", True, None])
def test_xml_cnn_rejects_bad_thresholds(bad) -> None:
    from mlbench.methods.xml_cnn import XMLCNN

    with pytest.raises(MlbenchError, match="threshold"):
        XMLCNN(threshold=bad)
