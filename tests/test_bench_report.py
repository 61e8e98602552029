"""Benchmark suites resume from the store, failures do not stop them, reports render from a small store."""

from __future__ import annotations

import pytest

from mlbench.reports.page import write_report
from mlbench.reports.records import collect_runs, summarise
from mlbench.reports.tables import table1
from mlbench.runs.matrix import run_suite
from mlbench.runs.suite import Suite, cell_digest, completed_cells, load_suite
from mlbench.runs.tracking import Tracker


@pytest.fixture
def tracker(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLBENCH_NO_PROGRESS", "1")
    return Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_dir=tmp_path / "mlartifacts")


def _suite(methods):
    return Suite(
        name="tiny",
        methods=methods,
        tasks=["synthetic", "synthetic-shuffled", "synthetic-trim2"],
        seeds=[0, 1],
        preset="small",
    )


@pytest.mark.slow
def test_suite_resumes_and_survives_a_failing_cell(tracker):
    lines = []
    suite = _suite({"br": {"C": 10}, "no-such-method": {}})
    first = run_suite(suite, tracker, echo=lines.append)
    status = [(o.method, o.task, o.seed, o.status) for o in first]
    assert sum(s == "done" for *_, s in status) == 6
    assert sum(s == "failed" for *_, s in status) == 6  # every cell of the unknown method, and the suite went on
    assert any("FAILED" in line and "no-such-method" in line for line in lines)
    # same suite again: nothing is recomputed
    second = run_suite(_suite({"br": {"C": 10}}), tracker, echo=lines.append)
    assert [o.status for o in second] == ["skipped"] * 6
    # another configuration of the same method is a new cell
    third = run_suite(
        Suite(name="tiny", methods={"br": {"C": 1}}, tasks=["synthetic"], seeds=[0]), tracker, echo=lines.append
    )
    assert [o.status for o in third] == ["done"]
    from mlbench.data.tasks import get_task

    task = get_task("synthetic")
    done = completed_cells(tracker, "synthetic", task.fingerprint)
    assert ("br", 0, cell_digest(_suite({"br": {"C": 10}}), "br")) in done
    assert ("br", 0, cell_digest(_suite({"br": {"C": 1}}), "br")) in done


@pytest.mark.slow
def test_a_stored_cell_reruns_when_the_method_now_resolves_other_settings(tracker, monkeypatch):
    from mlbench.methods.br import BinaryRelevance as BR

    from mlbench.runs.suite import changed_params

    suite = Suite(name="tiny", methods={"br": {"C": 10}}, tasks=["synthetic"], seeds=[0])
    assert [o.status for o in run_suite(suite, tracker, echo=lambda _: None)] == ["done"]
    lines = []
    # a code default the suite does not set changes: same config hash, but the stored run is stale
    monkeypatch.setitem(BR.defaults, "sublinear_tf", True)
    dry = run_suite(suite, tracker, echo=lines.append, dry_run=True)
    assert [o.status for o in dry] == ["pending"]
    assert "sublinear_tf: False -> True" in lines[-1] and "would rerun" in lines[-1]
    assert [o.status for o in run_suite(suite, tracker, echo=lines.append)] == ["done"]
    assert "sublinear_tf: False -> True" in lines[-2] and lines[-2].endswith(": rerun")
    # now the newest run matches, so the cell is complete again
    assert [o.status for o in run_suite(suite, tracker, echo=lines.append)] == ["skipped"]
    # a parameter the method gained after the run: only a value away from its default makes the run stale
    logged = {"C": "10", "threshold": "0.5"}
    assert changed_params({"C": 10, "threshold": 0.5, "new": 1}, logged, {"new": 1}) == []
    assert changed_params({"C": 10, "threshold": 0.5, "new": 2}, logged, {"new": 1}) == ["new: (absent) -> 2"]
    assert changed_params({"C": 10, "threshold": 0.4}, logged, {}) == ["threshold: 0.5 -> 0.4"]
    assert changed_params({"C": 10, "threshold": 0.4, "path": "/tmp/x"}, logged, {}, ignore=["threshold", "path"]) == []


@pytest.mark.slow
def test_a_stored_cell_reruns_when_its_code_digest_changed(tracker, monkeypatch):
    import mlbench.runs.identity

    suite = Suite(name="tiny", methods={"br": {}}, tasks=["synthetic"], seeds=[0])
    assert [o.status for o in run_suite(suite, tracker, echo=lambda _: None)] == ["done"]
    assert [o.status for o in run_suite(suite, tracker, echo=lambda _: None, dry_run=True)] == ["skipped"]
    monkeypatch.setattr(mlbench.runs.identity, "method_code_digest", lambda cls: "0123456789ab")
    lines = []
    assert [o.status for o in run_suite(suite, tracker, echo=lines.append, dry_run=True)] == ["pending"]
    assert "-> 0123456789ab" in lines[-1] and "code:" in lines[-1]


def test_bench_methods_keeps_the_labels_of_the_methods_kept(tmp_path, capsys):
    """--methods on a suite that labels several methods (benchmarks/rerun_envelope.py reruns one of them)."""
    from mlbench.cli.main import main

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmethods: {br: {C: 10}, pcc: {}}\ntasks: [synthetic]\nseeds: [0]\n"
                     "labels: {br: br-strong, pcc: pcc-plain}\n")
    assert main(["bench", str(suite), "--methods", "br", "--dry-run", "-q",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]) == 0
    assert "1 to run, 0 already complete" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_dry_run_lists_the_cells_without_running_them(tracker, capsys):
    from mlbench.cli.main import main

    uri = tracker.tracking_uri
    args = ["bench", "linear-reuters", "--methods", "br", "--tasks", "synthetic", "--seeds", "0", "1",
            "--tracking-uri", uri, "-q"]
    assert main([*args, "--dry-run"]) == 0
    assert "2 to run, 0 already complete" in capsys.readouterr().out
    assert main(args) == 0
    assert main([*args, "--dry-run"]) == 0
    assert "0 to run, 2 already complete" in capsys.readouterr().out


@pytest.mark.slow
def test_report_renders_from_the_store(tracker, tmp_path, capsys):
    run_suite(_suite({"br": {"C": 10}, "pcc": {"C": 10, "beam_width": 3}}), tracker, echo=lambda _: None)
    records = collect_runs(tracker, ["synthetic", "synthetic-shuffled", "synthetic-trim2"])
    summary = summarise(records, "synthetic")
    br = summary["br+C=10"]  # rows are short labels: the method and what the suite set
    vals = [r.metrics["micro_f1"] for r in records if r.method == "br" and r.task == "synthetic"]
    assert br["micro_f1"][2] == 2 and br["micro_f1"][0] == pytest.approx(sum(vals) / 2)
    assert "**" in table1(summary).markdown()
    readme = write_report(tracker, tmp_path / "report", "synthetic", command="mlbench report ...", n_resamples=200)
    text = readme.read_text()
    for heading in ("Table 1", "Table 2", "Figure 1", "Figure 2", "Paired bootstrap", "Provenance", "mlbench report ..."):
        assert heading in text, heading
    assert "| pcc+C=10,beam_width=3 | br+C=10 | 0, 1 |" in text  # the bootstrap pairs every seed both ran
    assert (tmp_path / "report" / "figure1_trim.png").stat().st_size > 1000
    assert (tmp_path / "report" / "figure2_hf_lf.png").stat().st_size > 1000
    # the same through the command line, and a paired comparison of two runs
    from mlbench.cli.main import main

    uri = tracker.tracking_uri
    assert main(["report", "--task", "synthetic", "--out", str(tmp_path / "r2"), "--tracking-uri", uri,
                 "--resamples", "100"]) == 0
    assert (tmp_path / "r2" / "README.md").exists()
    br0 = next(r for r in records if r.method == "br" and r.task == "synthetic" and r.seed == 0)
    pcc0 = next(r for r in records if r.method == "pcc" and r.task == "synthetic" and r.seed == 0)
    assert main(["compare", pcc0.run_id, br0.run_id, "--tracking-uri", uri, "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "micro_f1" in out and "subset_01_loss" in out and "95% CI" in out
    # several runs per side: the seed means are compared
    pcc_runs = [r for r in records if r.method == "pcc" and r.task == "synthetic"]
    br_runs = [r for r in records if r.method == "br" and r.task == "synthetic"]
    assert main(["compare", ",".join(r.run_id for r in pcc_runs), ",".join(r.run_id for r in br_runs),
                 "--tracking-uri", uri, "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "mean of 2 runs" in out
    f1_line = next(line for line in out.splitlines() if line.startswith("micro_f1"))
    a_mean = sum(r.metrics["micro_f1"] for r in pcc_runs) / 2
    assert float(f1_line.split()[1]) == pytest.approx(a_mean, abs=1e-4)
    shuffled_br = next(r for r in records if r.method == "br" and r.task == "synthetic-shuffled")
    assert main(["compare", shuffled_br.run_id, br0.run_id, "--tracking-uri", uri]) == 2  # different tasks
    # BR is unchanged by label shuffling: its Table 2 row shows no change in 0/1 loss
    table2_text = text.split("## Table 2")[1].split("\n## ")[0]
    row = next(line for line in table2_text.splitlines() if line.startswith("| br+C=10 |"))
    assert row.split(" | ")[5] == "+0.0"  # the 0/1 loss change column, in percent


def test_load_suite(tmp_path):
    s = load_suite("paper-reuters")
    assert s.base == "reuters" and "reuters-shuffled" in s.tasks and "reuters-trim10" in s.tasks
    assert len(s.methods) == 6
    f = tmp_path / "s.yaml"
    f.write_text("name: mine\nmethods: {br: {C: 3}}\ntasks: [synthetic]\nseeds: [4]\n")
    s = load_suite(str(f))
    assert s.methods == {"br": {"C": 3}} and s.seeds == [4] and s.cells() == [("br", "synthetic", 4)]
    with pytest.raises(Exception, match="unknown suite"):
        load_suite("nope")


@pytest.mark.slow
def test_a_cell_starts_from_the_model_of_an_earlier_cell(tracker):
    from mlbench.methods.seq2seq import Seq2Seq
    from mlbench.methods.seq2set import Seq2Set

    from mlbench.data.tasks import get_task
    from mlbench.runs.suite import find_cell_run, model_references

    mle = dict(Seq2Seq.contract_params)
    rl = {**Seq2Set.contract_params, "init_from": "@seq2seq"}
    suite = Suite(name="handoff", methods={"seq2seq": mle, "seq2set": rl}, tasks=["synthetic"], seeds=[0])
    assert model_references(suite) == {"seq2set": {"init_from": "seq2seq"}}
    outcomes = run_suite(suite, tracker, echo=lambda _: None)
    assert [o.status for o in outcomes] == ["done", "done"], [o.detail for o in outcomes]
    task = get_task("synthetic")
    source = find_cell_run(tracker, "synthetic", task.fingerprint, "seq2seq", 0, cell_digest(suite, "seq2seq"))
    target = find_cell_run(tracker, "synthetic", task.fingerprint, "seq2set", 0, cell_digest(suite, "seq2set"))
    assert source.data.tags["mlbench.saved_model"] == "model"
    assert target.data.tags["mlbench.init_from_run"] == source.info.run_id
    # the saved model loads and predicts what the run scored
    from mlbench.metrics import micro_precision_recall_f1

    loaded = Seq2Seq.load(tracker.download_model(source.info.run_id, tracker.artifact_dir.parent / "dl"))
    f1 = micro_precision_recall_f1(task.test.Y, loaded.predict(task.test))[2]
    assert f1 == pytest.approx(source.data.metrics["test_micro_f1"])
    # a newer run of the source cell makes the cell that started from the old one stale
    assert [o.status for o in run_suite(suite, tracker, echo=lambda _: None, dry_run=True)] == ["skipped", "skipped"]
    tracker.client.set_terminated(source.info.run_id, "FAILED")
    # the dry run says what the run then does: seq2seq runs again, so seq2set, which started from its old model
    lines = []
    dry = run_suite(suite, tracker, echo=lines.append, dry_run=True)
    assert [o.status for o in dry] == ["pending", "pending"], lines
    assert "init_from: its seq2seq cell would run first" in lines[1]
    lines = []
    outcomes = run_suite(suite, tracker, echo=lines.append)
    assert [o.status for o in outcomes] == ["done", "done"], lines
    newer = find_cell_run(tracker, "synthetic", task.fingerprint, "seq2seq", 0, cell_digest(suite, "seq2seq"))
    assert f"init_from: seq2seq run (none) -> {newer.info.run_id}" not in "".join(lines)
    # planned before anything runs: the seq2set cell is rerun because its source cell runs first
    assert "init_from: its seq2seq cell runs first" in next(line for line in lines if "seq2set" in line
                                                            and "rerun" in line)
    target = find_cell_run(tracker, "synthetic", task.fingerprint, "seq2set", 0, cell_digest(suite, "seq2set"))
    assert target.data.tags["mlbench.init_from_run"] == newer.info.run_id
    readme = write_report(tracker, tracker.artifact_dir.parent / "report", "synthetic", n_resamples=50).read_text()
    assert "Runs of seq2set started from another run's saved model" in readme

    # a reference to a method listed later, or to no method of the suite, is refused up front
    with pytest.raises(Exception, match="must be listed before"):
        model_references(Suite(name="x", methods={"seq2set": rl, "seq2seq": mle}, tasks=["synthetic"]))
    with pytest.raises(Exception, match="names no method"):
        model_references(Suite(name="x", methods={"seq2set": rl}, tasks=["synthetic"]))
    # a referenced cell that ran without saving its model: the referencing cell fails and says why
    lines = []
    other = {**rl, "rl_epochs": 1}
    no_save = Suite(name="y", methods={"seq2seq": {**mle, "epochs": 1}, "seq2set": other}, tasks=["synthetic"], seeds=[1])
    run_suite(Suite(name="y", methods={"seq2seq": {**mle, "epochs": 1}}, tasks=["synthetic"], seeds=[1]), tracker,
              echo=lines.append)
    outcomes = run_suite(no_save, tracker, echo=lines.append)
    assert [o.status for o in outcomes] == ["skipped", "failed"]
    assert "without saving its model" in outcomes[1].detail


def test_table2_compares_each_method_on_the_seeds_it_ran_on_both_tasks():
    from mlbench.reports.records import RunRecord, paired_summaries
    from mlbench.reports.tables import table2

    def rec(method, task, seed, f1):
        return RunRecord(f"{method}{task}{seed}", method, task, seed, "fp",
                         {"micro_f1": f1, "subset_01_loss": 1 - f1, "hamming_loss": 0.01}, {}, "", 0)

    records = [rec("a", "t", 0, 0.80), rec("a", "t", 1, 0.90), rec("a", "t", 2, 0.70), rec("a", "t-shuffled", 0, 0.80),
               rec("b", "t", 0, 0.5), rec("b", "t-shuffled", 0, 0.4), rec("b", "t-shuffled", 1, 0.6),
               rec("c", "t", 0, 0.5)]
    base, shuffled = paired_summaries(records, "t", "t-shuffled")
    assert base["a"]["micro_f1"] == (0.80, 0.0, 1)  # seed 0 only, not the mean of three seeds
    assert base["b"]["micro_f1"] == (0.5, 0.0, 1) and shuffled["b"]["micro_f1"] == (0.4, 0.0, 1)
    assert "c" not in base and "c" not in shuffled
    row = next(line for line in table2(base, shuffled).markdown().splitlines() if line.startswith("| a |"))
    assert row.split(" | ")[5] == "+0.0"



def test_comparison_pairs_are_each_row_against_br_and_each_seq2set_against_its_own_seq2seq():
    """One comparison table: every row against BR, then each Seq2Set-family row against the Seq2Seq row its
    RL phase started from (or, without that tag, the Seq2Seq row named alike), never every row against every
    Seq2Seq row."""
    from mlbench.reports.comparisons import comparison_pairs
    from mlbench.reports.records import RunRecord, label_rows

    def run(run_id, method, label, digest, start=None):
        tags = {"mlbench.init_from_run": start} if start else {}
        return RunRecord(run_id=run_id, method=method, task="reuters", seed=0, fingerprint="f", metrics={}, tags=tags,
                         artifact_uri="", start_time=0, config_digest=digest, config_label=label)

    records = label_rows([
        run("b", "br", "defaults", "d0"),
        run("x", "xml-cnn", "defaults", "d1"),
        run("s1", "seq2seq", "suite paper", "d2"),
        run("s2", "seq2seq", "suite glove: embeddings=glove50", "d3"),
        run("t1", "seq2set", "suite paper: init_from=<model of another run>", "d4", start="s1"),
        run("t2", "seq2set", "suite glove: embeddings=glove50", "d7"),  # no start tag: paired by its name
        run("m1", "seq2seq-minilm", "suite glove", "d5"),
        run("m2", "seq2set-minilm", "suite glove", "d6", start="m1"),
        run("other-task", "br", "defaults", "d0"),
    ])
    records[-1].task = "reuters-shuffled"
    pairs = comparison_pairs(records, "reuters")
    rows = ("xml-cnn", "seq2seq", "seq2seq+glove50", "seq2set", "seq2set+glove50", "seq2seq-minilm", "seq2set-minilm")
    assert pairs[:7] == [(r, "br") for r in rows]
    assert pairs[7:] == [("seq2set", "seq2seq"), ("seq2set+glove50", "seq2seq+glove50"),
                         ("seq2set-minilm", "seq2seq-minilm")]
