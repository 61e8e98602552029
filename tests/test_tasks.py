"""Task building, label order, validation carving and the -shuffled / -trim<k> variants."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mlbench.api import MlbenchError
from mlbench.data.build import Document, build_task, carve_validation, frequency_order
from mlbench.registry import get_task
from mlbench.tasks.variants import shuffled, trimmed


def _docs(specs):
    return [Document(str(i), f"doc {i}", tuple(labs)) for i, labs in enumerate(specs)]


def test_frequency_order_breaks_ties_by_name_and_keeps_unseen_labels_last():
    order = frequency_order([("b",), ("a", "b"), ("c",), ("a",)], {"a", "b", "c", "z"})
    assert order == ["a", "b", "c", "z"]


def test_build_task_label_space_and_sequences():
    train = _docs([["x", "y"], ["y"], ["y", "z"]])
    test = _docs([["x", "only-test"]])
    task = build_task("t", "t", train, [], test)
    assert task.labels == ("y", "x", "z", "only-test")
    assert task.train.label_seqs == ((0, 1), (0,), (0, 2))
    assert task.label_freq.tolist() == [3, 1, 1, 0]
    assert task.test.Y.toarray().tolist() == [[0, 1, 0, 1]]
    # the fingerprint depends on ids, labels and transforms
    assert task.fingerprint == build_task("t", "t", train, [], test).fingerprint
    assert task.fingerprint != build_task("t", "t", train[:2], [], test).fingerprint


def test_carve_validation_is_seeded_and_keeps_rare_labels_in_both_parts():
    rng = np.random.default_rng(0)
    specs = []
    for i in range(600):
        labs = {f"common{rng.integers(3)}"}
        if i % 40 == 0:
            labs.add("rare")  # 15 documents
        if i % 150 == 0:
            labs.add("very-rare")  # 4 documents
        specs.append(sorted(labs))
    docs = _docs(specs)
    train, valid = carve_validation(docs, 0.1, seed=3)
    assert len(train) + len(valid) == 600 and 50 <= len(valid) <= 70
    assert {d.id for d in train}.isdisjoint({d.id for d in valid})
    for lab in ("rare", "very-rare", "common0"):
        assert any(lab in d.labels for d in valid), lab
        assert any(lab in d.labels for d in train), lab
    again = carve_validation(docs, 0.1, seed=3)[1]
    assert [d.id for d in again] == [d.id for d in valid]
    assert [d.id for d in carve_validation(docs, 0.1, seed=4)[1]] != [d.id for d in valid]


@pytest.fixture(scope="module")
def synthetic():
    return get_task("synthetic")


def test_shuffled_changes_only_training_order(synthetic):
    s = shuffled(synthetic)
    assert s.name == "synthetic-shuffled"
    assert (s.train.Y != synthetic.train.Y).nnz == 0
    assert s.test is synthetic.test and s.valid is synthetic.valid
    assert all(sorted(a) == sorted(b) for a, b in zip(s.train.label_seqs, synthetic.train.label_seqs))
    multi = [i for i, q in enumerate(synthetic.train.label_seqs) if len(q) > 1]
    changed = sum(s.train.label_seqs[i] != synthetic.train.label_seqs[i] for i in multi)
    assert changed > len(multi) // 3  # most multi-label sequences move
    assert s.fingerprint != synthetic.fingerprint
    assert shuffled(synthetic).train.label_seqs == s.train.label_seqs  # fixed seed


def test_trim_removes_the_most_frequent_labels_and_empty_documents(synthetic):
    t = trimmed(synthetic, 3)
    assert t.labels == synthetic.labels[3:]
    assert t.name == "synthetic-trim3"
    for split_name in ("train", "valid", "test"):
        base, cut = synthetic.splits[split_name], t.splits[split_name]
        kept = base.Y[:, 3:].getnnz(axis=1) > 0
        assert len(cut) == int(kept.sum())
        assert (cut.Y != base.Y[kept][:, 3:]).nnz == 0
    assert t.fingerprint != synthetic.fingerprint
    with pytest.raises(MlbenchError, match="k must be between"):
        trimmed(synthetic, synthetic.n_labels)


def test_variant_names_compose(synthetic):
    t = get_task("synthetic-trim2-shuffled")
    assert t.name == "synthetic-trim2-shuffled"
    assert t.transforms == ("trim(2)", "shuffled(seed=0)")
    assert t.labels == synthetic.labels[2:]
    freq = Counter(j for q in t.train.label_seqs for j in q)
    assert sum(freq.values()) == t.train.Y.nnz
