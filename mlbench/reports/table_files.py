"""Report tables as data, written three ways: Markdown on the page, CSV for analysis, LaTeX for a paper.

A :class:`Table` holds its column names and rows of :class:`Cell` (a number with its std over seeds and a
"best in its column" flag, or a text). :meth:`Table.markdown` is what the page shows; :meth:`Table.csv` keeps
the numbers unrounded (a mean column and, where a std exists, a ``<column> std`` column beside it);
:meth:`Table.latex` is a booktabs ``tabular`` with the best value in bold and ``mean ± std``.
:func:`write_tables` writes the CSV and LaTeX files of a report's tables under ``tables/`` in the report
folder, each through a temporary file renamed into place (a link planted there is replaced, not followed).
The formats are written here rather than through pandas' ``to_latex``: the bold best value and the ± std
per cell need a cell model pandas' frame does not carry, and the whole writer is a few dozen lines.
"""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

#: The folder of a report that holds its tables' CSV and LaTeX files.
TABLES_DIR = "tables"


@dataclass(frozen=True)
class Cell:
    """One table cell: a number (``value``, its ``std`` over ``n`` seeds, shown with ``digits``) or ``text``."""

    text: str = ""
    value: float | None = None
    std: float | None = None
    n: int = 1
    digits: int = 3
    best: bool = False
    signed: bool = False  # show the sign (a difference)
    suffix: str = ""  # a marker after the number (a footnote sign, a significance star)

    @property
    def shown(self) -> str:
        if self.value is None:
            return self.text
        if not math.isfinite(self.value):
            return "–"
        sign = "+" if self.signed else ""
        text = f"{self.value:{sign}.{self.digits}f}"
        if self.std is not None and self.n > 1:
            text += f" ± {self.std:.{self.digits}f}"
        return text + self.suffix


def number(value: float, std: float | None = None, n: int = 1, digits: int = 3, **kw: object) -> Cell:
    return Cell(value=float(value), std=None if std is None else float(std), n=n, digits=digits, **kw)  # type: ignore[arg-type]


def mark_best(rows: list[list[Cell]], column: int, lower_is_better: bool) -> None:
    """Flag the best mean of ``column`` in place (every cell equal to it, to the shown digits)."""
    values = [r[column].value for r in rows if r[column].value is not None and math.isfinite(r[column].value)]
    if not values:
        return
    best = min(values) if lower_is_better else max(values)
    digits = max(r[column].digits for r in rows)
    for r in rows:
        v = r[column].value
        if v is not None and math.isfinite(v) and round(v, digits) == round(best, digits):
            c = r[column]
            r[column] = Cell(c.text, c.value, c.std, c.n, c.digits, True, c.signed, c.suffix)


@dataclass
class Table:
    """A report table: its file name (``name``), header, rows, and a caption for the LaTeX file."""

    name: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str = ""
    compact: bool = False  # the Markdown shows means only (a wide table); CSV and LaTeX keep the stds

    def add(self, *cells: Cell | str | int | float) -> None:
        self.rows.append([c if isinstance(c, Cell) else Cell(text=str(c)) for c in cells])

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        for row in self.rows:
            shown = [(Cell(c.text, c.value, None, 1, c.digits, c.best, c.signed, c.suffix) if self.compact else c).shown
                     for c in row]
            lines.append("| " + " | ".join(f"**{x}**" if c.best else x for c, x in zip(row, shown)) + " |")
        return "\n".join(lines)

    def csv(self) -> str:
        with_std = [any(r[j].std is not None and r[j].n > 1 for r in self.rows) for j in range(len(self.columns))]
        header: list[str] = []
        for name, std in zip(self.columns, with_std):
            header += [name, f"{name} std"] if std else [name]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in self.rows:
            line: list[str] = []
            for c, std in zip(row, with_std):
                line.append(c.text if c.value is None else repr(c.value))
                if std:
                    line.append("" if c.std is None or c.n < 2 else repr(c.std))
            writer.writerow(line)
        return out.getvalue()

    def latex(self) -> str:
        align = "l" + "r" * (len(self.columns) - 1)
        lines = [f"% {self.caption}" if self.caption else f"% {self.name}", f"\\begin{{tabular}}{{{align}}}",
                 "\\toprule", " & ".join(_latex_text(c) for c in self.columns) + " \\\\", "\\midrule"]
        for row in self.rows:
            lines.append(" & ".join(_latex_cell(c) for c in row) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", ""]
        return "\n".join(lines)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "Δ": r"$\Delta$", "–": "--",
                  "†": r"\textdagger{}", "‡": r"\textdaggerdbl{}", "⚠": "(!)", "`": ""}


def _latex_text(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_cell(c: Cell) -> str:
    if c.value is None or not math.isfinite(c.value):
        return _latex_text(c.shown)
    sign = "+" if c.signed else ""
    text = f"{c.value:{sign}.{c.digits}f}"
    if c.best:
        text = f"\\textbf{{{text}}}"
    if c.std is not None and c.n > 1:
        text += f" $\\pm$ {c.std:.{c.digits}f}"
    return text + _latex_text(c.suffix)


def write_tables(out_dir: Path, tables: Sequence[Table]) -> Path:
    """Write ``tables/<name>.csv`` and ``.tex`` of every table in ``out_dir``; files of tables no longer
    in the report are removed. Returns the tables folder."""
    from mlbench.reports.writing import write_by_rename

    folder = Path(out_dir) / TABLES_DIR
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        folder.unlink()  # never write through a link planted in a bundle from elsewhere
    folder.mkdir(exist_ok=True)
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        raise ValueError(f"two tables share a file name: {names}")
    wanted = {f"{t.name}{ext}" for t in tables for ext in (".csv", ".tex")}
    for old in folder.iterdir():
        if old.name not in wanted:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                os.unlink(old)
    for t in tables:
        write_by_rename(folder / f"{t.name}.csv", lambda p, t=t: p.write_text(t.csv()))
        write_by_rename(folder / f"{t.name}.tex", lambda p, t=t: p.write_text(t.latex()))
    return folder
