"""Task names and variants: a dataset plus -shuffled / -trim<k>, parsed, checked and built in one place."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from mlbench.api import MlbenchError
from mlbench.data import tasks as data_tasks
from mlbench.data.tasks import get_task
from mlbench.data.variants import shuffled, split_task_name, trim_level, trimmed
from mlbench.api import UnknownNameError


def test_unknown_task_names_list_the_datasets():
    with pytest.raises(UnknownNameError, match="datasets: bibtex, corel5k, delicious, emotions, enron, genbase, mediamill, medical, rcv1, reuters, scene, synthetic, tmc2007, yeast"):
        data_tasks.get_task("no-such-task")
    with pytest.raises(MlbenchError, match="unknown task variant 'trimx'"):
        data_tasks.get_task("synthetic-trimx")


def test_trim_level_reads_k_back_from_a_name():
    assert trim_level("reuters", "reuters") == 0
    assert trim_level("reuters-trim10", "reuters") == 10
    assert trim_level("reuters-shuffled", "reuters") is None
    assert trim_level("rcv1-trim10", "reuters") is None
    assert trim_level("./my-data-trim3", "./my-data") == 3


def test_split_task_name_prefers_the_longest_dataset():
    assert split_task_name("rcv1", ["rcv1"]) == ("rcv1", [])
    assert split_task_name("rcv1-trim10-shuffled", ["rcv1"]) == ("rcv1", ["trim10", "shuffled"])
    assert split_task_name("my-data-shuffled", ["my", "my-data"]) == ("my-data", ["shuffled"])


@pytest.mark.parametrize(
    "name, message",
    [
        ("reuters-trim-5", "malformed variant 'trim-5'"),
        ("reuters-trim0", "trim0 trims nothing"),
        ("reuters-trim05", "write trim05 as trim5"),
        ("reuters-shuffled-shuffled", "shuffled and shuffled are both given"),
        ("reuters-trim10-trim5", "trim10 and trim5 are both given"),
        ("reuters-", "unknown task variant ''"),
    ],
)
def test_malformed_or_redundant_variants_are_rejected_before_loading(name, message):
    # check_task_name reads no data: it is what the CLI calls before opening anything
    with pytest.raises(UnknownNameError, match=re.escape(message)):
        data_tasks.check_task_name(name)


def test_well_formed_variants_pass_the_name_check():
    for name in ("reuters", "rcv1-trim10-shuffled", "synthetic-shuffled-trim3"):
        data_tasks.check_task_name(name)


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
