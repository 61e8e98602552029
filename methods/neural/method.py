"""``NeuralMethod``: the fit/predict/save plumbing every neural method shares.

A subclass builds its network and says how to compute a batch's loss and a
batch's 0/1 prediction; this base class owns the text pipeline (vocabulary from
training texts, truncation, both through the token cache of :mod:`.token_cache`)
and, on a feature task, the feature pipeline (the task's matrix scaled as the
linear methods scale it, each row a set of weighted feature tokens:
:func:`.text.encode_features`; the network then reads them with a
``feature_input`` encoder in place of its text encoder),
length-bucketed batching (optionally in DataLoader workers), the training loop
(:mod:`.train`), validation micro-F1 for model selection, prediction in
length-sorted batches put back in document order, and persistence.

The hooks a subclass may override are listed, with their defaults, in :mod:`.hooks`; the training phases
run through :class:`~.phases.PhaseRunner`; :class:`~.sequence.LabelSequenceMethod` is the base of the
label-sequence decoders.

This module does not import torch at import time (``mlbench list`` imports the
method classes); everything heavy is imported inside the methods.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np
import scipy.sparse as sp

from mlbench.api import FEATURES, TEXT, FitContext, Method, MlbenchError, Param, Split, as_binary_csr
from mlbench.methods.neural.hooks import NeuralHooks
from mlbench.methods.neural.phases import PhaseRunner
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

#: Types and ranges of :data:`NEURAL_DEFAULTS`, checked before any data is read.
NEURAL_SPECS: dict[str, Param] = {
    "vocab_size": Param("int", low=2),
    "min_count": Param("int", low=1),
    "max_len": Param("int", low=1, none_ok=True),
    "batch_size": Param("int", low=1),
    "eval_batch_size": Param("int", low=1),
    "epochs": Param("int", low=1),
    "lr": Param("float", low=0, low_open=True),
    "weight_decay": Param("float", low=0),
    "clip_norm": Param("float", low=0, none_ok=True),
    "patience": Param("int", low=1, none_ok=True),
    "lr_decay": Param("float", low=0, high=1, low_open=True),
    "amp": Param("bool"),
    "num_workers": Param("int", low=0),
    "embeddings": Param("str"),  # "random", a packaged source or a vectors file: see .pretrained
    "freeze_embeddings": Param("bool"),
}
#: A dropout probability.
DROPOUT_SPEC = Param("float", low=0, high=1, high_open=True)
#: A layer width, a count of filters or layers, a beam.
SIZE_SPEC = Param("int", low=1)

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
FEATURIZER_FILE = "featurizer.npz"  # a feature task's column means and scales (dense features)


class NeuralMethod(NeuralHooks, Method):
    """Base of the neural methods; subclasses override the hooks listed in :mod:`.hooks`."""

    accelerated: ClassVar[bool] = True
    inputs: ClassVar[frozenset[str]] = frozenset({TEXT, FEATURES})
    #: "text" or "features": what the last fit read (a split with both is read as text).
    input_kind_: str = TEXT

    def __init__(self, preset: str | None = None, **params: Any) -> None:
        super().__init__(preset=preset, **params)
        problem = self.check_params()
        if problem:
            raise MlbenchError(f"method {self.name!r}: {problem}")

    def check_params(self) -> str:
        """The shared checks of :class:`.hooks.NeuralHooks`, then the pretrained-embedding settings."""
        problem = super().check_params()
        if problem:
            return problem
        from mlbench.methods.neural.pretrained import describe_source, source_dim

        p = self.params
        problem = describe_source(p["embeddings"])
        if problem:
            return problem
        if not isinstance(p["freeze_embeddings"], bool):
            return f"freeze_embeddings must be true or false, got {p['freeze_embeddings']!r}"
        dim = source_dim(p["embeddings"])
        if dim is not None and isinstance(p.get("embedding_dim"), int) and p["embedding_dim"] < dim:
            return f"embedding_dim={p['embedding_dim']} is smaller than the {dim}-d {p['embeddings']} vectors"
        return ""

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

    @property
    def feature_input(self) -> bool:
        """Whether the network reads weighted feature tokens (a feature task) instead of a text's words."""
        return self.input_kind_ == FEATURES

    @property
    def dense_input(self) -> bool:
        """Whether the network reads a dense feature task (every feature present, standardised)."""
        return self.feature_input and self.featurizer_.mean is not None

    def encode(self, split: Split) -> EncodedTexts:
        """A split's texts encoded with ``self.vocab_`` (through the token cache), or its features as
        weighted tokens on a feature task."""
        if self.feature_input:
            from mlbench.methods.neural.text import encode_features

            return encode_features(self.featurizer_(split))
        from mlbench.methods.neural.token_cache import TokenCache, split_digest

        return TokenCache.from_env().encoding(split.texts, split_digest(split), self.vocab_, self.max_len)

    def _input_rows(self) -> int:
        """Rows of the network's input embedding: the vocabulary, or the features plus PAD and UNK."""
        from mlbench.methods.neural.text import FEATURE_OFFSET

        return self.featurizer_.n_features + FEATURE_OFFSET if self.feature_input else len(self.vocab_)

    def _features_and_training_rows(self, train: Split) -> EncodedTexts:
        """Fit the feature scaling on ``train`` (a feature task) and encode its rows."""
        from mlbench.methods.features import MatrixFeaturizer
        from mlbench.methods.neural.pretrained import RANDOM

        if self.params["embeddings"] != RANDOM:
            raise MlbenchError(f"{self.name}: embeddings={self.params['embeddings']!r} are word vectors; this task "
                               "has features, not texts (use embeddings=random)")
        self.featurizer_ = MatrixFeaturizer.fit(train.X)
        self.vocab_ = None
        return self.encode(train)

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

        self.input_kind_ = TEXT if TEXT in train.inputs else FEATURES
        if self.feature_input:
            train_texts = self._features_and_training_rows(train)
        else:
            self.vocab_, train_texts = self._vocabulary_and_training_texts(train)
        self.labels_ = tuple(train.labels)
        self.prepare(train)
        valid_texts = self.encode(valid)
        log.info("%s: %d input tokens, %d labels", self.name, self._input_rows(), len(self.labels_))

        self.device_ = device
        self.network_ = self.build_network(self._input_rows(), len(self.labels_))
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
            "input": self.input_kind_,
            "vocab": None if self.feature_input else self.vocab_.to_list(),
            "labels": list(self.labels_),
            "extra": self.extra_state(),
        }
        (path / CONFIG_FILE).write_text(json.dumps(config))
        if self.feature_input:
            f = self.featurizer_
            np.savez(path / FEATURIZER_FILE, n_features=np.asarray(f.n_features),
                     **({} if f.mean is None else {"mean": f.mean, "scale": f.scale}))

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
        method.input_kind_ = config.get("input", TEXT)
        if method.feature_input:
            from mlbench.methods.features import MatrixFeaturizer

            with np.load(path / FEATURIZER_FILE, allow_pickle=False) as z:
                method.featurizer_ = MatrixFeaturizer(
                    int(z["n_features"]), z["mean"] if "mean" in z.files else None,
                    z["scale"] if "scale" in z.files else None)
            method.vocab_ = None
        else:
            method.vocab_ = Vocabulary(config["vocab"])
        method.labels_ = tuple(config["labels"])
        method.restore_extra_state(config.get("extra", {}))
        method.device_ = torch.device("cpu")
        network = method.build_network(method._input_rows(), len(method.labels_))
        network.load_state_dict(torch.load(path / MODEL_FILE, map_location="cpu", weights_only=True))
        method.network_ = network.eval()
        return method
