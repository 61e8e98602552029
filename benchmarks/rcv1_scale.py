"""Throughput and memory of the neural methods' data path and training at RCV1 shape.

    python benchmarks/rcv1_scale.py --threads 1 --out reports/performance/rcv1_scale.md
    python benchmarks/rcv1_scale.py --preset paper --device cuda --sizes 800000 --out reports/performance/rcv1_scale_gpu.md

On the synthetic generator at RCV1 shape (103 labels, 50k word types, about
250 tokens per document; :mod:`mlbench.data.synthetic`), for each corpus size
N the script measures

- tokenization: the vocabulary and the encoding in one pass with the cache
  off, the same into an empty token cache (digest, tokenization, writing) and
  from the cache (digest, opening the memory-mapped arrays, their checks),
  and encoding alone with a known vocabulary; then batching: padded batches
  per second built in this process and in two DataLoader workers;
- for every neural method, in a fresh process that maps the cached corpus and
  never sees the texts: time to first batch (the epoch's length-bucketed order
  over all N documents, the first batch built and on the device), training
  docs/s (the median over ``--train-batches`` batches after ``--warmup``; a
  batch's time covers building it, the forward and backward passes and the
  optimizer step), Seq2Set's policy-gradient (RL) steps likewise, inference
  docs/s (the method's own decoding, beam search for the sequence models, over
  ``--infer-batches`` evaluation batches), peak host memory and, on CUDA,
  ``torch.cuda.max_memory_allocated``.

Host memory: every measurement runs in its own process, so the kernel's
high-water mark ``ru_maxrss`` (``resource.getrusage``) is that measurement's
own peak resident size, imports and the network included. That figure counts
the pages of the memory-mapped corpus the process has touched; the anonymous
part (``RssAnon`` in ``/proc/self/status``, sampled after every step) is the
process's private memory: the one that must stay flat in N.

Training runs a fixed number of batches, not epochs: an epoch is N / batch
size such batches, so the epoch time at each N is projected from the measured
rate (the per-batch cost does not depend on N; the table shows it). One
training step per method (and one RL step) is profiled with
``torch.profiler``; the report lists the operators with the most self time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


from metrics_speed import machine  # same folder: the machine description the other benchmarks print
from step_timing import BUSY_STEPS, profile_step, time_steps  # same folder: one training step taken apart

METHODS = ("xml-cnn", "cnn-rnn", "seq2seq", "seq2set")
#: RCV1's shape (Lewis et al. 2004; the Seq2Set split): 103 topic labels, a 50k vocabulary, ~250 tokens.
RCV1_SHAPE = {"n_labels": 103, "vocab_size": 50_000, "doc_len": 250}
#: What ``--tiny`` uses (the test of this script): seconds, not minutes.
TINY_SHAPE = {"n_labels": 8, "vocab_size": 300, "doc_len": 30}


# --------------------------------------------------------------------- helpers


def proc_memory() -> dict[str, float]:
    """Current resident memory in MiB: total, anonymous (private) and file-backed (e.g. memory maps)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:  # not Linux: no sampling, ru_maxrss still works
        pass
    return out


def peak_rss_mib() -> float:
    """The process's high-water resident size (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def mapped_rss_mib(folder: str) -> float:
    """Resident size of this process's memory maps of files in ``folder`` (the corpus's pages it has touched)."""
    total_kib, inside = 0, False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):  # a mapping's header line: address range, ..., path
                    inside = line.rstrip().endswith(tuple(f"{folder}/{name}" for name in ("ids.npy", "offsets.npy")))
                elif inside and first == "Rss:":
                    total_kib += int(line.split()[1])
    except OSError:
        return 0.0
    return total_kib / 1024


class MemorySampler:
    def __init__(self) -> None:
        self.peak_anon = 0.0

    def sample(self) -> None:
        self.peak_anon = max(self.peak_anon, proc_memory().get("RssAnon", 0.0))


def generate_corpus(n: int, shape: dict[str, int], seed: int = 0) -> tuple[list[str], list[tuple[int, ...]], list[str]]:
    """Texts and label index sequences of ``n`` synthetic documents at ``shape``."""
    from mlbench.data.synthetic import iter_generate, label_names

    labels = label_names(shape["n_labels"])
    column = {name: j for j, name in enumerate(labels)}
    texts, seqs = [], []
    for doc in iter_generate(n, seed=seed, **shape):
        texts.append(doc.text)
        seqs.append(tuple(column[name] for name in doc.labels))
    return texts, seqs, labels


def text_settings(methods: list[str], preset: str, params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each method's (vocab_size, min_count, max_len), from its preset and overrides."""
    from mlbench.registry import get_method

    out = {}
    for name in methods:
        p = get_method(name)(preset=preset, **params.get(name, {})).params
        out[name] = {"vocab_size": int(p["vocab_size"]), "min_count": int(p["min_count"]), "max_len": p["max_len"]}
    return out


def timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


# ---------------------------------------------------------------- tokenization


def measure_tokenization(n: int, shape: dict[str, int], settings: dict[str, dict[str, Any]], work: Path) -> dict[str, Any]:
    """Tokenization and batching figures at ``n`` documents; leaves the cache and labels in ``work`` for training."""
    import scipy.sparse as sp

    from mlbench.api import indicator_matrix
    from mlbench.methods.neural.batching import Collator, LengthBucketSampler, encode_label_sequences, iterate_batches
    from mlbench.methods.neural.text import Vocabulary, build_and_encode, encode_texts
    from mlbench.methods.neural.token_cache import TokenCache, texts_digest

    (texts, seqs, labels), gen_s = timed(lambda: generate_corpus(n, shape))
    n_tokens = sum(t.count(" ") + 1 for t in texts if t)
    out: dict[str, Any] = {"n": n, "generate_s": gen_s, "mean_tokens": n_tokens / max(n, 1)}

    distinct = sorted({(s["vocab_size"], s["min_count"], s["max_len"]) for s in settings.values()}, key=str)
    vocab_size, min_count, max_len = distinct[0]
    build_and_encode(texts[:1000], vocab_size, min_count, max_len)  # warm-up: imports (pandas), first allocations
    runs = [timed(lambda: build_and_encode(texts, vocab_size, min_count, max_len))[1] for _ in range(3)]
    out["build_and_encode_s"] = statistics.median(runs)
    out["build_and_encode_runs_s"] = runs

    root = work / "tokens"
    shutil.rmtree(root, ignore_errors=True)
    digest, out["digest_s"] = timed(lambda: texts_digest(texts))
    entries: dict[str, Any] = {}
    cold_s = 0.0
    for vs, mc, ml in distinct:
        cache = TokenCache(root)
        (vocab, _), seconds = timed(
            lambda: cache.vocabulary_and_encoding(texts, texts_digest(texts), max_size=vs, min_count=mc, max_len=ml)
        )
        cold_s += seconds if (vs, mc, ml) == distinct[0] else 0.0
        entries[json.dumps([vs, mc, ml])] = vocab
    out["cache_cold_s"] = cold_s  # for the first setting: digest + one tokenizing pass + writing + reopening
    warm = TokenCache(root)
    (vocab, encoded), out["cache_warm_s"] = timed(
        lambda: warm.vocabulary_and_encoding(texts, texts_digest(texts), max_size=vocab_size, min_count=min_count,
                                             max_len=max_len)
    )
    assert warm.stats.misses == 0, "the second read missed the cache"
    out["encode_only_s"] = statistics.median(timed(lambda: encode_texts(texts, vocab, max_len))[1] for _ in range(3))

    # where the training processes find everything, without the texts
    folders = {p.name: p for p in root.iterdir() if not p.name.startswith(".")}
    out["cache_mib"] = sum(f.stat().st_size for p in folders.values() for f in p.iterdir()) / 2**20
    corpora = {}
    for name, s in settings.items():
        v: Vocabulary = entries[json.dumps([s["vocab_size"], s["min_count"], s["max_len"]])]
        enc = TokenCache(root).encoding(texts, digest, v, s["max_len"])  # a hit: every setting was cached above
        vocab_folder = next(p for p in folders.values() if p.name.startswith("vocab-")
                            and json.loads((p / "vocab.json").read_text()) == v.tokens)
        corpora[name] = {"encoded": enc.source, "vocab": str(vocab_folder / "vocab.json")}
    out["corpora"] = corpora
    label_dir = work / "labels"
    shutil.rmtree(label_dir, ignore_errors=True)
    label_dir.mkdir(parents=True)
    Y = indicator_matrix(seqs, len(labels))
    sp.save_npz(label_dir / "Y.npz", Y)
    encode_label_sequences(seqs).save(label_dir)
    out["labels"] = str(label_dir)
    out["n_labels"] = len(labels)
    out["max_labels"] = max((len(set(s)) for s in seqs), default=1)

    # batching: padded multi-hot batches of the first setting, as training builds them
    sampler = LengthBucketSampler(encoded.lengths, 64, shuffle=True, seed=0)
    order = sampler.batches(1)[:200]
    collator = Collator(encoded, min_len=8, Y=Y.tocsr())
    docs = sum(len(i) for i in order)
    _, seconds = timed(lambda: [b for b in iterate_batches(order, collator)])
    out["batch_docs_s"] = docs / seconds
    t0 = time.perf_counter()
    stream = iterate_batches(order, collator, num_workers=2)
    first = next(stream)
    t1 = time.perf_counter()
    rest = sum(len(b.index) for b in stream)
    out["workers_start_s"] = t1 - t0  # forking the two workers and their first batch
    out["batch_workers2_docs_s"] = rest / (time.perf_counter() - t1) if rest else len(first.index) / (t1 - t0)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


# --------------------------------------------------------------------- training


def measure_training(
    name: str,
    *,
    preset: str,
    params: dict[str, Any],
    corpus: dict[str, Any],
    device: str,
    train_batches: int,
    warmup: int,
    infer_batches: int,
    workers: int,
    profile: bool,
) -> dict[str, Any]:
    """Training (and RL), inference and memory of one method over a cached corpus (no texts in this process)."""
    import scipy.sparse as sp
    import torch

    from mlbench.methods.neural.batching import Collator, LengthBucketSampler, iterate_batches
    from mlbench.methods.neural.text import EncodedTexts, Vocabulary
    from mlbench.methods.neural.train import seed_torch
    from mlbench.registry import get_method

    mem = MemorySampler()
    mem.sample()
    out: dict[str, Any] = {"method": name, "rss_after_imports_mib": proc_memory().get("VmRSS", 0.0)}
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    method = get_method(name)(preset=preset, **{**params, "num_workers": workers})
    seed_torch(0)
    texts = EncodedTexts.open(corpus["encoded"])
    label_dir = Path(corpus["labels"])
    labels = [f"L{j}" for j in range(corpus["n_labels"])]
    method.vocab_ = Vocabulary(json.loads(Path(corpus["vocab"]).read_text()))
    method.labels_ = tuple(labels)
    method.max_labels_ = int(corpus["max_labels"])
    method.device_ = dev
    network = method.network_ = method.build_network(len(method.vocab_), len(labels)).to(dev)
    network.train()
    if method.target_kind == "multi_hot":
        targets = {"Y": sp.load_npz(label_dir / "Y.npz").tocsr()}
    else:
        targets = {"label_seqs": EncodedTexts.open(label_dir)}
    collator = Collator(texts, min_len=method.min_batch_len(), **targets)
    out["n_docs"] = len(texts)
    out["parameters"] = sum(p.numel() for p in network.parameters())
    mem.sample()

    phases = [("mle", method.training_config(), lambda b: method.batch_loss(network, b))]
    if hasattr(method, "policy_gradient_loss"):
        phases.append(("rl", method.rl_config(), lambda b: method.policy_gradient_loss(network, b)))

    batch_size = int(method.params["batch_size"])
    for phase, config, loss_fn in phases:
        optimizer = torch.optim.Adam(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        t0 = time.perf_counter()
        order = LengthBucketSampler(texts.lengths, batch_size, shuffle=True, seed=0).batches(1)
        n_epoch_batches = len(order)
        # timed one part at a time, then back to back, then (on CUDA) the device's own time; the last one profiled
        needed = warmup + 2 * train_batches + (BUSY_STEPS if cuda else 0) + 1
        order = (order * -(-needed // len(order)))[:needed]  # a tiny corpus goes round again
        source = iterate_batches(order, collator, num_workers=workers, pin_memory=cuda)
        first = next(source).to(dev)
        sync()
        if phase == "mle":
            out["first_batch_s"] = time.perf_counter() - t0
        stream = itertools.chain([first], source)  # the first batch is the first step's
        timing = time_steps(network, optimizer, stream, loss_fn, config, dev, warmup=warmup, steps=train_batches,
                            after_step=mem.sample, busy_steps=BUSY_STEPS if cuda else 0)
        out[f"{phase}_split"] = timing["split"]
        out[f"{phase}_pipelined_step_s"] = timing["pipelined_step_s"]
        if cuda:
            out[f"{phase}_device_step_s"] = timing["device_step_s"]
            out[f"{phase}_device_busy"] = timing["device_busy"]
        if profile:
            out[f"{phase}_profile"] = profile_step(network, optimizer, next(stream).to(dev), loss_fn, config, dev)
        source.close()
        out[f"{phase}_docs_s"] = timing["docs_s"]
        out[f"{phase}_step_s"] = timing["step_s"]
        out[f"{phase}_epoch_s"] = n_epoch_batches * batch_size / timing["docs_s"]
        mem.sample()

    # inference: the method's own prediction path over the first evaluation batches
    eval_size = int(method.params["eval_batch_size"])
    m = min(len(texts), infer_batches * eval_size)
    subset = EncodedTexts(ids=texts.ids[: int(texts.offsets[m])], offsets=texts.offsets[: m + 1])
    warm = EncodedTexts(ids=texts.ids[: int(texts.offsets[min(m, eval_size)])], offsets=texts.offsets[: min(m, eval_size) + 1])
    predict = lambda b: method.predict_batch(network, b)  # noqa: E731
    method._run_batches(warm, predict)
    sync()
    _, seconds = timed(lambda: (method._run_batches(subset, predict), sync()))
    out["infer_docs_s"] = m / seconds
    mem.sample()
    out["peak_rss_mib"] = peak_rss_mib()
    out["peak_anon_mib"] = mem.peak_anon
    out["rss_corpus_mib"] = mapped_rss_mib(corpus["encoded"])
    out["corpus_file_mib"] = sum(f.stat().st_size for f in Path(corpus["encoded"]).glob("*.npy")) / 2**20
    if cuda:
        out["peak_device_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return out


# ------------------------------------------------------------------ processes


def run_child(kind: str, payload: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """One measurement in a fresh Python process (its own ``ru_maxrss``); returns its JSON result."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    env["MLBENCH_NO_PROGRESS"] = "1"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(payload)],
        env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} measurement failed ({payload.get('method', '')}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_main(kind: str, payload: dict[str, Any]) -> None:
    if payload.get("threads"):
        import torch

        torch.set_num_threads(int(payload["threads"]))
    if kind == "tokenize":
        result = measure_tokenization(payload["n"], payload["shape"], payload["settings"], Path(payload["work"]))
    else:
        result = measure_training(payload.pop("method"), **{k: v for k, v in payload.items() if k != "threads"})
    print(json.dumps(result))


# -------------------------------------------------------------------- report


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x / 1000:.1f}k" if x >= 10_000 else f"{x:,.0f}"


def fmt_s(x: float) -> str:
    if x >= 3600:
        return f"{x / 3600:.1f} h"
    if x >= 120:
        return f"{x / 60:.1f} min"
    if x < 1:
        return f"{1000 * x:.0f} ms"
    return f"{x:.2f} s" if x < 10 else f"{x:.0f} s"


def fmt_ms(seconds: float) -> str:
    ms = 1000 * seconds
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def tokenization_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["N", "tokens/doc", "vocab+encode, no cache", "into empty cache", "from cache", "encode only",
             "batches (here)", "batches (2 workers)", "cache on disk", "peak RSS (texts held)"]]
    for r in results:
        n = r["n"]
        rows.append([
            f"{n:,}", f"{r['mean_tokens']:.0f}",
            f"{fmt_rate(n / r['build_and_encode_s'])}/s ({fmt_s(r['build_and_encode_s'])})",
            f"{fmt_rate(n / r['cache_cold_s'])}/s ({fmt_s(r['cache_cold_s'])})",
            f"{fmt_rate(n / r['cache_warm_s'])}/s ({fmt_s(r['cache_warm_s'])})",
            f"{fmt_rate(n / r['encode_only_s'])}/s",
            f"{fmt_rate(r['batch_docs_s'])}/s",
            f"{fmt_rate(r['batch_workers2_docs_s'])}/s (start {fmt_s(r['workers_start_s'])})",
            f"{r['cache_mib']:.0f} MiB", f"{r['peak_rss_mib']:.0f} MiB",
        ])
    return rows


def training_rows(results: list[dict[str, Any]], cuda: bool) -> list[list[str]]:
    head = ["method", "N", "first batch", "train docs/s", "s/batch", "epoch (projected)", "RL docs/s",
            "RL epoch (projected)", "infer docs/s", "peak RSS", "peak anon RSS", "corpus resident"]
    if cuda:
        head.append("peak device")
    rows = [head]
    for r in results:
        row = [
            r["method"], f"{r['n_docs']:,}", fmt_s(r["first_batch_s"]), fmt_rate(r["mle_docs_s"]),
            f"{r['mle_step_s']:.2f}", fmt_s(r["mle_epoch_s"]),
            fmt_rate(r.get("rl_docs_s")), fmt_s(r["rl_epoch_s"]) if "rl_epoch_s" in r else "-",
            fmt_rate(r["infer_docs_s"]), f"{r['peak_rss_mib']:.0f} MiB", f"{r['peak_anon_mib']:.0f} MiB",
            f"{r['rss_corpus_mib']:.1f} of {r['corpus_file_mib']:.0f} MiB",
        ]
        if cuda:
            row.append(f"{r.get('peak_device_mib', 0):.0f} MiB")
        rows.append(row)
    return rows


def table(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def split_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """Median seconds of each part of a training step, at the first N."""
    rows = [["method", "step", "build batch + copy", "forward", "backward", "clip + Adam", "step, back to back",
             "device busy"]]
    first_n = results[0]["n_docs"] if results else 0
    for r in results:
        if r["n_docs"] != first_n:
            continue
        for phase in ("mle", "rl"):
            parts = r.get(f"{phase}_split")
            if parts:
                total = sum(parts.values())
                piped = r.get(f"{phase}_pipelined_step_s")
                busy = r.get(f"{phase}_device_busy")
                rows.append([r["method"] + (" RL" if phase == "rl" else ""), fmt_ms(total)]
                            + [f"{fmt_ms(parts[k])} ({100 * parts[k] / total:.0f}%)"
                               for k in ("batch", "forward", "backward", "update")]
                            + [fmt_ms(piped) if piped is not None else "-",
                               f"{100 * busy:.0f}% ({fmt_ms(r[f'{phase}_device_step_s'])})" if busy is not None else "-"])
    return rows


def short_op(name: str) -> str:
    """An operator or kernel name without its template arguments and parameter list.

    CUDA kernels come back from the profiler demangled in full (``void at::native::elementwise_kernel<128, 4,
    ...lambda...>(int, ...)``, thousands of characters); what tells them apart in a table is the qualified name.
    """
    out, depth = [], 0
    for ch in name:
        if ch in "<(":
            if depth == 0:
                out.append("<…>" if ch == "<" else "")
            depth += 1
        elif ch in ">)" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    short = "".join(out).strip()
    return short[5:] if short.startswith("void ") else short


def profile_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        for phase in ("mle", "rl"):
            prof = r.get(f"{phase}_profile")
            if not prof:
                continue
            label = f"{r['method']}" + (" (RL step)" if phase == "rl" else "")
            tops = ", ".join(f"`{short_op(t['op'])}` {100 * t['share']:.0f}%" for t in prof["top"])
            lines.append(f"- **{label}**, one step at N = {r['n_docs']:,} ({prof['total_ms']:.0f} ms {prof['clock']} "
                         f"self time in all): {tops}")
    return lines


def markdown(args: argparse.Namespace, tok: list[dict[str, Any]], train: list[dict[str, Any]], cmd: str,
             load_start: str, load_end: str, threads: int) -> str:
    import torch

    cuda = args.device.startswith("cuda")
    lines = [
        f"# RCV1-scale data path and training throughput: preset `{args.preset}`, device `{args.device}`",
        "",
        f"Generated by `{cmd}`.",
        "",
    ]
    if not cuda:
        lines += [
            "**No GPU was available for these figures**: everything below ran on the CPU of the machine described "
            "at the end, with the other jobs sharing it (see the load averages). The GPU targets of the issue "
            "(one H100, 800k documents: Seq2Seq/Seq2Set MLE epoch at most 3 minutes, Seq2Set RL epoch at most "
            "6 minutes, XML-CNN epoch at most 1 minute) were **not measured**; "
            "`python benchmarks/rcv1_scale.py --preset paper --device cuda --sizes 800000` measures them on a GPU "
            "machine.",
            "",
        ]
    shape = TINY_SHAPE if args.tiny else RCV1_SHAPE
    lines += [
        f"Corpus: the synthetic generator with {shape['n_labels']} labels, {shape['vocab_size']:,} word types and "
        f"about {shape['doc_len']} tokens per document (log-normal lengths), all N documents used as the training "
        f"split. Method settings: preset `{args.preset}`"
        + (" with each method's `contract_params` (tiny networks)" if args.tiny else "")
        + (f", overrides {args.param}" if args.param else "")
        + f", `num_workers={args.workers}`. Torch threads: {threads}.",
        "",
        "## Tokenization and batching",
        "",
        "Documents per second (and seconds) for the whole corpus. *vocab+encode, no cache*: the training path's "
        "one tokenizing pass that builds the vocabulary and encodes (`build_and_encode`), median of 3 runs; *into empty cache*: the "
        "same through the token cache (text digest, tokenization, writing, reopening memory-mapped); *from "
        "cache*: what a second run pays (digest, opening, checks); *encode only*: a split encoded with a known "
        "vocabulary (validation, test, a second `max_len`), median of 3. Batches: padded training batches with multi-hot "
        "targets built in this process, and by two DataLoader workers (the rate after the first batch; start: "
        "forking the workers and receiving their first batch). Timings follow an untimed warm-up call on 1,000 "
        "documents (imports). Peak RSS is this process's, which holds the N texts.",
        "",
        table(tokenization_rows(tok), markdown=True),
        "",
        "## Training and inference",
        "",
        f"Each row is a fresh process that maps the cached corpus (no texts). Train docs/s: median over "
        f"{args.train_batches} batches after {args.warmup} warm-up batches (building the batch, forward, backward, "
        "clipping, Adam); s/batch the median batch time; the epoch is projected as N / batch size batches at that "
        "rate. RL: Seq2Set's policy-gradient steps (sampled sequences and the greedy baseline) measured the same "
        f"way. Inference: the method's prediction (beam search for the sequence models) over {args.infer_batches} "
        "evaluation batches after one warm-up batch. First batch: the epoch's length-bucketed order over all N "
        "documents, the first batch built and moved to the device. Memory: peak RSS is `ru_maxrss`; anon is the "
        "private part (`RssAnon`, sampled after every step); corpus resident: the pages of the memory-mapped "
        "corpus files resident in this process at the end (`/proc/self/smaps`), of the files' size.",
        "",
        table(training_rows(train, cuda), markdown=True),
        "",
    ]
    lines += scaling_section(tok, train)
    lines += ["", "## Where the time goes", "",
              "The parts of a training step (medians over the timed batches, wall clock, the device synchronised "
              "after each part); *step, back to back*: the mean wall time of as many steps again run without "
              "synchronising between them, as in an epoch; *device busy* (CUDA only): the device's kernel and copy "
              f"time per step under `torch.profiler` over {BUSY_STEPS} further steps, as a share of the back-to-back "
              "step:", "",
              table(split_rows(train), markdown=True), "",
              "`torch.profiler` over one training step after the timed ones (operators by self time, their share of "
              "the step's total self time; the profiler's own cost per operator inflates the many small ones, e.g. "
              "Adam's element-wise updates):", ""]
    lines += profile_lines(train)
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    lines += [
        f"- torch: {torch.__version__}, threads: {threads}" + (f", device: {torch.cuda.get_device_name()}" if cuda else ""),
        f"- load average (1, 5, 15 min) at the start: {load_start}; at the end: {load_end} (other jobs share this "
        "machine: wall-clock rates move with them)",
    ]
    return "\n".join(lines) + "\n"


def scaling_section(tok: list[dict[str, Any]], train: list[dict[str, Any]]) -> list[str]:
    sizes = [r["n"] for r in tok]
    if len(sizes) < 2:
        return []
    lines = ["## Scaling in N", "",
             "Time should grow linearly with N (tokenization, projected epochs) while the training process's "
             "private (anonymous) memory stays flat: the corpus is read through the memory map, batch by batch. "
             "Peak RSS adds the corpus pages mapped into the process: file-backed, shared with the page cache and "
             "reclaimable, at most the size of the ids file (the kernel reads ahead around each document, so a "
             "few random batches already map most of a small file).", ""]
    head = ["quantity"] + [f"N = {n:,}" for n in sizes]
    rows = [head]
    rows.append(["tokenize into the cache (s)"] + [f"{r['cache_cold_s']:.1f}" for r in tok])
    rows.append(["  per 10k documents (s)"] + [f"{1e4 * r['cache_cold_s'] / r['n']:.2f}" for r in tok])
    rows.append(["read from the cache (s)"] + [f"{r['cache_warm_s']:.2f}" for r in tok])
    rows.append(["cache on disk (MiB)"] + [f"{r['cache_mib']:.0f}" for r in tok])
    methods = list(dict.fromkeys(r["method"] for r in train))
    by = {(r["method"], r["n_docs"]): r for r in train}
    for m in methods:
        rs = [by.get((m, n)) for n in sizes]
        rows.append([f"{m}: train docs/s"] + [fmt_rate(r["mle_docs_s"]) if r else "-" for r in rs])
        rows.append([f"{m}: projected epoch"] + [fmt_s(r["mle_epoch_s"]) if r else "-" for r in rs])
        if any(r and "rl_docs_s" in r for r in rs):
            rows.append([f"{m}: projected RL epoch"] + [fmt_s(r["rl_epoch_s"]) if r else "-" for r in rs])
        rows.append([f"{m}: first batch (ms)"] + [f"{1000 * r['first_batch_s']:.0f}" if r else "-" for r in rs])
        rows.append([f"{m}: peak anon RSS (MiB)"] + [f"{r['peak_anon_mib']:.0f}" if r else "-" for r in rs])
        rows.append([f"{m}: corpus resident / file (MiB)"]
                    + [f"{r['rss_corpus_mib']:.0f} / {r['corpus_file_mib']:.0f}" if r else "-" for r in rs])
        rows.append([f"{m}: peak RSS (MiB)"] + [f"{r['peak_rss_mib']:.0f}" if r else "-" for r in rs])
    lines.append(table(rows, markdown=True))
    return lines


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        child_main(argv[1], json.loads(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000], help="corpus sizes N")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma list of neural methods")
    parser.add_argument("--preset", default="small", choices=["small", "paper"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<i>")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in every measurement (default: torch's)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for training batches")
    parser.add_argument("--train-batches", type=int, default=8, help="timed training batches per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training batches first")
    parser.add_argument("--infer-batches", type=int, default=2, help="evaluation batches timed for inference")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                        help="override a hyperparameter of every method (repeatable)")
    parser.add_argument("--tiny", action="store_true", help="tiny corpus shape and networks (a smoke test)")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the token cache goes (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=None, help="write the report as Markdown here")
    args = parser.parse_args(argv)

    import torch

    from mlbench.cli.options import parse_params
    from mlbench.registry import get_method

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    overrides = parse_params(args.param)
    params = {m: {**(get_method(m).contract_params if args.tiny else {}), **overrides} for m in methods}
    shape = TINY_SHAPE if args.tiny else RCV1_SHAPE
    settings = text_settings(methods, args.preset, params)
    threads = args.threads or torch.get_num_threads()
    load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    tok_results, train_results = [], []
    work_root = args.work_dir or Path(tempfile.mkdtemp(prefix="mlbench-rcv1-scale-"))
    try:
        for i, n in enumerate(args.sizes):
            work = work_root / f"n{n}"
            print(f"N = {n:,}: generating and tokenizing", file=sys.stderr, flush=True)
            tok = run_child("tokenize", {"n": n, "shape": shape, "settings": settings, "work": str(work),
                                         "threads": args.threads}, args.threads)
            tok_results.append(tok)
            for m in methods:
                print(f"N = {n:,}: {m}", file=sys.stderr, flush=True)
                corpus = {**tok["corpora"][m], "labels": tok["labels"], "n_labels": tok["n_labels"],
                          "max_labels": tok["max_labels"]}
                payload = {"method": m, "preset": args.preset, "params": params[m], "corpus": corpus,
                           "device": args.device, "train_batches": args.train_batches, "warmup": args.warmup,
                           "infer_batches": args.infer_batches, "workers": args.workers, "profile": i == 0,
                           "threads": args.threads}
                train_results.append(run_child("train", payload, args.threads))
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_root, ignore_errors=True)
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    cuda = args.device.startswith("cuda")
    print(table(tokenization_rows(tok_results), markdown=False))
    print()
    print(table(training_rows(train_results, cuda), markdown=False))
    print()
    print(table(split_rows(train_results), markdown=False))
    for line in profile_lines(train_results):
        print(line)
    if args.out is not None:
        cmd = "python benchmarks/rcv1_scale.py " + " ".join(argv)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(args, tok_results, train_results, cmd.strip(), load_start, load_end, threads))
        raw = args.out.with_suffix(".json")
        raw.write_text(json.dumps({"command": cmd.strip(), "tokenization": tok_results, "training": train_results},
                                  indent=1, default=str))
        print(f"wrote {args.out} and {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
