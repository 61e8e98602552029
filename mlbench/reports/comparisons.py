"""Report sections computed from the runs' test predictions: the paired bootstrap and micro-F1 per label-frequency bin.

This module owns the paired-bootstrap table of each row against the reference
rows and the table of micro-F1 by the labels' number of training documents;
both read the predictions of a report bundle (:mod:`mlbench.reports.bundle`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mlbench.reports.records import RunRecord, _method_key, row_method
from mlbench.reports.table_files import Cell, Table, number

#: Training-count bins of the per-bin table under Figure 2: [low, high) training documents per label.
FREQUENCY_BINS = ((1, 5), (5, 20), (20, 100), (100, None))


def frequency_bin_table(bundle: Any, records: Sequence[RunRecord], truth: Any) -> Table | None:
    """Micro-F1 of every row on the labels of each training-count bin (seed mean), with each bin's support.

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
        return None
    t = Table("frequency_bins", ["method", *(f"{name} ({len(c)} labels, {int(positives[c].sum())} test pos.)"
                                              for name, c in bins)],
              caption="Micro-F1 by the labels' number of training documents (test)")
    by_row: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.task == truth.task and r.fingerprint == truth.fingerprint:
            by_row.setdefault(r.row_name, []).append(r)
    for row in sorted(by_row, key=_method_key):
        preds = [bundle.predictions(r.run_id) for r in sorted(by_row[row], key=lambda r: r.seed)]
        preds = [p[0] for p in preds if p is not None]
        if not preds:
            continue
        cells: list[Cell] = [Cell(text=row)]
        for _, cols in bins:
            vals = np.array([micro_precision_recall_f1(truth.Y[:, cols], p[:, cols])[2] for p in preds])
            cells.append(number(float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals)))
        t.rows.append(cells)
    return t if t.rows else None


#: The row every other row is measured against: the paper's first baseline.
REFERENCE_METHOD = "br"
#: Rows of this method family are measured against the Seq2Seq row they started from (the paper's question).
SEQ2SET_FAMILY = "seq2set"


def seq2seq_sources(records: Sequence[RunRecord], task: str) -> dict[str, str]:
    """Each Seq2Set-family row on ``task`` -> its own Seq2Seq row: the row of the runs its RL phase started
    from (tag ``mlbench.init_from_run``), else the row named alike with ``seq2seq`` for ``seq2set``
    (``seq2set+glove50`` -> ``seq2seq+glove50``, ``seq2set-minilm`` -> ``seq2seq-minilm``)."""
    on_task = [r for r in records if r.task == task]
    rows = {r.row_name for r in on_task}
    row_of_run = {r.run_id: r.row_name for r in records}
    out: dict[str, str] = {}
    for row in sorted(rows, key=_method_key):
        if not row_method(row).startswith(SEQ2SET_FAMILY):
            continue
        starts = {row_of_run.get(r.tags.get("mlbench.init_from_run", "")) for r in on_task if r.row_name == row}
        starts.discard(None)
        twin = "seq2seq" + row[len("seq2set"):]
        if len(starts) == 1:
            out[row] = starts.pop()  # type: ignore[assignment]
        elif twin in rows:
            out[row] = twin
    return out


def reference_row(records: Sequence[RunRecord], task: str) -> str | None:
    """The BR row of ``task`` (the one with BR's defaults when several configurations ran)."""
    rows = sorted({r.row_name for r in records if r.task == task and r.method == REFERENCE_METHOD}, key=len)
    return rows[0] if rows else None


def comparison_pairs(records: Sequence[RunRecord], task: str) -> list[tuple[str, str]]:
    """``(row, reference row)`` pairs of the report's one comparison table on ``task``, in table order:
    every row against the BR row (:func:`reference_row`), then each Seq2Set-family row against its own
    Seq2Seq source (:func:`seq2seq_sources`)."""
    rows = sorted({r.row_name for r in records if r.task == task}, key=_method_key)
    pairs: list[tuple[str, str]] = []
    ref = reference_row(records, task)
    if ref is not None:
        pairs += [(row, ref) for row in rows if row != ref]
    pairs += [(row, source) for row, source in seq2seq_sources(records, task).items() if source != row]
    return pairs


def bootstrap_table(
    bundle: Any, records: Sequence[RunRecord], truth: Any, pairs: Sequence[tuple[str, str]],
    n_resamples: int = 1000, spread: dict[str, float] | None = None,
) -> Table | None:
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

    columns = ["method", "vs", "seeds", "Δ micro-F1", "micro-F1 95% CI", "Δ 0/1 loss", "0/1 loss 95% CI"]
    if spread:
        columns.append("|Δ micro-F1| vs rerun spread")
    t = Table("bootstrap", columns,
              caption="Paired bootstrap: each row against BR, and each Seq2Set row against its own Seq2Seq source")
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
        cells: list[Cell | str] = [
            m, ref, ", ".join(map(str, seeds)),
            number(f1.diff, digits=4, signed=True, suffix="*" if f1.significant else ""),
            f"[{f1.low:+.4f}, {f1.high:+.4f}]",
            number(zo.diff, digits=4, signed=True, suffix="*" if zo.significant else ""),
            f"[{zo.low:+.4f}, {zo.high:+.4f}]"]
        if spread:
            known = [spread[x] for x in (m, ref) if x in spread]
            cells.append(("inside" if abs(f1.diff) <= max(known) else "outside") + f" ({max(known):.4f})"
                         if known else "–")
        t.add(*cells)
    return t if t.rows else None
