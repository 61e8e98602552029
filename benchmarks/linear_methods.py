"""Linear multi-label learners side by side on one task: mlbench BR and PCC, LibMultiLabel's 1vsrest, scikit-learn's
OneVsRest logistic regression; wall and CPU time of fit (TF-IDF + training) and predict, and test scores.

    MLBENCH_DATA=/work/.mlbench-data nice -n 0 python benchmarks/linear_methods.py --repeats 3 \\
        --out reports/performance/linear_methods.md

Every configuration is fitted from scratch in every repeat (mlbench's feature and
model caches are emptied and its disk cache is off) on the task's train split and
predicts its test split. The configurations take turns within each repeat, so
that load from other jobs on a shared machine falls on all of them alike; the
table shows medians over the repeats. Wall time is ``time.perf_counter``, CPU
time ``time.process_time`` (all threads of this process); ``uptime``'s load
averages are recorded before and after each repeat.

- ``mlbench BR`` / ``mlbench PCC b=<k>``: the methods with their defaults; fit
  includes the TF-IDF fit on train and the one validation prediction a run makes.
- ``LibMultiLabel 1vsrest``: ``libmultilabel.linear.train_1vsrest`` with its
  defaults (LIBLINEAR ``-s 1``, L2-loss SVM dual, C = 1, threads over labels) on
  ``TfidfVectorizer()`` with scikit-learn's defaults, as its ``Preprocessor`` does
  for raw text; predictions are decision values > 0.
- ``LibMultiLabel 1vsrest -s 0 -c 300``: the same with BR's learner and C: L2-regularised logistic
  regression (LIBLINEAR's primal solver at its default tolerance, 0.01), C = 300.
- ``sklearn OvR LR``: ``OneVsRestClassifier(LogisticRegression(solver="liblinear",
  C=300, tol=<BR's tolerance>, max_iter=1000), n_jobs=<cores>)`` (joblib's threading backend) on BR's TF-IDF:
  BR's model through scikit-learn (what BR ran before it used LIBLINEAR directly).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

os.environ["MLBENCH_FEATURE_CACHE"] = "off"  # fits from scratch: no features from an earlier run
os.environ.setdefault("MLBENCH_NO_PROGRESS", "1")

from metrics_speed import machine  # same folder: the machine description the other benchmarks print
from tables import command_line, markdown_rows, print_rows, write_text

from mlbench.api import FitContext, Task, as_binary_csr
from mlbench.methods import features, linear
from mlbench.methods.br import BinaryRelevance
from mlbench.methods.pcc import ProbabilisticClassifierChain
from mlbench.metrics import evaluate
from mlbench.data.tasks import get_task

#: LibMultiLabel's options for BR's own learner and C (L2-regularised logistic regression, primal solver)
LML_LR_OPTIONS = f"-s 0 -c {float(BinaryRelevance.defaults['C']):g}"
LML_LR = f"LibMultiLabel 1vsrest {LML_LR_OPTIONS}"

COLUMNS = (
    ("repeats", "repeats"),
    ("fit_s", "fit wall s"),
    ("fit_cpu_s", "fit CPU s"),
    ("predict_s", "predict wall s"),
    ("predict_cpu_s", "predict CPU s"),
    ("fit_vs_lml", "fit wall / LibMultiLabel default's"),
    ("hamming_loss", "HL"),
    ("subset_01_loss", "0/1 loss"),
    ("micro_f1", "micro-F1"),
    ("macro_f1", "macro-F1"),
)

#: A learner: fit(task) -> predict(split texts) -> csr prediction.
Learner = Callable[[Task], Callable[[Any], Any]]


def mlbench_learner(make: Callable[[], Any]) -> Learner:
    def fit(task: Task):
        features.clear_memory_cache()
        linear.clear_model_cache()
        model = make().fit(task.train, task.valid, FitContext(seed=0, progress=False))
        return model.predict

    return fit


def libmultilabel_learner(task: Task, options: str = ""):
    import libmultilabel.linear as lml
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer()
    X = vectorizer.fit_transform(task.train.texts)
    model = lml.train_1vsrest(task.train.Y.tocsr().astype(float), X, options=options, verbose=False)

    def predict(split):
        values = lml.predict_values(model, vectorizer.transform(split.texts))
        return as_binary_csr(values > 0, len(split), split.n_labels)

    return predict


def sklearn_learner(task: Task):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    feats = features.make_vectorizer(BinaryRelevance.defaults)
    # float64 with sorted, summed indices up front: each thread's input check then reads X and never
    # converts or sorts the shared matrix in place (one run died in that check with a corrupted heap)
    X = sp.csr_matrix(feats.fit_transform(task.train.texts), dtype=np.float64)
    X.sum_duplicates()
    X.sort_indices()
    from joblib import parallel_config

    clf = OneVsRestClassifier(LogisticRegression(C=300.0, solver="liblinear", tol=linear.SOLVER_TOL, max_iter=1000),
                              n_jobs=linear.solver_threads())
    with parallel_config(backend="threading"):  # threads, so that process_time counts the work
        clf.fit(X, task.train.Y.toarray())

    def predict(split):
        return as_binary_csr(clf.predict(feats.transform(split.texts)), len(split), split.n_labels)

    return predict


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(configs: dict[str, Learner], task: Task, repeats: int,
            max_repeats: dict[str, int | None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Times and test scores of every configuration, in turns; ``max_repeats`` caps a slow one's repeats."""
    times: dict[str, dict[str, list[float]]] = {c: {"fit_s": [], "fit_cpu_s": [], "predict_s": [], "predict_cpu_s": []}
                                                for c in configs}
    scores: dict[str, dict[str, float]] = {}
    loads: list[str] = []
    for r in range(repeats):
        loads.append(f"before repeat {r + 1}: {uptime()}")
        for label, learner in configs.items():
            cap = (max_repeats or {}).get(label)
            if cap is not None and r >= cap:
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            predict = learner(task)
            t1, c1 = time.perf_counter(), time.process_time()
            pred = predict(task.test)
            t2, c2 = time.perf_counter(), time.process_time()
            for key, value in (("fit_s", t1 - t0), ("fit_cpu_s", c1 - c0), ("predict_s", t2 - t1), ("predict_cpu_s", c2 - c1)):
                times[label][key].append(value)
            scores[label] = evaluate(task.test.Y, pred)
            print(f"  repeat {r + 1}/{repeats} {label}: fit {t1 - t0:.2f} s ({c1 - c0:.2f} CPU s), "
                  f"predict {t2 - t1:.2f} s, micro-F1 {scores[label]['micro_f1']:.4f}", file=sys.stderr, flush=True)
    loads.append(f"at the end: {uptime()}")
    rows = []
    for label in configs:
        row: dict[str, Any] = {"method": label, "repeats": len(times[label]["fit_s"]),
                               **{k: statistics.median(v) for k, v in times[label].items()}}
        row.update({k: scores[label][k] for k in ("hamming_loss", "subset_01_loss", "micro_f1", "macro_f1")})
        rows.append(row)
    lml = next((r for r in rows if r["method"].startswith("LibMultiLabel")), None)
    for row in rows:
        row["fit_vs_lml"] = row["fit_s"] / lml["fit_s"] if lml else float("nan")
    return rows, {"times": times, "loads": loads}


#: scikit-learn's default ``tol``, the tolerance BR ran before benchmarks/solver_tolerance.py chose LIBLINEAR's own.
REFERENCE_TOL = 1e-4

#: The parts of BR's fit timed by :func:`br_breakdown`, and LibMultiLabel's two steps beside them.
BREAKDOWN = (
    ("features", "BR: TF-IDF fit on train (`split_features`)"),
    ("rows", "BR: LIBLINEAR rows (`LiblinearRows`)"),
    ("solve", f"BR: the label solves, tolerance {linear.SOLVER_TOL:g} (mlbench's)"),
    ("valid", "BR: validation prediction"),
    ("solve_ref", f"BR: the label solves at tolerance {REFERENCE_TOL:g} (scikit-learn's default; not what BR runs)"),
    ("lml_tfidf", "LibMultiLabel: TF-IDF fit on train"),
    ("lml_train", "LibMultiLabel: `train_1vsrest -s 0 -c 300`"),
)


def br_breakdown(task: Task, repeats: int) -> dict[str, Any]:
    """Medians of the parts of BR's fit (as ``BinaryRelevance.fit`` runs them, every cache emptied first), the
    same solves at scikit-learn's default tolerance, and LibMultiLabel's TF-IDF and training with BR's learner
    and C; test micro-F1 at both tolerances."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    times: dict[str, list[float]] = {key: [] for key, _ in BREAKDOWN}
    scores: dict[str, float] = {}
    C = float(BinaryRelevance.defaults["C"])
    test_X = None
    for _ in range(repeats):
        features.clear_memory_cache()
        linear.clear_model_cache()
        t0 = time.perf_counter()
        feats = features.split_features(task.train, BinaryRelevance.defaults)
        t1 = time.perf_counter()
        linear.LiblinearRows(feats.X)
        t2 = time.perf_counter()
        W, b = linear.fit_binary_relevance(feats.X, task.train.Y, C)  # builds its rows again: subtracted below
        t3 = time.perf_counter()
        np.asarray(feats.featurizer(task.valid) @ W)
        t4 = time.perf_counter()
        saved = linear.SOLVER_TOL
        linear.SOLVER_TOL = REFERENCE_TOL
        try:
            W_ref, b_ref = linear.fit_binary_relevance(feats.X, task.train.Y, C)
        finally:
            linear.SOLVER_TOL = saved
        t5 = time.perf_counter()
        rows_s = t2 - t1
        for key, value in (("features", t1 - t0), ("rows", rows_s), ("solve", t3 - t2 - rows_s), ("valid", t4 - t3),
                           ("solve_ref", t5 - t4 - rows_s)):
            times[key].append(value)
        test_X = feats.featurizer(task.test)
        for key, (w, bias) in (("solve", (W, b)), ("solve_ref", (W_ref, b_ref))):
            pred = as_binary_csr(np.asarray(test_X @ w) + bias >= 0, len(task.test), task.n_labels)
            scores[key] = evaluate(task.test.Y, pred)["micro_f1"]
        try:
            import libmultilabel.linear as lml
        except ImportError:
            continue
        t6 = time.perf_counter()
        X = TfidfVectorizer().fit_transform(task.train.texts)
        t7 = time.perf_counter()
        lml.train_1vsrest(task.train.Y.tocsr().astype(float), X, options=LML_LR_OPTIONS, verbose=False)
        t8 = time.perf_counter()
        times["lml_tfidf"].append(t7 - t6)
        times["lml_train"].append(t8 - t7)
    return {"medians": {k: statistics.median(v) for k, v in times.items() if v}, "times": times, "scores": scores,
            "tolerance": linear.SOLVER_TOL, "reference_tolerance": REFERENCE_TOL}


def breakdown_markdown(result: dict[str, Any]) -> list[str]:
    med, scores = result["medians"], result["scores"]
    lines = ["## Where BR's fit goes", "",
             f"The parts of one BR fit on this task, each timed alone (medians of {len(result['times']['features'])} "
             "repeats, caches emptied), beside LibMultiLabel's two steps with BR's learner and C. The solves at "
             "scikit-learn's default tolerance are not what BR runs: they show what the looser tolerance saves "
             "(chosen on validation: reports/performance/solver_tolerance.md).", "",
             "| part | wall s |", "|---|---:|"]
    lines += [f"| {label} | {med[key]:.2f} |" for key, label in BREAKDOWN if key in med]
    if "solve" in scores:
        lines += ["", f"Test micro-F1 of BR's weights: {scores['solve']:.4f} at tolerance {linear.SOLVER_TOL:g}, "
                      f"{scores['solve_ref']:.4f} at {REFERENCE_TOL:g} (threshold 0.5)."]
    return lines + [""]


def fmt(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if key == "repeats":
        return str(value)
    if key == "fit_vs_lml":
        return f"{value:.2f}"
    if key.endswith("_s"):
        return f"{value:.2f}"
    return f"{value:.4f}" if key == "hamming_loss" else f"{value:.3f}"


def markdown(rows: list[dict[str, Any]], raw: dict[str, Any], task: Task, args: argparse.Namespace, cmd: str,
             breakdown: dict[str, Any] | None = None) -> str:
    by = {r["method"]: r for r in rows}
    br = by.get("mlbench BR")
    pcc = next((r for r in rows if r["method"].startswith("mlbench PCC b=5")), None)
    lml = by.get("LibMultiLabel 1vsrest")
    lines = [
        f"# Linear methods on {task.name}: mlbench BR and PCC against LibMultiLabel and scikit-learn",
        "",
        f"Generated by `{cmd}`.",
        "",
        f"Task `{task.name}` (fingerprint {task.fingerprint}): {task.n_labels} labels, {len(task.train)} train / "
        f"{len(task.valid)} valid / {len(task.test)} test documents. Every configuration is fitted from scratch "
        f"in each of {args.repeats} repeats, taking turns; the table shows medians. Fit = TF-IDF + training "
        "(mlbench's also its one validation prediction); predict = the test split, TF-IDF transform included. "
        "CPU time counts every thread of the process"
        + (f"; scikit-learn's OvR ran in the first {args.sklearn_repeats} repeat(s) only (it is the slow one)"
           if args.sklearn_repeats is not None and args.sklearn_repeats < args.repeats else "")
        + ". Scores are on test. The machine is shared with other jobs "
        "(load averages below), so absolute times swing between runs: compare the ratios within this run.",
        "",
        *markdown_rows(rows, COLUMNS, fmt),
        "",
    ]
    lml_lr = by.get(LML_LR)
    if br and lml_lr:
        ok = br["fit_s"] <= lml_lr["fit_s"] and br["micro_f1"] >= 0.858
        lines.append(f"- BR fit {br['fit_s']:.2f} s vs LibMultiLabel -s 0 -c 300's {lml_lr['fit_s']:.2f} s "
                     f"(x{br['fit_s'] / lml_lr['fit_s']:.2f}; its default's {lml['fit_s']:.2f} s), test micro-F1 "
                     f"{br['micro_f1']:.4f} against its {lml_lr['micro_f1']:.4f} (target: fit at most LibMultiLabel "
                     f"-s 0 -c 300's, micro-F1 >= 0.858) -> {'met' if ok else 'NOT met'}")
    elif br and lml:
        ok = br["fit_s"] <= lml["fit_s"] and br["micro_f1"] >= 0.858
        lines.append(f"- BR fit {br['fit_s']:.2f} s vs LibMultiLabel's {lml['fit_s']:.2f} s (x{br['fit_s'] / lml['fit_s']:.2f}), "
                     f"test micro-F1 {br['micro_f1']:.4f} (target: fit at most LibMultiLabel's, micro-F1 >= 0.858) -> "
                     f"{'met' if ok else 'NOT met'}")
    if br and pcc:
        ratio = (pcc["fit_s"] + pcc["predict_s"]) / (br["fit_s"] + br["predict_s"])
        ok = ratio <= 2 and pcc["subset_01_loss"] <= 0.1785
        lines.append(f"- PCC b=5 fit + predict x{ratio:.2f} BR's, 0/1 loss {pcc['subset_01_loss']:.4f} "
                     f"(target: at most x2, 0/1 loss <= 0.178) -> {'met' if ok else 'NOT met'}")
    if breakdown is not None:
        lines += [""] + breakdown_markdown(breakdown)
    lines += ["", "## Load (`uptime`)", ""] + [f"- {x}" for x in raw["loads"]]
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in machine().items()]
    try:
        from importlib.metadata import version

        lines += [f"- liblinear-multicore: {version('liblinear-multicore')}", f"- libmultilabel: {version('libmultilabel')}"]
    except Exception:  # pragma: no cover - a peer not installed
        pass
    lines.append(f"- solver threads: {linear.solver_threads()}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="reuters")
    parser.add_argument("--beams", default="5", help="comma list of PCC beam widths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sklearn-repeats", type=int, default=None,
                        help="run scikit-learn's OvR (the slow one) only in the first N repeats (default: all)")
    parser.add_argument("--no-peers", action="store_true", help="mlbench's methods only (no LibMultiLabel, scikit-learn)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the parts of BR's fit and LibMultiLabel's -s 0 -c 300 steps (the same repeats)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table as Markdown here (and .json beside)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    beams = [int(b) for b in args.beams.split(",") if b.strip()]

    task = get_task(args.task)
    configs: dict[str, Learner] = {"mlbench BR": mlbench_learner(BinaryRelevance)}
    for b in beams:
        configs[f"mlbench PCC b={b}"] = mlbench_learner(lambda b=b: ProbabilisticClassifierChain(beam_width=b))
    if not args.no_peers:
        configs["LibMultiLabel 1vsrest"] = libmultilabel_learner
        configs[LML_LR] = lambda task: libmultilabel_learner(task, LML_LR_OPTIONS)
        configs["sklearn OvR LR"] = sklearn_learner
    rows, raw = measure(configs, task, args.repeats, {"sklearn OvR LR": args.sklearn_repeats})
    breakdown = None
    if args.breakdown:
        raw["loads"].append(f"before the breakdown: {uptime()}")
        breakdown = br_breakdown(task, args.repeats)
        raw["loads"].append(f"after the breakdown: {uptime()}")
        print("\n".join(breakdown_markdown(breakdown)))

    print_rows(rows, COLUMNS, fmt, min_width=8)
    if args.out is not None:
        cmd = command_line("linear_methods.py", argv)
        write_text(args.out, markdown(rows, raw, task, args, cmd, breakdown))
        write_text(args.out.with_suffix(".json"), json.dumps({"command": cmd, "task": task.name,
                                                              "fingerprint": task.fingerprint, "rows": rows,
                                                              "breakdown": breakdown, **raw},
                                                             indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
