"""Report sections computed from the runs' test predictions: the paired bootstrap and micro-F1 per label-frequency bin.

This module owns the paired-bootstrap table of each row against the reference
rows and the table of micro-F1 by the labels' number of training documents;
both read the predictions of a report bundle (:mod:`mlbench.reports.bundle`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mlbench.reports.records import RunRecord, _fmt, _method_key

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


#: The methods whose rows every other row is measured against (the paper's two baselines of Tables 1-2).
REFERENCE_METHODS = ("br", "seq2seq")
#: Rows of these method families are also measured against every seq2seq row (the paper's Seq2Set question).
SEQUENCE_FAMILIES = ("seq2seq", "seq2set")


def comparison_pairs(records: Sequence[RunRecord], task: str) -> list[tuple[str, str]]:
    """``(row, reference row)`` pairs of the report's comparisons on ``task``, in table order.

    Every row against each ``br`` row; every row of the seq2seq/seq2set
    families (``seq2set``, ``seq2seq-minilm``, ...) against each ``seq2seq``
    row, so a method with several configurations keeps all its comparisons;
    and each row whose runs started from other runs' saved models (tag
    ``mlbench.init_from_run``) against the row of those start runs: what the
    second phase added to the model it started from.
    """
    on_task = [r for r in records if r.task == task]
    rows = sorted({r.row_name for r in on_task}, key=_method_key)
    method_of = {r.row_name: r.method for r in on_task}
    pairs: list[tuple[str, str]] = []

    def add(row: str, ref: str) -> None:
        if row != ref and (row, ref) not in pairs:
            pairs.append((row, ref))

    for ref in (x for x in rows if method_of[x] == REFERENCE_METHODS[0]):
        for row in rows:
            add(row, ref)
    for ref in (x for x in rows if method_of[x] == REFERENCE_METHODS[1]):
        for row in rows:
            if method_of[row].split("-")[0] in SEQUENCE_FAMILIES:
                add(row, ref)
    row_of_run = {r.run_id: r.row_name for r in records}
    for row in rows:
        starts = {row_of_run.get(r.tags.get("mlbench.init_from_run", "")) for r in on_task if r.row_name == row}
        for start in sorted(x for x in starts if x is not None):
            add(row, start)
    return pairs


def bootstrap_table(
    bundle: Any, records: Sequence[RunRecord], truth: Any, pairs: Sequence[tuple[str, str]],
    n_resamples: int = 1000,
) -> str:
    """Paired bootstrap of each ``(row, reference row)`` pair over the seeds both ran.

    With several seeds, each side's metric is its mean over those seeds (the
    same document resample applied to every run), so the interval is that of
    the difference of seed means. Predictions come from the bundle.
    """
    from mlbench.reports.bootstrap import paired_bootstrap

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
    for m, ref in pairs:
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
