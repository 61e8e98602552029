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

def _save(fig: Any, path: Path) -> None:
    # no Software/date metadata: the same runs give the same bytes; "tight" keeps legends placed outside the axes
    fig.savefig(path, dpi=120, metadata={"Software": None}, bbox_inches="tight")


def _wrap(label: str, width: int = 48) -> str:
    """A row label on lines of at most ``width`` characters (rows such as ``seq2set [suite ...]`` run long)."""
    import textwrap

    return "\n".join(textwrap.wrap(label, width, break_on_hyphens=False)) or label


def _method(row: str) -> str:
    return row.split(" [", 1)[0]


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
    colours = plt.get_cmap("tab10" if len(series) <= 10 else "tab20").colors
    colour = {m: colours[i % len(colours)] for i, m in enumerate(series)}
    for m, pts in series.items():
        ks, means, stds = zip(*pts)
        ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=_wrap(m), color=colour[m])
    ax.set_xlabel("k most frequent labels removed")
    ax.set_ylabel("test micro-F1")
    ax.set_title("Performance as frequent labels are removed")
    ax.grid(alpha=0.3)
    if ref_row:
        ref = {k: mean for k, mean, _ in series[ref_row]}
        ax2 = axes[0, 1]
        for m, pts in series.items():
            gap = [(k, mean - ref[k]) for k, mean, _ in pts if k in ref]
            if m != ref_row and gap:
                ax2.plot(*zip(*gap), marker="o", color=colour[m])
        ax2.axhline(0, color="grey", lw=0.8)
        ax2.set_xlabel("k most frequent labels removed")
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
    for off, key, label in ((-0.2, "hf_micro_f1", "HF (10% most frequent)"), (0.2, "lf_micro_f1", "LF (10% least frequent)")):
        means = [summary[m][key][0] for m in rows]
        stds = [summary[m][key][1] for m in rows]
        ax.barh(y + off, means, height=0.4, xerr=stds, capsize=2, label=label)
    ax.set_yticks(y, [_wrap(m, 60) for m in rows], fontsize="small")
    ax.invert_yaxis()  # the report's row order, top to bottom
    ax.set_xlim(0, 1)
    ax.set_xlabel("test micro-F1 on the label group")
    ax.set_title("Frequent vs infrequent labels (among labels with test positives)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / height), ncol=2, frameon=False)  # under the x label
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
