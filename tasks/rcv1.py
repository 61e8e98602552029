"""RCV1-V2 (Lewis et al. 2004), read from the user's own copy.

See :mod:`mlbench.data.rcv1` for the accepted text layouts (SGM/Seq2Set, LYRL2004, original XML). Layouts
without a validation split get one carved from train: 10% by iterative stratification with the fixed seed
0, whatever the run seed, so the split (and the task fingerprint) never changes between runs.

When the folder holds no text layout but scikit-learn's ``fetch_rcv1`` cache (:mod:`mlbench.data.rcv1_sklearn`),
the task is the LYRL2004 TF-IDF vectors (a feature task, dataset ``rcv1-vectors``): the first 23,149 documents
are train, the rest test, and validation is carved from train as above. Without ``--data-dir``, scikit-learn's
own data home (``$SCIKIT_LEARN_DATA`` or ``~/scikit_learn_data``) is looked at too, after the default folder.
"""

from __future__ import annotations

from pathlib import Path

from mlbench.api import FEATURES, TEXT, Dataset, DataError, Task
from mlbench.data.build import build_feature_task, build_task, carve_validation
from mlbench.data.cache import notice
from mlbench.data.rcv1 import read_rcv1, resolve_rcv1_dir, text_layout
from mlbench.data.rcv1_formats import missing_copy_message
from mlbench.data.rcv1_sklearn import default_sklearn_home, describe_files, find_sklearn_cache, read_sklearn_rcv1

VALID_FRACTION = 0.1
VALID_SEED = 0
#: ``fmt`` that forces scikit-learn's cache (the text layouts are "sgm", "lyrl2004", "xml").
SKLEARN = "sklearn"


class RCV1Dataset(Dataset):
    name = "rcv1"
    description = ("RCV1-V2 newswire, 103 topic codes, from your own copy (SGM/Seq2Set, LYRL2004 or original XML "
                   "texts, or scikit-learn's fetch_rcv1 TF-IDF vectors)")
    #: texts or TF-IDF vectors: the copy found decides
    inputs = frozenset({TEXT, FEATURES})

    def __init__(self, fmt: str | None = None, max_test_docs: int | None = None) -> None:
        self.fmt = fmt
        self.max_test_docs = max_test_docs

    def load(self, data_dir: Path | None = None, seed: int = 0) -> Task:
        """Read the copy in ``data_dir`` (default ``$MLBENCH_DATA/rcv1``).

        ``seed`` does not influence the split: it is fixed for comparability.
        """
        directory = resolve_rcv1_dir(data_dir)
        cache = self._sklearn_cache(directory, data_dir is None)
        if cache is not None:
            return self._vectors(cache)
        train, valid, test = read_rcv1(directory, fmt=self.fmt, max_test_docs=self.max_test_docs)
        if valid is None:
            train, valid = carve_validation(train, VALID_FRACTION, seed=VALID_SEED)
        return build_task(
            name="rcv1",
            dataset="rcv1",
            train=train,
            valid=valid,
            test=test,
            description=self.description,
        )

    def _sklearn_cache(self, directory: Path, default_dir: bool) -> Path | None:
        """The scikit-learn cache folder to read, or None to read a text layout."""
        if self.fmt not in (None, SKLEARN) or (self.fmt is None and text_layout(directory) is not None):
            return None
        cache = find_sklearn_cache(directory)
        if cache is None and default_dir:
            cache = find_sklearn_cache(default_sklearn_home())
            if cache is not None:
                notice(f"no RCV1 copy in {directory}; reading scikit-learn's RCV1 cache in {cache}")
        if cache is None:
            if self.fmt == SKLEARN:
                raise DataError(f"no {describe_files()} in {directory}")
            raise DataError(missing_copy_message(directory))
        return cache

    def _vectors(self, cache: Path) -> Task:
        notice(f"reading the RCV1 LYRL2004 vectors from scikit-learn's cache in {cache}")
        X_train, Y_train, X_test, Y_test, topics = read_sklearn_rcv1(cache, self.max_test_docs)
        return build_feature_task("rcv1", "rcv1-vectors", X_train, Y_train, X_test, Y_test, topics,
                                  valid_fraction=VALID_FRACTION, seed=VALID_SEED,
                                  description="RCV1-V2 LYRL2004 TF-IDF vectors (scikit-learn's fetch_rcv1 cache)")
