"""Cross-task comparison: Demšar's (2006) worked example, the tables and exports, the CD diagram and the CLI hook."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from mlbench.reports.across_tasks import write_cross_task_report
from mlbench.reports.crosstask import cliques, nemenyi_critical_difference, summarise_across_tasks
from mlbench.reports.records import RunRecord

# Demšar (2006), Table 6: AUC of C4.5 and three variants on 14 data sets. The paper ranks voting's two
# 0.975 apart (more digits than printed), hence 0.97501.
METHODS = ("c45", "c45+m", "c45+cf", "c45+m+cf")
AUC = [
    (0.763, 0.768, 0.771, 0.798), (0.599, 0.591, 0.590, 0.569), (0.954, 0.971, 0.968, 0.967),
    (0.628, 0.661, 0.654, 0.657), (0.882, 0.888, 0.886, 0.898), (0.936, 0.931, 0.916, 0.931),
    (0.661, 0.668, 0.609, 0.685), (0.583, 0.583, 0.563, 0.625), (0.775, 0.838, 0.866, 0.875),
    (1.000, 1.000, 1.000, 1.000), (0.940, 0.962, 0.965, 0.962), (0.619, 0.666, 0.614, 0.669),
    (0.972, 0.981, 0.97501, 0.975), (0.957, 0.978, 0.946, 0.970),
]
TASKS = [f"d{i}" for i in range(len(AUC))]


def _records(rows=AUC, methods=METHODS, metric="micro_f1"):
    out = []
    for t, row in zip(TASKS, rows):
        for m, v in zip(methods, row):
            run_id = hashlib.md5(f"{m}-{t}".encode()).hexdigest()  # a bundle takes only 32-hex run ids
            out.append(RunRecord(run_id, m, t, 0, "fp", {metric: v}, {}, "", 0))
    return out


def test_demsar_example_mean_ranks_friedman_and_cd():
    s = summarise_across_tasks(_records(), TASKS)
    ranks = dict(zip(s.methods, s.mean_ranks))
    # Demšar's mean ranks: 3.143, 2.000, 2.893, 1.964
    assert ranks["c45"] == pytest.approx(44 / 14) and ranks["c45+m"] == pytest.approx(2.0)
    assert ranks["c45+cf"] == pytest.approx(40.5 / 14) and ranks["c45+m+cf"] == pytest.approx(27.5 / 14)
    assert s.methods[0] == "c45+m+cf"
    # Demšar's chi2_F = 9.28 has no tie correction; scipy divides it by 1 - sum(t^3 - t) / (N k (k^2 - 1)):
    # one four-way tie (60) and three two-way ties (6 each) over 14 * 4 * 15 = 840 gives 1 - 78/840.
    k, n = 4, 14
    uncorrected = 12 * n / (k * (k + 1)) * (np.sum(s.mean_ranks**2) - k * (k + 1) ** 2 / 4)
    assert uncorrected == pytest.approx(9.28, abs=0.005)
    assert s.chi2 == pytest.approx(uncorrected / (1 - 78 / 840))
    from scipy.stats import chi2

    assert s.friedman_p == pytest.approx(chi2.sf(s.chi2, 3))
    assert s.iman_davenport_f == pytest.approx(13 * s.chi2 / (14 * 3 - s.chi2))
    # CD = 2.569 * sqrt(4 * 5 / (6 * 14)) = 1.25
    assert s.critical_difference == pytest.approx(2.569 * math.sqrt(20 / 84), abs=1e-3)
    assert s.critical_difference == pytest.approx(1.25, abs=0.01)


def test_nemenyi_q_values_match_demsar_table():
    # q_0.05 for k = 2..6: 1.960, 2.343, 2.569, 2.728, 2.850 (CD with N such that sqrt(k(k+1)/6N) = 1)
    for k, q in ((2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850)):
        assert nemenyi_critical_difference(k, k * (k + 1) / 6) == pytest.approx(q, abs=1e-3)
    assert nemenyi_critical_difference(4, 4 * 5 / 6, alpha=0.10) == pytest.approx(2.291, abs=1e-3)


def test_cliques_join_methods_closer_than_cd():
    assert cliques(np.array([1.0, 1.5, 2.4, 3.9]), 1.0) == [(0, 1), (1, 2)]
    assert cliques(np.array([1.0, 3.0]), 1.0) == []


def test_losses_rank_lower_first_and_incomplete_methods_are_left_out():
    recs = _records(rows=[(0.1, 0.2, 0.3)] * 3, methods=("a", "b", "c"), metric="hamming_loss")[:9]
    recs.append(RunRecord("x", "partial", "d0", 0, "fp", {"hamming_loss": 0.0}, {}, "", 0))
    s = summarise_across_tasks(recs, TASKS[:3], metric="hamming_loss")
    assert s.methods == ["a", "b", "c"] and s.mean_ranks.tolist() == [1.0, 2.0, 3.0]
    assert s.left_out == {"partial": ["d1", "d2"]}


def test_seeds_are_averaged_and_older_fingerprints_ignored():
    recs = [
        RunRecord("1", "a", "t", 0, "new", {"micro_f1": 0.8}, {}, "", 2),
        RunRecord("2", "a", "t", 1, "new", {"micro_f1": 0.6}, {}, "", 3),
        RunRecord("3", "a", "t", 0, "old", {"micro_f1": 0.1}, {}, "", 1),
    ]
    s = summarise_across_tasks(recs, ["t"])
    assert s.scores.tolist() == [[pytest.approx(0.7)]] and s.seeds.tolist() == [[2]]


def test_report_writes_tables_exports_and_a_diagram(tmp_path):
    readme = write_cross_task_report(None, _records(), TASKS, tmp_path, command="mlbench report --tasks ...")
    text = readme.read_text()
    scores = text[text.index("### Test micro-F1"):text.index("### Ranks")]
    assert "| c45+m+cf | **0.798** |" in scores and "| c45+m+cf | 1.0 |" not in scores  # scores, not ranks
    assert "| c45+m+cf | 1.0 | 4.0 |" in text[text.index("### Ranks"):]
    assert "| Nemenyi CD (alpha=0.05) | 1.254 |" in text
    for name in ("scores_micro_f1", "ranks_micro_f1", "friedman_micro_f1", "mean_ranks"):
        assert (tmp_path / "tables" / f"{name}.csv").read_text().count("\n") >= 3
        assert "\\begin{tabular}" in (tmp_path / "tables" / f"{name}.tex").read_text()
    assert "mean rank" in (tmp_path / "tables" / "ranks_micro_f1.csv").read_text().splitlines()[0]
    png = tmp_path / "cd_diagram.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)
    assert pixels.shape[1] > 800 and (pixels[..., :3] < 0.5).mean() > 0.005  # some ink on the canvas
    # the bundle renders the same bytes, README and every table, with no store
    copy = tmp_path / "copy"
    from mlbench.reports.page import render_report

    render_report(tmp_path, copy)
    assert (copy / "README.md").read_bytes() == readme.read_bytes()
    for f in (tmp_path / "tables").iterdir():
        assert (copy / "tables" / f.name).read_bytes() == f.read_bytes(), f.name


def test_cli_report_across_tasks_reads_the_store(tmp_path, monkeypatch, capsys):
    from mlbench.cli.main import main
    from mlbench.runs.tracking import Tracker

    monkeypatch.chdir(tmp_path)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_dir=tmp_path / "art")
    scores = {"t1": (0.9, 0.8, 0.7), "t2": (0.85, 0.86, 0.6), "t3": (0.7, 0.6, 0.5)}
    for task, row in scores.items():
        exp = tracker.experiment_id(task)
        for method, value in zip(("a", "b", "c"), row):
            run = tracker.start_run(exp, f"{method}-{task}", {"method": method, "task": task, "seed": 0,
                                                              "fingerprint": "fp"})
            tracker.log_metrics(run, {"test_micro_f1": value})
            tracker.end_run(run)
    uri = tracker.tracking_uri
    assert main(["report", "--tasks", "t1,t2,t3", "--out", "summary", "--tracking-uri", uri]) == 0
    text = (tmp_path / "summary" / "README.md").read_text()
    assert "| a | 1.33 | " not in text and "| a | 1.0 | 2.0 | 1.0 | **1.33** |" in text
    assert (tmp_path / "summary" / "cd_diagram.png").exists()
    assert main(["report", "--tasks", "t1", "--tracking-uri", uri]) == 2
    assert main(["report", "--tracking-uri", uri]) == 2
    assert "needs --task T" in capsys.readouterr().err


def test_configurations_of_one_method_are_separate_rows_never_averaged():
    from mlbench.reports.records import label_rows

    def rec(run, method, task, value, digest, label):
        return RunRecord(run, method, task, 0, "fp", {"micro_f1": value}, {}, "", 1, config_digest=digest,
                         config_label=label)

    recs = label_rows([
        rec("1", "a", "t1", 0.80, "d1", "defaults"), rec("2", "a", "t2", 0.70, "d1", "defaults"),
        rec("3", "a", "t1", 0.20, "d2", "--param C=10"),  # only on t1: left out, not averaged into a
        rec("4", "b", "t1", 0.60, "d3", "defaults"), rec("5", "b", "t2", 0.75, "d3", "defaults"),
    ])
    s = summarise_across_tasks(recs, ["t1", "t2"])
    assert sorted(s.methods) == ["a", "b"]  # a's defaults keep the method's name; C=10 gets a short label
    scores = dict(zip(s.methods, s.scores.tolist()))
    assert scores["a"] == [pytest.approx(0.80), pytest.approx(0.70)]
    assert s.left_out == {"a+C=10": ["t2"]}


def test_cd_diagram_names_clear_of_clique_bars_and_rank_lines():
    """No method name is crossed by a clique bar or by another method's line (both used to run through names)."""
    import matplotlib.pyplot as plt

    from mlbench.reports.crosstask import cd_figure

    # the ranks of reports/reuters-family: seven rows over six tasks, one at rank 1, two cliques
    ranks = [(1, 1, 1, 1, 1, 1), (2, 2, 2, 2, 2, 2), (3, 3, 3, 3, 4, 4), (6, 6, 4, 4, 3, 3), (4, 4, 5, 5, 5, 5),
             (5, 5, 6, 7, 7, 7), (7, 7, 7, 6, 6, 6)]
    names = ("omikuji", "lp", "pcc", "cnn-rnn [suite paper-reuters]", "br", "rakel", "mlknn")
    rows = [tuple(1 - ranks[m][t] / 10 for m in range(7)) for t in range(6)]
    summary = summarise_across_tasks(_records(rows=rows, methods=names), TASKS[:6])
    assert len(cliques(summary.mean_ranks, summary.critical_difference)) == 2
    fig = cd_figure(summary)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    names = [t.get_window_extent(renderer) for t in ax.texts if "(" in t.get_text()]
    assert len(names) == 7
    lines = [ln for ln in ax.lines if ln.get_linewidth() == 3 or len(ln.get_xdata()) == 3]  # bars, rank lines
    assert len(lines) == 7 + 2
    for line in lines:
        xy = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
        for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
            for box in names:  # a segment crosses a name when it passes through the box's inside
                if x0 == x1 and box.x0 + 1 < x0 < box.x1 - 1:
                    assert max(y0, y1) <= box.y0 + 1 or min(y0, y1) >= box.y1 - 1
                if y0 == y1 and box.y0 + 1 < y0 < box.y1 - 1:
                    assert max(x0, x1) <= box.x0 + 1 or min(x0, x1) >= box.x1 - 1
    plt.close(fig)


@pytest.mark.slow
def test_no_complete_row_says_which_rows_are_partial_and_what_to_do(tmp_path, capsys):
    from mlbench.cli.main import main
    from mlbench.runs.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_dir=tmp_path / "art")
    for method in ("a", "b", "c", "d", "e"):
        run = tracker.start_run(tracker.experiment_id("t1"), method, {"method": method, "task": "t1", "seed": 0,
                                                                      "fingerprint": "fp"})
        tracker.log_metrics(run, {"test_micro_f1": 0.5})
        tracker.end_run(run)
    args = ["report", "--tasks", "t1,t2", "--out", str(tmp_path / "x"), "--tracking-uri", tracker.tracking_uri]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rows with some of them: a, b, c, d and 1 more" in err[0] and "--merge DIR" in err[0]
    empty = ["report", "--tasks", "t1,t2", "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"]
    assert main(empty) == 1 and "rows with some" not in capsys.readouterr().err


def test_variants_of_a_dataset_this_installation_does_not_know_are_one_dataset():
    from mlbench.api import UsageError
    from mlbench.reports.across_tasks import check_independent, dataset_of

    assert dataset_of("my-corpus-trim5-shuffled") == "my-corpus" and dataset_of("my-corpus") == "my-corpus"
    assert dataset_of("emotions-trim2") == "emotions"
    check_independent(["my-corpus", "other-corpus", "emotions"])
    with pytest.raises(UsageError, match="variants of one dataset \\(my-corpus\\)"):
        check_independent(["my-corpus", "my-corpus-shuffled", "emotions"])


def test_a_row_with_some_datasets_is_shown_and_tested_pairwise_but_not_ranked(tmp_path):
    # seq2seq and seq2set ran on 6 of the 14 tasks: they stay out of the ranks, not out of the page
    records = _records()
    for i, t in enumerate(TASKS[:6]):
        for m, v in (("seq2seq", 0.70 + i / 100), ("seq2set", 0.71 + i / 100)):
            records.append(RunRecord(hashlib.md5(f"{m}-{t}".encode()).hexdigest(), m, t, 0, "fp",
                                     {"micro_f1": v}, {}, "", 0))
    text = write_cross_task_report(None, records, TASKS, tmp_path).read_text()
    scores = text[text.index("### Test micro-F1"):text.index("### Ranks")]
    row = next(x for x in scores.splitlines() if x.startswith("| seq2set"))
    assert row.endswith("(partial) | 0.710 | **0.720** | 0.730 | **0.740** | 0.750 | 0.760 |" + " – |" * 8), row
    assert "seq2set" not in text[text.index("### Ranks"):text.index("## Cells without a run")]
    assert "| Nemenyi CD (alpha=0.05) | 1.254 |" in text  # the four complete rows only, as before
    line = next(x for x in text.splitlines() if x.startswith("| seq2set | seq2seq |"))
    assert "| 6 | 6/0/0 | +0.0100 |" in line  # Δ over the six datasets both ran
    assert "`seq2set` against `seq2seq`: 6 wins, 0 ties, 0 losses over 6 datasets" in text
    csv_rows = (tmp_path / "tables" / "scores_micro_f1.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in csv_rows if "(partial)" in r] == ["0.7", "0.71"]


def test_a_cell_with_fewer_seeds_than_most_of_its_row_is_marked():
    from mlbench.reports.across_tasks import FEWER_SEEDS, usual_seeds

    # most datasets ran 3 seeds: one with 1 is below (runs still to finish); one with 5 (a paper table's extra
    # seeds) is not; on a tie the larger count is the usual one
    assert usual_seeds([3, 3, 3, 1, 5]) == 3
    assert usual_seeds([1, 3]) == 3 and usual_seeds([]) == 0
    assert FEWER_SEEDS.strip() == "§"
