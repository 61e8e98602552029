"""The method contract: checks every registered method must pass.

Runs a method on a tiny synthetic task (seconds) and checks what the harness
relies on: prediction shapes and types, columns in the task's label order
(overall, and column by column: no two columns fit the truth better
exchanged), determinism under a seed, empty documents, labels never seen in
training (no crash, hardly ever predicted), scores (finite, and ranking the
predicted labels above the others), save/load when offered, and a search space that names known
parameters. ``tests/test_contract.py`` runs it over every registered method and
``mlbench check <method>`` runs it for plugin authors.

A check passes, fails, or is skipped with a reason (a part the method does not
offer, or determinism for a method that declares ``nondeterministic``).

A method may declare ``contract_params`` (a dict of hyperparameters) to make
itself small enough for these checks; it is merged over its defaults.
"""

from __future__ import annotations

import tempfile
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from mlbench.api import FitContext, Method, MlbenchError, Split, Task
from mlbench.data.build import Document, build_task
from mlbench.metrics import micro_precision_recall_f1

UNSEEN_LABEL = "zz-never-in-train"
#: Swapping two prediction columns must not fit the truth better than this (sum of the two labels' F1).
SWAP_MARGIN = 0.05
#: A label never seen in training may be predicted on at most this share of test documents.
MAX_UNSEEN_SHARE = 0.05
#: Within a document, predicted labels must outscore unpredicted ones on at least this share of pairs.
MIN_SCORE_AGREEMENT = 0.6
#: The tiny task is easy (each label owns words): a method that learns anything,
#: with its columns in the task's order, clears this test micro-F1.
MIN_MICRO_F1 = 0.5


@dataclass
class CheckResult:
    name: str
    passed: bool  # a skipped check counts as passed
    detail: str = ""
    skipped: bool = False

    @property
    def status(self) -> str:
        return "SKIP" if self.skipped else "PASS" if self.passed else "FAIL"


class Skip(Exception):
    """Raised by a check that does not apply; its message is the reason."""


@lru_cache(maxsize=1)
def contract_task() -> Task:
    """300 synthetic documents, 8 labels, a few empty documents, and one label
    that appears only in test (so no training document carries it)."""
    from mlbench.data.synthetic import generate

    docs = generate(300, n_labels=8, vocab_size=300, doc_len=30, seed=7, empty_fraction=0.02)
    train, valid, test = docs[:210], docs[210:240], docs[240:]
    # the unseen label rides on a few test documents only
    test = [
        Document(d.id, d.text, d.labels + ((UNSEEN_LABEL,) if i % 10 == 0 else ())) for i, d in enumerate(test)
    ]
    labels = {lab for d in docs for lab in d.labels} | {UNSEEN_LABEL}
    return build_task("contract", "synthetic", train, valid, test, label_set=labels)


@lru_cache(maxsize=1)
def contract_task_without_unseen() -> Task:
    """:func:`contract_task` with the unseen label removed: tells a crash on that label from any other."""
    from mlbench.data.synthetic import generate

    docs = generate(300, n_labels=8, vocab_size=300, doc_len=30, seed=7, empty_fraction=0.02)
    labels = {lab for d in docs for lab in d.labels}
    return build_task("contract-seen", "synthetic", docs[:210], docs[210:240], docs[240:], label_set=labels)


#: Labels of :func:`identity_task`; each owns IDENTITY_WORDS word types no other label uses.
IDENTITY_LABELS = 6
IDENTITY_WORDS = 8


@lru_cache(maxsize=1)
def identity_task() -> Task:
    """Documents whose labels each own their words, every label common enough to learn.

    Label ``j`` (``L0`` .. ``L5``, decreasing frequency so the task's order is
    fixed) owns the words ``l{j}w0`` .. ``l{j}w7``; a document carries one or two
    labels, draws most of its words from theirs and the rest from a shared
    background. Any method that learns the labels puts each one in its own
    column, so a swap of two columns shows up (:func:`column_swaps`).
    """
    rng = np.random.default_rng(13)
    weights = np.linspace(2.0, 1.0, IDENTITY_LABELS)
    weights /= weights.sum()
    docs = []
    for i in range(360):
        n = 1 + int(rng.random() < 0.3)
        labels = sorted(set(rng.choice(IDENTITY_LABELS, size=n, replace=False, p=weights).tolist()))
        words = [f"l{rng.choice(labels)}w{rng.integers(IDENTITY_WORDS)}" for _ in range(10)]
        words += [f"bg{rng.integers(40)}" for _ in range(6)]
        rng.shuffle(words)
        docs.append(Document(f"id{i}", " ".join(words), tuple(f"L{j}" for j in labels)))
    return build_task("contract-identity", "synthetic", docs[:240], docs[240:280], docs[280:])


def column_swaps(y_true: Any, y_pred: Any, margin: float = SWAP_MARGIN) -> list[tuple[int, int, float]]:
    """Pairs of columns ``(i, j, gain)`` whose predictions fit the truth better exchanged.

    For labels with a test positive, ``F1(pred_i, true_j) + F1(pred_j, true_i)``
    exceeds ``F1(pred_i, true_i) + F1(pred_j, true_j)`` by ``gain > margin``. A
    method whose columns follow the task's labels has no such pair on a task
    whose labels own their words; two swapped columns make one.
    """
    t = sp.csr_matrix(y_true, dtype=np.float64)
    p = sp.csr_matrix(y_pred, dtype=np.float64)
    tp = (p.T @ t).toarray()  # tp[i, j]: documents predicted i that truly carry j
    pred_n = np.asarray(p.sum(axis=0)).ravel()
    true_n = np.asarray(t.sum(axis=0)).ravel()
    den = pred_n[:, None] + true_n[None, :]
    f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)  # f1[i, j]: column i against label j
    own = np.diag(f1)
    cols = np.flatnonzero(true_n > 0)
    out = []
    for a, i in enumerate(cols):
        for j in cols[a + 1:]:
            gain = f1[i, j] + f1[j, i] - own[i] - own[j]
            if gain > margin:
                out.append((int(i), int(j), float(gain)))
    return sorted(out, key=lambda x: -x[2])


def score_agreement(pred: Any, scores: np.ndarray) -> float | None:
    """Share of (predicted, unpredicted) label pairs within a document where the predicted one scores higher.

    Ties count one half; documents predicted with no label or every label have no pair. None without pairs.
    """
    p = sp.csr_matrix(pred).toarray().astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    wins = pairs = 0.0
    for row_p, row_s in zip(p, s):
        on, off = row_s[row_p], row_s[~row_p]
        if on.size == 0 or off.size == 0:
            continue
        diff = on[:, None] - off[None, :]
        wins += float((diff > 0).sum() + 0.5 * (diff == 0).sum())
        pairs += diff.size
    return wins / pairs if pairs else None


def _fit(method_cls: type[Method], task: Task, seed: int, params: dict[str, Any]) -> Method:
    from mlbench.runner import seed_everything

    seed_everything(seed)
    method = method_cls(**params)
    with tempfile.TemporaryDirectory() as tmp:
        method.fit(task.train, task.valid, FitContext(seed=seed, checkpoint_dir=tmp, progress=False))
    return method


def _is_binary_csr(m: Any, shape: tuple[int, int]) -> str:
    if not sp.issparse(m):
        return f"predict returned {type(m).__name__}, expected a scipy sparse matrix"
    if m.shape != shape:
        return f"predict returned shape {m.shape}, expected {shape}"
    data = m.tocsr().data
    if data.size and not np.isin(data, (0, 1)).all():
        return "predict returned values other than 0 and 1"
    return ""


def param_declaration_problem(method_cls: type[Method]) -> str:
    """What is wrong with a method's ``param_specs``: a default it leaves out, or a default or preset
    value outside it; "" when it covers everything. Raises :class:`Skip` for a method with no
    declaration (it still runs; its values are then checked only at fit time)."""
    from mlbench.api import validate_params

    specs = getattr(method_cls, "param_specs", {}) or {}
    if not specs:
        raise Skip("no param_specs: --param values are checked only when the method is fitted")
    missing = sorted(set(method_cls.defaults) - set(specs))
    if missing:
        return f"param_specs does not declare {', '.join(missing)}"
    for preset in sorted(method_cls.presets):
        try:
            validate_params(method_cls, preset, {})
        except MlbenchError as exc:
            return str(exc)
    return ""


def run_contract(
    method_cls: type[Method], params: dict[str, Any] | None = None, on_result: Callable[[CheckResult], None] | None = None
) -> list[CheckResult]:
    """Run every check; a check that raises fails with the exception as its detail."""
    task = contract_task()
    params = {**getattr(method_cls, "contract_params", {}), **(params or {})}
    results: list[CheckResult] = []
    state: dict[str, Any] = {}
    missing = method_cls.unavailable(params)

    def check(name: str, fn: Callable[[], str]) -> None:
        try:
            if missing:
                raise Skip(missing)
            problem = fn()
            res = CheckResult(name, not problem, problem or "")
        except Skip as reason:
            res = CheckResult(name, True, str(reason), skipped=True)
        except Exception as exc:  # report, never crash the whole check run
            if isinstance(exc, MlbenchError):  # a message meant for the user says enough
                res = CheckResult(name, False, str(exc))
            else:
                tb = traceback.format_exc(limit=3).strip().splitlines()
                res = CheckResult(name, False, f"{type(exc).__name__}: {exc} ({tb[-3].strip() if len(tb) >= 3 else ''})")
        results.append(res)
        if on_result is not None:
            on_result(res)

    def declares() -> str:
        missing = [a for a in ("name", "description") if not getattr(method_cls, a, "")]
        if missing:
            return f"missing class attribute(s): {', '.join(missing)}"
        for preset in ("small", "paper"):
            if preset not in method_cls.presets:
                return f"no {preset!r} preset"
            method_cls(preset=preset, **params)  # presets must name known parameters
        return ""

    def fits_and_predicts() -> str:
        state["model"] = model = _fit(method_cls, task, 0, params)
        state["pred"] = pred = model.predict(task.test)
        return _is_binary_csr(pred, (len(task.test), task.n_labels))

    def learns_in_label_order() -> str:
        if "pred" not in state:
            raise Skip("fit failed")
        # only the labels seen in training count: the unseen one cannot be learnt
        seen = [j for j, lab in enumerate(task.labels) if lab != UNSEEN_LABEL]
        _, _, f1 = micro_precision_recall_f1(task.test.Y[:, seen], sp.csr_matrix(state["pred"])[:, seen])
        if f1 < MIN_MICRO_F1:
            return f"test micro-F1 {f1:.3f} < {MIN_MICRO_F1} on an easy task: columns out of label order, or no learning"
        return ""

    def column_identity() -> str:
        if "pred" not in state:
            raise Skip("fit failed")
        itask = identity_task()
        pred = _fit(method_cls, itask, 0, params).predict(itask.test)
        swaps = column_swaps(itask.test.Y, pred)
        if swaps:
            i, j, gain = swaps[0]
            return (f"columns {i} ({itask.labels[i]}) and {j} ({itask.labels[j]}) fit the truth better exchanged "
                    f"(F1 sum +{gain:.2f}) on a task whose labels own their words: the predictions are not in "
                    "the task's label order")
        return ""

    def deterministic() -> str:
        if "pred" not in state:
            raise Skip("fit failed")
        again = _fit(method_cls, task, 0, params).predict(task.test)
        diff = (sp.csr_matrix(again) != sp.csr_matrix(state["pred"])).nnz
        reason = getattr(method_cls, "nondeterministic", "")
        if reason:
            cells = len(task.test) * task.n_labels
            raise Skip(f"declared not reproducible ({reason}); two fits disagreed on {diff} of {cells} test cells")
        return f"two fits with seed 0 disagree on {diff} test cells" if diff else ""

    def empty_documents() -> str:
        if "model" not in state:
            raise Skip("fit failed")
        n_empty = sum(1 for t in task.train.texts if not t.strip())
        if n_empty == 0:
            return "contract task has no empty training document"
        empty = Split.build("empty", ["e1", "e2", "e3"], ["", "   ", ""], [[0], [1], []], task.labels)
        return _is_binary_csr(state["model"].predict(empty), (3, task.n_labels))

    def unseen_label() -> str:
        j = task.labels.index(UNSEEN_LABEL)
        if task.train.Y[:, j].nnz:
            return "contract task error: unseen label present in train"
        if "pred" not in state:
            try:  # does the fit fail because of the unseen label, or anyway?
                _fit(method_cls, contract_task_without_unseen(), 0, params)
            except Exception:
                raise Skip("fit failed with or without the unseen label")
            return "fit fails on a task with a label no training document carries, and succeeds without it"
        share = sp.csr_matrix(state["pred"])[:, j].nnz / len(task.test)
        if share > MAX_UNSEEN_SHARE:
            return (f"predicts the label never seen in training on {share:.0%} of test documents "
                    f"(at most {MAX_UNSEEN_SHARE:.0%} allowed): a column mislabelled or shifted")
        only_unseen = Split.build("unseen", ["u1", "u2"], ["w1 w2 w3", "w4 w5"], [[j], [j]], task.labels)
        return _is_binary_csr(state["model"].predict(only_unseen), (2, task.n_labels))

    def scores() -> str:
        model = state.get("model")
        if model is None:
            raise Skip("fit failed")
        if not model.supports_scores:
            raise Skip("no predict_scores (ranking metrics P@k and nDCG@k are left out)")
        s = np.asarray(model.predict_scores(task.test))
        if s.shape != (len(task.test), task.n_labels):
            return f"predict_scores returned shape {s.shape}"
        if not np.isfinite(s).all():
            return "predict_scores returned non-finite values"
        return ""

    def scores_agree() -> str:
        model = state.get("model")
        if model is None:
            raise Skip("fit failed")
        if not model.supports_scores:
            raise Skip("no predict_scores")
        agreement = score_agreement(state["pred"], np.asarray(model.predict_scores(task.test)))
        if agreement is None:
            raise Skip("every test document predicted with no label or all labels: no pair to compare")
        if agreement < MIN_SCORE_AGREEMENT:
            return (f"predicted labels outscore unpredicted ones in only {agreement:.0%} of pairs "
                    f"(at least {MIN_SCORE_AGREEMENT:.0%} expected): predict_scores columns disagree with predict")
        return ""

    def save_load() -> str:
        model = state.get("model")
        if model is None:
            raise Skip("fit failed")
        if not model.supports_save:
            raise Skip("no save/load")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model"
            model.save(path)
            again = method_cls.load(path).predict(task.test)
        diff = (sp.csr_matrix(again) != sp.csr_matrix(state["pred"])).nnz
        return f"reloaded model disagrees on {diff} test cells" if diff else ""

    def search_space() -> str:
        import optuna

        if method_cls.search_space.__func__ is Method.search_space.__func__:
            raise Skip("no search space: --trials has nothing to tune")
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
            for _ in range(5):  # a few draws reach most categorical branches
                trial = study.ask()
                drawn = method_cls.search_space(trial)
                if not isinstance(drawn, dict):
                    return f"search_space returned {type(drawn).__name__}, expected a dict of parameters"
                method_cls(preset="small", **{**params, **drawn})  # unknown names raise here
                study.tell(trial, 0.0)
        finally:
            optuna.logging.set_verbosity(verbosity)
        return ""

    check("declares name, description and presets", declares)
    check("param_specs cover every default and preset value", lambda: param_declaration_problem(method_cls))
    check("fit/predict returns a sparse 0/1 matrix of the right shape", fits_and_predicts)
    check(f"learns the easy task in label order (micro-F1 >= {MIN_MICRO_F1})", learns_in_label_order)
    check("each column predicts its own label (no two columns fit better exchanged)", column_identity)
    check("deterministic under a seed", deterministic)
    check("handles empty documents", empty_documents)
    check("handles a label never seen in training", unseen_label)
    check("predict_scores shape and finiteness (if offered)", scores)
    check("predict_scores ranks predicted labels above the others (if offered)", scores_agree)
    check("save/load round trip (if offered)", save_load)
    check("search space draws known parameters (if offered)", search_space)
    return results
