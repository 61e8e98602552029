"""The page of a comparison across datasets: its bundle written from the store, its README and tables rendered.

:func:`write_cross_task_report` exports the runs of every task (their predictions and each task's labels)
as a bundle (:mod:`mlbench.reports.bundle`, ``kind`` "across-tasks" in bundle.json) and renders it;
:func:`render_cross_task_report` renders the same bytes from the bundle alone (``mlbench report --from``).
The statistics come from :mod:`mlbench.reports.crosstask`: mean ranks, Friedman and Nemenyi with the
critical-difference diagram, and Wilcoxon signed-rank tests across datasets (Holm-adjusted), each row a
configuration named by its short label. A comparison refuses variants of one dataset
(:func:`check_independent`): those tests assume independent datasets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlbench.api import MlbenchError, UsageError
from mlbench.reports.crosstask import (LOWER_IS_BETTER, CrossTaskSummary, PairedTest, cd_diagram,
                                       seed_values, summarise_across_tasks, wilcoxon_pairs)
from mlbench.reports.table_files import Cell, Table, mark_best, number

#: The metrics of the per-dataset tables and of the mean-rank table, with their column names.
#: After a per-dataset value from fewer seeds than the row's other datasets.
FEWER_SEEDS = " §"
REPORT_METRICS = (("hamming_loss", "HL ↓"), ("subset_01_loss", "0/1 loss ↓"), ("micro_f1", "micro-F1 ↑"),
                  ("macro_f1", "macro-F1 ↑"), ("example_f1", "example-F1 ↑"))


def usual_seeds(counts) -> int:
    """The seed count most of a row's datasets have (the larger on a tie): a dataset below it is one whose runs
    have not all finished, while one above it (more seeds run for a paper table) is not."""
    values, freq = np.unique(np.asarray(counts, dtype=int), return_counts=True)
    return int(values[freq == freq.max()].max()) if len(values) else 0


def score_table(summary: CrossTaskSummary, name: str, stale: set[str],
                partial: dict[tuple[str, str], list[float]] | None = None) -> Table:
    """Rows x tasks: each row's seed mean (± std in the CSV and LaTeX files), best per task in bold. The rows
    with runs on some tasks only (``partial``: their seed values, :func:`~mlbench.reports.crosstask.seed_values`)
    follow the ranked ones, marked ``(partial)``, a dash where they have no run."""
    digits = 4 if summary.metric == "hamming_loss" else 3
    t = Table(name, ["method", *summary.tasks], compact=True,
              caption=f"Test {summary.metric} per dataset, mean over seeds")
    for i, row in enumerate(summary.methods):
        cells = [Cell(text=row + (" †" if row in stale else ""))]
        most = usual_seeds(summary.seeds[i])
        for j in range(len(summary.tasks)):
            mean, std, n = summary.scores[i, j], summary.stds[i, j], int(summary.seeds[i, j])
            cells.append(number(mean, std, n, digits, suffix=FEWER_SEEDS if n < most else ""))
        t.rows.append(cells)
    for row in sorted(summary.left_out):
        cells = [Cell(text=row + (" †" if row in stale else "") + " (partial)")]
        most = usual_seeds([len(v) for (r, _), v in (partial or {}).items() if r == row])
        for task in summary.tasks:
            v = (partial or {}).get((row, task))
            cells.append(number(float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v), digits,
                                suffix=FEWER_SEEDS if len(v) < most else "")
                         if v else Cell(text="–"))
        t.rows.append(cells)
    for j in range(1, len(summary.tasks) + 1):
        mark_best(t.rows, j, summary.metric in LOWER_IS_BETTER)
    return t


def rank_table(summary: CrossTaskSummary, stale: set[str]) -> Table:
    t = Table(f"ranks_{summary.metric}", ["method", *summary.tasks, "mean rank"], compact=True,
              caption=f"Ranks on test {summary.metric} per dataset (1 = best; ties share the mean rank)")
    for i, row in enumerate(summary.methods):
        t.add(row + (" †" if row in stale else ""), *(number(x, digits=1) for x in summary.ranks[i]),
              number(summary.mean_ranks[i], digits=2))
    mark_best(t.rows, len(summary.tasks) + 1, True)
    return t


def statistics_table(summary: CrossTaskSummary) -> Table:
    t = Table(f"friedman_{summary.metric}", ["statistic", "value"],
              caption=f"Friedman test and Nemenyi critical difference on test {summary.metric}")
    for name, value, digits in (
        ("methods (k)", len(summary.methods), 0), ("datasets (N)", summary.n_tasks, 0),
        ("Friedman chi2 (tie-corrected)", summary.chi2, 3), ("Friedman p", summary.friedman_p, 6),
        ("Iman-Davenport F", summary.iman_davenport_f, 3), ("Iman-Davenport p", summary.iman_davenport_p, 6),
        (f"Nemenyi CD (alpha={summary.alpha})", summary.critical_difference, 3),
    ):
        t.add(name, number(value, digits=digits))
    return t


def mean_rank_table(summaries: Sequence[CrossTaskSummary], stale: set[str]) -> Table:
    """Rows x metrics: each row's mean rank over the datasets, per metric (lower is better)."""
    rows = list(summaries[0].methods)
    for s in summaries[1:]:
        rows += [m for m in s.methods if m not in rows]
    t = Table("mean_ranks", ["method", *(label for key, label in REPORT_METRICS if key in
                                         {s.metric for s in summaries})], compact=True,
              caption="Mean rank over the datasets, per test metric (1 = best)")
    for row in rows:
        cells = [Cell(text=row + (" †" if row in stale else ""))]
        for s in summaries:
            cells.append(number(float(s.mean_ranks[s.methods.index(row)]), digits=2) if row in s.methods
                         else Cell(text="–"))
        t.rows.append(cells)
    for j in range(1, len(summaries) + 1):
        mark_best(t.rows, j, True)
    return t


def wilcoxon_table(tests: Sequence[PairedTest], metric: str) -> Table:
    t = Table(f"wilcoxon_{metric}", ["method", "vs", "datasets", "wins/ties/losses", "median Δ", "W", "p",
                                     "p (Holm)"],
              caption=f"Wilcoxon signed-rank tests across datasets on test {metric} (Holm-adjusted)")
    for x in tests:
        t.add(x.row, x.reference, str(x.tasks), f"{x.wins}/{x.ties}/{x.losses}",
              number(x.median_difference, digits=4, signed=True), number(x.statistic, digits=1),
              number(x.p_value, digits=4), number(x.p_holm, digits=4, suffix="*" if x.significant else ""))
    return t


def dataset_of(task: str) -> str:
    """The dataset a task is a variant of (``reuters-trim10`` -> ``reuters``); its own name when it is none. A
    dataset this installation does not know (its runs came from another bundle) loses its variant suffixes."""
    from mlbench.data.variants import parse_variant, split_task_name
    from mlbench.registry import dataset_names

    try:
        return split_task_name(task, dataset_names())[0]
    except MlbenchError:
        parts = task.split("-")
        while len(parts) > 1:
            try:
                parse_variant(parts[-1])
            except MlbenchError:
                break
            parts.pop()
        return "-".join(parts)


def check_independent(tasks: Sequence[str]) -> None:
    """Refuse a comparison over variants of one dataset: Friedman, Nemenyi and Wilcoxon across tasks assume
    independent datasets (Demšar 2006), and a trimmed or shuffled copy of a corpus is not one."""
    seen: dict[str, list[str]] = {}
    for task in tasks:
        seen.setdefault(dataset_of(task), []).append(task)
    shared = {d: ts for d, ts in seen.items() if len(ts) > 1}
    if shared:
        d, ts = next(iter(shared.items()))
        raise UsageError(f"--tasks {', '.join(ts)} are variants of one dataset ({d}); a comparison across tasks "
                         "ranks methods over independent datasets (Friedman and Nemenyi assume them), so give each "
                         "dataset once (its variants are compared on its own report: mlbench report --task "
                         f"{d})")


def write_cross_task_report(
    tracker: Any, records: Sequence[Any], tasks: Sequence[str], out_dir: Path, metric: str = "micro_f1",
    command: str = "", data_dir: Path | None = None, copied: dict[str, Path | None] | None = None,
    alpha: float = 0.05,
) -> Path:
    """Export the comparison's evidence (runs, predictions, labels) as a bundle in ``out_dir``, then render it
    (:func:`render_cross_task_report`); ``mlbench report --from out_dir`` renders the same bytes.

    Per task only the runs of one split count: a task whose runs hold several fingerprints keeps the newest
    (by start time), the others are left out with a warning. A task this machine cannot build (its runs come
    from another bundle's metrics) keeps its runs without predictions.
    """
    import logging

    from mlbench.reports.bundle import export_bundle
    from mlbench.reports.records import stale_entries
    from mlbench.reports.writing import install_fresh_bundle

    summarise_across_tasks(records, tasks, metric=metric, alpha=alpha)  # fails before anything is written
    newest: dict[str, tuple[int, str]] = {}
    for r in records:
        if r.task not in newest or newest[r.task][0] < r.start_time:
            newest[r.task] = (r.start_time, r.fingerprint)
    kept = [r for r in records if r.task in tasks and r.fingerprint == newest[r.task][1]]
    for r in records:
        if r.task in tasks and r.fingerprint != newest[r.task][1]:
            logging.getLogger(__name__).warning("run %s (%s on %s) used an older split (fingerprint %s): left out",
                                                r.run_id, r.method, r.task, r.fingerprint)
    meta = {"kind": "across-tasks", "base_task": tasks[0], "tasks": list(tasks), "metric": metric,
            "command": command, "stale": stale_entries(kept), "skipped": skipped_cells(kept, tasks, data_dir)}

    def export(fresh: Path) -> list[Any]:
        return export_bundle(tracker, kept, fresh, meta, data_dir=data_dir, copied_predictions=copied or {},
                             metrics_only_tasks=True)[1]

    install_fresh_bundle(Path(out_dir), export)
    from mlbench.reports.bundle import Bundle

    return render_cross_task_report(Bundle(Path(out_dir)), Path(out_dir))


def skipped_cells(records: Sequence[Any], tasks: Sequence[str], data_dir: Path | None) -> list[dict[str, str]]:
    """(method, task, reason) of every method of the records that has no run on a task: the method cannot read
    the task (its inputs), or it did not run there."""
    from mlbench.api import incompatibility
    from mlbench.data.tasks import get_task
    from mlbench.registry import get_method

    ran = {(r.method, r.task) for r in records}
    out = []
    for method in sorted({r.method for r in records}):
        for task in tasks:
            if (method, task) in ran:
                continue
            reason = "no run"
            try:
                reason = incompatibility(get_method(method), get_task(task, data_dir=data_dir).inputs, task) or reason
            except MlbenchError:
                pass  # an unknown method or a task this machine cannot build: just no run
            out.append({"method": method, "task": task, "reason": reason})
    return out


def render_cross_task_report(bundle: Any, out_dir: Path) -> Path:
    """README.md, the CD diagram and every table (``tables/*.csv``, ``.tex``) of a comparison across tasks,
    from its bundle alone."""
    from mlbench.reports.comparisons import REFERENCE_METHOD, SEQ2SET_FAMILY
    from mlbench.reports.published import published_section, read_published
    from mlbench.reports.records import row_method, stale_note, stale_rows
    from mlbench.reports.writing import write_by_rename
    from mlbench.reports.tables import configurations, fingerprints, provenance

    meta = bundle.meta
    tasks, metric, command = list(meta["tasks"]), meta.get("metric", "micro_f1"), meta.get("command", "")
    records = bundle.records()
    bundle.check_predictions()
    published = read_published(bundle.folder)  # checked before anything is written
    stale = stale_rows(records, meta.get("stale", []))
    out_dir.mkdir(parents=True, exist_ok=True)
    main = summarise_across_tasks(records, tasks, metric=metric)
    others = [summarise_across_tasks(records, tasks, metric=key) for key, _ in REPORT_METRICS
              if key != metric and any(key in r.metrics for r in records)]
    by_metric = {s.metric: s for s in [main, *others]}
    summaries = [by_metric[key] for key, _ in REPORT_METRICS if key in by_metric] or [main]
    write_by_rename(out_dir / "cd_diagram.png", lambda path: cd_diagram(main, path))
    rows = main.methods
    # the pairwise tests also take the rows that ran on some datasets only (over the datasets both ran)
    every = [*rows, *sorted(main.left_out)]
    pairs = [(row, "seq2seq" + row[len("seq2set"):]) for row in every
             if row_method(row).startswith(SEQ2SET_FAMILY) and "seq2seq" + row[len("seq2set"):] in every]
    reference = next((row for row in sorted(rows, key=len) if row_method(row) == REFERENCE_METHOD), None)
    if reference is not None:
        pairs += [(row, reference) for row in every if row != reference and (row, reference) not in pairs]
    tests = wilcoxon_pairs(records, tasks, pairs, metric=metric)
    pub_findings, pub_lines, pub_tables = published_section(records, tasks, published) if published else ([], [], [])
    tables: list[Table] = []
    direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
    parts = [f"# mlbench: {len(rows)} configurations across {len(tasks)} datasets", ""]
    if command:
        parts += ["Regenerate with:", "", "```bash", command, "```", ""]
    parts += ["Every number below is read from the runs in this folder (`runs.csv`, `predictions/`, `tasks/`; "
              "`mlbench report --from` re-renders this page from them). Per dataset, a row's value is its mean "
              "over seeds; datasets rank the rows (1 = best). Every table is also in `tables/` as CSV and LaTeX "
              "(with the standard deviations over seeds).", "", "## Findings", ""]
    parts += [f"- {line}" for line in findings(main, tests)] + pub_findings + [""]
    ranks_all = mean_rank_table(summaries, stale)
    tables.append(ranks_all)
    parts += ["## Mean rank per metric", "", ranks_all.markdown(), ""]
    stats = statistics_table(main)
    tables.append(stats)
    parts += [f"## Friedman test and Nemenyi critical difference on test {metric} ({direction})", "",
              "![critical-difference diagram](cd_diagram.png)", "",
              "Rows joined by a bar do not differ significantly (their mean ranks are less than CD apart; "
              "Demšar 2006).", "", stats.markdown(), ""]
    if tests:
        wt = wilcoxon_table(tests, metric)
        tables.append(wt)
        parts += [f"## Wilcoxon signed-rank tests across datasets (test {metric})", "",
                  "Each Seq2Set row against its Seq2Seq twin, and every row against BR, over the datasets both "
                  "ran: wins/ties/losses count datasets, median Δ is row − reference (positive = better), p is "
                  "two-sided and Holm-adjusted over the whole table; * marks p (Holm) < 0.05.", "",
                  wt.markdown(), ""]
    parts += pub_lines
    tables += pub_tables
    parts += ["## Per dataset", ""]
    for s in summaries:
        label = dict(REPORT_METRICS).get(s.metric, s.metric)
        t = score_table(s, f"scores_{s.metric}", stale, seed_values(records, tasks, s.metric))
        tables.append(t)
        parts += [f"### Test {label}", "", t.markdown(), ""]
    if any(c.suffix == FEWER_SEEDS for t in tables for r in t.rows for c in r):
        parts += [f"{FEWER_SEEDS.strip()} the cell holds fewer seeds than most of the row's datasets (its other runs have "
                  "not finished): its mean is less certain than theirs.", ""]
    rt = rank_table(main, stale)
    tables.append(rt)
    parts += [f"### Ranks on test {metric}", "", rt.markdown(), ""]
    skipped = meta.get("skipped", [])
    left = {m: ts for m, ts in main.left_out.items()}
    if skipped or left:
        parts += ["## Cells without a run", ""]
        if skipped:
            st = Table("skipped", ["method", "reason", "tasks"], caption="Cells of the matrix without a run")
            grouped: dict[tuple[str, str], list[str]] = {}
            for item in skipped:
                reason = item["reason"].replace(item["task"], "the task")
                grouped.setdefault((item["method"], reason), []).append(item["task"])
            for (method, reason), ts in grouped.items():
                st.add(method, reason, ", ".join(ts))
            tables.append(st)
            parts += [st.markdown(), ""]
        if left:
            def where(row: str, missing: list[str]) -> str:
                ran = [t for t in tasks if t not in missing]
                return f"only {', '.join(ran)}" if len(ran) < len(missing) else f"missing {', '.join(missing)}"

            parts += ["Rows left out of the ranking (no run on some dataset; the per-dataset tables show them as "
                      "`(partial)`, and the Wilcoxon tests take them over the datasets they ran, five at least): "
                      + "; ".join(f"{m} ({where(m, ts)})" for m, ts in sorted(left.items())) + ".", ""]
    if stale:
        parts += [stale_note(stale, meta.get("stale", [])), ""]
    legend = Table("legend", ["row", "configuration", "preset", "config digest", "runs", "code digest"],
                   caption="The configurations behind the rows")
    seen: set[str] = set()
    for task in tasks:
        part, _ = configurations(records, task, stale=sorted(stale))
        for row in part.rows:
            if row[0].text not in seen:
                seen.add(row[0].text)
                n_runs = sum(1 for r in records if r.row_name == row[0].text.removesuffix(" †"))
                legend.rows.append([row[0], row[1], row[2], row[3], Cell(text=str(n_runs)), row[5]])
    tables.append(legend)
    prov = provenance(records)
    tables.append(prov)
    parts += ["## Legend of the rows", "", legend.markdown(), "", "## Provenance", "", prov.markdown(), "",
              "Task fingerprints:", "", fingerprints(records), ""]
    from mlbench.reports.table_files import write_tables

    write_tables(out_dir, tables)
    readme = out_dir / "README.md"
    write_by_rename(readme, lambda path: path.write_text("\n".join(parts)))
    return readme


def findings(summary: CrossTaskSummary, tests: Sequence[PairedTest]) -> list[str]:
    """The report's first lines, in words: who ranks first, whether the ranks differ, the Seq2Set question."""
    out = [f"On test {summary.metric}, `{summary.methods[0]}` has the best mean rank "
           f"({summary.mean_ranks[0]:.2f} of {len(summary.methods)}) over {summary.n_tasks} datasets; "
           + (f"the Friedman test says the ranks differ (p = {summary.friedman_p:.2g})"
              if summary.friedman_p < 0.05 else
              f"the Friedman test finds no difference among the ranks (p = {summary.friedman_p:.2g})") + "."]
    if np.isfinite(summary.critical_difference) and len(summary.methods) > 1:
        near = [m for m, r in zip(summary.methods[1:], summary.mean_ranks[1:])
                if r - summary.mean_ranks[0] < summary.critical_difference]
        out.append(f"Nemenyi (CD = {summary.critical_difference:.2f}): "
                   + (f"{', '.join(f'`{m}`' for m in near)} cannot be told apart from it."
                      if near else "every other row ranks significantly lower."))
    for t in tests:
        if t.reference.startswith("seq2seq"):
            verdict = "significantly better" if t.significant and t.median_difference > 0 else (
                "significantly worse" if t.significant else "not significantly different")
            out.append(f"`{t.row}` against `{t.reference}`: {t.wins} wins, {t.ties} ties, {t.losses} losses over "
                       f"{t.tasks} datasets (median Δ {t.median_difference:+.4f}, Wilcoxon p = {t.p_value:.3g}, "
                       f"Holm {t.p_holm:.3g}): {verdict}.")
    return out
