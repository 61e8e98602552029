"""The one training loop: NaN detection, early stopping, learning-rate decay, phases, hooks."""

from __future__ import annotations


import pytest
import torch

from mlbench.api import FitContext, MlbenchError
from mlbench.methods.neural.batching import (
    LengthBucketSampler,
    collate,
)
from mlbench.methods.neural.text import Vocabulary, encode_texts
from mlbench.methods.neural.train import TrainConfig, train_network


class Scripted:
    """A one-parameter model trained by the real loop, with scripted validation scores."""

    def __init__(self, scores, nan_at=None):
        self.net = torch.nn.Linear(1, 1)
        self.scores = list(scores)
        self.nan_at = nan_at
        self.weights = {}
        self.epoch = 0
        self.step = 0

    def loss(self, batch):
        self.step += 1
        if self.nan_at == (self.epoch + 1, self.step):
            return self.net.weight.sum() * float("nan")
        return (self.net(batch.tokens.float()[:, :1]) ** 2).mean()

    def validate(self):
        self.epoch += 1
        self.step = 0
        self.weights[self.epoch] = self.net.weight.detach().clone()
        return self.scores[self.epoch - 1]


def run_scripted(model: Scripted, ctx: FitContext, epochs: int, patience: int | None, lr_decay: float = 1.0, **kwargs):
    texts = encode_texts([f"w{i} x" for i in range(40)], Vocabulary.build([["x"]], 10), None)
    return train_network(
        model.net,
        name="scripted",
        sampler=LengthBucketSampler(texts.lengths, batch_size=8, shuffle=True, seed=0),
        make_batch=lambda idx: collate(texts, idx),
        loss_fn=model.loss,
        validate=model.validate,
        ctx=ctx,
        config=TrainConfig(epochs=epochs, lr=0.1, clip_norm=1.0, patience=patience, lr_decay=lr_decay),
        device=torch.device("cpu"),
        **kwargs,
    )


def test_nan_loss_names_epoch_and_step(tmp_path) -> None:
    model = Scripted([0.1] * 5, nan_at=(2, 3))
    with pytest.raises(MlbenchError, match=r"epoch 2, step 3 of 5"):
        run_scripted(model, FitContext(checkpoint_dir=tmp_path, progress=False), epochs=5, patience=None)


def test_early_stopping_restores_the_best_epoch(tmp_path) -> None:
    model = Scripted([0.2, 0.6, 0.5, 0.4, 0.9, 0.95])
    ctx = FitContext(checkpoint_dir=tmp_path, progress=False)
    result = run_scripted(model, ctx, epochs=6, patience=2)
    assert (result.best_epoch, result.epochs_run, result.stopped_early) == (2, 4, True)
    assert result.best_valid_micro_f1 == 0.6
    assert torch.equal(model.net.weight, model.weights[2]) and not torch.equal(model.weights[2], model.weights[4])
    assert [e for e, _ in ctx.history] == [1, 2, 3, 4]
    assert set(ctx.history[0][1]) >= {"valid_micro_f1", "train_loss"}
    assert (tmp_path / "scripted-best.pt").exists()


def test_learning_rate_decays_after_epochs_without_improvement(tmp_path) -> None:
    ctx = FitContext(checkpoint_dir=tmp_path, progress=False)
    run_scripted(Scripted([0.5, 0.4, 0.6, 0.3, 0.2]), ctx, epochs=5, patience=None, lr_decay=0.5)
    assert [m["lr"] for _, m in ctx.history] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_a_second_phase_continues_the_epochs_and_keeps_a_better_baseline(tmp_path) -> None:
    model = Scripted([0.3, 0.4, 0.2])
    before = model.net.weight.detach().clone()
    ctx = FitContext(checkpoint_dir=tmp_path, progress=False)
    result = run_scripted(model, ctx, epochs=3, patience=None, epoch_offset=10, baseline=0.5)
    assert [e for e, _ in ctx.history] == [11, 12, 13]
    assert (result.best_epoch, result.epochs_run) == (10, 3)  # no epoch beat the incoming weights
    assert torch.equal(model.net.weight, before)


def test_report_hook_errors_propagate(tmp_path) -> None:
    class Pruned(Exception):  # stands in for optuna.TrialPruned
        pass

    def prune(epoch, metrics):
        if epoch == 2:
            raise Pruned

    model = Scripted([0.1, 0.2, 0.3])
    with pytest.raises(Pruned):
        run_scripted(model, FitContext(checkpoint_dir=tmp_path, hooks=[prune], progress=False), epochs=3, patience=None)
    assert model.epoch == 2
