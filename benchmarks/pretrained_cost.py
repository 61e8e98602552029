"""CPU cost of the pretrained configurations: training throughput, prediction throughput, peak memory.

    MLBENCH_DATA=... OMP_NUM_THREADS=1 python benchmarks/pretrained_cost.py --out reports/performance/pretrained_cost.md

Each configuration of ``benchmarks/suites/reuters-pretrained.yaml`` (and the random-embedding XML-CNN /
Seq2Seq of the paper suite as the peers) is measured in a fresh Python process, so that its ``ru_maxrss``
(the process's high-water resident size) is its own. A measurement is a short fit with the ``small``
preset and a capped number of epochs, as ``mlbench run`` fits it, then a prediction of the test split:

- *s/epoch* is the median of the training loop's own per-epoch times (a training pass plus the validation
  decode that picks the epoch); *train docs/s* is the training documents over it;
- *prep s* is the rest of the fit: the vocabulary, the word-vector lookup, and for the MiniLM methods the
  encoder's pass over train and validation when its cache is cold (``cache`` says which it was);
- *predict docs/s* is the test documents over the prediction's wall time (for a MiniLM method with a cold
  cache this includes encoding the test split);
- Seq2Set rows time the RL phase, started from a Seq2Seq model fitted (and saved) in the same process
  first, so their peak memory covers that fit too.

The whole-fit minutes beside them are not measured here: they are the medians (and ranges) of
``fit_seconds`` over the three seeds of each row of ``reports/reuters/runs.csv``, the committed runs behind
the report. One torch thread per process (``OMP_NUM_THREADS=1``, as the report's runs); the load average is
sampled at every epoch, because this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from metrics_speed import machine  # same folder
from tables import command_line, write_text

ROOT = Path(__file__).resolve().parent.parent

# label -> (method, parameters over the small preset, the run's capped epochs, the start model's method and
# parameters for a Seq2Set row, the row of reports/reuters/runs.csv whose whole-fit times go beside it)
CONFIGS: dict[str, dict[str, Any]] = {
    "xml-cnn (random)": {"method": "xml-cnn", "params": {"epochs": 3}, "row": ("xml-cnn", "suite paper-reuters")},
    "xml-cnn embeddings=glove50": {
        "method": "xml-cnn", "params": {"embeddings": "glove50", "epochs": 3},
        "row": ("xml-cnn", "suite reuters-pretrained: embeddings=glove50")},
    "cnn-rnn embeddings=glove50": {
        "method": "cnn-rnn", "params": {"embeddings": "glove50", "epochs": 3},
        "row": ("cnn-rnn", "suite reuters-pretrained: embeddings=glove50")},
    "seq2seq (random)": {"method": "seq2seq", "params": {"epochs": 3}, "row": ("seq2seq", "suite paper-reuters")},
    "seq2seq embeddings=glove50": {
        "method": "seq2seq", "params": {"embeddings": "glove50", "epochs": 3},
        "row": ("seq2seq", "suite reuters-pretrained: embeddings=glove50")},
    "seq2set embeddings=glove50 (RL phase)": {
        "method": "seq2set", "params": {"embeddings": "glove50", "rl_epochs": 2},
        "start": ("seq2seq", {"embeddings": "glove50", "epochs": 1}),
        "row": ("seq2set", "suite reuters-pretrained: embeddings=glove50 init_from=<model of another run>")},
    "minilm (frozen encoder)": {"method": "minilm", "params": {"epochs": 30}, "row": ("minilm", "suite reuters-pretrained")},
    "seq2seq-minilm": {"method": "seq2seq-minilm", "params": {"epochs": 3}, "row": ("seq2seq-minilm", "suite reuters-pretrained")},
    "seq2set-minilm (RL phase)": {
        "method": "seq2set-minilm", "params": {"rl_epochs": 2},
        "start": ("seq2seq-minilm", {"epochs": 1}),
        "row": ("seq2set-minilm", "suite reuters-pretrained: init_from=<model of another run>")},
}


def _cache_files() -> int:
    """Files in the MiniLM methods' encoder cache (the folder they write to; 0 when caching is off)."""
    from mlbench.methods.minilm import _cache_folder

    folder = _cache_folder()
    return sum(1 for _ in folder.rglob("*")) if folder is not None and folder.exists() else 0


def measure_one(label: str, task_name: str, seed: int) -> dict[str, Any]:
    """One configuration, in this process (run by :func:`main` in a child process)."""
    import torch

    from mlbench.api import FitContext
    from mlbench.data.tasks import get_task
    from mlbench.registry import get_method
    from mlbench.contract import seed_everything

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = CONFIGS[label]
    task = get_task(task_name)
    loads: list[float] = []
    hooks = [lambda epoch, metrics: loads.append(os.getloadavg()[0])]
    with tempfile.TemporaryDirectory(prefix="mlbench-cost-") as tmp:
        params = dict(cfg["params"])
        if "start" in cfg:
            start_name, start_params = cfg["start"]
            seed_everything(seed)
            start = get_method(start_name)(preset="small", **start_params)
            start.fit(task.train, task.valid, FitContext(device="cpu", seed=seed, checkpoint_dir=f"{tmp}/s", progress=False))
            start.save(Path(tmp) / "start")
            params["init_from"] = str(Path(tmp) / "start")
            del start
        before = _cache_files()  # a fit that writes encoder cache files had a cold cache
        method = get_method(cfg["method"])(preset="small", **params)
        seed_everything(seed)
        ctx = FitContext(device="cpu", seed=seed, checkpoint_dir=f"{tmp}/m", hooks=hooks, progress=False)
        t0, c0 = time.perf_counter(), time.process_time()
        method.fit(task.train, task.valid, ctx)
        fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        method.predict(task.test)
        predict_s = time.perf_counter() - t0
        cold = _cache_files() > before if cfg["method"].endswith("minilm") else None
    result = method.train_result_
    epoch_s = statistics.median(result.epoch_seconds)
    return {
        "label": label,
        "epochs": result.epochs_run,
        "epoch_s": epoch_s,
        "train_docs_s": len(task.train) / epoch_s,
        "prep_s": fit_s - sum(result.epoch_seconds),
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu,
        "predict_docs_s": len(task.test) / predict_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cache": {None: "-", True: "cold", False: "warm"}[cold],
        "load": f"{min(loads, default=os.getloadavg()[0]):.1f}-{max(loads, default=os.getloadavg()[0]):.1f}",
    }


def whole_fits(runs_csv: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Per report row (method, configuration label) on reuters: the median and range of its runs' fit seconds."""
    import pandas as pd

    runs = pd.read_csv(runs_csv)
    runs = runs[runs["task"] == "reuters"]
    out = {}
    for (method, label), g in runs.groupby(["method", "config_label"]):
        out[(method, label)] = {
            "seeds": len(g),
            "fit_min": g["fit_seconds"].median() / 60,
            "fit_range": f"{g['fit_seconds'].min() / 60:.1f}-{g['fit_seconds'].max() / 60:.1f}",
        }
    return out


def markdown(rows: list[dict[str, Any]], fits: dict, args: argparse.Namespace, cmd: str) -> str:
    lines = [
        "# CPU cost of the pretrained configurations on reuters",
        "",
        f"Generated by `{cmd}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). How each column is measured: "
        "the docstring of `benchmarks/pretrained_cost.py`. Short fits (capped epochs, seed "
        f"{args.seed}) give the throughputs and the peak memory; the whole-fit minutes are the 3-seed medians "
        "(min-max) of the committed runs in `reports/reuters/runs.csv` (1 torch thread, the same shared machine, "
        "other jobs running beside them).",
        "",
        "| configuration | s/epoch | train docs/s | prep s | cache | predict docs/s | peak RSS | whole fit, min (3 seeds) | load |",
        "|---|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for r in rows:
        fit = fits.get(CONFIGS[r["label"]]["row"])
        whole = f"{fit['fit_min']:.1f} ({fit['fit_range']}, {fit['seeds']} runs)" if fit else "not in runs.csv"
        lines.append(
            f"| {r['label']} | {r['epoch_s']:.0f} | {r['train_docs_s']:.0f} | {r['prep_s']:.0f} | {r['cache']} | "
            f"{r['predict_docs_s']:.0f} | {r['peak_rss_mib'] / 1024:.2f} GiB | {whole} | {r['load']} |"
        )
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    lines.append(f"- torch: {__import__('torch').__version__}, threads per process: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    lines.append(f"- load average when the run started: {args.load_at_start}; when it ended: {args.load_at_end}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="reuters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS), metavar="LABEL")
    parser.add_argument("--runs", type=Path, default=ROOT / "reports" / "reuters" / "runs.csv")
    parser.add_argument("--out", type=Path, default=None, help="also write the table as Markdown here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child process's configuration
    args = parser.parse_args(argv)
    os.environ.setdefault("MLBENCH_NO_PROGRESS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.one:
        print(json.dumps(measure_one(args.one, args.task, args.seed)))
        return 0
    args.load_at_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    for label in args.configs:
        child = [sys.executable, __file__, "--one", label, "--task", args.task, "--seed", str(args.seed)]
        done = subprocess.run(child, stdout=subprocess.PIPE, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    args.load_at_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = markdown(rows, whole_fits(args.runs), args, command_line("pretrained_cost.py", argv))
    print(text)
    if args.out is not None:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
