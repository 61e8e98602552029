"""Batches for the neural methods: length bucketing, per-batch padding, label targets.

A batch is padded to its own longest document only; the corpus stays ragged
(:class:`~.text.EncodedTexts`). Length bucketing (sort by length inside large
random pools, then shuffle the batches) keeps that padding small while leaving
the order random from epoch to epoch, and is a pure function of
``(seed, epoch)``.

Label targets come in two forms: a multi-hot matrix (sigmoid/BCE models) and
label-token sequences for sequence decoders, where label ``j`` (a column of the
task's label list) is token ``j + N_LABEL_SPECIALS`` after PAD, BOS and EOS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.utils.data

from mlbench.methods.neural.text import PAD, EncodedTexts

#: Label-token ids shared by every sequence decoder.
LABEL_PAD, LABEL_BOS, LABEL_EOS = 0, 1, 2
N_LABEL_SPECIALS = 3


def encode_label_sequences(label_seqs: Sequence[Sequence[int]]) -> EncodedTexts:
    """Label sequences as ragged label tokens (``j + N_LABEL_SPECIALS``), repeats dropped.

    The order of ``label_seqs`` is kept (it is the order a decoder learns to emit);
    a label repeated within a sequence keeps its first position only.
    """
    parts = [np.fromiter(dict.fromkeys(s), dtype=np.int32, count=len(set(s))) + N_LABEL_SPECIALS for s in label_seqs]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    if parts:
        np.cumsum([len(p) for p in parts], out=offsets[1:])
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return EncodedTexts(ids=ids.astype(np.int32), offsets=offsets)


class LengthBucketSampler:
    """Batches of document positions, grouped by length.

    With ``shuffle``, each epoch draws a permutation from ``(seed, epoch)``, cuts
    it into pools of ``pool_batches`` batches, sorts each pool by length, cuts it
    into batches and shuffles the batch order. Without it (evaluation), documents
    are sorted by length once. Every position appears in exactly one batch.
    """

    def __init__(
        self, lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0, pool_batches: int = 50
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.pool = int(batch_size) * max(int(pool_batches), 1)

    def __len__(self) -> int:
        n, b = len(self.lengths), self.batch_size
        if not self.shuffle:
            return -(-n // b)
        full, rest = divmod(n, self.pool)
        return full * -(-self.pool // b) + -(-rest // b)

    def _cut(self, order: np.ndarray) -> list[np.ndarray]:
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def batches(self, epoch: int = 0) -> list[np.ndarray]:
        if not self.shuffle:
            return self._cut(np.argsort(self.lengths, kind="stable"))
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(len(self.lengths))
        out: list[np.ndarray] = []
        for start in range(0, len(perm), self.pool):
            pool = perm[start : start + self.pool]
            out.extend(self._cut(pool[np.argsort(self.lengths[pool], kind="stable")]))
        return [out[i] for i in rng.permutation(len(out))]


def pad_ragged(ragged: EncodedTexts, index: np.ndarray, min_len: int = 1, pad: int = PAD) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``index`` of a ragged array as a ``B x T`` int64 matrix, ``T`` = the longest row (≥ ``min_len``).

    Returns the matrix and the row lengths. Vectorised: one gather, no per-row loop.
    """
    index = np.asarray(index, dtype=np.int64)
    lengths = ragged.lengths_of(index)
    width = max(int(lengths.max(initial=0)), int(min_len))
    cols = np.arange(width)
    valid = cols[None, :] < lengths[:, None]
    out = np.full((len(index), width), pad, dtype=np.int64)
    out[valid] = ragged.ids[(ragged.offsets[index][:, None] + cols[None, :])[valid]]
    return out, lengths


def pad_values(ragged: EncodedTexts, index: np.ndarray, width: int) -> np.ndarray:
    """The token weights of rows ``index`` as a ``B x width`` float32 matrix, 0 at padding (as :func:`pad_ragged`)."""
    index = np.asarray(index, dtype=np.int64)
    lengths = ragged.lengths_of(index)
    cols = np.arange(width)
    valid = cols[None, :] < lengths[:, None]
    out = np.zeros((len(index), width), dtype=np.float32)
    out[valid] = ragged.values[(ragged.offsets[index][:, None] + cols[None, :])[valid]]
    return out


def label_sequence_targets(labels: EncodedTexts, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decoder inputs ``[BOS, y1..yn, PAD..]`` and outputs ``[y1..yn, EOS, PAD..]`` (``B x (n_max + 1)``)."""
    seqs, n = pad_ragged(labels, index, min_len=0, pad=LABEL_PAD)
    b, width = seqs.shape
    inputs = np.full((b, width + 1), LABEL_PAD, dtype=np.int64)
    inputs[:, 0] = LABEL_BOS
    inputs[:, 1:] = seqs
    outputs = np.full((b, width + 1), LABEL_PAD, dtype=np.int64)
    outputs[:, :width] = seqs
    outputs[np.arange(b), n] = LABEL_EOS
    return inputs, outputs


@dataclass(frozen=True)
class Batch:
    """One padded batch; ``index`` holds the documents' positions in their split."""

    index: np.ndarray
    tokens: torch.Tensor  # B x T int64, PAD-padded
    lengths: torch.Tensor  # B int64, true lengths (≥ 1)
    targets: torch.Tensor | None = None  # B x L float multi-hot
    label_inputs: torch.Tensor | None = None  # B x S int64
    label_outputs: torch.Tensor | None = None  # B x S int64
    values: torch.Tensor | None = None  # B x T float32 token weights (a feature task's values), 0 at padding

    def to(self, device: str | torch.device) -> "Batch":
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return replace(
            self,
            tokens=move(self.tokens),
            lengths=move(self.lengths),
            targets=move(self.targets),
            label_inputs=move(self.label_inputs),
            label_outputs=move(self.label_outputs),
            values=move(self.values),
        )

    def pin_memory(self) -> "Batch":
        """The same batch in page-locked memory (called by a DataLoader with ``pin_memory=True``)."""

        def pin(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.pin_memory()

        return replace(
            self,
            tokens=pin(self.tokens),
            lengths=pin(self.lengths),
            targets=pin(self.targets),
            label_inputs=pin(self.label_inputs),
            label_outputs=pin(self.label_outputs),
            values=pin(self.values),
        )


def collate(
    texts: EncodedTexts,
    index: np.ndarray,
    *,
    min_len: int = 1,
    Y: sp.csr_matrix | None = None,
    label_seqs: EncodedTexts | None = None,
) -> Batch:
    """Pad the documents at ``index`` to the batch's own longest one, with the targets asked for (and the
    token weights when the documents carry them)."""
    index = np.asarray(index, dtype=np.int64)
    tokens, lengths = pad_ragged(texts, index, min_len=min_len)
    values = None if texts.values is None else torch.from_numpy(pad_values(texts, index, tokens.shape[1]))
    targets = None
    if Y is not None:
        targets = torch.from_numpy(Y[index].toarray().astype(np.float32, copy=False))
    label_inputs = label_outputs = None
    if label_seqs is not None:
        inputs, outputs = label_sequence_targets(label_seqs, index)
        label_inputs, label_outputs = torch.from_numpy(inputs), torch.from_numpy(outputs)
    return Batch(
        index=index,
        tokens=torch.from_numpy(tokens),
        lengths=torch.from_numpy(lengths.astype(np.int64)),
        targets=targets,
        label_inputs=label_inputs,
        label_outputs=label_outputs,
        values=values,
    )


@dataclass(frozen=True, eq=False)
class Collator:
    """``collate`` over one split with fixed options: a picklable ``make_batch`` for DataLoader workers.

    Holds the encoded split (memory-mapped when it comes from the token cache)
    and the targets; a worker gets it by ``fork`` (shared pages) or, started by
    ``spawn``, by pickling, which maps a cached corpus again rather than copying it.
    """

    texts: EncodedTexts
    min_len: int = 1
    Y: sp.csr_matrix | None = None
    label_seqs: EncodedTexts | None = None

    def __call__(self, index: np.ndarray) -> Batch:
        return collate(self.texts, index, min_len=self.min_len, Y=self.Y, label_seqs=self.label_seqs)


class _BatchDataset(torch.utils.data.Dataset):
    """A map-style dataset whose keys are whole batches of document positions."""

    def __init__(self, make_batch: Callable[[np.ndarray], Batch]) -> None:
        self.make_batch = make_batch

    def __getitem__(self, index: np.ndarray) -> Batch:
        return self.make_batch(index)


def _as_is(batch: Batch) -> Batch:
    return batch


def iterate_batches(
    indices: Sequence[np.ndarray],
    make_batch: Callable[[np.ndarray], Batch],
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int = 4,
) -> Iterator[Batch]:
    """The batches at ``indices``, in order: built here (``num_workers=0``) or in DataLoader workers.

    With workers the batch order is still exactly ``indices`` (the DataLoader
    hands out keys in sampler order and returns results in that order), and
    the batches are the same objects ``make_batch`` builds here; ``pin_memory``
    puts them in page-locked memory for asynchronous copies to a GPU. Workers
    live for one pass over ``indices``.
    """
    if num_workers <= 0:
        for index in indices:
            yield make_batch(index)
        return
    loader = torch.utils.data.DataLoader(
        _BatchDataset(make_batch),
        sampler=indices,
        batch_size=None,  # each key is already a batch
        collate_fn=_as_is,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor,
        # a loader draws its workers' base seed from this generator; the default (global) one would
        # shift the dropout draws of training, which must not depend on num_workers
        generator=torch.Generator(),
    )
    yield from loader


def multi_hot(label_tokens: torch.Tensor, n_labels: int) -> torch.Tensor:
    """B x n_labels 0/1 (bool) from B x S label tokens; PAD/BOS/EOS (and anything after EOS) are ignored."""
    b = label_tokens.shape[0]
    after_eos = (label_tokens == LABEL_EOS).cumsum(dim=1) > 0
    cols = label_tokens - N_LABEL_SPECIALS
    keep = (cols >= 0) & ~after_eos
    out = torch.zeros(b, n_labels + 1, dtype=torch.bool, device=label_tokens.device)
    # discarded tokens go to a spare last column that is dropped
    out.scatter_(1, torch.where(keep, cols, torch.full_like(cols, n_labels)), True)
    return out[:, :n_labels]
