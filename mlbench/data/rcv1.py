"""Readers for a user's own copy of RCV1-V2 (no registry ships it).

Three layouts are recognised, each turned into
:class:`~mlbench.data.build.Document` records:

``sgm`` -- the SGM / Seq2Set layout (Yang et al. 2018)
    Parallel files with one document per line: ``text_{train,val,test}`` with
    ``label_{train,val,test}`` (space-separated topic codes), or the later naming
    ``{train,valid,test}.{src,tgt}``. Document ids are ``"<split>-<line>"`` with
    the canonical split name (``train``, ``valid``, ``test``) and the 1-based line
    number, whichever naming the copy uses. Some copies write the label lines
    with sequence markers (``<s> CCAT C15 </s>``): every token wholly inside angle
    brackets is dropped. A label line that is empty (after that) is malformed, as
    is a line-count mismatch between a text file and its label file. When both
    validation files are absent the validation split is left to the caller.

``lyrl2004`` -- the LYRL2004 distribution (Lewis et al. 2004)
    ``lyrl2004_tokens_train.dat`` (train) and ``lyrl2004_tokens_test_pt0..3.dat``
    (test), blocks of ``.I <docid>`` / ``.W`` / token lines separated by blank
    lines, plus ``rcv1-v2.topics.qrels`` (``<topic> <docid> 1``). Each file may
    also be gzip-compressed (same name + ``.gz``). Files are streamed line by line;
    ``max_test_docs`` stops reading the test parts early. Documents with no topic
    in the qrels are skipped and counted in the log.

``xml`` -- the original RCV1 XML
    One ``<newsitem itemid=...>`` file per story, anywhere below the directory
    (the distribution unpacks to dated folders). Text is the headline, a newline,
    then the ``<text>`` paragraphs joined by newlines; labels are the codes of the
    ``bip:topics:1.0`` class. The XML has no official split, so the LYRL2004 rule
    applies: itemids 2286..26150 are train, every other story is test. Stories
    without a topic code are skipped and counted. Note that these are the original
    (RCV1-v1) codes and stories: the LYRL2004 qrels correct some codes and drop a
    few thousand stories, so the result approximates RCV1-V2.

All malformed input raises :class:`~mlbench.api.DataError` with the file path and,
for line-oriented files, the line number.
"""

from __future__ import annotations

import gzip
import logging
import re
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from pathlib import Path
from typing import IO, BinaryIO, Iterator, Sequence

from mlbench.api import DataError
from mlbench.data.build import Document
from mlbench.data.cache import data_home

log = logging.getLogger(__name__)

FORMATS = ("sgm", "lyrl2004", "xml")

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

#: LYRL2004 training range of itemids (inclusive), used to split the original XML.
XML_TRAIN_ITEMIDS = (2286, 26150)
XML_TOPIC_CLASS = "bip:topics:1.0"

_MARKER = re.compile(r"^<[^<>\s]*>$")

Docs = list[Document]

#: The full RCV1-V2 (LYRL2004 split): a copy with far fewer training documents or topic codes is partial.
FULL_TRAIN_DOCS = 23_149
FULL_TOPICS = 103


class NotANewsitem(DataError):
    """A well-formed XML file whose root is not ``<newsitem>`` (a stray file in the copy)."""


# ----------------------------------------------------------------------- locations


def default_rcv1_dir() -> Path:
    """Where the RCV1 files are looked for when no ``--data-dir`` is given."""
    return data_home() / "rcv1"


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


def _has_xml(directory: Path) -> bool:
    for path in directory.rglob("*"):
        if path.suffix.lower() in (".xml", ".zip") and path.is_file():
            return True
    return False


def missing_copy_message(directory: Path) -> str:
    """The one-line error for a directory holding no known RCV1 layout."""
    return (
        f"no RCV1 copy found in {directory}; expected one of: "
        "SGM/Seq2Set (text_train, label_train, text_val, label_val, text_test, label_test, "
        "or train.src, train.tgt, valid.src, valid.tgt, test.src, test.tgt); "
        f"LYRL2004 ({LYRL_TRAIN}, lyrl2004_tokens_test_pt0.dat .. pt3.dat and {LYRL_QRELS}, "
        "each optionally .gz); "
        "original RCV1 XML (<newsitem> *.xml files, in any subfolders, or the zipped daily archives such as 19960820.zip); "
        "point --data-dir at the folder holding them or put them under $MLBENCH_DATA/rcv1"
    )


def detect_format(directory: str | Path) -> str:
    """Return ``"sgm"``, ``"lyrl2004"`` or ``"xml"`` for the layout found in ``directory``.

    The first match in that order wins. Raises :class:`DataError` naming every
    expected file when none is found.
    """
    directory = Path(directory).expanduser()
    if directory.is_dir():
        if _sgm_scheme(directory) is not None:
            return "sgm"
        if _find(directory, LYRL_TRAIN) or _find(directory, LYRL_QRELS):
            return "lyrl2004"
        if _has_xml(directory):
            return "xml"
    raise DataError(missing_copy_message(directory))


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


# ----------------------------------------------------------------------------- XML


def _text_of(elem: ET.Element | None) -> str:
    return "" if elem is None else " ".join("".join(elem.itertext()).split())


def parse_newsitem(path: str | Path, stream: BinaryIO | None = None) -> tuple[int, Document] | None:
    """``(itemid, document)`` for one RCV1 XML story, ``None`` when it has no topic code.

    Raises :class:`DataError` naming the file when it does not parse, is not a
    ``<newsitem>`` or has no integer ``itemid``. The XML declaration's encoding
    (ISO-8859-1 in the distribution) is honoured. ``stream``, when given, is read
    instead of ``path`` (a member of a zipped daily archive; ``path`` then names it).
    """
    path = Path(path)
    try:
        root = ET.parse(stream if stream is not None else path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"{path}: not well-formed XML ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if root.tag != "newsitem":
        raise NotANewsitem(f"{path}: expected a <newsitem> root element, found <{root.tag}>")
    raw = root.get("itemid")
    try:
        itemid = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{path}: <newsitem> needs an integer itemid attribute, got {raw!r}") from None
    topics: list[str] = []
    for codes in root.iter("codes"):
        if codes.get("class") == XML_TOPIC_CLASS:
            for code in codes.iter("code"):
                c = code.get("code")
                if c and c not in topics:
                    topics.append(c)
    if not topics:
        return None
    paragraphs = [_text_of(p) for p in root.iterfind("text/p")]
    text = "\n".join([_text_of(root.find("headline")), *paragraphs])
    return itemid, Document(str(itemid), text, tuple(topics))


def read_xml(directory: str | Path, max_test_docs: int | None = None) -> tuple[Docs, None, Docs]:
    """Read every ``*.xml`` story below ``directory`` and split it by the LYRL2004 rule.

    Train is itemid 2286..26150 (inclusive), test the rest; both sorted by itemid.
    There is no validation split. ``max_test_docs`` keeps the first that many test
    stories by itemid.
    """
    directory = Path(directory).expanduser()
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in (".xml", ".zip") and p.is_file())
    if not files:
        raise DataError(missing_copy_message(directory))
    lo, hi = XML_TRAIN_ITEMIDS
    train: list[tuple[int, Document]] = []
    test: list[tuple[int, Document]] = []
    skipped = 0
    strays: list[str] = []
    for path, item in _newsitems(files, strays):
        if item is None:
            skipped += 1
            continue
        (train if lo <= item[0] <= hi else test).append(item)
    if skipped:
        log.warning("RCV1 XML: skipped %d stories without a %s code", skipped, XML_TOPIC_CLASS)
    if strays:
        log.warning("RCV1 XML: skipped %d file(s) that are not <newsitem> stories, e.g. %s", len(strays), strays[0])
    train.sort(key=lambda t: t[0])
    test.sort(key=lambda t: t[0])
    if max_test_docs is not None:
        test = test[: max(max_test_docs, 0)]
    log.info("read RCV1 XML copy from %s: %d train, %d test", directory, len(train), len(test))
    return [d for _, d in train], None, [d for _, d in test]


def _newsitems(files: Sequence[Path], strays: list[str]) -> Iterator[tuple[str, tuple[int, Document] | None]]:
    """Parse every ``.xml`` file and every ``.xml`` member of the ``.zip`` daily archives (read in place).

    A well-formed file that is not a ``<newsitem>`` is named in ``strays`` and skipped.
    """
    for path in files:
        if path.suffix.lower() == ".zip":
            try:
                archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{path}: not a readable zip archive ({exc})") from None
            with archive:
                for member in sorted(m for m in archive.namelist() if m.lower().endswith(".xml")):
                    name = f"{path}:{member}"
                    try:
                        with archive.open(member) as stream:
                            yield name, parse_newsitem(name, stream)
                    except NotANewsitem:
                        strays.append(name)
                    except (zipfile.BadZipFile, OSError, EOFError) as exc:
                        raise DataError(f"{name}: cannot read: {exc}") from None
            continue
        try:
            yield str(path), parse_newsitem(path)
        except NotANewsitem:
            strays.append(str(path))


def check_copy(directory: Path, train: Docs, valid: Docs | None, test: Docs) -> None:
    """Reject a copy the benchmark cannot use, and warn about one that is not the full corpus.

    Empty splits, an item id given twice, or one in two splits (a train/test leak) are errors;
    fewer training documents or topic codes than RCV1-V2 has is a warning ("partial copy").
    """
    splits = {"train": train, "valid": valid or [], "test": test}
    for name in ("train", "test"):
        if not splits[name]:
            raise DataError(f"the RCV1 copy in {directory} has no {name} documents"
                            + (" (every item id falls in the training range "
                               f"{XML_TRAIN_ITEMIDS[0]}..{XML_TRAIN_ITEMIDS[1]}?)" if name == "test" else ""))
    owner: dict[str, str] = {}
    for name, docs in splits.items():
        counts = Counter(d.id for d in docs)
        dup = [i for i, n in counts.items() if n > 1]
        if dup:
            raise DataError(f"the RCV1 copy in {directory}: {len(dup)} item id(s) appear twice in {name}, e.g. {dup[0]}")
        for i in counts:
            if i in owner:
                raise DataError(f"the RCV1 copy in {directory}: item id {i} is in both {owner[i]} and {name} "
                                "(documents shared between splits leak into the evaluation)")
            owner[i] = name
    n_topics = len({lab for d in train for lab in d.labels})
    if len(train) < FULL_TRAIN_DOCS or n_topics < FULL_TOPICS:
        log.warning("partial RCV1 copy in %s: %d training documents and %d topic codes (RCV1-V2 has %d and %d); "
                    "its scores are not comparable with published RCV1 figures",
                    directory, len(train), n_topics, FULL_TRAIN_DOCS, FULL_TOPICS)


# ---------------------------------------------------------------------------- entry


_READERS = {"sgm": read_sgm, "lyrl2004": read_lyrl2004, "xml": read_xml}


def read_rcv1(
    directory: str | Path, fmt: str | None = None, max_test_docs: int | None = None
) -> tuple[Docs, Docs | None, Docs]:
    """Read an RCV1 copy as ``(train, valid or None, test)`` documents.

    ``fmt`` forces a layout (``"sgm"``, ``"lyrl2004"``, ``"xml"``); by default it is
    detected with :func:`detect_format`. ``valid`` is ``None`` for layouts without
    a validation split; the caller carves one from train.
    """
    if fmt is None:
        fmt = detect_format(directory)
    if fmt not in _READERS:
        raise DataError(f"unknown RCV1 format {fmt!r}; choose from {', '.join(FORMATS)}")
    train, valid, test = _READERS[fmt](directory, max_test_docs=max_test_docs)
    check_copy(Path(directory), train, valid, test)
    return train, valid, test


def resolve_rcv1_dir(data_dir: str | Path | None) -> Path:
    """The folder to read: ``data_dir`` (or its ``rcv1`` subfolder when only that holds
    a copy), else :func:`default_rcv1_dir`."""
    if data_dir is None:
        return default_rcv1_dir()
    directory = Path(data_dir).expanduser()
    sub = directory / "rcv1"
    if sub.is_dir():
        try:
            detect_format(directory)
        except DataError:
            return sub
    return directory


__all__: Sequence[str] = (
    "FORMATS",
    "default_rcv1_dir",
    "detect_format",
    "iter_lyrl_blocks",
    "iter_parallel",
    "missing_copy_message",
    "parse_newsitem",
    "read_lyrl2004",
    "read_qrels",
    "read_rcv1",
    "read_sgm",
    "read_xml",
    "resolve_rcv1_dir",
)
