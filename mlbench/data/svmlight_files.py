"""LIBSVM / Extreme Classification Repository text files: ``l1,l2,... f:v f:v ...`` per line.

Two flavours, told apart by the first line:

- **XC** (the Extreme Classification Repository): a header ``n_docs n_features n_labels``, then one row a
  line; feature and label indices are 0-based and checked against the header, and the file must hold
  ``n_docs`` rows.
- **LIBSVM** multi-label, no header: labels are non-negative integers; the feature indices' base is decided
  for all of a task's files together (:func:`one_based`): 1-based, as LIBSVM writes them, unless some file
  uses index 0 (scikit-learn's ``zero_based="auto"`` rule).

A row may have no labels (its line starts with a feature, or with a space). Blank lines and ``#`` comments
are not rows. scikit-learn's ``load_svmlight_file`` parses; when it refuses a file, or what it returns fails a
check (a label that is not an integer, an index beyond the header, a non-finite value, a row count other than
the header's), a line-by-line reader reads the file again and names the first bad line. That reader also
accepts what scikit-learn's fast parser does not (feature indices out of order).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlbench.data.file_layout import TaskFileError, require_regular

HEADER = re.compile(rb"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$")


@dataclass
class SvmRows:
    """One file's rows: features (CSR float32, columns are the raw indices) and each row's label integers."""

    path: Path
    X: Any
    labels: list[tuple[int, ...]]
    header: tuple[int, int, int] | None


def read_header(path: Path) -> tuple[int, int, int] | None:
    with open(require_regular(path), "rb") as f:
        m = HEADER.match(f.readline())
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def read_svmlight(path: Path) -> SvmRows:
    """Read one file (either flavour)."""
    header = read_header(path)
    rows = _fast(path, header)
    return rows if rows is not None else _slow(path, header)


def _fast(path: Path, header: tuple[int, int, int] | None) -> SvmRows | None:
    """scikit-learn's parse, checked; None when it fails or a check does (the slow reader then names the line)."""
    from sklearn.datasets import load_svmlight_file

    try:
        with open(path, "rb") as f:
            if header is not None:
                f.readline()
            X, y = load_svmlight_file(f, multilabel=True, zero_based=True, dtype=np.float32,
                                      n_features=header[1] if header else None)
    except (ValueError, OverflowError, MemoryError, RuntimeError):
        return None
    if X.nnz and not np.isfinite(X.data).all():
        return None
    labels: list[tuple[int, ...]] = []
    limit = header[2] if header else math.inf
    try:
        for labs in y:
            ints = tuple(int(v) for v in labs)
            if any(v != i or i < 0 or i >= limit for v, i in zip(labs, ints)):
                return None
            labels.append(tuple(sorted(set(ints))))
    except (ValueError, OverflowError):  # a NaN or infinite label
        return None
    if header is not None and X.shape[0] != header[0]:
        return None
    import scipy.sparse as sp

    return SvmRows(path, sp.csr_matrix(X, dtype=np.float32), labels, header)


def _slow(path: Path, header: tuple[int, int, int] | None) -> SvmRows:
    import scipy.sparse as sp

    n_features = header[1] if header else None
    n_labels = header[2] if header else None
    indptr, cols, vals = [0], [], []
    labels: list[tuple[int, ...]] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and header is not None:
                continue
            tokens = raw.split(b"#", 1)[0].split()
            if not tokens:
                continue
            where = f"{path}: line {lineno}"
            has_labels = b":" not in tokens[0]
            labels.append(_labels(tokens[0], n_labels, where) if has_labels else ())
            seen: set[int] = set()
            for tok in tokens[1:] if has_labels else tokens:
                idx, val = _feature(tok, n_features, where)
                if idx is None:
                    continue
                if idx in seen:
                    raise TaskFileError(f"{where}: feature {idx} is given twice")
                seen.add(idx)
                cols.append(idx)
                vals.append(val)
            indptr.append(len(cols))
    if header is not None and len(labels) != header[0]:
        raise TaskFileError(f"{path}: line 1: the header says {header[0]} documents, the file has {len(labels)} rows "
                            "(blank lines are not rows)")
    width = n_features if n_features is not None else (max(cols) + 1 if cols else 0)
    X = sp.csr_matrix((np.asarray(vals, dtype=np.float32), np.asarray(cols, dtype=np.int64),
                       np.asarray(indptr, dtype=np.int64)), shape=(len(labels), width))
    X.sort_indices()
    return SvmRows(path, X, labels, header)


def _labels(token: bytes, n_labels: int | None, where: str) -> tuple[int, ...]:
    out = set()
    for part in token.split(b","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (value.is_integer() and value >= 0):
            raise TaskFileError(f"{where}: label {part.decode('latin1')!r} is not a non-negative integer")
        if n_labels is not None and value >= n_labels:
            raise TaskFileError(f"{where}: label {int(value)} is out of range (the header says {n_labels} labels)")
        out.add(int(value))
    return tuple(sorted(out))


def _feature(token: bytes, n_features: int | None, where: str) -> tuple[int | None, float]:
    name, sep, value = token.partition(b":")
    if name == b"qid":
        return None, 0.0
    shown = token.decode("latin1")
    if not sep or not name.isdigit():
        raise TaskFileError(f"{where}: {shown!r} is not a feature 'index:value'")
    try:
        number = float(value)
    except ValueError:
        raise TaskFileError(f"{where}: {shown!r}: the value is not a number") from None
    if not math.isfinite(number):
        raise TaskFileError(f"{where}: {shown!r}: the value is not finite")
    idx = int(name)
    if n_features is not None and idx >= n_features:
        raise TaskFileError(f"{where}: feature {idx} is out of range (the header says {n_features} features)")
    return idx, number


def one_based(parts: list[SvmRows]) -> bool:
    """Whether header-less files index features from 1: no file of the task uses column 0."""
    return all(p.header is None for p in parts) and not any(
        p.X.nnz and (p.X.indices == 0).any() for p in parts)
