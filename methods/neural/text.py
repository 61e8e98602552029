"""Text pipeline of the neural methods: tokens, a capped vocabulary, ragged encoding.

Nothing here imports torch. Encoded texts are kept as one flat ``int32`` array
plus offsets (like a CSR matrix), never as a padded ``n_docs x max_len`` tensor:
padding happens per batch in :mod:`.batching`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

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
    """Ragged token ids: document ``i`` is ``ids[offsets[i]:offsets[i + 1]]``."""

    ids: np.ndarray  # int32, all documents concatenated
    offsets: np.ndarray  # int64, length n_docs + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


def encode_texts(texts: Iterable[str], vocab: Vocabulary, max_len: int | None) -> EncodedTexts:
    """Tokenize and encode a corpus, truncating each document to ``max_len`` tokens."""
    parts = [vocab.encode(tokenize(t), max_len) for t in texts]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    if parts:
        np.cumsum([len(p) for p in parts], out=offsets[1:])
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return EncodedTexts(ids=ids, offsets=offsets)
