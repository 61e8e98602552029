"""The method contract: checks every registered method must pass.

Runs a method on a tiny synthetic task (seconds) and checks what the harness
relies on: prediction shapes and types, columns in the task's label order,
determinism under a seed, empty documents, labels never seen in training,
scores, save/load when offered, and a search space that names known
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
            method_cls(preset=preset)  # presets must name known parameters
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
        if "pred" not in state:
            raise Skip("fit failed")
        j = task.labels.index(UNSEEN_LABEL)
        if task.train.Y[:, j].nnz:
            return "contract task error: unseen label present in train"
        return ""  # fitting and predicting with the column present already passed

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
                method_cls(preset="small", **drawn)  # unknown names raise here
                study.tell(trial, 0.0)
        finally:
            optuna.logging.set_verbosity(verbosity)
        return ""

    check("declares name, description and presets", declares)
    check("fit/predict returns a sparse 0/1 matrix of the right shape", fits_and_predicts)
    check(f"learns the easy task in label order (micro-F1 >= {MIN_MICRO_F1})", learns_in_label_order)
    check("deterministic under a seed", deterministic)
    check("handles empty documents", empty_documents)
    check("handles a label never seen in training", unseen_label)
    check("predict_scores shape and finiteness (if offered)", scores)
    check("save/load round trip (if offered)", save_load)
    check("search space draws known parameters (if offered)", search_space)
    return results
