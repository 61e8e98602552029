"""One training step taken apart: the timing shared by rcv1_scale.py and pretrained_steps.py.

A step is the training loop's own (:func:`mlbench.methods.neural.train.forward_loss` then the backward pass,
clipping and Adam, as ``backward_step`` runs them), timed one part at a time with the device synchronised
after each part:

- ``batch``: the next batch from the stream (built on the host) and its copy to the device;
- ``forward``: clearing the gradients and the loss; host work that a network does inside its forward pass
  (reading pretrained token states by row, for example) is timed apart by a :class:`HostClock` the caller
  hands in, and reported as its own part, out of the forward time;
- ``backward`` and ``update`` (gradient clipping and the optimizer's step).

Then the same steps back to back, synchronised only before and after: what an epoch sees. On a GPU the host
queues the next kernels while the device runs the last ones, which the per-part timing prevents; on CUDA the
profiler's device time over a few more steps gives the share of a step in which the device has work.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Iterator

PARTS = ("batch", "forward", "backward", "update")
#: Back-to-back training steps under the profiler for the device-busy fraction (CUDA only).
BUSY_STEPS = 3


class HostClock:
    """Seconds spent in calls the caller wraps with :meth:`timed` since the last :meth:`reset`."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def reset(self) -> None:
        self.seconds = 0.0

    def timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

        return wrapper


def time_steps(network, optimizer, stream: Iterator[Any], loss_fn, config, device, *, warmup: int, steps: int,
               host: dict[str, HostClock] | None = None, after_step: Callable[[], None] | None = None,
               busy_steps: int = 0) -> dict[str, Any]:
    """Time ``warmup + steps`` training steps part by part (the first ``warmup`` not kept), then ``steps`` more
    back to back, then on CUDA ``busy_steps`` more under the profiler.

    Returns the median seconds of each part (``split``: :data:`PARTS` plus the ``host`` clocks' names, whose
    time is taken out of the forward pass), the median step (``step_s``) and training documents per second
    (``docs_s``, a batch's documents over its step), every kept step's parts and documents (``steps``), the
    back-to-back step (``pipelined_step_s``, the mean over ``steps`` further steps) and, on CUDA,
    the device's seconds per step (``device_step_s``) and their share of the back-to-back step
    (``device_busy``). ``stream`` yields CPU batches with ``index`` and ``to(device)``.
    """
    import torch

    from mlbench.methods.neural.train import backward_step, forward_loss

    cuda = device.type == "cuda"
    host = host or {}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    split: dict[str, list[float]] = {k: [] for k in (*PARTS, *host)}
    times, rates = [], []
    steps_kept: list[dict[str, float]] = []
    for step in range(warmup + steps):
        for clock in host.values():
            clock.reset()
        t = time.perf_counter()
        batch = next(stream).to(device)
        sync()
        t_batch = time.perf_counter()
        loss = forward_loss(optimizer, batch, loss_fn, config, device)
        sync()
        t_forward = time.perf_counter()
        loss.backward()
        sync()
        t_backward = time.perf_counter()
        if config.clip_norm:
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.clip_norm)
        optimizer.step()
        sync()
        t_end = time.perf_counter()
        if after_step is not None:
            after_step()
        if step < warmup:
            continue
        inside = sum(clock.seconds for clock in host.values())
        parts = {"batch": t_batch - t, "forward": t_forward - t_batch - inside, "backward": t_backward - t_forward,
                 "update": t_end - t_backward, **{name: clock.seconds for name, clock in host.items()}}
        for key, seconds in parts.items():
            split[key].append(seconds)
        steps_kept.append({**parts, "docs": len(batch.index)})
        times.append(t_end - t)
        rates.append(len(batch.index) / (t_end - t))
    out: dict[str, Any] = {
        "split": {k: statistics.median(v) for k, v in split.items()},
        "step_s": statistics.median(times),
        "docs_s": statistics.median(rates),
        "steps": steps_kept,
    }
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        batch = next(stream).to(device)
        backward_step(network, optimizer, forward_loss(optimizer, batch, loss_fn, config, device), config)
    sync()
    out["pipelined_step_s"] = (time.perf_counter() - t) / steps
    if cuda and busy_steps:
        out["device_step_s"] = device_seconds(network, optimizer, stream, loss_fn, config, device, busy_steps)
        out["device_busy"] = out["device_step_s"] / out["pipelined_step_s"]
    return out


def device_seconds(network, optimizer, stream, loss_fn, config, device, steps: int) -> float:
    """Seconds per training step during which the GPU runs kernels or copies: the profiler's device time of
    every operator over ``steps`` back-to-back steps (batches from ``stream``), divided by ``steps``.

    Divided by the step's wall time measured without the profiler (whose host-side cost would lengthen the
    step), it is the device-busy fraction: the share of the step in which the device has work.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    from mlbench.methods.neural.train import backward_step, forward_loss

    batches = [next(stream).to(device) for _ in range(steps)]
    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for batch in batches:
            backward_step(network, optimizer, forward_loss(optimizer, batch, loss_fn, config, device), config)
        torch.cuda.synchronize(device)
    return sum(e.self_device_time_total for e in prof.key_averages()) / 1e6 / steps


def profile_step(network, optimizer, batch, loss_fn, config, device, top: int = 8) -> dict[str, Any]:
    """One training step under ``torch.profiler``: the operators with the most self time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from mlbench.methods.neural.train import backward_step, forward_loss

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        loss = forward_loss(optimizer, batch, loss_fn, config, device)
        backward_step(network, optimizer, loss, config)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = prof.key_averages()
    use_device = device.type == "cuda"
    attr = "self_device_time_total" if use_device else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events) or 1.0
    rows = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:top]
    return {
        "clock": "device" if use_device else "cpu",
        "total_ms": total / 1000,
        "top": [{"op": e.key, "ms": getattr(e, attr) / 1000, "share": getattr(e, attr) / total, "calls": e.count}
                for e in rows],
    }
