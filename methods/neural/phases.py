"""``PhaseRunner``: runs the training phases of one network (each a call of :func:`~.train.train_network`),
continuing the epoch numbering across phases and carrying the best validation micro-F1 forward, so that model
selection spans every phase. ``NeuralMethod.fit`` makes one and hands it to the ``train_phases`` hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from mlbench.api import FitContext

if TYPE_CHECKING:
    import torch

    from mlbench.methods.neural.batching import Batch


class PhaseRunner:
    """Runs training phases of one network over the method's training batches.

    Each :meth:`run` is one call of :func:`~.train.train_network`; the epochs
    of a later phase continue the numbering of the earlier ones (so MLflow
    curves continue), and by default a later phase starts from the best
    validation micro-F1 so far as the checkpoint to beat: model selection spans
    every phase.
    """

    def __init__(
        self,
        *,
        network: "torch.nn.Module",
        name: str,
        sampler: Any,
        make_batch: Callable[[np.ndarray], "Batch"],
        validate: Callable[[], float],
        ctx: FitContext,
        device: "torch.device",
        num_workers: int = 0,
    ) -> None:
        self.network, self.name, self.sampler, self.make_batch = network, name, sampler, make_batch
        self._validate, self.ctx, self.device = validate, ctx, device
        self.num_workers = num_workers
        self.epochs_run = 0
        self.best_valid_micro_f1: float | None = None
        self.best_epoch = 0

    def validate(self) -> float:
        """Validation micro-F1 of the network's current weights (eval mode, no gradients)."""
        import torch

        was_training = self.network.training
        self.network.eval()
        try:
            with torch.no_grad():  # prediction brings its own autocast
                return float(self._validate())
        finally:
            self.network.train(was_training)

    def run(
        self,
        config: Any,
        loss_fn: Callable[["Batch"], "torch.Tensor"],
        *,
        name: str | None = None,
        baseline: float | None | str = "best",
        epoch_metrics: Callable[[], Any] | None = None,
    ) -> Any:
        """One phase; ``baseline="best"`` keeps the best validation score of the earlier phases
        (none for the first phase), a number sets it, None starts afresh."""
        from mlbench.methods.neural.train import train_network

        kept_epoch = self.best_epoch
        if baseline == "best":
            baseline = self.best_valid_micro_f1
        result = train_network(
            self.network,
            name=name or self.name,
            sampler=self.sampler,
            make_batch=self.make_batch,
            loss_fn=loss_fn,
            validate=self._validate,
            ctx=self.ctx,
            config=config,
            device=self.device,
            epoch_offset=self.epochs_run,
            baseline=baseline,
            epoch_metrics=epoch_metrics,
            num_workers=self.num_workers,
        )
        if baseline is not None and result.best_epoch == self.epochs_run:
            result.best_epoch = kept_epoch  # no epoch of this phase beat the incoming weights
        self.epochs_run += result.epochs_run
        self.best_valid_micro_f1, self.best_epoch = result.best_valid_micro_f1, result.best_epoch
        return result
