"""Short row labels, the tables' CSV and LaTeX files, and the reports overview."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from mlbench.reports.records import RunRecord, label_rows
from mlbench.reports.table_files import Cell, Table, mark_best, number
from mlbench.runs.identity import MAX_LABEL, config_label, parse_config_label, short_label

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("overrides, suite, expected", [
    ({}, "paper-reuters", "seq2set"),
    ({"init_from": "<model of another run>"}, "paper-reuters", "seq2set"),  # a handed-over model is no setting
    ({"embeddings": "glove50", "init_from": "<model of another run>"}, "reuters-pretrained", "seq2set+glove50"),
    ({"rl_baseline": "loo"}, None, "seq2set+loo"),
    ({"epochs": 40}, "reuters-trim-neural", "seq2set+epochs=40"),
    ({"epochs": 60, "lr_decay": 1.0, "patience": 10}, "reuters-trim-neural", "seq2set@reuters-trim-neural"),
    ({"epochs": 60, "lr_decay": 1.0, "patience": 10}, "a-very-long-suite-name-indeed", "seq2set#0123abcd"),
])
def test_short_labels_are_short_and_say_what_differs(overrides, suite, expected):
    label = short_label("seq2set", overrides, suite=suite, digest="0123abcdef99")
    assert label == expected and len(label) <= MAX_LABEL
    # a run logged before runs carried a label gets the same one from its configuration's words
    back_suite, study, back = parse_config_label(config_label(overrides, suite=suite))
    assert short_label("seq2set", back, suite=back_suite, study=study, digest="0123abcdef99") == expected


def test_a_tuned_run_and_the_defaults():
    assert short_label("br", {}, study="s1") == "br+tuned"
    assert parse_config_label("tuned (study s1)") == (None, "s1", {})
    assert short_label("br", parse_config_label("defaults")[2]) == "br"


def _run(run_id, method, label, digest, task="t"):
    return RunRecord(run_id, method, task, 0, "fp", {"micro_f1": 0.5}, {}, "", 0, config_digest=digest,
                     config_label=label)


def test_rows_with_the_same_label_are_told_apart_by_suite_then_digest():
    records = label_rows([
        _run("1", "seq2seq", "suite paper-reuters", "d1"), _run("2", "seq2seq", "suite mulan", "d2"),
        _run("3", "br", "defaults", "d3"), _run("4", "br", "--param C=10", "d4"),
        _run("5", "pcc", "defaults", "aaaaaaaa11"), _run("6", "pcc", "defaults", "bbbbbbbb22"),
    ])
    assert [r.row for r in records] == ["seq2seq@paper-reuters", "seq2seq@mulan", "br", "br+C=10",
                                        "pcc#aaaaaaaa", "pcc#bbbbbbbb"]
    assert all(len(r.row) <= MAX_LABEL for r in records)


def test_committed_reuters_rows_are_at_most_32_characters_and_in_the_legend():
    """Issue 31: every row label of reports/reuters (tables, figures, CD diagram) is short and maps to its full
    configuration in the legend table."""
    from mlbench.reports.bundle import Bundle

    folder = REPO / "reports" / "reuters"
    records = Bundle(folder).records()
    rows = {r.row_name for r in records}
    assert rows and max(len(r) for r in rows) <= MAX_LABEL
    legend = {}
    for name in (folder / "tables").glob("legend_*.csv"):
        legend.update({row["row"].removesuffix(" †"): row["configuration"]
                       for row in csv.DictReader(open(name))})
    for r in records:
        assert legend.get(r.row_name) == r.config_label or r.task != "reuters", r.row_name
    base_rows = {r.row_name for r in records if r.task == "reuters"}
    assert base_rows <= set(legend)


def test_table_files_bold_the_best_keep_the_std_and_escape_latex():
    t = Table("t1", ["method", "HL ↓", "micro-F1 ↑", "note"], caption="a caption")
    t.add("a_1", number(0.0123, 0.001, 3, digits=4), number(0.81, 0.02, 3), "x & y")
    t.add("b%", number(0.0100, None, 1, digits=4), number(0.85, 0.01, 3, suffix="*"), Cell(text="–"))
    mark_best(t.rows, 1, lower_is_better=True)
    mark_best(t.rows, 2, lower_is_better=False)
    md = t.markdown().splitlines()
    assert md[2] == "| a_1 | 0.0123 ± 0.0010 | 0.810 ± 0.020 | x & y |"
    assert md[3] == "| b% | **0.0100** | **0.850 ± 0.010*** | – |"
    rows = list(csv.reader(io.StringIO(t.csv())))
    assert rows[0] == ["method", "HL ↓", "HL ↓ std", "micro-F1 ↑", "micro-F1 ↑ std", "note"]
    assert rows[1] == ["a_1", "0.0123", "0.001", "0.81", "0.02", "x & y"]
    assert rows[2] == ["b%", "0.01", "", "0.85", "0.01", "–"]
    tex = t.latex()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "a\\_1 & 0.0123 $\\pm$ 0.0010 & 0.810 $\\pm$ 0.020 & x \\& y \\\\" in tex
    assert "b\\% & \\textbf{0.0100} & \\textbf{0.850} $\\pm$ 0.010* & -- \\\\" in tex
    compact = Table("c", ["m", "v"], compact=True)
    compact.add("a", number(0.5, 0.1, 3))
    assert compact.markdown().splitlines()[2] == "| a | 0.500 |" and "0.1" in compact.csv()


def test_write_tables_replaces_a_planted_link_and_removes_old_files(tmp_path):
    from mlbench.reports.table_files import write_tables

    outside = tmp_path / "outside"
    outside.mkdir()
    report = tmp_path / "report"
    report.mkdir()
    (report / "tables").symlink_to(outside)  # a bundle from elsewhere pointing its tables/ outside itself
    t = Table("t", ["a"])
    t.add("x")
    write_tables(report, [t])
    assert not (report / "tables").is_symlink() and sorted(p.name for p in (report / "tables").iterdir()) == [
        "t.csv", "t.tex"]
    assert list(outside.iterdir()) == []
    (report / "tables" / "old.csv").write_text("stale")
    write_tables(report, [t])
    assert not (report / "tables" / "old.csv").exists()


@pytest.mark.slow
def test_a_suite_names_its_configurations_and_runs_carry_the_label(tmp_path, monkeypatch):
    from mlbench.api import UsageError
    from mlbench.runs.matrix import run_suite
    from mlbench.runs.suite import Suite, load_suite, validate_suite
    from mlbench.runs.tracking import Tracker

    monkeypatch.setenv("MLBENCH_NO_PROGRESS", "1")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmethods: {br: {C: 10}}\ntasks: [synthetic]\nseeds: [0]\nlabels: {br: br-strong}\n")
    suite = load_suite(str(path))
    assert suite.labels == {"br": "br-strong"}
    validate_suite(suite)
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}", artifact_dir=tmp_path / "art")
    assert [o.status for o in run_suite(suite, tracker, echo=lambda _: None)] == ["done"]
    (run,) = tracker.finished_parent_runs("synthetic")
    assert run.data.tags["mlbench.label"] == "br-strong" and run.info.run_name == "br-strong-seed0"
    for labels in ({"pcc": "x"}, {"br": "a label with spaces"}, {"br": "x" * 33}):
        with pytest.raises(UsageError):
            validate_suite(Suite("s", {"br": {}}, ["synthetic"], [0], labels=labels))


@pytest.mark.slow
def test_the_overview_lists_every_bundle_and_matches_the_committed_page(tmp_path):
    """reports/README.md is generated from the bundles by `mlbench report --overview`, never edited."""
    from mlbench.cli.main import main

    committed = REPO / "reports" / "README.md"
    copy = tmp_path / "reports"
    shutil.copytree(REPO / "reports", copy)
    (copy / "README.md").unlink()
    assert main(["report", "--overview", str(copy)]) == 0
    text = (copy / "README.md").read_text()
    for folder in (REPO / "reports").iterdir():
        if (folder / "bundle.json").is_file():
            assert f"[{folder.name}]({folder.name}/README.md)" in text
    assert text == committed.read_text()


def test_provenance_names_the_thread_counts_each_row_ran_with():
    from mlbench.reports.records import RunRecord, label_rows
    from mlbench.reports.tables import provenance

    def run(method, torch_threads, linear_threads):
        tags = {"mlbench.threads.linear": linear_threads, "mlbench.device": "cpu"}
        if torch_threads is not None:
            tags["mlbench.threads.torch_intra"] = torch_threads
        return RunRecord(f"{method}{torch_threads}", method, "t", 0, "fp", {"compute_seconds": 2.0}, tags, "", 0,
                         config_digest=method)

    table = provenance(label_rows([run("br", None, "1"), run("seq2set", "1", "1"), run("seq2set", "2", "1")]))
    threads = {row[0].text: row[4].text for row in table.rows}
    assert threads == {"br": "linear 1", "seq2set": "torch 1 / linear 1, torch 2 / linear 1"}


def test_table1_marks_a_row_stale_for_its_base_task_runs_and_names_rows_stale_elsewhere():
    from mlbench.reports.records import RunRecord, stale_note, stale_rows

    def rec(task, code):
        return RunRecord(f"{task}{code}".ljust(32, "0"), "xml-cnn", task, 0, "fp", {"micro_f1": 0.8}, {}, "", 0,
                         config_digest="c1", code_digest=code)

    records = [rec("reuters", "new"), rec("reuters-shuffled", "old")]
    entries = [{"method": "xml-cnn", "code_digest": "old", "current": "new"}]
    assert stale_rows(records, entries) == {"xml-cnn"}
    assert stale_rows(records, entries, task="reuters") == set()  # its Table 1 runs are current
    assert stale_rows(records, entries, task="reuters-shuffled") == {"xml-cnn"}
    note = stale_note(set(), entries, ["xml-cnn"], "reuters")
    assert note.startswith("† stale: 0 row(s) hold runs on `reuters` made with code that has changed")
    assert note.endswith("Current on `reuters`, stale on the other tasks of this report: xml-cnn.")
