"""What fine-tuning ``minilm`` end to end costs on this machine: training docs/s, seconds per epoch, peak memory.

    OMP_NUM_THREADS=2 python benchmarks/finetune_cost.py --threads 2 --out reports/performance/finetune_cost.md

A whole fine-tuning epoch of Reuters takes hours on a CPU, so the rates are measured on short fits through
the method's own ``fit`` (the ``paper`` preset: ``mode=finetune``, batch 16, Adam at 3e-5 for the encoder and
1e-3 for the head) and projected. For each window setting, in a fresh process (so that ``ru_maxrss`` is its
own):

- two one-epoch fits on ``--small`` and ``--large`` training documents drawn at random from the task's train
  split (seed 0), with the same ``--valid`` validation documents; the difference of their wall times over the
  difference of their document counts is the training cost per document, free of what both fits pay alike
  (loading the encoder, the validation pass, the threshold); an untimed fit on 2 documents comes first, so
  that neither pays the process's one-time costs;
- ``predict_scores`` over ``--infer`` test documents after a one-batch warm-up: inference docs/s;
- the projection: an epoch is the train split at the training rate plus one validation pass at the inference
  rate; a seed of the preset is its ``epochs`` such epochs (an upper bound: ``patience`` may stop it earlier)
  plus the test prediction.

Documents are windowed as the method windows them (``max_length`` word pieces, ``stride`` shared, the first
``max_windows`` kept), so the cost per document follows the windows per document, which the table shows for
the sample and for the whole train split.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from metrics_speed import machine  # same folder
from tables import command_line, write_text

#: label -> window settings over the ``paper`` preset (its own are max_length 256, stride 64, 4 windows)
CONFIGS: dict[str, dict[str, Any]] = {
    "paper preset (256 x 4 windows)": {},
    "256 x 1 window": {"max_windows": 1},
    "128 x 1 window": {"max_length": 128, "stride": 32, "max_windows": 1},
}


def project(n_train: int, n_valid: int, n_test: int, train_docs_s: float, infer_docs_s: float,
            epochs: int) -> tuple[float, float]:
    """(seconds per epoch: a training pass and a validation pass; hours per seed: ``epochs`` such epochs and
    the test prediction) at the measured rates."""
    epoch_s = n_train / train_docs_s + n_valid / infer_docs_s
    return epoch_s, (epochs * epoch_s + n_test / infer_docs_s) / 3600


def one(label: str, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one configuration in this process."""
    import numpy as np
    import torch

    from mlbench.api import FitContext
    from mlbench.data.tasks import get_task
    from mlbench.methods.minilm import MiniLM

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(task.train))
    valid = task.valid.subset(rng.permutation(len(task.valid))[: args.valid])
    params = {**CONFIGS[label], "epochs": 1, "patience": None}
    loads = [os.getloadavg()[0]]

    def fit(n: int) -> tuple[float, MiniLM]:
        method = MiniLM(preset="paper", **params)
        train = task.train.subset(order[:n])
        t0 = time.perf_counter()
        method.fit(train, valid, FitContext(device="cpu", seed=0, progress=False))
        loads.append(os.getloadavg()[0])
        return time.perf_counter() - t0, method

    def windows_per_doc(method: MiniLM, texts) -> float:
        return float(len(method._windows(texts).doc) / max(1, len(texts)))

    fit(2)  # warm-up: the first fit of a process pays one-time costs (tokenizer files, first kernels)
    t_small, _ = fit(args.small)
    t_large, method = fit(args.large)
    if t_large <= t_small:  # the extra documents cost nothing measurable: noise swamped them
        raise SystemExit(f"{label}: the fit on {args.large} documents ({t_large:.1f} s) was not slower than the one on "
                         f"{args.small} ({t_small:.1f} s); widen --large - --small or run on a quieter machine")
    train_docs_s = (args.large - args.small) / (t_large - t_small)
    test = task.test.subset(rng.permutation(len(task.test))[: args.infer + 16])
    method.predict_scores(test.subset(np.arange(16)))  # warm-up: one batch
    t0 = time.perf_counter()
    method.predict_scores(test.subset(np.arange(16, 16 + args.infer)))
    infer_docs_s = args.infer / (time.perf_counter() - t0)
    loads.append(os.getloadavg()[0])
    epochs = int(MiniLM(preset="paper").params["epochs"])
    epoch_s, seed_h = project(len(task.train), len(task.valid), len(task.test), train_docs_s, infer_docs_s, epochs)
    return {
        "method": label,
        "windows_sample": windows_per_doc(method, task.train.subset(order[: args.large]).texts),
        "windows_train": windows_per_doc(method, task.train.texts),
        "fit_small_s": t_small, "fit_large_s": t_large,
        "train_docs_s": train_docs_s, "infer_docs_s": infer_docs_s,
        "epoch_s": epoch_s, "epochs": epochs, "seed_h": seed_h,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "load_min": min(loads), "load_max": max(loads),
        "n_train": len(task.train), "n_valid": len(task.valid), "n_test": len(task.test),
    }


def fmt_row(r: dict[str, Any]) -> str:
    return (f"| {r['method']} | {r['windows_sample']:.2f} / {r['windows_train']:.2f} | {r['train_docs_s']:.2f} | "
            f"{r['epoch_s'] / 60:.0f} | {r['infer_docs_s']:.1f} | {r['seed_h']:.1f} | {r['peak_rss_gib']:.2f} GiB | "
            f"{r['fit_small_s']:.0f} / {r['fit_large_s']:.0f} | {r['load_min']:.1f}-{r['load_max']:.1f} |")


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, cmd: str) -> str:
    m = machine()
    r0 = rows[0]
    lines = [
        f"# Fine-tuning `minilm` on {args.task}: cost on this CPU",
        "",
        f"Generated by `{cmd}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). How each column is measured: "
        "the docstring of `benchmarks/finetune_cost.py`. Fits of one epoch on "
        f"{args.small} and {args.large} training documents (validation: {args.valid} documents), torch threads: "
        f"{args.threads}; inference over {args.infer} test documents. Projected to the whole task "
        f"({r0['n_train']} train / {r0['n_valid']} valid / {r0['n_test']} test documents) and to the `paper` preset's "
        f"{r0['epochs']} epochs.",
        "",
        "| windows (max_length x max_windows) | windows/doc (sample / train) | train docs/s | epoch, min (projected) "
        "| infer docs/s | one seed, h (projected) | peak RSS | fit s (small / large) | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *[fmt_row(r) for r in rows],
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in m.items()],
        f"- torch threads: {args.threads}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="reuters")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--small", type=int, default=16, help="training documents of the first fit")
    parser.add_argument("--large", type=int, default=80, help="training documents of the second fit")
    parser.add_argument("--valid", type=int, default=32)
    parser.add_argument("--infer", type=int, default=64)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS), metavar="LABEL")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child process's configuration
    args = parser.parse_args(argv)
    if args.large <= args.small:
        parser.error("--large must exceed --small")
    if args.one is not None:
        print(json.dumps(one(args.one, args)))
        return 0
    rows = []
    for label in args.configs:
        child = [sys.executable, __file__, "--one", label, "--task", args.task, "--threads", str(args.threads),
                 "--small", str(args.small), "--large", str(args.large), "--valid", str(args.valid),
                 "--infer", str(args.infer)]
        out = subprocess.run(child, capture_output=True, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1", "MLBENCH_NO_PROGRESS": "1"})
        if out.returncode != 0:
            sys.exit(f"{label}: the measuring process failed (exit {out.returncode}):\n{out.stderr.strip()[-2000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(fmt_row(rows[-1]), flush=True)
    if args.out is not None:
        write_text(args.out, markdown(rows, args, command_line("finetune_cost.py", argv)))
        write_text(args.out.with_suffix(".json"), json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
