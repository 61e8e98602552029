"""The original RCV1 XML: one ``<newsitem>`` file per story, loose in folders or inside the release's zipped
daily archives; the layout is described in :mod:`mlbench.data.rcv1`."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from mlbench.api import DataError
from mlbench.data.build import Document
from mlbench.data.rcv1_formats import Docs, missing_copy_message

# the readers log under the module users know (and filter on)
log = logging.getLogger("mlbench.data.rcv1")

#: LYRL2004 training range of itemids (inclusive), used to split the original XML.
XML_TRAIN_ITEMIDS = (2286, 26150)
XML_TOPIC_CLASS = "bip:topics:1.0"


class NotANewsitem(DataError):
    """A well-formed XML file whose root is not ``<newsitem>`` (a stray file in the copy)."""


def _has_xml(directory: Path) -> bool:
    for path in directory.rglob("*"):
        if path.suffix.lower() in (".xml", ".zip") and path.is_file():
            return True
    return False


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
