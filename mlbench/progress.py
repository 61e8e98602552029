"""Progress bars that stay quiet when asked to (tests, worker processes)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress_enabled(requested: bool = True) -> bool:
    return requested and os.environ.get("MLBENCH_NO_PROGRESS", "") in ("", "0")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, enabled: bool = True) -> Iterable[T]:
    from tqdm.auto import tqdm

    return tqdm(
        iterable, desc=desc, total=total, disable=not progress_enabled(enabled), file=sys.stderr, leave=False,
        dynamic_ncols=True,
    )
