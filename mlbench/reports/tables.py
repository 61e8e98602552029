"""The Markdown tables of a one-task report: Tables 1-2 as the paper prints them, the paper's own figures,
the HF/LF support sentence, provenance, task fingerprints and the configuration legend of the rows.

Each function takes aggregates (:func:`mlbench.reports.records.summarise`) or records and returns Markdown;
:mod:`mlbench.reports.page` puts them on the page.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mlbench.reports.records import RunRecord, _method_key
from mlbench.reports.table_files import Cell, Table, mark_best, number

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


def _stat(s: dict[str, tuple[float, float, int]], key: str, digits: int = 3) -> Cell:
    if key not in s:
        return Cell(text="–")
    mean, std, n = s[key]
    return number(mean, std, n, digits)


def table1(summary: dict[str, dict[str, tuple[float, float, int]]], stale: Sequence[str] = (),
           timings: dict[str, tuple[float, bool]] | None = None, spread: dict[str, float] | None = None) -> Table:
    """Every row on the base task, best mean per column in bold; ``stale`` rows marked †, a fit-time column
    from ``timings`` (row -> (mean fit seconds, some seeds reused a cached model: marked ‡)), and with
    ``spread`` (row -> largest |Δ micro-F1| of its reruns under other execution settings) that column."""
    columns = ["method", "seeds", *(label for _, label, _ in TABLE1_METRICS)]
    if spread:
        columns.append("rerun |Δ| micro-F1")
    if timings is not None:
        columns.append("fit (s)")
    t = Table("table1", columns, caption="Table 1: every method on the base task (test), mean ± std over seeds")
    for row, s in summary.items():
        n = max(v[2] for v in s.values())
        cells = [Cell(text=row + (" †" if row in stale else "")), Cell(text=str(n))]
        cells += [_stat(s, key, 4 if key == "hamming_loss" else 3) for key, _, _ in TABLE1_METRICS]
        if spread:
            cells.append(number(spread[row], digits=4) if row in spread else Cell(text="–"))
        if timings is not None:
            secs, reused = timings.get(row, (float("nan"), False))
            cells.append(number(secs, digits=1 if secs < 1000 else 0, suffix=" ‡" if reused else ""))
        t.rows.append(cells)
    for j, (_, _, direction) in enumerate(TABLE1_METRICS, 2):
        mark_best(t.rows, j, direction == "min")
    return t


def paper_table1() -> Table:
    ours = {row: m for m, row in PAPER_ROW.items()}
    t = Table("paper_table1", ["system (paper, RCV1-V2)", "mlbench method", "HL ↓", "0/1 loss ↓", "micro-F1 ↑",
                               "micro-P ↑", "micro-R ↑"],
              caption="Yang et al. (2019), Table 1: RCV1-V2 test")
    for name, (hl, zo, f1, p, r) in PAPER_TABLE1.items():
        t.add(name, ours.get(name, "–"), number(hl, digits=4), number(zo), number(f1), number(p), number(r))
    return t


def table2(base: dict, shuffled: dict) -> Table:
    """Base vs shuffled with the relative degradation, as the paper's Table 2."""
    t = Table("table2", ["method", "micro-F1 base", "micro-F1 shuffled", "0/1 loss base", "0/1 loss shuffled",
                         "0/1 loss change (%)", "HL change (%)"],
              caption="Table 2: the base task against its label-shuffled variant (test)")
    for m in base:
        if m not in shuffled:
            continue
        b, s = base[m], shuffled[m]

        def rel(key: str) -> Cell:
            if b[key][0] == 0:
                return Cell(text="–")
            return number(100.0 * (s[key][0] - b[key][0]) / b[key][0], digits=1, signed=True)

        t.add(m, _stat(b, "micro_f1"), _stat(s, "micro_f1"), _stat(b, "subset_01_loss"), _stat(s, "subset_01_loss"),
              rel("subset_01_loss"), rel("hamming_loss"))
    return t


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


def hf_lf_table(summary: dict, sources: dict[str, str]) -> Table:
    """HF and LF micro/macro-F1 of every row, and each Seq2Set-family row's relative change over its own
    Seq2Seq source row (``sources``, :func:`mlbench.reports.comparisons.seq2seq_sources`)."""
    keys = ("hf_micro_f1", "lf_micro_f1", "hf_macro_f1", "lf_macro_f1")
    t = Table("hf_lf", ["method", "HF micro-F1", "LF micro-F1", "HF macro-F1", "LF macro-F1", "vs its seq2seq",
                        "HF micro-F1 change (%)", "LF micro-F1 change (%)"],
              caption="Frequent (HF) and infrequent (LF) labels: micro/macro-F1, and Seq2Set against its source")
    for row, s in summary.items():
        cells: list[Cell] = [Cell(text=row), *(_stat(s, k) for k in keys)]
        source = sources.get(row)
        if source in summary:
            cells.append(Cell(text=source))
            for key in ("hf_micro_f1", "lf_micro_f1"):
                a, b = s.get(key, (np.nan,))[0], summary[source].get(key, (np.nan,))[0]
                cells.append(number(100 * (a - b) / b, digits=1, signed=True) if b and np.isfinite(a)
                             else Cell(text="–"))
        else:
            cells += [Cell(text="")] * 3
        t.rows.append(cells)
    for j in range(1, 5):
        mark_best(t.rows, j, False)
    return t


def provenance(records: Sequence[RunRecord]) -> Table:
    t = Table("provenance", ["method", "runs", "compute (s)", "devices", "threads", "git commits", "mlbench", "torch",
                             "scikit-learn"], caption="Where and with what each row ran")
    by_method: dict[str, list[RunRecord]] = {}
    for r in records:
        by_method.setdefault(r.row_name, []).append(r)
    for m in sorted(by_method, key=_method_key):
        rs = by_method[m]

        def uniq(tag: str) -> str:
            return ", ".join(sorted({r.tags.get(tag, "?") for r in rs}))

        commits = ", ".join(sorted({r.tags.get("mlbench.git_commit", "?")[:12] for r in rs}))
        threads = ", ".join(sorted({_threads(r.tags) for r in rs}))
        t.add(m, str(len(rs)), number(sum(r.metrics["compute_seconds"] for r in rs), digits=0),
              uniq("mlbench.device"), threads, commits, uniq("mlbench.version.mlbench"),
              uniq("mlbench.version.torch"), uniq("mlbench.version.scikit-learn"))
    return t


def _threads(tags: dict[str, str]) -> str:
    """``torch 1 / linear 1``: the thread counts a run recorded (a method without torch records no torch count)."""
    linear = f"linear {tags.get('mlbench.threads.linear', '?')}"
    torch = tags.get("mlbench.threads.torch_intra")
    return f"torch {torch} / {linear}" if torch is not None else linear


def fingerprints(records: Sequence[RunRecord]) -> str:
    seen = sorted({(r.task, r.fingerprint) for r in records})
    return "\n".join(f"- `{t}`: `{fp}`" for t, fp in seen)


def configurations(records: Sequence[RunRecord], task: str, stale: Sequence[str] = ()) -> tuple[Table, list[str]]:
    """The legend of the rows on ``task`` (label, full configuration, preset, digests, seeds) and the
    warnings to print. A row whose seeds ran with several code digests is flagged: its mean mixes code
    versions, and the report says so instead of averaging silently; a stale row is marked †."""
    t = Table(f"legend_{_file_part(task)}", ["row", "configuration", "preset", "config digest", "seeds",
                                             "code digest"],
              caption=f"The configurations behind the rows on {task}")
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
        t.add(row + (" †" if row in stale else ""), rs[0].config_label, presets, rs[0].config_digest,
              ", ".join(str(r.seed) for r in rs), code_text)
    return t, warnings


def _file_part(task: str) -> str:
    """A task name as part of a file name."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in task)[:80]
