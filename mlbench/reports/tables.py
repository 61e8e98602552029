"""The Markdown tables of a one-task report: Tables 1-2 as the paper prints them, the paper's own figures,
the HF/LF support sentence, provenance, task fingerprints and the configuration legend of the rows.

Each function takes aggregates (:func:`mlbench.reports.records.summarise`) or records and returns Markdown;
:mod:`mlbench.reports.page` puts them on the page.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mlbench.reports.records import RunRecord, _fmt, _method_key

#: Table 1 of Yang et al. (2019), RCV1-V2 test: (HL, 0/1 loss, micro-F1, micro-P, micro-R).
PAPER_TABLE1 = {
    "BR-LR": (0.0083, 0.393, 0.858, 0.919, 0.804),
    "PCC-LR": (0.0079, 0.325, 0.864, 0.901, 0.827),
    "FastXML": (0.0078, 0.358, 0.863, 0.956, 0.786),
    "XML-CNN": (0.0086, 0.390, 0.853, 0.914, 0.799),
    "CNN-RNN": (0.0085, 0.378, 0.856, 0.889, 0.825),
    "Seq2Seq (SGM)": (0.0076, 0.332, 0.871, 0.906, 0.838),
    "Seq2Set": (0.0073, 0.314, 0.879, 0.900, 0.858),
}
#: Table 2, label-shuffled RCV1-V2: (HL, 0/1 loss, micro-F1).
PAPER_TABLE2_SHUFFLED = {"Seq2Seq (SGM)": (0.0083, 0.363, 0.859), "Seq2Set": (0.0075, 0.318, 0.876)}

TABLE1_METRICS = (
    ("hamming_loss", "HL ↓", "min"),
    ("subset_01_loss", "0/1 loss ↓", "min"),
    ("micro_f1", "micro-F1 ↑", "max"),
    ("micro_precision", "micro-P ↑", "max"),
    ("micro_recall", "micro-R ↑", "max"),
    ("macro_f1", "macro-F1 ↑", "max"),
)
#: Which of our methods stands for which row of the paper's Table 1 (omikuji's Parabel
#: is of FastXML's family of label trees, from the example plugin).
PAPER_ROW = {
    "br": "BR-LR", "pcc": "PCC-LR", "omikuji": "FastXML", "xml-cnn": "XML-CNN", "cnn-rnn": "CNN-RNN",
    "seq2seq": "Seq2Seq (SGM)", "seq2set": "Seq2Set",
}


def table1(summary: dict[str, dict[str, tuple[float, float, int]]]) -> str:
    """Markdown: every method on the base task, best mean per column in bold."""
    header = "| method | seeds | " + " | ".join(label for _, label, _ in TABLE1_METRICS) + " |"
    lines = [header, "|" + "---|" * (len(TABLE1_METRICS) + 2)]
    best = {}
    for key, _, direction in TABLE1_METRICS:
        vals = [s[key][0] for s in summary.values() if key in s]
        if vals:
            best[key] = min(vals) if direction == "min" else max(vals)
    for method, s in summary.items():
        cells = []
        for key, _, _ in TABLE1_METRICS:
            if key not in s:
                cells.append("–")
                continue
            digits = 4 if key == "hamming_loss" else 3
            text = _fmt(*s[key], digits)
            cells.append(f"**{text}**" if np.isclose(s[key][0], best[key]) else text)
        n = max(v[2] for v in s.values())
        lines.append(f"| {method} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_table1() -> str:
    ours = {row: m for m, row in PAPER_ROW.items()}
    lines = [
        "| system (paper, RCV1-V2) | mlbench method | HL ↓ | 0/1 loss ↓ | micro-F1 ↑ | micro-P ↑ | micro-R ↑ |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (hl, zo, f1, p, r) in PAPER_TABLE1.items():
        lines.append(f"| {name} | `{ours.get(name, '–')}` | {hl:.4f} | {zo:.3f} | {f1:.3f} | {p:.3f} | {r:.3f} |")
    return "\n".join(lines)


def table2(base: dict, shuffled: dict) -> str:
    """Markdown: base vs shuffled with the relative degradation, as the paper's Table 2."""
    lines = [
        "| method | micro-F1 base | micro-F1 shuffled | 0/1 loss base | 0/1 loss shuffled | 0/1 loss change | HL change |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in base:
        if m not in shuffled:
            continue
        b, s = base[m], shuffled[m]

        def rel(key: str) -> str:
            if b[key][0] == 0:
                return "–"
            return f"{100.0 * (s[key][0] - b[key][0]) / b[key][0]:+.1f}%"

        lines.append(
            f"| {m} | {_fmt(*b['micro_f1'], 3)} | {_fmt(*s['micro_f1'], 3)} | {_fmt(*b['subset_01_loss'], 3)} | "
            f"{_fmt(*s['subset_01_loss'], 3)} | {rel('subset_01_loss')} | {rel('hamming_loss')} |"
        )
    return "\n".join(lines)


def hf_lf_support(truth: Any) -> str:
    """One sentence: how many labels and test positives each group holds on this task."""
    from mlbench.metrics import frequency_groups

    Y = truth.Y
    positives = np.asarray(Y.sum(axis=0)).ravel()
    hf, lf = frequency_groups(truth.train_frequency, eligible=positives > 0)
    freq = truth.train_frequency

    def part(name: str, cols: np.ndarray) -> str:
        return (f"{name}: {len(cols)} labels, {int(positives[cols].sum())} test positives, "
                f"{int(freq[cols].min()) if len(cols) else 0}-{int(freq[cols].max()) if len(cols) else 0} "
                "training documents per label")

    return (f"{int((positives > 0).sum())} of {len(freq)} labels have a test positive; among them "
            f"{part('HF', hf)}; {part('LF', lf)}.")


def relative_gains(summary: dict, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Sentences: relative HF/LF micro-F1 gain of each Seq2Set-family row over its references (``pairs``)."""
    out = []
    for row, ref in pairs:
        if row.split(" [")[0].split("-")[0] != "seq2set" or row not in summary or ref not in summary:
            continue
        parts = []
        for key, label in (("hf_micro_f1", "HF"), ("lf_micro_f1", "LF")):
            a, b = summary[row].get(key, (np.nan,))[0], summary[ref].get(key, (np.nan,))[0]
            parts.append(f"{label} {100 * (a - b) / b:+.1f}%" if b and np.isfinite(a) else f"{label} –")
        out.append(f"{row} vs {ref}: " + ", ".join(parts))
    return out


def provenance(records: Sequence[RunRecord]) -> str:
    lines = [
        "| method | runs | compute (s) | devices | git commits | mlbench | torch | scikit-learn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_method: dict[str, list[RunRecord]] = {}
    for r in records:
        by_method.setdefault(r.row_name, []).append(r)
    for m in sorted(by_method, key=_method_key):
        rs = by_method[m]

        def uniq(tag: str) -> str:
            return ", ".join(sorted({r.tags.get(tag, "?") for r in rs}))

        commits = ", ".join(sorted({r.tags.get("mlbench.git_commit", "?")[:12] for r in rs}))
        lines.append(
            f"| {m} | {len(rs)} | {sum(r.metrics['compute_seconds'] for r in rs):.0f} | {uniq('mlbench.device')} | "
            f"{commits} | {uniq('mlbench.version.mlbench')} | {uniq('mlbench.version.torch')} | "
            f"{uniq('mlbench.version.scikit-learn')} |"
        )
    return "\n".join(lines)


def fingerprints(records: Sequence[RunRecord]) -> str:
    seen = sorted({(r.task, r.fingerprint) for r in records})
    return "\n".join(f"- `{t}`: `{fp}`" for t, fp in seen)


def configurations(records: Sequence[RunRecord], task: str) -> tuple[str, list[str]]:
    """Markdown table of the rows on ``task`` (label, preset, digests, seeds) and the warnings to print.

    A row whose seeds ran with several code digests is flagged: its mean mixes
    code versions, and the report says so instead of averaging silently.
    """
    lines = [
        "| row | configuration | preset | config digest | seeds | code digest |",
        "|---|---|---|---|---|---|",
    ]
    warnings = []
    by_row: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.task == task:
            by_row.setdefault(r.row_name, []).append(r)
    for row in sorted(by_row, key=_method_key):
        rs = sorted(by_row[row], key=lambda r: r.seed)
        codes = sorted({r.code_digest or "?" for r in rs})
        code_text = ", ".join(codes)
        if len(codes) > 1:
            code_text = "⚠ " + "; ".join(
                f"{c}: seed {', '.join(str(r.seed) for r in rs if (r.code_digest or '?') == c)}" for c in codes
            )
            warnings.append(f"⚠ `{row}` on `{task}`: its seeds ran on {len(codes)} code versions ({code_text[2:]}); "
                            "its mean mixes them.")
        presets = ", ".join(sorted({r.tags.get("mlbench.preset", "?") for r in rs}))
        lines.append(f"| {row} | {rs[0].config_label} | {presets} | `{rs[0].config_digest}` | "
                     f"{', '.join(str(r.seed) for r in rs)} | {code_text} |")
    return "\n".join(lines), warnings
