"""Feature tasks from the formats users hold: MULAN/MEKA/sparse ARFF and LIBSVM/XC text, read back to one
fingerprint; one-line errors naming the file and line; FIFOs and devices refused; (e2e) the eleven MULAN
datasets written in both formats."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from mlbench.api import DataError
from mlbench.cli.main import main
from mlbench.data.files import load_path_task
from mlbench.data.tasks import get_task


# ------------------------------------------------------------------ writers


def _rows(X):
    X = sp.csr_matrix(X)
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        yield X.indices[lo:hi], X.data[lo:hi]


def _labels(Y):
    Y = sp.csr_matrix(Y)
    return [sorted(Y.indices[Y.indptr[i]:Y.indptr[i + 1]]) for i in range(Y.shape[0])]


def write_arff(path: Path, X, Y, labels, sparse=False, meka=0, split=None):
    """MULAN ARFF (features then labels), or MEKA with ``meka`` = +1 (labels first) or -1 (labels last)."""
    n_f, n_l = X.shape[1], len(labels)
    features = [f"f{j}" for j in range(n_f)]
    order = labels + features if meka > 0 else features + labels
    relation = f"'data: -C {n_l if meka > 0 else -n_l}'" if meka else "data"
    lines = [f"@relation {relation}"]
    lines += [f"@attribute {a} {{0,1}}" if a in labels else f"@attribute {a} numeric" for a in order]
    if split is not None:
        lines.append("@attribute split {train,valid,test}")
    lines.append("@data")
    dense = np.asarray(X.todense() if sp.issparse(X) else X)
    for i, (labs, (cols, vals)) in enumerate(zip(_labels(Y), _rows(X))):
        values = {f"f{j}": float(v) for j, v in zip(cols, vals)}
        values.update({labels[j]: 1 for j in labs})
        if split is not None:
            values["split"] = split[i]
        names = order + (["split"] if split is not None else [])
        if sparse:
            cells = [f"{k} {values[a]!r}" if a != "split" else f"{k} {values[a]}"
                     for k, a in enumerate(names) if a in values]
            lines.append("{" + ", ".join(cells) + "}")
        else:
            row = {**{f"f{j}": float(v) for j, v in enumerate(dense[i])}, **values}
            lines.append(",".join(repr(row.get(a, 0)) if a != "split" else row[a] for a in names))
    path.write_text("\n".join(lines) + "\n")


def write_xml(path: Path, labels):
    body = "".join(f'  <label name="{lab}"></label>\n' for lab in labels)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<labels xmlns="http://mulan.sourceforge.net/labels">\n'
                    f"{body}</labels>\n")


def write_xc(path: Path, X, Y, n_labels, header=True, base=0):
    lines = [f"{X.shape[0]} {X.shape[1]} {n_labels}"] if header else []
    for labs, (cols, vals) in zip(_labels(Y), _rows(X)):
        feats = " ".join(f"{j + base}:{float(v)!r}" for j, v in zip(cols, vals))
        lines.append(f"{','.join(map(str, labs))} {feats}".rstrip() if labs else f" {feats}")
    path.write_text("\n".join(lines) + "\n")


def names(n):
    return [f"L{j:03d}" for j in range(n)]


def synthetic(kind: str, seed: int = 0):
    """(X_train, Y_train, X_test, Y_test): dense floats, or sparse 0/1; both with empty label sets."""
    rng = np.random.default_rng(seed)
    n, n_f, n_l = 90, 12, 5
    Y = (rng.random((n, n_l)) < 0.2).astype(np.int8)
    Y[np.arange(n), np.arange(n) % n_l] = 1
    Y[:4] = 0  # documents without a label
    if kind == "dense":
        X = rng.normal(size=(n, n_f)).astype(np.float32)
        X[:, 3] = 0.0
    else:
        X = sp.random(n, n_f, density=0.15, random_state=seed, format="csr", dtype=np.float32)
        X.data[:] = 1.0
    return X[:60], sp.csr_matrix(Y[:60]), X[60:], sp.csr_matrix(Y[60:])


def write_all(root: Path, kind: str):
    Xtr, Ytr, Xte, Yte = synthetic(kind)
    labels = names(Ytr.shape[1])
    folders = {}
    for variant in ("mulan", "meka_first", "meka_last", "sparse_arff", "xc", "libsvm"):
        folder = root / f"{kind}-{variant}"
        folder.mkdir()
        for part, X, Y in (("train", Xtr, Ytr), ("test", Xte, Yte)):
            if variant == "mulan":
                write_arff(folder / f"set-{part}.arff", X, Y, labels)
            elif variant.startswith("meka"):
                write_arff(folder / f"{part}.arff", X, Y, labels, meka=1 if variant == "meka_first" else -1)
            elif variant == "sparse_arff":
                write_arff(folder / f"{part}.arff", X, Y, labels, sparse=True)
            elif variant == "xc":
                write_xc(folder / f"{part}.txt", X, Y, len(labels))
            else:  # LIBSVM as LIBSVM writes it: no header, features from 1
                write_xc(folder / f"{part}.svm", X, Y, len(labels), header=False, base=1)
        if variant in ("mulan", "sparse_arff"):
            write_xml(folder / "set.xml", labels)
        folders[variant] = folder
    return folders


def same_matrix(a, b) -> bool:
    if sp.issparse(a) != sp.issparse(b) or a.dtype != b.dtype or a.shape != b.shape:
        return False
    return (a != b).nnz == 0 if sp.issparse(a) else np.array_equal(a, b)


def assert_same_task(a, b):
    assert a.fingerprint == b.fingerprint and a.dataset == b.dataset and a.labels == b.labels
    for split in ("train", "valid", "test"):
        sa, sb = a.splits[split], b.splits[split]
        assert sa.ids == sb.ids and same_matrix(sa.X, sb.X) and (sa.Y != sb.Y).nnz == 0


# ------------------------------------------------------------------ one task, every format


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_every_format_reads_back_to_the_same_task(tmp_path, kind):
    folders = write_all(tmp_path, kind)
    tasks = {variant: load_path_task(str(folder)) for variant, folder in folders.items()}
    ref = tasks["mulan"]
    for task in tasks.values():
        assert_same_task(task, ref)
    assert ref.inputs == frozenset({"features"}) and ref.train.texts == ()
    assert isinstance(ref.train.X, np.ndarray) == (kind == "dense")  # the same storage rule for every format
    assert ref.train.X.dtype == np.float32 and ref.dataset.startswith("files:")
    Xte = synthetic(kind)[2]
    got = ref.test.X.toarray() if sp.issparse(ref.test.X) else ref.test.X
    assert np.array_equal(got, Xte.toarray() if sp.issparse(Xte) else Xte)
    assert sum(1 for s in ref.splits.values() for q in s.label_seqs if not q) == 4  # empty label sets kept
    assert 5 <= len(ref.valid) <= 7 and all(i.startswith("train-") for i in ref.valid.ids)


def test_an_edited_value_moves_the_fingerprint(tmp_path):
    folder = write_all(tmp_path, "dense")["xc"]
    before = load_path_task(str(folder)).fingerprint
    _, _, Xte, Yte = synthetic("dense")
    Xte = Xte.copy()
    Xte[5, 0] += 1.0
    write_xc(folder / "test.txt", Xte, Yte, 5)
    assert load_path_task(str(folder)).fingerprint != before


def test_a_given_validation_file_is_used(tmp_path):
    folder = write_all(tmp_path, "sparse")["xc"]
    Xtr, Ytr, _, _ = synthetic("sparse", seed=3)
    write_xc(folder / "valid.txt", Xtr[:7], Ytr[:7], 5)
    task = load_path_task(str(folder))
    assert len(task.train) == 60 and task.valid.ids == tuple(f"valid-{i}" for i in range(7))


def test_one_arff_file_with_a_split_attribute(tmp_path):
    Xtr, Ytr, Xte, Yte = synthetic("dense")
    X, Y = np.vstack([Xtr, Xte]), sp.vstack([Ytr, Yte])
    split = ["train"] * 60 + ["test"] * 30
    write_arff(tmp_path / "all.arff", X, Y, names(5), meka=1, split=split)
    one = load_path_task(str(tmp_path / "all.arff"))
    (tmp_path / "f").mkdir()
    folder = write_all(tmp_path / "f", "dense")["meka_first"]
    assert_same_task(one, load_path_task(str(folder)))
    write_arff(tmp_path / "nosplit.arff", X, Y, names(5), meka=1)
    with pytest.raises(DataError, match="nosplit.arff: one ARFF file needs a nominal 'split' attribute"):
        load_path_task(str(tmp_path / "nosplit.arff"))


def test_one_xc_file_with_the_repository_split_files(tmp_path):
    Xtr, Ytr, Xte, Yte = synthetic("sparse")
    X, Y = sp.vstack([Xtr, Xte]).tocsr(), sp.vstack([Ytr, Yte]).tocsr()
    write_xc(tmp_path / "Set_data.txt", X, Y, 5)
    (tmp_path / "set_trSplit.txt").write_text("".join(f"{i + 1} {i + 1}\n" for i in range(60)))
    (tmp_path / "set_tstSplit.txt").write_text("".join(f"{i + 1} {i + 1}\n" for i in range(60, 90)))
    one = load_path_task(str(tmp_path / "Set_data.txt"))
    (tmp_path / "f").mkdir()
    folder = write_all(tmp_path / "f", "sparse")["xc"]
    assert_same_task(one, load_path_task(str(folder)))


def test_sparse_arff_nominal_attributes_and_a_string_identifier(tmp_path, caplog):
    (tmp_path / "labels.xml").write_text('<labels><label name="a"/><label name="b"><label name="b1"/></label></labels>')
    head = ("@relation 'genes'\n@attribute protein string\n@attribute motif {YES,NO}\n@attribute score numeric\n"
            "@attribute a {0,1}\n@attribute b {0,1}\n@attribute b1 {0,1}\n@data\n")
    (tmp_path / "train.arff").write_text(head + "{0 P1, 1 NO, 2 0.5, 3 1}\n{0 P2, 4 1, 5 1}\n% a comment\n\n{0 P3, 3 1}\n")
    (tmp_path / "test.arff").write_text(head + "{0 P4, 1 NO, 3 1}\n{0 P5, 2 2.5, 5 1}\n")
    with caplog.at_level(logging.WARNING):
        task = load_path_task(str(tmp_path))
    assert "string attribute(s) protein dropped" in caplog.text
    assert set(task.labels) == {"a", "b", "b1"} and task.train.n_features == 2
    X = np.vstack([s.X.toarray() if sp.issparse(s.X) else s.X for s in (task.train, task.valid)])
    # an omitted nominal value is the first declared one: motif YES (1) in rows 2 and 3
    assert sorted(map(tuple, X.tolist())) == [(0.0, 0.5), (1.0, 0.0), (1.0, 0.0)]


# ------------------------------------------------------------------ bad files: one line, file and line


def _error(folder: Path) -> str:
    with pytest.raises(DataError) as err:
        load_path_task(str(folder))
    message = str(err.value)
    assert "\n" not in message
    return message


ARFF_HEAD = "@relation 'x: -C 2'\n@attribute l0 {0,1}\n@attribute l1 numeric\n@attribute f0 numeric\n@data\n"


@pytest.mark.parametrize("train, expected", [
    (ARFF_HEAD + "1,0,0.5\n0,1,abc\n", "train.arff: line 7: "),
    (ARFF_HEAD + "1,0,0.5\n\n0,2,1.5\n", "train.arff: line 8: label attribute 'l1' is 2, not 0 or 1"),
    (ARFF_HEAD + "1,0,?\n", "train.arff: line 6: missing value '?' for attribute 'f0'"),
    (ARFF_HEAD + "1,0\n", "train.arff: line 6: "),
    (ARFF_HEAD.replace("-C 2", "-C 9"), "train.arff: @relation says -C 9, but the file has 3 attributes"),
    (ARFF_HEAD.replace(": -C 2", ""), "train.arff: cannot tell which attributes are labels"),
    (ARFF_HEAD.replace("numeric\n@data", "{red,green}\n@data") + "1,0,red\n", "attribute 'f0' is nominal"),
])
def test_malformed_arff(tmp_path, train, expected):
    (tmp_path / "test.arff").write_text(ARFF_HEAD + "1,0,0.5\n")
    (tmp_path / "train.arff").write_text(train)
    assert expected in _error(tmp_path)


@pytest.mark.parametrize("train, expected", [
    ("3 4 2\n0 0:1\n1,x 1:1\n 2:1\n", "train.txt: line 3: label 'x' is not a non-negative integer"),
    ("3 4 2\n0 0:1\n1,2 1:1\n 2:1\n", "train.txt: line 3: label 2 is out of range (the header says 2 labels)"),
    ("3 4 2\n0 0:1\n1 9:1\n 2:1\n", "train.txt: line 3: feature 9 is out of range (the header says 4 features)"),
    ("3 4 2\n0 0:1\n1 1:nan\n 2:1\n", "train.txt: line 3: '1:nan': the value is not finite"),
    ("3 4 2\n0 0:1\n1 1:1 1:2\n 2:1\n", "train.txt: line 3: feature 1 is given twice"),
    ("3 4 2\n0 0:1\n1 1=1\n 2:1\n", "train.txt: line 3: '1=1' is not a feature 'index:value'"),
    ("4 4 2\n0 0:1\n1 1:1\n 2:1\n", "train.txt: line 1: the header says 4 documents, the file has 3 rows (blank lines are not rows)"),
])
def test_malformed_xc(tmp_path, train, expected):
    (tmp_path / "test.txt").write_text("1 4 2\n0 0:1\n")
    (tmp_path / "train.txt").write_text(train)
    assert _error(tmp_path).endswith(expected)


def test_unsorted_feature_indices_are_read(tmp_path):
    (tmp_path / "train.txt").write_text("3 4 2\n0 2:1 0:3\n1 1:1\n 2:1\n")
    (tmp_path / "valid.txt").write_text("1 4 2\n1 3:1 1:2\n")  # three rows are too few to carve one from
    (tmp_path / "test.txt").write_text("1 4 2\n0 0:1\n")
    task = load_path_task(str(tmp_path))
    rows = np.vstack([s.X.toarray() if sp.issparse(s.X) else s.X for s in task.splits.values()])
    assert [3.0, 0.0, 1.0, 0.0] in rows.tolist()


def test_mixed_formats_in_one_folder(tmp_path):
    (tmp_path / "train.arff").write_text(ARFF_HEAD + "1,0,0.5\n")
    (tmp_path / "test.txt").write_text("1 1 2\n0 0:1\n")
    assert "mixes ARFF and LIBSVM/XC files" in _error(tmp_path)


# ------------------------------------------------------------------ FIFOs and devices


@pytest.fixture
def no_hang():
    """Fail instead of hanging when a reader blocks on a FIFO."""
    def _timeout(*_):
        raise AssertionError("the reader blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("name", ["train.jsonl", "train.txt", "train.arff", "train.svm"])
def test_a_fifo_is_refused_before_it_is_opened(tmp_path, no_hang, name):
    (tmp_path / f"test{Path(name).suffix}").write_text("")
    os.mkfifo(tmp_path / name)
    message = _error(tmp_path)
    assert message == f"{tmp_path / name}: is a FIFO (named pipe), not a regular file; task data is read only from regular files"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_given_as_the_task_or_as_the_labels_file(tmp_path, no_hang):
    os.mkfifo(tmp_path / "all.jsonl")
    with pytest.raises(DataError, match="all.jsonl: is a FIFO"):
        get_task(str(tmp_path / "all.jsonl"))
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "train.arff").write_text(ARFF_HEAD.replace(": -C 2", "") + "1,0,0.5\n")
    (folder / "test.arff").write_text(ARFF_HEAD.replace(": -C 2", "") + "1,0,0.5\n")
    os.mkfifo(folder / "labels.xml")
    assert "labels.xml: is a FIFO" in _error(folder)


def test_a_device_is_refused(tmp_path):
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    with pytest.raises(DataError, match="/dev/null: is a character device, not a regular file"):
        get_task("/dev/null")


# ------------------------------------------------------------------ variants and commands


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_variants_of_a_feature_file_task(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    write_all(tmp_path, kind)
    base = get_task(f"./{kind}-xc")
    for name in (f"./{kind}-xc-shuffled", f"./{kind}-xc-trim1", f"./{kind}-xc-trim2-shuffled"):
        task = get_task(name)
        assert task.name == name and task.fingerprint != base.fingerprint
        for split in ("train", "valid", "test"):
            s, b = task.splits[split], base.splits[split]
            assert type(s.X) is type(b.X) and s.X.shape == (len(s), b.n_features)
            rows = [b.ids.index(i) for i in s.ids]
            assert same_matrix(s.X, b.X[rows].tocsr() if sp.issparse(b.X) else b.X[rows])
        if "trim" not in name:
            assert (task.train.Y != base.train.Y).nnz == 0
    trimmed = get_task(f"./{kind}-xc-trim1")
    assert trimmed.labels == base.labels[1:] and all(q for s in trimmed.splits.values() for q in s.label_seqs)


def test_cli_info_on_a_feature_folder(tmp_path, capsys):
    folder = write_all(tmp_path, "sparse")["sparse_arff"]
    assert main(["data", "info", str(folder)]) == 0
    info = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert info["instances"] == "90 (train + valid + test)" and info["features"] == "12 (sparse)"
    assert info["empty_labelsets"] == "4" and "train_median_words" not in info


# ------------------------------------------------------------------ e2e: the eleven MULAN datasets


@pytest.mark.e2e
@pytest.mark.slow
def test_the_mulan_datasets_as_arff_and_xc_read_back_to_the_built_in_data(tmp_path):
    from mlbench.data import mulan

    try:
        mulan.ensure_converted(mulan.NAMES)
    except DataError as exc:
        pytest.skip(f"the MULAN datasets are not available here: {exc}")
    for name in mulan.NAMES:
        Xtr, Ytr, Xte, Yte, labels = mulan.load_mulan(name)
        dense = mulan.DATASETS[name].dense
        arff, xc = tmp_path / name / "arff", tmp_path / name / "xc"
        arff.mkdir(parents=True)
        xc.mkdir()
        for part, X, Y in (("train", Xtr, Ytr), ("test", Xte, Yte)):
            write_arff(arff / f"{name}-{part}.arff", X, Y, labels, sparse=not dense)
            write_xc(xc / f"{part}.txt", X, Y, len(labels))
        write_xml(arff / f"{name}.xml", labels)
        from_arff, from_xc = load_path_task(str(arff)), load_path_task(str(xc))
        assert_same_task(from_arff, from_xc)
        built_in = get_task(name)
        assert from_arff.labels == built_in.labels, name
        for split in ("train", "valid", "test"):
            a, b = from_arff.splits[split], built_in.splits[split]
            assert a.ids == b.ids and same_matrix(a.X, b.X) and (a.Y != b.Y).nnz == 0, (name, split)
