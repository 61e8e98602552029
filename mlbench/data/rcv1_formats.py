"""The two line-oriented RCV1 layouts and their readers: SGM/Seq2Set and LYRL2004.

This module owns what each layout's files are called and how they are read
(:func:`read_sgm`, :func:`read_lyrl2004` and the streaming helpers under them:
plain or gzip files, parallel text/label lines, LYRL2004 token blocks and
qrels); the original XML is read by :mod:`mlbench.data.rcv1_xml`. The layouts
are described in :mod:`mlbench.data.rcv1`, which detects a copy's layout and
checks what was read.
"""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path
from typing import IO, Iterator

from mlbench.api import DataError
from mlbench.data.build import Document

# the readers log under the module users know (and filter on), as before the split
log = logging.getLogger("mlbench.data.rcv1")

#: Canonical split name -> file name per SGM naming scheme: (text, labels).
SGM_NAMINGS: dict[str, dict[str, tuple[str, str]]] = {
    "text/label": {
        "train": ("text_train", "label_train"),
        "valid": ("text_val", "label_val"),
        "test": ("text_test", "label_test"),
    },
    "src/tgt": {
        "train": ("train.src", "train.tgt"),
        "valid": ("valid.src", "valid.tgt"),
        "test": ("test.src", "test.tgt"),
    },
}

LYRL_TRAIN = "lyrl2004_tokens_train.dat"
LYRL_TEST_PARTS = tuple(f"lyrl2004_tokens_test_pt{i}.dat" for i in range(4))
LYRL_QRELS = "rcv1-v2.topics.qrels"


_MARKER = re.compile(r"^<[^<>\s]*>$")

Docs = list[Document]


# --------------------------------------------------------------------------- files


def _find(directory: Path, name: str) -> Path | None:
    """``directory/name`` or its ``.gz`` twin, whichever exists (plain first)."""
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _open_binary(path: Path) -> IO[bytes]:
    """Open a plain or gzip file for reading bytes."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending), streamed; lines end only at ``\\n``.

    Each line is decoded as strict UTF-8 on its own, so binary garbage in a token file is an error
    naming its line, never text with replacement characters.
    """
    lineno = 0
    try:
        with _open_binary(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r} "
                                    f"at column {exc.start + 1}): binary data in the copy?") from None
                yield lineno, line.rstrip("\r\n")
    except (OSError, EOFError) as exc:  # unreadable file, truncated or corrupt gzip
        raise DataError(f"{path}: cannot read: {exc}") from exc


def _sgm_scheme(directory: Path) -> str | None:
    for scheme, files in SGM_NAMINGS.items():
        text, labels = files["train"]
        if _find(directory, text) and _find(directory, labels):
            return scheme
    return None


def missing_copy_message(directory: Path) -> str:
    """The one-line error for a directory holding no known RCV1 layout."""
    return (
        f"no RCV1 copy found in {directory}; expected one of: "
        "SGM/Seq2Set (text_train, label_train, text_val, label_val, text_test, label_test, "
        "or train.src, train.tgt, valid.src, valid.tgt, test.src, test.tgt); "
        f"LYRL2004 ({LYRL_TRAIN}, lyrl2004_tokens_test_pt0.dat .. pt3.dat and {LYRL_QRELS}, "
        "each optionally .gz); "
        "original RCV1 XML (<newsitem> *.xml files, in any subfolders, or the zipped daily archives such as 19960820.zip); "
        "or scikit-learn's fetch_rcv1 cache (RCV1/samples_py3.pkl, sample_id_py3.pkl, sample_topics_py3.pkl, "
        "topics_names_py3.pkl; without --data-dir also looked for in $SCIKIT_LEARN_DATA or ~/scikit_learn_data); "
        "point --data-dir at the folder holding them or put them under $MLBENCH_DATA/rcv1"
    )


# ----------------------------------------------------------------------------- SGM


def _clean_labels(line: str) -> tuple[str, ...]:
    """Topic codes of one label line: markers such as ``<s>`` dropped, duplicates once."""
    return tuple(dict.fromkeys(tok for tok in line.split() if not _MARKER.match(tok)))


def iter_parallel(
    text_path: str | Path, label_path: str | Path, split: str, limit: int | None = None
) -> Iterator[Document]:
    """Stream documents from a text file and its parallel label file.

    Ids are ``f"{split}-{line}"``. Raises :class:`DataError` on an empty label
    line or when one file has more lines than the other.
    """
    text_path, label_path = Path(text_path), Path(label_path)
    texts, labels = _lines(text_path), _lines(label_path)
    try:
        count = 0
        lineno = 0
        while limit is None or count < limit:
            t = next(texts, None)
            lab = next(labels, None)
            if t is None and lab is None:
                return
            lineno += 1
            if t is None:
                raise DataError(
                    f"{text_path}:{lineno}: line count mismatch: {label_path} has a line {lineno} "
                    f"but {text_path} ends after {lineno - 1} lines"
                )
            if lab is None:
                raise DataError(
                    f"{label_path}:{lineno}: line count mismatch: {text_path} has a line {lineno} "
                    f"but {label_path} ends after {lineno - 1} lines"
                )
            codes = _clean_labels(lab[1])
            if not codes:
                raise DataError(f"{label_path}:{lineno}: empty label line (every document needs a topic code)")
            yield Document(f"{split}-{lineno}", t[1].strip(), codes)
            count += 1
    finally:
        texts.close()
        labels.close()


def read_sgm(directory: str | Path, max_test_docs: int | None = None) -> tuple[Docs, Docs | None, Docs]:
    """Read the SGM/Seq2Set layout; ``valid`` is ``None`` when both of its files are absent."""
    directory = Path(directory).expanduser()
    scheme = _sgm_scheme(directory)
    if scheme is None:
        raise DataError(missing_copy_message(directory))
    out: dict[str, Docs | None] = {}
    for split, (text_name, label_name) in SGM_NAMINGS[scheme].items():
        text_path, label_path = _find(directory, text_name), _find(directory, label_name)
        if text_path is None and label_path is None and split == "valid":
            out[split] = None
            continue
        missing = [n for n, p in ((text_name, text_path), (label_name, label_path)) if p is None]
        if missing:
            raise DataError(
                f"incomplete SGM/Seq2Set copy in {directory}: missing {', '.join(missing)} "
                f"(expected {', '.join(n for pair in SGM_NAMINGS[scheme].values() for n in pair)})"
            )
        assert text_path is not None and label_path is not None
        limit = max_test_docs if split == "test" else None
        out[split] = list(iter_parallel(text_path, label_path, split, limit))
    log.info("read RCV1 SGM/Seq2Set copy (%s naming) from %s", scheme, directory)
    train, test = out["train"], out["test"]
    assert train is not None and test is not None
    return train, out["valid"], test


# ------------------------------------------------------------------------ LYRL2004


def read_qrels(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Topic codes per document id (``"<docid>"``) from ``rcv1-v2.topics.qrels``.

    Lines are ``<topic> <docid> <relevance>``; blank lines are ignored and a
    relevance of 0 adds nothing.
    """
    path = Path(path)
    topics: dict[str, list[str]] = {}
    for lineno, line in _lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DataError(f"{path}:{lineno}: expected '<topic> <docid> 1', got {line.strip()!r}")
        topic, docid, rel = fields
        try:
            key, relevant = str(int(docid)), int(rel) != 0
        except ValueError:
            raise DataError(
                f"{path}:{lineno}: docid and relevance must be integers, got {line.strip()!r}"
            ) from None
        if relevant:
            labs = topics.setdefault(key, [])
            if topic not in labs:
                labs.append(topic)
    return {k: tuple(v) for k, v in topics.items()}


def iter_lyrl_blocks(path: str | Path) -> Iterator[tuple[str, str]]:
    """Stream ``(docid, text)`` from a LYRL2004 token file (plain or .gz).

    A block is a ``.I <docid>`` line, a ``.W`` line, then token lines up to a
    blank line (or the next ``.I`` line, or the end of the file); the token
    lines are joined with single spaces.
    """
    path = Path(path)
    docid: str | None = None
    tokens: list[str] = []
    expect_w = False
    for lineno, line in _lines(path):
        stripped = line.strip()
        if stripped.startswith(".I") and (len(stripped) == 2 or stripped[2].isspace()):
            if expect_w:
                raise DataError(f"{path}:{lineno}: expected '.W' after the '.I {docid}' line")
            if docid is not None:
                yield docid, " ".join(tokens)
            parts = stripped.split()
            if len(parts) != 2:
                raise DataError(f"{path}:{lineno}: expected '.I <docid>', got {stripped!r}")
            try:
                docid = str(int(parts[1]))
            except ValueError:
                raise DataError(f"{path}:{lineno}: docid must be an integer, got {parts[1]!r}") from None
            tokens, expect_w = [], True
        elif expect_w:
            if stripped != ".W":
                raise DataError(f"{path}:{lineno}: expected '.W' after the '.I {docid}' line, got {stripped!r}")
            expect_w = False
        elif not stripped:
            if docid is not None:
                yield docid, " ".join(tokens)
            docid, tokens = None, []
        elif docid is None:
            raise DataError(f"{path}:{lineno}: a document block must start with '.I <docid>', got {stripped!r}")
        else:
            tokens.append(stripped)
    if expect_w:
        raise DataError(f"{path}: file ends after '.I {docid}' without a '.W' line")
    if docid is not None:
        yield docid, " ".join(tokens)


def _lyrl_docs(
    path: Path, qrels: dict[str, tuple[str, ...]], skipped: list[int], limit: int | None = None
) -> Iterator[Document]:
    count = 0
    if limit is not None and limit <= 0:
        return
    blocks = iter_lyrl_blocks(path)
    try:
        for docid, text in blocks:
            labels = qrels.get(docid)
            if not labels:
                skipped[0] += 1
                continue
            yield Document(docid, text, labels)
            count += 1
            if limit is not None and count >= limit:
                return
    finally:
        blocks.close()


def read_lyrl2004(directory: str | Path, max_test_docs: int | None = None) -> tuple[Docs, None, Docs]:
    """Read the LYRL2004 token files and topic qrels; there is no validation split.

    ``max_test_docs`` keeps only the first that many test documents (in file
    order, pt0 first); the remaining parts are then not opened at all.
    """
    directory = Path(directory).expanduser()
    qrels_path, train_path = _find(directory, LYRL_QRELS), _find(directory, LYRL_TRAIN)
    missing = [n for n, p in ((LYRL_QRELS, qrels_path), (LYRL_TRAIN, train_path)) if p is None]
    if missing:
        raise DataError(
            f"incomplete LYRL2004 copy in {directory}: missing {' and '.join(missing)} (or .gz); "
            f"expected {LYRL_TRAIN}, {', '.join(LYRL_TEST_PARTS)} and {LYRL_QRELS}"
        )
    assert qrels_path is not None and train_path is not None
    qrels = read_qrels(qrels_path)
    skipped = [0]
    train = list(_lyrl_docs(train_path, qrels, skipped))
    n_train_skipped = skipped[0]
    test: Docs = []
    for name in LYRL_TEST_PARTS:
        remaining = None if max_test_docs is None else max_test_docs - len(test)
        if remaining is not None and remaining <= 0:
            break
        part = _find(directory, name)
        if part is None:
            raise DataError(
                f"incomplete LYRL2004 copy in {directory}: missing {name} (or {name}.gz); "
                f"expected {', '.join(LYRL_TEST_PARTS)}"
            )
        test.extend(_lyrl_docs(part, qrels, skipped, remaining))
    if skipped[0]:
        log.warning(
            "LYRL2004: skipped %d documents without any topic in %s (%d train, %d test)",
            skipped[0], qrels_path.name, n_train_skipped, skipped[0] - n_train_skipped,
        )
    log.info("read RCV1 LYRL2004 copy from %s: %d train, %d test", directory, len(train), len(test))
    return train, None, test
