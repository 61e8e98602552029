"""A neural cell rerun in a new process, with the same code, settings and thread count, gives the same
predictions bit for bit; the run records what a rerun must match (threads, CPU kernel level, versions)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

CELL = ["run", "--method", "seq2seq", "--task", "synthetic", "-q", "--param", "epochs=2", "--param", "embedding_dim=16",
        "--param", "encoder_hidden=16", "--param", "decoder_hidden=16", "--param", "label_embedding_dim=16",
        "--param", "attention_dim=16"]


def predictions_digest(store, run_id) -> str:
    from mlbench.runs.tracking import Tracker

    ids, pred, scores = Tracker(store, artifact_dir=store.rpartition("/")[0] + "/art").download_predictions(run_id)
    h = hashlib.sha256()
    for a in (pred.indptr, pred.indices, scores if scores is not None else np.zeros(0)):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def run_cell(tmp_path, name, *extra) -> tuple[str, dict[str, str]]:
    store = f"sqlite:///{tmp_path / name}.db"
    proc = subprocess.run([sys.executable, "-m", "mlbench.cli.main", *CELL, *extra, "--tracking-uri", store,
                           "--artifact-dir", str(tmp_path / "art")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**__import__("os").environ, "MLBENCH_NO_PROGRESS": "1"})
    assert proc.returncode == 0, proc.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    return predictions_digest(store, run.info.run_id), run.data.tags


@pytest.mark.slow
def test_a_neural_cell_reruns_bit_for_bit_in_a_new_process(tmp_path):
    first, tags = run_cell(tmp_path, "a")
    again, _ = run_cell(tmp_path, "b")
    assert first == again
    assert tags["mlbench.threads.torch_intra"] == "1" and tags["mlbench.threads.torch_inter"] == "1"
    assert tags["mlbench.torch.deterministic"] == "true" and tags["mlbench.cpu.capability"]
    assert tags["mlbench.version.torch"] and tags["mlbench.content_digest"] and tags["mlbench.data_code_digest"]
    _, two = run_cell(tmp_path, "c", "--threads", "2")
    assert two["mlbench.threads.torch_intra"] == "2"
