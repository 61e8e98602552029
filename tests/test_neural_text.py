"""The neural methods' text pipeline: tokenizer, capped vocabulary, ragged encoding with truncation."""

from __future__ import annotations


import numpy as np
import pytest

from mlbench.methods.neural import text as text_module
from mlbench.methods.neural.text import PAD, UNK, Vocabulary, build_and_encode, encode_texts, tokenize


def test_tokenize_lowercases_and_splits_on_punctuation() -> None:
    assert tokenize("U.S. Grain-exports ROSE 5.2% in_1987") == ["u", "s", "grain", "exports", "rose", "5", "2", "in", "1987"]
    assert tokenize("   ") == []


def test_vocabulary_is_capped_reserves_pad_unk_and_breaks_ties_by_token() -> None:
    docs = [["b", "a", "c", "c"], ["a", "d", "c"], ["e", "b"]]
    vocab = Vocabulary.build(docs, max_size=5)
    # counts: c 3, a 2, b 2, d 1, e 1 -> keep c, a, b (a before b: tie broken by the token)
    assert vocab.tokens == ["<pad>", "<unk>", "c", "a", "b"]
    assert len(vocab) == 5 and vocab.index["<pad>"] == PAD and vocab.index["<unk>"] == UNK
    assert vocab.encode(["c", "d", "zzz"]).tolist() == [2, UNK, UNK]
    # the same counts in any document order give the same ids
    assert Vocabulary.build(reversed(docs), max_size=5).tokens == vocab.tokens
    assert Vocabulary.build(docs, max_size=100, min_count=2).tokens == ["<pad>", "<unk>", "c", "a", "b"]


def test_encoding_truncates_and_an_empty_document_is_one_unk() -> None:
    vocab = Vocabulary.build([["a", "b"]], max_size=10)
    assert vocab.encode(["a", "b", "a"], max_len=2).tolist() == [vocab.index["a"], vocab.index["b"]]
    empty = vocab.encode([], max_len=5)
    assert empty.tolist() == [UNK] and empty.dtype == np.int32
    enc = encode_texts(["a b a", "", "B!"], vocab, max_len=2)
    assert enc.lengths.tolist() == [2, 1, 1]
    assert enc[1].tolist() == [UNK] and enc[2].tolist() == [vocab.index["b"]]


def _reference_encoding(texts, vocab, max_len):
    """The per-token definition the fast encoder must reproduce exactly."""
    parts = [vocab.encode(tokenize(t), max_len) for t in texts]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)), offsets


def _awkward_corpus(n_docs: int = 600, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + list(" \n\t.,;:!?-_'\"()/") * 3
    alphabet += list("éÉßİ東京Ωœ")  # non-ASCII documents take the regex path, and İ lowercases to two characters
    words = ["".join(rng.choice(alphabet, size=int(rng.integers(1, 15)))) for _ in range(200)]
    texts = [rng.choice([" ", "", "_", "-"]).join(rng.choice(words, size=int(rng.choice([0, 1, 3, 10, 40])))) for _ in range(n_docs)]
    return texts + ["", "   ", "Hello, WORLD! hello_world 123abc abcdefgh abcdefghi ABCDEFGHIJKL", "naïve café CAFÉ", "x" * 30]


@pytest.mark.parametrize("chunk_docs", [7, 4096])
@pytest.mark.parametrize("max_size,min_count,max_len", [(50, 1, 5), (1000, 1, None), (2, 1, 3), (100_000, 2, 1)])
def test_fast_encoding_equals_the_per_token_definition(monkeypatch, chunk_docs, max_size, min_count, max_len) -> None:
    # ASCII and non-ASCII documents, tokens longer than the 8-byte keys, empty documents, truncation
    monkeypatch.setattr(text_module, "CHUNK_DOCS", chunk_docs)
    texts = _awkward_corpus()
    reference_vocab = Vocabulary.build((tokenize(t) for t in texts), max_size, min_count)
    ids, offsets = _reference_encoding(texts, reference_vocab, max_len)
    vocab, encoded = build_and_encode(texts, max_size, min_count, max_len)
    assert vocab.tokens == reference_vocab.tokens
    assert encoded.ids.dtype == np.int32 and encoded.offsets.dtype == np.int64
    assert np.array_equal(encoded.ids, ids) and np.array_equal(encoded.offsets, offsets)
    again = encode_texts(texts, reference_vocab, max_len)
    assert np.array_equal(again.ids, ids) and np.array_equal(again.offsets, offsets)


def test_fast_encoding_of_no_documents() -> None:
    vocab, encoded = build_and_encode([], 10, 1, 5)
    assert vocab.tokens == ["<pad>", "<unk>"] and len(encoded) == 0
    assert len(encode_texts([], vocab, 5)) == 0 and len(encode_texts(["a b"], vocab, None)[0]) == 2
