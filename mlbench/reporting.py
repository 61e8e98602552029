"""Reports from the MLflow store: the paper's Tables 1-2 and Figures 1-2, with spread and confidence.

Every number in a report comes from runs in the store: ``collect_runs`` reads
the FINISHED parent runs, the tables aggregate them over seeds (mean ± sample
std), and the paired bootstrap reads the logged test predictions back. The
report names the command that regenerates it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlbench.api import MlbenchError

#: Table 1 of Yang et al. (2019), RCV1-V2 test: (HL, 0/1 loss, micro-F1, micro-P, micro-R).
PAPER_TABLE1 = {
    "BR-LR": (0.0083, 0.393, 0.858, 0.919, 0.804),
    "PCC-LR": (0.0079, 0.325, 0.864, 0.901, 0.827),
    "FastXML": (0.0078, 0.358, 0.863, 0.956, 0.786),
    "XML-CNN": (0.0086, 0.390, 0.853, 0.914, 0.799),
    "CNN-RNN": (0.0085, 0.378, 0.856, 0.889, 0.825),
    "Seq2Seq (SGM)": (0.0076, 0.332, 0.871, 0.906, 0.838),
    "Seq2Set": (0.0073, 0.314, 0.879, 0.900, 0.858),
}
#: Table 2, label-shuffled RCV1-V2: (HL, 0/1 loss, micro-F1).
PAPER_TABLE2_SHUFFLED = {"Seq2Seq (SGM)": (0.0083, 0.363, 0.859), "Seq2Set": (0.0075, 0.318, 0.876)}

TABLE1_METRICS = (
    ("hamming_loss", "HL ↓", "min"),
    ("subset_01_loss", "0/1 loss ↓", "min"),
    ("micro_f1", "micro-F1 ↑", "max"),
    ("micro_precision", "micro-P ↑", "max"),
    ("micro_recall", "micro-R ↑", "max"),
    ("macro_f1", "macro-F1 ↑", "max"),
)
METHOD_ORDER = ("br", "pcc", "omikuji", "xml-cnn", "cnn-rnn", "seq2seq", "seq2set")
#: Which of our methods stands for which row of the paper's Table 1 (omikuji's Parabel
#: is of FastXML's family of label trees, from the example plugin).
PAPER_ROW = {
    "br": "BR-LR", "pcc": "PCC-LR", "omikuji": "FastXML", "xml-cnn": "XML-CNN", "cnn-rnn": "CNN-RNN",
    "seq2seq": "Seq2Seq (SGM)", "seq2set": "Seq2Set",
}


@dataclass
class RunRecord:
    run_id: str
    method: str
    task: str
    seed: int
    fingerprint: str
    metrics: dict[str, float]
    tags: dict[str, str]
    artifact_uri: str
    start_time: int


def collect_runs(tracker: Any, tasks: Sequence[str]) -> list[RunRecord]:
    """Latest FINISHED parent run per (method, task, seed, fingerprint) of the given tasks."""
    latest: dict[tuple[str, str, int, str], RunRecord] = {}
    for task in tasks:
        exp = tracker.client.get_experiment_by_name(task)
        if exp is None:
            continue
        for r in tracker.client.search_runs(
            [exp.experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=50000
        ):
            tags = r.data.tags
            if "mlflow.parentRunId" in tags or "mlbench.method" not in tags:
                continue
            if tags.get("mlbench.role", "parent") != "parent":  # trials and seed aggregates
                continue
            metrics = {k[5:]: v for k, v in r.data.metrics.items() if k.startswith("test_")}
            if "micro_f1" not in metrics:
                continue
            metrics["compute_seconds"] = r.data.metrics.get("fit_seconds", 0.0) + r.data.metrics.get(
                "predict_seconds", 0.0
            )
            rec = RunRecord(
                run_id=r.info.run_id,
                method=tags["mlbench.method"],
                task=tags.get("mlbench.task", task),
                seed=int(tags.get("mlbench.seed", 0)),
                fingerprint=tags.get("mlbench.fingerprint", ""),
                metrics=metrics,
                tags=tags,
                artifact_uri=r.info.artifact_uri,
                start_time=r.info.start_time,
            )
            key = (rec.method, rec.task, rec.seed, rec.fingerprint)
            if key not in latest or latest[key].start_time < rec.start_time:
                latest[key] = rec
    return list(latest.values())


def _method_key(m: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m)


def summarise(records: Sequence[RunRecord], task: str) -> dict[str, dict[str, tuple[float, float, int]]]:
    """method -> metric -> (mean, sample std, n seeds) on ``task``."""
    by_method: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.task == task:
            by_method.setdefault(r.method, []).append(r)
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for m in sorted(by_method, key=_method_key):
        runs = by_method[m]
        keys = set().union(*(r.metrics for r in runs))
        out[m] = {}
        for k in keys:
            vals = np.array([r.metrics[k] for r in runs if k in r.metrics])
            out[m][k] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals))
    return out


def paired_summaries(records: Sequence[RunRecord], task_a: str, task_b: str) -> tuple[dict, dict]:
    """:func:`summarise` of two tasks, each method over the seeds it ran on both (a method on one only is left out)."""
    seeds_a = {(r.method, r.seed) for r in records if r.task == task_a}
    seeds_b = {(r.method, r.seed) for r in records if r.task == task_b}
    both = seeds_a & seeds_b
    kept = [r for r in records if (r.method, r.seed) in both]
    return summarise(kept, task_a), summarise(kept, task_b)


def _fmt(mean: float, std: float, n: int, digits: int) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def table1(summary: dict[str, dict[str, tuple[float, float, int]]]) -> str:
    """Markdown: every method on the base task, best mean per column in bold."""
    header = "| method | seeds | " + " | ".join(label for _, label, _ in TABLE1_METRICS) + " |"
    lines = [header, "|" + "---|" * (len(TABLE1_METRICS) + 2)]
    best = {}
    for key, _, direction in TABLE1_METRICS:
        vals = [s[key][0] for s in summary.values() if key in s]
        if vals:
            best[key] = min(vals) if direction == "min" else max(vals)
    for method, s in summary.items():
        cells = []
        for key, _, _ in TABLE1_METRICS:
            if key not in s:
                cells.append("–")
                continue
            digits = 4 if key == "hamming_loss" else 3
            text = _fmt(*s[key], digits)
            cells.append(f"**{text}**" if np.isclose(s[key][0], best[key]) else text)
        n = max(v[2] for v in s.values())
        lines.append(f"| {method} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_table1() -> str:
    ours = {row: m for m, row in PAPER_ROW.items()}
    lines = [
        "| system (paper, RCV1-V2) | mlbench method | HL ↓ | 0/1 loss ↓ | micro-F1 ↑ | micro-P ↑ | micro-R ↑ |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (hl, zo, f1, p, r) in PAPER_TABLE1.items():
        lines.append(f"| {name} | `{ours.get(name, '–')}` | {hl:.4f} | {zo:.3f} | {f1:.3f} | {p:.3f} | {r:.3f} |")
    return "\n".join(lines)


def table2(base: dict, shuffled: dict) -> str:
    """Markdown: base vs shuffled with the relative degradation, as the paper's Table 2."""
    lines = [
        "| method | micro-F1 base | micro-F1 shuffled | 0/1 loss base | 0/1 loss shuffled | 0/1 loss change | HL change |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in base:
        if m not in shuffled:
            continue
        b, s = base[m], shuffled[m]

        def rel(key: str) -> str:
            if b[key][0] == 0:
                return "–"
            return f"{100.0 * (s[key][0] - b[key][0]) / b[key][0]:+.1f}%"

        lines.append(
            f"| {m} | {_fmt(*b['micro_f1'], 3)} | {_fmt(*s['micro_f1'], 3)} | {_fmt(*b['subset_01_loss'], 3)} | "
            f"{_fmt(*s['subset_01_loss'], 3)} | {rel('subset_01_loss')} | {rel('hamming_loss')} |"
        )
    return "\n".join(lines)


_TRIM = re.compile(r"^(?P<base>.+)-trim(?P<k>\d+)$")


def trim_series(records: Sequence[RunRecord], base_task: str) -> dict[str, list[tuple[int, float, float]]]:
    """method -> [(k, mean micro-F1, std)] over ``<base>-trim<k>`` tasks (k = 0 is the base task)."""
    per: dict[str, dict[int, list[float]]] = {}
    for r in records:
        m = _TRIM.match(r.task)
        if r.task == base_task:
            k = 0
        elif m and m.group("base") == base_task:
            k = int(m.group("k"))
        else:
            continue
        per.setdefault(r.method, {}).setdefault(k, []).append(r.metrics["micro_f1"])
    out = {}
    for method in sorted(per, key=_method_key):
        pts = []
        for k in sorted(per[method]):
            v = np.array(per[method][k])
            pts.append((k, float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0))
        out[method] = pts
    return out


def figure1(series: dict[str, list[tuple[int, float, float]]], path: Path, reference: str = "seq2seq") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_ref = reference in series
    fig, axes = plt.subplots(1, 2 if has_ref else 1, figsize=(11 if has_ref else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for m, pts in series.items():
        ks, means, stds = zip(*pts)
        ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=m)
    ax.set_xlabel("k most frequent labels removed")
    ax.set_ylabel("test micro-F1")
    ax.set_title("Performance as frequent labels are removed")
    ax.grid(alpha=0.3)
    ax.legend()
    if has_ref:
        ref = {k: mean for k, mean, _ in series[reference]}
        ax2 = axes[0, 1]
        for m, pts in series.items():
            if m == reference:
                continue
            gap = [(k, mean - ref[k]) for k, mean, _ in pts if k in ref]
            if gap:
                ax2.plot(*zip(*gap), marker="o", label=f"{m} − {reference}")
        ax2.axhline(0, color="grey", lw=0.8)
        ax2.set_xlabel("k most frequent labels removed")
        ax2.set_ylabel(f"micro-F1 gap to {reference}")
        ax2.set_title(f"Gap to {reference}")
        ax2.grid(alpha=0.3)
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def figure2(summary: dict[str, dict[str, tuple[float, float, int]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in summary if "hf_micro_f1" in summary[m] and "lf_micro_f1" in summary[m]]
    x = np.arange(len(methods))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(methods) + 2), 4))
    for off, key, label in ((-0.2, "hf_micro_f1", "HF (10% most frequent)"), (0.2, "lf_micro_f1", "LF (10% least frequent)")):
        means = [summary[m][key][0] for m in methods]
        stds = [summary[m][key][1] for m in methods]
        ax.bar(x + off, means, width=0.4, yerr=stds, capsize=3, label=label)
    ax.set_xticks(x, methods)
    ax.set_ylabel("test micro-F1 on the label group")
    ax.set_title("Frequent vs infrequent labels")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def relative_gains(summary: dict, method: str, references: Sequence[str]) -> list[str]:
    """Sentences: relative HF/LF micro-F1 gain of ``method`` over each reference."""
    out = []
    if method not in summary:
        return out
    for ref in references:
        if ref not in summary or ref == method:
            continue
        parts = []
        for key, label in (("hf_micro_f1", "HF"), ("lf_micro_f1", "LF")):
            a, b = summary[method].get(key, (np.nan,))[0], summary[ref].get(key, (np.nan,))[0]
            parts.append(f"{label} {100 * (a - b) / b:+.1f}%" if b and np.isfinite(a) else f"{label} –")
        out.append(f"{method} vs {ref}: " + ", ".join(parts))
    return out


def _download_predictions(tracker: Any, run_id: str) -> tuple[np.ndarray, Any]:
    """(document ids, 0/1 matrix) from a run's ``predictions_test.npz`` artifact."""
    import tempfile

    from mlbench.tracking import load_predictions

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = tracker.client.download_artifacts(run_id, "predictions_test.npz", tmp)
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise MlbenchError(f"run {run_id} has no test predictions artifact ({type(exc).__name__})") from exc
        ids, pred, _ = load_predictions(local)
    return ids, pred


def run_predictions(tracker: Any, run_id: str) -> tuple[str, str, Any, str]:
    """(task, fingerprint, test predictions, method) of one run, for ``mlbench compare``."""
    try:
        run = tracker.client.get_run(run_id)
    except Exception as exc:
        raise MlbenchError(f"no run {run_id!r} in {tracker.tracking_uri}") from exc
    tags = run.data.tags
    if "mlbench.task" not in tags:
        raise MlbenchError(f"run {run_id} was not logged by mlbench")
    _, pred = _download_predictions(tracker, run_id)
    return tags["mlbench.task"], tags.get("mlbench.fingerprint", ""), pred, tags.get("mlbench.method", "?")


def bootstrap_table(
    tracker: Any, records: Sequence[RunRecord], task_obj: Any, references: Sequence[str], n_resamples: int = 1000
) -> str:
    """Paired bootstrap of each method against each reference over the seeds both ran.

    With several seeds, each side's metric is its mean over those seeds (the
    same document resample applied to every run), so the interval is that of
    the difference of seed means.
    """
    from mlbench.stats import paired_bootstrap

    runs = {(r.method, r.seed): r for r in records if r.task == task_obj.name and r.fingerprint == task_obj.fingerprint}
    preds: dict[tuple[str, int], Any] = {}

    def pred(key: tuple[str, int]):
        if key not in preds:
            try:
                ids, p = _download_predictions(tracker, runs[key].run_id)
            except MlbenchError:
                p = None  # a run logged without predictions (--no-predictions) is left out
            else:
                if list(ids) != list(task_obj.test.ids):
                    raise MlbenchError(f"run {runs[key].run_id} predicted other documents than task {task_obj.name}")
            preds[key] = p
        return preds[key]

    lines = [
        "| method | vs | seeds | Δ micro-F1 [95% CI] | Δ 0/1 loss [95% CI] |",
        "|---|---|---|---|---|",
    ]
    methods = sorted({m for m, _ in runs}, key=_method_key)
    for ref in references:
        for m in methods:
            if m == ref:
                continue
            seeds = [
                s for s in sorted(s for (mm, s) in runs if mm == m and (ref, s) in runs)
                if pred((m, s)) is not None and pred((ref, s)) is not None
            ]
            if not seeds:
                continue
            pa, pb = [pred((m, s)) for s in seeds], [pred((ref, s)) for s in seeds]
            res = paired_bootstrap(task_obj.test.Y, pa, pb, n_resamples=n_resamples, seed=seeds[0])
            f1, zo = res["micro_f1"], res["subset_01_loss"]
            star = lambda r: "*" if r.significant else ""  # noqa: E731
            lines.append(
                f"| {m} | {ref} | {', '.join(map(str, seeds))} | {f1.diff:+.4f} [{f1.low:+.4f}, {f1.high:+.4f}]{star(f1)} | "
                f"{zo.diff:+.4f} [{zo.low:+.4f}, {zo.high:+.4f}]{star(zo)} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""


def provenance(records: Sequence[RunRecord]) -> str:
    lines = [
        "| method | runs | compute (s) | devices | git commits | mlbench | torch | scikit-learn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_method: dict[str, list[RunRecord]] = {}
    for r in records:
        by_method.setdefault(r.method, []).append(r)
    for m in sorted(by_method, key=_method_key):
        rs = by_method[m]

        def uniq(tag: str) -> str:
            return ", ".join(sorted({r.tags.get(tag, "?") for r in rs}))

        commits = ", ".join(sorted({r.tags.get("mlbench.git_commit", "?")[:12] for r in rs}))
        lines.append(
            f"| {m} | {len(rs)} | {sum(r.metrics['compute_seconds'] for r in rs):.0f} | {uniq('mlbench.device')} | "
            f"{commits} | {uniq('mlbench.version.mlbench')} | {uniq('mlbench.version.torch')} | "
            f"{uniq('mlbench.version.scikit-learn')} |"
        )
    return "\n".join(lines)


def fingerprints(records: Sequence[RunRecord]) -> str:
    seen = sorted({(r.task, r.fingerprint) for r in records})
    return "\n".join(f"- `{t}`: `{fp}`" for t, fp in seen)


def write_report(
    tracker: Any,
    out_dir: Path,
    base_task: str,
    tasks: Sequence[str] | None = None,
    command: str = "",
    data_dir: Path | None = None,
    n_resamples: int = 1000,
) -> Path:
    """Render ``out_dir/README.md`` and its figures from the runs in the store."""
    from mlbench.registry import get_task

    if tasks is None:
        names = [e.name for e in tracker.client.search_experiments()]
        tasks = [t for t in names if t == base_task or t.startswith(base_task + "-")]
    records = collect_runs(tracker, tasks)
    if not any(r.task == base_task for r in records):
        raise MlbenchError(f"no finished run of task {base_task!r} in {tracker.tracking_uri}; run `mlbench bench` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    base = summarise(records, base_task)
    parts = [f"# mlbench report: {base_task}", ""]
    if command:
        parts += ["Regenerate with:", "", "```bash", command, "```", ""]
    parts += [
        "Every number below is read from the MLflow store (mean ± sample std over seeds; best mean per column in bold).",
        "",
        f"## Table 1: all methods on `{base_task}` (test)",
        "",
        table1(base),
        "",
        "For reference, the paper's figures on RCV1-V2 (a different, larger corpus; compare the ordering, not the values):",
        "",
        paper_table1(),
        "",
    ]
    shuffled_name = f"{base_task}-shuffled"
    if any(r.task == shuffled_name for r in records):
        paired_base, shuffled = paired_summaries(records, base_task, shuffled_name)
        parts += [
            f"## Table 2: `{base_task}` vs `{shuffled_name}`",
            "",
            "The change columns are relative to the base task (positive = worse for losses); both columns of a "
            "method use the seeds it ran on the shuffled task. "
            "Paper (RCV1-V2): Seq2Seq 0/1 loss +9.3%, Seq2Set +1.2%, BR unchanged.",
            "",
            table2(paired_base, shuffled),
            "",
        ]
    series = trim_series(records, base_task)
    if any(len(p) > 1 for p in series.values()):
        figure1(series, out_dir / "figure1_trim.png")
        parts += [
            "## Figure 1: removing the most frequent labels",
            "",
            "![Figure 1](figure1_trim.png)",
            "",
            "| method | " + " | ".join(f"k={k}" for k in sorted({k for p in series.values() for k, _, _ in p})) + " |",
        ]
        ks = sorted({k for p in series.values() for k, _, _ in p})
        parts.append("|---|" + "---|" * len(ks))
        for m, pts in series.items():
            d = {k: (mean, std) for k, mean, std in pts}
            parts.append(f"| {m} | " + " | ".join(f"{d[k][0]:.3f}" if k in d else "–" for k in ks) + " |")
        parts.append("")
    if any("hf_micro_f1" in s for s in base.values()):
        figure2(base, out_dir / "figure2_hf_lf.png")
        parts += ["## Figure 2: frequent (HF) vs infrequent (LF) labels", "", "![Figure 2](figure2_hf_lf.png)", ""]
        gains = relative_gains(base, "seq2set", ("br", "seq2seq"))
        parts += [f"- {g}" for g in gains] + ([""] if gains else [])
    task_obj = get_task(base_task, data_dir=data_dir)
    refs = [r for r in ("br", "seq2seq") if r in base]
    boot = bootstrap_table(tracker, records, task_obj, refs, n_resamples=n_resamples) if refs else ""
    if boot:
        parts += [
            f"## Paired bootstrap against {' and '.join(refs)} (`{base_task}` test, {n_resamples} resamples)",
            "",
            "Δ = method − reference on the same documents, resampled together; over several seeds, Δ is the "
            "difference of the two methods' seed means, every run scored on the same resample. "
            "* marks an interval that excludes 0.",
            "",
            boot,
            "",
        ]
    parts += ["## Provenance", "", provenance(records), ""]
    started = sorted({r.method for r in records if "mlbench.init_from_run" in r.tags})
    if started:
        parts += [
            f"Runs of {', '.join(started)} started from another run's saved model (tag `mlbench.init_from_run`; "
            "in the paper suites, seq2set's RL phase starts from the seq2seq run of the same task and seed): "
            "their compute excludes that run's.",
            "",
        ]
    parts += ["Task fingerprints:", "", fingerprints(records), ""]
    readme = out_dir / "README.md"
    readme.write_text("\n".join(parts))
    return readme
