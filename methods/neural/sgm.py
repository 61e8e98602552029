"""The SGM network (Yang et al., COLING 2018), shared by Seq2Seq and Seq2Set.

Encoder: word embeddings and a bidirectional LSTM over each document's own
tokens (:class:`BiLSTM`: the backward direction starts at the last real token,
not on padding). Decoder: an LSTM whose input at step ``t`` is
``[g(y_{t-1}); c_{t-1}]`` (the previous label's embedding and the previous
attention context), additive attention of its state ``s_t`` over the encoder
states with the padding masked out, and the output
``o_t = W2 f(W1 s_t + U c_t)`` with ``f = tanh``. Labels already read by the
decoder, PAD and BOS are set to ``-inf`` in ``o_t`` at every step (EOS never:
a sequence can always end, and no row is ever all ``-inf``); the task's label
list is closed, so there is no UNK label token to ban.

With ``global_embedding``, ``g(y_{t-1})`` mixes the embedding ``e`` of the
label read with the expected embedding ``ē = Σ_i p_{t-1}(i) e_i`` under the
previous step's (masked) distribution through a learnt gate
``H = σ(W e + V ē)``: ``g = (1 - H) ⊙ e + H ⊙ ē``.

Decoding state is a tuple of batch-first tensors ``(h, c, context, read,
probs)`` — ``read`` the mask of labels read so far, ``probs`` the previous
distribution (None without the global embedding) — so :mod:`.decoders`
reorders all of it with the beam back-pointers. The encoder states are not in
the state: they are per *example* and shared by its beams or samples. The
step function built by :meth:`SGMNetwork.decoder` for ``B`` examples accepts
any ``N = B * K`` rows (row ``b * K + k`` belongs to example ``b``, the layout
of :func:`.decoders.repeat_beams` and beam search) and attends over example
``b``'s states without ever copying them ``K`` times.

On a feature task (an extension: a MULAN benchmark has no word order to read)
the bi-LSTM gives way to a set encoder: each active feature is a token weighted
by its value (:func:`.text.encode_features`), its weighted embedding mapped by
``tanh(W x + b)`` to the width the attention expects; the attention reads these
states exactly as it reads a text's, and the first decoder state comes from
their masked mean through the learnt bridge. A dense row (every feature
present) is instead projected into ``feature_tokens`` states, ``tanh(W x + b)``
cut into that many pieces: the additive attention's cost grows with the states
it reads, and one per feature (120 on mediamill, 294 on scene) would make it
the bulk of every decoding step.

The first decoder hidden state is the encoder's final hidden states: per
layer, forward and backward concatenated (as the authors' code) when the
decoder is twice as wide as one encoder direction with as many layers,
otherwise ``tanh`` of a learnt linear map of the last layer's. The first cell
state is zero (the authors' code also copies the encoder's final cells, which
dense, unpacked LSTM calls do not expose at each document's own end).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mlbench.methods.neural.batching import LABEL_BOS, LABEL_EOS, LABEL_PAD, N_LABEL_SPECIALS
from mlbench.methods.neural.decoders import DEFAULT_BANNED, StepFn
from mlbench.methods.neural.text import FEATURE_OFFSET, PAD

DecoderState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"]


@contextlib.contextmanager
def dropout_off(module: nn.Module) -> Iterator[None]:
    """Disable every dropout of ``module`` (Dropout layers and the LSTMs' inter-layer dropout)
    while leaving it in training mode, so gradients still flow through recurrent kernels
    (cuDNN's RNN backward refuses eval mode)."""
    saved: list[tuple[nn.Module, bool | float]] = []
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            saved.append((m, m.training))
            m.eval()
        elif isinstance(m, nn.RNNBase):
            saved.append((m, m.dropout))
            m.dropout = 0.0
    try:
        yield
    finally:
        for m, value in saved:
            if isinstance(m, nn.Dropout):
                m.train(bool(value))
            else:
                m.dropout = float(value)


class Memory(NamedTuple):
    """What the attention reads, one row per example."""

    states: torch.Tensor  # B x T x 2H encoder outputs (zero at padding)
    keys: torch.Tensor  # B x T x A, their projection for the additive attention (computed once)
    mask: torch.Tensor  # B x T bool, True at real tokens


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[b]`` positions of ``B x T x D`` (padding stays where it is)."""
    B, T = x.shape[:2]
    pos = torch.arange(T, device=x.device)[None, :]
    index = torch.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)
    return x.gather(1, index[..., None].expand(x.shape))


class BiLSTM(nn.Module):
    """A bidirectional LSTM over right-padded batches, exact for every document's own tokens.

    The backward direction reads each document reversed within its own length,
    so it starts at the document's last token, never on padding; outputs at
    padded positions are zero. Each direction runs as one dense LSTM call: on
    the CPU this trains about 2.5 times faster than packed sequences (their
    backward pass is slow), and length-bucketed batches carry little padding.
    Returns the ``B x T x 2H`` outputs and, per layer, the final
    ``[forward; backward]`` hidden states (``B x layers x 2H``).
    """

    def __init__(self, input_dim: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.forward_layers = nn.ModuleList(
            nn.LSTM(input_dim if i == 0 else 2 * hidden, hidden, batch_first=True) for i in range(layers)
        )
        self.backward_layers = nn.ModuleList(
            nn.LSTM(input_dim if i == 0 else 2 * hidden, hidden, batch_first=True) for i in range(layers)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = x.shape[:2]
        valid = (torch.arange(T, device=x.device)[None, :] < lengths[:, None])[..., None]
        last = (lengths - 1)[:, None, None]
        finals = []
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if i:
                x = self.dropout(x)
            out_f, _ = fwd(x)
            out_b = reverse_within_lengths(bwd(reverse_within_lengths(x, lengths))[0], lengths)
            x = torch.cat([out_f, out_b], dim=-1).masked_fill(~valid, 0.0)
            # forward ends at the last token, backward at the first
            finals.append(torch.cat([out_f.gather(1, last.expand(B, 1, out_f.shape[-1]))[:, 0], out_b[:, 0]], dim=-1))
        return x, torch.stack(finals, dim=1)


class SGMNetwork(nn.Module):
    @property
    def word_embedding(self) -> nn.Embedding:
        return self.embedding

    def __init__(
        self,
        vocab_size: int,
        n_labels: int,
        embedding_dim: int,
        encoder_hidden: int,
        encoder_layers: int,
        decoder_hidden: int,
        decoder_layers: int,
        label_embedding_dim: int,
        attention_dim: int,
        dropout: float,
        embedding_dropout: float,
        global_embedding: bool,
        feature_input: bool = False,
        feature_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.n_tokens = n_labels + N_LABEL_SPECIALS
        self.encoder_hidden, self.encoder_layers = int(encoder_hidden), int(encoder_layers)
        self.decoder_hidden, self.decoder_layers = int(decoder_hidden), int(decoder_layers)
        self.global_embedding = bool(global_embedding)
        self.feature_input = bool(feature_input)
        self.feature_tokens = int(feature_tokens) if self.feature_input else 0
        memory_dim = 2 * self.encoder_hidden

        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        if self.feature_tokens:  # a dense row, projected into feature_tokens states
            self.encoder = nn.Linear(vocab_size - FEATURE_OFFSET, self.feature_tokens * memory_dim)
        elif self.feature_input:  # a set of weighted feature tokens: no order for an LSTM to read
            self.encoder = nn.Linear(embedding_dim, memory_dim)
        else:
            self.encoder = BiLSTM(embedding_dim, self.encoder_hidden, self.encoder_layers, dropout)
        self.concat_bridge = (not self.feature_input and self.decoder_hidden == memory_dim
                              and self.decoder_layers == self.encoder_layers)
        if not self.concat_bridge:
            self.bridge = nn.Linear(memory_dim, self.decoder_layers * self.decoder_hidden)
        self.dropout = nn.Dropout(dropout)

        self.label_embedding = nn.Embedding(self.n_tokens, label_embedding_dim, padding_idx=LABEL_PAD)
        if self.global_embedding:
            self.gate_read = nn.Linear(label_embedding_dim, label_embedding_dim)
            self.gate_expected = nn.Linear(label_embedding_dim, label_embedding_dim, bias=False)
        self.decoder_lstm = nn.LSTM(
            label_embedding_dim + memory_dim, self.decoder_hidden, num_layers=self.decoder_layers, batch_first=True,
            dropout=dropout if self.decoder_layers > 1 else 0.0,
        )
        # additive attention: v^T tanh(W_q s_t + W_k h_i)
        self.attention_query = nn.Linear(self.decoder_hidden, attention_dim, bias=False)
        self.attention_key = nn.Linear(memory_dim, attention_dim)
        self.attention_score = nn.Linear(attention_dim, 1, bias=False)
        # o_t = W2 tanh(W1 s_t + U c_t)
        self.output_state = nn.Linear(self.decoder_hidden, self.decoder_hidden)
        self.output_context = nn.Linear(memory_dim, self.decoder_hidden, bias=False)
        self.output = nn.Linear(self.decoder_hidden, self.n_tokens)

        banned = torch.zeros(self.n_tokens, dtype=torch.bool)
        banned[list(DEFAULT_BANNED)] = True
        self.register_buffer("banned", banned, persistent=False)

    # ------------------------------------------------------------------ encoder

    def encode(
        self, tokens: torch.Tensor, lengths: torch.Tensor, values: torch.Tensor | None = None
    ) -> tuple[Memory, DecoderState]:
        """Encoder states for the attention and the first decoder state, ``B`` rows each."""
        B, T = tokens.shape
        lengths = lengths.to(tokens.device)
        if self.feature_tokens:
            return self._encode_dense(tokens, values)
        x = self.embedding_dropout(self.embedding(tokens))
        mask = torch.arange(T, device=tokens.device)[None, :] < lengths[:, None]
        if self.feature_input:
            states = torch.tanh(self.encoder(x * values[..., None].to(x.dtype))).masked_fill(~mask[..., None], 0.0)
            mean = states.sum(dim=1) / lengths.clamp(min=1)[:, None].to(states.dtype)
            finals = mean[:, None, :]  # one "layer": the bridge maps it to every decoder layer
        else:
            states, finals = self.encoder(x, lengths)
        states = self.dropout(states)
        memory = Memory(states=states, keys=self.attention_key(states), mask=mask)
        if self.concat_bridge:  # per layer, the final [forward; backward] hidden states: B x layers x 2H
            h0 = finals
        else:
            h0 = torch.tanh(self.bridge(finals[:, -1])).view(B, self.decoder_layers, self.decoder_hidden)
        return memory, self._initial_state(h0, states)

    def _initial_state(self, h0: torch.Tensor, states: torch.Tensor) -> DecoderState:
        """The decoder's first state: ``h0``, zero cells and context, the banned tokens read, BOS's distribution."""
        B = h0.shape[0]
        c0 = torch.zeros_like(h0)
        context0 = states.new_zeros(B, states.shape[-1])
        read0 = self.banned.expand(B, self.n_tokens).clone()
        probs0 = None
        if self.global_embedding:  # step 0 reads BOS: its "expected embedding" is BOS's own
            probs0 = F.one_hot(torch.full((B,), LABEL_BOS, device=h0.device), self.n_tokens).to(states.dtype)
        return (h0.contiguous(), c0, context0, read0, probs0)

    def _encode_dense(self, tokens: torch.Tensor, values: torch.Tensor) -> tuple[Memory, DecoderState]:
        """The ``feature_tokens`` states of dense rows given as weighted feature tokens."""
        B = tokens.shape[0]
        n_features = self.encoder.in_features
        present = tokens >= FEATURE_OFFSET  # PAD (and the UNK of an all-zero row) carry nothing
        x = torch.zeros(B, n_features, device=tokens.device, dtype=self.encoder.weight.dtype)
        x.scatter_add_(1, (tokens - FEATURE_OFFSET).clamp(min=0), (values * present).to(x.dtype))
        states = torch.tanh(self.encoder(self.embedding_dropout(x))).view(B, self.feature_tokens, -1)
        mask = torch.ones(B, self.feature_tokens, dtype=torch.bool, device=tokens.device)
        memory_states = self.dropout(states)
        memory = Memory(states=memory_states, keys=self.attention_key(memory_states), mask=mask)
        h0 = torch.tanh(self.bridge(states.mean(dim=1))).view(B, self.decoder_layers, self.decoder_hidden)
        return memory, self._initial_state(h0, memory_states)

    # ------------------------------------------------------------------ decoder

    def attend(self, s: torch.Tensor, memory: Memory) -> torch.Tensor:
        """Context vectors (``N x 2H``) of decoder states ``s`` (``N = B * K`` rows) over their example's memory."""
        B, T, D = memory.states.shape
        N = s.shape[0]
        if N % B:
            raise ValueError(f"{N} decoder rows do not divide into {B} examples")
        K = N // B
        query = self.attention_query(s).view(B, K, 1, -1)
        energy = self.attention_score(torch.tanh(memory.keys[:, None] + query)).squeeze(-1)  # B x K x T
        energy = energy.masked_fill(~memory.mask[:, None, :], float("-inf"))
        weights = torch.softmax(energy.float(), dim=-1).to(memory.states.dtype)
        return torch.bmm(weights, memory.states).view(N, D)

    def _step(self, memory: Memory, prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        h, c, context, read, probs = state
        # what has been read is masked from now on; EOS never (a sequence can always end)
        read = read.scatter(1, prev[:, None], True)
        read[:, LABEL_EOS] = False
        emb = self.label_embedding(prev)
        if self.global_embedding:
            expected = probs.to(emb.dtype) @ self.label_embedding.weight
            gate = torch.sigmoid(self.gate_read(emb) + self.gate_expected(expected))
            emb = (1 - gate) * emb + gate * expected
        x = torch.cat([self.dropout(emb), context.to(emb.dtype)], dim=-1)[:, None]
        out, (h, c) = self.decoder_lstm(x, (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous()))
        s = out[:, 0]
        context = self.attend(s, memory)
        hidden = torch.tanh(self.output_state(s) + self.output_context(context))
        logits = self.output(self.dropout(hidden)).float().masked_fill(read, float("-inf"))
        if self.global_embedding:
            probs = torch.softmax(logits, dim=-1)
        return logits, (h.transpose(0, 1), c.transpose(0, 1), context, read, probs)

    def decoder(self, memory: Memory) -> StepFn:
        """The step function of :mod:`.decoders` for the examples of ``memory``."""

        def step(prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
            return self._step(memory, prev, state)

        return step

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor, label_inputs: torch.Tensor, values: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher forcing: ``B x S`` label tokens read → ``B x S x V`` masked next-token logits.

        The very step function the decoders use, fed the gold previous labels.
        """
        memory, state = self.encode(tokens, lengths) if values is None else self.encode(tokens, lengths, values)
        step = self.decoder(memory)
        logits = []
        for t in range(label_inputs.shape[1]):
            out, state = step(label_inputs[:, t], state)
            logits.append(out)
        return torch.stack(logits, dim=1)
