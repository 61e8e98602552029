"""Shared parts of the linear methods (BR, PCC): TF-IDF features and per-label logistic regressions.

The regressions are L2-regularised logistic regressions with a regularised
bias feature of value 1, solved by LIBLINEAR's primal trust-region Newton
method (``-s 0 -B 1``) to a stopping tolerance of ``1e-2`` (LIBLINEAR's own
default; see :data:`SOLVER_TOL`): the problem scikit-learn's
``LogisticRegression(solver="liblinear")`` solves, but through the
``liblinear-multicore`` binding, measured 10-15x faster per label on Reuters
(0.16-0.22 s against 2-3 s for scikit-learn 1.9's bundled copy at C=300, both
at 1e-4). The binding calls LIBLINEAR through ctypes, which releases
the GIL, so labels are fitted on a pool of threads, one per core.

The feature matrix is turned into LIBLINEAR's row format once per fit
(vectorised here in numpy: the binding's own converter is a Python loop or a
numba JIT that costs a compilation per process) and shared by every label.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp


#: LIBLINEAR's stopping tolerance (its own default for ``-s 0``). Chosen on validation micro-F1 by
#: ``benchmarks/solver_tolerance.py`` (reports/performance/solver_tolerance.md): against scikit-learn's
#: ``1e-4`` it changes BR's validation micro-F1 by +0.0017 on average over Reuters and ten MULAN sets
#: (worst -0.0026) and takes 0.69x the solve time; ``1e-1`` loses up to 0.033.
SOLVER_TOL = 1e-2
#: Environment variable capping the solver threads (default: the cores this process may use).
THREADS_ENV = "MLBENCH_LINEAR_THREADS"
#: Bias of a label whose training column is constant: saturates the sigmoid at that constant.
CONSTANT_BIAS = 20.0


def solver_threads() -> int:
    """Threads for fitting labels: ``$MLBENCH_LINEAR_THREADS``, else the cores available to this process."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        return max(1, int(value))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class LiblinearRows:
    """A CSR matrix in LIBLINEAR's layout: per row its (1-based index, value) nodes, a bias node, a terminator.

    Built once and shared, read-only, by the threads that fit labels on it.
    :meth:`problem` makes the ctypes ``problem`` for one label vector.
    """

    def __init__(self, X: sp.csr_matrix) -> None:
        from liblinear.liblinear import feature_node

        X = sp.csr_matrix(X)
        if not X.has_sorted_indices:
            X = X.copy()
            X.sort_indices()
        n_rows, n_cols = X.shape
        counts = np.diff(X.indptr).astype(np.int64)
        self.rowptr = X.indptr.astype(np.int64) + 2 * np.arange(n_rows + 1, dtype=np.int64)
        nodes = np.empty(X.nnz + 2 * n_rows, dtype=feature_node)
        row_of = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
        at = np.arange(X.nnz, dtype=np.int64) + 2 * row_of
        nodes["index"][at] = X.indices + 1
        nodes["value"][at] = X.data
        ends = self.rowptr[1:]
        nodes["index"][ends - 2] = n_cols + 1  # the bias feature, last of every row
        nodes["value"][ends - 2] = 1.0
        nodes["index"][ends - 1] = -1
        nodes["value"][ends - 1] = 0.0
        self.nodes = nodes
        self.n_rows, self.n_cols = n_rows, n_cols

    def problem(self, y: np.ndarray):
        from ctypes import POINTER, addressof, c_double, c_uint64, cast, sizeof

        from liblinear.liblinear import feature_node, problem

        prob = problem.__new__(problem)
        prob.l, prob.n, prob.bias = self.n_rows, self.n_cols + 1, 1.0
        prob.x_space = self.nodes  # keeps the nodes alive as long as the problem
        prob.y = (c_double * self.n_rows)()
        np.ctypeslib.as_array(prob.y, (self.n_rows,))[:] = y
        prob.x = (POINTER(feature_node) * self.n_rows)()
        base = addressof(self.nodes.ctypes.data_as(POINTER(feature_node))[0])
        np.ctypeslib.as_array(cast(prob.x, POINTER(c_uint64)), (self.n_rows,))[:] = (
            self.rowptr[:-1] * sizeof(feature_node) + base
        )
        return prob


def class_weights(y: np.ndarray, class_weight: str | None) -> tuple[float, float]:
    """(negative, positive) weights; ``"balanced"`` is scikit-learn's ``n / (2 * count)``."""
    if class_weight is None:
        return 1.0, 1.0
    if class_weight != "balanced":
        from mlbench.api import MlbenchError

        raise MlbenchError(f"class_weight must be null or 'balanced', got {class_weight!r}")
    n, pos = len(y), float(y.sum())
    return n / (2.0 * (n - pos)), n / (2.0 * pos)


def fit_lr_rows(rows: LiblinearRows, y: np.ndarray, C: float, class_weight: str | None = None) -> tuple[np.ndarray, float]:
    """One logistic regression on prepared rows; returns (weights, bias), weights as float32.

    A label whose training column is constant (never or always present, e.g.
    after trimming) has nothing to learn: it gets a zero weight vector and a
    bias that saturates the sigmoid at its constant value.
    """
    from liblinear.liblinear import liblinear, parameter, toPyModel

    y = np.asarray(y, dtype=np.float64).ravel()
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        return np.zeros(rows.n_cols, dtype=np.float32), (CONSTANT_BIAS if positives else -CONSTANT_BIAS)
    w_neg, w_pos = class_weights(y, class_weight)
    weights = "" if class_weight is None else f" -w1 {w_pos!r} -w-1 {w_neg!r}"
    param = parameter(f"-s 0 -c {float(C)!r} -e {SOLVER_TOL!r} -B 1 -q{weights}")
    model = toPyModel(liblinear.train(rows.problem(2.0 * y - 1.0), param))
    w = np.ctypeslib.as_array(model.w, (rows.n_cols + 1,)).copy()
    if model.get_labels()[0] != 1:  # LIBLINEAR's weights point to its first label
        w = -w
    return w[:-1].astype(np.float32), float(w[-1])


def fit_binary_lr(X, y: np.ndarray, C: float, class_weight: str | None, seed: int = 0) -> tuple[np.ndarray, float]:
    """One logistic regression on a feature matrix (LIBLINEAR's primal solver is deterministic: no seed)."""
    return fit_lr_rows(LiblinearRows(sp.csr_matrix(X)), y, C, class_weight)


def map_threads(fn: Callable[[int], Any], items: Sequence[int], threads: int | None = None,
                on_done: Callable[[], None] | None = None) -> list[Any]:
    """``[fn(i) for i in items]`` on a thread pool (results in order); serial when one thread is asked for."""
    threads = solver_threads() if threads is None else max(1, threads)
    if threads == 1 or len(items) < 2:
        out = []
        for i in items:
            out.append(fn(i))
            if on_done:
                on_done()
        return out
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        futures = [pool.submit(fn, i) for i in items]
        out = []
        for f in futures:
            out.append(f.result())
            if on_done:
                on_done()
        return out


def fit_binary_relevance(X: sp.csr_matrix, Y: sp.spmatrix, C: float, class_weight: str | None = None,
                         threads: int | None = None, on_label: Callable[[], None] | None = None,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """One logistic regression per column of ``Y`` on ``X``: ``(W, b)``, ``W`` float32 ``features x labels``.

    Labels are fitted on ``threads`` threads (default :func:`solver_threads`);
    the result does not depend on the thread count.
    """
    rows = LiblinearRows(X)
    Yc = sp.csc_matrix(Y)
    n_labels = Yc.shape[1]

    def one(j: int) -> tuple[np.ndarray, float]:
        return fit_lr_rows(rows, Yc[:, j].toarray().ravel(), C, class_weight)

    fits = map_threads(one, range(n_labels), threads, on_label)
    W = np.zeros((X.shape[1], n_labels), dtype=np.float32)
    b = np.zeros(n_labels, dtype=np.float32)
    for j, (w, bias) in enumerate(fits):
        W[:, j], b[j] = w, bias
    return W, b


#: Fitted models kept per process, so that a trial changing only a decision parameter (BR's threshold,
#: PCC's beam width) costs a prediction, not a refit.
MODEL_CACHE_ENTRIES = 2  # weights are features x labels floats: RCV1's take ~80 MB each
_models: "OrderedDict[tuple, Any]" = OrderedDict()
_models_lock = threading.Lock()
model_cache_hits = 0


def labels_digest(Y: sp.spmatrix) -> str:
    """A hash of a 0/1 indicator matrix's shape and nonzero pattern."""
    Y = sp.csr_matrix(Y)
    Y.sort_indices()
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(Y.shape, dtype=np.int64).tobytes())
    h.update(np.asarray(Y.indptr, dtype=np.int64).tobytes())
    h.update(np.asarray(Y.indices, dtype=np.int64).tobytes())
    return h.hexdigest()


def cached_model(key: tuple, fit: Callable[[], Any]) -> Any:
    """``fit()``, or what it returned before for the same ``key`` in this process (the last few keys).

    The key must hold everything the result depends on: the features' cache key,
    the training labels' digest and the solver's parameters.
    """
    global model_cache_hits
    key = (*key, SOLVER_TOL)
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            model_cache_hits += 1
            return _models[key]
    value = fit()
    with _models_lock:
        _models[key] = value
        while len(_models) > MODEL_CACHE_ENTRIES:
            _models.popitem(last=False)
    return value


def timed_cached_model(key: tuple, fit: Callable[[], Any], started: float) -> tuple[Any, bool, float]:
    """:func:`cached_model` that also says whether the model came from the cache and how long the fit that
    made it took (from ``started``, a ``time.perf_counter()`` taken when that fit began, featurisation
    included): ``(model, reused, seconds)``. A run that reuses a model reports that fit's time, not the
    milliseconds of the lookup."""
    import time

    made: list[bool] = []

    def timed() -> tuple[Any, float]:
        made.append(True)
        model = fit()
        return model, time.perf_counter() - started

    model, seconds = cached_model(key, timed)
    return model, not made, seconds


def clear_model_cache() -> None:
    global model_cache_hits
    with _models_lock:
        _models.clear()
        model_cache_hits = 0


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))
