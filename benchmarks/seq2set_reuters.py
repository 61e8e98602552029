"""Seq2Seq (SGM) against Seq2Set on Reuters: one MLE training, then RL fine-tuning variants from it.

    MLBENCH_DATA=/tmp/mlbdata python benchmarks/seq2set_reuters.py --tasks reuters-shuffled reuters \\
        --seeds 0 --threads 1 --out reports/seq2set/reuters.md

For each task and seed, ``seq2seq`` is fitted once with the preset (as
``mlbench run`` fits it: the runner's seeding, epochs chosen on validation
micro-F1), saved, and scored on test. Each RL variant (``--variant
name:key=value,...``; default: the preset's own settings) is then a
``seq2set`` fitted with ``init_from`` that saved model — i.e. the MLE phase
is shared and only the self-critical phase is run — and scored on test. The
seq2set model is selected on validation micro-F1 across both phases: when no
RL epoch beats the MLE model, it *is* the MLE model.

Results are kept per run in a JSON file next to the report (``--results``),
so an interrupted benchmark resumes where it stopped; the Markdown report is
rendered from every stored run, with per-epoch times, the validation curve
and, for RL, the mean training reward of samples and greedy baselines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from metrics_speed import machine  # same folder: the machine description the other benchmarks print

from mlbench.api import FitContext
from mlbench.metrics import evaluate
from mlbench.data.tasks import get_task
from mlbench.registry import get_method
from mlbench.contract import seed_everything

SCORES = ("hamming_loss", "subset_01_loss", "micro_precision", "micro_recall", "micro_f1", "macro_f1", "example_f1")


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        params[key.strip()] = parse_value(value.strip())
    return name, params


def fit_and_score(method: Any, task: Any, seed: int, save_to: Path | None = None) -> dict[str, Any]:
    loads: list[float] = []
    seed_everything(seed)
    with tempfile.TemporaryDirectory(prefix="mlbench-bench-") as tmp:
        ctx = FitContext(
            device="cpu", seed=seed, checkpoint_dir=tmp, progress=False,
            hooks=[lambda epoch, metrics: loads.append(os.getloadavg()[0])],
        )
        t0, c0 = time.perf_counter(), time.process_time()
        method.fit(task.train, task.valid, ctx)
        fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    if save_to is not None:
        method.save(save_to)
    t0 = time.perf_counter()
    pred = method.predict(task.test)
    predict_s = time.perf_counter() - t0
    test = evaluate(task.test.Y, pred, label_freq=task.label_freq)
    result = method.train_result_
    return {
        "params": {k: v for k, v in method.params.items()},
        "best_epoch": result.best_epoch,
        "best_valid_micro_f1": result.best_valid_micro_f1,
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu,
        "predict_s": predict_s,
        "test": {k: float(test[k]) for k in SCORES if k in test},
        "history": ctx.history,
        "load": [min(loads, default=0.0), max(loads, default=0.0)],
    }


def run_key(task: str, seed: int, variant: str) -> str:
    return f"{task}|{seed}|{variant}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["reuters-shuffled", "reuters"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--preset", default="small", choices=["small", "paper"])
    parser.add_argument("--param", action="append", default=[], help="key=value for seq2seq and seq2set (architecture, MLE)")
    parser.add_argument("--variant", action="append", default=[], help="name:key=value,... RL settings of one seq2set run")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "mlbench-seq2set-models")
    parser.add_argument("--results", type=Path, default=Path("reports/seq2set/results.json"))
    parser.add_argument("--out", type=Path, default=Path("reports/seq2set/reuters.md"))
    parser.add_argument("--notes", type=Path, default=Path("reports/seq2set/notes.md"),
                        help="hand-written findings placed after the table, if the file exists")
    parser.add_argument("--render-only", action="store_true", help="only rewrite the report from stored results")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLBENCH_NO_PROGRESS", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    shared = dict(parse_variant("x:" + ",".join(args.param))[1])
    variants = [parse_variant(v) for v in args.variant] or [("scst", {})]
    results: dict[str, Any] = json.loads(args.results.read_text()) if args.results.exists() else {}

    def store(key: str, row: dict[str, Any]) -> None:
        row.update(threads=torch.get_num_threads(), torch=torch.__version__, finished=time.strftime("%Y-%m-%d %H:%M"))
        results[key] = row
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=1))
        render(results, args.out, args.notes)

    if not args.render_only:
        for task_name in args.tasks:
            task = get_task(task_name)
            for seed in args.seeds:
                model_dir = args.models / f"{task_name}-seed{seed}-seq2seq"
                key = run_key(task_name, seed, "seq2seq")
                if key not in results or not (model_dir / "model.pt").exists():
                    log(f"{task_name} seed {seed}: seq2seq")
                    row = fit_and_score(get_method("seq2seq")(preset=args.preset, **shared), task, seed, save_to=model_dir)
                    row.update(task=task_name, seed=seed, variant="seq2seq", fingerprint=task.fingerprint)
                    store(key, row)
                for name, params in variants:
                    key = run_key(task_name, seed, f"seq2set:{name}")
                    if key in results:
                        continue
                    log(f"{task_name} seed {seed}: seq2set {name} {params}")
                    method = get_method("seq2set")(preset=args.preset, **shared, **params, init_from=str(model_dir))
                    row = fit_and_score(method, task, seed)
                    row.update(task=task_name, seed=seed, variant=f"seq2set:{name}", fingerprint=task.fingerprint)
                    row["mle_fit_s"] = results[run_key(task_name, seed, "seq2seq")]["fit_s"]
                    store(key, row)
    render(results, args.out, args.notes)
    print(args.out.read_text())
    return 0


def log(message: str) -> None:
    print(f"== {message}", file=sys.stderr, flush=True)


def render(results: dict[str, Any], out: Path, notes: Path | None = None) -> None:
    rows = sorted(results.values(), key=lambda r: (r["task"] != "reuters-shuffled", r["task"], r["seed"], r["variant"] != "seq2seq", r["variant"]))
    lines = [
        "# Seq2Seq (SGM) and Seq2Set on Reuters, preset `small`",
        "",
        "Generated by `benchmarks/seq2set_reuters.py` (see its docstring for the protocol): seq2seq is trained once "
        "per task and seed by maximum likelihood; each seq2set row starts from that model (`init_from`) and runs the "
        "self-critical phase only, keeping the RL epoch with the best validation micro-F1 — or the MLE model when "
        "none beats it. Scores on test (3,003 documents); HL = Hamming loss, 0/1 = subset 0/1 loss, "
        "ex-F1 = example-based F1. s/epoch is the median epoch wall time (training pass plus the validation decode); "
        "fit min for seq2set is the RL phase only (add the seq2seq fit for a from-scratch seq2set).",
        "",
        "| task | seed | model | RL settings | HL | 0/1 | micro-P | micro-R | micro-F1 | macro-F1 | ex-F1 | valid micro-F1 | best epoch | s/epoch | fit min | load |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rl_keys = ("rl_lr", "rl_samples", "rl_temperature", "rl_dropout", "reward", "rl_epochs", "rl_patience")
    for r in rows:
        t = r["test"]
        seconds = [m["epoch_seconds"] for _, m in r["history"] if "epoch_seconds" in m]
        settings = "" if r["variant"] == "seq2seq" else ", ".join(f"{k}={r['params'][k]}" for k in rl_keys)
        lines.append(
            f"| {r['task']} | {r['seed']} | {r['variant']} | {settings} | {t['hamming_loss']:.4f} | {t['subset_01_loss']:.3f} | "
            f"{t['micro_precision']:.3f} | {t['micro_recall']:.3f} | {t['micro_f1']:.3f} | {t['macro_f1']:.3f} | "
            f"{t.get('example_f1', float('nan')):.3f} | {r['best_valid_micro_f1']:.3f} | {r['best_epoch']} | "
            f"{statistics.median(seconds) if seconds else 0:.0f} | {r['fit_s'] / 60:.1f} | {r['load'][0]:.1f}-{r['load'][1]:.1f} |"
        )
    if notes is not None and notes.exists():
        lines += ["", notes.read_text().strip()]
    lines += ["", "## Curves", "", "Per epoch: valid micro-F1; for RL epochs also the mean training reward of the samples / "
              "greedy baselines and the share of samples whose reward differs from their baseline.", ""]
    for r in rows:
        parts = []
        for epoch, m in r["history"]:
            s = f"{epoch}: {m['valid_micro_f1']:.3f}"
            if "train_reward_sample" in m:
                s += f" (r {m['train_reward_sample']:.3f}/{m['train_reward_greedy']:.3f}, adv≠0 {m['train_advantage_nonzero']:.2f})"
            if "epoch_seconds" in m:
                s += f" [{m['epoch_seconds']:.0f}s]"
            parts.append(s)
        lines.append(f"- {r['task']} seed {r['seed']} {r['variant']}: " + "; ".join(parts))
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    if rows:
        lines.append(f"- torch {rows[0].get('torch')}, torch threads {sorted({r.get('threads') for r in rows})}")
    lines.append("- other engineers' jobs shared the 2 cores: the load column is the 1-minute load average at each epoch")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
