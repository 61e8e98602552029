"""A synthetic multi-label corpus with RCV1-like structure, for tests and scale.

See :mod:`mlbench.data.synthetic`. The split is by document position: the first
70% train, the next 10% valid, the last 20% test. Data and split depend only
on the constructor arguments (``gen_seed`` included), never on the run seed.
Document ids are ``syn-<digest>-<position>``, the digest hashing the generator
arguments (and generator version), so that tasks generated differently never
share a fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlbench.api import Dataset, Task
from mlbench.data.build import build_task
from mlbench.data.synthetic import GENERATOR_VERSION, generate, label_names


class SyntheticDataset(Dataset):
    name = "synthetic"
    description = "Seeded synthetic multi-label text: label hierarchy, long tail, label vocabularies (tests, scale)"

    def __init__(
        self,
        n_docs: int = 2000,
        n_labels: int = 20,
        vocab_size: int = 2000,
        doc_len: int = 60,
        empty_fraction: float = 0.0,
        gen_seed: int = 0,
    ) -> None:
        self.n_docs = int(n_docs)
        self.n_labels = int(n_labels)
        self.vocab_size = int(vocab_size)
        self.doc_len = int(doc_len)
        self.empty_fraction = float(empty_fraction)
        self.gen_seed = int(gen_seed)

    @property
    def id_prefix(self) -> str:
        params = {
            "version": GENERATOR_VERSION,
            "n_labels": self.n_labels,
            "vocab_size": self.vocab_size,
            "doc_len": self.doc_len,
            "empty_fraction": self.empty_fraction,
            "gen_seed": self.gen_seed,
        }
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
        return f"syn-{digest}-"

    def load(self, data_dir: Path | None = None, seed: int = 0) -> Task:
        """Generate the corpus; ``data_dir`` and ``seed`` are ignored (the task is fixed)."""
        docs = generate(
            self.n_docs,
            n_labels=self.n_labels,
            vocab_size=self.vocab_size,
            doc_len=self.doc_len,
            seed=self.gen_seed,
            empty_fraction=self.empty_fraction,
            id_prefix=self.id_prefix,
        )
        n_train = self.n_docs * 7 // 10
        n_valid = self.n_docs // 10
        return build_task(
            name="synthetic",
            dataset="synthetic",
            train=docs[:n_train],
            valid=docs[n_train : n_train + n_valid],
            test=docs[n_train + n_valid :],
            label_set=label_names(self.n_labels),
            description=self.description,
        )
