"""A report renders from its bundle alone, byte for byte, and every metric of runs.csv recomputes from predictions/."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from mlbench.reports.bundle import Bundle
from mlbench.metrics import frequency_groups
from mlbench.reports.page import render_report, write_report
from mlbench.runs.tracking import Tracker

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "reports" / "reuters"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tiny store: br (defaults, seeds 0-2, and --param C=10 seed 0) and pcc (seeds 0-1) on synthetic,
    br on synthetic-trim2 too."""
    import os

    from mlbench.data.tasks import get_task
    from mlbench.registry import get_method
    from mlbench.runs.runner import run_once

    root = tmp_path_factory.mktemp("store")
    os.environ["MLBENCH_NO_PROGRESS"] = "1"
    tracker = Tracker(f"sqlite:///{root / 'mlflow.db'}", artifact_dir=root / "mlartifacts")
    task, trim = get_task("synthetic"), get_task("synthetic-trim2")
    br, pcc = get_method("br"), get_method("pcc")
    for seed in (0, 1, 2):
        run_once(br, task, {}, seed, "cpu", tracker, preset="small", progress=False)
        run_once(br, trim, {}, seed, "cpu", tracker, preset="small", progress=False)
    run_once(br, task, {"C": 10}, 0, "cpu", tracker, preset="small", progress=False)
    for seed in (0, 1):
        run_once(pcc, task, {"beam_width": 3}, seed, "cpu", tracker, preset="small", progress=False)
    out = root / "report"
    write_report(tracker, out, "synthetic", command="mlbench report --task synthetic", n_resamples=100)
    return tracker, out


@pytest.fixture(scope="module")
def own_store(store, tmp_path_factory):
    """A second, independent dataset (an own-data folder) with br runs (seeds 0-2) in the same store, and its
    report bundle: (the folder's task name, the bundle)."""
    import json

    from mlbench.data.files import canonical_task_name
    from mlbench.data.tasks import get_task
    from mlbench.registry import get_method
    from mlbench.runs.runner import run_once

    tracker, _ = store
    root = tmp_path_factory.mktemp("own")
    source = get_task("synthetic")
    for part, split in (("train", source.train), ("test", source.test)):
        rows = [{"text": text, "labels": [source.labels[j] for j in split.Y[i].indices]}
                for i, text in enumerate(split.texts)]
        (root / f"{part}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    name = canonical_task_name(str(root))
    task = get_task(name)
    for seed in (0, 1, 2):
        run_once(get_method("br"), task, {}, seed, "cpu", tracker, preset="small", progress=False)
    out = root / "report"
    write_report(tracker, out, name, command="mlbench report --task own", n_resamples=50)
    return name, out


@pytest.mark.slow
def test_report_rerenders_byte_for_byte_from_the_bundle(store, tmp_path):
    _, out = store
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)  # elsewhere, and with no store in reach
    (copy / "README.md").unlink()
    render_report(copy)
    assert (copy / "README.md").read_bytes() == (out / "README.md").read_bytes()
    for fig in ("figure1_trim.png", "figure2_hf_lf.png"):
        assert (copy / fig).read_bytes() == (out / fig).read_bytes()
    for table in (out / "tables").iterdir():  # every table's CSV and LaTeX too
        assert (copy / "tables" / table.name).read_bytes() == table.read_bytes(), table.name
    # the command line does the same into another folder
    from mlbench.cli.main import main

    assert main(["report", "--from", str(out), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "README.md").read_bytes() == (out / "README.md").read_bytes()
    assert main(["report", "--from", str(tmp_path / "nothing-here")]) == 1


def test_rows_are_configurations_and_runs_csv_holds_the_identity(store):
    _, out = store
    text = (out / "README.md").read_text()
    assert "| br | 3 |" in text and "| br+C=10 | 1 |" in text  # short labels: the defaults are the method's name
    assert "| pcc+beam_width=3 | 2 |" in text
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert len(rows) == 3 + 3 + 1 + 2
    for row in rows:
        assert len(row["config_digest"]) == 12 and len(row["code_digest"]) == 12 and row["git_commit"]
        assert row["predictions"] and (out / row["predictions"]).is_file()
    br_digests = {r["config_digest"] for r in rows if r["method"] == "br" and r["task"] == "synthetic"}
    assert len(br_digests) == 2
    assert len({r["code_digest"] for r in rows if r["method"] == "br"}) == 1
    # Figure 1: br defaults at k = 0 and k = 2 over the same seeds; the C=10 run (one k only) is left out
    assert "| br | 0, 1, 2 |" in text  # Figure 1's table: the row's seeds at every k
    for name in ("table1", "legend_synthetic", "figure1_trim", "hf_lf", "bootstrap", "provenance"):
        assert (out / "tables" / f"{name}.csv").is_file() and (out / "tables" / f"{name}.tex").is_file(), name
    assert "Micro-F1 by the labels' number of training documents" in text and "test pos.)" in text


def test_config_filter_picks_runs_on_purpose(store, tmp_path):
    tracker, _ = store
    write_report(tracker, tmp_path / "d", "synthetic", n_resamples=50, config="default")
    rows = list(csv.DictReader(open(tmp_path / "d" / "runs.csv")))
    assert {(r["method"], r["config_label"]) for r in rows} == {("br", "defaults")}
    digest = next(r["config_digest"] for r in csv.DictReader(open(store[1] / "runs.csv")) if r["config_label"] == "--param C=10")
    write_report(tracker, tmp_path / "c", "synthetic", n_resamples=50, config=digest[:8])
    assert {r["config_label"] for r in csv.DictReader(open(tmp_path / "c" / "runs.csv"))} == {"--param C=10"}


def recompute(bundle: Bundle, row: dict[str, str]) -> dict[str, float]:
    """Every metric of a runs.csv row, from the bundle's files, with scikit-learn (and hand counts for P@k)."""
    truth = bundle.truth(row["task"])
    pred, top = bundle.predictions(row["run_id"])
    y, p = truth.Y.toarray(), pred.toarray()
    out = {
        "hamming_loss": skm.hamming_loss(y, p),
        "subset_01_loss": 1 - skm.accuracy_score(y, p),
        "micro_precision": skm.precision_score(y, p, average="micro", zero_division=0),
        "micro_recall": skm.recall_score(y, p, average="micro", zero_division=0),
        "micro_f1": skm.f1_score(y, p, average="micro", zero_division=0),
        "macro_f1": skm.f1_score(y, p, average="macro", zero_division=0),
        "example_f1": skm.f1_score(y, p, average="samples", zero_division=0),
    }
    hf, lf = frequency_groups(truth.train_frequency, eligible=y.sum(axis=0) > 0)
    for name, cols in (("hf", hf), ("lf", lf)):
        # as binary problems: scikit-learn takes a one-column matrix (emotions' HF group of 6 labels) as a binary
        # target, whose "micro" average would count the negative class too
        out[f"{name}_micro_f1"] = skm.f1_score(y[:, cols].ravel(), p[:, cols].ravel(), zero_division=0)
        out[f"{name}_macro_f1"] = float(np.mean([skm.f1_score(y[:, c], p[:, c], zero_division=0) for c in cols]))
    if top is not None:
        for k in (1, 3, 5):
            gains = np.take_along_axis(y, top[:, :k], axis=1)
            out[f"p_at_{k}"] = gains.sum(axis=1).mean() / k
            disc = 1 / np.log2(np.arange(2, k + 2))
            ideal = np.array([disc[: min(k, int(n))].sum() for n in y.sum(axis=1)])
            dcg = gains @ disc[: gains.shape[1]]
            out[f"ndcg_at_{k}"] = float(np.mean(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)))
        judged = y.sum(axis=1) > 0  # one-error: the top-ranked label is not true, among documents with a label
        out["one_error"] = float((np.take_along_axis(y, top[:, :1], axis=1)[judged, 0] == 0).mean()) if judged.any() else 0.0
    return out


def check_bundle_metrics(root: Path) -> int:
    bundle = Bundle(root)
    checked = 0
    for row in bundle.rows():
        if not row["predictions"]:
            continue
        again = recompute(bundle, row)
        for name, value in again.items():
            logged = row.get(f"test_{name}", "")
            if logged:
                assert float(logged) == pytest.approx(value, abs=1e-9), (row["run_id"], name)
                checked += 1
    return checked


def test_every_metric_recomputes_from_the_predictions(store):
    _, out = store
    assert check_bundle_metrics(out) >= 9 * 11  # nine runs, eleven set metrics each at least


@pytest.mark.parametrize("name", ["reuters", "mulan"])
@pytest.mark.slow
def test_committed_report_rerenders_and_recomputes(tmp_path, name):
    """A committed report (one task, or across datasets) renders the same page and tables from its bundle alone,
    and every metric in its runs table recomputes from its predictions."""
    committed = REPO / "reports" / name
    if not (committed / "runs.csv").exists():
        pytest.skip(f"reports/{name} has no bundle yet")
    copy = tmp_path / name
    shutil.copytree(committed, copy)
    render_report(copy)
    assert (copy / "README.md").read_bytes() == (committed / "README.md").read_bytes()
    for table in (committed / "tables").iterdir():
        assert (copy / "tables" / table.name).read_bytes() == table.read_bytes(), table.name
    assert check_bundle_metrics(committed) > 0


@pytest.mark.slow
def test_merge_adds_an_earlier_bundles_runs_and_the_store_supersedes_its_cells(store, tmp_path):
    from mlbench.cli.main import main
    from mlbench.data.tasks import get_task
    from mlbench.registry import get_method
    from mlbench.runs.runner import run_once

    tracker, full = store
    earlier = tmp_path / "earlier"  # br's defaults only, as if committed by an earlier session
    write_report(tracker, earlier, "synthetic", n_resamples=50, config="default")
    earlier_rows = {r["run_id"]: r for r in csv.DictReader(open(earlier / "runs.csv"))}
    assert {r["method"] for r in earlier_rows.values()} == {"br"}

    # a new store with one new cell (pcc, beam 2) and one cell the bundle has too (br defaults, seed 0)
    other = Tracker(f"sqlite:///{tmp_path / 'other.db'}", artifact_dir=tmp_path / "other-artifacts")
    run_once(get_method("pcc"), get_task("synthetic"), {"beam_width": 2}, 0, "cpu", other, preset="small",
             progress=False)
    run_once(get_method("br"), get_task("synthetic"), {}, 0, "cpu", other, preset="small", progress=False)
    assert main(["report", "--task", "synthetic", "--out", str(earlier), "--merge", str(earlier), "--resamples", "50",
                 "--tracking-uri", other.tracking_uri]) == 0

    rows = list(csv.DictReader(open(earlier / "runs.csv")))
    kept = [r for r in rows if r["run_id"] in earlier_rows]
    assert len(rows) == len(earlier_rows) + 1  # br seed 0 came from the store, in place of the bundle's
    assert {(r["task"], r["seed"]) for r in kept} == {(r["task"], r["seed"]) for r in earlier_rows.values()} - {
        ("synthetic", "0")}
    assert {r["method"] for r in rows if r["run_id"] not in earlier_rows} == {"br", "pcc"}
    for r in rows:  # every run's predictions travelled, even though --out was the bundle being merged
        assert r["predictions"] and (earlier / r["predictions"]).is_file()
    assert check_bundle_metrics(earlier) >= len(rows) * 11
    text = (earlier / "README.md").read_text()
    assert "| br | 3 |" in text and "| pcc+beam_width=2 | 1 |" in text
    copy = tmp_path / "copy"
    shutil.copytree(earlier, copy)
    render_report(copy)
    assert (copy / "README.md").read_bytes() == (earlier / "README.md").read_bytes()

    # usage errors before any work
    assert main(["report", "--task", "synthetic", "--merge", str(tmp_path / "nothing"),
                 "--tracking-uri", other.tracking_uri]) == 2
    assert main(["report", "--from", str(full), "--merge", str(earlier)]) == 2


def test_merge_refuses_what_would_lose_runs_and_leaves_the_folder_as_it_was(store, tmp_path, monkeypatch):
    from mlbench.reports import bundle as bundle_module
    from mlbench.api import MlbenchError

    tracker, full = store
    folder = tmp_path / "kept"
    shutil.copytree(full, folder)
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def unchanged() -> None:
        after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        assert after == before
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".kept.")]  # no temporary folder left

    # a filter would drop runs of the folder being rewritten
    with pytest.raises(MlbenchError, match="would leave out"):
        write_report(tracker, folder, "synthetic", n_resamples=50, config="default", merge=[folder])
    unchanged()
    # a bundle of another task family
    with pytest.raises(MlbenchError, match="holds a report of task 'synthetic'"):
        write_report(tracker, tmp_path / "x", "reuters", n_resamples=50, merge=[folder])
    # a failure half-way through the export (here: reading the store's predictions)
    def broken(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "_export_predictions", broken)
    with pytest.raises(OSError):
        write_report(tracker, folder, "synthetic", n_resamples=50, merge=[folder])
    unchanged()


@pytest.mark.slow
def test_cross_task_report_reads_bundles_with_configurations_as_rows(store, own_store, tmp_path, monkeypatch):
    """`report --tasks ... --merge DIR` ranks from committed evidence alone (an empty store, the bundles'
    runs.csv and predictions); each configuration is its own row; the comparison is a bundle of its own that
    renders the same bytes with `--from`."""
    from mlbench.cli.main import main

    _, out = store
    own, own_out = own_store
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["report", "--tasks", f"synthetic,{own}", "--merge", str(out), "--merge", str(own_out),
                 "--out", "across", "--tracking-uri", uri]) == 0
    text = (tmp_path / "across" / "README.md").read_text()
    rows = [r for r in csv.DictReader(open(out / "runs.csv")) if r["method"] == "br" and r["config_label"] == "defaults"]
    own_rows = list(csv.DictReader(open(own_out / "runs.csv")))
    mean = (np.mean([float(r["test_micro_f1"]) for r in rows if r["task"] == "synthetic"]),
            np.mean([float(r["test_micro_f1"]) for r in own_rows]))
    assert f"| br | {mean[0]:.3f} | {mean[1]:.3f} |" in text.replace("**", "")
    assert "br+C=10 (missing" in text and "pcc+beam_width=3 (missing" in text
    assert "| pcc | " in text and "| no run |" in text  # the cells without a run, and why
    assert f"--merge {out}" in text  # the regenerate line names the evidence it read
    across = tmp_path / "across"
    assert check_bundle_metrics(across) >= 6 * 11  # the comparison's own bundle recomputes from predictions
    copy = tmp_path / "copy"
    shutil.copytree(across, copy)
    assert main(["report", "--from", str(copy)]) == 0
    for f in [across / "README.md", across / "cd_diagram.png", *(across / "tables").iterdir()]:
        assert (copy / f.relative_to(across)).read_bytes() == f.read_bytes(), f.name


def test_a_comparison_across_variants_of_one_dataset_is_refused(store, tmp_path, capsys):
    """Friedman, Nemenyi and Wilcoxon across tasks assume independent datasets: a trimmed copy is not one."""
    from mlbench.cli.main import main

    _, out = store
    assert main(["report", "--tasks", "synthetic,synthetic-trim2", "--merge", str(out), "--out",
                 str(tmp_path / "x"), "--tracking-uri", f"sqlite:///{tmp_path / 'e.db'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "variants of one dataset (synthetic)" in err[0]
    assert not (tmp_path / "x").exists()


def test_cross_task_merge_refuses_runs_of_another_split(store, own_store, tmp_path, monkeypatch, capsys):
    """A bundle's runs carry no start time: with store runs on another split of the same task the newest split
    cannot be told, so the comparison stops with one error line instead of picking one."""
    from mlbench.cli.main import main

    _, out = store
    own, _ = own_store
    monkeypatch.chdir(tmp_path)
    tracker = Tracker(f"sqlite:///{tmp_path / 'other.db'}", artifact_dir=tmp_path / "art")
    run = tracker.start_run(tracker.experiment_id("synthetic"), "a-synthetic",
                            {"method": "a", "task": "synthetic", "seed": 0, "fingerprint": "another-split"})
    tracker.log_metrics(run, {"test_micro_f1": 0.5})
    tracker.end_run(run)
    assert main(["report", "--tasks", f"synthetic,{own}", "--merge", str(out), "--out", "across",
                 "--tracking-uri", tracker.tracking_uri]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "task synthetic" in err[0] and "another-split" in err[0]
    assert not (tmp_path / "across").exists()


def test_merged_records_reads_metrics_alone_without_copying_predictions():
    from mlbench.reports.bundle import merged_records

    records, copied = merged_records([], [COMMITTED], ["reuters", "reuters-trim30"], scratch=None)
    rows = [r for r in csv.DictReader(open(COMMITTED / "runs.csv")) if r["task"] in ("reuters", "reuters-trim30")]
    assert len(records) == len(rows) and set(copied) == {r["run_id"] for r in rows}
    assert all(v is None for v in copied.values())


def test_a_task_name_is_a_plain_file_name_under_tasks():
    """Built-in task names name their labels' file as before; a path task (``./data``, ``/abs/data``) gets a
    plain name inside tasks/ (it used to be joined as a path: an absolute one wrote outside the bundle)."""
    from mlbench.reports.bundle_input import PLAIN_TASK, task_file_name

    for task in ("reuters", "reuters-trim10-shuffled", "rcv1", "synthetic-trim2"):
        assert task_file_name(task) == f"{task}.npz"
    names = {task_file_name(t) for t in ("./data", "/abs/data", "../data", "data/", "./a b/c.jsonl", "x" * 500)}
    assert len(names) == 6
    for name in names:
        assert PLAIN_TASK.fullmatch(name[:-4]) and "/" not in name and not name.startswith(".") and len(name) < 100
