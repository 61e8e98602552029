"""Greedy, sampled and beam-search decoding over label sequences (masks, back-pointers, EOS)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from mlbench.methods.neural.batching import (
    LABEL_BOS,
    LABEL_EOS,
    LABEL_PAD,
    N_LABEL_SPECIALS,
)
from mlbench.methods.neural.decoders import (
    beam_search,
    decode,
    masked_sequence_nll,
    reorder_state,
    teacher_forcing_mask,
)
from mlbench.methods.neural.networks import CNNRNNNetwork


class TableDecoder:
    """A step function from a fixed table ``logits[step, prev_token]``; the state records the history.

    The state (a tensor with one row per hypothesis) appends each step's input,
    so after beam search it must equal the returned tokens if and only if states
    were reordered with the back-pointers.
    """

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table  # S x V x V
        self.calls = 0

    def __call__(self, prev: torch.Tensor, state: torch.Tensor):
        t = state.shape[1]
        self.calls += 1
        return self.table[min(t, len(self.table) - 1)][prev], torch.cat([state, prev[:, None]], dim=1)


def random_step(vocab: int, seed: int):
    """A small stateful recurrent step function with random weights."""
    g = torch.Generator().manual_seed(seed)
    emb, w_h, w_o = (torch.randn(vocab, 8, generator=g), torch.randn(8, 8, generator=g), torch.randn(8, vocab, generator=g))

    def step(prev, state):
        h = torch.tanh(emb[prev] + state @ w_h)
        return 2.0 * h @ w_o, h

    return step


def sequence_log_prob(step, state0: torch.Tensor, seq: list[int], vocab: int) -> float:
    """Log-probability of one finished sequence under the masked policy, one step at a time."""
    emitted = torch.zeros(vocab, dtype=torch.bool)
    emitted[[LABEL_PAD, LABEL_BOS]] = True
    prev, state, total = torch.tensor([LABEL_BOS]), state0, 0.0
    for tok in seq:
        logits, state = step(prev, state)
        total += float(F.log_softmax(logits[0].masked_fill(emitted, -math.inf), -1)[tok])
        emitted[tok] = True
        prev = torch.tensor([tok])
    return total


def test_beam_width_one_equals_greedy() -> None:
    vocab, batch = 9, 6
    step = random_step(vocab, 0)
    state = torch.randn(batch, 8, generator=torch.Generator().manual_seed(1))
    greedy = decode(step, state, batch, vocab, max_steps=7)
    beam = beam_search(step, state, batch, vocab, beam_size=1, max_steps=7)
    width = greedy.tokens.shape[1]
    assert torch.equal(beam.tokens[:, :width], greedy.tokens)
    assert (beam.tokens[:, width:] == LABEL_PAD).all()
    assert torch.allclose(beam.scores, greedy.log_probs.sum(1), atol=1e-5)


def test_beam_search_never_repeats_a_label_and_matches_exhaustive_search() -> None:
    n_labels = 3
    vocab = n_labels + N_LABEL_SPECIALS
    step = random_step(vocab, 5)
    state = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    # 16 hypotheses cover every prefix of every label sequence over 3 labels: exact search
    res = beam_search(step, state, 4, vocab, beam_size=16, max_steps=n_labels + 1)
    labels = list(range(N_LABEL_SPECIALS, vocab))
    candidates = [list(p) + [LABEL_EOS] for k in range(n_labels + 1) for p in itertools.permutations(labels, k)]
    for b in range(4):
        for k in range(16):
            if math.isfinite(float(res.beam_scores[b, k])):
                toks = [int(x) for x in res.beams[b, k] if x >= N_LABEL_SPECIALS]
                assert len(toks) == len(set(toks)), f"repeated label in {res.beams[b, k].tolist()}"
        scored = [(sequence_log_prob(step, state[b : b + 1], c, vocab), c) for c in candidates]
        best_score, best = max(scored)
        got = [int(x) for x in res.tokens[b] if x != LABEL_PAD]
        assert got == best
        assert float(res.scores[b]) == pytest.approx(best_score, abs=1e-5)


def test_beam_search_reorders_masks_and_states_with_back_pointers() -> None:
    # labels a, b, c; beam 2. Step 0: a (beam 0) beats b (beam 1). Step 1: "b a" and "b EOS"
    # beat every "a ." (after a the table is flat): both survivors extend "b" (beam 1) and
    # move to beams 0 and 1. Step 2 after "b a": the table
    # prefers "b" again; only a mask reordered with the back-pointers (holding b) stops a
    # duplicate "b a b", and the right answer is "b a c".
    t = N_LABEL_SPECIALS
    a, b, c = t, t + 1, t + 2
    V, neg = t + 3, -30.0
    table = torch.full((4, V, V), neg)
    table[0, LABEL_BOS, a], table[0, LABEL_BOS, b] = 0.0, -0.3
    table[1, a, :] = -3.0
    table[1, b, a], table[1, b, b], table[1, b, LABEL_EOS], table[1, b, c] = -0.1, 5.0, -0.2, neg
    table[2, a, b], table[2, a, c], table[2, a, LABEL_EOS] = 6.0, 0.0, -5.0
    table[2, LABEL_PAD, LABEL_PAD] = 0.0
    table[3, :, LABEL_EOS] = 0.0
    table[:, :, LABEL_PAD] = -100.0  # banned anyway
    step = TableDecoder(table)
    res = beam_search(step, torch.zeros(1, 0, dtype=torch.long), 1, V, beam_size=2, max_steps=5)
    assert res.tokens[0].tolist()[:4] == [b, a, c, LABEL_EOS]
    for k in range(2):
        toks = [int(x) for x in res.beams[0, k] if x >= t]
        assert len(toks) == len(set(toks))


def test_beam_search_state_follows_its_hypothesis() -> None:
    vocab, batch, beam = 8, 5, 3
    inner = random_step(vocab, 3)

    def step(prev, state):
        h, hist = state
        logits, h = inner(prev, h)
        return logits, (h, torch.cat([hist, prev[:, None]], 1))

    h0 = torch.randn(batch, 8, generator=torch.Generator().manual_seed(4))
    seen = {}

    def recording_reorder(state, index):
        seen["state"] = reorder_state(state, index)
        return seen["state"]

    res = beam_search(
        step, (h0, torch.zeros(batch, 0, dtype=torch.long)), batch, vocab, beam, max_steps=6, reorder=recording_reorder
    )
    # after the last reorder, each row's state recorded what its hypothesis was fed: BOS, then its own tokens
    hist = seen["state"][1].view(batch, beam, -1)
    assert (hist[:, :, 0] == LABEL_BOS).all()
    steps = hist.shape[2]
    assert steps >= 3
    assert torch.equal(hist[:, :, 1:], res.beams[:, :, : steps - 1])


def test_decoding_stops_at_eos() -> None:
    t = N_LABEL_SPECIALS
    V = t + 4
    table = torch.zeros(6, V, V)
    table[0, :, t + 1] = 5.0
    table[1:, :, LABEL_EOS] = 5.0  # EOS after one label
    step = TableDecoder(table)
    res = beam_search(step, torch.zeros(3, 0, dtype=torch.long), 3, V, beam_size=2, max_steps=6)
    assert res.tokens.tolist() == [[t + 1, LABEL_EOS]] * 3
    assert step.calls == 2  # every best hypothesis ended: no further steps
    greedy = decode(TableDecoder(table), torch.zeros(3, 0, dtype=torch.long), 3, V, max_steps=6)
    assert greedy.tokens.tolist() == [[t + 1, LABEL_EOS]] * 3 and greedy.finished.all()


def test_sampled_decoding_never_repeats_and_pads_after_eos() -> None:
    vocab, batch = N_LABEL_SPECIALS + 2, 64
    step = random_step(vocab, 7)
    state = torch.randn(batch, 8, generator=torch.Generator().manual_seed(8))
    runs = [
        decode(step, state, batch, vocab, max_steps=6, sample=True, generator=torch.Generator().manual_seed(9))
        for _ in range(2)
    ]
    assert torch.equal(runs[0].tokens, runs[1].tokens)  # seeded sampling is reproducible
    res = runs[0]
    assert torch.isfinite(res.log_probs).all() and res.finished.all()
    for row in res.tokens.tolist():
        end = row.index(LABEL_EOS)
        assert len(set(row[:end])) == end and all(x >= N_LABEL_SPECIALS for x in row[:end])
        assert all(x == LABEL_PAD for x in row[end + 1 :])
    # both labels then EOS happens (every label used up: the row must not become all -inf)
    assert any(row.index(LABEL_EOS) == 2 for row in res.tokens.tolist())


def test_teacher_forcing_masks_what_was_already_read() -> None:
    t = N_LABEL_SPECIALS
    inputs = torch.tensor([[LABEL_BOS, t + 2, t + 0, LABEL_PAD]])
    mask = teacher_forcing_mask(inputs, t + 3)[0]
    assert mask[0].tolist() == [True, True, False, False, False, False]
    assert mask[1].tolist() == [True, True, False, False, False, True]
    assert mask[2].tolist() == [True, True, False, True, False, True]


@pytest.mark.parametrize("shortcut", [False, True])
def test_cnn_rnn_teacher_forcing_equals_stepwise_decoding(shortcut: bool) -> None:
    torch.manual_seed(0)
    net = CNNRNNNetwork(50, 6, 8, [2, 3], 4, 16, 2, 8, dropout=0.0, embedding_dropout=0.0, document_at_output=shortcut).eval()
    tokens = torch.randint(2, 50, (4, 7))
    lengths = torch.tensor([7, 5, 3, 1])
    greedy = decode(net.step, net.initial_state(tokens, lengths), 4, net.n_tokens, max_steps=7)
    # feed the greedy outputs back as teacher-forced inputs: same masked log-probabilities
    outputs = greedy.tokens
    inputs = torch.cat([torch.full((4, 1), LABEL_BOS), outputs[:, :-1]], 1).masked_fill(outputs == LABEL_PAD, LABEL_PAD)
    logits = net(tokens, lengths, inputs)
    nll = masked_sequence_nll(logits, inputs, outputs)
    n = int((outputs != LABEL_PAD).sum())
    assert float(nll.detach()) == pytest.approx(-float(greedy.log_probs.detach().sum()) / n, abs=1e-5)
