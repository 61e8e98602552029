"""Task building: label order, label space, label sequences and the seeded validation carve."""

from __future__ import annotations


import numpy as np

from mlbench.data.build import Document, build_task, carve_validation, frequency_order


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


