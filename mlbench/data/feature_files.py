"""Feature tasks from the user's files: ARFF (MULAN, MEKA, sparse) and LIBSVM / XC text.

Layouts, as for the text formats (:mod:`mlbench.data.files`): a folder with train and test files (and
optionally valid) of one format, or one file that says which row goes where: an ARFF file with a nominal
``split`` attribute (train/valid/test; another name with ``--task-option split=...``), or an Extreme
Classification Repository data file with the repository's split files beside it (``<name>_trSplit.txt`` and
``<name>_tstSplit.txt``: 1-based row numbers, one column per split; the first column is used).

Every file of a task must declare the same features and labels. Unnamed labels (XC, LIBSVM) are called
``L<index>``, zero-padded as for the MULAN datasets (``L000``), so a MULAN set written as ARFF with those
names and as XC text reads back to the same task. The feature matrix is dense float32 when at least half of
its entries (over every file) are non-zero, CSR float32 otherwise: the same rule for every format. Without a
validation part, 10% of train is carved by the seeded iterative stratification every own-data task uses; a
test label no training row carries stays in the label space, with a warning. The
task's ``dataset`` is ``files:<digest>``, the digest hashing the label space, and each part's feature values
and label sets: the same data in another format gives the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mlbench.api import Task
from mlbench.data.arff_files import read_arff
from mlbench.data.build import build_feature_task
from mlbench.data.file_layout import SPLITS, VALID_FRACTION, VALID_SEED, TaskFileError, require_regular
from mlbench.data.mulan import label_names
from mlbench.data.svmlight_files import HEADER, SvmRows, one_based, read_svmlight

log = logging.getLogger(__name__)

SVMLIGHT_SUFFIXES = (".svm", ".libsvm", ".svmlight", ".xc")
_FEATURE_TOKEN = re.compile(rb"^(\d+|qid):\S*$")
_LABEL_TOKEN = re.compile(rb"^[0-9.,]*$")
#: At least this share of non-zero entries makes the feature matrix dense.
DENSE_SHARE = 0.5


def feature_format(path: Path) -> str | None:
    """``"arff"``, ``"svmlight"`` or None (a text format) for a task file; a ``.txt`` file is sniffed:
    LIBSVM/XC when its first line is an XC header or ``labels f:v ...`` without a tab."""
    suffix = path.suffix.lower()
    if suffix == ".arff":
        return "arff"
    if suffix in SVMLIGHT_SUFFIXES:
        return "svmlight"
    if suffix != ".txt":
        return None
    with open(require_regular(path), "rb") as f:
        line = next((ln for ln in f if ln.strip()), b"")
    if b"\t" in line or not line.strip():
        return None
    tokens = line.split(b"#", 1)[0].split()
    if HEADER.match(line):
        return "svmlight"
    rest = tokens if tokens and b":" in tokens[0] else tokens[1:]
    if tokens and (b":" in tokens[0] or _LABEL_TOKEN.match(tokens[0])) and all(_FEATURE_TOKEN.match(t) for t in rest):
        return "svmlight"
    return None


def _xc_split(path: Path, n_rows: int) -> np.ndarray:
    """Split names per row of a single XC data file, from the repository's split files beside it."""
    found = {}
    for key, ending in (("train", "_trsplit.txt"), ("test", "_tstsplit.txt")):
        files = sorted(p for p in path.parent.iterdir() if p.name.lower().endswith(ending))
        if len(files) != 1:
            raise TaskFileError(
                f"{path}: one LIBSVM/XC file has no split: put train and test files in a folder, or keep the "
                f"repository's <name>_trSplit.txt and <name>_tstSplit.txt beside it"
                + (f" (found {', '.join(p.name for p in files)})" if files else ""))
        found[key] = files[0]
    split = np.full(n_rows, "", dtype=object)
    for key, file in found.items():
        with open(require_regular(file), "rb") as f:
            for lineno, raw in enumerate(f, 1):
                tokens = raw.split()
                if not tokens:
                    continue
                if not tokens[0].isdigit() or not 1 <= int(tokens[0]) <= n_rows:
                    raise TaskFileError(f"{file}: line {lineno}: {tokens[0].decode('latin1')!r} is not a row number "
                                        f"of {path.name} (1..{n_rows})")
                row = int(tokens[0]) - 1
                if split[row]:
                    raise TaskFileError(f"{file}: line {lineno}: row {row + 1} is already in {split[row]}")
                split[row] = key
    return split


def _arff_parts(layout: Mapping[str, Path], split_option: str) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    read = {key: read_arff(path, split_option) for key, path in layout.items()}
    first = next(iter(read.values()))
    for rows in read.values():
        for what, mine, theirs in (("labels", rows.label_names, first.label_names),
                                   ("features", rows.feature_names, first.feature_names)):
            if mine != theirs:
                k = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
                raise TaskFileError(f"{rows.path}: its {what} differ from {first.path.name}'s ({len(mine)} against "
                                    f"{len(theirs)}; first difference at {what[:-1]} {k + 1})")
    if "" in read:
        rows = read[""]
        if rows.split is None:
            raise TaskFileError(f"{rows.path}: one ARFF file needs a nominal '{split_option}' attribute "
                                "(train/valid/test), or put train and test files in a folder")
        return _partition(rows.X, rows.Y, np.char.lower(rows.split.astype(str))), first.label_names
    return {key: (rows.X, rows.Y) for key, rows in read.items()}, first.label_names


def _svm_parts(layout: Mapping[str, Path]) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    import scipy.sparse as sp

    read = {key: read_svmlight(path) for key, path in layout.items()}
    first: SvmRows = next(iter(read.values()))
    for rows in read.values():
        if (rows.header is None) != (first.header is None):
            raise TaskFileError(f"{rows.path}: {'no' if rows.header is None else 'a'} 'n_docs n_features n_labels' "
                                f"header line where {first.path.name} has {'one' if first.header else 'none'}")
        if rows.header is not None and rows.header[1:] != first.header[1:]:  # type: ignore[index]
            raise TaskFileError(f"{rows.path}: header says {rows.header[1]} features and {rows.header[2]} labels, "
                                f"{first.path.name}'s {first.header[1]} and {first.header[2]}")  # type: ignore[index]
    if first.header is not None:
        n_labels, width = first.header[2], first.header[1]
        columns = list(range(n_labels))
    else:
        columns = sorted({lab for rows in read.values() for labs in rows.labels for lab in labs})
        width = max(rows.X.shape[1] for rows in read.values())
    names_all = label_names(max(columns) + 1 if columns else 0)
    index = {lab: j for j, lab in enumerate(columns)}
    shift = 1 if one_based(list(read.values())) else 0
    parts = {}
    for key, rows in read.items():
        X = sp.csr_matrix(rows.X)
        X.resize((X.shape[0], width))
        if shift:
            X = X[:, 1:].tocsr()
        indptr = np.cumsum([0] + [len(labs) for labs in rows.labels])
        indices = np.asarray([index[lab] for labs in rows.labels for lab in labs], dtype=np.int32)
        Y = sp.csr_matrix((np.ones(len(indices), dtype=np.int8), indices, indptr), shape=(len(rows.labels), len(columns)))
        parts[key] = (X, Y)
    if "" in parts:
        X, Y = parts.pop("")
        parts = _partition(X, Y, _xc_split(layout[""], X.shape[0]))
    return parts, [names_all[c] for c in columns]


def _partition(X: Any, Y: Any, split: np.ndarray) -> dict[str, tuple[Any, Any]]:
    return {key: (X[rows], Y[rows]) for key in SPLITS if len(rows := np.flatnonzero(split == key))}


def _density(parts: Mapping[str, tuple[Any, Any]]) -> float:
    import scipy.sparse as sp

    cells = sum(X.shape[0] * X.shape[1] for X, _ in parts.values())
    nonzero = sum((X.getnnz() if sp.issparse(X) else np.count_nonzero(X)) for X, _ in parts.values())
    return nonzero / cells if cells else 0.0


def _canonical(X: Any) -> Any:
    import scipy.sparse as sp

    C = sp.csr_matrix(X, dtype=np.float32)
    C.sum_duplicates()
    C.eliminate_zeros()
    C.sort_indices()
    return C


def feature_digest(parts: Mapping[str, tuple[Any, Any]], labels: list[str]) -> str:
    """A hash of what a method sees: the label space, and each part's feature values and label sets."""
    import scipy.sparse as sp

    h = hashlib.sha256(json.dumps(sorted(labels)).encode())
    for key in SPLITS:
        if key not in parts:
            continue
        X, Y = parts[key]
        C, Yc = _canonical(X), sp.csr_matrix(Y)
        Yc.sort_indices()
        h.update(json.dumps([key, *C.shape]).encode())
        for arr in (C.indptr.astype(np.int64), C.indices.astype(np.int64), C.data.astype(np.float32)):
            h.update(arr.tobytes())
        sets = [sorted(labels[j] for j in Yc.indices[Yc.indptr[i]:Yc.indptr[i + 1]]) for i in range(Yc.shape[0])]
        h.update(json.dumps(sets).encode())
    return h.hexdigest()[:12]


def load_feature_file_task(root: Path, layout: Mapping[str, Path], name: str, split_option: str = "split") -> Task:
    """The feature task of the files in ``layout`` (split -> file; ``{"": file}`` for one file), named ``name``."""
    import scipy.sparse as sp

    formats = {feature_format(path) for path in layout.values()}
    if len(formats) > 1:
        raise TaskFileError(f"{root}: mixes ARFF and LIBSVM/XC files ({', '.join(p.name for p in layout.values())}); "
                            "use one format")
    fmt = formats.pop()
    parts, labels = _arff_parts(layout, split_option) if fmt == "arff" else _svm_parts(layout)
    for key in ("train", "test"):
        if key not in parts or parts[key][0].shape[0] == 0:
            raise TaskFileError(f"{root}: the {key} part has no rows")
    dense = _density(parts) >= DENSE_SHARE
    parts = {k: (np.asarray(X.todense() if sp.issparse(X) else X, dtype=np.float32) if dense
                 else sp.csr_matrix(X, dtype=np.float32), sp.csr_matrix(Y)) for k, (X, Y) in parts.items()}
    digest = feature_digest(parts, labels)
    in_train = np.asarray(parts["train"][1].sum(axis=0)).ravel() > 0
    in_test = np.asarray(parts["test"][1].sum(axis=0)).ravel() > 0
    unseen = [labels[j] for j in np.flatnonzero(in_test & ~in_train)]
    if unseen:
        shown = ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
        log.warning("%s: %d test label(s) never seen in train (%s): kept in the label space, so every method "
                    "misses them", root, len(unseen), shown)
    if not in_train.any():
        raise TaskFileError(f"{root}: no training row has a label; nothing to learn")
    (X_train, Y_train), (X_test, Y_test) = parts["train"], parts["test"]
    valid = parts.get("valid")
    task = build_feature_task(name, f"files:{digest}", X_train, Y_train, X_test, Y_test, labels,
                              valid=valid if valid is not None and valid[0].shape[0] else None,
                              valid_fraction=VALID_FRACTION, seed=VALID_SEED,
                              description=f"{fmt.upper()} feature vectors from {root}")
    if task.train.X.shape[0] == 0 or task.valid.X.shape[0] == 0:
        raise TaskFileError(f"{root}: the train part has {X_train.shape[0]} row(s), too few to carve a validation "
                            "part; add rows or a valid file")
    return task
