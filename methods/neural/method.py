"""``NeuralMethod``: the fit/predict/save plumbing every neural method shares.

A subclass builds its network and says how to compute a batch's loss and a
batch's 0/1 prediction; this base class owns the text pipeline (vocabulary from
training texts, truncation, both through the token cache of :mod:`.token_cache`),
length-bucketed batching (optionally in DataLoader workers), the training loop
(:mod:`.train`), validation micro-F1 for model selection, prediction in
length-sorted batches put back in document order, and persistence.

This module does not import torch at import time (``mlbench list`` imports the
method classes); everything heavy is imported inside the methods.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np
import scipy.sparse as sp

from mlbench.api import FitContext, Method, MlbenchError, Split, as_binary_csr
from mlbench.methods.neural.text import EncodedTexts, Vocabulary

if TYPE_CHECKING:
    import torch

    from mlbench.methods.neural.batching import Batch

log = logging.getLogger(__name__)

#: Hyperparameters of the text pipeline and the training loop, shared by every neural method.
NEURAL_DEFAULTS: dict[str, Any] = {
    "vocab_size": 50_000,  # embedding rows, PAD and UNK included
    "min_count": 1,  # a word needs this many training occurrences to get its own id
    "max_len": 256,  # tokens kept per document (the first ones)
    "batch_size": 64,
    "eval_batch_size": 256,
    "epochs": 30,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "clip_norm": 5.0,  # gradient-norm clipping; 0 or None disables it
    "patience": 5,  # epochs without a better validation micro-F1 before stopping; None: never
    "lr_decay": 1.0,  # learning-rate factor after each epoch without a better validation micro-F1
    "amp": True,  # bf16 autocast on CUDA (ignored on the CPU)
    "num_workers": 0,  # DataLoader worker processes building training batches (0: in the training process)
    # initial word embedding: "random", a packaged source ("glove50") or a vectors file (see .pretrained)
    "embeddings": "random",
    "freeze_embeddings": False,  # keep the pretrained embedding columns fixed during training
}

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"


class NeuralMethod(Method):
    """Base of the neural methods; subclasses implement the four network hooks."""

    accelerated: ClassVar[bool] = True
    #: What training batches carry: "multi_hot" (``Batch.targets``) or "sequence" (label-token sequences).
    target_kind: ClassVar[str] = "multi_hot"

    def __init__(self, preset: str | None = None, **params: Any) -> None:
        super().__init__(preset=preset, **params)
        problem = self.check_params()
        if problem:
            raise MlbenchError(f"method {self.name!r}: {problem}")

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
        from mlbench.methods.neural.pretrained import describe_source, source_dim

        problem = describe_source(p["embeddings"])
        if problem:
            return problem
        if not isinstance(p["freeze_embeddings"], bool):
            return f"freeze_embeddings must be true or false, got {p['freeze_embeddings']!r}"
        dim = source_dim(p["embeddings"])
        if dim is not None and "embedding_dim" in p and isinstance(p["embedding_dim"], int) and p["embedding_dim"] < dim:
            return f"embedding_dim={p['embedding_dim']} is smaller than the {dim}-d {p['embeddings']} vectors"
        if "windows" in p:
            w = p["windows"]
            if not (isinstance(w, (list, tuple)) and w and all(isinstance(x, int) and x >= 1 for x in w)):
                return f"windows must be a non-empty list of positive integers, got {w!r}"
        return ""

    # --------------------------------------------------------------- subclass hooks

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

    # ------------------------------------------------------------------- fitting

    def init_word_embedding(self, network: "torch.nn.Module", seed: int):
        """Load ``embeddings`` into the network's ``word_embedding`` (None for 'random').

        A pretrained matrix narrower than the layer fills its first columns; the
        others keep random values (on the pretrained rows' scale) and are always
        trained. ``freeze_embeddings`` keeps the pretrained columns fixed: the whole
        layer stops receiving gradients when it has no other column, else a
        gradient mask zeroes those columns' gradients.
        """
        from mlbench.methods.neural.pretrained import RANDOM, embedding_matrix

        source = self.params["embeddings"]
        if source == RANDOM:
            return None
        import torch

        layer = getattr(network, "word_embedding", None)
        if not isinstance(layer, torch.nn.Embedding):
            raise MlbenchError(f"{self.name}: its network exposes no word_embedding layer to load {source!r} into")
        mapped = embedding_matrix(self.vocab_.tokens, source, seed)
        rows, width = layer.weight.shape
        dim = mapped.matrix.shape[1]
        if width < dim:
            raise MlbenchError(f"{self.name}: embedding_dim={width} is smaller than the {dim}-d vectors of {source!r}")
        with torch.no_grad():
            weight = layer.weight
            if width > dim:  # extra columns: random on the pretrained scale, PAD row zero
                extra = torch.randn(rows, width - dim) * float(mapped.matrix[2:].std() or 1.0)
                weight[:, dim:] = extra
            weight[:, :dim] = torch.from_numpy(mapped.matrix)
            weight[0] = 0.0
        if self.params["freeze_embeddings"]:
            if width == dim:
                layer.weight.requires_grad_(False)
            else:
                mask = torch.ones(rows, width)
                mask[:, :dim] = 0.0
                layer.weight.register_hook(lambda grad: grad * mask.to(grad.device, grad.dtype))
        log.info("%s: %s vectors cover %.1f%% of the vocabulary", self.name, source, 100 * mapped.coverage)
        return mapped

    def fit_report(self) -> dict[str, float | str]:
        embedding = getattr(self, "embedding_", None)
        if embedding is None:
            return {}
        return {
            "embedding_coverage": embedding.coverage,
            "embedding_source": embedding.source,
            "embedding_version": embedding.version,
        }

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

    def encode(self, split: Split) -> EncodedTexts:
        """A split's texts encoded with ``self.vocab_``, through the token cache."""
        from mlbench.methods.neural.token_cache import TokenCache, split_digest

        return TokenCache.from_env().encoding(split.texts, split_digest(split), self.vocab_, self.max_len)

    def _vocabulary_and_training_texts(self, train: Split) -> tuple[Vocabulary, EncodedTexts]:
        """The vocabulary and the encoded training split: both from the token cache when a run of the same
        task and text settings made them before, else from one tokenizing pass (stored for the next run)."""
        from mlbench.methods.neural.token_cache import TokenCache, split_digest

        cache = TokenCache.from_env()
        fixed = self.build_vocabulary(train)
        if fixed is not None:
            return fixed, cache.encoding(train.texts, split_digest(train), fixed, self.max_len)
        p = self.params
        return cache.vocabulary_and_encoding(
            train.texts, split_digest(train), max_size=int(p["vocab_size"]), min_count=int(p["min_count"]),
            max_len=self.max_len,
        )

    def train_phases(self, runner: "PhaseRunner") -> Any:
        """Train ``self.network_``; the default is one phase of :meth:`batch_loss` under :meth:`training_config`.

        A method with several phases (e.g. pre-training, then fine-tuning with
        another loss) calls ``runner.run`` once per phase; epochs and model
        selection continue across phases. Returns the last phase's ``TrainResult``.
        """
        network = self.network_
        return runner.run(self.training_config(), lambda batch: self.batch_loss(network, batch))

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> "NeuralMethod":
        import torch

        from mlbench.methods.neural.batching import Collator, LengthBucketSampler, encode_label_sequences
        from mlbench.methods.neural.train import seed_torch
        from mlbench.metrics import micro_precision_recall_f1

        p = self.params
        if len(train) == 0:
            raise MlbenchError(f"{self.name}: the training split is empty")
        if len(valid) == 0:
            raise MlbenchError(f"{self.name}: the validation split is empty; it is needed to choose the epoch")
        self.training_config()  # bad settings fail before any work
        device = torch.device(ctx.device)
        seed_torch(ctx.seed)
        self.on_fit_start(ctx)

        self.vocab_, train_texts = self._vocabulary_and_training_texts(train)
        self.labels_ = tuple(train.labels)
        self.prepare(train)
        valid_texts = self.encode(valid)
        log.info("%s: vocabulary of %d tokens, %d labels", self.name, len(self.vocab_), len(self.labels_))

        self.device_ = device
        self.network_ = self.build_network(len(self.vocab_), len(self.labels_))
        self.embedding_ = self.init_word_embedding(self.network_, ctx.seed)
        self.network_ = self.network_.to(device)
        targets: dict[str, Any] = {}
        if self.target_kind == "multi_hot":
            targets["Y"] = train.Y.tocsr()
        elif self.target_kind == "sequence":
            targets["label_seqs"] = encode_label_sequences(train.label_seqs)
        else:  # pragma: no cover - a subclass typo
            raise ValueError(f"unknown target kind {self.target_kind!r}")
        make_batch = Collator(train_texts, min_len=self.min_batch_len(), **targets)

        def validate() -> float:
            return micro_precision_recall_f1(valid.Y, self._predict_encoded(valid_texts))[2]

        runner = PhaseRunner(
            network=self.network_,
            name=self.name,
            sampler=LengthBucketSampler(train_texts.lengths, int(p["batch_size"]), shuffle=True, seed=ctx.seed),
            make_batch=make_batch,
            validate=validate,
            ctx=ctx,
            device=device,
            num_workers=int(p["num_workers"]),
        )
        self.train_result_ = self.train_phases(runner)
        return self

    @property
    def max_len(self) -> int | None:
        v = self.params["max_len"]
        return int(v) if v else None

    # ----------------------------------------------------------------- predicting

    def _check_fitted(self, split: Split) -> None:
        if getattr(self, "network_", None) is None:
            raise MlbenchError(f"{self.name}: predict called before fit")
        if split.n_labels != len(self.labels_):
            raise MlbenchError(
                f"{self.name}: split {split.name!r} has {split.n_labels} labels, the model was trained on {len(self.labels_)}"
            )

    def _run_batches(self, texts: EncodedTexts, fn: Callable[["Batch"], "torch.Tensor"]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Apply ``fn`` to length-sorted batches; returns (positions, rows) pairs."""
        import torch

        from mlbench.methods.neural.batching import LengthBucketSampler, collate
        from mlbench.methods.neural.train import autocast

        network, device = self.network_, self.device_
        was_training = network.training
        network.eval()
        out = []
        sampler = LengthBucketSampler(texts.lengths, int(self.params["eval_batch_size"]), shuffle=False)
        try:
            with torch.no_grad(), autocast(device, bool(self.params["amp"])):
                for index in sampler.batches():
                    batch = collate(texts, index, min_len=self.min_batch_len()).to(device)
                    out.append((batch.index, fn(batch).float().cpu().numpy()))
        finally:
            network.train(was_training)
        return out

    def _predict_encoded(self, texts: EncodedTexts) -> sp.csr_matrix:
        n = len(texts)
        parts = self._run_batches(texts, lambda b: self.predict_batch(self.network_, b))
        if not parts:
            return sp.csr_matrix((0, len(self.labels_)), dtype=np.int8)
        order = np.concatenate([idx for idx, _ in parts])
        stacked = sp.vstack([sp.csr_matrix(rows.astype(np.int8)) for _, rows in parts]).tocsr()
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = np.arange(n)
        return as_binary_csr(stacked[inverse], n, len(self.labels_))

    def predict(self, split: Split) -> sp.csr_matrix:
        self._check_fitted(split)
        return self._predict_encoded(self.encode(split))

    def _scores_encoded(self, texts: EncodedTexts) -> np.ndarray:
        scores = np.zeros((len(texts), len(self.labels_)), dtype=np.float32)
        for index, rows in self._run_batches(texts, lambda b: self.score_batch(self.network_, b)):
            scores[index] = rows
        return scores

    # ---------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """A folder with ``model.pt`` (the state dict) and ``config.json`` (params, vocabulary, labels)."""
        import torch

        if getattr(self, "network_", None) is None:
            raise MlbenchError(f"{self.name}: nothing to save before fit")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in self.network_.state_dict().items()}, path / MODEL_FILE)
        config = {
            "method": self.name,
            "params": self.params,
            "preset": self.preset,
            "vocab": self.vocab_.to_list(),
            "labels": list(self.labels_),
            "extra": self.extra_state(),
        }
        (path / CONFIG_FILE).write_text(json.dumps(config))

    @classmethod
    def load(cls, path: Path) -> "NeuralMethod":
        import torch

        path = Path(path)
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
        except FileNotFoundError as exc:
            raise MlbenchError(f"{cls.name}: no saved model at {path} ({exc.filename} missing)") from exc
        if config.get("method") != cls.name:
            raise MlbenchError(f"{path} holds a {config.get('method')!r} model, not {cls.name!r}")
        method = cls(**config["params"])
        method.preset = config.get("preset")
        method.vocab_ = Vocabulary(config["vocab"])
        method.labels_ = tuple(config["labels"])
        method.restore_extra_state(config.get("extra", {}))
        method.device_ = torch.device("cpu")
        network = method.build_network(len(method.vocab_), len(method.labels_))
        network.load_state_dict(torch.load(path / MODEL_FILE, map_location="cpu", weights_only=True))
        method.network_ = network.eval()
        return method


class LabelSequenceMethod(NeuralMethod):
    """A neural method that emits the label set as a sequence, one label per step, until EOS.

    Training is maximum likelihood with teacher forcing on the task's label
    sequences (``split.label_seqs``): the network's ``forward(tokens, lengths,
    label_inputs)`` gives every step's logits. Decoding is batched beam search
    from :meth:`decoder_start`, for at most the longest training label set plus
    EOS (longer sets were never seen).
    """

    target_kind: ClassVar[str] = "sequence"
    max_labels_: int

    @abstractmethod
    def decoder_start(self, network: "torch.nn.Module", batch: "Batch") -> tuple[Callable, Any]:
        """(step function, initial decoder state) of a batch, as :func:`~.decoders.beam_search` takes them."""

    def prepare(self, train: Split) -> None:
        longest = max((len(set(s)) for s in train.label_seqs), default=0)
        self.max_labels_ = max(1, min(longest, train.n_labels))

    def extra_state(self) -> dict[str, Any]:
        return {"max_labels": self.max_labels_}

    def restore_extra_state(self, state: dict[str, Any]) -> None:
        self.max_labels_ = int(state["max_labels"])

    def batch_loss(self, network, batch):
        from mlbench.methods.neural.decoders import masked_sequence_nll

        logits = network(batch.tokens, batch.lengths, batch.label_inputs)
        return masked_sequence_nll(logits, batch.label_inputs, batch.label_outputs)

    def predict_batch(self, network, batch):
        from mlbench.methods.neural.batching import multi_hot
        from mlbench.methods.neural.decoders import beam_search

        step, state = self.decoder_start(network, batch)
        result = beam_search(
            step,
            state,
            batch_size=len(batch.index),
            vocab_size=network.n_tokens,
            beam_size=int(self.params["beam_size"]),
            max_steps=self.max_labels_ + 1,
            device=batch.tokens.device,
        )
        return multi_hot(result.tokens, len(self.labels_))


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
