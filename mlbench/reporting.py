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
    """One FINISHED parent run, as a report uses it.

    ``config_digest``, ``code_digest`` and ``config_label`` are the run's identity
    (:mod:`mlbench.identity`; for a run logged before runs carried them, a digest of
    its logged parameters, its code digest empty and a label saying so). ``row``
    is the report row it belongs to: the method name, or ``method [label]`` when
    the records hold several configurations of that method (set by
    :func:`label_rows`). ``fit_seconds`` is the logged fit time.
    """

    run_id: str
    method: str
    task: str
    seed: int
    fingerprint: str
    metrics: dict[str, float]
    tags: dict[str, str]
    artifact_uri: str
    start_time: int
    config_digest: str = ""
    code_digest: str = ""
    config_label: str = ""
    fit_seconds: float = 0.0
    row: str = ""

    @property
    def row_name(self) -> str:
        return self.row or self.method


#: A run logged before runs carried a configuration label.
LEGACY_LABEL = "logged without identity tags"


def _legacy_identity(tags: dict[str, str], params: dict[str, str]) -> tuple[str, str]:
    """(configuration digest, label) of a run without identity tags, from what it logged."""
    from mlbench.identity import config_digest

    if "mlbench.study" in tags:  # a tuned run: its configuration is the best trial's
        best = {k[5:]: v for k, v in tags.items() if k.startswith("best.")}
        return config_digest(tags.get("mlbench.method", ""), best, params.get("preset")), f"tuned (study {tags['mlbench.study']})"
    kept = {k: v for k, v in params.items() if k not in ("seed", "preset")}
    return config_digest(tags.get("mlbench.method", ""), kept, params.get("preset")), LEGACY_LABEL


def collect_runs(tracker: Any, tasks: Sequence[str], config: str | None = None) -> list[RunRecord]:
    """Latest FINISHED parent run per (method, task, seed, fingerprint, configuration digest) of the given tasks.

    ``config`` filters the runs (:func:`filter_config`); rows are labelled by :func:`label_rows`.
    """
    latest: dict[tuple[str, str, int, str, str], RunRecord] = {}
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
            fit = r.data.metrics.get("fit_seconds", 0.0)
            metrics["compute_seconds"] = fit + r.data.metrics.get("predict_seconds", 0.0)
            digest, label = tags.get("mlbench.config_digest"), tags.get("mlbench.config_label")
            if not digest:
                digest, label = _legacy_identity(tags, r.data.params)
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
                config_digest=digest,
                code_digest=tags.get("mlbench.code_digest", ""),
                config_label=label or LEGACY_LABEL,
                fit_seconds=fit,
            )
            key = (rec.method, rec.task, rec.seed, rec.fingerprint, rec.config_digest)
            if key not in latest or latest[key].start_time < rec.start_time:
                latest[key] = rec
    records = filter_config(list(latest.values()), config)
    return label_rows(records)


def suite_digests(spec: str) -> set[tuple[str, str]]:
    """(method, configuration digest) of every method of a suite (named or a YAML file), as its cells run."""
    from mlbench.bench import load_suite, model_references
    from mlbench.identity import MODEL_REFERENCE_VALUE, config_digest
    from mlbench.registry import get_method

    suite = load_suite(spec)
    refs = model_references(suite)
    out = set()
    for method, params in suite.methods.items():
        resolved = dict(get_method(method)(preset=suite.preset, **{
            k: v for k, v in params.items() if k not in refs.get(method, {})
        }).params)
        resolved.update({k: MODEL_REFERENCE_VALUE for k in refs.get(method, {})})
        out.add((method, config_digest(method, resolved, suite.preset)))
    return out


def filter_config(records: list[RunRecord], config: str | None) -> list[RunRecord]:
    """Keep the runs of one kind of configuration.

    ``default``: runs that override nothing (label ``defaults``, or a suite cell
    that sets no parameter); ``tuned``: tuned runs; a suite name or YAML file:
    the configurations that suite runs; otherwise a configuration digest (or a
    prefix of one). ``None`` keeps everything.
    """
    if not config:
        return records
    if config == "default":
        return [r for r in records if r.config_label == "defaults" or re.fullmatch(r"suite \S+", r.config_label)]
    if config == "tuned":
        return [r for r in records if r.config_label.startswith("tuned")]
    from mlbench.bench import NAMED_SUITES

    if config in NAMED_SUITES or Path(config).is_file():
        wanted = suite_digests(config)
        return [r for r in records if (r.method, r.config_digest) in wanted]
    if not re.fullmatch(r"[0-9a-f]{4,}", config):
        raise MlbenchError(f"--config {config!r}: expected default, tuned, a suite name or file, or a configuration digest")
    return [r for r in records if r.config_digest.startswith(config)]


def label_rows(records: list[RunRecord]) -> list[RunRecord]:
    """Set each record's ``row``: the method, or ``method [label]`` when it ran in several configurations.

    Two configurations with the same label (e.g. a suite whose code defaults
    changed) are told apart by their digest.
    """
    configs: dict[str, dict[str, str]] = {}
    for r in records:
        configs.setdefault(r.method, {})[r.config_digest] = r.config_label
    for r in records:
        seen = configs[r.method]
        if len(seen) == 1:
            r.row = r.method
            continue
        same_label = sum(lab == r.config_label for lab in seen.values()) > 1
        r.row = f"{r.method} [{r.config_label}" + (f", {r.config_digest[:8]}" if same_label else "") + "]"
    return records


def _method_key(row: str) -> tuple[int, str]:
    m = row.split(" [")[0]
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), row)


def summarise(records: Sequence[RunRecord], task: str) -> dict[str, dict[str, tuple[float, float, int]]]:
    """row -> metric -> (mean, sample std, n seeds) on ``task`` (a row is one method and configuration)."""
    by_method: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.task == task:
            by_method.setdefault(r.row_name, []).append(r)
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
    seeds_a = {(r.row_name, r.seed) for r in records if r.task == task_a}
    seeds_b = {(r.row_name, r.seed) for r in records if r.task == task_b}
    both = seeds_a & seeds_b
    kept = [r for r in records if (r.row_name, r.seed) in both]
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
    """row -> [(k, mean micro-F1, std)] over ``<base>-trim<k>`` tasks (k = 0 is the base task).

    Every point of a row uses the same seeds: those the row ran at every k. A
    row is one configuration, so k = 0 comes from the same settings as the
    trimmed tasks; a row without a k = 0 run, with a single k, or without a
    seed common to all its k is left out.
    """
    per: dict[str, dict[int, dict[int, float]]] = {}
    for r in records:
        m = _TRIM.match(r.task)
        if r.task == base_task:
            k = 0
        elif m and m.group("base") == base_task:
            k = int(m.group("k"))
        else:
            continue
        per.setdefault(r.row_name, {}).setdefault(k, {})[r.seed] = r.metrics["micro_f1"]
    out = {}
    for row in sorted(per, key=_method_key):
        points = per[row]
        common = set.intersection(*(set(v) for v in points.values()))
        if 0 not in points or len(points) < 2 or not common:
            continue
        pts = []
        for k in sorted(points):
            v = np.array([points[k][s] for s in sorted(common)])
            pts.append((k, float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0))
        out[row] = pts
    return out


def trim_seeds(records: Sequence[RunRecord], base_task: str, rows: Sequence[str]) -> dict[str, list[int]]:
    """row -> the seeds behind every point of its :func:`trim_series`."""
    per: dict[str, dict[int, set[int]]] = {}
    for r in records:
        m = _TRIM.match(r.task)
        k = 0 if r.task == base_task else int(m.group("k")) if m and m.group("base") == base_task else None
        if k is not None and r.row_name in rows:
            per.setdefault(r.row_name, {}).setdefault(k, set()).add(r.seed)
    return {row: sorted(set.intersection(*per[row].values())) for row in rows if row in per}


def _save(fig: Any, path: Path) -> None:
    # no Software/date metadata: the same runs give the same bytes
    fig.savefig(path, dpi=120, metadata={"Software": None})


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
    _save(fig, path)
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
    ax.set_xticks(x, methods, rotation=20 if any(len(m) > 10 for m in methods) else 0, ha="right")
    ax.set_ylabel("test micro-F1 on the label group")
    ax.set_title("Frequent vs infrequent labels (among labels with test positives)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


#: Training-count bins of the per-bin table under Figure 2: [low, high) training documents per label.
FREQUENCY_BINS = ((1, 5), (5, 20), (20, 100), (100, None))


def frequency_bin_table(bundle: Any, records: Sequence[RunRecord], truth: Any) -> str:
    """Markdown: micro-F1 of every row on the labels of each training-count bin (seed mean), with each bin's support.

    Computed from the bundle's predictions, so it needs no logged metric: the
    rarest labels of a small corpus (one training document each) show as their
    own bin instead of making a 10% group that every method scores 0 on.
    """
    from mlbench.metrics import micro_precision_recall_f1

    freq = truth.train_frequency
    positives = np.asarray(truth.Y.sum(axis=0)).ravel()
    bins = []
    for low, high in FREQUENCY_BINS:
        cols = np.flatnonzero((freq >= low) & ((freq < high) if high else True) & (positives > 0))
        if cols.size:
            bins.append((f"{low}-{high - 1}" if high else f"{low}+", cols))
    if not bins:
        return ""
    head = "| method | " + " | ".join(f"{name} ({len(c)} labels, {int(positives[c].sum())} test pos.)" for name, c in bins) + " |"
    lines = [head, "|---|" + "---|" * len(bins)]
    by_row: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.task == truth.task and r.fingerprint == truth.fingerprint:
            by_row.setdefault(r.row_name, []).append(r)
    for row in sorted(by_row, key=_method_key):
        preds = [bundle.predictions(r.run_id) for r in sorted(by_row[row], key=lambda r: r.seed)]
        preds = [p[0] for p in preds if p is not None]
        if not preds:
            continue
        cells = []
        for _, cols in bins:
            vals = np.array([micro_precision_recall_f1(truth.Y[:, cols], p[:, cols])[2] for p in preds])
            cells.append(_fmt(float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals), 3))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def hf_lf_support(truth: "TaskTruth") -> str:
    """One sentence: how many labels and test positives each group holds on this task."""
    from mlbench.metrics import frequency_groups

    Y = truth.Y
    positives = np.asarray(Y.sum(axis=0)).ravel()
    hf, lf = frequency_groups(truth.train_frequency, eligible=positives > 0)
    freq = truth.train_frequency

    def part(name: str, cols: np.ndarray) -> str:
        return (f"{name}: {len(cols)} labels, {int(positives[cols].sum())} test positives, "
                f"{int(freq[cols].min()) if len(cols) else 0}-{int(freq[cols].max()) if len(cols) else 0} "
                "training documents per label")

    return (f"{int((positives > 0).sum())} of {len(freq)} labels have a test positive; among them "
            f"{part('HF', hf)}; {part('LF', lf)}.")


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
    ids, pred, _ = _download_artifact(tracker, run_id)
    return ids, pred


def _download_artifact(tracker: Any, run_id: str) -> tuple[np.ndarray, Any, np.ndarray | None]:
    """(document ids, 0/1 matrix, scores or None) from a run's ``predictions_test.npz`` artifact."""
    import tempfile

    from mlbench.tracking import load_predictions

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = tracker.client.download_artifacts(run_id, "predictions_test.npz", tmp)
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise MlbenchError(f"run {run_id} has no test predictions artifact ({type(exc).__name__})") from exc
        return load_predictions(local)


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
    bundle: "Bundle", records: Sequence[RunRecord], truth: "TaskTruth", references: Sequence[str], n_resamples: int = 1000
) -> str:
    """Paired bootstrap of each row against each reference row over the seeds both ran.

    With several seeds, each side's metric is its mean over those seeds (the
    same document resample applied to every run), so the interval is that of
    the difference of seed means. Predictions come from the bundle.
    """
    from mlbench.stats import paired_bootstrap

    runs = {(r.row_name, r.seed): r for r in records if r.task == truth.task and r.fingerprint == truth.fingerprint}
    preds: dict[tuple[str, int], Any] = {}

    def pred(key: tuple[str, int]):
        if key not in preds:
            loaded = bundle.predictions(runs[key].run_id)
            preds[key] = None if loaded is None else loaded[0]  # a run logged without predictions is left out
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
            res = paired_bootstrap(truth.Y, pa, pb, n_resamples=n_resamples, seed=seeds[0])
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
        by_method.setdefault(r.row_name, []).append(r)
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


def configurations(records: Sequence[RunRecord], task: str) -> tuple[str, list[str]]:
    """Markdown table of the rows on ``task`` (label, preset, digests, seeds) and the warnings to print.

    A row whose seeds ran with several code digests is flagged: its mean mixes
    code versions, and the report says so instead of averaging silently.
    """
    lines = [
        "| row | configuration | preset | config digest | seeds | code digest |",
        "|---|---|---|---|---|---|",
    ]
    warnings = []
    by_row: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.task == task:
            by_row.setdefault(r.row_name, []).append(r)
    for row in sorted(by_row, key=_method_key):
        rs = sorted(by_row[row], key=lambda r: r.seed)
        codes = sorted({r.code_digest or "?" for r in rs})
        code_text = ", ".join(codes)
        if len(codes) > 1:
            code_text = "⚠ " + "; ".join(
                f"{c}: seed {', '.join(str(r.seed) for r in rs if (r.code_digest or '?') == c)}" for c in codes
            )
            warnings.append(f"⚠ `{row}` on `{task}`: its seeds ran on {len(codes)} code versions ({code_text[2:]}); "
                            "its mean mixes them.")
        presets = ", ".join(sorted({r.tags.get("mlbench.preset", "?") for r in rs}))
        lines.append(f"| {row} | {rs[0].config_label} | {presets} | `{rs[0].config_digest}` | "
                     f"{', '.join(str(r.seed) for r in rs)} | {code_text} |")
    return "\n".join(lines), warnings


def write_report(
    tracker: Any,
    out_dir: Path,
    base_task: str,
    tasks: Sequence[str] | None = None,
    command: str = "",
    data_dir: Path | None = None,
    n_resamples: int = 1000,
    config: str | None = None,
) -> Path:
    """Export the runs of the store into a bundle in ``out_dir`` (:mod:`mlbench.bundle`), then render it.

    The README and figures are always rendered from the bundle's files, so
    ``render_report(out_dir)`` (``mlbench report --from``) gives the same bytes.
    """
    import logging

    from mlbench.bundle import export_bundle

    if tasks is None:
        names = [e.name for e in tracker.client.search_experiments()]
        tasks = [t for t in names if t == base_task or t.startswith(base_task + "-")]
    records = collect_runs(tracker, tasks, config=config)
    if not any(r.task == base_task for r in records):
        raise MlbenchError(f"no finished run of task {base_task!r} in {tracker.tracking_uri}"
                           + (f" with --config {config}" if config else "") + "; run `mlbench bench` first")
    meta = {"base_task": base_task, "command": command, "config": config or "all", "n_resamples": n_resamples,
            "tasks": sorted({r.task for r in records})}
    bundle, dropped = export_bundle(tracker, records, out_dir, meta, data_dir=data_dir)
    for r in dropped:
        logging.getLogger(__name__).warning("run %s (%s on %s) used another split (fingerprint %s): left out",
                                            r.run_id, r.method, r.task, r.fingerprint)
    return render_report(out_dir)


def render_report(bundle_dir: Path, out_dir: Path | None = None) -> Path:
    """Render ``README.md`` and its figures from a bundle folder alone (no store, no dataset)."""
    from mlbench.bundle import Bundle

    bundle = Bundle(bundle_dir)
    out_dir = Path(out_dir) if out_dir is not None else Path(bundle_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = bundle.meta
    base_task, command, n_resamples = meta["base_task"], meta.get("command", ""), int(meta.get("n_resamples", 1000))
    records = bundle.records()
    if not any(r.task == base_task for r in records):
        raise MlbenchError(f"bundle {bundle_dir} holds no run of task {base_task!r}")
    base = summarise(records, base_task)
    parts = [f"# mlbench report: {base_task}", ""]
    if command:
        parts += ["Regenerate with:", "", "```bash", command, "```", ""]
    config = meta.get("config", "all")
    parts += [
        "Every number below is read from the runs in this folder (`runs.csv`, `predictions/`, `tasks/`; "
        "`mlbench report --from` re-renders this page from them): mean ± sample std over seeds, best mean per "
        "column in bold. A row is one method in one configuration"
        + (f" (runs selected with `--config {config}`)" if config != "all" else "") + ".",
        "",
        f"## Table 1: all methods on `{base_task}` (test)",
        "",
        table1(base),
        "",
    ]
    config_table, warnings = configurations(records, base_task)
    parts += ["Configurations of the rows:", "", config_table, ""]
    parts += [*(f"{w}" for w in warnings), *([""] if warnings else [])]
    parts += [
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
        _, shuffled_warnings = configurations(records, shuffled_name)
        parts += [*shuffled_warnings, *([""] if shuffled_warnings else [])]
    series = trim_series(records, base_task)
    if series:
        figure1(series, out_dir / "figure1_trim.png")
        seeds = trim_seeds(records, base_task, list(series))
        by_row = {r.row_name: r for r in records if r.task == base_task}
        caption = "; ".join(
            f"`{row}`: seeds {', '.join(map(str, seeds[row]))}, preset {by_row[row].tags.get('mlbench.preset', '?')}, "
            f"{by_row[row].config_label}" for row in series
        )
        parts += [
            "## Figure 1: removing the most frequent labels",
            "",
            "![Figure 1](figure1_trim.png)",
            "",
            "Each line is one configuration, every point (k = 0 is the untrimmed task) the mean over the same seeds: "
            + caption + ".",
            "",
            "| method | " + " | ".join(f"k={k}" for k in sorted({k for p in series.values() for k, _, _ in p})) + " |",
        ]
        ks = sorted({k for p in series.values() for k, _, _ in p})
        parts.append("|---|" + "---|" * len(ks))
        for m, pts in series.items():
            d = {k: (mean, std) for k, mean, std in pts}
            parts.append(f"| {m} | " + " | ".join(_fmt(d[k][0], d[k][1], len(seeds[m]), 3) if k in d else "–" for k in ks) + " |")
        parts.append("")
    truth = bundle.truth(base_task)
    if any("hf_micro_f1" in s for s in base.values()):
        figure2(base, out_dir / "figure2_hf_lf.png")
        parts += [
            "## Figure 2: frequent (HF) vs infrequent (LF) labels",
            "",
            "![Figure 2](figure2_hf_lf.png)",
            "",
            "HF and LF are the 10% most and least frequent labels in training, among the labels with at least one "
            "test positive (a label without one has no F1 to measure). " + hf_lf_support(truth),
            "",
            "| method | HF micro-F1 | LF micro-F1 | HF macro-F1 | LF macro-F1 |",
            "|---|---|---|---|---|",
        ]
        for row, s in base.items():
            cells = [_fmt(*s[k], 3) if k in s else "–" for k in ("hf_micro_f1", "lf_micro_f1", "hf_macro_f1", "lf_macro_f1")]
            parts.append(f"| {row} | " + " | ".join(cells) + " |")
        parts.append("")
        bin_table = frequency_bin_table(bundle, records, truth)
        if bin_table:
            parts += ["Micro-F1 by the labels' number of training documents (labels with a test positive; "
                      "seed mean ± std):", "", bin_table, ""]
        gains = relative_gains(base, "seq2set", ("br", "seq2seq"))
        parts += [f"- {g}" for g in gains] + ([""] if gains else [])
    refs = [r for r in ("br", "seq2seq") if r in base]
    boot = bootstrap_table(bundle, records, truth, refs, n_resamples=n_resamples) if refs else ""
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
