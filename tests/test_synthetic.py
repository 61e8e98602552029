"""The synthetic generator: determinism, structure, and the synthetic task."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from mlbench.data.synthetic import CHUNK, generate, iter_generate, label_hierarchy, label_names
from mlbench.tasks.synthetic import SyntheticDataset


@pytest.fixture(scope="module")
def docs():
    return generate(3000, n_labels=20, vocab_size=2000, doc_len=60, seed=3)


def test_deterministic_under_seed() -> None:
    a = generate(300, seed=1)
    assert a == generate(300, seed=1)
    assert a != generate(300, seed=2)
    assert [d.text for d in a] != [d.text for d in generate(300, seed=2)]


def test_streaming_matches_list_and_prefixes_agree() -> None:
    n = CHUNK + 100
    full = generate(n, seed=5)
    assert list(iter_generate(n, seed=5)) == full
    assert generate(50, seed=5) == full[:50]
    assert len(full) == n and len({d.id for d in full}) == n


def test_sizes_and_names(docs) -> None:
    assert len(docs) == 3000
    assert [d.id for d in docs[:3]] == ["syn-0", "syn-1", "syn-2"]
    names = label_names(20)
    assert len(names) == 20 and names[:3] == ["P0", "P1", "P2"] and "P0.C0" in names
    assert {lab for d in docs for lab in d.labels} <= set(names)
    vocab = {w for d in docs for w in d.text.split()}
    assert all(w.startswith("w") and 0 <= int(w[1:]) < 2000 for w in vocab)
    lengths = np.array([len(d.text.split()) for d in docs])
    assert lengths.min() >= 1 and 50 <= lengths.mean() <= 70 and lengths.std() > 5
    assert generate(0) == []


def test_every_doc_labelled_and_child_implies_parent(docs) -> None:
    parent = label_hierarchy(20)
    assert sum(p is None for p in parent.values()) == 3
    assert all(parent[c] == c.split(".")[0] for c in parent if parent[c] is not None)
    for d in docs:
        assert d.labels and len(set(d.labels)) == len(d.labels)
        for lab in d.labels:
            if parent[lab] is not None:
                assert parent[lab] in d.labels
    multi_parent = sum(sum(parent[lab] is None for lab in d.labels) > 1 for d in docs)
    assert multi_parent > 0  # documents may span several trees, as in RCV1


def test_long_tail(docs) -> None:
    counts = Counter(lab for d in docs for lab in d.labels if "." in lab)  # children only
    freq = sorted(counts.values(), reverse=True)
    assert freq[0] >= 10 * freq[-1]
    assert 2.0 <= sum(len(d.labels) for d in docs) / len(docs) <= 4.0


def test_label_words_correlate_with_labels(docs) -> None:
    """A label's most characteristic word is far more frequent in its documents."""
    label = Counter(lab for d in docs for lab in d.labels).most_common(4)[-1][0]
    inside = Counter(w for d in docs if label in d.labels for w in set(d.text.split()))
    outside = Counter(w for d in docs if label not in d.labels for w in set(d.text.split()))
    n_in = sum(label in d.labels for d in docs)
    n_out = len(docs) - n_in
    lift = {w: (c / n_in) / ((outside[w] + 1) / n_out) for w, c in inside.items() if c >= 20}
    assert max(lift.values()) > 5
    # and a simple keyword rule built on train predicts the label on held-out docs
    top = sorted(lift, key=lift.get, reverse=True)[:5]
    test = list(iter_generate(3500, seed=3))[3000:]  # documents the rule never saw
    pred = np.array([any(w in d.text.split() for w in top) for d in test])
    gold = np.array([label in d.labels for d in test])
    assert (pred == gold).mean() > 0.8


def test_empty_fraction() -> None:
    assert all(d.text for d in generate(500, seed=0))
    docs = generate(1000, seed=0, empty_fraction=0.05)
    empty = [i for i, d in enumerate(docs) if d.text == ""]
    assert len(empty) == 50 and empty[0] == 0
    assert all(docs[i].labels for i in empty)
    assert len(generate(10, empty_fraction=0.01)[0].text) == 0  # at least one when > 0
    assert all(d.text == "" for d in generate(20, empty_fraction=1.0))
    assert sum(d.text == "" for d in generate(CHUNK + 10, empty_fraction=0.3)) == math.ceil((CHUNK + 10) * 0.3)


def test_rcv1_scale_shape() -> None:
    docs = generate(200, n_labels=103, vocab_size=50000, doc_len=250, seed=0)
    assert len(label_names(103)) == 103
    mean_len = np.mean([len(d.text.split()) for d in docs])
    assert 220 <= mean_len <= 280


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate(10, n_labels=20, vocab_size=20)
    with pytest.raises(ValueError):
        generate(10, empty_fraction=1.5)


def test_synthetic_task() -> None:
    ds = SyntheticDataset(n_docs=200, n_labels=12, vocab_size=500, doc_len=20, empty_fraction=0.05)
    task = ds.load(seed=0)
    assert task.name == "synthetic" and task.dataset == "synthetic"
    assert (len(task.train), len(task.valid), len(task.test)) == (140, 20, 40)
    assert task.n_labels == 12 and set(task.labels) == set(label_names(12))
    assert task.train.ids[0].endswith("-0") and task.test.ids[-1].endswith("-199")
    assert sum(t == "" for t in task.train.texts) > 0
    again = SyntheticDataset(n_docs=200, n_labels=12, vocab_size=500, doc_len=20, empty_fraction=0.05).load(seed=9)
    assert again.fingerprint == task.fingerprint and again.train.texts == task.train.texts
    other = SyntheticDataset(n_docs=200, n_labels=12, vocab_size=500, doc_len=20, gen_seed=1).load()
    assert other.fingerprint != task.fingerprint
    default = SyntheticDataset().load()
    assert (len(default.train), len(default.valid), len(default.test)) == (1400, 200, 400)
