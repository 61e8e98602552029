"""RCV1-V2 as scikit-learn's ``fetch_rcv1`` leaves it: the LYRL2004 TF-IDF vectors, read as a feature task.

``fetch_rcv1`` stores four joblib files in ``<scikit-learn data home>/RCV1/``: ``samples_py3.pkl`` (the
CSR matrix, 47,236 columns), ``sample_id_py3.pkl``, ``sample_topics_py3.pkl`` (the 103-column indicator
matrix) and ``topics_names_py3.pkl``. This module owns finding such a cache (:func:`find_sklearn_cache`) and
reading it through scikit-learn's own loader with downloads off (:func:`read_sklearn_rcv1`). The split is
LYRL2004's: the first 23,149 documents (in the cache's order, which is the files' order) are train, the
rest test.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from mlbench.api import DataError

log = logging.getLogger("mlbench.data.rcv1")

FOLDER = "RCV1"
FILES = ("samples_py3.pkl", "sample_id_py3.pkl", "sample_topics_py3.pkl", "topics_names_py3.pkl")
LYRL_TRAIN_DOCS = 23_149
FULL_DOCS = 804_414
FULL_TOPICS = 103


def default_sklearn_home() -> Path:
    """scikit-learn's data home (``$SCIKIT_LEARN_DATA`` or ``~/scikit_learn_data``), computed without creating it."""
    return Path(os.environ.get("SCIKIT_LEARN_DATA") or "~/scikit_learn_data").expanduser()


def _holds_cache(folder: Path) -> bool:
    return any((folder / name).is_file() for name in FILES)


def find_sklearn_cache(directory: Path) -> Path | None:
    """The folder holding the cache files: ``directory/RCV1`` or ``directory`` itself; None when neither does."""
    for folder in (directory / FOLDER, directory):
        if folder.is_dir() and _holds_cache(folder):
            return folder
    return None


def describe_files() -> str:
    return f"scikit-learn's fetch_rcv1 cache ({FOLDER}/{', '.join(FILES)})"


def read_sklearn_rcv1(folder: Path, max_test_docs: int | None = None) -> tuple[Any, Any, Any, Any, list[str]]:
    """``(X_train, Y_train, X_test, Y_test, topic codes)`` from the cache in ``folder``."""
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(f"incomplete scikit-learn RCV1 cache in {folder}: missing {', '.join(missing)} "
                        f"(fetch_rcv1 writes {', '.join(FILES)})")
    from sklearn.datasets import fetch_rcv1

    with tempfile.TemporaryDirectory(prefix="mlbench-rcv1-") as tmp:
        home = folder.parent
        if folder.name != FOLDER:  # the files sit in a folder of another name: show them to sklearn as RCV1/
            home = Path(tmp)
            os.symlink(folder.resolve(), home / FOLDER, target_is_directory=True)
        try:
            bunch = fetch_rcv1(data_home=str(home), download_if_missing=False, subset="all")
        except Exception as exc:  # noqa: BLE001 - a damaged cache fails in joblib/pickle in many ways
            first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            raise DataError(f"cannot read the scikit-learn RCV1 cache in {folder} ({type(exc).__name__}: {first})") from None
    X, Y, names = bunch.data, bunch.target, [str(n) for n in bunch.target_names]
    n = X.shape[0]
    if Y.shape != (n, len(names)) or len(bunch.sample_id) != n:
        raise DataError(f"the scikit-learn RCV1 cache in {folder} is inconsistent: {n} feature rows, "
                        f"{Y.shape[0]} label rows, {len(bunch.sample_id)} ids, {Y.shape[1]} label columns for "
                        f"{len(names)} topic names")
    if n <= LYRL_TRAIN_DOCS:
        raise DataError(f"the scikit-learn RCV1 cache in {folder} has {n:,} documents; its LYRL2004 split takes "
                        f"the first {LYRL_TRAIN_DOCS:,} as train, so it needs more")
    if n != FULL_DOCS or len(names) != FULL_TOPICS:
        log.warning("partial RCV1 copy in %s: %d documents and %d topic codes (RCV1-V2 has %d and %d); its scores "
                    "are not comparable with published RCV1 figures", folder, n, len(names), FULL_DOCS, FULL_TOPICS)
    end = n if max_test_docs is None else min(n, LYRL_TRAIN_DOCS + max(max_test_docs, 0))
    return X[:LYRL_TRAIN_DOCS], Y[:LYRL_TRAIN_DOCS], X[LYRL_TRAIN_DOCS:end], Y[LYRL_TRAIN_DOCS:end], names
