"""The hooks a neural method may override, in one place.

``NeuralMethod`` (:mod:`.method`) owns fitting, prediction and persistence and calls these hooks; a method
subclasses it and overrides only what it needs:

Required:

- ``build_network``: the network for a vocabulary size and a label count;
- ``batch_loss``: the mean training loss of a batch;
- ``predict_batch``: a batch's 0/1 predictions.

Optional (the defaults below):

- ``score_batch``: a batch's label scores, for ``predict_scores``;
- ``target_kind``: what training batches carry, multi-hot targets or label sequences;
- ``check_params``: the one-line complaint about bad parameters, before any work;
- ``min_batch_len``: the shortest padded batch the network accepts;
- ``build_vocabulary``: a vocabulary fixed in advance instead of one from the training texts;
- ``prepare``: anything learnt from the training split before the network is built;
- ``extra_state`` / ``restore_extra_state``: what ``prepare`` learnt, saved with the model and read back;
- ``on_fit_start``: warnings or set-up once the device is known;
- ``training_config``: the ``TrainConfig`` of the training loop;
- ``train_phases``: the training phases (default: one phase of ``batch_loss``).

:class:`~.sequence.LabelSequenceMethod` fills the three required hooks for label-sequence decoders and adds
one of its own, ``decoder_start``. No torch import at import time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from mlbench.api import FitContext, Split
from mlbench.methods.neural.text import Vocabulary

if TYPE_CHECKING:
    import torch

    from mlbench.methods.neural.batching import Batch
    from mlbench.methods.neural.phases import PhaseRunner


class NeuralHooks(ABC):
    """The override points of a neural method, with their defaults (see the table above)."""

    #: What training batches carry: "multi_hot" (``Batch.targets``) or "sequence" (label-token sequences).
    target_kind: ClassVar[str] = "multi_hot"
    params: dict[str, Any]
    network_: "torch.nn.Module"

    def check_params(self) -> str:
        """A one-line description of what is wrong with ``self.params``, or "" (no torch needed)."""
        p = self.params
        positive = ["vocab_size", "batch_size", "eval_batch_size", "epochs"]
        for key in positive:
            if not isinstance(p[key], int) or isinstance(p[key], bool) or p[key] < 1:
                return f"{key} must be a positive integer, got {p[key]!r}"
        if p["vocab_size"] < 2:
            return f"vocab_size must leave room for PAD and UNK (at least 2), got {p['vocab_size']}"
        if not isinstance(p["num_workers"], int) or isinstance(p["num_workers"], bool) or p["num_workers"] < 0:
            return f"num_workers must be a non-negative integer, got {p['num_workers']!r}"
        if p["max_len"] is not None and (not isinstance(p["max_len"], int) or p["max_len"] < 1):
            return f"max_len must be a positive integer or null, got {p['max_len']!r}"
        if not (isinstance(p["lr"], (int, float)) and p["lr"] > 0):
            return f"lr must be a positive number, got {p['lr']!r}"
        if not (isinstance(p["lr_decay"], (int, float)) and 0 < p["lr_decay"] <= 1):
            return f"lr_decay must be in (0, 1], got {p['lr_decay']!r}"
        if p["patience"] is not None and (not isinstance(p["patience"], int) or p["patience"] < 1):
            return f"patience must be a positive integer or null, got {p['patience']!r}"
        for key in ("dropout", "embedding_dropout"):
            if key in p and not (isinstance(p[key], (int, float)) and 0 <= p[key] < 1):
                return f"{key} must be in [0, 1), got {p[key]!r}"
        if "windows" in p:
            w = p["windows"]
            if not (isinstance(w, (list, tuple)) and w and all(isinstance(x, int) and x >= 1 for x in w)):
                return f"windows must be a non-empty list of positive integers, got {w!r}"
        return ""

    @abstractmethod
    def build_network(self, vocab_size: int, n_labels: int) -> "torch.nn.Module":
        """A fresh network for this vocabulary and label count (after ``torch.manual_seed``)."""

    @abstractmethod
    def batch_loss(self, network: "torch.nn.Module", batch: "Batch") -> "torch.Tensor":
        """Mean training loss of a batch already on the device."""

    @abstractmethod
    def predict_batch(self, network: "torch.nn.Module", batch: "Batch") -> "torch.Tensor":
        """``B x n_labels`` 0/1 (bool) predictions of a batch (network in eval mode, no grad)."""

    def score_batch(self, network: "torch.nn.Module", batch: "Batch") -> "torch.Tensor":
        """``B x n_labels`` scores, for methods that offer :meth:`predict_scores`."""
        raise NotImplementedError

    def min_batch_len(self) -> int:
        """Shortest padded batch length the network accepts (e.g. its widest convolution)."""
        return 1

    def prepare(self, train: Split) -> None:
        """Learn anything beyond the vocabulary from the training split before the network is built."""

    def extra_state(self) -> dict[str, Any]:
        """JSON-able state set by :meth:`prepare`, saved with the model."""
        return {}

    def restore_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`extra_state`."""

    def on_fit_start(self, ctx: FitContext) -> None:
        """Called once the device is known, before training (warnings about the device belong here)."""

    def training_config(self):
        from mlbench.methods.neural.train import TrainConfig

        p = self.params
        return TrainConfig(
            epochs=int(p["epochs"]),
            lr=float(p["lr"]),
            clip_norm=float(p["clip_norm"]) if p["clip_norm"] else None,
            patience=int(p["patience"]) if p["patience"] is not None else None,
            weight_decay=float(p["weight_decay"]),
            amp=bool(p["amp"]),
            lr_decay=float(p["lr_decay"]),
        )

    def build_vocabulary(self, train: Split) -> Vocabulary | None:
        """A vocabulary fixed in advance (e.g. a saved model's), or None: the one built from the training texts."""
        return None

    def train_phases(self, runner: "PhaseRunner") -> Any:
        """Train ``self.network_``; the default is one phase of :meth:`batch_loss` under :meth:`training_config`.

        A method with several phases (e.g. pre-training, then fine-tuning with
        another loss) calls ``runner.run`` once per phase; epochs and model
        selection continue across phases. Returns the last phase's ``TrainResult``.
        """
        network = self.network_
        return runner.run(self.training_config(), lambda batch: self.batch_loss(network, batch))
