"""Reports from the MLflow store: the paper's Tables 1-2 and Figures 1-2, with spread and confidence.

Every number in a report comes from runs in the store: ``collect_runs`` reads
the FINISHED parent runs, the tables aggregate them over seeds (mean ± sample
std), and the paired bootstrap reads the logged test predictions back. The
report names the command that regenerates it. This module owns the Markdown
tables and the page itself (:func:`write_report`, :func:`render_report`); the
records and their aggregates live in :mod:`mlbench.records`, the figures in
:mod:`mlbench.figures` and the prediction-based sections in
:mod:`mlbench.comparisons`, all re-exported here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlbench.api import MlbenchError
from mlbench.comparisons import (  # noqa: F401  (re-exported: importable from mlbench.reporting as before)
    FREQUENCY_BINS,
    _download_artifact,
    _download_predictions,
    REFERENCE_METHODS,
    bootstrap_table,
    comparison_pairs,
    frequency_bin_table,
    run_predictions,
)
from mlbench.figures import _save, figure1, figure2  # noqa: F401
from mlbench.records import (  # noqa: F401
    _TRIM,
    LEGACY_LABEL,
    METHOD_ORDER,
    RunRecord,
    _fmt,
    _legacy_identity,
    _method_key,
    collect_runs,
    filter_config,
    label_rows,
    paired_summaries,
    suite_digests,
    summarise,
    trim_seeds,
    trim_series,
)

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
#: Which of our methods stands for which row of the paper's Table 1 (omikuji's Parabel
#: is of FastXML's family of label trees, from the example plugin).
PAPER_ROW = {
    "br": "BR-LR", "pcc": "PCC-LR", "omikuji": "FastXML", "xml-cnn": "XML-CNN", "cnn-rnn": "CNN-RNN",
    "seq2seq": "Seq2Seq (SGM)", "seq2set": "Seq2Set",
}


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


def relative_gains(summary: dict, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Sentences: relative HF/LF micro-F1 gain of each Seq2Set-family row over its references (``pairs``)."""
    out = []
    for row, ref in pairs:
        if row.split(" [")[0].split("-")[0] != "seq2set" or row not in summary or ref not in summary:
            continue
        parts = []
        for key, label in (("hf_micro_f1", "HF"), ("lf_micro_f1", "LF")):
            a, b = summary[row].get(key, (np.nan,))[0], summary[ref].get(key, (np.nan,))[0]
            parts.append(f"{label} {100 * (a - b) / b:+.1f}%" if b and np.isfinite(a) else f"{label} –")
        out.append(f"{row} vs {ref}: " + ", ".join(parts))
    return out


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
    merge: Sequence[Path] = (),
) -> Path:
    """Export the runs of the store into a bundle in ``out_dir`` (:mod:`mlbench.bundle`), then render it.

    ``merge`` names earlier bundles whose runs join the store's where the store
    has no run of the same cell (:func:`mlbench.bundle.merged_records`). The
    README and figures are always rendered from the bundle's files, so
    ``render_report(out_dir)`` (``mlbench report --from``) gives the same bytes.
    """
    import logging

    from mlbench.bundle import Bundle, export_bundle, merged_records

    def family(t: str) -> bool:
        return t == base_task or t.startswith(base_task + "-")

    if tasks is None:
        names = [e.name for e in tracker.client.search_experiments()]
        names += [t for folder in merge for t in Bundle(Path(folder)).meta.get("tasks", [])]
        tasks = sorted({t for t in names if family(t)})
    merge = [Path(m) for m in merge]
    for folder in merge:
        other = Bundle(folder).meta.get("base_task")
        if other != base_task:
            raise MlbenchError(f"--merge {folder} holds a report of task {other!r}, not of {base_task!r}")
    in_place = any(m.resolve() == Path(out_dir).resolve() for m in merge)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # written beside the folder and moved in only once complete: a failure leaves the old bundle as it was
    fresh = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.new-"))
    try:
        with tempfile.TemporaryDirectory() as scratch:
            store_records = collect_runs(tracker, tasks, config=config)
            records, copied = merged_records(store_records, merge, tasks, Path(scratch))
            selected = label_rows(filter_config(records, config))
            if in_place and len(selected) < len(records):
                lost = len(records) - len(selected)
                raise MlbenchError(f"--config {config} would leave out {lost} run(s) of {out_dir}, which is also "
                                   "--out: write the filtered report to another folder")
            if not any(r.task == base_task for r in selected):
                raise MlbenchError(f"no finished run of task {base_task!r} in {tracker.tracking_uri}"
                                   + "".join(f" or {m}" for m in merge)
                                   + (f" with --config {config}" if config else "") + "; run `mlbench bench` first")
            meta = {"base_task": base_task, "command": command, "config": config or "all",
                    "n_resamples": n_resamples, "tasks": sorted({r.task for r in selected})}
            _, dropped = export_bundle(tracker, selected, fresh, meta, data_dir=data_dir, copied_predictions=copied)
        merged_lost = [r for r in dropped if r.run_id in copied]
        if merged_lost:
            r = merged_lost[0]
            raise MlbenchError(
                f"{len(merged_lost)} run(s) of the merged folders were scored on another split than the task's "
                f"current one (e.g. {r.run_id}, {r.method} on {r.task}, fingerprint {r.fingerprint}); "
                "the report was not written")
        for r in dropped:
            logging.getLogger(__name__).warning("run %s (%s on %s) used another split (fingerprint %s): left out",
                                                r.run_id, r.method, r.task, r.fingerprint)
        _install_bundle(fresh, out_dir)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return render_report(out_dir)


def _install_bundle(fresh: Path, out_dir: Path) -> None:
    """Move a complete bundle's files (runs.csv, bundle.json, predictions/, tasks/) over those of ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("predictions", "tasks"):
        old = out_dir / name
        if old.exists():
            trash = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
            old.rename(trash / name)
            shutil.rmtree(trash, ignore_errors=True)
        (fresh / name).rename(old)
    for name in ("runs.csv", "bundle.json"):
        os.replace(fresh / name, out_dir / name)


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
    pairs = comparison_pairs(records, base_task)
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
        gains = relative_gains(base, pairs)
        parts += [f"- {g}" for g in gains] + ([""] if gains else [])
    boot = bootstrap_table(bundle, records, truth, pairs, n_resamples=n_resamples) if pairs else ""
    if boot:
        refs = sorted({r.split(" [")[0] for _, r in pairs}, key=lambda m: (m not in REFERENCE_METHODS, m))
        parts += [
            f"## Paired bootstrap against {' and '.join(refs)} (`{base_task}` test, {n_resamples} resamples)",
            "",
            "Δ = method − reference on the same documents, resampled together; over several seeds, Δ is the "
            "difference of the two methods' seed means, every run scored on the same resample. "
            "* marks an interval that excludes 0. Every row is measured against each `br` row, every row of the "
            "seq2seq/seq2set families against each `seq2seq` row, and a row whose runs started from another "
            "row's models against that row.",
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
