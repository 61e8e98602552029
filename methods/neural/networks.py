"""Networks of the convolutional neural methods: a text CNN, XML-CNN and CNN-RNN, and the bag of features
that stands in for the text CNN on a feature task.

All tensors are batch-first. Batches are padded per batch (:mod:`.batching`),
so a document's features must not depend on how much padding its batch
carries: convolution outputs are pooled over each document's own valid
positions only, which makes every prediction independent of its batch mates.

On a feature task (an extension beyond the papers: the MULAN benchmarks have no
word order to convolve over) a document is the set of its active features, each
a token weighted by its value (:func:`.text.encode_features`), and
:class:`FeatureBag` sums the weighted feature embeddings into the document
vector the CNN would have made; the layers above it are unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mlbench.methods.neural.batching import LABEL_PAD, N_LABEL_SPECIALS
from mlbench.methods.neural.text import PAD


def conv_output_lengths(lengths: torch.Tensor, window: int) -> torch.Tensor:
    """Valid (unpadded) output positions of a width-``window`` convolution: ``max(n - w + 1, 1)``.

    A document shorter than the window keeps one position: the window over the
    document and zero (PAD) embeddings, the same whatever batch it is in.
    """
    return (lengths - window + 1).clamp(min=1)


def dynamic_max_pool(maps: torch.Tensor, lengths: torch.Tensor, chunks: int) -> torch.Tensor:
    """XML-CNN's dynamic max pooling over each document's own valid positions.

    ``maps`` is ``B x F x T`` (non-negative: after ReLU), ``lengths`` the valid
    positions per document (1 ≤ n ≤ T). Each document's positions ``0..n-1`` are
    cut into ``chunks`` contiguous pieces with the bounds AdaptiveMaxPool1d uses
    (``floor(c n / p)`` to ``ceil((c + 1) n / p)``, never empty), and the max of
    each is taken: the result is ``B x F x chunks`` and equals
    ``AdaptiveMaxPool1d(chunks)`` applied to each document's unpadded maps.

    One gather of every chunk's positions into a ``B x F x chunks x W`` block
    (``W`` the widest chunk; slots past a chunk's end read an appended zero
    column, neutral for a max of non-negative values), then one amax. On CUDA
    the gather's backward adds with atomics; a position shared by at most two
    chunks (always, once ``n >= chunks``) still sums in a fixed order, so only
    documents with fewer valid positions than chunks can vary in the last bit.
    """
    if chunks < 1:
        raise ValueError(f"dynamic pooling needs at least one chunk, got {chunks}")
    B, F_, T = maps.shape
    n = lengths.to(maps.device)[:, None]
    c = torch.arange(chunks, device=maps.device)[None, :]
    start = torch.div(c * n, chunks, rounding_mode="floor")  # B x p
    end = torch.div((c + 1) * n + chunks - 1, chunks, rounding_mode="floor")
    width = -(-T // chunks) + 1  # bounds every chunk of a document of at most T positions; no GPU sync
    index = start[..., None] + torch.arange(width, device=maps.device)  # B x p x W
    index = torch.where(index < end[..., None], index, T)  # T: the zero column appended below
    flat = index.view(B, 1, chunks * width).expand(B, F_, chunks * width)
    gathered = F.pad(maps, (0, 1)).gather(2, flat).view(B, F_, chunks, width)
    return gathered.amax(dim=-1)


class ConvTextEncoder(nn.Module):
    """Word embeddings and parallel 1-D convolutions (one per window size), ReLU."""

    def __init__(self, vocab_size: int, embedding_dim: int, windows: Sequence[int], filters: int, dropout: float) -> None:
        super().__init__()
        self.windows = tuple(int(w) for w in windows)
        if not self.windows or min(self.windows) < 1:
            raise ValueError(f"window sizes must be positive, got {list(windows)}")
        self.filters = int(filters)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, w) for w in self.windows)

    @property
    def min_len(self) -> int:
        """Batches are padded to at least the widest window."""
        return max(self.windows)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """``B x T`` ids → one ``B x filters x (T - w + 1)`` map per window."""
        x = self.dropout(self.embedding(tokens)).transpose(1, 2)  # B x E x T
        return [F.relu(conv(x)) for conv in self.convs]

    def pool(self, maps: list[torch.Tensor], lengths: torch.Tensor, chunks: int) -> torch.Tensor:
        """Dynamic max pooling of every map over the valid positions: ``B x (windows * filters * chunks)``."""
        pooled = [
            dynamic_max_pool(m, conv_output_lengths(lengths, w), chunks) for m, w in zip(maps, self.windows)
        ]
        return torch.cat([p.flatten(1) for p in pooled], dim=1)


class FeatureBag(nn.Module):
    """A document vector from its weighted feature tokens: ``sum_t v_t E[f_t]`` (PAD has weight 0).

    Sparse rows come L2-normalised and dense rows standardised (the method's
    featurizer), so the sum keeps one scale across documents with few and many
    active features.
    """

    def __init__(self, n_rows: int, embedding_dim: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_rows, embedding_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.dim = int(embedding_dim)

    def tokens(self, ids: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``B x T x E`` weighted embeddings of the feature tokens (zero at padding)."""
        return self.dropout(self.embedding(ids)) * values[..., None].to(self.embedding.weight.dtype)

    def forward(self, ids: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return self.tokens(ids, values).sum(dim=1)


class XMLCNNNetwork(nn.Module):
    """XML-CNN (Liu et al. 2017): CNN, dynamic max pooling, bottleneck, one logit per label.

    ``pooling="document"`` pools over each document's own positions (batch
    independent, the default); ``pooling="padded"`` is the reference
    implementation's ``AdaptiveMaxPool1d`` over the padded length, for which the
    method pads every document to ``max_len`` (the paper's fixed-length input).
    """

    @property
    def word_embedding(self) -> nn.Embedding:
        return self.encoder.embedding

    def __init__(
        self,
        vocab_size: int,
        n_labels: int,
        embedding_dim: int,
        windows: Sequence[int],
        filters: int,
        chunks: int,
        hidden: int,
        dropout: float,
        embedding_dropout: float,
        pooling: str = "document",
        feature_input: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in ("document", "padded"):
            raise ValueError(f"pooling must be 'document' or 'padded', got {pooling!r}")
        self.feature_input = bool(feature_input)
        self.chunks = int(chunks)
        self.pooling = pooling
        if self.feature_input:  # the bag of features stands in for convolutions and pooling
            self.encoder = FeatureBag(vocab_size, embedding_dim, embedding_dropout)
            self.bottleneck = nn.Linear(embedding_dim, hidden)
        else:  # (layers made in this order: the seeded initial weights depend on it)
            self.encoder = ConvTextEncoder(vocab_size, embedding_dim, windows, filters, embedding_dropout)
            if pooling == "padded":
                # note: AdaptiveMaxPool1d's CUDA backward is nondeterministic (atomic adds)
                self.adaptive_pool = nn.AdaptiveMaxPool1d(self.chunks)
            self.bottleneck = nn.Linear(len(self.encoder.windows) * filters * self.chunks, hidden)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, n_labels)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        if self.feature_input:
            hidden = F.relu(self.bottleneck(self.dropout(self.encoder(tokens, values))))
            return self.output(self.dropout(hidden))
        maps = self.encoder(tokens)
        if self.pooling == "document":
            features = self.encoder.pool(maps, lengths, self.chunks)
        else:
            features = torch.cat([self.adaptive_pool(m).flatten(1) for m in maps], dim=1)
        hidden = F.relu(self.bottleneck(self.dropout(features)))
        return self.output(self.dropout(hidden))


class CNNRNNNetwork(nn.Module):
    """CNN-RNN (Chen et al. 2017): a CNN document vector initialises an LSTM label generator.

    The CNN's max-over-time features (per document, over its valid positions)
    are mapped to the LSTM's initial hidden and cell states; the LSTM reads the
    previous label's embedding and scores the next label token (PAD, BOS, EOS,
    then the labels). With ``document_at_output``, the document vector also
    scores the labels directly at every step (``logits = W h_t + D d``): a
    shortcut the paper does not have, which makes training converge several
    times faster. Decoder state is kept batch-first (``h``, ``c``: ``N x layers
    x H``; the document's own logits: ``N x V``) so that beam search reorders
    it along dimension 0.
    """

    @property
    def word_embedding(self) -> nn.Embedding:
        return self.encoder.embedding

    def __init__(
        self,
        vocab_size: int,
        n_labels: int,
        embedding_dim: int,
        windows: Sequence[int],
        filters: int,
        hidden: int,
        layers: int,
        label_embedding_dim: int,
        dropout: float,
        embedding_dropout: float,
        document_at_output: bool = False,
        feature_input: bool = False,
    ) -> None:
        super().__init__()
        self.feature_input = bool(feature_input)
        if self.feature_input:  # the bag of features stands in for the CNN's document vector
            self.encoder = FeatureBag(vocab_size, embedding_dim, embedding_dropout)
            doc_dim = int(embedding_dim)
        else:
            self.encoder = ConvTextEncoder(vocab_size, embedding_dim, windows, filters, embedding_dropout)
            doc_dim = len(self.encoder.windows) * filters
        self.layers, self.hidden = int(layers), int(hidden)
        self.n_tokens = n_labels + N_LABEL_SPECIALS
        self.dropout = nn.Dropout(dropout)
        self.init_state = nn.Linear(doc_dim, 2 * self.layers * self.hidden)
        self.label_embedding = nn.Embedding(self.n_tokens, label_embedding_dim, padding_idx=LABEL_PAD)
        self.lstm = nn.LSTM(
            label_embedding_dim, self.hidden, num_layers=self.layers, batch_first=True,
            dropout=dropout if self.layers > 1 else 0.0,
        )
        self.output = nn.Linear(self.hidden, self.n_tokens)
        self.document_output = nn.Linear(doc_dim, self.n_tokens, bias=False) if document_at_output else None

    def initial_state(
        self, tokens: torch.Tensor, lengths: torch.Tensor, values: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """``(h0, c0, document logits)`` from the document; the last is ``N x 0`` without the shortcut."""
        if self.feature_input:
            doc = self.dropout(self.encoder(tokens, values))
        else:
            doc = self.dropout(self.encoder.pool(self.encoder(tokens), lengths, chunks=1))
        h, c = self.init_state(doc).view(-1, 2, self.layers, self.hidden).unbind(1)
        doc_logits = self.document_output(doc) if self.document_output is not None else doc.new_zeros(len(doc), 0)
        return torch.tanh(h), c, doc_logits

    def _run(
        self, label_tokens: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        h, c, doc_logits = state
        h, c = (s.transpose(0, 1).contiguous() for s in (h, c))  # layers x N x H for the LSTM
        out, (h, c) = self.lstm(self.label_embedding(label_tokens), (h, c))
        logits = self.output(self.dropout(out))
        if self.document_output is not None:
            logits = logits + doc_logits[:, None, :]
        return logits, (h.transpose(0, 1), c.transpose(0, 1), doc_logits)

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor, label_inputs: torch.Tensor, values: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher forcing: ``B x S`` previous-label tokens → ``B x S x V`` next-token logits."""
        logits, _ = self._run(label_inputs, self.initial_state(tokens, lengths, values))
        return logits

    def step(
        self, prev: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One decoding step for :mod:`.decoders`: ``N`` previous tokens → ``N x V`` logits."""
        logits, state = self._run(prev[:, None], state)
        return logits[:, 0], state
