"""The report's matplotlib figures: Figure 1 (micro-F1 as frequent labels are removed) and Figure 2 (HF vs LF labels).

This module owns drawing and saving the PNGs, with no date or software
metadata so that the same runs give the same bytes; the data behind them comes
from :mod:`mlbench.records`. matplotlib is imported inside the figure functions
(Agg backend), so importing this module stays cheap. :mod:`mlbench.reporting`
re-exports every name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

def _save(fig: Any, path: Path) -> None:
    # no Software/date metadata: the same runs give the same bytes
    fig.savefig(path, dpi=120, metadata={"Software": None})


def figure1(series: dict[str, list[tuple[int, float, float]]], path: Path, reference: str = "seq2seq") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_ref = reference in series
    fig, axes = plt.subplots(1, 2 if has_ref else 1, figsize=(11 if has_ref else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for m, pts in series.items():
        ks, means, stds = zip(*pts)
        ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=m)
    ax.set_xlabel("k most frequent labels removed")
    ax.set_ylabel("test micro-F1")
    ax.set_title("Performance as frequent labels are removed")
    ax.grid(alpha=0.3)
    ax.legend()
    if has_ref:
        ref = {k: mean for k, mean, _ in series[reference]}
        ax2 = axes[0, 1]
        for m, pts in series.items():
            if m == reference:
                continue
            gap = [(k, mean - ref[k]) for k, mean, _ in pts if k in ref]
            if gap:
                ax2.plot(*zip(*gap), marker="o", label=f"{m} − {reference}")
        ax2.axhline(0, color="grey", lw=0.8)
        ax2.set_xlabel("k most frequent labels removed")
        ax2.set_ylabel(f"micro-F1 gap to {reference}")
        ax2.set_title(f"Gap to {reference}")
        ax2.grid(alpha=0.3)
        ax2.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def figure2(summary: dict[str, dict[str, tuple[float, float, int]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in summary if "hf_micro_f1" in summary[m] and "lf_micro_f1" in summary[m]]
    x = np.arange(len(methods))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(methods) + 2), 4))
    for off, key, label in ((-0.2, "hf_micro_f1", "HF (10% most frequent)"), (0.2, "lf_micro_f1", "LF (10% least frequent)")):
        means = [summary[m][key][0] for m in methods]
        stds = [summary[m][key][1] for m in methods]
        ax.bar(x + off, means, width=0.4, yerr=stds, capsize=3, label=label)
    ax.set_xticks(x, methods, rotation=20 if any(len(m) > 10 for m in methods) else 0, ha="right")
    ax.set_ylabel("test micro-F1 on the label group")
    ax.set_title("Frequent vs infrequent labels (among labels with test positives)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
