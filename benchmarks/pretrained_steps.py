"""Host time per training step of the pretrained-encoder methods, apart from compute, on real Reuters text.

    python benchmarks/pretrained_steps.py --threads 1 --out reports/performance/pretrained_steps.md
    python benchmarks/pretrained_steps.py --from reports/performance/pretrained_steps.json \\
        --out reports/performance/pretrained_steps.md          # re-renders the page from its evidence

benchmarks/rcv1_scale.py takes the word-level neural methods' steps apart on synthetic RCV1-shaped data; the
methods over all-MiniLM-L6-v2 need real word pieces, so this script does the same on ``--docs`` training
documents of a task drawn at random (seed 0), with the methods' own settings:

- ``minilm`` fine-tuned end to end, as the ``reuters-finetuned`` suite runs it (128 word pieces, one window)
  and as the ``paper`` preset does (four overlapping 256-piece windows);
- ``seq2seq-minilm`` and ``seq2set-minilm`` (the ``small`` preset; Seq2Set's policy-gradient step too): the
  SGM decoders over the frozen encoder's token states. A fine-tuned encoder (``seq2set-minilm+ft``) changes
  the states, not the step.

Everything a fit does once before its first step is done first and timed as ``setup`` (loading the encoder;
tokenising and windowing the documents for ``minilm``; for the decoders, the encoder's pass over the sample
that fills the token-state table). Then each step is timed part by part with the device synchronised after
each part (:mod:`step_timing`): ``batch`` is the host building the batch (``collate_windows`` for ``minilm``,
the ``Collator`` for the decoders) and its copy to the device; ``state rows`` is the host reading the batch's
token states from the table inside the decoders' forward pass (timed by wrapping the table's row lookup, and
taken out of the forward time); then forward, backward and the update. The host's share of a step is
``batch`` plus ``state rows`` over the whole step. Steps follow the methods' length-bucketed order;
``--warmup`` steps are not kept; the table gives each part's mean over ``--steps`` steps (batches differ in
length, so a mean, which the host share is a ratio of, not a median) and the mean step when the same batches run
again back to back. On CUDA, the device-busy fraction as in rcv1_scale.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import yaml

from metrics_speed import machine  # same folder
from step_timing import BUSY_STEPS, HostClock, time_steps
from tables import command_line, write_text

SUITES = Path(__file__).resolve().parent / "suites"
#: key -> (row label, method, preset, parameters); the first row's are the reuters-finetuned suite's own
CONFIGS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "minilm-ft-128": ("minilm fine-tuned, 128 x 1 window (reuters-finetuned)", "minilm", "small",
                      {"@suite": "reuters-finetuned"}),
    "minilm-ft-paper": ("minilm fine-tuned, 256 x 4 windows (paper preset)", "minilm", "paper", {}),
    "seq2seq-minilm": ("seq2seq-minilm (small preset)", "seq2seq-minilm", "small", {}),
    "seq2set-minilm": ("seq2set-minilm (small preset)", "seq2set-minilm", "small", {}),
}


def suite_params(name: str, method: str) -> dict[str, Any]:
    """A method's parameters as a suite file under benchmarks/suites sets them."""
    return dict(yaml.safe_load((SUITES / f"{name}.yaml").read_text())["methods"][method] or {})


def minilm_step(params: dict[str, Any], preset: str, train, device) -> tuple[Any, list, Any]:
    """(network, phases, batch maker) of a ``minilm`` fine-tuning step, built as ``MiniLM.fit`` builds them
    when ``mode`` is ``finetune``: encoder and head as one module, Adam with the encoder at ``encoder_lr``."""
    import numpy as np
    import torch

    from mlbench.methods.encoders import _FineTuned, collate_windows, make_head
    from mlbench.methods.minilm import MiniLM
    from mlbench.methods.neural.batching import LengthBucketSampler
    from mlbench.methods.neural.train import TrainConfig, seed_torch

    method = MiniLM(preset=preset, **params)
    p = method.params
    if p["mode"] != "finetune":
        raise SystemExit(f"minilm with mode {p['mode']!r}: only fine-tuning has a transformer step to time")
    _, method.tokenizer_, encoder = method._load_encoder()
    seed_torch(0)
    head = make_head(int(encoder.config.hidden_size), train.n_labels, int(p["hidden"]), float(p["dropout"]))
    network = _FineTuned.build(encoder, head).to(device)
    windows = method._windows(train.texts)
    Y, pad = train.Y.tocsr(), int(method.tokenizer_.pad_token_id or 0)
    config = TrainConfig(epochs=1, lr=float(p["lr"]), clip_norm=float(p["clip_norm"]) if p["clip_norm"] else None,
                         weight_decay=float(p["weight_decay"]), amp=bool(p["amp"]))
    bce = torch.nn.BCEWithLogitsLoss()
    groups = [{"params": list(encoder.parameters()), "lr": float(p["encoder_lr"])},
              {"params": list(head.parameters()), "lr": float(p["lr"])}]
    lengths = np.bincount(windows.doc, weights=windows.lengths, minlength=len(train)).astype(np.int64)
    order = LengthBucketSampler(lengths, int(p["batch_size"]), shuffle=True, seed=0).batches(1)
    phase = {"name": "fine-tune", "config": config, "groups": groups, "order": order,
             "loss": lambda b: bce(network(b).float(), b.targets)}
    return network, [phase], lambda index: collate_windows(windows, index, pad, Y)


class TimedRows:
    """A token-state table whose row lookups are timed by a :class:`HostClock`."""

    def __init__(self, table, clock: HostClock) -> None:
        self._get = clock.timed(table.__getitem__)

    def __getitem__(self, rows):
        return self._get(rows)


def decoder_step(name: str, params: dict[str, Any], preset: str, train, device, clock: HostClock):
    """(network, phases, batch maker) of an SGM decoder over pretrained token states, as ``NeuralMethod.fit``
    builds them; the table's row lookups are timed by ``clock``."""
    import torch  # noqa: F401  (the method's network needs it)

    from mlbench.methods.neural.batching import Collator, LengthBucketSampler, encode_label_sequences
    from mlbench.methods.neural.train import seed_torch
    from mlbench.registry import get_method

    method = get_method(name)(preset=preset, **params)
    method._progress, method._encode_device = False, str(device)
    seed_torch(0)
    method.vocab_, texts = method._vocabulary_and_training_texts(train)
    method.labels_ = tuple(train.labels)
    method.prepare(train)
    method.device_ = device
    network = method.network_ = method.build_network(len(method.vocab_), len(method.labels_)).to(device)
    table = network.states
    network.states = types.SimpleNamespace(table=TimedRows(table.table, clock), dim=table.dim)
    make_batch = Collator(texts, min_len=method.min_batch_len(), label_seqs=encode_label_sequences(train.label_seqs))
    order = LengthBucketSampler(texts.lengths, int(method.params["batch_size"]), shuffle=True, seed=0).batches(1)
    phases = [{"name": "MLE", "config": method.training_config(), "order": order,
               "loss": lambda b: method.batch_loss(network, b)}]
    if hasattr(method, "policy_gradient_loss"):
        phases.append({"name": "RL", "config": method.rl_config(), "order": order,
                       "loss": lambda b: method.policy_gradient_loss(network, b)})
    return network, phases, make_batch


def measure(key: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One configuration's rows (one per training phase)."""
    import numpy as np
    import torch

    from mlbench.data.tasks import get_task
    from mlbench.methods.neural.batching import iterate_batches

    label, name, preset, params = CONFIGS[key]
    if "@suite" in params:
        params = suite_params(params["@suite"], name)
    if args.encoder:
        params = {**params, "encoder": args.encoder}
    device = torch.device(args.device)
    task = get_task(args.task)
    train = task.train.subset(np.sort(np.random.default_rng(0).permutation(len(task.train))[: args.docs]))
    clock = HostClock()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    if name == "minilm":
        network, phases, make_batch = minilm_step(params, preset, train, device)
        host = {}
    else:
        network, phases, make_batch = decoder_step(name, params, preset, train, device, clock)
        host = {"state rows": clock}
    setup_s = time.perf_counter() - t0
    network.train()
    rows = []
    needed = args.warmup + 2 * args.steps + (BUSY_STEPS if device.type == "cuda" else 0)
    for phase in phases:
        config = phase["config"]
        optimizer = torch.optim.Adam(phase.get("groups") or network.parameters(), lr=config.lr,
                                     weight_decay=config.weight_decay)
        order = phase["order"]
        order = (order * -(-needed // len(order)))[:needed]
        # back to back over the very batches timed part by part: lengths vary from batch to batch
        kept = order[args.warmup : args.warmup + args.steps]
        order = order[: args.warmup + args.steps] + kept + order[args.warmup + 2 * args.steps :]
        source = iterate_batches(order, make_batch, num_workers=0, pin_memory=device.type == "cuda")
        timing = time_steps(network, optimizer, source, phase["loss"], config, device,
                            warmup=args.warmup, steps=args.steps, host=host,
                            busy_steps=BUSY_STEPS if device.type == "cuda" else 0)
        source.close()
        rows.append({"config": label, "method": name, "preset": preset, "params": params, "phase": phase["name"],
                     "docs": len(train), "setup_s": setup_s, **timing, "load": [load0, os.getloadavg()[0]]})
    return rows


def fmt_ms(seconds: float) -> str:
    ms = 1000 * seconds
    return f"{ms:.2f} ms" if ms < 1 else f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


HOST_PARTS = ("batch", "state rows")
PARTS = ("batch", "state rows", "forward", "backward", "update")


def mean_parts(r: dict[str, Any]) -> dict[str, float]:
    """Mean seconds of each part over the kept steps (the back-to-back steps ran the same batches)."""
    steps = r["steps"]
    return {k: sum(s[k] for s in steps) / len(steps) for k in PARTS if k in steps[0]}


def host_share(r: dict[str, Any]) -> float:
    parts = mean_parts(r)
    return sum(parts.get(k, 0.0) for k in HOST_PARTS) / sum(parts.values())


def render(data: dict[str, Any]) -> str:
    rows = data["rows"]
    cuda = any("device_busy" in r for r in rows)
    head = ["configuration", "phase", "step", "batch + copy (host)", "state rows (host)", "forward", "backward",
            "clip + Adam", "host share", "step, back to back", "train docs/s", "setup"]
    if cuda:
        head.append("device busy")
    lines = [
        f"# {data['title']}",
        "",
        f"Generated by `{data['command']}` ({data['generated']}). How each column is measured: the docstring of"
        " `benchmarks/pretrained_steps.py`. "
        f"{data['docs']} training documents of {data['task']} drawn at random (seed 0); each part is the mean over"
        f" {data['steps']} steps after {data['warmup']} warm-up steps, and the back-to-back step the mean over the"
        f" same {data['steps']} batches run again; device {data['device']}, torch threads {data['threads']}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|",
    ]
    for r in rows:
        s = mean_parts(r)
        total = sum(s.values())

        def part(key: str) -> str:
            return "-" if key not in s else f"{fmt_ms(s[key])} ({100 * s[key] / total:.1f}%)"

        cells = [r["config"], r["phase"], fmt_ms(total), part("batch"), part("state rows"), part("forward"),
                 part("backward"), part("update"), f"{100 * host_share(r):.2f}%", fmt_ms(r["pipelined_step_s"]),
                 f"{sum(x['docs'] for x in r['steps']) / (total * len(r['steps'])):.1f}", f"{r['setup_s']:.1f} s"]
        if cuda:
            cells.append(f"{100 * r['device_busy']:.0f}%" if "device_busy" in r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    loads = [x for r in rows for x in r["load"]]
    worst = max(rows, key=host_share)
    ratios = [r["pipelined_step_s"] / sum(mean_parts(r).values()) for r in rows]
    lines += [
        "",
        f"Load (1-minute average, before and after each configuration): {min(loads):.2f}-{max(loads):.2f}.",
        "",
        "## Reading",
        "",
        f"- The host's share of a step is at most {100 * host_share(worst):.2f}% ({worst['config']}, {worst['phase']}).",
    ]
    if not cuda:
        lines += [
            "- On a CPU the step is the transformer's or the decoder's arithmetic: building batches faster cannot"
            " shorten an epoch measurably. What the host does per step is bounded by the batch, not by the corpus:"
            " the windows are tokenised once before the first step (in `setup`) and a batch is cut from them by array"
            " indexing; the decoders' token states are computed once (`setup`) and a batch reads its rows from one"
            " table.",
            f"- Back to back over the same batches, a step took {min(ratios):.2f}x to {max(ratios):.2f}x its"
            " part-by-part time. Nothing runs asynchronously on a CPU, so this is not host work hidden or exposed:"
            " a step's time follows its batch (length-bucketed batches of unequal length and, for minilm, of unequal"
            " window counts), a few large batches weigh most in a mean over 8 steps, and the same large batch takes"
            " a different time from one run of it to the next on this shared machine.",
            "- On a GPU the arithmetic shrinks and the host's part does not: the decoders read their state rows on"
            " the host inside the forward pass (the token ids go back to the host for it, and the rows come to the"
            " device as one copy), the first thing to move into the batch when a GPU measures it.",
        ]
    else:
        lines += ["- Device busy: the profiler's device time per step over the back-to-back step (step_timing.py)."]
    lines += [
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in data["machine"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="reuters")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma list of configurations (keys of CONFIGS)")
    parser.add_argument("--docs", type=int, default=256, help="training documents drawn at random")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoder", help="another encoder for every configuration (a model folder)")
    parser.add_argument("--from", dest="source", type=Path, help="re-render from a JSON this script wrote")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown page (the JSON goes beside it)")
    args = parser.parse_args(argv)
    if args.source is not None:
        data = json.loads(args.source.read_text())
    else:
        import torch

        from mlbench.methods.neural.token_cache import CACHE_ENV

        torch.set_num_threads(args.threads)
        keys = [c for c in args.configs.split(",") if c]
        unknown = [c for c in keys if c not in CONFIGS]
        if unknown:
            parser.error(f"unknown configuration(s) {unknown}; known: {list(CONFIGS)}")
        before = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = "off"  # setup computes the token states every time: no disk cache between rows
        try:
            rows = [row for key in keys for row in measure(key, args)]
        finally:  # a caller's process (a test) keeps its own setting
            if before is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = before
        data = {
            "title": f"Pretrained-encoder methods on {args.task}: host time per training step",
            "command": command_line("pretrained_steps.py", argv),
            "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "task": args.task, "docs": args.docs,
            "steps": args.steps, "warmup": args.warmup, "device": args.device, "threads": args.threads,
            "machine": {**machine(), "torch": torch.__version__}, "rows": rows,
        }
        write_text(args.out.with_suffix(".json"), json.dumps(data, indent=1) + "\n")
    write_text(args.out, render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
