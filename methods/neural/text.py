"""Text pipeline of the neural methods: tokens, a capped vocabulary, ragged encoding.

Nothing here imports torch. Encoded texts are kept as one flat ``int32`` array
plus offsets (like a CSR matrix), never as a padded ``n_docs x max_len`` tensor:
padding happens per batch in :mod:`.batching`.

:func:`tokenize` and :meth:`Vocabulary.encode` define the encoding one token at
a time; :func:`encode_texts` and :func:`build_and_encode` produce exactly the
same ids for whole corpora, an order of magnitude faster (chunks of documents,
tokens as integer keys, array lookups), because at RCV1 size (800k documents)
the per-token definition would take minutes per run.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

#: Padding id (embedding row kept at zero) and unknown-word id.
PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"

# Letters and digits of any script; punctuation and underscores separate tokens.
_TOKEN_RE = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens: maximal runs of letters and digits."""
    return _TOKEN_RE.findall(text.lower())


class Vocabulary:
    """Token ↔ id map with ``PAD = 0`` and ``UNK = 1`` followed by corpus tokens.

    Built from training counts only; the most frequent tokens are kept, ties
    broken by the token string, so the same corpus always gives the same ids.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        if list(tokens[:2]) != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError("a vocabulary starts with the PAD and UNK tokens")
        self.tokens: list[str] = list(tokens)
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("duplicate tokens in vocabulary")

    @classmethod
    def build(cls, documents: Iterable[Sequence[str]], max_size: int, min_count: int = 1) -> "Vocabulary":
        """Keep the ``max_size - 2`` most frequent tokens seen at least ``min_count`` times.

        ``max_size`` counts PAD and UNK, so it is the number of embedding rows.
        """
        if max_size < 2:
            raise ValueError(f"vocabulary size must be at least 2 (PAD, UNK), got {max_size}")
        counts: Counter[str] = Counter()
        for tokens in documents:
            counts.update(tokens)
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls([PAD_TOKEN, UNK_TOKEN] + ranked[: max_size - 2])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], max_len: int | None = None) -> np.ndarray:
        """Ids of the first ``max_len`` tokens; an empty document becomes ``[UNK]``.

        Every encoded document therefore has at least one position, which packed
        RNNs, masked attention and convolutions all need; UNK rather than PAD so
        that the position is a real (learnt) input and never masked away.
        """
        if max_len is not None:
            tokens = tokens[:max_len]
        if not tokens:
            return np.array([UNK], dtype=np.int32)
        get = self.index.get
        return np.fromiter((get(t, UNK) for t in tokens), dtype=np.int32, count=len(tokens))

    def to_list(self) -> list[str]:
        return list(self.tokens)


@dataclass(frozen=True)
class EncodedTexts:
    """Ragged token ids: document ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.

    ``source`` is the folder the arrays are memory-mapped from, if any: such an
    object pickles as its folder (a DataLoader worker started by ``spawn``
    maps the same files instead of receiving a copy of the corpus).

    ``values``, when set, weighs each token (float32, aligned with ``ids``): a
    feature task's rows are ragged this way, a token per active feature
    (:func:`encode_features`).
    """

    ids: np.ndarray  # int32, all documents concatenated
    offsets: np.ndarray  # int64, length n_docs + 1
    source: str | None = field(default=None, compare=False)
    values: np.ndarray | None = field(default=None, compare=False)

    def save(self, folder: Path) -> None:
        np.save(folder / "ids.npy", np.asarray(self.ids, dtype=np.int32))
        np.save(folder / "offsets.npy", np.asarray(self.offsets, dtype=np.int64))

    @classmethod
    def open(cls, folder: Path | str) -> "EncodedTexts":
        """Memory-map arrays written by :meth:`save` (read-only)."""
        folder = Path(folder)
        return cls(
            ids=np.load(folder / "ids.npy", mmap_mode="r"),
            offsets=np.load(folder / "offsets.npy", mmap_mode="r"),
            source=str(folder),
        )

    def __reduce__(self):
        if self.source is not None:
            return (EncodedTexts.open, (self.source,))
        return (EncodedTexts, (self.ids, self.offsets, None, self.values))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def lengths_of(self, index: np.ndarray) -> np.ndarray:
        """Lengths of the documents at ``index`` only (per batch: not a pass over the corpus)."""
        return self.offsets[index + 1] - self.offsets[index]

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


#: Token ids of a feature task: feature ``j`` is token ``j + FEATURE_OFFSET`` (PAD and UNK come first).
FEATURE_OFFSET = 2


def encode_features(X: Any) -> EncodedTexts:
    """A feature matrix's rows as weighted tokens: every stored entry ``(j, v)`` of a row is token
    ``j + FEATURE_OFFSET`` with weight ``v``; a row with no entry is one UNK of weight 1 (a learnt
    "no feature" embedding, as an empty text is one UNK)."""
    import scipy.sparse as sp

    X = sp.csr_matrix(X, dtype=np.float32)
    X.sort_indices()
    counts = np.diff(X.indptr)
    empty = counts == 0
    lengths = np.where(empty, 1, counts).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.full(int(offsets[-1]), UNK, dtype=np.int32)
    values = np.ones(int(offsets[-1]), dtype=np.float32)
    rows = np.repeat(np.arange(X.shape[0]), counts)
    at = offsets[rows] + (np.arange(X.nnz) - X.indptr[rows])
    ids[at] = X.indices + FEATURE_OFFSET
    values[at] = X.data
    return EncodedTexts(ids=ids, offsets=offsets, values=values)


#: Bumped whenever the same text and vocabulary could encode differently (it keys the token cache).
TOKENIZER_VERSION = 1

#: Documents tokenized per chunk: large enough for array operations to pay, small enough to stay in cache.
CHUNK_DOCS = 4096

# ASCII bytes -> lowercase letters and digits kept, everything else a space. For ASCII text this is
# exactly ``_TOKEN_RE`` over ``text.lower()``: there ``[^\W_]`` is ``[a-z0-9]`` once lowercased.
_ASCII_TABLE = bytes(
    c + 32 if 65 <= c <= 90 else c if (48 <= c <= 57 or 97 <= c <= 122) else 32 for c in range(256)
)
#: Key of a token that does not fit the 8-byte packing (``LONG_KEY | number``).
LONG_KEY = np.uint64(1 << 63)
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def _chunks(texts: Iterable[str]) -> Iterator[list[str]]:
    it = iter(texts)
    while chunk := list(islice(it, CHUNK_DOCS)):
        yield chunk


def _pack(token: str) -> int | None:
    """The 8-byte key of an ASCII letters-and-digits token of at most 8 characters, else None."""
    if len(token) <= 8 and token.isascii() and token.isalnum():
        return int.from_bytes(token.encode("ascii"), "little")
    return None


def _key_names(keys: np.ndarray, long_names: list[str]) -> np.ndarray:
    """The tokens of ``keys`` as a numpy string array (NUL padding of the 8-byte keys dropped)."""
    long = keys >= LONG_KEY
    width = max([8] + [len(t) for t in long_names])
    names = np.empty(len(keys), dtype=f"<U{width}")
    names[~long] = keys[~long].astype("<u8").view("S8").astype(f"<U{width}")  # little-endian: first byte first
    if long.any():
        names[long] = np.array(long_names, dtype=f"<U{width}")[(keys[long] - LONG_KEY).astype(np.int64)]
    return names


def _chunk_keys(texts: Sequence[str], long_key: Callable[[str], int]) -> tuple[np.ndarray, np.ndarray]:
    """Every token of a chunk of documents as a ``uint64`` key, in order, and each document's token count.

    A token of at most 8 ASCII letters and digits is its own key (its bytes read
    as a little-endian integer, zero-padded: injective, since no such byte is
    zero, and below ``2**63``); any other token is ``LONG_KEY | long_key(token)``.
    ASCII documents are tokenized all at once: one byte translation per
    document, then token boundaries and keys as array operations over the
    chunk's bytes, with Python work only for the rare long tokens. Other
    documents go through :func:`tokenize`.
    """
    ascii_docs = [t.isascii() for t in texts]
    n_docs = len(texts)
    if all(ascii_docs):
        return _ascii_keys(texts, long_key)
    counts = np.zeros(n_docs, dtype=np.int64)
    ascii_index = [i for i, a in enumerate(ascii_docs) if a]
    a_keys, a_counts = _ascii_keys([texts[i] for i in ascii_index], long_key)
    counts[ascii_index] = a_counts
    other: dict[int, np.ndarray] = {}
    for i, a in enumerate(ascii_docs):
        if not a:
            tokens = tokenize(texts[i])
            keys = [_pack(t) for t in tokens]
            other[i] = np.array(
                [k if k is not None else (1 << 63) | long_key(t) for k, t in zip(keys, tokens)], dtype=np.uint64
            )
            counts[i] = len(tokens)
    starts = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    out = np.empty(int(starts[-1]), dtype=np.uint64)
    a_starts = np.zeros(len(a_counts), dtype=np.int64)
    np.cumsum(a_counts[:-1], out=a_starts[1:])
    shift = np.repeat(starts[ascii_index] - a_starts, a_counts)
    out[np.arange(len(a_keys)) + shift] = a_keys
    for i, keys in other.items():
        out[starts[i] : starts[i + 1]] = keys
    return out, counts


def _ascii_keys(texts: Sequence[str], long_key: Callable[[str], int]) -> tuple[np.ndarray, np.ndarray]:
    parts = [t.encode("ascii").translate(_ASCII_TABLE) for t in texts]
    # a space before, between and after the documents; 8 more so that every token start can read 8 bytes
    buf = b" " + b" ".join(parts) + b" " * 9
    text = np.frombuffer(buf, dtype=np.uint8)
    word = text != 32
    starts = np.flatnonzero(word[1:] & ~word[:-1]) + 1
    ends = np.flatnonzero(word[:-1] & ~word[1:]) + 1
    lengths = ends - starts
    eight = np.ndarray(shape=(len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))  # 8 bytes from every offset
    keys = eight[starts] & _BYTE_MASKS[np.minimum(lengths, 8)]
    long = np.flatnonzero(lengths > 8)
    if len(long):
        keys[long] = [(1 << 63) | long_key(buf[s:e].decode("ascii")) for s, e in zip(starts[long].tolist(), ends[long].tolist())]
    doc_ends = np.cumsum([len(p) + 1 for p in parts])  # offset of the space after each document
    return keys, np.diff(np.searchsorted(starts, doc_ends), prepend=0).astype(np.int64)


class _VocabularyLookup:
    """Token keys (:func:`_chunk_keys`) to vocabulary ids, UNK for the rest."""

    def __init__(self, vocab: Vocabulary) -> None:
        import pandas as pd

        short = [(k, i) for i, k in enumerate(map(_pack, vocab.tokens)) if k is not None]
        self.keys = pd.Index(np.array([k for k, _ in short], dtype=np.uint64))
        # one spare UNK at the end: ``get_indexer`` answers -1 for an unknown key
        self.key_ids = np.array([i for _, i in short] + [UNK], dtype=np.int32)
        self.index = vocab.index

    def long_key(self, token: str) -> int:
        return self.index.get(token, UNK)  # a long token's key carries its id directly

    def ids(self, keys: np.ndarray) -> np.ndarray:
        out = self.key_ids[self.keys.get_indexer(keys)]
        long = keys >= LONG_KEY
        if long.any():
            out[long] = (keys[long] - LONG_KEY).astype(np.int32)
        return out


def _cut(ids: np.ndarray, counts: np.ndarray, max_len: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``max_len`` of each document's ids (documents concatenated), and the counts kept."""
    if max_len is None or not (counts > max_len).any():
        return ids, counts
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    long = np.flatnonzero(counts > max_len)
    # +1 where a document's surplus begins, -1 where it ends: the running sum marks what goes
    edges = np.zeros(len(ids) + 1, dtype=np.int8)
    edges[starts[long] + max_len] = 1
    edges[starts[long + 1]] -= 1  # never the same position as a +1: every cut document has a surplus
    return ids[np.cumsum(edges[:-1], dtype=np.int8) == 0], np.minimum(counts, max_len)


def _assemble(ids: list[np.ndarray], counts: list[np.ndarray]) -> EncodedTexts:
    """Concatenate chunks of cut documents; an empty document becomes ``[UNK]``."""
    flat = np.concatenate(ids).astype(np.int32, copy=False) if ids else np.zeros(0, dtype=np.int32)
    n = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    empty = np.flatnonzero(n == 0)
    if len(empty):
        before = np.zeros(len(n) + 1, dtype=np.int64)
        np.cumsum(n, out=before[1:])
        flat = np.insert(flat, before[empty], UNK)
    offsets = np.zeros(len(n) + 1, dtype=np.int64)
    np.cumsum(np.maximum(n, 1), out=offsets[1:])
    return EncodedTexts(ids=flat, offsets=offsets)


def encode_texts(texts: Iterable[str], vocab: Vocabulary, max_len: int | None) -> EncodedTexts:
    """Tokenize and encode a corpus, truncating each document to ``max_len`` tokens.

    Gives exactly ``vocab.encode(tokenize(text), max_len)`` for every text, in
    document order, but works on chunks of documents with array operations (see
    :func:`_chunk_keys`) instead of one dictionary lookup per token.
    """
    lookup = _VocabularyLookup(vocab)
    ids, counts = [], []
    for chunk in _chunks(texts):
        keys, n = _chunk_keys(chunk, lookup.long_key)
        kept, n = _cut(lookup.ids(keys), n, max_len)
        ids.append(kept)
        counts.append(n)
    return _assemble(ids, counts)


def build_and_encode(
    texts: Iterable[str], max_size: int, min_count: int, max_len: int | None
) -> tuple[Vocabulary, EncodedTexts]:
    """``Vocabulary.build`` over ``texts`` and ``encode_texts`` with it, tokenizing each text once.

    Tokens get provisional ids in order of first appearance while the corpus is
    read (and counted in full, beyond ``max_len``, as ``Vocabulary.build`` counts
    them); once every count is known the vocabulary is ranked and the
    provisional ids are mapped to its ids in one array lookup.
    """
    if max_size < 2:
        raise ValueError(f"vocabulary size must be at least 2 (PAD, UNK), got {max_size}")
    import pandas as pd

    long_tokens: defaultdict[str, int] = defaultdict()
    long_tokens.default_factory = long_tokens.__len__  # a new long token gets the next number
    provisional: defaultdict[int, int] = defaultdict()
    provisional.default_factory = provisional.__len__
    counts = np.zeros(0, dtype=np.int64)
    ids, doc_counts = [], []
    for chunk in _chunks(texts):
        keys, n = _chunk_keys(chunk, long_tokens.__getitem__)
        inverse, uniq = pd.factorize(keys, sort=False)
        local = np.fromiter(map(provisional.__getitem__, uniq.tolist()), dtype=np.int64, count=len(uniq))
        chunk_ids = local[inverse]
        seen = np.bincount(chunk_ids, minlength=len(provisional))
        seen[: len(counts)] += counts
        counts = seen
        kept, n = _cut(chunk_ids.astype(np.int32), n, max_len)
        ids.append(kept)
        doc_counts.append(n)
    names = _key_names(np.fromiter(provisional, dtype=np.uint64, count=len(provisional)), list(long_tokens))
    eligible = np.flatnonzero(counts >= min_count)
    # most frequent first, ties by the token (code point order, as Python compares strings)
    kept = eligible[np.lexsort((names[eligible], -counts[eligible]))][: max_size - 2]
    vocab = Vocabulary([PAD_TOKEN, UNK_TOKEN] + names[kept].tolist())
    to_vocab = np.full(len(names), UNK, dtype=np.int32)
    to_vocab[kept] = np.arange(2, len(kept) + 2, dtype=np.int32)
    return vocab, _assemble([to_vocab[i] for i in ids], doc_counts)
