"""ARFF files of feature vectors: MULAN (labels named in an XML file) and MEKA (``-C n``), dense or sparse.

liac-arff parses the file (dense rows into lists, sparse ``{index value, ...}`` rows into coordinates);
this module owns deciding which attributes are labels, turning attribute values into numbers and checking
them, with every error naming the file and its line:

- **MEKA**: the ``@relation`` name holds ``-C n``: the first ``n`` attributes are the labels, or the last
  ``-n`` when ``n`` is negative. This wins when present.
- **MULAN**: the labels are the attributes named in an XML file beside the ARFF file
  (``<labels><label name="..."/></labels>``, any namespace, nested labels included): ``<stem>.xml`` for
  ``<stem>.arff``, else the only ``.xml`` file of the folder.

Numeric attributes and nominal ones whose values are numbers are read as numbers; a nominal yes/no pair
(yes/no, true/false, y/n, t/f, any case) as 1/0; string attributes (identifiers) are dropped with a
warning; any other nominal attribute is an error. Labels must be 0 or 1, features present (``?`` is an
error) and finite. In a sparse row an omitted value is 0, which for a nominal attribute means its first
declared value, as ARFF defines it.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlbench.data.file_layout import TaskFileError, require_regular

log = logging.getLogger(__name__)

_MEKA_C = re.compile(r"(?:^|\s)-C\s+(-?\d+)(?:\s|$)")
_YES_NO = ({"yes", "no"}, {"true", "false"}, {"y", "n"}, {"t", "f"})
_TRUE = {"yes", "true", "y", "t"}
_NUMERIC = ("NUMERIC", "REAL", "INTEGER")


@dataclass
class Rows:
    """One file's rows: features (float64, dense or CSR), 0/1 labels (CSR int8), names, and an optional split."""

    path: Path
    X: Any
    Y: Any
    label_names: list[str]
    feature_names: list[str] | None
    split: np.ndarray | None = None


def _first_row(path: Path) -> str | None:
    """The first data row's text (None when there is none), reading only as far as that row."""
    started = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip()
            if not started:
                started = text.lower().startswith("@data")
            elif text and not text.startswith("%"):
                return text
    return None


def row_line(path: Path, row: int) -> int:
    """The line of data row ``row`` (0-based) of an ARFF file: blank and ``%`` lines are not rows."""
    seen = -1
    started = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            text = line.strip()
            if not started:
                started = text.lower().startswith("@data")
            elif text and not text.startswith("%"):
                seen += 1
                if seen == row:
                    return n
    return 0


def _fail(path: Path, row: int, message: str) -> TaskFileError:
    return TaskFileError(f"{path}: line {row_line(path, row)}: {message}")


def label_xml(path: Path) -> Path | None:
    """The MULAN labels file of ``path``: ``<stem>.xml`` beside it, else the folder's only ``.xml`` file."""
    own = path.with_suffix(".xml")
    if own.exists():
        return own
    found = sorted(p for p in path.parent.iterdir() if p.suffix.lower() == ".xml")
    if len(found) > 1:
        raise TaskFileError(f"{path}: several XML files beside it ({', '.join(p.name for p in found)}) and none "
                            f"named {own.name}: which one names the labels?")
    return found[0] if found else None


def read_label_xml(path: Path) -> list[str]:
    """The label names of a MULAN XML file, in document order."""
    require_regular(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise TaskFileError(f"{path}: not a MULAN labels file ({exc})") from None
    names = [el.get("name") for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "label"]
    if not names or any(not n for n in names):
        raise TaskFileError(f"{path}: no <label name=\"...\"/> elements (a MULAN labels file lists each label)")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise TaskFileError(f"{path}: label {dup!r} is listed twice")
    return names


def _label_columns(path: Path, relation: str, names: list[str]) -> list[int]:
    m = _MEKA_C.search(relation or "")
    if m:
        c = int(m.group(1))
        if c == 0 or abs(c) >= len(names):
            raise TaskFileError(f"{path}: @relation says -C {c}, but the file has {len(names)} attributes")
        return list(range(c)) if c > 0 else list(range(len(names) + c, len(names)))
    xml = label_xml(path)
    if xml is None:
        raise TaskFileError(f"{path}: cannot tell which attributes are labels: MEKA ARFF names their number with "
                            f"-C <n> in @relation, MULAN ARFF lists them in an XML file beside it ({path.stem}.xml)")
    labels = read_label_xml(xml)
    index = {n: j for j, n in enumerate(names)}
    missing = [n for n in labels if n not in index]
    if missing:
        raise TaskFileError(f"{xml}: label {missing[0]!r} is not an attribute of {path.name}"
                            + (f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""))
    return sorted(index[n] for n in labels)


def _nominal_map(values: list[str]) -> dict[str, float] | None:
    """Numbers for a nominal attribute's values, or None when they are neither numbers nor a yes/no pair."""
    try:
        return {v: float(v) for v in values}
    except ValueError:
        pass
    lowered = {v.lower() for v in values}
    if any(lowered <= pair for pair in _YES_NO):
        return {v: 1.0 if v.lower() in _TRUE else 0.0 for v in values}
    return None


def _load(path: Path, sparse: bool) -> dict:
    import arff

    try:
        with open(path, encoding="utf-8") as f:
            return arff.load(f, return_type=arff.COO if sparse else arff.DENSE)
    except UnicodeDecodeError as exc:
        raise TaskFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except arff.ArffException as exc:
        message = re.sub(r",? at line \d+\.?$", "", str(exc)).strip().rstrip(".")
        line = getattr(exc, "line", None)
        raise TaskFileError(f"{path}: line {line}: {message}" if line else f"{path}: {message}") from None


def read_arff(path: Path, split_attribute: str = "split") -> Rows:
    """Read one ARFF file of feature vectors and labels (see the module docstring for the rules)."""
    require_regular(path)
    first = _first_row(path)
    sparse = first is not None and first.startswith("{")
    obj = _load(path, sparse)
    attributes: list[tuple[str, Any]] = obj["attributes"]
    names = [a for a, _ in attributes]
    split_col = next((j for j, n in enumerate(names) if n == split_attribute and isinstance(attributes[j][1], list)),
                     None)
    label_cols = _label_columns(path, obj.get("relation", ""), names)
    maps: dict[int, dict[str, float]] = {}
    dropped: list[str] = []
    for j, (name, kind) in enumerate(attributes):
        if j == split_col:
            continue
        if isinstance(kind, list):
            mapping = _nominal_map(kind)
            if mapping is None:
                raise TaskFileError(f"{path}: attribute {name!r} is nominal with values {{{', '.join(kind[:6])}"
                                    f"{', ...' if len(kind) > 6 else ''}}}: only numbers and yes/no pairs can be read")
            maps[j] = mapping
        elif str(kind).upper() == "STRING":
            if j in label_cols:
                raise TaskFileError(f"{path}: label attribute {name!r} is a string attribute; labels are 0/1")
            dropped.append(name)
        elif str(kind).upper() not in _NUMERIC:
            raise TaskFileError(f"{path}: attribute {name!r} has type {kind}; mlbench reads numeric, nominal "
                                "and (dropped) string attributes")
    if dropped:
        log.warning("%s: string attribute(s) %s dropped (mlbench reads numbers; a string attribute is usually an "
                    "identifier)", path, ", ".join(dropped))
    M, split = (_from_coo if sparse else _from_dense)(path, obj["data"], attributes, maps, split_col)
    keep = [j for j in range(len(names)) if j in maps or (j != split_col and str(attributes[j][1]).upper() in _NUMERIC)]
    feature_cols = [j for j in keep if j not in set(label_cols)]
    return _assemble(path, M, feature_cols, label_cols, names, split)


def _check_split(path: Path, values: list[str]) -> None:
    bad = [v for v in values if v.lower() not in ("train", "valid", "test")]
    if bad:
        raise TaskFileError(f"{path}: the split attribute has value {bad[0]!r}; its values must be train, valid, test")


def _to_float(path: Path, cells: np.ndarray, rows: np.ndarray, cols: np.ndarray, names: list[str]) -> np.ndarray:
    """Cells (objects) as float64; a missing or unreadable cell is an error naming its line."""
    try:
        if np.equal(cells, None).any():  # checked first: astype would turn None into NaN
            raise TypeError("missing value")
        out = cells.astype(np.float64)
    except (TypeError, ValueError):
        for k, v in enumerate(cells.ravel()):
            try:
                float(v)
            except (TypeError, ValueError):
                r, c = rows.ravel()[k], cols.ravel()[k]
                what = "missing value '?'" if v is None else f"value {v!r} is not a number"
                raise _fail(path, int(r), f"{what} for attribute {names[int(c)]!r}") from None
        raise
    if not np.isfinite(out).all():
        k = int(np.flatnonzero(~np.isfinite(out.ravel()))[0])
        raise _fail(path, int(rows.ravel()[k]), f"non-finite value for attribute {names[int(cols.ravel()[k])]!r}")
    return out


def _from_dense(path: Path, data: list, attributes: list, maps: dict[int, dict[str, float]], split_col: int | None):
    names = [a for a, _ in attributes]
    n, m = len(data), len(attributes)
    A = np.empty((n, m), dtype=object)
    if n:
        A[:] = data
    split = None
    if split_col is not None:
        split = A[:, split_col].astype(str)
        _check_split(path, list(set(split)))
        A[:, split_col] = 0.0
    for j, mapping in maps.items():
        if any(not _is_number(v) for v in mapping):  # yes/no values: map them; numbers parse below
            col = A[:, j]
            A[:, j] = [mapping.get(v, v) if v is not None else None for v in col]
    numeric = [j for j in range(m) if j in maps or str(attributes[j][1]).upper() in _NUMERIC]
    M = np.zeros((n, m), dtype=np.float64)
    if numeric and n:
        rows = np.repeat(np.arange(n)[:, None], len(numeric), axis=1)
        cols = np.repeat(np.asarray(numeric)[None, :], n, axis=0)
        M[:, numeric] = _to_float(path, A[:, numeric], rows, cols, names)
    return M, split


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _from_coo(path: Path, data: tuple, attributes: list, maps: dict[int, dict[str, float]], split_col: int | None):
    import scipy.sparse as sp

    names = [a for a, _ in attributes]
    values, rows, cols = data
    values = np.asarray(values, dtype=object)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    n, m = (int(rows.max()) + 1 if len(rows) else 0), len(attributes)
    n = max(n, _count_rows(path))  # trailing rows with every value omitted
    split = None
    if split_col is not None:
        split = np.full(n, attributes[split_col][1][0], dtype=object)
        at = cols == split_col
        split[rows[at]] = values[at]
        split = split.astype(str)
        _check_split(path, list(set(split)))
    numeric = np.array([j in maps or str(attributes[j][1]).upper() in _NUMERIC for j in range(m)], dtype=bool)
    keep = numeric[cols] if len(cols) else np.zeros(0, dtype=bool)
    values, rows, cols = values[keep], rows[keep], cols[keep]
    for j, mapping in maps.items():
        if any(not _is_number(v) for v in mapping):
            at = np.flatnonzero(cols == j)
            values[at] = [mapping.get(v, v) if v is not None else None for v in values[at]]
    vals = _to_float(path, values, rows, cols, names)
    extra_r, extra_c, extra_v = [], [], []
    for j, mapping in maps.items():  # an omitted nominal value is the first declared one, maybe not 0
        base = mapping[attributes[j][1][0]]
        if base != 0.0:
            absent = np.setdiff1d(np.arange(n), rows[cols == j])
            extra_r.append(absent)
            extra_c.append(np.full(len(absent), j))
            extra_v.append(np.full(len(absent), base))
    if extra_r:
        rows, cols = np.concatenate([rows, *extra_r]), np.concatenate([cols, *extra_c])
        vals = np.concatenate([vals, *extra_v])
    M = sp.csr_matrix((vals, (rows, cols)), shape=(n, m), dtype=np.float64)
    return M, split


def _count_rows(path: Path) -> int:
    n = 0
    started = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip()
            if not started:
                started = text.lower().startswith("@data")
            elif text and not text.startswith("%"):
                n += 1
    return n


def _assemble(path: Path, M: Any, feature_cols: list[int], label_cols: list[int], names: list[str],
              split: np.ndarray | None) -> Rows:
    import scipy.sparse as sp

    Y = M[:, label_cols]
    Yc = sp.csr_matrix(Y)
    bad = np.flatnonzero((Yc.data != 0) & (Yc.data != 1))
    if len(bad):
        row = int(np.searchsorted(Yc.indptr, bad[0], side="right") - 1)
        col = label_cols[int(Yc.indices[bad[0]])]
        raise _fail(path, row, f"label attribute {names[col]!r} is {Yc.data[bad[0]]:g}, not 0 or 1")
    Yc = Yc.astype(np.int8)
    Yc.eliminate_zeros()
    X = M[:, feature_cols]
    X = X.tocsr() if sp.issparse(X) else X
    return Rows(path, X, Yc, [names[j] for j in label_cols], [names[j] for j in feature_cols], split)
