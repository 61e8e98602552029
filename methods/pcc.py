"""``pcc``: probabilistic classifier chains of logistic regressions with beam-search inference (PCC-LR).

Training: the labels are put in a chain order, and link ``k`` is a logistic
regression on the TF-IDF features of a document (or a feature task's own matrix,
:func:`mlbench.methods.features.split_features`) plus the gold indicators of
the ``k`` labels before it in the chain (``[X | Y_<k]``, kept sparse). This is
scikit-learn's ``ClassifierChain`` without cross-validated chain features, done
here so that constant labels (never present in training, e.g. after trimming)
get a saturated constant link instead of a crash, and so that the weights come
out as plain arrays the decoder can use.

Inference: the chain defines ``p(y | x) = prod_k p(y_k | x, y_<k)``. Greedy
chaining (``beam_width=1``) commits to each label in turn; the most probable
label *set* is what PCC is about (it minimises subset 0/1 loss), and the exact
search over 2^L sets is hopeless at 90-103 labels. Beam search (Kumar et al.
2013) keeps, for every document, the ``b`` best partial assignments by joint
log-probability, extends each with 0 and 1 at the next link and keeps the best
``b`` again; the prediction is the best complete assignment. With ``b >= 2^L``
it is the exact argmax. Decoding is vectorised over documents and beams: the
text part of every link's logit, ``X @ W_text``, is one sparse-dense product
per chunk of documents, and the label part is carried along each beam as the
running sum of the label weights of the labels it has switched on.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mlbench.api import FEATURES, TEXT, FitContext, Method, MlbenchError, Param, Split, as_binary_csr
from mlbench.methods.features import split_features
from mlbench.methods.tfidf import TFIDF_DEFAULTS, TFIDF_SPECS, suggest_tfidf
from mlbench.methods.linear import (
    LiblinearRows,
    timed_cached_model,
    fit_lr_rows,
    labels_digest,
    map_threads,
)
from mlbench.progress import progress

#: Documents decoded at once: bounds the beam state (chunk x beam x labels floats) on large test sets.
DECODE_CHUNK = 4096
ORDER_POLICIES = ("frequency", "random")


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    """log(1 / (1 + exp(-z))), stable for large |z|."""
    return -np.logaddexp(0.0, -z)


def chain_order(order: str, labels: tuple[str, ...], seed: int) -> np.ndarray:
    """Column indices of the task's labels in chain order.

    ``"frequency"``: the task's column order, which is frequency-descending.
    ``"random"``: a permutation drawn from ``seed``. Otherwise a comma-separated
    list of label names: those labels first, in that order, then every label
    not named in frequency order (so a partial list fixes only the head of the chain).
    """
    n = len(labels)
    if order == "frequency":
        return np.arange(n)
    if order == "random":
        return np.random.default_rng(seed).permutation(n)
    index = {lab: j for j, lab in enumerate(labels)}
    names = [s.strip() for s in str(order).split(",") if s.strip()]
    unknown = [s for s in names if s not in index]
    if unknown or not names:
        raise MlbenchError(
            f"pcc: order must be {' or '.join(ORDER_POLICIES)} or a comma list of label names; "
            f"unknown label(s): {', '.join(unknown) or '(empty list)'}"
        )
    if len(set(names)) != len(names):
        raise MlbenchError(f"pcc: order names a label twice: {order!r}")
    head = [index[s] for s in names]
    named = set(head)
    return np.asarray(head + [j for j in range(n) if j not in named], dtype=np.int64)


def fit_chain(X: sp.csr_matrix, Y: sp.spmatrix, order: np.ndarray, C: float, threads: int | None = None,
              on_link: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chain's links: ``(W_text, W_label, bias)``; link ``k`` is a regression on ``[X | Y_chain[:, :k]]``.

    Links see gold labels, so they are independent and fitted in parallel
    (:func:`~mlbench.methods.linear.map_threads`). ``[X | Y_chain]`` is put in
    LIBLINEAR's layout once; link ``k`` keeps the nodes of the text columns and
    of the first ``k`` chain labels (its rows' label columns are sorted, so they
    are a prefix of each row's label part).
    """
    X = sp.csr_matrix(X, dtype=np.float32)
    n_feat, n_labels = X.shape[1], Y.shape[1]
    Y_chain = sp.csr_matrix(Y)[:, order].astype(np.float32)
    full = sp.hstack([X, Y_chain], format="csr")
    full.sort_indices()
    Y_cols = sp.csc_matrix(Y_chain)
    row_of = np.repeat(np.arange(full.shape[0]), np.diff(full.indptr))

    def link(k: int) -> tuple[np.ndarray, float]:
        if k == 0:
            rows = LiblinearRows(X)
        else:
            keep = full.indices < n_feat + k
            counts = np.bincount(row_of[keep], minlength=full.shape[0])
            indptr = np.concatenate([[0], np.cumsum(counts)])
            sub = sp.csr_matrix((full.data[keep], full.indices[keep], indptr), shape=(full.shape[0], n_feat + k))
            sub.has_sorted_indices = True
            rows = LiblinearRows(sub)
        return fit_lr_rows(rows, Y_cols[:, k].toarray().ravel(), C, None)

    fits = map_threads(link, range(n_labels), threads, on_link)
    W_text = np.zeros((n_feat, n_labels), dtype=np.float32)
    W_label = np.zeros((n_labels, n_labels), dtype=np.float32)  # [k, i]: weight of chain label i < k in link k
    bias = np.zeros(n_labels, dtype=np.float32)
    for k, (w, b) in enumerate(fits):
        W_text[:, k], W_label[k, :k], bias[k] = w[:n_feat], w[n_feat:], b
    return W_text, W_label, bias


class ProbabilisticClassifierChain(Method):
    name = "pcc"
    description = "Probabilistic classifier chain of logistic regressions, beam-search inference (PCC-LR)"
    inputs = frozenset({TEXT, FEATURES})
    # TF-IDF and C start from BR's Reuters-tuned defaults (unigrams, raw tf, weak regularisation): each link
    # is the same kind of regression, plus the earlier labels as features.
    defaults = {
        **TFIDF_DEFAULTS,
        "max_ngram": 1,
        "sublinear_tf": False,
        "C": 300.0,
        "beam_width": 5,
        "order": "frequency",
    }
    # "order": a policy or a comma list of label names, which only the task can check (at fit time)
    param_specs = {
        **TFIDF_SPECS,
        "C": Param("float", low=0, low_open=True),
        "beam_width": Param("int", low=1),
        "order": Param("str"),
    }
    # Linear models need no size preset; "paper" decodes with a wider beam at twice the decoding cost
    # (on Reuters b=5 already finds what b=10 finds: reports/performance/linear_methods.md).
    presets = {"small": {}, "paper": {"beam_width": 10}}

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            **suggest_tfidf(trial),
            "C": trial.suggest_float("C", 1.0, 3000.0, log=True),
            "beam_width": trial.suggest_int("beam_width", 1, 15),
            "order": trial.suggest_categorical("order", list(ORDER_POLICIES)),
        }

    # ------------------------------------------------------------------ fitting

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> "ProbabilisticClassifierChain":
        from mlbench.metrics import micro_precision_recall_f1, subset_zero_one_loss

        import time

        started = time.perf_counter()
        p = self.params
        if int(p["beam_width"]) < 1:
            raise MlbenchError(f"pcc: beam_width must be at least 1, got {p['beam_width']}")
        order = chain_order(str(p["order"]), train.labels, ctx.seed)
        feats = split_features(train, p)
        self.featurizer_ = feats.featurizer

        def solve() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            with progress(None, total=train.n_labels, desc="pcc: chain links", enabled=ctx.progress) as bar:
                return fit_chain(feats.X, train.Y, order, float(p["C"]), on_link=lambda: bar.update(1))

        # The links are trained on gold labels, so they depend on the features, the labels, the order and C
        # only: a refit that changes only beam_width costs a decode.
        key = ("pcc", feats.key, labels_digest(train.Y), tuple(int(j) for j in order), float(p["C"]))
        (W_text, W_label, bias), self.reused_, self.model_seconds_ = timed_cached_model(key, solve, started)
        self.order_, self.W_text_, self.W_label_, self.bias_ = order, W_text, W_label, bias
        pred = self.predict(valid)
        _, _, f1 = micro_precision_recall_f1(valid.Y, pred)
        ctx.report(0, {"valid_micro_f1": f1, "valid_subset_01_loss": subset_zero_one_loss(valid.Y, pred)})
        return self

    def fit_report(self) -> dict[str, float | str]:
        """On chain links reused from the process's cache: the time of the fit that made them."""
        if not getattr(self, "reused_", False):
            return {}
        return {"reused_model": "true", "reused_fit_seconds": float(self.model_seconds_)}

    # ---------------------------------------------------------------- inference

    def beam_search(self, X: sp.csr_matrix, beam_width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode the chain for every row of ``X`` (TF-IDF features).

        Returns ``(assign, log_prob, cond)`` for the final beams, best first, in
        chain order: ``assign`` is ``n x B x L`` 0/1 (int8), ``log_prob`` the
        ``n x B`` joint log-probabilities, ``cond`` the ``n x B x L`` conditional
        probabilities ``p(y_k = 1 | x, y_<k)`` along each beam. ``B`` is
        ``min(beam_width, 2^L)``; beams that cannot be filled yet (fewer than
        ``B`` distinct prefixes) carry log-probability ``-inf``.
        """
        n, n_labels = X.shape[0], self.W_text_.shape[1]
        B = int(min(beam_width, 2 ** min(n_labels, 30)))
        assign = np.zeros((n, B, n_labels), dtype=np.int8)
        log_prob = np.full((n, B), -np.inf)
        cond = np.zeros((n, B, n_labels), dtype=np.float32)
        for lo in range(0, n, DECODE_CHUNK):
            hi = min(lo + DECODE_CHUNK, n)
            a, lp, c = self._beam_chunk(X[lo:hi], B)
            assign[lo:hi], log_prob[lo:hi], cond[lo:hi] = a, lp, c
        return assign, log_prob, cond

    def _beam_chunk(self, X: sp.csr_matrix, B: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, n_labels = X.shape[0], self.W_text_.shape[1]
        rows = np.arange(n)[:, None]
        # Text part of every link's logit, for all documents at once (dense n x L; an empty document gets 0).
        text_logit = np.asarray(X @ self.W_text_, dtype=np.float64) + self.bias_
        # Label part: link k adds W_label[k, i] for every label i that the beam has switched on. Label sets
        # are small, so each beam carries the chain indices of its switched-on labels, padded with n_labels,
        # which indexes a zero column: per step this costs O(n * B * most labels on), not O(n * B * L).
        W_label = np.zeros((n_labels, n_labels + 1), dtype=np.float64)
        W_label[:, :n_labels] = self.W_label_
        on = np.full((n, B, 0), n_labels, dtype=np.int32)
        n_on = np.zeros((n, B), dtype=np.int32)
        log_prob = np.full((n, B), -np.inf)
        log_prob[:, 0] = 0.0  # one empty prefix; the other slots are unfilled
        parents = np.zeros((n_labels, n, B), dtype=np.int32)
        bits = np.zeros((n_labels, n, B), dtype=np.int8)
        conds = np.zeros((n_labels, n, B), dtype=np.float32)
        for k in range(n_labels):
            logit = text_logit[:, k, None] + W_label[k][on].sum(axis=2)  # n x B
            # Candidates 2s (beam s, y_k = 0) and 2s + 1 (y_k = 1): n x 2B joint log-probabilities.
            cand = np.stack([log_prob + _log_sigmoid(-logit), log_prob + _log_sigmoid(logit)], axis=2).reshape(n, 2 * B)
            # Stable sort: ties go to the earlier beam and to y_k = 0, so b = 1 is greedy with p > 0.5 -> 1.
            best = np.argsort(-cand, axis=1, kind="stable")[:, :B]
            parent, bit = best // 2, (best % 2).astype(np.int8)
            log_prob = np.take_along_axis(cand, best, axis=1)
            parents[k], bits[k] = parent, bit
            conds[k] = 1.0 / (1.0 + np.exp(-np.take_along_axis(logit, parent, axis=1)))
            on, n_on = on[rows, parent], n_on[rows, parent]  # follow the back-pointers
            if bit.any():  # switch label k on in the beams that took y_k = 1
                if n_on.max() + 1 > on.shape[2]:
                    on = np.concatenate([on, np.full((n, B, 1), n_labels, dtype=np.int32)], axis=2)
                d, s = np.nonzero(bit)
                on[d, s, n_on[d, s]] = k
                n_on += bit
        # Follow the back-pointers from the final beams to read off each beam's assignment.
        assign = np.zeros((n, B, n_labels), dtype=np.int8)
        cond = np.zeros((n, B, n_labels), dtype=np.float32)
        slot = np.broadcast_to(np.arange(B), (n, B))
        for k in range(n_labels - 1, -1, -1):
            assign[:, :, k] = np.take_along_axis(bits[k], slot, axis=1)
            cond[:, :, k] = np.take_along_axis(conds[k], slot, axis=1)
            slot = np.take_along_axis(parents[k], slot, axis=1)
        return assign, log_prob, cond

    def _decode(self, split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.beam_search(self.featurizer_(split), int(self.params["beam_width"]))

    def _to_task_order(self, chain_cols: np.ndarray) -> np.ndarray:
        out = np.empty_like(chain_cols)
        out[:, self.order_] = chain_cols
        return out

    def predict(self, split: Split) -> sp.csr_matrix:
        """The most probable label set the beam found (beam 0) for every document."""
        if len(split) == 0:
            return as_binary_csr(sp.csr_matrix((0, split.n_labels), dtype=np.int8), 0, split.n_labels)
        assign, _, _ = self._decode(split)
        return as_binary_csr(self._to_task_order(assign[:, 0, :]), len(split), split.n_labels)

    def predict_scores(self, split: Split) -> np.ndarray:
        """Label marginals ``p(y_j = 1 | x)`` estimated from the final beam.

        The ``B`` final assignments are weighted by their joint probabilities,
        normalised over the beam, ``w_s``; label ``j``'s score is
        ``sum_s w_s * p(y_j = 1 | x, prefix_s)``, the chain's conditional
        probability of ``j`` given the labels before it in beam ``s``. Like the
        beam's weighted label frequencies ``sum_s w_s * y_sj`` it is the exact
        marginal when the beam holds all 2^L sets, but it does not collapse to
        0/1 on a narrow beam: with ``beam_width=1`` the scores are the greedy
        chain's conditional probabilities, which still rank labels.
        """
        if len(split) == 0:
            return np.zeros((0, split.n_labels), dtype=np.float32)
        _, log_prob, cond = self._decode(split)
        w = np.exp(log_prob - log_prob[:, :1])  # beam 0 is the best, so its finite log-prob is the max
        w /= w.sum(axis=1, keepdims=True)
        marg = np.einsum("nb,nbl->nl", w, cond.astype(np.float64))
        return self._to_task_order(marg.astype(np.float32))

    # -------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        state = {
            "params": self.params,
            "featurizer": self.featurizer_,
            "order": self.order_,
            "W_text": self.W_text_,
            "W_label": self.W_label_,
            "bias": self.bias_,
        }
        with open(path, "wb") as f:
            pickle.dump(state, f)

    @classmethod
    def load(cls, path: Path) -> "ProbabilisticClassifierChain":
        # pickle: only load files this process or a trusted run wrote
        with open(path, "rb") as f:
            state = pickle.load(f)
        m = cls(**state["params"])
        m.featurizer_, m.order_ = state["featurizer"], state["order"]
        m.W_text_, m.W_label_, m.bias_ = state["W_text"], state["W_label"], state["bias"]
        return m
