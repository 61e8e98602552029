"""A comparison across datasets set beside a published one: ``published.json`` in the report's bundle.

The file holds the figures another study published for methods mlbench also runs, on the same datasets and
their standard train/test splits, and says where they come from::

    {"source": {"citation": "...", "location": "...", "protocol": "..."},
     "figures": [{"dataset": "emotions", "method": "BR", "row": "br", "metric": "micro_f1", "value": 0.685}, ...]}

``metric`` is one of :data:`MEASURES`, the measures such studies publish (subset accuracy is 1 − mlbench's
subset 0/1 loss); ``row`` names the mlbench method the published one is set beside, and the report takes that
method's default row on every dataset (its shortest row name, as the Wilcoxon tests take BR's).
``benchmarks/published_figures.py`` writes the file from a study's released results. Like ``reruns.csv`` it is
evidence beside the runs, and it is read as untrusted input: one bounded file of the bundle, every field
checked before anything is rendered, its texts escaped so that they show as written (no markup of theirs
reaches the page).

What the report shows: per measure, each pair's value per dataset (mlbench / published), and an agreement
table: on how many datasets mlbench's value is the better one, the median difference (positive = mlbench
better), Spearman's ρ between the two columns over the datasets (does mlbench find the same datasets hard?),
and each method's mean rank among the pairs in both studies (does mlbench order the methods as the study
does?).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from mlbench.reports.bundle_input import BundleError, _one_line
from mlbench.reports.table_files import Cell, Table, number

#: The bundle file.
PUBLISHED = "published.json"
#: Published measure -> (mlbench metric, how to turn mlbench's value into the published measure, lower is better).
MEASURES = {
    "hamming_loss": ("hamming_loss", lambda v: v, True),
    "micro_f1": ("micro_f1", lambda v: v, False),
    "subset_accuracy": ("subset_01_loss", lambda v: 1.0 - v, False),
}
LABELS = {"hamming_loss": "Hamming loss ↓", "micro_f1": "micro-F1 ↑", "subset_accuracy": "subset accuracy ↑"}
MAX_BYTES = 1 << 20
MAX_FIGURES = 20_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


@dataclass(frozen=True)
class Published:
    citation: str
    location: str
    protocol: str
    figures: tuple[tuple[str, str, str, str, float], ...]  # (dataset, method, row, measure, value)

    def pairs(self) -> list[tuple[str, str]]:
        """(published method, mlbench method) in the file's order."""
        seen: dict[tuple[str, str], None] = {}
        for _, method, row, _, _ in self.figures:
            seen.setdefault((method, row), None)
        return list(seen)


def read_published(folder: Any) -> Published | None:
    """The bundle's ``published.json``, checked (None when the bundle has none)."""
    if not os.path.lexists(folder.root / PUBLISHED):
        return None
    where = folder.where(PUBLISHED)
    try:
        data = json.loads(folder.read_text(PUBLISHED, limit=MAX_BYTES))
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or an integer too long to convert
        raise BundleError(f"{where}: not JSON ({str(exc)[:80]})") from None
    if not isinstance(data, dict) or set(data) != {"source", "figures"}:
        raise BundleError(f"{where}: an object with fields source and figures expected")
    source = data["source"]
    if not (isinstance(source, dict) and set(source) == {"citation", "location", "protocol"}
            and all(isinstance(v, str) and _one_line(v, 3000) for v in source.values())):
        raise BundleError(f"{where}: field source must hold one-line texts citation, location and protocol")
    figures = data["figures"]
    if not isinstance(figures, list) or not 0 < len(figures) <= MAX_FIGURES:
        raise BundleError(f"{where}: field figures must be a list of 1 to {MAX_FIGURES:,} items")
    out, seen = [], set()
    for n, item in enumerate(figures):
        at = f"{where}: figures[{n}]"
        if not isinstance(item, dict) or set(item) != {"dataset", "method", "row", "metric", "value"}:
            raise BundleError(f"{at}: an object with fields dataset, method, row, metric and value expected")
        texts = [item[k] for k in ("dataset", "method", "row")]
        if not all(isinstance(v, str) and _NAME.fullmatch(v) for v in texts):
            raise BundleError(f"{at}: dataset, method and row must be plain names")
        if not isinstance(item["metric"], str) or item["metric"] not in MEASURES:
            raise BundleError(f"{at}: metric {str(item['metric'])[:40]!r} is not one of {', '.join(MEASURES)}")
        value = item["value"]
        # the range first: it is cheap on any int, where isfinite overflows on a long one (and NaN fails it)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value <= 1 and math.isfinite(value)):
            raise BundleError(f"{at}: value must be a number in [0, 1]")
        key = (item["dataset"], item["method"], item["row"], item["metric"])
        if key in seen:
            raise BundleError(f"{at}: a second figure for {key[1]} beside {key[2]} on {key[0]} ({key[3]})")
        seen.add(key)
        out.append((*texts, item["metric"], float(value)))
    return Published(source["citation"], source["location"], source["protocol"], tuple(out))


def mlbench_values(records: Sequence[Any], tasks: Sequence[str], pub: Published,
                   measure: str) -> dict[tuple[str, str], tuple[str, float]]:
    """{(mlbench method, dataset): (its row, the seed mean of the measure)} for the pairs' methods: one row per
    method on every dataset, its default configuration (the method's shortest row name among the records), so
    that a dataset where that row did not run shows no value rather than another configuration's."""
    from mlbench.reports.crosstask import seed_values
    from mlbench.reports.records import row_method

    metric, convert, _ = MEASURES[measure]
    values = seed_values(records, tasks, metric)
    wanted = {row for _, row in pub.pairs()}
    default: dict[str, str] = {}
    for row in sorted({r.row_name for r in records if r.task in tasks}, key=lambda name: (len(name), name)):
        default.setdefault(row_method(row), row)
    return {(method, task): (row, float(convert(float(np.mean(values[(row, task)])))))
            for method, row in default.items() if method in wanted for task in tasks if (row, task) in values}


def _mean_ranks(matrix: np.ndarray, lower: bool) -> np.ndarray:
    from mlbench.reports.crosstask import rank_matrix

    return rank_matrix(matrix, lower).mean(axis=1)


def _text(value: str) -> str:
    """A text of the file as it is written on the page: HTML and Markdown's own characters escaped."""
    return re.sub(r"([\\`*_\[\]])", r"\\\1", html.escape(value, quote=False))


def published_section(records: Sequence[Any], tasks: Sequence[str],
                      pub: Published) -> tuple[list[str], list[str], list[Table]]:
    """(findings for the top of the page, the section's Markdown lines, its tables)."""
    from scipy.stats import spearmanr

    pairs = pub.pairs()
    datasets = [t for t in tasks if any(f[0] == t for f in pub.figures)]
    if not datasets:  # the study has none of the report's datasets: nothing to set side by side
        return [], [], []
    theirs = {(f[1], f[2], f[0], f[3]): f[4] for f in pub.figures}  # (method, row, dataset, measure)
    tables: list[Table] = []
    lines = ["## Against a published comparison", "",
             f"Source: {_text(pub.citation)} Read from {_text(pub.location)}", "",
             f"Their protocol, and ours: {_text(pub.protocol)}", "",
             "Each cell is mlbench / published on the same dataset and test split; mlbench's value is the mean over "
             "its seeds. Agreement: *better* counts the datasets where mlbench's value is the better one, median Δ "
             "is mlbench − published with the sign turned so that positive means mlbench is better, ρ is Spearman's "
             "rank correlation between the two columns over the datasets both have (do both find the same datasets "
             "hard?), and the mean ranks order the methods of the pairs on the datasets where all of them have a "
             "value, in each study.", ""]
    agreement = Table("published_agreement", ["pair", "measure", "datasets", "mlbench better", "median Δ", "ρ",
                                              "mean rank, mlbench", "mean rank, published"],
                      caption="mlbench against the published figures: agreement per method and measure")
    summary: list[str] = []
    f1_pairs: list[tuple[str, int, int, float]] = []  # (row, datasets where mlbench is better, datasets, rho)
    f1_cells: dict[str, list[float]] = {}  # dataset -> the pairs' micro-F1 differences (positive = mlbench better)
    f1_order: tuple[list[str], list[str], list[str]] | None = None
    for measure in MEASURES:
        mine = mlbench_values(records, tasks, pub, measure)
        lower = MEASURES[measure][2]
        used = [(m, r) for m, r in pairs if any((m, r, d, measure) in theirs for d in datasets)]
        if not used:
            continue
        t = Table(f"published_{measure}", ["dataset", *(f"{r} / {m}" for m, r in used)],
                  caption=f"Test {measure}: mlbench / published")
        for d in datasets:
            cells: list[Cell] = [Cell(text=d)]
            for m, r in used:
                a, b = mine.get((r, d)), theirs.get((m, r, d, measure))
                cells.append(Cell(text=f"{'–' if a is None else f'{a[1]:.3f}'} / {'–' if b is None else f'{b:.3f}'}"))
            t.rows.append(cells)
        tables.append(t)
        lines += [f"### {LABELS[measure]}", "", t.markdown(), ""]
        # the methods are ranked among the pairs mlbench ran (a pair whose row has no run is left out of the ranks,
        # not allowed to empty them), on the datasets where every one of those has both values
        ranked = [(m, r) for m, r in used if any((r, d) in mine for d in datasets)]
        complete = [d for d in datasets if all((r, d) in mine and (m, r, d, measure) in theirs for m, r in ranked)]
        rank_of: dict[tuple[str, str], tuple[float, float]] = {}
        if complete and len(ranked) > 1:
            ranks_mine = _mean_ranks(np.array([[mine[(r, d)][1] for d in complete] for _, r in ranked]), lower)
            ranks_theirs = _mean_ranks(np.array([[theirs[(m, r, d, measure)] for d in complete] for m, r in ranked]),
                                       lower)
            rank_of = {pair: (float(x), float(y)) for pair, x, y in zip(ranked, ranks_mine, ranks_theirs)}
        for m, r in used:
            both = [d for d in datasets if (r, d) in mine and (m, r, d, measure) in theirs]
            a = np.array([mine[(r, d)][1] for d in both])
            b = np.array([theirs[(m, r, d, measure)] for d in both])
            delta = (b - a) if lower else (a - b)
            better = int(np.sum(np.round(delta, 3) > 0))
            rho = float(spearmanr(a, b).statistic) if len(both) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0 else float("nan")
            agreement.add(f"{r} / {m}", measure, str(len(both)), f"{better} of {len(both)}",
                          number(float(np.median(delta)) if both else float("nan"), digits=3, signed=True),
                          number(rho, digits=2),
                          *((number(rank_of[(m, r)][0], digits=2), number(rank_of[(m, r)][1], digits=2))
                            if (m, r) in rank_of else (Cell(text="–"), Cell(text="–"))))
            if measure == "micro_f1" and both:
                f1_pairs.append((r, better, len(both), rho))
                for d, x in zip(both, delta):
                    f1_cells.setdefault(d, []).append(float(np.round(x, 3)))
        if measure == "micro_f1" and rank_of:
            f1_order = (complete, [pair[1] for pair in sorted(rank_of, key=lambda pair: rank_of[pair][0])],
                        [pair[1] for pair in sorted(rank_of, key=lambda pair: rank_of[pair][1])])
    if f1_pairs:
        rhos = [x[3] for x in f1_pairs if np.isfinite(x[3])]
        summary.append(
            f"Against the published comparison below ({len(f1_cells)} shared datasets, {len(f1_pairs)} method pairs, "
            f"test micro-F1): mlbench's value is the higher one in {sum(x[1] for x in f1_pairs)} of "
            f"{sum(x[2] for x in f1_pairs)} cells ({', '.join(f'{r} {b}/{n}' for r, b, n, _ in f1_pairs)})"
            + (f"; Spearman's ρ between the two studies' values over the datasets is {min(rhos):.2f}–{max(rhos):.2f} "
               "per pair" if rhos else "") + ".")
        below = [d for d in datasets if f1_cells.get(d) and all(x < 0 for x in f1_cells[d])]
        above = [d for d in datasets if f1_cells.get(d) and all(x > 0 for x in f1_cells[d])]
        if below or above:
            summary.append("mlbench is " + "; ".join(
                part for part in (f"below the study for every pair compared on {', '.join(below)}" if below else "",
                                  f"above it for every pair compared on {', '.join(above)}" if above else "")
                if part) + ".")
    if f1_order is not None:
        complete, mine_order, their_order = f1_order
        summary.append(f"On the {len(complete)} datasets where every ranked pair has a micro-F1, the methods rank "
                       f"{', '.join(mine_order)} in mlbench and {', '.join(their_order)} in the study"
                       + (" (the same order)." if mine_order == their_order else "."))
    tables.append(agreement)
    lines += ["### Agreement", "", agreement.markdown(), ""]
    return [f"- {s}" for s in summary], lines, tables
