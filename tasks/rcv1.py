"""RCV1-V2 (Lewis et al. 2004), read from the user's own copy.

See :mod:`mlbench.data.rcv1` for the accepted layouts (SGM/Seq2Set, LYRL2004,
original XML). Layouts without a validation split get one carved from train:
10% by iterative stratification with the fixed seed 0, whatever the run seed,
so the split (and the task fingerprint) never changes between runs.
"""

from __future__ import annotations

from pathlib import Path

from mlbench.api import Dataset, Task
from mlbench.data.build import build_task, carve_validation
from mlbench.data.rcv1 import read_rcv1, resolve_rcv1_dir

VALID_FRACTION = 0.1
VALID_SEED = 0


class RCV1Dataset(Dataset):
    name = "rcv1"
    description = "RCV1-V2 newswire, 103 topic codes, from your own copy (SGM/Seq2Set, LYRL2004 or original XML)"

    def __init__(self, fmt: str | None = None, max_test_docs: int | None = None) -> None:
        self.fmt = fmt
        self.max_test_docs = max_test_docs

    def load(self, data_dir: Path | None = None, seed: int = 0) -> Task:
        """Read the copy in ``data_dir`` (default ``$MLBENCH_DATA/rcv1``).

        ``seed`` does not influence the split: it is fixed for comparability.
        """
        directory = resolve_rcv1_dir(data_dir)
        train, valid, test = read_rcv1(directory, fmt=self.fmt, max_test_docs=self.max_test_docs)
        if valid is None:
            train, valid = carve_validation(train, VALID_FRACTION, seed=VALID_SEED)
        return build_task(
            name="rcv1",
            dataset="rcv1",
            train=train,
            valid=valid,
            test=test,
            description=self.description,
        )
