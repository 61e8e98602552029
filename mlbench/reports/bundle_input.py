"""Reading a report bundle as untrusted input: files confined to the folder, sizes bounded, every value checked.

Threat model. A bundle (``bundle.json``, ``runs.csv``, ``predictions/``, ``tasks/``) is meant to travel:
``mlbench report --merge DIR`` and ``--from DIR`` read folders written on other machines, by other people,
or edited by hand, so every byte of one is treated as coming from someone who may be careless or hostile.
The folder named on the command line is the user's choice (it may itself be a symbolic link); what is
inside it is not. Reading a bundle must not:

- reach outside the folder. No path is taken from the bundle: each file has its place in the layout
  (``predictions/<run id>.npz``, ``tasks/<task file>.npz``), run ids must be MLflow's 32 hexadecimal digits,
  a task name becomes a plain file name through :func:`task_file_name`, and the ``predictions`` cell of
  runs.csv must be empty or exactly ``predictions/<run id>.npz``. Files are opened one path component at
  a time relative to the folder, with ``O_NOFOLLOW``, and must be regular files: a symbolic link (the file
  or ``predictions/``, ``tasks/``), an absolute path, ``..`` or a FIFO is refused before any file outside
  the folder is opened, and so is a file with several names (a hard link may name a file elsewhere).
  (Where the platform lacks ``dir_fd`` opening, links are refused by ``lstat`` first, which leaves a
  window for a race by someone who can write into the folder while it is read.)
- run code: ``.npz`` members are read with ``allow_pickle=False`` and must be numbers or text;
  JSON and CSV parsers run nothing. The members are read through NumPy's own ``numpy.lib.format``
  (``read_magic``, ``read_array_header_*``, ``read_array``) rather than ``np.load``, which allocates
  whatever shape a header declares before it reads a byte of data: here the header is checked first.
- take unbounded memory or time: :data:`MAX_FILE_BYTES` per file, :data:`MAX_NPZ_MEMBERS` members of at
  most :data:`MAX_ARRAY_BYTES` each (an array's header is read and checked against its member's size
  before the array), at most :data:`MAX_RUNS` rows over :data:`MAX_TASKS` tasks (a merge builds each
  task), and :data:`MAX_RESAMPLES` bootstrap resamples.
- be silently wrong: numeric fields are type- and range-checked (seeds, seconds, metrics in [0, 1],
  resamples), run ids are unique, and the arrays are valid 0/1 CSR matrices whose shapes equal the task's
  (checked before any metric is computed).

What this does not defend against: numbers that are consistent but false. A bundle can hold any
predictions and any metrics; the tests recompute every metric of a committed bundle from its predictions,
and a report shows each row's code digest. A failure is a :class:`BundleError` (exit 1): one line naming
the bundle, the file and the field. Writing is :mod:`mlbench.reports.page`'s: it replaces files by
renaming, so a link planted in an output folder is replaced, not followed.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import stat
import zipfile
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

import numpy as np

from mlbench.api import MlbenchError

#: MLflow's run ids: a uuid4 without dashes (bundle files are named by them).
RUN_ID = re.compile(r"[0-9a-f]{32}")
#: A task name that is its own file name (every built-in task and variant); others are hashed.
PLAIN_TASK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*(\.[A-Za-z0-9_+-]+)*")
#: Limits: bytes of one file, members of one .npz and bytes of one array, rows of runs.csv, resamples.
MAX_FILE_BYTES = 256 * 2**20
MAX_META_BYTES = 2**20
MAX_NPZ_MEMBERS = 16
MAX_ARRAY_BYTES = 256 * 2**20
MAX_RUNS = 100_000
MAX_TASKS = 200
MAX_RESAMPLES = 10_000
#: runs.csv columns every row must have (the rest of RUN_COLUMNS are tags, optional).
REQUIRED_COLUMNS = ("run_id", "method", "task", "fingerprint", "seed", "config_digest", "code_digest",
                    "config_label", "fit_seconds", "predict_seconds", "predictions")
_HEX = re.compile(r"[0-9a-f]{0,64}")
_FINGERPRINT = re.compile(r"[0-9A-Za-z._-]{0,128}")
_METRIC_COLUMN = re.compile(r"test_[a-z0-9_]{1,64}")


class BundleError(MlbenchError):
    """A bundle folder that is missing, does not hold what a report needs, or holds something refused."""


def task_file_name(task: str) -> str:
    """The file of ``task``'s labels under ``tasks/``: the name itself when it is a plain file name
    (``reuters-trim10``), else a readable part and a hash of the name (a path task: ``./my-data``)."""
    if PLAIN_TASK.fullmatch(task) and len(task) <= 120:
        return f"{task}.npz"
    slug = re.sub(r"[^A-Za-z0-9_+-]+", "_", task).strip("_-")[:60] or "task"
    return f"{slug}-{hashlib.sha256(task.encode()).hexdigest()[:12]}.npz"


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


class BundleFolder:
    """Files of one bundle folder, opened without leaving it (see the module's threat model)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BundleError(f"{self.root} holds no report bundle (runs.csv and bundle.json); write one with "
                              "`mlbench report --task T --out DIR`")

    def where(self, *parts: str) -> str:
        return f"bundle {self.root}: {'/'.join(parts)}"

    @contextlib.contextmanager
    def open(self, *parts: str, field: str = "", limit: int = MAX_FILE_BYTES) -> Iterator[IO[bytes]]:
        """A regular file at ``parts`` below the folder, no link followed on the way, at most ``limit`` bytes."""
        where = self.where(*parts) + (f" (field {field})" if field else "")
        if not all(_plain_name(p) for p in parts):
            raise BundleError(f"{where}: not a plain file name inside the bundle")
        try:
            fd = self._open_fd(parts)
        except FileNotFoundError:
            raise BundleError(f"{where}: missing") from None
        except _Refused as exc:
            raise BundleError(f"{where}: refused ({exc})") from None
        except OSError as exc:
            raise BundleError(f"{where}: refused ({_why(exc)})") from None
        f = os.fdopen(fd, "rb")
        with f:
            info = os.fstat(f.fileno())
            if info.st_size > limit:
                raise BundleError(f"{where}: {info.st_size:,} bytes, more than the {limit:,} allowed")
            yield f

    def _open_fd(self, parts: Sequence[str]) -> int:
        """Open ``parts`` below the root: each folder with ``O_NOFOLLOW``, the file only once ``lstat`` says it
        is a regular file with one name, and checked again once open (the same file, still one name)."""
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | nofollow
        directory_flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
        if os.open not in os.supports_dir_fd or not nofollow:  # pragma: no cover - Windows
            path = self.root.joinpath(*parts)
            for i in range(1, len(parts)):
                if self.root.joinpath(*parts[:i]).is_symlink():
                    raise _Refused("a symbolic link")
            _check_file(os.lstat(path))
            return os.open(path, flags)
        directory = os.open(self.root, directory_flags)
        try:
            for part in parts[:-1]:
                inner = os.open(part, directory_flags | nofollow, dir_fd=directory)
                os.close(directory)
                directory = inner
            before = _check_file(os.stat(parts[-1], dir_fd=directory, follow_symlinks=False))
            fd = os.open(parts[-1], flags, dir_fd=directory)
        finally:
            os.close(directory)
        after = os.fstat(fd)
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) or after.st_nlink > 1:
            os.close(fd)
            raise _Refused("it changed while being opened")
        return fd

    def read_text(self, *parts: str, limit: int) -> str:
        with self.open(*parts, limit=limit) as f:
            data = f.read(limit + 1)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BundleError(f"{self.where(*parts)}: not UTF-8 text (byte {exc.start})") from None


class _Refused(Exception):
    """A bundle entry that is not a plain file of the bundle (the message says what it is)."""


def _check_file(info: os.stat_result) -> os.stat_result:
    if stat.S_ISLNK(info.st_mode):
        raise _Refused("a symbolic link")
    if not stat.S_ISREG(info.st_mode):
        raise _Refused("not a regular file")
    if info.st_nlink > 1:  # a hard link is another name of a file that may lie outside the folder
        raise _Refused(f"a hard link: the file has {info.st_nlink} names")
    return info


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a link where a file or folder should be
        return "a symbolic link, or not a folder where one is expected"
    return exc.strerror or type(exc).__name__


def read_npz(f: IO[bytes], where: str, allowed: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays of an open ``.npz`` file: only ``allowed`` names, numbers or text, sizes bounded, no pickle."""
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise BundleError(f"{where}: {len(infos)} arrays; a bundle file holds at most {MAX_NPZ_MEMBERS}")
            for info in infos:
                name = info.filename[:-4] if info.filename.endswith(".npy") else ""
                if name not in allowed or name in out:
                    raise BundleError(f"{where}: unexpected member {info.filename[:80]!r}")
                if info.file_size > MAX_ARRAY_BYTES:
                    raise BundleError(f"{where}: array {name} is {info.file_size:,} bytes, more than allowed")
                with zf.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                    else:
                        raise BundleError(f"{where}: array {name}: unsupported .npy version {version}")
                    if dtype.hasobject or dtype.kind not in "biufU" or len(shape) > 2:
                        raise BundleError(f"{where}: array {name} is {dtype} of {len(shape)} dimensions; "
                                          "a bundle holds numbers and text")
                    if math.prod(shape) * dtype.itemsize > info.file_size:
                        raise BundleError(f"{where}: array {name} declares more data than its file holds")
                with zf.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
    except BundleError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError,
            RuntimeError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BundleError(f"{where}: not a readable .npz file ({type(exc).__name__}: {detail})") from None
    return out


def scalar_text(arrays: dict[str, np.ndarray], key: str, where: str) -> str:
    a = arrays[key]
    if a.ndim != 0 or a.dtype.kind != "U":
        raise BundleError(f"{where}: field {key} must be one string")
    return str(a)


def int_vector(arrays: dict[str, np.ndarray], key: str, where: str, length: int | None = None,
               low: int = 0, high: int | None = None) -> np.ndarray:
    """A 1-D integer array as int64, its length and value range checked."""
    a = arrays[key]
    if a.ndim != 1 or a.dtype.kind not in "iub":
        raise BundleError(f"{where}: field {key} must be a vector of integers, not {a.dtype} of shape {a.shape}")
    if length is not None and len(a) != length:
        raise BundleError(f"{where}: field {key} has {len(a)} entries where {length} are expected")
    b = a.astype(np.int64)
    if b.size and (b.min() < low or (high is not None and b.max() >= high)):
        raise BundleError(f"{where}: field {key} holds values outside [{low}, {high if high is not None else 'inf'})")
    return b


def csr_arrays(arrays: dict[str, np.ndarray], where: str, shape: tuple[int, int] | None = None) -> Any:
    """The 0/1 CSR matrix of ``indptr``/``indices``/``shape``, checked: its shape (against ``shape`` when
    given), offsets that rise from 0 to the number of entries, each row's columns in range, sorted, once."""
    import scipy.sparse as sp

    for key in ("indptr", "indices", "shape"):
        if key not in arrays:
            raise BundleError(f"{where}: no field {key}")
    dims = int_vector(arrays, "shape", where, length=2, high=2**31)
    n_rows, n_cols = int(dims[0]), int(dims[1])
    if shape is not None and (n_rows, n_cols) != tuple(shape):
        raise BundleError(f"{where}: shape {n_rows} x {n_cols} where the task has {shape[0]} x {shape[1]}")
    indptr = int_vector(arrays, "indptr", where, length=n_rows + 1)
    indices = int_vector(arrays, "indices", where, high=n_cols)
    if indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
        raise BundleError(f"{where}: field indptr does not delimit the {len(indices)} entries of indices")
    m = sp.csr_matrix((np.ones(len(indices), dtype=np.int8), indices.astype(np.int32), indptr),
                      shape=(n_rows, n_cols))
    if not m.has_canonical_format:
        raise BundleError(f"{where}: a row lists a column twice or out of order")
    return m


def read_meta(folder: BundleFolder) -> dict[str, Any]:
    """bundle.json, its fields typed and bounded."""
    text = folder.read_text("bundle.json", limit=MAX_META_BYTES)
    where = folder.where("bundle.json")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{where}: not JSON ({str(exc)[:120]})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{where}: not a JSON object")
    expected = {"base_task": (str, "a string"), "command": (str, "a string"), "config": (str, "a string"),
                "tasks": (list, "a list"), "n_resamples": (int, "an integer"), "kind": (str, "a string")}
    for key, (kind, what) in expected.items():
        if key in meta and (not isinstance(meta[key], kind) or isinstance(meta[key], bool)):
            raise BundleError(f"{where}: field {key} must be {what}, not {type(meta[key]).__name__}")
    if not meta.get("base_task"):
        raise BundleError(f"{where}: field base_task is missing")
    if not all(isinstance(t, str) and _one_line(t) for t in meta.get("tasks", [])):
        raise BundleError(f"{where}: field tasks must list task names")
    for key in ("base_task", "config"):
        if key in meta and not _one_line(meta[key]):
            raise BundleError(f"{where}: field {key} must be one line of at most 1000 characters")
    if len(meta.get("tasks", [])) > MAX_TASKS:
        raise BundleError(f"{where}: field tasks lists {len(meta['tasks']):,} tasks; a bundle holds at most {MAX_TASKS}")
    n = meta.get("n_resamples", 1000)
    if not 1 <= n <= MAX_RESAMPLES:
        raise BundleError(f"{where}: field n_resamples is {n}; it must be in [1, {MAX_RESAMPLES:,}]")
    if "\n" in meta.get("command", "") or len(meta.get("command", "")) > 4000:
        raise BundleError(f"{where}: field command must be one line of at most 4000 characters")
    if meta.get("kind", "task") not in ("task", "across-tasks") or not _METRIC_NAME.fullmatch(str(meta.get("metric", "x"))):
        raise BundleError(f"{where}: field kind must be task or across-tasks, and metric must name a metric")
    _records(meta, "stale", {"method": _NAME, "code_digest": _HEX, "current": _HEX}, where)
    _records(meta, "skipped", {"method": _NAME, "task": _NAME, "reason": None}, where)
    return meta


_NAME, _METRIC_NAME = re.compile(r"[^\r\n\0]{1,200}"), re.compile(r"[a-z0-9_]{1,64}")


def _records(meta: dict[str, Any], key: str, fields: dict[str, re.Pattern | None], where: str) -> None:
    """A list field of bundle.json whose items are objects of one-line texts (``fields``: name -> pattern)."""
    items = meta.get(key, [])
    if not isinstance(items, list) or len(items) > MAX_RUNS:
        raise BundleError(f"{where}: field {key} must be a list of at most {MAX_RUNS:,} items")
    for item in items:
        if not (isinstance(item, dict) and set(item) == set(fields)
                and all(isinstance(v, str) and _one_line(v) if fields[k] is None
                        else isinstance(v, str) and fields[k].fullmatch(v) for k, v in item.items())):
            raise BundleError(f"{where}: field {key} holds an item that is not {{{', '.join(sorted(fields))}}} texts")


def _one_line(text: str, limit: int = 1000) -> bool:
    return 0 < len(text) <= limit and not any(ch in text for ch in "\r\n\0")


def _number(value: str, where: str, low: float, high: float) -> float:
    try:
        x = float(value)
    except ValueError:
        raise BundleError(f"{where}: {value[:40]!r} is not a number") from None
    if not (math.isfinite(x) and low <= x <= high):
        raise BundleError(f"{where}: {value[:40]} is outside [{low:g}, {high:g}]")
    return x


def _text(row: dict[str, str], key: str, where: str, limit: int = 1000, pattern: re.Pattern | None = None,
          required: bool = False) -> str:
    value = row.get(key) or ""
    if required and not value:
        raise BundleError(f"{where}: field {key} is empty")
    if len(value) > limit or any(ch in value for ch in "\r\n\0") or (pattern is not None and not pattern.fullmatch(value)):
        raise BundleError(f"{where}: field {key} holds {value[:40]!r}, which is not a {key} value")
    return value


def read_rows(folder: BundleFolder) -> list[dict[str, Any]]:
    """runs.csv's rows, every field checked; numbers parsed into ``seed``, ``fit``, ``predict``, ``metrics``."""
    text = folder.read_text("runs.csv", limit=MAX_FILE_BYTES)
    where = folder.where("runs.csv")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        rows = []
        for row in reader:
            rows.append(row)
            if len(rows) > MAX_RUNS:
                raise BundleError(f"{where}: more than {MAX_RUNS:,} rows")
    except csv.Error as exc:
        raise BundleError(f"{where}: not a CSV table ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise BundleError(f"{where}: no column {', '.join(missing)}")
    metric_columns = [c for c in header if c.startswith("test_")]
    bad = [c for c in metric_columns if not _METRIC_COLUMN.fullmatch(c)]
    if bad or len(set(header)) != len(header):
        raise BundleError(f"{where}: column names repeat or are malformed ({', '.join(bad)[:80]})")
    out, seen = [], set()
    for n, row in enumerate(rows, 2):
        at = f"{where} line {n}"
        if None in row or any(v is None for v in row.values()):
            raise BundleError(f"{at}: {len(header)} columns expected")
        run_id = _text(row, "run_id", at, pattern=RUN_ID, required=True)
        if run_id in seen:
            raise BundleError(f"{at}: run {run_id} is listed twice")
        seen.add(run_id)
        for key, pattern in (("fingerprint", _FINGERPRINT), ("config_digest", _HEX), ("code_digest", _HEX)):
            _text(row, key, at, pattern=pattern)
        _text(row, "method", at, limit=200, required=True)
        _text(row, "task", at, required=True)
        _text(row, "config_label", at)
        if "label" in row:
            _text(row, "label", at, limit=64)
        for key in row:
            if key not in REQUIRED_COLUMNS and not key.startswith("test_"):
                _text(row, key, at)
        if row["predictions"] not in ("", f"predictions/{run_id}.npz"):
            raise BundleError(f"{at}: field predictions names {row['predictions'][:80]!r}; a bundle's predictions "
                              f"are predictions/<run id>.npz (here predictions/{run_id}.npz) or nothing")
        seed = _number(row["seed"], f"{at} field seed", 0, 2**32 - 1)
        if seed != int(seed):
            raise BundleError(f"{at} field seed: {row['seed'][:40]} is not an integer")
        parsed = {
            "seed": int(seed),
            "fit": _number(row["fit_seconds"] or "0", f"{at} field fit_seconds", 0, 1e9),
            "predict": _number(row["predict_seconds"] or "0", f"{at} field predict_seconds", -1e9, 1e9),
            "reused_fit": (_number(row["reused_fit_seconds"], f"{at} field reused_fit_seconds", 0, 1e9)
                           if row.get("reused_fit_seconds") else None),
            "metrics": {c[5:]: _number(row[c], f"{at} field {c}", 0.0, 1.0) for c in metric_columns if row[c] != ""},
        }
        out.append({"row": dict(row), **parsed})
    if len({run["row"]["task"] for run in out}) > MAX_TASKS:
        raise BundleError(f"{where}: runs of more than {MAX_TASKS} tasks")
    return out
