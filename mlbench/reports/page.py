"""A one-task report page: the bundle written from the store, then ``README.md`` and its figures rendered from it.

:func:`write_report` exports the store's runs (plus any merged bundles) into a bundle
(:mod:`mlbench.reports.bundle`), moving it into place only once complete, and renders it;
:func:`render_report` renders the same bytes from the bundle folder alone (``mlbench report --from``).
Every number comes from the bundle: the records and their aggregates (:mod:`mlbench.reports.records`),
the tables (:mod:`mlbench.reports.tables`), the figures (:mod:`mlbench.reports.figures`) and the
prediction-based sections (:mod:`mlbench.reports.comparisons`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from mlbench.api import MlbenchError
from mlbench.reports.bundle import Bundle, export_bundle, merged_records
from mlbench.reports.comparisons import REFERENCE_METHODS, bootstrap_table, comparison_pairs, frequency_bin_table
from mlbench.reports.figures import figure1, figure2
from mlbench.reports.records import (_fmt, collect_runs, filter_config, label_rows, paired_summaries, summarise,
                                     trim_seeds, trim_series)
from mlbench.reports.tables import (configurations, fingerprints, hf_lf_support, paper_table1, provenance,
                                    relative_gains, table1, table2)


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
    """Export the runs of the store into a bundle in ``out_dir`` (:mod:`mlbench.reports.bundle`), then render it.

    ``merge`` names earlier bundles whose runs join the store's where the store
    has no run of the same cell (:func:`mlbench.reports.bundle.merged_records`). The
    README and figures are always rendered from the bundle's files, so
    ``render_report(out_dir)`` (``mlbench report --from``) gives the same bytes.
    """
    import logging

    def family(t: str) -> bool:
        return t == base_task or t.startswith(base_task + "-")

    if tasks is None:
        names = tracker.experiment_names()
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
