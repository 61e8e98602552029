"""The method contract: checks every registered method must pass, one module-level function per check.

A check ``check_*(session) -> str`` returns "" when the method passes, a sentence saying what is wrong, or
raises :class:`Skip` (the reason) when it does not apply; :func:`checks_for` yields them in order for one
method, those about a part it does not offer (scores, save/load, a search space) turned into skips;
:func:`run_contract` runs them and ``mlbench check`` prints a PASS/FAIL/SKIP line each. They run on tiny
synthetic tasks (:class:`ContractTasks`, from :func:`mlbench.data.synthetic.contract_tasks`), as texts or as
features per what the method reads: shapes and types, columns in label order (overall and one by one),
determinism, empty documents, unseen labels, scores, save/load, and a search space of known parameters.
``contract_params`` (hyperparameters merged over a method's defaults) make a method small enough here.
"""

from __future__ import annotations

import random
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import scipy.sparse as sp

from mlbench.api import (FEATURES, TEXT, FitContext, Method, MlbenchError, Split, Task, prediction_problem,
                         scores_problem, validate_params)
from mlbench.metrics import micro_precision_recall_f1

SWAP_MARGIN = 0.05  # two exchanged columns must not fit the truth better than this (sum of their F1)
MAX_UNSEEN_SHARE = 0.05  # a label never seen in training: predicted on at most this share of test documents
MIN_SCORE_AGREEMENT = 0.6  # predicted labels outscore unpredicted ones on at least this share of pairs
MIN_MICRO_F1 = 0.5  # the easy task's labels own their words: a method that learns anything clears this


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when a method already imported it) torch: what "under a seed" means."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


@dataclass(frozen=True)
class ContractTasks:
    """The tasks the checks run on. ``main``: an easy task with a few empty documents and one label
    (``unseen_label``) only test documents carry; ``without_unseen``: the same without that label (tells a
    crash on it from any other); ``identity``: labels that own their words, so swapped columns show
    (:func:`column_swaps`). ``features``: the same three as 0/1 rows over the words in ``vocabulary``, for
    a method that reads features (``vocabulary`` is empty in the text version)."""

    main: Task
    without_unseen: Task
    identity: Task
    unseen_label: str
    vocabulary: tuple[str, ...] = ()
    features: "ContractTasks | None" = None

    def split(self, name: str, texts: list[str], seqs: list[list[int]]) -> Split:
        """A split of ``texts`` over the main task's labels, as texts or as 0/1 rows over ``vocabulary``."""
        if not self.vocabulary:
            return Split.build(name, [f"{name}{i}" for i in range(len(texts))], texts, seqs, self.main.labels)
        column = {w: j for j, w in enumerate(self.vocabulary)}
        X = sp.lil_matrix((len(texts), len(self.vocabulary)), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in text.split():
                if w in column:
                    X[i, column[w]] = 1.0
        return Split.build(name, [f"{name}{i}" for i in range(len(texts))], (), seqs, self.main.labels, X=X.tocsr())


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


def fit_under_seed(method_cls: type[Method], task: Task, seed: int, params: dict[str, Any]) -> Method:
    """A fresh method fitted on ``task`` after :func:`seed_everything`, without progress bars."""
    seed_everything(seed)
    method = method_cls(**params)
    with tempfile.TemporaryDirectory() as tmp:
        method.fit(task.train, task.valid, FitContext(seed=seed, checkpoint_dir=tmp, progress=False))
    return method


@dataclass
class Session:
    """One method under check and the fit its checks share: :meth:`fit` fits once on the main task (seed 0);
    a check that needs that fit and finds it failed is skipped ("fit failed"): a broken fit is one failure."""

    method_cls: type[Method]
    tasks: ContractTasks
    params: dict[str, Any] = field(default_factory=dict)
    _fit: tuple[Method, Any] | None = None
    _fit_error: BaseException | None = None

    @classmethod
    def start(cls, method_cls: type[Method], tasks: ContractTasks, params: dict[str, Any] | None = None) -> "Session":
        """A session on the tasks' kind the method reads (texts first), its ``contract_params`` under ``params``."""
        if TEXT not in method_cls.inputs and tasks.features is not None:
            tasks = tasks.features
        return cls(method_cls, tasks, {**method_cls.contract_params, **(params or {})})

    def fit(self) -> tuple[Method, Any]:
        """(model, test predictions) on the main task; raises what the fit raised."""
        if self._fit_error is not None:
            raise self._fit_error
        if self._fit is None:
            try:
                model = fit_under_seed(self.method_cls, self.tasks.main, 0, self.params)
                self._fit = (model, model.predict(self.tasks.main.test))
            except BaseException as exc:
                self._fit_error = exc
                raise
        return self._fit

    def fitted(self) -> tuple[Method, Any]:
        """:meth:`fit` for a check that depends on it: a failed fit makes the check a skip."""
        try:
            return self.fit()
        except Exception:
            raise Skip("fit failed") from None


def column_swaps(y_true: Any, y_pred: Any, margin: float = SWAP_MARGIN) -> list[tuple[int, int, float]]:
    """Pairs of columns ``(i, j, gain)`` whose predictions fit the truth better exchanged: for labels with a
    test positive, ``F1(pred_i, true_j) + F1(pred_j, true_i)`` exceeds ``F1(pred_i, true_i) + F1(pred_j, true_j)``
    by ``gain > margin``. On a task whose labels own their words, two swapped columns make such a pair."""
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
    """Share of (predicted, unpredicted) label pairs within a document where the predicted one scores higher;
    ties count one half; documents predicted with no label or every label have no pair; None without pairs."""
    p = sp.csr_matrix(pred).toarray().astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    pair = p[:, :, None] & ~p[:, None, :]  # (document, predicted label, unpredicted label)
    diff = (s[:, :, None] - s[:, None, :])[pair]
    return float((diff > 0).sum() + 0.5 * (diff == 0).sum()) / pair.sum() if pair.any() else None


def param_declaration_problem(method_cls: type[Method]) -> str:
    """What is wrong with a method's ``param_specs``: a default it leaves out, or a default or preset
    value outside it; "" when it covers everything. Raises :class:`Skip` for a method with no
    declaration (it still runs; its values are then checked only at fit time)."""
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


def check_declarations(s: Session) -> str:
    missing = [a for a in ("name", "description") if not getattr(s.method_cls, a, "")]
    if missing:
        return f"missing class attribute(s): {', '.join(missing)}"
    for preset in ("small", "paper"):
        if preset not in s.method_cls.presets:
            return f"no {preset!r} preset"
        s.method_cls(preset=preset, **s.params)  # presets must name known parameters
    return ""


def check_param_specs(s: Session) -> str:
    return param_declaration_problem(s.method_cls)


def check_fit_predict(s: Session) -> str:
    _, pred = s.fit()
    return prediction_problem(pred, len(s.tasks.main.test), s.tasks.main.n_labels)


def check_learns_in_label_order(s: Session) -> str:
    _, pred = s.fitted()
    task = s.tasks.main
    # only the labels seen in training count: the unseen one cannot be learnt
    seen = [j for j, lab in enumerate(task.labels) if lab != s.tasks.unseen_label]
    _, _, f1 = micro_precision_recall_f1(task.test.Y[:, seen], sp.csr_matrix(pred)[:, seen])
    if f1 < MIN_MICRO_F1:
        return f"test micro-F1 {f1:.3f} < {MIN_MICRO_F1} on an easy task: columns out of label order, or no learning"
    return ""


def check_column_identity(s: Session) -> str:
    s.fitted()
    itask = s.tasks.identity
    pred = fit_under_seed(s.method_cls, itask, 0, s.params).predict(itask.test)
    swaps = column_swaps(itask.test.Y, pred)
    if swaps:
        i, j, gain = swaps[0]
        return (f"columns {i} ({itask.labels[i]}) and {j} ({itask.labels[j]}) fit the truth better exchanged "
                f"(F1 sum +{gain:.2f}) on a task whose labels own their words: the predictions are not in "
                "the task's label order")
    return ""


def check_deterministic(s: Session) -> str:
    _, pred = s.fitted()
    task = s.tasks.main
    again = fit_under_seed(s.method_cls, task, 0, s.params).predict(task.test)
    diff = (sp.csr_matrix(again) != sp.csr_matrix(pred)).nnz
    reason = getattr(s.method_cls, "nondeterministic", "")
    if reason:
        cells = len(task.test) * task.n_labels
        raise Skip(f"declared not reproducible ({reason}); two fits disagreed on {diff} of {cells} test cells")
    return f"two fits with seed 0 disagree on {diff} test cells" if diff else ""


def check_empty_documents(s: Session) -> str:
    model, _ = s.fitted()
    task = s.tasks.main
    empty_rows = task.train.X.getnnz(axis=1) == 0 if task.train.X is not None else [not t.strip() for t in task.train.texts]
    if not any(empty_rows):
        return "contract task has no empty training document"
    empty = s.tasks.split("empty", ["", "   ", ""], [[0], [1], []])
    return prediction_problem(model.predict(empty), 3, task.n_labels)


def check_unseen_label(s: Session) -> str:
    task = s.tasks.main
    j = task.labels.index(s.tasks.unseen_label)
    if task.train.Y[:, j].nnz:
        return "contract task error: unseen label present in train"
    try:
        model, pred = s.fit()
    except Exception:
        try:  # does the fit fail because of the unseen label, or anyway?
            fit_under_seed(s.method_cls, s.tasks.without_unseen, 0, s.params)
        except Exception:
            raise Skip("fit failed with or without the unseen label") from None
        return "fit fails on a task with a label no training document carries, and succeeds without it"
    share = sp.csr_matrix(pred)[:, j].nnz / len(task.test)
    if share > MAX_UNSEEN_SHARE:
        return (f"predicts the label never seen in training on {share:.0%} of test documents "
                f"(at most {MAX_UNSEEN_SHARE:.0%} allowed): a column mislabelled or shifted")
    only_unseen = s.tasks.split("unseen", ["w1 w2 w3", "w4 w5"], [[j], [j]])
    return prediction_problem(model.predict(only_unseen), 2, task.n_labels)


def check_feature_task(s: Session) -> str:
    s.fitted()
    if s.tasks.features is None:
        raise Skip("no feature version of the contract's tasks was given")
    task = s.tasks.features.main
    pred = fit_under_seed(s.method_cls, task, 0, s.params).predict(task.test)
    problem = prediction_problem(pred, len(task.test), task.n_labels)
    seen = [j for j, lab in enumerate(task.labels) if lab != s.tasks.unseen_label]
    f1 = 0.0 if problem else micro_precision_recall_f1(task.test.Y[:, seen], sp.csr_matrix(pred)[:, seen])[2]
    return problem or (f"test micro-F1 {f1:.3f} < {MIN_MICRO_F1} on the easy task as 0/1 features" if f1 < MIN_MICRO_F1 else "")


def check_scores(s: Session) -> str:
    model, _ = s.fitted()
    return scores_problem(model.predict_scores(s.tasks.main.test), len(s.tasks.main.test), s.tasks.main.n_labels)


def check_scores_agree(s: Session) -> str:
    model, pred = s.fitted()
    agreement = score_agreement(pred, np.asarray(model.predict_scores(s.tasks.main.test)))
    if agreement is None:
        raise Skip("every test document predicted with no label or all labels: no pair to compare")
    if agreement < MIN_SCORE_AGREEMENT:
        return (f"predicted labels outscore unpredicted ones in only {agreement:.0%} of pairs "
                f"(at least {MIN_SCORE_AGREEMENT:.0%} expected): predict_scores columns disagree with predict")
    return ""


def check_save_load(s: Session) -> str:
    model, pred = s.fitted()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        model.save(path)
        again = s.method_cls.load(path).predict(s.tasks.main.test)
    diff = (sp.csr_matrix(again) != sp.csr_matrix(pred)).nnz
    return f"reloaded model disagrees on {diff} test cells" if diff else ""


def check_search_space(s: Session) -> str:
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):  # a few draws reach most categorical branches
            trial = study.ask()
            drawn = s.method_cls.search_space(trial)
            if not isinstance(drawn, dict):
                return f"search_space returned {type(drawn).__name__}, expected a dict of parameters"
            s.method_cls(preset="small", **{**s.params, **drawn})  # unknown names raise here
            study.tell(trial, 0.0)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return ""


#: Every check in the order ``mlbench check`` prints them, with the line it prints.
CHECKS: tuple[tuple[str, Callable[[Session], str]], ...] = (
    ("declares name, description and presets", check_declarations),
    ("param_specs cover every default and preset value", check_param_specs),
    ("fit/predict returns a sparse 0/1 matrix of the right shape", check_fit_predict),
    (f"learns the easy task in label order (micro-F1 >= {MIN_MICRO_F1})", check_learns_in_label_order),
    ("each column predicts its own label (no two columns fit better exchanged)", check_column_identity),
    ("deterministic under a seed", check_deterministic),
    ("handles empty documents", check_empty_documents),
    ("handles a label never seen in training", check_unseen_label),
    ("learns the easy task as a feature task too (if it reads both)", check_feature_task),
    ("predict_scores shape and finiteness (if offered)", check_scores),
    ("predict_scores ranks predicted labels above the others (if offered)", check_scores_agree),
    ("save/load round trip (if offered)", check_save_load),
    ("search space draws known parameters (if offered)", check_search_space),
)


def _not_offered(reason: str, _: Session) -> str:
    raise Skip(reason)


def checks_for(method_cls: type[Method], params: dict[str, Any] | None = None) -> Iterator[tuple[str, Callable[[Session], str]]]:
    """``(name, check)`` for every check, in order; one about a part ``method_cls`` does not offer comes as a
    skip with the reason, and every check is a skip when the method cannot run here (``Method.unavailable``)."""
    missing = method_cls.unavailable({**method_cls.contract_params, **(params or {})})
    offers_scores = method_cls.predict_scores is not Method.predict_scores
    not_offered = {
        check_scores: "" if offers_scores else "no predict_scores (ranking metrics P@k and nDCG@k are left out)",
        check_scores_agree: "" if offers_scores else "no predict_scores",
        check_save_load: "" if method_cls.save is not Method.save else "no save/load",
        check_search_space: ("" if method_cls.search_space.__func__ is not Method.search_space.__func__
                             else "no search space: --trials has nothing to tune"),
        check_feature_task: "" if {TEXT, FEATURES} <= method_cls.inputs else "reads one kind of input, checked above",
    }
    for name, check in CHECKS:
        reason = missing or not_offered.get(check, "")
        yield name, (partial(_not_offered, reason) if reason else check)


def run_check(name: str, check: Callable[[Session], str], session: Session) -> CheckResult:
    """One check's result; a check that raises fails with the exception as its detail."""
    try:
        problem = check(session)
        return CheckResult(name, not problem, problem or "")
    except Skip as reason:
        return CheckResult(name, True, str(reason), skipped=True)
    except Exception as exc:  # report, never crash the whole check run
        if isinstance(exc, MlbenchError):  # a message meant for the user says enough
            return CheckResult(name, False, str(exc))
        tb = traceback.format_exc(limit=3).strip().splitlines()
        return CheckResult(name, False, f"{type(exc).__name__}: {exc} ({tb[-3].strip() if len(tb) >= 3 else ''})")


def run_contract(
    method_cls: type[Method], tasks: ContractTasks, params: dict[str, Any] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run every check of :func:`checks_for` on one method, in order; ``on_result`` sees each result as it comes."""
    session = Session.start(method_cls, tasks, params)
    results = []
    for name, check in checks_for(method_cls, params):
        results.append(run_check(name, check, session))
        if on_result is not None:
            on_result(results[-1])
    return results
