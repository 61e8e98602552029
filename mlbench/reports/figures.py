"""The report's matplotlib figures: Figure 1 (micro-F1 as frequent labels are removed) and Figure 2 (HF vs LF labels).

This module owns drawing and saving the PNGs, with no date or software
metadata so that the same runs give the same bytes; the data behind them comes
from :mod:`mlbench.reports.records`. matplotlib is imported inside the figure functions
(Agg backend), so importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: One colour per method across every figure of every report (tab20's pairs: a method and its sequence
#: sibling sit side by side); rows of one method in several configurations share it and differ in marker.
METHOD_COLOURS = {
    "br": "#1f77b4", "pcc": "#aec7e8", "omikuji": "#ff7f0e", "lp": "#ffbb78", "rakel": "#2ca02c",
    "mlknn": "#98df8a", "xml-cnn": "#d62728", "cnn-rnn": "#ff9896", "seq2seq": "#9467bd", "seq2set": "#8c564b",
    "minilm": "#e377c2", "seq2seq-minilm": "#c5b0d5", "seq2set-minilm": "#c49c94",
}
_OTHER = ("#7f7f7f", "#bcbd22", "#17becf", "#f7b6d2", "#dbdb8d", "#9edae5", "#c7c7c7")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def method_colour(method: str) -> str:
    """The colour of ``method`` in every figure: fixed for the built-ins, by a stable hash for the others."""
    import zlib

    return METHOD_COLOURS.get(method) or _OTHER[zlib.crc32(method.encode()) % len(_OTHER)]


def row_styles(rows: Any) -> dict[str, tuple[str, str]]:
    """``row -> (colour, marker)``: the row's method's colour, and a marker per configuration of that method."""
    seen: dict[str, int] = {}
    out = {}
    for row in rows:
        method = _method(row)
        out[row] = (method_colour(method), MARKERS[seen.get(method, 0) % len(MARKERS)])
        seen[method] = seen.get(method, 0) + 1
    return out


def _save(fig: Any, path: Path) -> None:
    # no Software/date metadata: the same runs give the same bytes; "tight" keeps legends placed outside the axes
    fig.savefig(path, dpi=120, metadata={"Software": None}, bbox_inches="tight")


def _wrap(label: str, width: int = 48) -> str:
    """A row label on lines of at most ``width`` characters (rows such as ``seq2set [suite ...]`` run long)."""
    import textwrap

    return "\n".join(textwrap.wrap(label, width, break_on_hyphens=False)) or label


def _method(row: str) -> str:
    from mlbench.reports.records import row_method

    return row_method(row)


def figure1(series: dict[str, list[tuple[int, float, float]]], path: Path, reference: str = "seq2seq") -> None:
    """Micro-F1 against k per row, and each row's gap to the ``reference`` method's row (when one is drawn).

    ``reference`` is a method name: its row is the series key of that method (the first, if it ran in several
    configurations). One legend below both panels names every row, with the same colour in both.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref_row = next((m for m in series if _method(m) == reference), None)
    fig, axes = plt.subplots(1, 2 if ref_row else 1, figsize=(11 if ref_row else 6, 4), squeeze=False)
    ax = axes[0, 0]
    styles = row_styles(series)
    colour = {m: styles[m][0] for m in series}
    for m, pts in series.items():
        ks, means, stds = zip(*pts)
        ax.errorbar(ks, means, yerr=stds, marker=styles[m][1], capsize=3, label=_wrap(m), color=colour[m])
    ax.set_xlabel("k: most frequent labels removed (count)")
    ax.set_ylabel("test micro-F1 (0-1)")
    ax.set_title("Performance as frequent labels are removed")
    ax.grid(alpha=0.3)
    if ref_row:
        ref = {k: mean for k, mean, _ in series[ref_row]}
        ax2 = axes[0, 1]
        for m, pts in series.items():
            gap = [(k, mean - ref[k]) for k, mean, _ in pts if k in ref]
            if m != ref_row and gap:
                ax2.plot(*zip(*gap), marker=styles[m][1], color=colour[m])
        ax2.axhline(0, color="grey", lw=0.8)
        ax2.set_xlabel("k: most frequent labels removed (count)")
        ax2.set_ylabel(f"micro-F1 minus {reference}'s")
        ax2.set_title(f"Gap to {reference}")
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.legend(*ax.get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=2 if ref_row else 1, fontsize="small", frameon=False)
    _save(fig, path)
    plt.close(fig)


def figure2(summary: dict[str, dict[str, tuple[float, float, int]]], path: Path) -> None:
    """HF and LF micro-F1 per row as horizontal bars, one row of the report a line (long labels stay readable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [m for m in summary if "hf_micro_f1" in summary[m] and "lf_micro_f1" in summary[m]]
    y = np.arange(len(rows))
    height = max(2.5, 0.42 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(7, height))
    colours = [row_styles(rows)[m][0] for m in rows]
    for off, key, label, hatch in ((-0.2, "hf_micro_f1", "HF", None), (0.2, "lf_micro_f1", "LF", "///")):
        means = [summary[m][key][0] for m in rows]
        stds = [summary[m][key][1] for m in rows]
        ax.barh(y + off, means, height=0.4, xerr=stds, capsize=2, label=label, color=colours, hatch=hatch,
                edgecolor="white" if hatch else None, alpha=0.6 if hatch else 1.0)
    ax.set_yticks(y, [_wrap(m, 60) for m in rows], fontsize="small")
    ax.invert_yaxis()  # the report's row order, top to bottom
    ax.set_xlim(0, 1)
    ax.set_xlabel("test micro-F1 on the label group (0-1)")
    ax.set_title("Frequent vs infrequent labels (among labels with test positives)")
    from matplotlib.patches import Patch

    legend = [Patch(facecolor="0.45", label="HF (10% most frequent)"),
              Patch(facecolor="0.45", alpha=0.6, hatch="///", edgecolor="white", label="LF (10% least frequent)")]
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.6 / max(height - 1.0, 1.0)), ncol=2,
              frameon=False)  # under the x label; each bar in its method's colour
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
