"""The neural methods' data path: the token cache and batches built in DataLoader workers."""

from __future__ import annotations

import json
import multiprocessing
import pickle

import numpy as np
import pytest
import torch

from mlbench.api import FitContext
from mlbench.methods.neural import token_cache as cache_module
from mlbench.methods.neural.batching import Collator, LengthBucketSampler, encode_label_sequences, iterate_batches
from mlbench.methods.neural.text import EncodedTexts, build_and_encode, encode_texts
from mlbench.methods.neural.token_cache import CACHE_ENV, TokenCache, split_digest, texts_digest
from mlbench.tasks.synthetic import SyntheticDataset

TINY_XML_CNN = {"embedding_dim": 8, "windows": [2], "filters": 8, "chunks": 2, "hidden": 16, "epochs": 2,
                "batch_size": 32, "vocab_size": 200, "max_len": 20, "patience": None}


@pytest.fixture(scope="module")
def task():
    return SyntheticDataset(n_docs=300, n_labels=8, vocab_size=300, doc_len=30).load()


@pytest.fixture
def counted(monkeypatch):
    """Counts the tokenizing calls the cache makes (a hit makes none)."""
    calls = {"build_and_encode": 0, "encode_texts": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(cache_module, "build_and_encode", counting("build_and_encode", build_and_encode))
    monkeypatch.setattr(cache_module, "encode_texts", counting("encode_texts", encode_texts))
    return calls


def _fit(task, tmp_path, **params):
    from mlbench.methods.xml_cnn import XMLCNN

    method = XMLCNN(**{**TINY_XML_CNN, **params})
    method.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False))
    return method


# ------------------------------------------------------------------ token cache


def test_a_second_fit_reads_the_tokenized_corpus_from_the_cache(task, tmp_path, monkeypatch, counted) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "tokens"))
    first = _fit(task, tmp_path)
    assert counted == {"build_and_encode": 1, "encode_texts": 1}  # train (with the vocabulary), then valid
    pred = first.predict(task.test)
    assert counted["encode_texts"] == 2
    second = _fit(task, tmp_path)
    assert counted == {"build_and_encode": 1, "encode_texts": 2}  # nothing tokenized again
    assert second.vocab_.tokens == first.vocab_.tokens
    assert (second.predict(task.test) != pred).nnz == 0
    assert counted["encode_texts"] == 2
    entries = sorted(p.name.split("-")[0] for p in (tmp_path / "tokens").iterdir() if not p.name.startswith("."))
    assert entries == ["encoded", "encoded", "encoded", "vocab"]  # train, valid, test; one vocabulary


def test_text_settings_key_the_cache(task, tmp_path, monkeypatch, counted) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "tokens"))
    _fit(task, tmp_path)
    _fit(task, tmp_path, max_len=10)  # same vocabulary, other encodings
    assert counted == {"build_and_encode": 1, "encode_texts": 3}
    _fit(task, tmp_path, vocab_size=100)  # another vocabulary: tokenized again
    assert counted == {"build_and_encode": 2, "encode_texts": 4}
    _fit(task, tmp_path, vocab_size=100, min_count=2)
    assert counted["build_and_encode"] == 3


def test_fits_with_and_without_the_cache_agree(task, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    plain = _fit(task, tmp_path)
    assert not isinstance(plain.encode(task.test).ids, np.memmap)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "tokens"))
    cold, warm = _fit(task, tmp_path), _fit(task, tmp_path)
    assert isinstance(warm.encode(task.test).ids, np.memmap)
    pred = plain.predict(task.test)
    for method in (cold, warm):
        assert method.vocab_.tokens == plain.vocab_.tokens
        assert (method.predict(task.test) != pred).nnz == 0
        assert np.array_equal(method.predict_scores(task.test), plain.predict_scores(task.test))
    assert not (tmp_path / "off").exists()


def test_an_unusable_cache_folder_means_no_cache(task, tmp_path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    texts = task.valid.texts
    cache = TokenCache(blocker / "tokens")
    vocab, encoded = cache.vocabulary_and_encoding(texts, texts_digest(texts), max_size=50, min_count=1, max_len=8)
    assert not cache.enabled and "cannot use" in caplog.text
    assert np.array_equal(encoded.ids, build_and_encode(texts, 50, 1, 8)[1].ids)


def _entry(root, kind):
    (folder,) = [p for p in root.iterdir() if p.name.startswith(kind)]
    return folder


@pytest.mark.parametrize(
    "damage",
    ["no metadata", "truncated ids", "ids out of range", "bad offsets", "garbage metadata", "other vocabulary"],
)
def test_damaged_entries_are_rebuilt_not_used(task, tmp_path, damage, counted) -> None:
    cache = TokenCache(tmp_path)
    texts = task.train.texts
    digest = texts_digest(texts)
    vocab, mapped = cache.vocabulary_and_encoding(texts, digest, max_size=100, min_count=1, max_len=12)
    # a private copy: the damage below rewrites the mapped files in place, which the cache itself never does
    expected = EncodedTexts(ids=np.array(mapped.ids), offsets=np.array(mapped.offsets))
    del mapped
    folder = _entry(tmp_path, "encoded")
    if damage == "no metadata":  # what a writer killed before its last file leaves
        (folder / "meta.json").unlink()
    elif damage == "truncated ids":
        data = (folder / "ids.npy").read_bytes()
        (folder / "ids.npy").write_bytes(data[: len(data) // 2])
    elif damage == "ids out of range":
        ids = np.load(folder / "ids.npy")
        ids[3] = len(vocab) + 5
        np.save(folder / "ids.npy", ids)
    elif damage == "bad offsets":
        offsets = np.load(folder / "offsets.npy")
        offsets[1], offsets[2] = offsets[2], offsets[1]
        np.save(folder / "offsets.npy", offsets)
    elif damage == "garbage metadata":
        (folder / "meta.json").write_text("{not json")
    elif damage == "other vocabulary":
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps({**meta, "vocabulary": "0" * 32}))
    again = TokenCache(tmp_path).encoding(texts, digest, vocab, 12)
    assert counted["encode_texts"] == 1  # rebuilt from the texts
    assert np.array_equal(again.ids, expected.ids) and np.array_equal(again.offsets, expected.offsets)
    assert TokenCache(tmp_path).encoding(texts, digest, vocab, 12) is not None and counted["encode_texts"] == 1


def test_a_damaged_vocabulary_is_rebuilt(task, tmp_path, counted) -> None:
    texts = task.train.texts
    vocab, _ = TokenCache(tmp_path).vocabulary_and_encoding(texts, texts_digest(texts), max_size=50, min_count=1, max_len=None)
    (_entry(tmp_path, "vocab") / "vocab.json").write_text(json.dumps(["<pad>", "<unk>", "zz"]))
    again, _ = TokenCache(tmp_path).vocabulary_and_encoding(texts, texts_digest(texts), max_size=50, min_count=1, max_len=None)
    assert again.tokens == vocab.tokens and counted["build_and_encode"] == 2


def test_leftovers_of_interrupted_writes_are_ignored(task, tmp_path) -> None:
    (tmp_path / ".tmp-encoded-abc-123").mkdir()
    (tmp_path / ".tmp-encoded-abc-123" / "ids.npy").write_bytes(b"partial")
    texts = task.valid.texts
    vocab, encoded = TokenCache(tmp_path).vocabulary_and_encoding(texts, texts_digest(texts), max_size=80, min_count=1, max_len=8)
    assert np.array_equal(encoded.ids, build_and_encode(texts, 80, 1, 8)[1].ids)


def _encode_in_child(root, texts, queue) -> None:
    vocab, encoded = TokenCache(root).vocabulary_and_encoding(texts, texts_digest(texts), max_size=100, min_count=1, max_len=16)
    queue.put((vocab.tokens, np.asarray(encoded.ids).tolist()))


def test_concurrent_processes_share_one_entry(task, tmp_path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    texts = list(task.train.texts)
    workers = [ctx.Process(target=_encode_in_child, args=(tmp_path, texts, queue)) for _ in range(3)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert all(r == results[0] for r in results)
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["encoded", "vocab"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


def test_split_digest_follows_the_texts(task) -> None:
    assert split_digest(task.train) == texts_digest(task.train.texts) == split_digest(task.train)
    assert texts_digest(["ab", "c"]) != texts_digest(["a", "bc"])


def test_a_memory_mapped_corpus_pickles_as_its_folder(task, tmp_path) -> None:
    texts = task.valid.texts
    _, encoded = TokenCache(tmp_path).vocabulary_and_encoding(texts, texts_digest(texts), max_size=80, min_count=1, max_len=8)
    assert encoded.source is not None and isinstance(encoded.ids, np.memmap)
    data = pickle.dumps(encoded)
    assert len(data) < 1000  # the folder, not the arrays
    back = pickle.loads(data)
    assert np.array_equal(back.ids, encoded.ids) and np.array_equal(back.offsets, encoded.offsets)
    plain = EncodedTexts(ids=np.asarray(encoded.ids).copy(), offsets=np.asarray(encoded.offsets).copy())
    assert np.array_equal(pickle.loads(pickle.dumps(plain)).ids, plain.ids)


# ------------------------------------------------------------ DataLoader workers


def _assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.array_equal(x.index, y.index)
        for field in ("tokens", "lengths", "targets", "label_inputs", "label_outputs"):
            u, v = getattr(x, field), getattr(y, field)
            assert (u is None) == (v is None)
            if u is not None:
                assert u.dtype == v.dtype and torch.equal(u, v)


@pytest.mark.parametrize("targets", ["multi_hot", "sequence"])
def test_worker_batches_equal_in_process_batches(task, tmp_path, targets) -> None:
    split = task.train
    texts = TokenCache(tmp_path).vocabulary_and_encoding(split.texts, split_digest(split), max_size=100, min_count=1,
                                                         max_len=24)[1]
    extra = {"Y": split.Y.tocsr()} if targets == "multi_hot" else {"label_seqs": encode_label_sequences(split.label_seqs)}
    collator = Collator(texts, min_len=3, **extra)
    order = LengthBucketSampler(texts.lengths, 16, shuffle=True, seed=3, pool_batches=2).batches(epoch=2)
    here = list(iterate_batches(order, collator))
    there = list(iterate_batches(order, collator, num_workers=2))
    _assert_same_batches(here, there)
    # workers started by spawn get the collator pickled: the cached corpus travels as its folder
    assert len(pickle.dumps(collator.texts)) < 1000


def test_fit_with_workers_equals_fit_without(task, tmp_path) -> None:
    here = _fit(task, tmp_path)
    there = _fit(task, tmp_path, num_workers=2)
    assert (here.predict(task.test) != there.predict(task.test)).nnz == 0
    assert np.array_equal(here.predict_scores(task.test), there.predict_scores(task.test))


def test_num_workers_is_checked() -> None:
    from mlbench.api import MlbenchError
    from mlbench.methods.xml_cnn import XMLCNN

    with pytest.raises(MlbenchError, match="num_workers"):
        XMLCNN(num_workers=-1)
