"""Length-bucketed batches, per-batch padding and label targets of the neural methods."""

from __future__ import annotations


import numpy as np
import scipy.sparse as sp
import torch

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
from mlbench.methods.neural.text import PAD, UNK, Vocabulary, encode_texts


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
