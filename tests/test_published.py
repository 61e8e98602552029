"""A comparison across datasets set beside a published one: published.json in the bundle, its checks and its page."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from mlbench.reports.across_tasks import write_cross_task_report
from mlbench.reports.bundle_input import BundleError
from mlbench.reports.page import render_report
from mlbench.reports.records import RunRecord

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

TASKS = ["d0", "d1", "d2", "d3", "d4"]
# mlbench's test micro-F1 per task (br has two seeds on d0: 0.60 and 0.70, mean 0.65)
BR = [(0.60, 0.70), (0.80,), (0.40,), (0.90,), (0.30,)]
PCC = [(0.66,), (0.82,), (0.45,), (0.88,), (0.35,)]
SOURCE = {"citation": "A. Author, \"A study\", A Journal 1:1 (2020).", "location": "table 4 of the paper",
          "protocol": "their SVMs, our logistic regression."}


def _records() -> list[RunRecord]:
    out = []
    for method, rows in (("br", BR), ("pcc", PCC)):
        for task, values in zip(TASKS, rows):
            for seed, v in enumerate(values):
                run_id = hashlib.md5(f"{method}-{task}-{seed}".encode()).hexdigest()
                metrics = {"micro_f1": v, "hamming_loss": round(1 - v, 3) / 10, "subset_01_loss": 1 - v / 2}
                out.append(RunRecord(run_id, method, task, seed, "fp", metrics, {}, "", 0))
    return out


def _figures() -> list[dict]:
    theirs = {"BR": [0.70, 0.75, 0.50, 0.85, 0.20], "CC": [0.60, 0.85, 0.55, 0.80, 0.40]}
    out = []
    for method, row in (("BR", "br"), ("CC", "pcc")):
        for task, v in zip(TASKS, theirs[method]):
            out.append({"dataset": task, "method": method, "row": row, "metric": "micro_f1", "value": v})
            out.append({"dataset": task, "method": method, "row": row, "metric": "subset_accuracy", "value": v / 2})
    return out


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    write_cross_task_report(None, _records(), TASKS, tmp_path, command="mlbench report --tasks ...")
    return tmp_path


def test_published_figures_are_set_beside_the_rows_with_their_agreement(bundle: Path):
    before = (bundle / "README.md").read_text()
    assert "published" not in before.lower()  # no file, no section
    (bundle / "published.json").write_text(json.dumps({"source": SOURCE, "figures": _figures()}))
    text = render_report(bundle).read_text()
    section = text[text.index("## Against a published comparison"):text.index("## Per dataset")]
    assert "Source: A. Author" in section and "table 4 of the paper" in section and "their SVMs" in section
    f1 = section[section.index("### micro-F1"):section.index("### subset accuracy")]
    assert "| dataset | br / BR | pcc / CC |" in f1
    assert "| d0 | 0.650 / 0.700 | 0.660 / 0.600 |" in f1  # br's two seeds averaged
    # subset accuracy is 1 - mlbench's subset 0/1 loss: br on d1 had 0/1 loss 1 - 0.8/2 = 0.6
    assert "| d1 | 0.400 / 0.375 | 0.410 / 0.425 |" in section
    agreement = section[section.index("### Agreement"):]
    # br vs BR on micro-F1: deltas -0.05, +0.05, -0.10, +0.05, +0.10 -> better on 3 of 5, median +0.05;
    # Spearman: mlbench's order (0.65, 0.8, 0.4, 0.9, 0.3) and theirs (0.7, 0.75, 0.5, 0.85, 0.2) agree: rho 1
    assert "| br / BR | micro_f1 | 5 | 3 of 5 | +0.050 | 1.00 |" in agreement
    # mean ranks among the pairs: mlbench's br beats pcc on d3 only (br 1.8), the study's BR on d0 and d3 (1.6)
    assert "| br / BR | micro_f1 | 5 | 3 of 5 | +0.050 | 1.00 | 1.80 | 1.60 |" in agreement
    assert "| pcc / CC | micro_f1 | 5 | 2 of 5 | -0.030 |" in agreement
    assert "hamming_loss" not in agreement  # no published Hamming loss, no row
    assert "| mlknn" not in agreement and "mlknn" not in findings_of(text)
    findings = findings_of(text)
    assert "mlbench's value is the higher one in 5 of 10 cells (br 3/5, pcc 2/5)" in findings
    assert "below the study for every pair compared on d2" in findings
    assert "above it for every pair compared on d3" in findings
    assert "the methods rank pcc, br in mlbench and pcc, br in the study (the same order)" in findings
    for name in ("published_micro_f1", "published_subset_accuracy", "published_agreement"):
        assert (bundle / "tables" / f"{name}.csv").is_file()
    # the page renders from the bundle alone, the same bytes elsewhere
    copy = bundle / "copy"
    render_report(bundle, copy)
    assert (copy / "README.md").read_bytes() == (bundle / "README.md").read_bytes()
    assert not (copy / "published.json").exists()  # read, never copied


def findings_of(text: str) -> str:
    return text[text.index("## Findings"):text.index("## Mean rank")]


def _section(bundle: Path, figures: list[dict], source: dict = SOURCE) -> str:
    (bundle / "published.json").write_text(json.dumps({"source": source, "figures": figures}))
    text = render_report(bundle).read_text()
    return text[text.index("## Against a published comparison"):text.index("## Per dataset")]


def test_a_lower_is_better_measure_counts_mlbench_better_when_its_value_is_lower(bundle: Path):
    # mlbench's Hamming loss per task (see _records): br (1 - micro-F1) / 10 -> d0 0.035, d1 0.02, d2 0.06, d3 0.01,
    # d4 0.07; published: lower than mlbench's on d0, d1, higher on d2, d3, d4
    theirs = [0.030, 0.010, 0.080, 0.020, 0.090]
    figures = [{"dataset": t, "method": "BR", "row": "br", "metric": "hamming_loss", "value": v}
               for t, v in zip(TASKS, theirs)]
    agreement = _section(bundle, figures)
    agreement = agreement[agreement.index("### Agreement"):]
    # mlbench - published: +0.005, +0.010, -0.020, -0.010, -0.020 -> better (lower) on 3 of 5, median improvement
    # +0.010; the datasets' order by loss differs on d1 and d3 only (rho 0.9); one pair only, so no ranks
    assert "| br / BR | hamming_loss | 5 | 3 of 5 | +0.010 | 0.90 | – | – |" in agreement


def test_spearman_needs_three_datasets_and_a_pair_without_runs_leaves_the_others_ranked(bundle: Path):
    figures = [f for f in _figures() if f["metric"] == "micro_f1"]
    figures = [f for f in figures if f["method"] == "CC"] + [f for f in figures if f["method"] == "BR"][:2]
    figures += [{"dataset": t, "method": "MLkNN", "row": "mlknn", "metric": "micro_f1", "value": 0.5} for t in TASKS]
    section = _section(bundle, figures)
    agreement = section[section.index("### Agreement"):]
    assert "| br / BR | micro_f1 | 2 | 1 of 2 | +0.000 | – |" in agreement  # two datasets: no rho
    # mlknn never ran: its row has no value and no rank, br and pcc are still ranked on d0 and d1
    assert "| mlknn / MLkNN | micro_f1 | 0 | 0 of 0 | – | – | – | – |" in agreement
    # ranks on d0, d1: mlbench's pcc beats br on both (1.00), the study's CC on d1 only (1.50)
    assert "| pcc / CC | micro_f1 | 5 | 2 of 5 | -0.030 | 0.90 | 1.00 | 1.50 |" in agreement
    assert "| br / BR | micro_f1 | 2 | 1 of 2 | +0.000 | – | 2.00 | 1.50 |" in agreement
    assert "| d0 | 0.660 / 0.600 | 0.650 / 0.700 | – / 0.500 |" in section  # the file's order: CC, BR, MLkNN


def test_one_published_method_beside_two_rows_keeps_each_pair_its_own_figures(bundle: Path):
    figures = [{"dataset": t, "method": "CC", "row": row, "metric": "micro_f1", "value": v}
               for row, vs in (("br", [0.1] * 5), ("pcc", [0.9] * 5)) for t, v in zip(TASKS, vs)]
    section = _section(bundle, figures)
    assert "| d0 | 0.650 / 0.100 | 0.660 / 0.900 |" in section


def test_the_sources_texts_reach_the_page_as_text_never_as_markup(bundle: Path):
    source = {**SOURCE, "citation": "<script>alert(1)</script> [see](javascript:alert(1)) *x*",
              "location": "<details><summary>hidden"}
    section = _section(bundle, _figures(), source)
    assert "<script>" not in section and "<details>" not in section and "[see](javascript" not in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\[see\\](javascript:alert(1)) \\*x\\*" in section
    assert "## Per dataset" not in section and section.count("### Agreement") == 1


@pytest.mark.parametrize("change, message", [
    (lambda d: "{not json", "not JSON"),
    (lambda d: {**d, "extra": 1}, "fields source and figures"),
    (lambda d: {**d, "source": {**d["source"], "citation": "two\nlines"}}, "one-line texts"),
    (lambda d: {**d, "figures": []}, "1 to"),
    (lambda d: {**d, "figures": [{**d["figures"][0], "value": 1.5}]}, "value must be a number in [0, 1]"),
    (lambda d: {**d, "figures": [{**d["figures"][0], "value": True}]}, "value must be a number in [0, 1]"),
    (lambda d: {**d, "figures": [{**d["figures"][0], "metric": "accuracy"}]}, "is not one of"),
    (lambda d: {**d, "figures": [{**d["figures"][0], "dataset": "../etc"}]}, "plain names"),
    (lambda d: {**d, "figures": [d["figures"][0], d["figures"][0]]}, "a second figure"),
    # inputs that once escaped as tracebacks: an integer too long to convert, an unhashable metric, an integer
    # too large for a float
    (lambda d: '{"source": {}, "figures": [' + "1" * 5000 + "]}", "not JSON"),
    (lambda d: {**d, "figures": [{**d["figures"][0], "metric": ["micro_f1"]}]}, "is not one of"),
    (lambda d: {**d, "figures": [{**d["figures"][0], "value": 10 ** 400}]}, "value must be a number in [0, 1]"),
])
def test_a_malformed_published_file_is_refused_before_anything_is_written(bundle: Path, change, message):
    data = change({"source": SOURCE, "figures": _figures()})
    (bundle / "published.json").write_text(data if isinstance(data, str) else json.dumps(data))
    before = (bundle / "README.md").read_bytes()
    with pytest.raises(BundleError, match="published.json") as err:
        render_report(bundle)
    assert message in str(err.value)
    assert (bundle / "README.md").read_bytes() == before


def test_a_published_file_that_links_outside_the_bundle_is_not_followed(bundle: Path, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.json"
    outside.write_text(json.dumps({"source": SOURCE, "figures": _figures()}))
    os.symlink(outside, bundle / "published.json")
    with pytest.raises(BundleError, match="published.json.*refused"):
        render_report(bundle)


def test_the_extraction_keeps_the_pairs_drops_unfinished_runs_and_checks_the_digest(tmp_path, monkeypatch):
    import published_figures as pf

    measures = {"HAMMING_LOSS_example_based": (0.2, 1.0), "MICRO_F1": (0.7, 0.0), "SUBSET_ACCURACY": (0.3, 0.0)}
    lines = ["," + ",".join(["index", "Instances", *pf.METHODS, "RFPCT", "metric"])]
    n = 0
    for dataset in [*pf.DATASETS, "birds"]:
        for measure, (good, failed) in measures.items():
            values = [good + 0.0001 * i for i in range(len(pf.METHODS))]
            if dataset == "bibtex":
                values[list(pf.METHODS).index("LP")] = failed  # LP did not finish on bibtex
            lines.append(",".join([str(n), dataset, "100", *map(str, values), "0.9", measure]))
            n += 1
    csv_path = tmp_path / "metaDataset.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit, match="not the pinned"):
        pf.extract(csv_path)
    monkeypatch.setattr(pf, "SHA256", hashlib.sha256(csv_path.read_bytes()).hexdigest())
    out = pf.extract(csv_path)
    figures = out["figures"]
    assert {f["row"] for f in figures} == {"br", "pcc", "mlknn", "rakel", "lp"}
    assert {f["dataset"] for f in figures} == set(pf.DATASETS.values()) and "tmc2007" in {f["dataset"] for f in figures}
    assert not [f for f in figures if f["method"] == "LP" and f["dataset"] == "bibtex"]
    assert len(figures) == (len(pf.METHODS) * len(pf.DATASETS) - 1) * 3
    cc = next(f for f in figures if f["method"] == "CC" and f["dataset"] == "emotions" and f["metric"] == "micro_f1")
    assert cc == {"dataset": "emotions", "method": "CC", "row": "pcc", "metric": "micro_f1", "value": 0.7}
    # what it writes is what the report reads
    bundle = tmp_path / "bundle"
    write_cross_task_report(None, _records(), TASKS, bundle)
    (bundle / "published.json").write_text(json.dumps(out))
    from mlbench.reports.bundle import Bundle
    from mlbench.reports.published import read_published

    assert len(read_published(Bundle(bundle).folder).figures) == len(figures)
