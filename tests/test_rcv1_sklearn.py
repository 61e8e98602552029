"""RCV1 from scikit-learn's fetch_rcv1 cache, on a small cache written in exactly the layout its loader reads."""

from __future__ import annotations

import logging
from pathlib import Path

import joblib
import numpy as np
import pytest
import scipy.sparse as sp

from mlbench.api import DataError
from mlbench.cli.main import main
from mlbench.data.rcv1_sklearn import FILES, LYRL_TRAIN_DOCS
from mlbench.data.tasks import get_task
from mlbench.tasks.rcv1 import RCV1Dataset

TOPICS = ("C15", "CCAT", "E12", "ECAT", "GCAT", "M11")
N_TEST = 120


def write_cache(home: Path, folder: str = "RCV1") -> tuple[sp.csr_matrix, np.ndarray]:
    """What fetch_rcv1 leaves: four joblib files (compress=9) in <home>/RCV1, the vectors in LYRL2004 order."""
    target = home / folder
    target.mkdir(parents=True, exist_ok=True)
    n, n_features = LYRL_TRAIN_DOCS + N_TEST, 30
    rng = np.random.default_rng(0)
    Y = np.zeros((n, len(TOPICS)), dtype=np.uint8)
    first = rng.integers(0, len(TOPICS), size=n)
    Y[np.arange(n), first] = 1
    Y[np.arange(0, n, 7), (first[::7] + 1) % len(TOPICS)] = 1
    rows = np.repeat(np.arange(n), 3)
    cols = (first[rows] * 5 + rng.integers(0, 5, size=3 * n)) % n_features
    X = sp.csr_matrix((rng.random(3 * n), (rows, cols)), shape=(n, n_features))
    X.sum_duplicates()
    joblib.dump(X, target / "samples_py3.pkl", compress=9)
    joblib.dump(np.arange(2286, 2286 + n, dtype=np.uint32), target / "sample_id_py3.pkl", compress=9)
    joblib.dump(sp.csr_matrix(Y), target / "sample_topics_py3.pkl", compress=9)
    joblib.dump(np.array(TOPICS, dtype=object), target / "topics_names_py3.pkl", compress=9)
    return X, Y


@pytest.fixture(scope="module")
def sklearn_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("scikit_learn_data")
    X, Y = write_cache(home)
    return home, X, Y


@pytest.fixture(scope="module")
def vectors(sklearn_home):
    home, _, _ = sklearn_home
    return RCV1Dataset().load(home)


def test_the_cache_is_a_feature_task_with_the_lyrl2004_split(vectors, sklearn_home):
    _, X, Y = sklearn_home
    task = vectors
    assert task.name == "rcv1" and task.dataset == "rcv1-vectors" and task.inputs == frozenset({"features"})
    assert RCV1Dataset.inputs == frozenset({"text", "features"})  # known before reading: the copy decides
    assert len(task.train) + len(task.valid) == LYRL_TRAIN_DOCS and len(task.test) == N_TEST
    assert 0.09 < len(task.valid) / LYRL_TRAIN_DOCS < 0.11 and set(task.labels) == set(TOPICS)
    assert sp.issparse(task.test.X) and task.test.X.dtype == np.float32
    # the test part is the documents after the first 23,149, in order, with their own vectors and topics
    assert np.allclose(task.test.X.toarray(), X[LYRL_TRAIN_DOCS:].toarray())
    order = [TOPICS.index(lab) for lab in task.labels]
    assert (task.test.Y.toarray() == Y[LYRL_TRAIN_DOCS:][:, order]).all()
    assert RCV1Dataset().load(sklearn_home[0]).fingerprint == task.fingerprint


def test_the_cache_is_found_under_every_name_a_user_gives(sklearn_home, vectors, tmp_path, monkeypatch):
    home, _, _ = sklearn_home
    assert RCV1Dataset().load(home / "RCV1").fingerprint == vectors.fingerprint  # the RCV1 folder itself
    copy = tmp_path / "rcv1"  # the files moved into a folder of another name
    copy.mkdir()
    for name in FILES:
        (copy / name).symlink_to(home / "RCV1" / name)
    assert RCV1Dataset().load(copy).fingerprint == vectors.fingerprint
    monkeypatch.setenv("MLBENCH_DATA", str(tmp_path / "empty-data-home"))  # no default rcv1 copy ...
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(home))  # ... so scikit-learn's data home is read
    assert RCV1Dataset().load().fingerprint == vectors.fingerprint
    with pytest.raises(DataError, match="no RCV1 copy found in"):  # an explicit --data-dir is not second-guessed
        RCV1Dataset().load(tmp_path / "elsewhere")


def test_a_text_layout_wins_over_the_cache(sklearn_home, tmp_path):
    home, _, _ = sklearn_home
    folder = tmp_path / "both"
    folder.mkdir()
    (folder / "RCV1").symlink_to(home / "RCV1", target_is_directory=True)
    for split, n in (("train", 4), ("val", 1), ("test", 2)):
        (folder / f"text_{split}").write_text("".join(f"doc {i}\n" for i in range(n)))
        (folder / f"label_{split}").write_text("CCAT\n" * n)
    assert RCV1Dataset().load(folder).inputs == frozenset({"text"})
    assert RCV1Dataset(fmt="sklearn").load(folder).dataset == "rcv1-vectors"


def test_variants_on_the_cache(sklearn_home, vectors):
    home, _, _ = sklearn_home
    shuffled = get_task("rcv1-shuffled", data_dir=home)
    assert shuffled.fingerprint != vectors.fingerprint and (shuffled.train.Y != vectors.train.Y).nnz == 0
    assert shuffled.train.X is vectors.train.X or (shuffled.train.X != vectors.train.X).nnz == 0
    trimmed = get_task("rcv1-trim1", data_dir=home)
    assert trimmed.labels == vectors.labels[1:]
    kept = vectors.test.Y[:, 1:].getnnz(axis=1) > 0
    assert len(trimmed.test) == int(kept.sum())
    assert (trimmed.test.X != vectors.test.X[np.flatnonzero(kept)]).nnz == 0


def test_a_partial_cache_warns(sklearn_home, caplog):
    with caplog.at_level(logging.WARNING, logger="mlbench.data.rcv1"):
        RCV1Dataset(max_test_docs=10).load(sklearn_home[0])
    assert "partial RCV1 copy" in caplog.text and "6 topic codes" in caplog.text


def test_an_incomplete_or_damaged_cache_is_one_line(sklearn_home, tmp_path):
    home, _, _ = sklearn_home
    broken = tmp_path / "RCV1"
    broken.mkdir()
    for name in FILES[:2]:
        (broken / name).symlink_to(home / "RCV1" / name)
    with pytest.raises(DataError) as err:
        RCV1Dataset().load(tmp_path)
    assert "\n" not in str(err.value) and "missing sample_topics_py3.pkl, topics_names_py3.pkl" in str(err.value)
    for name in FILES[2:]:
        (broken / name).write_bytes(b"not a joblib file")
    with pytest.raises(DataError) as err:
        RCV1Dataset().load(tmp_path)
    assert "\n" not in str(err.value) and f"cannot read the scikit-learn RCV1 cache in {broken}" in str(err.value)


def test_a_cache_too_small_for_the_split_is_one_line(tmp_path):
    target = tmp_path / "RCV1"
    target.mkdir()
    joblib.dump(sp.csr_matrix(np.eye(3)), target / "samples_py3.pkl")
    joblib.dump(np.arange(3, dtype=np.uint32), target / "sample_id_py3.pkl")
    joblib.dump(sp.csr_matrix(np.eye(3, dtype=np.uint8)), target / "sample_topics_py3.pkl")
    joblib.dump(np.array(["A", "B", "C"], dtype=object), target / "topics_names_py3.pkl")
    with pytest.raises(DataError, match="has 3 documents; its LYRL2004 split takes the first 23,149 as train"):
        RCV1Dataset().load(tmp_path)


def test_cli_info(sklearn_home, capsys):
    assert main(["data", "info", "rcv1", "--data-dir", str(sklearn_home[0])]) == 0
    info = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert info["instances"] == f"{LYRL_TRAIN_DOCS + N_TEST} (train + valid + test)"
    assert info["features"] == "30 (sparse)" and info["labels"] == "6"
