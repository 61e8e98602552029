"""A disk cache of vocabularies and encoded corpora, shared by trials, runs and processes.

Tokenizing RCV1's 800k training documents takes tens of seconds; every trial
of a tuning study and every seed of a benchmark would pay it again. Each
result is stored once under ``<data home>/cache/tokens/`` (see
:func:`mlbench.data.cache.data_home`), in a folder named by a hash of
everything that determines it:

- a vocabulary (``vocab-<key>/vocab.json``): the training texts' digest, the
  tokenizer version, ``vocab_size`` and ``min_count``;
- an encoded split (``encoded-<key>/ids.npy``, ``offsets.npy``): the split's
  texts' digest, the tokenizer version, the vocabulary's digest (so a
  vocabulary taken from a saved model keys its own entries) and ``max_len``.

Encoded splits are opened with ``mmap_mode="r"``: training reads a corpus from
the page cache instead of holding a private copy of it.

An entry is written to a temporary folder next to its final place and renamed
into it (atomic on one file system), its ``meta.json`` last, so a reader sees
either a whole entry or none; a lock per key makes concurrent trials that miss
together wait for one tokenization instead of doing it twice. An entry that
fails its checks (sizes, shapes, id range, digests) is logged, deleted and
rebuilt. Deleting the folder is always safe.

``MLBENCH_TOKEN_CACHE=off`` (or ``0``, ``false``, ``no``) turns the cache off;
any other value is the folder to use instead of the default.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from mlbench.data.cache import texts_digest  # one definition of a corpus digest for every cache
from mlbench.methods.neural.text import (
    TOKENIZER_VERSION,
    EncodedTexts,
    Vocabulary,
    build_and_encode,
    encode_texts,
)

log = logging.getLogger(__name__)

CACHE_ENV = "MLBENCH_TOKEN_CACHE"
_OFF = {"0", "off", "false", "no"}
META_FILE = "meta.json"

_split_digests: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def split_digest(split: Any) -> str:
    """:func:`texts_digest` of a split's texts, computed once per split object."""
    digest = _split_digests.get(split)
    if digest is None:
        digest = _split_digests[split] = texts_digest(split.texts)
    return digest


def vocabulary_digest(vocab: Vocabulary) -> str:
    return hashlib.blake2b(json.dumps(vocab.tokens).encode(), digest_size=16).hexdigest()


def _key(kind: str, **inputs: Any) -> str:
    payload = json.dumps({"kind": kind, "tokenizer": TOKENIZER_VERSION, **inputs}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:32]}"


class BadEntry(Exception):
    """A cache entry that is incomplete or does not hold what its metadata says."""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class TokenCache:
    """Vocabularies and encoded splits, from disk when possible; ``root=None`` computes everything."""

    def __init__(self, root: Path | str | None) -> None:
        self.root = Path(root) if root is not None else None
        self.stats = CacheStats()

    @classmethod
    def from_env(cls) -> "TokenCache":
        """The cache ``MLBENCH_TOKEN_CACHE`` asks for (default: ``<data home>/cache/tokens``)."""
        value = os.environ.get(CACHE_ENV, "").strip()
        if value.lower() in _OFF:
            return cls(None)
        if value:
            return cls(Path(value).expanduser())
        from mlbench.data.cache import data_home

        return cls(data_home() / "cache" / "tokens")

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _usable(self) -> bool:
        """Whether the cache is on and its folder can be made; if not, work without it (with a warning)."""
        if self.root is None:
            return False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("token cache: cannot use %s (%s); tokenizing without a cache", self.root, exc)
            self.root = None
            return False
        return True

    # ------------------------------------------------------------------ public

    def vocabulary_and_encoding(
        self, texts: Iterable[str], digest: str, *, max_size: int, min_count: int, max_len: int | None
    ) -> tuple[Vocabulary, EncodedTexts]:
        """The training vocabulary and the training split encoded with it (one tokenization on a miss)."""
        if not self._usable():
            return build_and_encode(texts, max_size, min_count, max_len)
        name = _key("vocab", texts=digest, max_size=max_size, min_count=min_count)
        vocab = self._cached(name, self._read_vocabulary)
        if vocab is not None:
            return vocab, self.encoding(texts, digest, vocab, max_len)
        with self._lock(name):
            vocab = self._cached(name, self._read_vocabulary)
            if vocab is not None:
                return vocab, self.encoding(texts, digest, vocab, max_len)
            self.stats.misses += 1
            vocab, encoded = build_and_encode(texts, max_size, min_count, max_len)
            self._publish(name, lambda folder: self._write_vocabulary(folder, vocab))
            return vocab, self._store_encoding(self._encoding_name(digest, vocab, max_len), encoded, vocab)

    def encoding(self, texts: Iterable[str], digest: str, vocab: Vocabulary, max_len: int | None) -> EncodedTexts:
        """``encode_texts(texts, vocab, max_len)``, memory-mapped from the cache when it is there."""
        if not self._usable():
            return encode_texts(texts, vocab, max_len)
        name = self._encoding_name(digest, vocab, max_len)
        check = lambda folder: self._read_encoding(folder, vocab)  # noqa: E731
        found = self._cached(name, check)
        if found is not None:
            return found
        with self._lock(name):
            found = self._cached(name, check)
            if found is not None:
                return found
            self.stats.misses += 1
            return self._store_encoding(name, encode_texts(texts, vocab, max_len), vocab)

    # ----------------------------------------------------------------- entries

    @staticmethod
    def _encoding_name(digest: str, vocab: Vocabulary, max_len: int | None) -> str:
        return _key("encoded", texts=digest, vocabulary=vocabulary_digest(vocab), max_len=max_len)

    def _cached(self, name: str, read: Callable[[Path], Any], count: bool = True) -> Any:
        """The entry's content, or None when it is absent or bad (a bad one is deleted)."""
        assert self.root is not None
        folder = self.root / name
        if not folder.is_dir():
            return None
        try:
            value = read(folder)
        except (BadEntry, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("token cache: discarding %s (%s)", folder, exc)
            self._discard(folder)
            return None
        self.stats.hits += count
        return value

    @staticmethod
    def _meta(folder: Path, kind: str) -> dict[str, Any]:
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise BadEntry("no metadata: an incomplete entry")
        meta = json.loads(meta_path.read_text())
        if meta.get("kind") != kind or meta.get("tokenizer") != TOKENIZER_VERSION:
            raise BadEntry(f"metadata of another kind or tokenizer version: {meta.get('kind')}, {meta.get('tokenizer')}")
        for file, size in meta["sizes"].items():
            if (folder / file).stat().st_size != size:
                raise BadEntry(f"{file} has {(folder / file).stat().st_size} bytes, expected {size}")
        return meta

    def _read_vocabulary(self, folder: Path) -> Vocabulary:
        meta = self._meta(folder, "vocab")
        vocab = Vocabulary(json.loads((folder / "vocab.json").read_text()))
        if vocabulary_digest(vocab) != meta["vocabulary"]:
            raise BadEntry("vocabulary does not match its digest")
        return vocab

    def _write_vocabulary(self, folder: Path, vocab: Vocabulary) -> dict[str, Any]:
        (folder / "vocab.json").write_text(json.dumps(vocab.tokens))
        return {"kind": "vocab", "vocabulary": vocabulary_digest(vocab), "size": len(vocab)}

    def _read_encoding(self, folder: Path, vocab: Vocabulary) -> EncodedTexts:
        meta = self._meta(folder, "encoded")
        if meta["vocabulary"] != vocabulary_digest(vocab):
            raise BadEntry("encoded with another vocabulary")
        encoded = EncodedTexts.open(folder)
        n_docs, n_ids = meta["n_docs"], meta["n_ids"]
        ids, offsets = encoded.ids, encoded.offsets
        if ids.dtype != np.int32 or offsets.dtype != np.int64 or ids.shape != (n_ids,) or offsets.shape != (n_docs + 1,):
            raise BadEntry("arrays of the wrong type or shape")
        if n_docs and (offsets[0] != 0 or offsets[-1] != n_ids or (np.diff(offsets) < 1).any()):
            raise BadEntry("offsets are not those of non-empty documents")
        if n_ids and (int(ids.min()) < 0 or int(ids.max()) >= len(vocab)):
            raise BadEntry("ids outside the vocabulary")
        return encoded

    def _store_encoding(self, name: str, encoded: EncodedTexts, vocab: Vocabulary) -> EncodedTexts:
        """Write an encoding, then hand back the memory-mapped copy (the in-memory one can go)."""

        def write(folder: Path) -> dict[str, Any]:
            encoded.save(folder)
            return {"kind": "encoded", "vocabulary": vocabulary_digest(vocab), "n_docs": len(encoded),
                    "n_ids": int(len(encoded.ids))}

        if not self._publish(name, write):
            return encoded
        stored = self._cached(name, lambda folder: self._read_encoding(folder, vocab), count=False)
        return stored if stored is not None else encoded

    # -------------------------------------------------------------- mechanics

    def _lock(self, name: str):
        from filelock import FileLock

        assert self.root is not None
        return FileLock(str(self.root / f".{name}.lock"))

    def _publish(self, name: str, write: Callable[[Path], dict[str, Any]]) -> bool:
        """Write an entry in a temporary folder and rename it into place; False if that failed."""
        assert self.root is not None
        final = self.root / name
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.root))
        except OSError as exc:
            log.warning("token cache: cannot write under %s (%s); going on without it", self.root, exc)
            return False
        try:
            meta = write(tmp)
            meta["tokenizer"] = TOKENIZER_VERSION
            meta["sizes"] = {p.name: p.stat().st_size for p in tmp.iterdir()}
            (tmp / META_FILE).write_text(json.dumps(meta))  # last: its presence marks a whole entry
            os.rename(tmp, final)  # fails if the entry exists: then another process wrote it meanwhile
            return True
        except OSError as exc:
            if final.is_dir():
                return True  # another process published the same entry first
            log.warning("token cache: could not store %s (%s); going on without it", final, exc)
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _discard(self, folder: Path) -> None:
        """Delete an entry; renamed away first so that no reader ever sees it half deleted."""
        assert self.root is not None
        try:
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=self.root))
            os.rename(folder, trash / "entry")
        except OSError:
            return  # already gone (another process discarded it)
        shutil.rmtree(trash, ignore_errors=True)
