"""The one training loop of every neural method.

Adam with gradient-norm clipping, the learning rate multiplied by ``lr_decay``
after every epoch that brings no improvement; after each epoch the validation
micro-F1 is measured and handed to ``ctx.report`` (progress, MLflow curves, Optuna pruning:
``optuna.TrialPruned`` raised by a hook propagates untouched); the best epoch's
weights are saved to ``ctx.checkpoint_dir`` and restored at the end (loaded
with ``weights_only=True``); training stops after ``patience`` epochs without
improvement. A non-finite loss stops training with an :class:`MlbenchError`
naming the epoch and step.

On CUDA the forward pass runs under bf16 autocast (no loss scaling needed);
on the CPU everything is float32 and, under a seed and a fixed thread count,
bit-for-bit reproducible (the batch order is a function of ``(seed, epoch)``,
dropout and initialisation draw from the seeded torch generator).
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Mapping

import numpy as np
import torch

from mlbench.api import FitContext, MlbenchError
from mlbench.methods.neural.batching import Batch, LengthBucketSampler, iterate_batches
from mlbench.progress import progress

log = logging.getLogger(__name__)

#: On CUDA, losses are checked for NaN/inf every this many steps (each check waits for the
#: GPU); on the CPU every step, before the backward pass.
CUDA_NAN_CHECK_INTERVAL = 32


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    lr: float
    clip_norm: float | None = 5.0
    patience: int | None = 5
    weight_decay: float = 0.0
    amp: bool = True
    #: learning-rate factor after each epoch that does not improve validation micro-F1 (1: constant)
    lr_decay: float = 1.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise MlbenchError(f"epochs must be at least 1, got {self.epochs}")
        if not self.lr > 0:
            raise MlbenchError(f"learning rate must be positive, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise MlbenchError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.patience is not None and self.patience < 1:
            raise MlbenchError(f"patience must be at least 1 (or None to disable early stopping), got {self.patience}")


@dataclass
class TrainResult:
    best_epoch: int
    best_valid_micro_f1: float
    epochs_run: int
    stopped_early: bool
    epoch_seconds: list[float] = field(default_factory=list)


def seed_torch(seed: int) -> None:
    """Seed torch's CPU and CUDA generators (initialisation, dropout, sampling)."""
    torch.manual_seed(seed)


def autocast(device: torch.device, enabled: bool = True) -> ContextManager:
    """bf16 autocast on CUDA (when the GPU supports bf16), nothing elsewhere."""
    if enabled and device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        log.warning("this GPU has no bf16 support: training in float32 without AMP")
    return contextlib.nullcontext()


def _nonfinite_error(name: str, epoch: int, step: int, n_steps: int, value: float) -> MlbenchError:
    return MlbenchError(
        f"{name}: training loss became {value} at epoch {epoch}, step {step} of {n_steps}; "
        "try a lower learning rate (lr) or a tighter gradient clip (clip_norm)"
    )


def train_network(
    network: torch.nn.Module,
    *,
    name: str,
    sampler: LengthBucketSampler,
    make_batch: Callable[[np.ndarray], Batch],
    loss_fn: Callable[[Batch], torch.Tensor],
    validate: Callable[[], float],
    ctx: FitContext,
    config: TrainConfig,
    device: torch.device,
    epoch_offset: int = 0,
    baseline: float | None = None,
    epoch_metrics: Callable[[], Mapping[str, float]] | None = None,
    num_workers: int = 0,
    param_groups: list[dict] | None = None,
) -> TrainResult:
    """Train ``network`` in place and leave it holding the best epoch's weights.

    ``make_batch`` builds a CPU batch from document positions (batches are made
    one at a time, never all at once); ``loss_fn`` returns the mean loss of a
    batch already on ``device``; ``validate`` returns the validation micro-F1
    of the current weights. Epochs and steps are numbered from 1; a second
    training phase (e.g. fine-tuning after pre-training) passes the epochs
    already run as ``epoch_offset`` so that its reports continue the curve, and
    the incoming weights' validation micro-F1 as ``baseline``: they are then the
    checkpoint to beat, restored if no epoch of this phase does better.
    ``epoch_metrics`` (called once after each epoch's training pass) adds the
    loss function's own statistics, e.g. the mean reward of a policy-gradient
    phase, to the epoch's report. ``param_groups`` (Adam's parameter groups, each with its own
    ``lr``) replaces the single group of every parameter at ``config.lr``, e.g. a pretrained
    encoder at a lower rate than a fresh head; ``lr_decay`` scales every group.
    """
    optimizer = torch.optim.Adam(
        param_groups if param_groups is not None else network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    with contextlib.ExitStack() as stack:
        ckpt_dir = ctx.checkpoint_dir
        if ckpt_dir is None:
            ckpt_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlbench-ckpt-")))
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = ckpt_dir / f"{name}-best.pt"

        best_f1, best_epoch, bad_epochs = -math.inf, epoch_offset, 0
        if baseline is not None:
            best_f1 = float(baseline)
            torch.save(network.state_dict(), checkpoint)
        result = TrainResult(best_epoch=0, best_valid_micro_f1=0.0, epochs_run=0, stopped_early=False)
        run = 0
        last = epoch_offset + config.epochs
        epochs = progress(range(epoch_offset + 1, last + 1), desc=f"{name}: epochs", enabled=ctx.progress)
        for epoch in epochs:
            t0 = time.perf_counter()
            train_loss = _train_epoch(
                network, optimizer, name, epoch, sampler, make_batch, loss_fn, ctx, config, device, num_workers
            )
            extra = {k: float(v) for k, v in epoch_metrics().items()} if epoch_metrics is not None else {}
            network.eval()
            with torch.no_grad(), autocast(device, config.amp):
                valid_f1 = float(validate())
            seconds = time.perf_counter() - t0
            run += 1
            result.epochs_run = run
            result.epoch_seconds.append(seconds)
            log.info(
                "%s epoch %d: train_loss %.4f, valid_micro_f1 %.4f (%.1f s)%s",
                name, epoch, train_loss, valid_f1, seconds, "".join(f", {k} {v:.4f}" for k, v in extra.items()),
            )
            # hooks may raise optuna.TrialPruned: let it through
            lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
            ctx.report(
                epoch, {"valid_micro_f1": valid_f1, "train_loss": train_loss, "epoch_seconds": seconds, "lr": lr, **extra}
            )
            if valid_f1 > best_f1:
                best_f1, best_epoch, bad_epochs = valid_f1, epoch, 0
                torch.save(network.state_dict(), checkpoint)
            else:
                bad_epochs += 1
                if config.lr_decay < 1:
                    for group in optimizer.param_groups:
                        group["lr"] *= config.lr_decay
            if hasattr(epochs, "set_postfix"):
                epochs.set_postfix(valid_f1=f"{valid_f1:.4f}", best=f"{best_f1:.4f}@{best_epoch}")
            if config.patience is not None and bad_epochs >= config.patience and epoch < last:
                result.stopped_early = True
                log.info("%s: no improvement for %d epochs, stopping at epoch %d", name, bad_epochs, epoch)
                break
        network.load_state_dict(torch.load(checkpoint, map_location=device, weights_only=True))
    network.eval()
    result.best_epoch, result.best_valid_micro_f1 = best_epoch, best_f1
    log.info("%s: best epoch %d, valid micro-F1 %.4f", name, best_epoch, best_f1)
    return result


def forward_loss(
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    loss_fn: Callable[[Batch], torch.Tensor],
    config: TrainConfig,
    device: torch.device,
) -> torch.Tensor:
    """First half of a training step: clear the gradients, the batch's loss (under autocast on CUDA)."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, config.amp):
        return loss_fn(batch)


def backward_step(network: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, config: TrainConfig) -> None:
    """Second half: gradients, clipping, the optimizer's update."""
    loss.backward()
    if config.clip_norm:
        torch.nn.utils.clip_grad_norm_(network.parameters(), config.clip_norm)
    optimizer.step()


def _train_epoch(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    name: str,
    epoch: int,
    sampler: LengthBucketSampler,
    make_batch: Callable[[np.ndarray], Batch],
    loss_fn: Callable[[Batch], torch.Tensor],
    ctx: FitContext,
    config: TrainConfig,
    device: torch.device,
    num_workers: int = 0,
) -> float:
    """One pass over the training batches; returns the mean batch loss."""
    network.train()
    batches = sampler.batches(epoch)
    n_steps = len(batches)
    interval = 1 if device.type == "cpu" else CUDA_NAN_CHECK_INTERVAL
    losses: list[torch.Tensor] = []
    checked = 0

    def check(upto: int) -> None:
        nonlocal checked
        if upto <= checked:
            return
        values = torch.stack(losses[checked:upto]).float().cpu()
        bad = (~torch.isfinite(values)).nonzero()
        if len(bad):
            i = int(bad[0])
            raise _nonfinite_error(name, epoch, checked + i + 1, n_steps, float(values[i]))
        checked = upto

    stream = iterate_batches(batches, make_batch, num_workers=num_workers, pin_memory=device.type == "cuda")
    it: Iterator[Batch] = iter(progress(stream, desc=f"{name}: epoch {epoch}", total=n_steps, enabled=ctx.progress))
    for batch in it:
        loss = forward_loss(optimizer, batch.to(device), loss_fn, config, device)
        losses.append(loss.detach())
        if len(losses) - checked >= interval:
            check(len(losses))  # before backward: a NaN loss must not reach the weights first on CPU
        backward_step(network, optimizer, loss, config)
    if not losses:
        raise MlbenchError(f"{name}: no training batches (empty training split)")
    check(len(losses))
    return float(torch.stack(losses).float().mean())
