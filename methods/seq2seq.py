"""``seq2seq``: SGM, the sequence generation model of Yang et al. (COLING 2018).

A bidirectional LSTM encodes the document; an LSTM decoder with additive
attention over the encoder states (padding masked) emits the label sequence,
one label per step, until EOS (:class:`~.neural.sgm.SGMNetwork`). Labels
already emitted, PAD and BOS are masked to ``-inf`` at every step, in training
and decoding alike, so an output never repeats a label. Training is maximum
likelihood with teacher forcing on ``split.label_seqs`` — the task's label
order: frequency order for the base task, an independent random order per
training document for ``-shuffled`` —; inference is batched beam search whose
masks and decoder states follow the beam back-pointers.

Deliberate choices, each a hyperparameter or documented:

- ``global_embedding`` (SGM's "GE") is on by default;
- the ``paper`` preset follows the authors' code for sizes: a 512-wide
  encoder as 256 units per direction, so the 512-unit decoder starts from the
  concatenated final states; the ``small`` preset is CPU-sized;
- EOS is allowed at the first step (a document may have no label).

torch is imported inside ``fit``/``predict`` only, so listing methods stays cheap.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mlbench.api import Param
from mlbench.methods.neural.method import DROPOUT_SPEC, NEURAL_DEFAULTS, NEURAL_SPECS, SIZE_SPEC
from mlbench.methods.neural.sequence import LabelSequenceMethod

#: Hyperparameters that fix the network's shape (and the text pipeline feeding it).
SGM_ARCHITECTURE = (
    "vocab_size",
    "min_count",
    "max_len",
    "embedding_dim",
    "encoder_hidden",
    "encoder_layers",
    "decoder_hidden",
    "decoder_layers",
    "label_embedding_dim",
    "attention_dim",
    "global_embedding",
    "feature_tokens",
)

SGM_DEFAULTS: dict[str, Any] = {
    **NEURAL_DEFAULTS,
    "max_len": 200,
    "lr": 2e-3,
    "epochs": 10,
    "patience": 3,
    "eval_batch_size": 128,
    "embedding_dim": 128,
    "encoder_hidden": 128,  # per direction
    "encoder_layers": 1,
    "decoder_hidden": 256,
    "decoder_layers": 1,
    "label_embedding_dim": 128,
    "attention_dim": 128,
    "dropout": 0.3,  # encoder outputs, decoder input embedding and output layer (and between LSTM layers)
    "embedding_dropout": 0.2,
    "global_embedding": True,
    "beam_size": 5,
    # a dense feature task (every feature present) is read as this many projected states (0: one per feature)
    "feature_tokens": 8,
}

#: Types and ranges of :data:`SGM_DEFAULTS`.
SGM_SPECS: dict[str, Param] = {
    **NEURAL_SPECS,
    **{key: SIZE_SPEC for key in ("embedding_dim", "encoder_hidden", "encoder_layers", "decoder_hidden",
                                  "decoder_layers", "label_embedding_dim", "attention_dim", "beam_size")},
    "feature_tokens": Param("int", low=0),
    "dropout": DROPOUT_SPEC,
    "embedding_dropout": DROPOUT_SPEC,
    "global_embedding": Param("bool"),
}

SGM_PAPER: dict[str, Any] = {
    "vocab_size": 50_000,
    "max_len": 500,
    "batch_size": 64,
    "eval_batch_size": 64,
    "embedding_dim": 512,
    "encoder_hidden": 256,
    "encoder_layers": 2,
    "decoder_hidden": 512,
    "decoder_layers": 2,
    "label_embedding_dim": 512,
    "attention_dim": 512,
    "dropout": 0.5,
    "embedding_dropout": 0.0,
    "lr": 1e-3,
    "epochs": 20,
    "patience": None,
    "clip_norm": 8.0,
    "beam_size": 5,
}

#: tiny enough for the contract test's 300-document task (seconds on a CPU)
SGM_CONTRACT: dict[str, Any] = {
    "embedding_dim": 16,
    "encoder_hidden": 16,
    "decoder_hidden": 32,
    "label_embedding_dim": 8,
    "attention_dim": 16,
    "epochs": 8,
    "batch_size": 16,
    "lr": 1e-2,
    "dropout": 0.1,
    "embedding_dropout": 0.0,
    "vocab_size": 2000,
    "max_len": 40,
    "beam_size": 3,
}


class Seq2Seq(LabelSequenceMethod):
    name = "seq2seq"
    description = "Seq2Seq (SGM): bi-LSTM encoder, attention LSTM label-sequence decoder, masked beam search (Yang et al. 2018)"
    defaults: ClassVar[dict[str, Any]] = dict(SGM_DEFAULTS)
    param_specs: ClassVar[dict[str, Param]] = dict(SGM_SPECS)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"small": {}, "paper": dict(SGM_PAPER)}
    contract_params: ClassVar[dict[str, Any]] = dict(SGM_CONTRACT)

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "lr": trial.suggest_float("lr", 3e-4, 5e-3, log=True),
            "embedding_dim": trial.suggest_categorical("embedding_dim", [64, 128, 256]),
            "encoder_hidden": trial.suggest_categorical("encoder_hidden", [64, 128, 256]),
            "decoder_hidden": trial.suggest_categorical("decoder_hidden", [128, 256, 512]),
            "label_embedding_dim": trial.suggest_categorical("label_embedding_dim", [32, 64, 128]),
            "attention_dim": trial.suggest_categorical("attention_dim", [64, 128, 256]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "embedding_dropout": trial.suggest_float("embedding_dropout", 0.0, 0.5),
            "global_embedding": trial.suggest_categorical("global_embedding", [True, False]),
            "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
            "beam_size": trial.suggest_categorical("beam_size", [1, 3, 5, 10]),
        }

    def check_params(self) -> str:
        p = self.params
        sizes = ("beam_size", "embedding_dim", "encoder_hidden", "encoder_layers", "decoder_hidden", "decoder_layers",
                 "label_embedding_dim", "attention_dim")
        for key in sizes:
            if not (isinstance(p[key], int) and not isinstance(p[key], bool) and p[key] >= 1):
                return f"{key} must be a positive integer, got {p[key]!r}"
        if not isinstance(p["global_embedding"], bool):
            return f"global_embedding must be true or false, got {p['global_embedding']!r}"
        return super().check_params()

    # ------------------------------------------------------------- network hooks

    def build_network(self, vocab_size: int, n_labels: int):
        from mlbench.methods.neural.sgm import SGMNetwork

        p = self.params
        return SGMNetwork(
            vocab_size=vocab_size,
            n_labels=n_labels,
            embedding_dim=int(p["embedding_dim"]),
            encoder_hidden=int(p["encoder_hidden"]),
            encoder_layers=int(p["encoder_layers"]),
            decoder_hidden=int(p["decoder_hidden"]),
            decoder_layers=int(p["decoder_layers"]),
            label_embedding_dim=int(p["label_embedding_dim"]),
            attention_dim=int(p["attention_dim"]),
            dropout=float(p["dropout"]),
            embedding_dropout=float(p["embedding_dropout"]),
            global_embedding=bool(p["global_embedding"]),
            feature_input=self.feature_input,
            feature_tokens=int(p["feature_tokens"]) if self.dense_input else 0,
        )

    def decoder_start(self, network, batch):
        memory, state = network.encode(batch.tokens, batch.lengths, batch.values)
        return network.decoder(memory), state
