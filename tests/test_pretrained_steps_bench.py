"""benchmarks/pretrained_steps.py on a tiny random encoder and the synthetic task (the real run takes minutes)."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from benchmark_scripts import load  # noqa: E402
from tiny_models import build_tiny_encoder  # noqa: E402

@pytest.fixture(scope="module")
def bench():
    return load("pretrained_steps")


@pytest.mark.slow
def test_host_parts_are_timed_apart_and_the_page_re_renders(bench, tmp_path, monkeypatch):
    from mlbench.methods.neural.token_cache import CACHE_ENV

    monkeypatch.setenv("MLBENCH_DATA", str(tmp_path / "home"))
    cache_setting = os.environ.get(CACHE_ENV)
    (tmp_path / "tiny-bert").mkdir()
    encoder = build_tiny_encoder(tmp_path / "tiny-bert")
    out = tmp_path / "steps.md"
    assert bench.main(["--task", "synthetic", "--encoder", encoder, "--docs", "24", "--steps", "2", "--warmup", "1",
                       "--configs", "minilm-ft-128,seq2set-minilm", "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    rows = {(r["method"], r["phase"]): r for r in data["rows"]}
    assert set(rows) == {("minilm", "fine-tune"), ("seq2set-minilm", "MLE"), ("seq2set-minilm", "RL")}
    minilm = rows["minilm", "fine-tune"]
    # the suite's own settings, with the encoder swapped
    assert minilm["params"]["max_length"] == 128 and minilm["params"]["encoder"] == encoder
    assert "state rows" not in minilm["steps"][0]
    for key, r in rows.items():
        assert len(r["steps"]) == 2 and r["pipelined_step_s"] > 0 and r["setup_s"] > 0
        parts = bench.mean_parts(r)
        assert all(v >= 0 for v in parts.values()) and parts["batch"] > 0 and parts["forward"] > 0
        assert 0 < bench.host_share(r) < 1
        if key[0] == "seq2set-minilm":  # the decoders read their token states on the host, inside forward
            assert parts["state rows"] > 0
    assert os.environ.get(CACHE_ENV) == cache_setting  # the benchmark turned the disk cache off for itself only
    page = out.read_text()
    assert "| seq2set-minilm (small preset) | RL |" in page and "host share" in page
    again = tmp_path / "again.md"
    assert bench.main(["--from", str(out.with_suffix(".json")), "--out", str(again)]) == 0
    assert again.read_text() == page


def test_the_step_timer_takes_host_work_out_of_the_forward_pass():
    step_timing = load("step_timing")
    import time

    import numpy as np
    import torch

    from mlbench.methods.neural.train import TrainConfig

    clock = step_timing.HostClock()
    slow_rows = clock.timed(lambda: time.sleep(0.02))
    net = torch.nn.Linear(3, 1)

    class B:
        index = np.arange(4)

        def to(self, device):
            return self

    def loss(batch):
        slow_rows()
        return net(torch.ones(4, 3)).sum()

    stream = iter([B() for _ in range(6)])
    t = step_timing.time_steps(net, torch.optim.Adam(net.parameters()), stream, loss,
                               TrainConfig(epochs=1, lr=0.1), torch.device("cpu"), warmup=1, steps=2,
                               host={"rows": clock})
    assert t["split"]["rows"] >= 0.02 and t["split"]["forward"] < 0.02  # counted once, under its own name
    assert [s["docs"] for s in t["steps"]] == [4, 4] and t["pipelined_step_s"] >= 0.02
