"""A one-task report page: the bundle written from the store, then ``README.md`` and its figures rendered from it.

:func:`write_report` exports the store's runs (plus any merged bundles) into a bundle
(:mod:`mlbench.reports.bundle`), moving it into place only once complete, and renders it;
:func:`render_report` renders the same bytes from the bundle folder alone (``mlbench report --from``).
Every number comes from the bundle: the records and their aggregates (:mod:`mlbench.reports.records`),
the tables (:mod:`mlbench.reports.tables`), the figures (:mod:`mlbench.reports.figures`) and the
prediction-based sections (:mod:`mlbench.reports.comparisons`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from mlbench.api import MlbenchError
from mlbench.reports.bundle import Bundle, export_bundle, merged_records
from mlbench.reports.comparisons import bootstrap_table, comparison_pairs, frequency_bin_table, seq2seq_sources
from mlbench.reports.figures import figure1, figure2
from mlbench.reports.records import (collect_runs, filter_config, label_rows, paired_summaries, stale_entries,
                                     stale_note, stale_rows, summarise, trim_seeds, trim_series)
from mlbench.reports.table_files import Cell, Table, number, write_tables
from mlbench.reports.tables import (configurations, fingerprints, hf_lf_support, hf_lf_table, paper_table1,
                                    provenance, table1, table2)
from mlbench.reports.writing import install_fresh_bundle, write_by_rename


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

    def export(fresh: Path) -> list[Any]:
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
                    "n_resamples": n_resamples, "tasks": sorted({r.task for r in selected}),
                    "stale": stale_entries(selected)}
            _, dropped = export_bundle(tracker, selected, fresh, meta, data_dir=data_dir, copied_predictions=copied)
        merged_lost = [r for r in dropped if r.run_id in copied]
        if merged_lost:
            r = merged_lost[0]
            raise MlbenchError(
                f"{len(merged_lost)} run(s) of the merged folders were scored on another split than the task's "
                f"current one (e.g. {r.run_id}, {r.method} on {r.task}, fingerprint {r.fingerprint}); "
                "the report was not written")
        return dropped

    install_fresh_bundle(out_dir, export)
    return render_report(out_dir)


def render_report(bundle_dir: Path, out_dir: Path | None = None) -> Path:
    """Render ``README.md``, its figures and its tables (``tables/*.csv``, ``.tex``) from a bundle folder alone
    (no store, no dataset); a bundle of a comparison across tasks renders that report."""
    bundle = Bundle(bundle_dir)
    if bundle.meta.get("kind") == "across-tasks":
        from mlbench.reports.across_tasks import render_cross_task_report

        return render_cross_task_report(bundle, Path(out_dir) if out_dir is not None else Path(bundle_dir))
    out_dir = Path(out_dir) if out_dir is not None else Path(bundle_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = bundle.meta
    base_task, command, n_resamples = meta["base_task"], meta.get("command", ""), int(meta.get("n_resamples", 1000))
    records = bundle.records()
    if not any(r.task == base_task for r in records):
        raise MlbenchError(f"bundle {bundle_dir} holds no run of task {base_task!r}")
    truth = bundle.truth(base_task)  # every file read and checked before the first byte of the page is written
    bundle.check_predictions()
    stale = stale_rows(records, meta.get("stale", []), task=base_task)  # Table 1 marks a row for its base-task runs
    stale_elsewhere = sorted(stale_rows(records, meta.get("stale", [])) - stale)
    base = summarise(records, base_task)
    tables: list[Table] = []
    parts = [f"# mlbench report: {base_task}", ""]
    if command:
        parts += ["Regenerate with:", "", "```bash", command, "```", ""]
    config = meta.get("config", "all")
    parts += [
        "Every number below is read from the runs in this folder (`runs.csv`, `predictions/`, `tasks/`; "
        "`mlbench report --from` re-renders this page from them): mean ± sample std over seeds, best mean per "
        "column in bold. A row is one method in one configuration, named by its short label; the legend under "
        "Table 1 gives each label's full configuration"
        + (f" (runs selected with `--config {config}`)" if config != "all" else "")
        + ". Every table is also in `tables/` as CSV and LaTeX.",
        "",
    ]
    reruns = bundle.reruns()
    spread = rerun_spread(records, reruns, base_task)
    t1 = table1(base, stale=sorted(stale), timings=fit_timings(records, base_task), spread=spread)
    tables.append(t1)
    parts += [f"## Table 1: all methods on `{base_task}` (test)", "", t1.markdown(), ""]
    notes = []
    if any(c.suffix == " ‡" for row in t1.rows for c in row):
        notes.append("‡ some seeds of the row reused a model fitted earlier in the same process (same data and "
                     "settings; tag `mlbench.fit.reused_model`): their fit time is that earlier fit's.")
    if spread:
        settings = sorted({f"{x['rerun_threads']} torch thread(s), {x['rerun_cpu_capability'] or '?'}" for x in reruns})
        notes.append(f"Rerun |Δ| micro-F1: the largest change of the row's test micro-F1 when its seed-0 run was "
                     f"rerun under other execution settings ({'; '.join(settings)}; `reruns.csv`, written by "
                     "`benchmarks/rerun_envelope.py`): a difference between two rows smaller than it is within "
                     "what a rerun elsewhere may move.")
    if stale or stale_elsewhere:
        notes.append(stale_note(stale, meta.get("stale", []), stale_elsewhere, base_task))
    parts += [*notes, *([""] if notes else [])]
    legend, warnings = configurations(records, base_task, stale=sorted(stale))
    tables.append(legend)
    parts += ["Legend of the rows:", "", legend.markdown(), ""]
    parts += [*(f"{w}" for w in warnings), *([""] if warnings else [])]
    paper = paper_table1()
    tables.append(paper)
    parts += [
        "For reference, the paper's figures on RCV1-V2 (a different, larger corpus; compare the ordering, not the values):",
        "",
        paper.markdown(),
        "",
    ]
    shuffled_name = f"{base_task}-shuffled"
    if any(r.task == shuffled_name for r in records):
        paired_base, shuffled = paired_summaries(records, base_task, shuffled_name)
        parts += section(tables, f"Table 2: `{base_task}` vs `{shuffled_name}`", table2(paired_base, shuffled),
                         "The change columns are relative to the base task (positive = worse for losses); both "
                         "columns of a method use the seeds it ran on the shuffled task. "
                         "Paper (RCV1-V2): Seq2Seq 0/1 loss +9.3%, Seq2Set +1.2%, BR unchanged.")
        _, shuffled_warnings = configurations(records, shuffled_name)
        parts += [*shuffled_warnings, *([""] if shuffled_warnings else [])]
    series = trim_series(records, base_task)
    if series:
        write_by_rename(out_dir / "figure1_trim.png", lambda path: figure1(series, path))
        seeds = trim_seeds(records, base_task, list(series))
        parts += section(tables, "Figure 1: removing the most frequent labels", trim_table(series, seeds),
                         "Each line is one configuration; every point (k = 0 is the untrimmed task) is the mean over "
                         "the seeds the row ran at every k (the `seeds` column).", figure="figure1_trim.png")
    pairs = comparison_pairs(records, base_task)
    sources = seq2seq_sources(records, base_task)
    if any("hf_micro_f1" in s for s in base.values()):
        write_by_rename(out_dir / "figure2_hf_lf.png", lambda path: figure2(base, path))
        parts += section(tables, "Figure 2: frequent (HF) vs infrequent (LF) labels", hf_lf_table(base, sources),
                         "HF and LF are the 10% most and least frequent labels in training, among the labels with at "
                         "least one test positive (a label without one has no F1 to measure). " + hf_lf_support(truth)
                         + " The change columns give each Seq2Set row's relative change over the Seq2Seq row it "
                         "started from.", figure="figure2_hf_lf.png")
        bins = frequency_bin_table(bundle, records, truth)
        if bins is not None:
            tables.append(bins)
            parts += ["Micro-F1 by the labels' number of training documents (labels with a test positive; "
                      "seed mean ± std):", "", bins.markdown(), ""]
    boot = bootstrap_table(bundle, records, truth, pairs, n_resamples=n_resamples, spread=spread) if pairs else None
    if boot is not None:
        parts += section(tables, f"Paired bootstrap (`{base_task}` test, {n_resamples} resamples)", boot,
                         "Each row against BR, then each Seq2Set row against the Seq2Seq row it started from. "
                         "Δ = row − reference on the same documents, resampled together; over several seeds, Δ is "
                         "the difference of the two rows' seed means, every run scored on the same resample. "
                         "* marks an interval that excludes 0.")
    prov = provenance(records)
    tables.append(prov)
    parts += ["## Provenance", "", prov.markdown(), ""]
    started = sorted({r.method for r in records if "mlbench.init_from_run" in r.tags})
    if started:
        parts += [
            f"Runs of {', '.join(started)} started from another run's saved model (tag `mlbench.init_from_run`; "
            "in the paper suites, seq2set's RL phase starts from the seq2seq run of the same task and seed): "
            "their compute excludes that run's.",
            "",
        ]
    parts += ["Task fingerprints:", "", fingerprints(records), ""]
    write_tables(out_dir, tables)
    readme = out_dir / "README.md"
    write_by_rename(readme, lambda path: path.write_text("\n".join(parts)))
    return readme


def section(tables: list[Table], heading: str, table: Table, text: str, figure: str = "") -> list[str]:
    """A page section: its heading, the figure (a PNG beside the page) if any, the text and the table (which
    also joins ``tables``, to be written as CSV and LaTeX)."""
    tables.append(table)
    shown = [f"![{heading.split(':')[0]}]({figure})", ""] if figure else []
    return [f"## {heading}", "", *shown, text, "", table.markdown(), ""]


def trim_table(series: dict[str, list[tuple[int, float, float]]], seeds: dict[str, list[int]]) -> Table:
    """Figure 1's points: micro-F1 of every row at each trim level k, over the seeds it ran at every k."""
    ks = sorted({k for p in series.values() for k, _, _ in p})
    t = Table("figure1_trim", ["method", "seeds", *(f"k={k}" for k in ks)],
              caption="Figure 1: test micro-F1 after removing the k most frequent labels")
    for row, pts in series.items():
        at = {k: (mean, std) for k, mean, std in pts}
        n = len(seeds[row])
        t.add(row, ", ".join(map(str, seeds[row])),
              *(number(at[k][0], at[k][1], n) if k in at else Cell(text="–") for k in ks))
    return t


def rerun_spread(records: Sequence[Any], reruns: Sequence[dict[str, Any]], task: str) -> dict[str, float]:
    """row -> the largest |Δ micro-F1| among the reruns of its runs on ``task`` (same method, configuration and
    code digest; a rerun of older code does not count)."""
    rows = {(r.method, r.config_digest, r.code_digest): r.row_name for r in records if r.task == task}
    out: dict[str, float] = {}
    for x in reruns:
        row = rows.get((x["method"], x["config_digest"], x["code_digest"])) if x["task"] == task else None
        if row is not None:
            out[row] = max(out.get(row, 0.0), abs(x["delta_micro_f1"]))
    return out


def fit_timings(records: Sequence[Any], task: str) -> dict[str, tuple[float, bool]]:
    """row -> (mean fit seconds over its seeds on ``task``, whether some seed reused a cached model); a reused
    model counts with the time of the fit that made it (:attr:`RunRecord.timed_fit_seconds`)."""
    by_row: dict[str, list[Any]] = {}
    for r in records:
        if r.task == task:
            by_row.setdefault(r.row_name, []).append(r)
    return {row: (sum(r.timed_fit_seconds for r in rs) / len(rs), any(r.reused_fit_seconds is not None for r in rs))
            for row, rs in by_row.items()}


