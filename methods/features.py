"""The features a linear or classic method reads: cached TF-IDF for a text task, the task's own matrix otherwise.

:func:`split_features` is what BR, PCC and the classics call: for a split with texts, the
TF-IDF features below; for a feature task (``Split.X``, e.g. a MULAN benchmark), the task's
own matrix, scaled as the TF-IDF rows are so that one set of defaults serves both (sparse
rows L2-normalised; dense columns standardised on the training rows). Either way the
method gets a CSR float32 training matrix and a picklable featurizer for its other splits.

Cached TF-IDF featurisation, shared by every method that works on TF-IDF vectors.

A tuning study fits one method many times on the same training texts; most
trials change only a solver parameter (``C``, a threshold, a beam width), and
re-vectorising the corpus for each of them used to cost as much as the solver.
:func:`tfidf_features` fits a :class:`~sklearn.feature_extraction.text.TfidfVectorizer`
once per (training texts, featurisation parameters) and hands every later
caller the same vectorizer and float32 train matrix; :meth:`TfidfFeatures.transform`
keeps the transforms of other splits (valid, test) the same way. Use it from any
method::

    from mlbench.methods.features import tfidf_features

    feats = tfidf_features(train.texts, params)   # params hold max_ngram, min_df, max_features, sublinear_tf
    X_train = feats.X                             # csr float32, shared: do not modify in place
    X_valid = feats.transform(valid.texts)

Two levels:

- in memory, for one process: the last :data:`MEMORY_ENTRIES` featurisations
  (and :data:`MEMORY_TRANSFORMS` transforms), each level within :data:`MEMORY_BYTES`,
  keyed by a digest of the texts and the parameters in :data:`FEATURE_PARAMS`;
- on disk, for worker processes and later runs: ``<data home>/cache/tfidf/<key>/``
  holds the vectorizer (pickle) and the train matrix (``.npz``). An entry is
  written in a temporary folder and renamed into place, its ``meta.json`` last,
  so a reader sees a whole entry or none; a damaged entry is ignored and
  rewritten. Deleting the folder is always safe. ``MLBENCH_FEATURE_CACHE=off``
  (or ``0``, ``false``, ``no``) turns the disk level off; any other value is the
  folder to use instead.

Matrices handed out are shared between callers: treat them as read-only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import scipy.sparse as sp

from mlbench.data.cache import texts_digest  # one definition of a corpus digest for every cache

log = logging.getLogger(__name__)

#: The parameters that determine a featurisation (anything else, e.g. ``C``, leaves it unchanged).
FEATURE_PARAMS = ("max_ngram", "min_df", "max_features", "sublinear_tf")
#: Bumped whenever the vectorizer's construction changes, so old disk entries stop matching.
FEATURISER_VERSION = 1
MEMORY_ENTRIES = 4
MEMORY_TRANSFORMS = 16
#: Bytes of matrices each in-memory level may hold (the newest entry is always kept): RCV1's train matrix
#: alone is several hundred MB.
MEMORY_BYTES = 1 << 30
CACHE_ENV = "MLBENCH_FEATURE_CACHE"
_OFF = {"0", "off", "false", "no"}
META_FILE = "meta.json"


@dataclass
class CacheStats:
    """Counts since the process started (or :func:`clear_memory_cache`), for tests and logs."""

    memory_hits: int = 0
    disk_hits: int = 0
    fits: int = 0
    transform_hits: int = 0
    transforms: int = 0


stats = CacheStats()
_lock = threading.Lock()
_features: "OrderedDict[str, TfidfFeatures]" = OrderedDict()
_transforms: "OrderedDict[tuple[str, str], sp.csr_matrix]" = OrderedDict()
_digest_of: "OrderedDict[int, tuple[tuple[str, ...], str]]" = OrderedDict()


def _digest(texts: Any) -> str:
    """:func:`texts_digest`, remembered per tuple object (a split's texts are hashed once per process).

    The remembered tuples are held (at most :data:`MEMORY_TRANSFORMS` of them), so an id is never
    reused for another tuple while its digest is remembered.
    """
    if not isinstance(texts, tuple):
        return texts_digest(texts)
    with _lock:
        known = _digest_of.get(id(texts))
        if known is not None and known[0] is texts:
            return known[1]
    digest = texts_digest(texts)
    with _lock:
        _digest_of[id(texts)] = (texts, digest)
        while len(_digest_of) > MEMORY_TRANSFORMS:
            _digest_of.popitem(last=False)
    return digest


def _nbytes(X: sp.csr_matrix) -> int:
    return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)


def _evict(cache: "OrderedDict[Any, Any]", limit: int, size: Callable[[Any], int]) -> None:
    """Drop the least recently used entries beyond ``limit`` entries or :data:`MEMORY_BYTES` (keeps the newest)."""
    total = sum(size(v) for v in cache.values())
    while len(cache) > 1 and (len(cache) > limit or total > MEMORY_BYTES):
        _, old = cache.popitem(last=False)
        total -= size(old)


def feature_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The featurisation part of a method's parameters, normalised (``min_df=2`` and ``2.0`` agree)."""
    return {
        "max_ngram": int(params["max_ngram"]),
        "min_df": int(params["min_df"]),
        "max_features": None if params.get("max_features") is None else int(params["max_features"]),
        "sublinear_tf": bool(params["sublinear_tf"]),
    }


def make_vectorizer(params: Mapping[str, Any]):
    """A fresh, unfitted TF-IDF vectorizer for these featurisation parameters (float32 output)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    p = feature_params(params)
    return TfidfVectorizer(
        lowercase=True,
        ngram_range=(1, p["max_ngram"]),
        min_df=p["min_df"],
        max_features=p["max_features"],
        sublinear_tf=p["sublinear_tf"],
        dtype=np.float32,
    )


@dataclass(eq=False)
class TfidfFeatures:
    """A fitted vectorizer and its training matrix; ``key`` names the pair in the caches."""

    key: str
    vectorizer: Any
    X: sp.csr_matrix = field(repr=False)

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """The vectorizer applied to ``texts`` (float32 CSR), kept in memory for the next caller."""
        return cached_transform(self.key, self.vectorizer, texts)


def cached_transform(key: str, vectorizer: Any, texts: Iterable[str]) -> sp.csr_matrix:
    """``vectorizer`` (the fitted one named ``key``) applied to ``texts``, kept in memory for the next caller."""
    tkey = (key, _digest(texts))
    with _lock:
        found = _transforms.get(tkey)
        if found is not None:
            _transforms.move_to_end(tkey)
            stats.transform_hits += 1
            return found
    X = sp.csr_matrix(vectorizer.transform(texts), dtype=np.float32)
    with _lock:
        stats.transforms += 1
        _transforms[tkey] = X
        _evict(_transforms, MEMORY_TRANSFORMS, _nbytes)
    return X


def features_key(texts_digest_: str, params: Mapping[str, Any]) -> str:
    payload = json.dumps({"texts": texts_digest_, "params": feature_params(params), "version": FEATURISER_VERSION},
                         sort_keys=True)
    return "tfidf-" + hashlib.sha256(payload.encode()).hexdigest()[:32]


def tfidf_features(texts: Iterable[str], params: Mapping[str, Any]) -> TfidfFeatures:
    """The TF-IDF vectorizer fitted on ``texts`` with ``params`` and the float32 train matrix, cached."""
    texts = texts if isinstance(texts, tuple) else tuple(texts)
    key = features_key(_digest(texts), params)
    with _lock:
        found = _features.get(key)
        if found is not None:
            _features.move_to_end(key)
            stats.memory_hits += 1
            return found
    root = disk_root()
    feats = _read_entry(root / key, key) if root is not None else None
    if feats is not None:
        stats.disk_hits += 1
    else:
        vectorizer = make_vectorizer(params)
        X = sp.csr_matrix(vectorizer.fit_transform(texts), dtype=np.float32)
        # The terms cut by min_df/max_features: never used after fitting, and the bulk of a pickle.
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_
        X.sort_indices()
        feats = TfidfFeatures(key, vectorizer, X)
        stats.fits += 1
        if root is not None:
            _write_entry(root, key, feats)
    with _lock:
        _features[key] = feats
        _evict(_features, MEMORY_ENTRIES, lambda f: _nbytes(f.X))
    return feats


class TfidfFeaturizer:
    """A fitted TF-IDF vectorizer as a featurizer of splits (the transforms cached as :meth:`TfidfFeatures.transform`)."""

    def __init__(self, key: str, vectorizer: Any) -> None:
        self.key, self.vectorizer = key, vectorizer

    def __call__(self, split: Any) -> sp.csr_matrix:
        return cached_transform(self.key, self.vectorizer, split.texts)


class MatrixFeaturizer:
    """A task's own feature matrix, scaled like TF-IDF rows: sparse rows to unit L2 norm (a zero row stays
    zero), dense columns to zero mean and unit variance on the training rows (a constant column to zero)."""

    def __init__(self, n_features: int, mean: np.ndarray | None = None, scale: np.ndarray | None = None) -> None:
        self.n_features, self.mean, self.scale = n_features, mean, scale

    @classmethod
    def fit(cls, X: Any) -> "MatrixFeaturizer":
        if sp.issparse(X):
            return cls(X.shape[1])
        X = np.asarray(X, dtype=np.float64)
        std = X.std(axis=0) if len(X) else np.ones(X.shape[1])
        return cls(X.shape[1], X.mean(axis=0) if len(X) else np.zeros(X.shape[1]), np.where(std > 0, std, np.inf))

    def __call__(self, split: Any) -> sp.csr_matrix:
        from mlbench.api import MlbenchError

        X = split.X
        if X is None or X.shape[1] != self.n_features:
            got = "no feature matrix" if X is None else f"{X.shape[1]} features"
            raise MlbenchError(f"split {split.name!r} has {got}; the model was fitted on {self.n_features}")
        if self.mean is None:
            from sklearn.preprocessing import normalize

            return sp.csr_matrix(normalize(sp.csr_matrix(X, dtype=np.float32), norm="l2"), dtype=np.float32)
        dense = (np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64) - self.mean) / self.scale
        return sp.csr_matrix(dense.astype(np.float32))


@dataclass(eq=False)
class SplitFeatures:
    """A method's training matrix, the featurizer of its other splits and the key naming them in caches."""

    key: str
    featurizer: Any
    X: sp.csr_matrix = field(repr=False)


def split_features(train: Any, params: Mapping[str, Any]) -> SplitFeatures:
    """TF-IDF of ``train``'s texts (cached, see :func:`tfidf_features`) when it has texts, else its own
    matrix through a :class:`MatrixFeaturizer` fitted on it."""
    if train.X is None or (len(train.texts) == len(train) and len(train) > 0):
        feats = tfidf_features(train.texts, params)
        return SplitFeatures(feats.key, TfidfFeaturizer(feats.key, feats.vectorizer), feats.X)
    featurizer = MatrixFeaturizer.fit(train.X)
    X = featurizer(train)
    X.sort_indices()
    h = hashlib.sha256(f"matrix-{FEATURISER_VERSION}".encode())
    for part in (np.asarray(X.shape), X.indptr, X.indices, X.data):
        h.update(np.ascontiguousarray(part).tobytes())
    return SplitFeatures("matrix-" + h.hexdigest()[:32], featurizer, X)


def clear_memory_cache() -> None:
    """Forget every in-memory featurisation and transform, and reset :data:`stats`."""
    global stats
    with _lock:
        _features.clear()
        _transforms.clear()
        stats = CacheStats()


# ------------------------------------------------------------------------ disk


def disk_root() -> Path | None:
    """The folder of the disk cache (``$MLBENCH_FEATURE_CACHE`` or ``<data home>/cache/tfidf``); None when off."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    from mlbench.data.cache import data_home

    return data_home() / "cache" / "tfidf"


def _read_entry(folder: Path, key: str) -> TfidfFeatures | None:
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        for name, size in meta["sizes"].items():
            if (folder / name).stat().st_size != size:
                raise ValueError(f"{name} has the wrong size")
        if meta.get("key") != key:
            raise ValueError("metadata of another entry")
        X = sp.load_npz(folder / "X.npz").tocsr()
        with open(folder / "vectorizer.pkl", "rb") as f:
            vectorizer = pickle.load(f)  # written by this cache only
        if X.shape != tuple(meta["shape"]) or X.dtype != np.float32 or len(vectorizer.vocabulary_) != X.shape[1]:
            raise ValueError("matrix and vectorizer disagree with the metadata")
    except Exception as exc:  # a damaged entry is refitted (and rewritten), never fatal
        log.warning("feature cache: ignoring %s (%s: %s)", folder, type(exc).__name__, exc)
        return None
    return TfidfFeatures(key, vectorizer, X)


def _write_entry(root: Path, key: str, feats: TfidfFeatures) -> None:
    final = root / key
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
    except OSError as exc:
        log.warning("feature cache: cannot write under %s (%s); going on without it", root, exc)
        return
    try:
        sp.save_npz(tmp / "X.npz", feats.X, compressed=False)
        with open(tmp / "vectorizer.pkl", "wb") as f:
            pickle.dump(feats.vectorizer, f, protocol=pickle.HIGHEST_PROTOCOL)
        sizes = {p.name: p.stat().st_size for p in tmp.iterdir()}
        meta = {"key": key, "shape": list(feats.X.shape), "sizes": sizes, "version": FEATURISER_VERSION}
        (tmp / META_FILE).write_text(json.dumps(meta))  # last: its presence marks a whole entry
        if final.exists() and not (final / META_FILE).is_file():
            shutil.rmtree(final, ignore_errors=True)  # a damaged entry: replace it
        elif final.exists():
            old = _read_entry(final, key)
            if old is not None:
                return  # another process published it meanwhile
            shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    except OSError as exc:
        if not (final / META_FILE).is_file():
            log.warning("feature cache: could not store %s (%s); going on without it", final, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
