"""Where a task's own files are, and what every reader checks before opening one.

This module owns the split names, the validation carve of own data, the file extensions a task folder may use, finding the split files of a
folder (:func:`split_files`), the rule that every input is a regular file (:func:`require_regular`: a FIFO
or a device would block or never end) and the error type naming a bad file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mlbench.api import DataError

SPLITS = ("train", "valid", "test")
#: Without a validation part, this share of train is carved (iterative stratification, fixed seed).
VALID_FRACTION = 0.1
VALID_SEED = 0
#: Text formats (read by :mod:`mlbench.data.files`).
TEXT_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
#: Feature formats (read by :mod:`mlbench.data.feature_files`); ``.txt`` may hold either kind.
FEATURE_SUFFIXES = (".arff", ".svm", ".libsvm", ".svmlight", ".xc")
SUFFIXES = TEXT_SUFFIXES + FEATURE_SUFFIXES


class TaskFileError(DataError):
    """A malformed task file; the message names the file and, where it can, the row or line."""


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def require_regular(path: Path) -> Path:
    """``path`` if it is a regular file (or a link to one); else a one-line error, before anything opens it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise TaskFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = next((text for test, text in _KINDS if test(mode)), "not a plain file")
        raise TaskFileError(f"{path}: is {kind}, not a regular file; task data is read only from regular files")
    return path


def _matches(path: Path, split: str, exact: bool) -> bool:
    stem = path.stem.lower()
    return stem == split if exact else stem.endswith((f"-{split}", f"_{split}"))


def split_files(folder: Path) -> dict[str, Path]:
    """The train, test and (optional) valid files of ``folder``: ``train.<ext>``, else ``<name>-train.<ext>``
    or ``<name>_train.<ext>`` (the MULAN and Extreme Classification Repository namings)."""
    candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    found: dict[str, Path] = {}
    for split in SPLITS:
        for exact in (True, False):
            matches = [p for p in candidates if _matches(p, split, exact)]
            if len(matches) > 1:
                raise TaskFileError(f"{folder}: several {split} files ({', '.join(p.name for p in matches)}); keep one")
            if matches:
                found[split] = matches[0]
                break
    missing = [s for s in ("train", "test") if s not in found]
    if missing:
        raise TaskFileError(
            f"{folder}: no {' or '.join(f'{s}.*' for s in missing)} file (expected train.<ext> and test.<ext>, "
            f"optionally valid.<ext>, with <ext> one of {', '.join(s[1:] for s in SUFFIXES)})"
        )
    return found
