"""Tasks from the user's own files: ``--task PATH`` where PATH is a folder or one file.

Layouts:

- a folder holding ``train.<ext>`` and ``test.<ext>`` (and optionally ``valid.<ext>``; also named
  ``<name>-train.<ext>`` or ``<name>_train.<ext>``);
- one file with a ``split`` column whose values are ``train``, ``valid`` or ``test``.

Formats, by extension: ``.jsonl`` (one JSON record a line), ``.json`` (an array of
records), ``.csv``, ``.tsv``, ``.parquet``, and LibMultiLabel's ``.txt``
(``label1 label2<TAB>text``, or ``id<TAB>labels<TAB>text``; it has no split column,
so it comes as a folder). The text is in column ``text``, the labels in ``labels``
(a list, or a string split on ``label_sep``, whitespace by default) and the id in
``id`` (the row number when absent: ``<row>`` for one file, ``<split>-<row>`` in a
folder); other names come as task options (``--task-option text=abstract``).

Without a validation part, 10% of train is carved by the same seeded iterative
stratification as Reuters (fixed seed 0), so the split never moves between runs.
Labels are every label seen in any part, ordered by training frequency; a test
label never seen in training stays in the label space (charged to every method as
a miss), with a warning. The task's ``dataset`` is ``files:<digest>``, the digest
hashing the parsed content (split, id, text, label set of every row), so the same
data in any format has the same fingerprint and an edited file a new one.

Task name: the path as seen from the working directory (``./folder``, or absolute
when outside it), followed by the usual variants: ``./folder-shuffled``,
``./folder-trim10``. A suffix is read as a variant only when the path without it
exists, so a folder whose name ends in ``-trim10`` is still found.

pandas reads every format except ``.txt``, which is split by hand: LibMultiLabel's
lines are not CSV (a text may hold quotes), and a hand parser names the bad row.

Files of feature vectors (ARFF, LIBSVM / Extreme Classification Repository text, the latter also as a
``.txt`` whose lines have no tab) make a feature task: :mod:`mlbench.data.feature_files` reads them.
Every file is checked to be a regular file before it is opened (a FIFO would block).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from mlbench.api import DataError, MlbenchError, Task
from mlbench.data.build import Document, build_task, carve_validation
from mlbench.data.feature_files import feature_format, load_feature_file_task
from mlbench.data.file_layout import (SPLITS, SUFFIXES, VALID_FRACTION, VALID_SEED, TaskFileError, require_regular,
                                      split_files)

log = logging.getLogger(__name__)

OPTION_DEFAULTS: dict[str, str] = {"text": "text", "labels": "labels", "id": "id", "split": "split", "label_sep": ""}

#: Options given on the command line (``--task-option``) apply to every path task of the process,
#: including the ones a report or a suite loads by name.
_session_options: dict[str, str] = {}


def set_session_options(options: Mapping[str, str]) -> None:
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise MlbenchError(
            f"unknown task option {', '.join(unknown)}; known: {', '.join(sorted(OPTION_DEFAULTS))}"
        )
    _session_options.clear()
    _session_options.update({k: str(v) for k, v in options.items()})


def looks_like_path(name: str) -> bool:
    """A task name is read as a path when it has a folder separator, starts with ``.``/``~`` or has a data suffix."""
    return "/" in name or os.sep in name or name.startswith((".", "~")) or name.lower().endswith(SUFFIXES)


def split_path_variants(name: str) -> tuple[Path, list[str]] | None:
    """``"./d-trim10-shuffled"`` → (Path("./d"), ["trim10", "shuffled"]) when ``./d`` exists; None if nothing exists."""
    from mlbench.data.variants import parse_variant

    base, variants = name, []
    while True:
        path = Path(base).expanduser()
        if path.exists():
            return path, variants
        head, sep, token = base.rpartition("-")
        if not sep or not head:
            return None
        try:
            parse_variant(token)
        except MlbenchError:
            return None
        base = head
        variants.insert(0, token)


def canonical_path_name(path: Path) -> str:
    """The path as seen from the working directory: ``./rel/path``, or absolute outside it."""
    resolved = path.expanduser().resolve()
    try:
        return "./" + resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def canonical_task_name(name: str) -> str:
    """A path task's canonical name (with its variants); any other name unchanged."""
    if not looks_like_path(name):
        return name
    found = split_path_variants(name)
    if found is None:
        return name
    path, variants = found
    return "-".join([canonical_path_name(path), *variants])


# ------------------------------------------------------------------ reading


def _read_table(path: Path, options: Mapping[str, str]):
    """A pandas DataFrame of the file, every column as read (no type guessing on ids)."""
    import pandas as pd

    suffix = path.suffix.lower()
    require_regular(path)
    try:
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        if suffix == ".json":
            return pd.read_json(path, orient="records", dtype=False)
        if suffix in (".csv", ".tsv"):
            # every cell a string, an empty cell an empty string (an empty text is a document)
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".txt":
            return _read_libmultilabel(path, options)
    except TaskFileError:
        raise
    except (ValueError, OSError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaskFileError(f"{path}: cannot read as {suffix[1:]}: {first}") from exc
    raise TaskFileError(f"{path}: unsupported format {suffix or '(no extension)'}; use one of {', '.join(SUFFIXES)}")


def _read_libmultilabel(path: Path, options: Mapping[str, str]):
    import pandas as pd

    rows: dict[str, list[str]] = {options["id"]: [], options["labels"]: [], options["text"]: []}
    has_ids: bool | None = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) not in (2, 3):
                raise TaskFileError(
                    f"{path}: row {n}: expected 'labels<TAB>text' or 'id<TAB>labels<TAB>text', got {len(fields)} field(s)"
                )
            if has_ids is None:
                has_ids = len(fields) == 3
            elif has_ids != (len(fields) == 3):
                raise TaskFileError(f"{path}: row {n}: {len(fields)} fields where earlier rows have {3 if has_ids else 2}")
            if has_ids:
                rows[options["id"]].append(fields[0])
            rows[options["labels"]].append(fields[-2])
            rows[options["text"]].append(fields[-1])
    if not has_ids:
        del rows[options["id"]]
    return pd.DataFrame(rows)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _parse_labels(value: Any, sep: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = value.split(sep) if sep else value.split()
        return tuple(sorted({p.strip() for p in parts if p.strip()}))
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):  # numpy / pyarrow arrays from parquet
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        out = set()
        for lab in value:
            if isinstance(lab, bool) or not isinstance(lab, (str, int)):
                raise TaskFileError(f"{where}: labels must be strings (or integers), got {type(lab).__name__} {lab!r}")
            out.add(str(lab).strip())
        return tuple(sorted(lab for lab in out if lab))
    if _missing(value):
        return ()
    raise TaskFileError(f"{where}: labels must be a list or a separated string, got {type(value).__name__} {value!r}")


def _documents(frame, path: Path, options: Mapping[str, str], id_prefix: str) -> list[tuple[int, Document]]:
    """(1-based row, document) for every row of ``frame``."""
    text_col, labels_col, id_col = options["text"], options["labels"], options["id"]
    for col in (text_col, labels_col):
        if col not in frame.columns:
            have = ", ".join(map(str, frame.columns)) or "none"
            raise TaskFileError(f"{path}: no column {col!r} (columns: {have}); name another with --task-option")
    ids = frame[id_col].tolist() if id_col in frame.columns else None
    texts = frame[text_col].tolist()
    labels = frame[labels_col].tolist()
    out: list[tuple[int, Document]] = []
    for i, (text, labs) in enumerate(zip(texts, labels)):
        row = i + 1
        where = f"{path}: row {row}"
        if _missing(text):
            raise TaskFileError(f"{where}: column {text_col!r} is empty (missing value)")
        if not isinstance(text, str):
            raise TaskFileError(f"{where}: column {text_col!r} must hold text, got {type(text).__name__} {text!r}")
        if ids is not None:
            if _missing(ids[i]) or str(ids[i]).strip() == "":
                raise TaskFileError(f"{where}: column {id_col!r} is empty")
            doc_id = str(ids[i]).strip()
        else:
            doc_id = f"{id_prefix}{i}"
        out.append((row, Document(id=doc_id, text=text, labels=_parse_labels(labs, options["label_sep"], where))))
    if out and not any(d.text.strip() for _, d in out):
        raise TaskFileError(f"{path}: column {text_col!r} is empty in every row")
    return out


def read_parts(path: Path, options: Mapping[str, str]) -> dict[str, list[tuple[Path, int, Document]]]:
    """Documents per split, each with the file and row it came from."""
    parts: dict[str, list[tuple[Path, int, Document]]] = {}
    if path.is_dir():
        for split, file in split_files(path).items():
            frame = _read_table(file, options)
            parts[split] = [(file, row, d) for row, d in _documents(frame, file, options, f"{split}-")]
        return parts
    if path.suffix.lower() == ".txt":
        raise TaskFileError(f"{path}: a LibMultiLabel .txt file has no split column; put train.txt and test.txt in a folder")
    frame = _read_table(path, options)
    split_col = options["split"]
    if split_col not in frame.columns:
        raise TaskFileError(f"{path}: no column {split_col!r}: one file needs it (train/valid/test), or use a folder")
    splits = [str(s).strip().lower() for s in frame[split_col].tolist()]
    docs = _documents(frame, path, options, "")
    for (row, d), split in zip(docs, splits):
        if split not in SPLITS:
            raise TaskFileError(f"{path}: row {row}: column {split_col!r} is {split!r}, not one of {', '.join(SPLITS)}")
        parts.setdefault(split, []).append((path, row, d))
    for split in ("train", "test"):
        if split not in parts:
            raise TaskFileError(f"{path}: no row with {split_col} = {split}")
    return parts


def content_digest(parts: Mapping[str, Sequence[Document]]) -> str:
    """A hash of what a method sees (split, id, text and label set of every row), independent of the file format."""
    h = hashlib.sha256()
    for split in SPLITS:
        for d in parts.get(split, ()):
            h.update(json.dumps([split, d.id, d.text, sorted(d.labels)], ensure_ascii=False).encode())
            h.update(b"\n")
    return h.hexdigest()[:12]


def load_file_task(path: Path, name: str, options: Mapping[str, str] | None = None) -> Task:
    """The base task of the files at ``path``, named ``name``."""
    opts = {**OPTION_DEFAULTS, **_session_options, **{k: str(v) for k, v in (options or {}).items()}}
    unknown = sorted(set(opts) - set(OPTION_DEFAULTS))
    if unknown:
        raise MlbenchError(f"unknown task option {', '.join(unknown)}; known: {', '.join(sorted(OPTION_DEFAULTS))}")
    layout = split_files(path) if path.is_dir() else {"": path}
    kinds = {file: feature_format(file) for file in layout.values()}
    if any(kinds.values()):
        if not all(kinds.values()):
            raise TaskFileError(f"{path}: mixes files of feature vectors and of texts "
                                f"({', '.join(f.name for f in layout.values())}); use one format")
        return load_feature_file_task(path, layout, name, split_option=opts["split"])
    raw = read_parts(path, opts)
    seen: dict[str, tuple[Path, int]] = {}
    for split in SPLITS:
        for file, row, d in raw.get(split, ()):
            if d.id in seen:
                first_file, first_row = seen[d.id]
                raise TaskFileError(f"{file}: row {row}: duplicate id {d.id!r} (first at {first_file} row {first_row})")
            seen[d.id] = (file, row)
    docs = {split: [d for _, _, d in rows] for split, rows in raw.items()}
    if not docs["train"]:
        raise TaskFileError(f"{path}: the train part has no rows")
    if "valid" not in docs or not docs["valid"]:
        rows = len(docs["train"])
        docs["train"], docs["valid"] = carve_validation(docs["train"], VALID_FRACTION, seed=VALID_SEED)
        if not docs["train"] or not docs["valid"]:
            raise TaskFileError(f"{path}: the train part has {rows} row(s), too few to carve a validation part; "
                                "add rows or a valid.<ext>")
    train_labels = {lab for d in docs["train"] for lab in d.labels}
    if not train_labels:
        raise TaskFileError(f"{path}: no training row has a label; nothing to learn")
    unseen = sorted({lab for d in docs["test"] for lab in d.labels} - train_labels)
    if unseen:
        shown = ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
        log.warning(
            "%s: %d test label(s) never seen in train (%s): kept in the label space, so every method misses them",
            path, len(unseen), shown,
        )
    task = build_task(
        name=name,
        dataset=f"files:{content_digest(docs)}",
        train=docs["train"],
        valid=docs["valid"],
        test=docs["test"],
        description=f"labelled texts from {path}",
    )
    return task


def load_path_task(name: str, **options: Any) -> Task | None:
    """The task a path names (variants applied), or None when ``name`` is not an existing path."""
    from mlbench.data.variants import apply_variant

    if not looks_like_path(name):
        return None
    found = split_path_variants(name)
    if found is None:
        raise DataError(f"task {name!r} looks like a path, but no such file or folder exists")
    path, variants = found
    task = load_file_task(path, canonical_path_name(path), options)
    for v in variants:
        task = apply_variant(task, v)
    return task
