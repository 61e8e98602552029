"""Writing report files safely: through a temporary file renamed over the target, and a fresh bundle
moved in only once it is complete (a failure leaves the old one as it was)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable


def write_by_rename(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file beside it, renamed over it: a symbolic link planted at ``path``
    (in a bundle folder from elsewhere, say) is replaced, never followed to write outside the folder."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    temp = Path(name)
    try:
        write(temp)
        umask = os.umask(0)
        os.umask(umask)
        temp.chmod(0o666 & ~umask)  # as a plain open() would have made it (mkstemp makes 0600)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def install_fresh_bundle(out_dir: Path, export: Callable[[Path], list[Any]]) -> None:
    """Run ``export`` into a folder beside ``out_dir`` and move the bundle in only once it is complete: a
    failure leaves the old bundle as it was. The runs ``export`` returns were left out (another split)."""
    import logging

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.new-"))
    try:
        for r in export(fresh):
            logging.getLogger(__name__).warning("run %s (%s on %s) used another split (fingerprint %s): left out",
                                                r.run_id, r.method, r.task, r.fingerprint)
        _install_bundle(fresh, out_dir)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _install_bundle(fresh: Path, out_dir: Path) -> None:
    """Move a complete bundle's files (runs.csv, bundle.json, predictions/, tasks/) over those of ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("predictions", "tasks"):
        old = out_dir / name
        if old.exists():
            trash = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
            old.rename(trash / name)
            shutil.rmtree(trash, ignore_errors=True)
        (fresh / name).rename(old)
    for name in ("runs.csv", "bundle.json"):
        os.replace(fresh / name, out_dir / name)
