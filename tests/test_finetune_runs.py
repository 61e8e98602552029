"""benchmarks/finetune_runs.py: the cost page of the fine-tuned rows, from a store and from its own JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from benchmark_scripts import load


@pytest.fixture(scope="module")
def bench():
    return load("finetune_runs")


def _store(tmp_path: Path) -> str:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("reuters", artifact_location=str(tmp_path / "art"))
    for method, seed, pid, suite, status in (("minilm", 0, 11, "reuters-finetuned", "FINISHED"),
                                             ("seq2set-minilm", 0, 12, "reuters-finetuned", "FINISHED"),
                                             ("minilm", 1, 11, "reuters-finetuned", "KILLED"),
                                             ("minilm", 2, 11, "other-suite", "FINISHED")):
        run = client.create_run(experiment, start_time=1_000_000, tags={
            "mlbench.role": "parent", "mlbench.method": method, "mlbench.seed": str(seed), "mlbench.suite": suite,
            "mlbench.label": "minilm+finetune" if method == "minilm" else "",
            "mlbench.claim_owner": f"vm:{pid}:abcd", "mlbench.threads.torch_intra": "1"})
        rid = run.info.run_id
        for step, (f1, secs) in enumerate(((0.80, 900.0), (0.85, 960.0)), start=1):
            client.log_metric(rid, "valid_micro_f1", f1, step=step)
            client.log_metric(rid, "epoch_seconds", secs, step=step)
        if method == "seq2set-minilm":
            client.log_metric(rid, "valid_micro_f1", 0.87, step=3)  # the RL phase goes on counting epochs
            client.log_metric(rid, "epoch_seconds", 120.0, step=3)
            client.log_metric(rid, "train_reward_sample", 0.9, step=3)
        client.log_metric(rid, "fit_seconds", 1920.0)
        client.log_metric(rid, "predict_seconds", 75.0)
        client.log_metric(rid, "test_micro_f1", 0.86)
        client.set_terminated(rid, status, end_time=3_000_000)
    return uri


def test_runs_of_the_suite_with_their_curves_memory_and_load(bench, tmp_path) -> None:
    log = tmp_path / "mem.log"
    log.write_text("999 11 1048576 1048576 1.5\n1500 11 2097152 2097152 2.0\n1600 12 524288 524288 2.5\n"
                   "4000 11 9999999 9999999 9.0\nbroken line\n")
    rows = bench.collect(_store(tmp_path), "reuters-finetuned", "reuters", bench.read_memory_log(log), 6974)
    assert [(r["method"], r["seed"]) for r in rows] == [("minilm", 0), ("seq2set-minilm", 0)]  # finished, this suite
    tuned, s2s = rows
    assert tuned["valid_micro_f1"] == [0.80, 0.85] and tuned["epoch_seconds"] == [900.0, 960.0]
    assert tuned["peak_rss_mib"] == 2048 and tuned["load"] == [2.0, 2.0]  # only samples inside the run
    assert s2s["peak_rss_mib"] == 512 and s2s["rl_valid_micro_f1"] == [0.87] and s2s["rl_epoch_seconds"] == [120.0]
    assert s2s["valid_micro_f1"] == [0.80, 0.85]  # the MLE phase's epochs
    page = bench.render({"title": "t", "command": "c", "generated": "g", "suite": "reuters-finetuned",
                         "task": "reuters", "machine": {"cpu count": 2}, "runs": rows})
    line = next(x for x in page.splitlines() if x.startswith("| minilm+finetune | 0 |"))
    assert "0.8000 (900), 0.8500 (960) | 2 | 7.5 |" in line  # epoch 2 kept; 6974 docs / median 930 s
    assert "| 32.0 min | 75 s | 2.00 GiB | 2.0-2.0 | 0.8600 |" in line
    s2s_line = next(x for x in page.splitlines() if x.startswith("| seq2set-minilm | 0 |"))  # no label: the method
    assert "MLE 0.8000 (900), 0.8500 (960); RL 0.8700 (120) | – | – |" in s2s_line
    assert "an RL epoch 2.0 min" in page
    assert "each cell in one of 2 bench processes running side by side" in page  # claims of pids 11 and 12
    alone = bench.render({"title": "t", "command": "c", "generated": "g", "suite": "reuters-finetuned",
                          "task": "reuters", "machine": {}, "runs": [tuned]})
    assert "run one at a time by one bench process" in alone and "1 finished run in" in alone
    later = {**tuned, "process": "99", "start": tuned["end"] + 1, "end": tuned["end"] + 2}
    apart = bench.render({"title": "t", "command": "c", "generated": "g", "suite": "reuters-finetuned",
                          "task": "reuters", "machine": {}, "runs": [tuned, later]})
    assert "run one at a time by 2 bench processes" in apart  # two processes, never open together
    assert "(1 seed)" in alone and "CPU kernels" not in alone  # the level is said only when the runs recorded it
    avx = bench.render({"title": "t", "command": "c", "generated": "g", "suite": "reuters-finetuned",
                        "task": "reuters", "machine": {}, "runs": [{**tuned, "cpu_capability": "AVX512"}]})
    assert "Torch's CPU kernels: AVX512." in avx


def test_the_page_re_renders_from_its_json(bench, tmp_path) -> None:
    out = tmp_path / "page.md"
    assert bench.main(["--tracking-uri", _store(tmp_path), "--out", str(out)]) == 0
    first = out.read_text()
    data = json.loads(out.with_suffix(".json").read_text())
    assert len(data["runs"]) == 2 and data["runs"][0]["n_train"] > 0
    again = tmp_path / "again.md"
    assert bench.main(["--from", str(out.with_suffix(".json")), "--out", str(again)]) == 0
    assert again.read_text() == first


def test_sample_mode_writes_the_lines_the_page_reads(bench, tmp_path):
    import subprocess

    marker = "finetune-runs-sampler-test"
    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(1.5)  # {marker}"])
    log = tmp_path / "mem.log"
    try:
        written = bench.sample(log, every=0.2, match=marker, wait=5)
    finally:
        child.wait()
    assert written >= 2  # it sampled while the process lived, and stopped when it ended
    memory = bench.read_memory_log(log)
    assert list(memory) == [child.pid]
    assert all(rss > 0 and load >= 0 for _, rss, load in memory[child.pid])
    assert max(rss for _, rss, _ in memory[child.pid]) > 4  # MiB (VmRSS is in kB): a Python process, once loaded
    assert bench.sample(tmp_path / "none.log", every=0.1, match="no-such-process-anywhere", wait=0.3) == 0
