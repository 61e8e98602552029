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

A fourth source is scikit-learn's ``fetch_rcv1`` cache (the LYRL2004 TF-IDF vectors, not texts), read as
a feature task by :mod:`mlbench.data.rcv1_sklearn` when no text layout is found.

This module owns finding a copy (:func:`resolve_rcv1_dir`, :func:`detect_format`),
checking what was read (:func:`check_copy`) and the entry :func:`read_rcv1`; the
readers of each layout live in :mod:`mlbench.data.rcv1_formats` and :mod:`mlbench.data.rcv1_xml`.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from mlbench.api import DataError
from mlbench.data.cache import data_home
from mlbench.data.rcv1_formats import (LYRL_QRELS, LYRL_TRAIN, Docs, _find, _sgm_scheme, missing_copy_message,
                                       read_lyrl2004, read_sgm)
from mlbench.data.rcv1_xml import XML_TRAIN_ITEMIDS, _has_xml, read_xml

log = logging.getLogger(__name__)

FORMATS = ("sgm", "lyrl2004", "xml")

#: The full RCV1-V2 (LYRL2004 split): a copy with far fewer training documents or topic codes is partial.
FULL_TRAIN_DOCS = 23_149
FULL_TOPICS = 103


# ----------------------------------------------------------------------- locations


def default_rcv1_dir() -> Path:
    """Where the RCV1 files are looked for when no ``--data-dir`` is given."""
    return data_home() / "rcv1"


def text_layout(directory: str | Path) -> str | None:
    """``"sgm"``, ``"lyrl2004"`` or ``"xml"`` for the text layout found in ``directory`` (first match in
    that order), or None."""
    directory = Path(directory).expanduser()
    if directory.is_dir():
        if _sgm_scheme(directory) is not None:
            return "sgm"
        if _find(directory, LYRL_TRAIN) or _find(directory, LYRL_QRELS):
            return "lyrl2004"
        if _has_xml(directory):
            return "xml"
    return None


def detect_format(directory: str | Path) -> str:
    """:func:`text_layout`, raising :class:`DataError` naming every expected file when none is found."""
    fmt = text_layout(directory)
    if fmt is None:
        raise DataError(missing_copy_message(Path(directory).expanduser()))
    return fmt


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
