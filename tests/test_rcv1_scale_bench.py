"""Smoke test of benchmarks/rcv1_scale.py's measurements on a tiny corpus (the real run takes minutes)."""

from __future__ import annotations

import argparse

import pytest
from benchmark_scripts import load


@pytest.fixture(scope="module")
def bench():
    return load("rcv1_scale")


def test_measurements_and_report_on_a_tiny_corpus(bench, tmp_path) -> None:
    from mlbench.registry import get_method

    methods = ["xml-cnn", "seq2set"]  # a multi-hot method, and the sequence method with an RL phase
    params = {m: dict(get_method(m).contract_params) for m in methods}
    settings = bench.text_settings(methods, "small", params)
    tok = bench.measure_tokenization(400, bench.TINY_SHAPE, settings, tmp_path)
    assert tok["n"] == 400 and tok["build_and_encode_s"] > 0 and tok["cache_warm_s"] > 0
    assert set(tok["corpora"]) == set(methods)
    train = []
    for m in methods:
        corpus = {**tok["corpora"][m], "labels": tok["labels"], "n_labels": tok["n_labels"], "max_labels": tok["max_labels"]}
        r = bench.measure_training(m, preset="small", params=params[m], corpus=corpus, device="cpu", train_batches=2,
                                   warmup=1, infer_batches=1, workers=0, profile=True)
        assert r["n_docs"] == 400 and r["mle_docs_s"] > 0 and r["infer_docs_s"] > 0 and r["mle_profile"]["top"]
        assert r["peak_rss_mib"] > 0 and r["corpus_file_mib"] > 0
        assert 0 < r["mle_pipelined_step_s"] < 10 * r["mle_step_s"]  # back-to-back steps, timed apart
        assert "mle_device_busy" not in r  # a CUDA-only figure
        train.append(r)
    assert "rl_docs_s" in train[1] and "rl_docs_s" not in train[0]
    args = argparse.Namespace(preset="small", device="cpu", tiny=True, param=[], workers=0, train_batches=2,
                              warmup=1, infer_batches=1)
    report = bench.markdown(args, [tok, {**tok, "n": 800}], train, "python benchmarks/rcv1_scale.py --tiny",
                            "1.00, 1.00, 1.00", "1.00, 1.00, 1.00", 1)
    assert "No GPU was available" in report and "## Scaling in N" in report and "seq2set (RL step)" in report
    assert "| step, back to back | device busy |" in report
    rows = bench.split_rows([{**train[0], "mle_device_step_s": 0.5 * train[0]["mle_pipelined_step_s"],
                              "mle_device_busy": 0.5}])
    assert rows[1][-1].startswith("50% (") and rows[1][-2] != "-"  # how a GPU run's row reads


def test_kernel_names_lose_their_template_arguments(bench) -> None:
    # as the profiler named two kernels on an H200 (reports/performance/rcv1_scale_gpu.md), cut short
    kernel = ("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::"
              "direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda(c10::"
              "BFloat16)#1}>(at::TensorIteratorBase&, ...)::{lambda(int)#1}>(int, at::native::gpu_kernel_impl_nocast<"
              "at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)>)")
    assert bench.short_op(kernel) == "at::native::elementwise_kernel<…>"
    assert bench.short_op("void ampere_lstm_tile16<16, 1>(params_t)") == "ampere_lstm_tile16<…>"
    for plain in ("aten::_cudnn_rnn_backward", "Optimizer.step#Adam.step",
                  "autograd::engine::evaluate_function: MkldnnRnnLayerBackward0"):
        assert bench.short_op(plain) == plain
