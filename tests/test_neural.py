"""Shared neural parts (text, batching, decoders, training loop) and the XML-CNN / CNN-RNN methods."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from mlbench.api import FitContext, MlbenchError
from mlbench.methods.neural.batching import (
    LABEL_BOS,
    LABEL_EOS,
    LABEL_PAD,
    N_LABEL_SPECIALS,
    LengthBucketSampler,
    collate,
    encode_label_sequences,
    multi_hot,
)
from mlbench.methods.neural.decoders import (
    beam_search,
    decode,
    masked_sequence_nll,
    reorder_state,
    teacher_forcing_mask,
)
from mlbench.methods.neural.networks import CNNRNNNetwork, XMLCNNNetwork, dynamic_max_pool
from mlbench.methods.neural import text as text_module
from mlbench.methods.neural.text import PAD, UNK, Vocabulary, build_and_encode, encode_texts, tokenize
from mlbench.methods.neural.train import TrainConfig, train_network
from mlbench.tasks.synthetic import SyntheticDataset

# ------------------------------------------------------------------------ text


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


# -------------------------------------------------------------------- batching


def test_bucketing_covers_every_example_once_and_is_seed_deterministic() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=1003)
    sampler = LengthBucketSampler(lengths, batch_size=16, shuffle=True, seed=3, pool_batches=8)
    for epoch in (1, 2):
        batches = sampler.batches(epoch)
        assert len(batches) == len(sampler)
        assert sorted(np.concatenate(batches).tolist()) == list(range(1003))
        assert all(1 <= len(b) <= 16 for b in batches)
    again = LengthBucketSampler(lengths, batch_size=16, shuffle=True, seed=3, pool_batches=8)
    assert all(np.array_equal(a, b) for a, b in zip(sampler.batches(1), again.batches(1)))
    other_epoch = np.concatenate(sampler.batches(2))
    other_seed = np.concatenate(LengthBucketSampler(lengths, 16, shuffle=True, seed=4, pool_batches=8).batches(1))
    assert not np.array_equal(np.concatenate(sampler.batches(1)), other_epoch)
    assert not np.array_equal(np.concatenate(sampler.batches(1)), other_seed)

    # grouping by length pads far less than random batches would
    def padding(batches):
        return sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in batches)

    random_batches = np.array_split(np.random.default_rng(1).permutation(1003), len(sampler))
    assert padding(sampler.batches(1)) < 0.2 * padding(random_batches)


def test_evaluation_batches_are_sorted_by_length() -> None:
    lengths = np.array([5, 1, 3, 3, 9, 2])
    batches = LengthBucketSampler(lengths, batch_size=4, shuffle=False).batches()
    assert [b.tolist() for b in batches] == [[1, 5, 2, 3], [0, 4]]


def test_collate_pads_to_the_batch_only() -> None:
    vocab = Vocabulary.build([["a", "b", "c"]], max_size=10)
    texts = encode_texts(["a", "a b c a b c a b c", "b c", ""], vocab, max_len=None)
    batch = collate(texts, np.array([0, 2, 3]), min_len=1)
    a, b, c = (vocab.index[t] for t in "abc")
    assert batch.tokens.tolist() == [[a, PAD], [b, c], [UNK, PAD]]  # width 2, not the corpus' 9
    assert batch.lengths.tolist() == [1, 2, 1]
    assert collate(texts, np.array([0]), min_len=4).tokens.tolist() == [[a, PAD, PAD, PAD]]
    Y = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1], [0, 0]]))
    assert collate(texts, np.array([2, 0]), Y=Y).targets.tolist() == [[1.0, 1.0], [1.0, 0.0]]


def test_label_sequence_targets_have_bos_eos_pad_and_no_repeats() -> None:
    seqs = encode_label_sequences([(4, 0, 4), (), (2,)])
    batch = collate(encode_texts(["x", "y", "z"], Vocabulary.build([["x"]], 5), None), np.arange(3), label_seqs=seqs)
    t = N_LABEL_SPECIALS
    assert batch.label_inputs.tolist() == [[LABEL_BOS, 4 + t, 0 + t], [LABEL_BOS, LABEL_PAD, LABEL_PAD], [LABEL_BOS, 2 + t, LABEL_PAD]]
    assert batch.label_outputs.tolist() == [[4 + t, 0 + t, LABEL_EOS], [LABEL_EOS, LABEL_PAD, LABEL_PAD], [2 + t, LABEL_EOS, LABEL_PAD]]


def test_multi_hot_ignores_specials_and_tokens_after_eos() -> None:
    t = N_LABEL_SPECIALS
    tokens = torch.tensor([[t + 1, t + 0, LABEL_EOS, t + 2], [LABEL_EOS, t + 1, LABEL_PAD, LABEL_PAD]])
    assert multi_hot(tokens, 3).tolist() == [[True, True, False], [False, False, False]]


# -------------------------------------------------------------------- decoders


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


# ---------------------------------------------------------------- training loop


class Scripted:
    """A one-parameter model trained by the real loop, with scripted validation scores."""

    def __init__(self, scores, nan_at=None):
        self.net = torch.nn.Linear(1, 1)
        self.scores = list(scores)
        self.nan_at = nan_at
        self.weights = {}
        self.epoch = 0
        self.step = 0

    def loss(self, batch):
        self.step += 1
        if self.nan_at == (self.epoch + 1, self.step):
            return self.net.weight.sum() * float("nan")
        return (self.net(batch.tokens.float()[:, :1]) ** 2).mean()

    def validate(self):
        self.epoch += 1
        self.step = 0
        self.weights[self.epoch] = self.net.weight.detach().clone()
        return self.scores[self.epoch - 1]


def run_scripted(model: Scripted, ctx: FitContext, epochs: int, patience: int | None, lr_decay: float = 1.0, **kwargs):
    texts = encode_texts([f"w{i} x" for i in range(40)], Vocabulary.build([["x"]], 10), None)
    return train_network(
        model.net,
        name="scripted",
        sampler=LengthBucketSampler(texts.lengths, batch_size=8, shuffle=True, seed=0),
        make_batch=lambda idx: collate(texts, idx),
        loss_fn=model.loss,
        validate=model.validate,
        ctx=ctx,
        config=TrainConfig(epochs=epochs, lr=0.1, clip_norm=1.0, patience=patience, lr_decay=lr_decay),
        device=torch.device("cpu"),
        **kwargs,
    )


def test_nan_loss_names_epoch_and_step(tmp_path) -> None:
    model = Scripted([0.1] * 5, nan_at=(2, 3))
    with pytest.raises(MlbenchError, match=r"epoch 2, step 3 of 5"):
        run_scripted(model, FitContext(checkpoint_dir=tmp_path, progress=False), epochs=5, patience=None)


def test_early_stopping_restores_the_best_epoch(tmp_path) -> None:
    model = Scripted([0.2, 0.6, 0.5, 0.4, 0.9, 0.95])
    ctx = FitContext(checkpoint_dir=tmp_path, progress=False)
    result = run_scripted(model, ctx, epochs=6, patience=2)
    assert (result.best_epoch, result.epochs_run, result.stopped_early) == (2, 4, True)
    assert result.best_valid_micro_f1 == 0.6
    assert torch.equal(model.net.weight, model.weights[2]) and not torch.equal(model.weights[2], model.weights[4])
    assert [e for e, _ in ctx.history] == [1, 2, 3, 4]
    assert set(ctx.history[0][1]) >= {"valid_micro_f1", "train_loss"}
    assert (tmp_path / "scripted-best.pt").exists()


def test_learning_rate_decays_after_epochs_without_improvement(tmp_path) -> None:
    ctx = FitContext(checkpoint_dir=tmp_path, progress=False)
    run_scripted(Scripted([0.5, 0.4, 0.6, 0.3, 0.2]), ctx, epochs=5, patience=None, lr_decay=0.5)
    assert [m["lr"] for _, m in ctx.history] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_a_second_phase_continues_the_epochs_and_keeps_a_better_baseline(tmp_path) -> None:
    model = Scripted([0.3, 0.4, 0.2])
    before = model.net.weight.detach().clone()
    ctx = FitContext(checkpoint_dir=tmp_path, progress=False)
    result = run_scripted(model, ctx, epochs=3, patience=None, epoch_offset=10, baseline=0.5)
    assert [e for e, _ in ctx.history] == [11, 12, 13]
    assert (result.best_epoch, result.epochs_run) == (10, 3)  # no epoch beat the incoming weights
    assert torch.equal(model.net.weight, before)


def test_report_hook_errors_propagate(tmp_path) -> None:
    class Pruned(Exception):  # stands in for optuna.TrialPruned
        pass

    def prune(epoch, metrics):
        if epoch == 2:
            raise Pruned

    model = Scripted([0.1, 0.2, 0.3])
    with pytest.raises(Pruned):
        run_scripted(model, FitContext(checkpoint_dir=tmp_path, hooks=[prune], progress=False), epochs=3, patience=None)
    assert model.epoch == 2


# ------------------------------------------------------------------- networks


def test_dynamic_max_pool_shape_and_agreement_with_adaptive_pooling() -> None:
    torch.manual_seed(0)
    maps = torch.rand(5, 3, 11)
    lengths = torch.tensor([11, 7, 3, 1, 2])
    pooled = dynamic_max_pool(maps, lengths, chunks=4)
    assert pooled.shape == (5, 3, 4)
    maps.requires_grad_(True)
    weights = torch.randn(5, 3, 4)
    (dynamic_max_pool(maps, lengths, chunks=4) * weights).sum().backward()
    for i, n in enumerate(lengths.tolist()):
        doc = maps.detach()[i : i + 1, :, :n].clone().requires_grad_(True)
        expected = torch.nn.AdaptiveMaxPool1d(4)(doc)
        assert torch.equal(pooled[i : i + 1], expected)
        (expected * weights[i : i + 1]).sum().backward()
        assert torch.allclose(maps.grad[i : i + 1, :, :n], doc.grad)  # same gradient too
        assert (maps.grad[i, :, n:] == 0).all()  # and none into the padding


def test_xml_cnn_prediction_does_not_depend_on_batch_padding() -> None:
    torch.manual_seed(0)
    net = XMLCNNNetwork(30, 5, 8, [2, 4], 6, 3, 16, dropout=0.0, embedding_dropout=0.0).eval()
    doc = torch.randint(2, 30, (1, 6))
    alone = net(F.pad(doc, (0, 0)), torch.tensor([6]))
    padded = torch.cat([F.pad(doc, (0, 14)), torch.randint(2, 30, (1, 20))])
    together = net(padded, torch.tensor([6, 20]))
    assert alone.shape == (1, 5)
    assert torch.allclose(alone, together[:1], atol=1e-6)
    paper = XMLCNNNetwork(30, 5, 8, [2, 4], 6, 3, 16, 0.0, 0.0, pooling="padded").eval()
    assert paper(padded, torch.tensor([6, 20])).shape == (2, 5)


def test_cnn_rnn_beam_outputs_never_repeat_labels() -> None:
    torch.manual_seed(1)
    net = CNNRNNNetwork(40, 5, 8, [2, 3], 4, 16, 1, 8, dropout=0.0, embedding_dropout=0.0, document_at_output=True).eval()
    # bias the output towards one label so that a missing mask would repeat it
    with torch.no_grad():
        net.output.bias[N_LABEL_SPECIALS + 2] += 10.0
        net.output.bias[LABEL_EOS] -= 10.0
    tokens = torch.randint(2, 40, (6, 9))
    res = beam_search(net.step, net.initial_state(tokens, torch.full((6,), 9)), 6, net.n_tokens, 4, max_steps=6)
    for row in res.beams.view(-1, res.beams.shape[-1]).tolist():
        labels = [x for x in row if x >= N_LABEL_SPECIALS]
        assert len(labels) == len(set(labels))
    assert (res.tokens[:, 0] == N_LABEL_SPECIALS + 2).all()


# -------------------------------------------------------------------- methods


@pytest.fixture(scope="module")
def synthetic_task():
    return SyntheticDataset(n_docs=300, n_labels=8, vocab_size=300, doc_len=30).load()


@pytest.mark.parametrize("name", ["xml-cnn", "cnn-rnn"])
def test_method_fits_predicts_deterministically_and_round_trips(name, synthetic_task, tmp_path) -> None:
    from mlbench.metrics import micro_precision_recall_f1
    from mlbench.registry import get_method

    cls = get_method(name)
    task = synthetic_task

    def fit():
        torch.manual_seed(123)  # fit must not depend on the global generator's state
        m = cls(**cls.contract_params)
        m.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False))
        return m

    model = fit()
    pred = model.predict(task.test)
    assert sp.issparse(pred) and pred.shape == (len(task.test), task.n_labels)
    assert micro_precision_recall_f1(task.test.Y, pred)[2] > 0.5
    assert (fit().predict(task.test) != pred).nnz == 0
    model.save(tmp_path / "saved")
    again = cls.load(tmp_path / "saved")
    assert (again.predict(task.test) != pred).nnz == 0
    if model.supports_scores:
        assert np.allclose(again.predict_scores(task.test), model.predict_scores(task.test))


def test_method_modules_do_not_import_torch() -> None:
    code = "import sys, mlbench.methods.xml_cnn, mlbench.methods.cnn_rnn; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_xml_cnn_valid_threshold_is_chosen_on_validation_and_saved(synthetic_task, tmp_path) -> None:
    from mlbench.methods.xml_cnn import XMLCNN
    from mlbench.metrics import best_micro_f1_threshold, micro_precision_recall_f1

    task = synthetic_task
    model = XMLCNN(**{**XMLCNN.contract_params, "epochs": 3, "threshold": "valid"})
    model.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False))
    valid_scores = model.predict_scores(task.valid)
    expected, f1 = best_micro_f1_threshold(task.valid.Y, valid_scores)
    assert model.threshold_ == pytest.approx(expected)
    pred = model.predict(task.valid)
    assert (pred != sp.csr_matrix(valid_scores >= expected)).nnz == 0
    assert micro_precision_recall_f1(task.valid.Y, pred)[2] == pytest.approx(f1)
    assert f1 >= micro_precision_recall_f1(task.valid.Y, sp.csr_matrix(valid_scores >= 0.5))[2]
    model.save(tmp_path / "saved")
    assert XMLCNN.load(tmp_path / "saved").threshold_ == pytest.approx(expected)


def test_xml_cnn_min_labels_gives_every_document_its_best_labels(synthetic_task, tmp_path) -> None:
    from mlbench.methods.xml_cnn import XMLCNN
    from mlbench.metrics import best_micro_f1_threshold, micro_precision_recall_f1, top_labels_mask

    task = synthetic_task
    ctx = FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False)
    # a threshold few scores reach: without min_labels most documents get nothing
    strict = XMLCNN(**{**XMLCNN.contract_params, "epochs": 2, "threshold": 0.95}).fit(task.train, task.valid, ctx)
    scores = strict.predict_scores(task.test)
    bare = strict.predict(task.test)
    assert (np.diff(bare.indptr) == 0).sum() > 0
    strict.params["min_labels"] = 2
    topped = strict.predict(task.test)
    expected = (scores >= 0.95) | top_labels_mask(scores, 2)
    assert (topped != sp.csr_matrix(expected)).nnz == 0 and (np.diff(topped.indptr) >= 2).all()
    # the validation threshold is chosen with the same rule, and saved with the model
    model = XMLCNN(**{**XMLCNN.contract_params, "epochs": 3, "threshold": "valid", "min_labels": 1})
    model.fit(task.train, task.valid, FitContext(seed=0, checkpoint_dir=tmp_path / "ckpt2", progress=False))
    valid_scores = model.predict_scores(task.valid)
    t, f1 = best_micro_f1_threshold(task.valid.Y, valid_scores, min_labels=1)
    assert model.threshold_ == pytest.approx(t)
    assert micro_precision_recall_f1(task.valid.Y, model.predict(task.valid))[2] == pytest.approx(f1)
    model.save(tmp_path / "saved")
    loaded = XMLCNN.load(tmp_path / "saved")
    assert loaded.params["min_labels"] == 1 and (loaded.predict(task.test) != model.predict(task.test)).nnz == 0
    with pytest.raises(MlbenchError, match="min_labels"):
        XMLCNN(min_labels=-1)


@pytest.mark.parametrize("bad", [0, 1.0, "best", True, None])
def test_xml_cnn_rejects_bad_thresholds(bad) -> None:
    from mlbench.methods.xml_cnn import XMLCNN

    with pytest.raises(MlbenchError, match="threshold"):
        XMLCNN(threshold=bad)
