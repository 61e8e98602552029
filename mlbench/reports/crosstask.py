"""Comparisons across tasks (Demšar 2006): a metric per method and task, mean ranks, Friedman, Nemenyi.

Input is the list of :class:`~mlbench.reports.records.RunRecord` that
``records.collect_runs`` reads from the store. Per (method, task) the metric
is the mean over seeds; each task ranks the methods (1 = best, ties share the
mean rank); the Friedman test asks whether the mean ranks differ more than
chance allows, and the Nemenyi critical difference says which pairs do: two
methods whose mean ranks differ by less than CD are joined by a bar in the
critical-difference diagram.

Only methods with a value on every task enter the ranking (the Friedman test
needs complete blocks); the others are named in the summary.

Statistics: ``scipy.stats.friedmanchisquare`` (with scipy's correction for
ties), the Iman-Davenport F form of the same statistic with its F(k-1,
(k-1)(N-1)) p-value, and the Nemenyi critical value q_alpha from the
studentized range distribution with infinite degrees of freedom
(``scipy.stats.studentized_range``), divided by sqrt(2), which reproduces
Demšar's table (q_0.05 = 2.569 for four methods).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlbench.api import MlbenchError

#: Metrics where lower is better; every other metric ranks higher-is-better.
LOWER_IS_BETTER = frozenset({"hamming_loss", "subset_01_loss", "compute_seconds"})


@dataclass
class CrossTaskSummary:
    metric: str
    methods: list[str]  # ordered by mean rank, best first
    tasks: list[str]
    scores: np.ndarray  # methods x tasks, mean over seeds
    stds: np.ndarray  # methods x tasks, sample std over seeds (0 for one seed)
    seeds: np.ndarray  # methods x tasks, number of seeds behind each mean
    ranks: np.ndarray  # methods x tasks, 1 = best
    mean_ranks: np.ndarray
    chi2: float = float("nan")
    friedman_p: float = float("nan")
    iman_davenport_f: float = float("nan")
    iman_davenport_p: float = float("nan")
    critical_difference: float = float("nan")
    alpha: float = 0.05
    left_out: dict[str, list[str]] = field(default_factory=dict)  # method -> tasks it has no run on

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)


def score_matrix(records: Sequence[Any], tasks: Sequence[str],
                 metric: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, dict]:
    """(rows, scores, their stds over seeds, seed counts, left out) over the report rows with a ``metric`` on every task.

    A row is one method in one configuration (``RunRecord.row_name``, as in the one-task report): runs of
    the same method with other settings are another row, never averaged in. Per task only the runs of its
    newest fingerprint count (older runs were on another split or label set).
    """
    values = seed_values(records, tasks, metric)
    all_methods = sorted({m for m, _ in values})
    left_out = {m: [t for t in tasks if (m, t) not in values] for m in all_methods}
    left_out = {m: ts for m, ts in left_out.items() if ts}
    methods = [m for m in all_methods if m not in left_out]
    scores = np.array([[np.mean(values[(m, t)]) for t in tasks] for m in methods], dtype=float).reshape(len(methods), len(tasks))
    stds = np.array([[np.std(values[(m, t)], ddof=1) if len(values[(m, t)]) > 1 else 0.0 for t in tasks]
                     for m in methods], dtype=float).reshape(len(methods), len(tasks))
    seeds = np.array([[len(values[(m, t)]) for t in tasks] for m in methods], dtype=int).reshape(len(methods), len(tasks))
    return methods, scores, stds, seeds, left_out


def seed_values(records: Sequence[Any], tasks: Sequence[str], metric: str) -> dict[tuple[str, str], list[float]]:
    """``{(row, task): [metric of each seed's run]}`` over the runs of each task's newest fingerprint."""
    newest: dict[str, tuple[int, str]] = {}
    for r in records:
        if r.task in tasks and metric in r.metrics:
            if r.task not in newest or newest[r.task][0] < r.start_time:
                newest[r.task] = (r.start_time, r.fingerprint)
    values: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if r.task in newest and r.fingerprint == newest[r.task][1] and metric in r.metrics:
            values.setdefault((r.row_name, r.task), []).append(float(r.metrics[metric]))
    return values


def _some(names: Sequence[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def rank_matrix(scores: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """Per column (task), ranks of the rows (methods): 1 = best, ties share their mean rank."""
    from scipy.stats import rankdata

    keyed = scores if lower_is_better else -scores
    return np.column_stack([rankdata(keyed[:, j]) for j in range(scores.shape[1])]) if scores.size else scores


def nemenyi_critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Demšar's CD = q_alpha * sqrt(k (k + 1) / (6 N)) for k methods on N tasks."""
    from scipy.stats import studentized_range

    q = studentized_range.ppf(1.0 - alpha, k, math.inf) / math.sqrt(2.0)
    return float(q * math.sqrt(k * (k + 1) / (6.0 * n)))


def summarise_across_tasks(
    records: Sequence[Any], tasks: Sequence[str], metric: str = "micro_f1", alpha: float = 0.05
) -> CrossTaskSummary:
    from scipy.stats import f as f_dist
    from scipy.stats import friedmanchisquare

    tasks = list(tasks)
    methods, scores, stds, seeds, left_out = score_matrix(records, tasks, metric)
    if not methods:
        raise MlbenchError(f"no method has a finished run with test {metric} on every task of {', '.join(tasks)}"
                           + (f" (rows with some of them: {_some(sorted(left_out))})" if left_out else "")
                           + "; run `mlbench bench` on the missing tasks, or add a report folder's runs with "
                             "--merge DIR")
    ranks = rank_matrix(scores, metric in LOWER_IS_BETTER)
    mean_ranks = ranks.mean(axis=1)
    order = np.argsort(mean_ranks, kind="stable")
    s = CrossTaskSummary(
        metric=metric,
        methods=[methods[i] for i in order],
        tasks=tasks,
        scores=scores[order],
        stds=stds[order],
        seeds=seeds[order],
        ranks=ranks[order],
        mean_ranks=mean_ranks[order],
        alpha=alpha,
        left_out=left_out,
    )
    k, n = len(methods), len(tasks)
    if k >= 3 and n >= 2:
        if np.all(ranks == ranks[:1, :]):  # every method tied on every task: no evidence either way
            s.chi2, s.friedman_p = 0.0, 1.0
        else:
            res = friedmanchisquare(*scores)
            s.chi2, s.friedman_p = float(res.statistic), float(res.pvalue)
        denom = n * (k - 1) - s.chi2
        if denom > 0:
            s.iman_davenport_f = (n - 1) * s.chi2 / denom
            s.iman_davenport_p = float(f_dist.sf(s.iman_davenport_f, k - 1, (k - 1) * (n - 1)))
        else:
            s.iman_davenport_f, s.iman_davenport_p = float("inf"), 0.0
    if k >= 2 and n >= 1:
        s.critical_difference = nemenyi_critical_difference(k, n, alpha)
    return s


@dataclass
class PairedTest:
    """A Wilcoxon signed-rank test of two rows over the tasks both ran (Demšar 2006's test for one pair)."""

    row: str
    reference: str
    tasks: int
    wins: int  # tasks where ``row`` is better than ``reference``
    ties: int
    losses: int
    median_difference: float  # of row minus reference (oriented: positive is better)
    statistic: float
    p_value: float
    p_holm: float = float("nan")  # adjusted over the family of tests it was run with (Holm 1979)

    @property
    def significant(self) -> bool:
        return self.p_holm < 0.05


def wilcoxon_pairs(records: Sequence[Any], tasks: Sequence[str], pairs: Sequence[tuple[str, str]],
                   metric: str = "micro_f1") -> list[PairedTest]:
    """Wilcoxon signed-rank tests (``scipy.stats.wilcoxon``, two-sided, zero differences split as its "zsplit"
    does) of each ``(row, reference)`` pair over the tasks both ran, the p-values Holm-adjusted as one family.
    A pair with fewer than five tasks in common is left out (the test cannot reach 0.05 with fewer)."""
    from scipy.stats import wilcoxon

    means = {k: float(np.mean(v)) for k, v in seed_values(records, tasks, metric).items()}
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    out: list[PairedTest] = []
    for row, ref in pairs:
        common = [t for t in tasks if (row, t) in means and (ref, t) in means]
        if len(common) < 5:
            continue
        diff = np.array([sign * (means[(row, t)] - means[(ref, t)]) for t in common])
        if np.allclose(diff, 0.0):
            stat, p = 0.0, 1.0
        else:
            res = wilcoxon(diff, zero_method="zsplit", alternative="two-sided")
            stat, p = float(res.statistic), float(res.pvalue)
        out.append(PairedTest(row, ref, len(common), int((diff > 0).sum()), int((diff == 0).sum()),
                              int((diff < 0).sum()), float(np.median(diff)), stat, p))
    for test, adjusted in zip(out, holm([t.p_value for t in out])):
        test.p_holm = adjusted
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (monotone, capped at 1). Written here: six lines
    against a statsmodels dependency for one function."""
    order = np.argsort(p_values, kind="stable")
    m, adjusted, running = len(p_values), [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def cliques(mean_ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """Maximal runs [i, j] of rank-sorted methods whose mean ranks differ by less than ``cd``."""
    out: list[tuple[int, int]] = []
    n = len(mean_ranks)
    for i in range(n):
        j = i
        while j + 1 < n and mean_ranks[j + 1] - mean_ranks[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in out):
            out.append((i, j))
    return out


def cd_diagram(summary: CrossTaskSummary, path: Path) -> Path:
    """Demšar's critical-difference diagram: the rank axis, each method at its mean rank, bars over cliques."""
    import matplotlib.pyplot as plt

    fig = cd_figure(summary)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, metadata={"Software": None}, bbox_inches="tight")  # no software stamp: same bytes
    plt.close(fig)
    return path


def cd_figure(summary: CrossTaskSummary) -> Any:
    """The matplotlib figure of :func:`cd_diagram`, unsaved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlbench.reports.figures import row_styles

    k = len(summary.methods)
    styles = row_styles(summary.methods)  # each method's colour, as in every other figure
    lo, hi = 1, max(k, 2)
    half = (k + 1) // 2
    bars = cliques(summary.mean_ranks, summary.critical_difference) if np.isfinite(summary.critical_difference) else []
    lowest_bar = -0.15 - 0.1 * max(len(bars) - 1, 0)  # the labels' lines start below the clique bars
    height = 1.2 + 0.32 * max(half, k - half) + 0.2 * len(bars)
    fig, ax = plt.subplots(figsize=(7.5, height))
    ax.set_xlim(lo - 0.6, hi + 0.6)
    ax.set_ylim(-height + 0.4, 0.9)
    ax.axis("off")
    # rank 1 (best) on the left, as in Demšar's figures
    ax.plot([lo, hi], [0, 0], color="black", lw=1)
    for r in range(lo, hi + 1):
        ax.plot([r, r], [0, 0.08], color="black", lw=1)
        ax.text(r, 0.15, str(r), ha="center", va="bottom", fontsize=9)
    if np.isfinite(summary.critical_difference):
        cd = summary.critical_difference
        ax.plot([lo, lo + cd], [0.6, 0.6], color="black", lw=1.5)
        for x in (lo, lo + cd):
            ax.plot([x, x], [0.55, 0.65], color="black", lw=1.5)
        ax.text(lo + cd / 2, 0.68, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    for i, (name, rank) in enumerate(zip(summary.methods, summary.mean_ranks)):
        left = i < half
        row = i if left else k - 1 - i
        y = lowest_bar - 0.3 - 0.3 * row
        x_end = lo - 0.3 if left else hi + 0.3  # each label beyond its line's end, clear of the other lines
        colour = styles[name][0]
        ax.plot([rank, rank, x_end], [0, y, y], color=colour, lw=1.0)
        ax.text(x_end + (-0.05 if left else 0.05), y, f"{name} ({rank:.2f})", ha="right" if left else "left",
                va="center", fontsize=9, color=colour)
    for n, (a, b) in enumerate(bars):
        y = -0.15 - 0.1 * n
        ax.plot([summary.mean_ranks[a] - 0.03, summary.mean_ranks[b] + 0.03], [y, y], color="black", lw=3)
    ax.set_title(f"mean rank on test {summary.metric} over {summary.n_tasks} tasks (Nemenyi, alpha = {summary.alpha})",
                 fontsize=10)
    fig.tight_layout()
    return fig
