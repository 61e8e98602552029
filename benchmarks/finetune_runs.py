"""What the fine-tuned transformer rows of reports/reuters cost: per run, epoch by epoch, from the store.

    python benchmarks/finetune_runs.py --tracking-uri sqlite:///mlflow.db --memory-log mem.log \\
        --out reports/performance/finetune_reuters.md
    python benchmarks/finetune_runs.py --from reports/performance/finetune_reuters.json \\
        --out reports/performance/finetune_reuters.md          # re-renders the page from its evidence
    python benchmarks/finetune_runs.py --sample mem.log        # the memory log, beside the bench workers

The runs are the cells of a suite (default ``reuters-finetuned``: ``minilm`` fine-tuned end to end, and
``seq2set-minilm`` over each seed's fine-tuned encoder) in one task's experiment. For each finished run the
page gives what the store recorded while it trained: every epoch's wall time (training pass and validation
pass) and validation micro-F1, the epoch kept, the fit time, the prediction time the runner records (every
evaluated split, validation and test, labels and scores, each a pass of its own), the training rate (training
documents per second of epoch, validation included) and the test micro-F1; Seq2Set's epochs are split into
its MLE and RL phases (an RL epoch is one that logged a sampled reward). Memory is not in the store: with
``--memory-log`` (lines ``unix-seconds pid VmRSS-kB VmHWM-kB load1``, one per bench process every few
seconds, as ``--sample`` writes them while the workers run) each run gets the highest resident size its process
showed while the run was open (the process is the one the run's claim names, ``host:pid:...``) and the range
of the machine's load over the run. The extracted figures are written beside the page as JSON, so the page
re-renders without the store.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from metrics_speed import machine  # same folder
from tables import command_line, write_text

#: metric histories kept per run (MLflow keys, one value per epoch)
CURVES = ("valid_micro_f1", "epoch_seconds")
#: logged only by Seq2Set's RL epochs, which continue the MLE phase's epoch numbering: it tells the phases apart
RL_MARKER = "train_reward_sample"


def bench_processes(match: str = "mlbench bench") -> list[int]:
    """Pids of the processes whose command line contains ``match`` (from ``/proc``), this one left out."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if match in cmdline:
            pids.append(int(entry.name))
    return sorted(pids)


def sample_line(pid: int, now: float, load: float) -> str | None:
    """``unix-seconds pid VmRSS-kB VmHWM-kB load1`` for a live process, None when it is gone."""
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        rss, hwm = status["VmRSS"].split()[0], status["VmHWM"].split()[0]
    except (OSError, KeyError, IndexError):
        return None
    return f"{now:.0f} {pid} {rss} {hwm} {load:.2f}"


def sample(log: Path, every: float, match: str = "mlbench bench", wait: float = 600.0) -> int:
    """Append a line per bench process to ``log`` every ``every`` seconds; stop once every process seen has
    ended (or when none shows up within ``wait`` seconds). Returns the number of lines written."""
    import time

    written, seen, start = 0, False, time.time()
    while True:
        pids = bench_processes(match)
        if not pids and (seen or time.time() - start > wait):
            return written
        seen = seen or bool(pids)
        now, load = time.time(), os.getloadavg()[0]
        lines = [line for line in (sample_line(pid, now, load) for pid in pids) if line]
        if lines:
            with log.open("a") as fh:
                fh.write("\n".join(lines) + "\n")
            written += len(lines)
        time.sleep(every)


def read_memory_log(path: Path) -> dict[int, list[tuple[float, float, float]]]:
    """pid -> [(unix seconds, RSS MiB, load1)] from a sampler log; malformed lines are skipped."""
    out: dict[int, list[tuple[float, float, float]]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        try:
            t, pid, rss, load = float(parts[0]), int(parts[1]), float(parts[2]) / 1024, float(parts[4])
        except ValueError:
            continue
        out.setdefault(pid, []).append((t, rss, load))
    return out


def collect(tracking_uri: str, suite: str, task: str, memory: dict[int, list[tuple[float, float, float]]] | None,
            n_train: int) -> list[dict[str, Any]]:
    """One dict per FINISHED parent run of ``suite`` in ``task``'s experiment, by method, label and seed."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(task)
    if experiment is None:
        raise SystemExit(f"the store at {tracking_uri} has no experiment {task!r}")
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.`mlbench.suite` = '{suite}' and tags.`mlbench.role` = 'parent' "
                              "and attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"])
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        row: dict[str, Any] = {
            "run_id": run.info.run_id, "method": tags.get("mlbench.method", "?"), "label": tags.get("mlbench.label", ""),
            "seed": int(tags.get("mlbench.seed", -1)), "code_digest": tags.get("mlbench.code_digest", ""),
            "threads": tags.get("mlbench.threads.torch_intra", ""), "n_train": n_train,
            "cpu_capability": tags.get("mlbench.cpu.capability", ""),
            "start": run.info.start_time / 1000, "end": (run.info.end_time or run.info.start_time) / 1000,
            "fit_s": metrics.get("fit_seconds"), "predict_s": metrics.get("predict_seconds"),
            "test_micro_f1": metrics.get("test_micro_f1"), "init_from_run": tags.get("mlbench.encoder_run", ""),
        }
        rl_steps = {m.step for m in client.get_metric_history(run.info.run_id, RL_MARKER)}
        for key in CURVES:
            history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
            for prefix, part in (("", [m for m in history if m.step not in rl_steps]),
                                 ("rl_", [m for m in history if m.step in rl_steps])):
                if part:
                    row[prefix + key] = [m.value for m in part]
        owner = tags.get("mlbench.claim_owner", "")
        pid = owner.split(":")[1] if owner.count(":") >= 2 else ""
        row["process"] = pid
        if memory is not None and pid.isdigit():
            seen = [(rss, load) for t, rss, load in memory.get(int(pid), []) if row["start"] <= t <= row["end"]]
            if seen:
                row["peak_rss_mib"] = max(r for r, _ in seen)
                row["load"] = [min(x for _, x in seen), max(x for _, x in seen)]
        rows.append(row)
    return sorted(rows, key=lambda r: (r["method"], r["label"], r["seed"], r["start"]))


def _f(value: Any, fmt: str, missing: str = "–") -> str:
    return missing if value is None else format(value, fmt)


def _processes(rows: list[dict[str, Any]]) -> str:
    """How the runs shared the machine: from the bench processes their claims name and the runs' open times
    (pages rendered before runs recorded their process: two processes side by side, as those ran)."""
    if not any("process" in r for r in rows):
        return ("each cell in a bench process of its own with one torch thread, two processes sharing the machine's "
                "two cores.")
    pids = {r["process"] for r in rows if r.get("process")}
    side_by_side = any(a["start"] < b["end"] and b["start"] < a["end"]
                       for i, a in enumerate(rows) for b in rows[i + 1:] if a.get("process") != b.get("process"))
    if not side_by_side:
        n = len(pids)
        return f"run one at a time by {n if n != 1 else 'one'} bench process{'es' if n != 1 else ''} with one torch thread."
    return f"each cell in one of {len(pids)} bench processes running side by side, one torch thread each."


def _capability(rows: list[dict[str, Any]]) -> str:
    """The CPU kernel level torch used (a neural number moves with it), when the runs recorded it."""
    levels = sorted({r["cpu_capability"] for r in rows if r.get("cpu_capability")})
    return f" Torch's CPU kernels: {', '.join(levels)}." if levels else ""


def render(data: dict[str, Any]) -> str:
    rows = data["runs"]
    lines = [
        f"# {data['title']}", "",
        f"Generated by `{data['command']}` ({data['generated']}). The runs: suite `{data['suite']}` "
        f"(`benchmarks/suites/{data['suite']}.yaml`) on `{data['task']}`, {len(rows)} finished "
        f"run{'s' if len(rows) != 1 else ''} in the store, " + _processes(rows) + _capability(rows)
        + " How each column is measured: the docstring of `benchmarks/finetune_runs.py`.", "",
        "| run | seed | epochs: valid micro-F1 (s) | kept | train docs/s | fit | predict | peak RSS | load "
        "| test micro-F1 |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        name = r["label"] or r["method"]
        curves = []
        for prefix in ("", "rl_"):
            f1s, secs = r.get(prefix + "valid_micro_f1", []), r.get(prefix + "epoch_seconds", [])
            if f1s:
                tag = "RL " if prefix else ("MLE " if r.get("rl_valid_micro_f1") else "")
                curves.append(tag + ", ".join(f"{f:.4f} ({s:.0f})" for f, s in zip(f1s, secs)))
        f1s = r.get("valid_micro_f1", [])
        kept = str(1 + max(range(len(f1s)), key=lambda i: f1s[i])) if f1s and not r.get("rl_valid_micro_f1") else "–"
        secs = r.get("epoch_seconds", [])
        rate = r["n_train"] / statistics.median(secs) if secs and not r.get("rl_valid_micro_f1") else None
        load = f"{r['load'][0]:.1f}-{r['load'][1]:.1f}" if r.get("load") else "–"
        peak = f"{r['peak_rss_mib'] / 1024:.2f} GiB" if r.get("peak_rss_mib") else "–"
        lines.append(f"| {name} | {r['seed']} | {'; '.join(curves) or '–'} | {kept} | {_f(rate, '.1f')} | "
                     f"{_f(r['fit_s'] and r['fit_s'] / 60, '.1f')} min | {_f(r['predict_s'], '.0f')} s | {peak} | "
                     f"{load} | {_f(r['test_micro_f1'], '.4f')} |")
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_method.setdefault(r["label"] or r["method"], []).append(r)
    lines += ["", "Per configuration (medians over its seeds):", ""]
    for name, group in by_method.items():
        fits = [r["fit_s"] for r in group if r["fit_s"]]
        epochs = [s for r in group for s in r.get("epoch_seconds", [])]
        rl_epochs = [s for r in group for s in r.get("rl_epoch_seconds", [])]
        parts = [f"fit {statistics.median(fits) / 60:.1f} min" if fits else "fit –"]
        if epochs:
            parts.append(f"{'an MLE' if rl_epochs else 'an'} epoch {statistics.median(epochs) / 60:.1f} min")
        if rl_epochs:
            parts.append(f"an RL epoch {statistics.median(rl_epochs) / 60:.1f} min")
        peaks = [r["peak_rss_mib"] for r in group if r.get("peak_rss_mib")]
        if peaks:
            parts.append(f"peak RSS {max(peaks) / 1024:.2f} GiB (highest seed)")
        lines.append(f"- **{name}** ({len(group)} seed{'s' if len(group) != 1 else ''}): " + ", ".join(parts))
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in data["machine"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", help="the store holding the suite's runs")
    parser.add_argument("--suite", default="reuters-finetuned")
    parser.add_argument("--task", default="reuters")
    parser.add_argument("--title", help="the page's title (default: what the runs are and where they ran)")
    parser.add_argument("--memory-log", type=Path, help="a sampler log: unix-seconds pid VmRSS-kB VmHWM-kB load1")
    parser.add_argument("--from", dest="source", type=Path, help="re-render from a JSON this script wrote")
    parser.add_argument("--out", type=Path, help="the Markdown page (the JSON goes beside it)")
    parser.add_argument("--sample", type=Path, metavar="LOG",
                        help="instead: write --memory-log lines for every 'mlbench bench' process until they end")
    parser.add_argument("--every", type=float, default=20.0, help="seconds between samples (with --sample)")
    args = parser.parse_args(argv)
    if args.sample is not None:
        print(f"{sample(args.sample, args.every)} lines written to {args.sample}")
        return 0
    if args.out is None:
        parser.error("--out is needed")
    if args.source is not None:
        data = json.loads(args.source.read_text())
    else:
        if not args.tracking_uri:
            parser.error("--tracking-uri (or --from) is needed")
        import time

        from mlbench.data.tasks import get_task

        n_train = len(get_task(args.task).train)
        memory = read_memory_log(args.memory_log) if args.memory_log else None
        runs = collect(args.tracking_uri, args.suite, args.task, memory, n_train)
        decoder = " and Seq2Set over its encoder" if any(r["method"].startswith("seq2set") for r in runs) else ""
        data = {
            "title": args.title or f"Fine-tuned MiniLM on {args.task}{decoder}: cost per run on this CPU",
            "command": command_line("finetune_runs.py", argv), "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "suite": args.suite, "task": args.task, "machine": machine(),
            "runs": runs,
        }
        write_text(args.out.with_suffix(".json"), json.dumps(data, indent=1) + "\n")
    write_text(args.out, render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
